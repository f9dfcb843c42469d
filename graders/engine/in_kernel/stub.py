"""The only grading code that runs inside a student's kernel: it calls the student's functions on inputs the
grader hands it and returns what came back. It decides nothing: every comparison happens in the grader's
process. It is copied into the sandbox and loaded with `exec`, so it imports nothing from the course.

Request (grader -> kernel, trusted): `<rpc>/req-<n>.pkl`, a pickle of (name, args, kwargs) in which
{"__nnfs_handle__": id} stands for an object the kernel kept from an earlier call.
Response (kernel -> grader, untrusted): `<rpc>/resp-<n>.json`, plus one `.npy` file per array, written by
`np.save(..., allow_pickle=False)` so the grader can read them without unpickling anything.
"""
import json
import os
import sys
import traceback
import warnings

import cloudpickle
import numpy as np

_handles = {}


def _encode(value, arrays, depth=0):
    if depth > 30:
        return _keep(value)
    if value is None or type(value) in (bool, str):
        return {"v": value}
    if type(value) in (int, float):
        return {"v": value} if type(value) is int or np.isfinite(value) else {"f": repr(value)}
    if isinstance(value, (np.floating, np.integer, np.bool_)) and np.ndim(value) == 0:
        item = value.item()
        return {"v": item} if not isinstance(item, float) or np.isfinite(item) else {"f": repr(item)}
    if type(value) is np.ndarray and value.dtype.kind in "biufc":
        arrays.append(value)
        return {"a": len(arrays) - 1}
    if type(value) in (list, tuple):
        return {"l" if type(value) is list else "t": [_encode(x, arrays, depth + 1) for x in value]}
    if type(value) is dict and all(type(k) is str for k in value):
        return {"d": {k: _encode(v, arrays, depth + 1) for k, v in value.items()}}
    return _keep(value)


def _keep(value):
    key = len(_handles)
    _handles[key] = value
    return {"h": key, "type": type(value).__name__, "callable": callable(value)}


def _resolve(value):
    if type(value) is dict and set(value) == {"__nnfs_handle__"}:
        return _handles[value["__nnfs_handle__"]]
    if type(value) in (list, tuple):
        return type(value)(_resolve(x) for x in value)
    if type(value) is dict:
        return {k: _resolve(v) for k, v in value.items()}
    return value


def _where(exc):
    frames = [f for f in traceback.extract_tb(exc.__traceback__) if f.filename != __file__ and "site-packages" not in f.filename]
    if not frames:
        return None
    last = frames[-1]
    return f"line {last.lineno} of `{last.name}`" + (f": {last.line.strip()}" if last.line else "")


def serve(rpc_dir, number, namespace):
    """Answer request <number>: call the student's function and write the response."""
    try:
        response = _answer(rpc_dir, number, namespace)
    except Exception as exc:  # noqa: BLE001 - the grader must always get an answer
        response = {"ok": False, "error": {"type": "StubError", "mro": ["StubError"], "where": None,
                                           "message": f"{type(exc).__name__}: {exc}"[:500]}}
    tmp = os.path.join(rpc_dir, f"resp-{number}.json.tmp")
    with open(tmp, "w") as handle:
        json.dump(response, handle)
    os.replace(tmp, os.path.join(rpc_dir, f"resp-{number}.json"))


def _answer(rpc_dir, number, namespace):
    with open(os.path.join(rpc_dir, f"req-{number}.pkl"), "rb") as handle:
        name, args, kwargs = cloudpickle.load(handle)
    args, kwargs = _resolve(list(args)), _resolve(dict(kwargs))
    response = {"ok": False}
    fn = _resolve(name) if type(name) is dict else namespace.get(name)  # a function, or one it returned
    if fn is None or not callable(fn):
        response["error"] = {"type": "NameError", "mro": ["NameError"], "message": f"{name} is not defined",
                             "where": None, "kind": type(fn).__name__ if fn is not None else None}
    else:
        try:
            import inspect
            response["argnames"] = list(inspect.signature(fn).bind(*args, **kwargs).arguments)
        except Exception:  # noqa: BLE001 - names are only for messages
            response["argnames"] = None
        with warnings.catch_warnings(record=True) as caught, \
                np.errstate(over="warn", divide="warn", invalid="warn", under="ignore"):
            warnings.simplefilter("always")
            stderr, sys.stderr = sys.stderr, open(os.devnull, "w")
            try:
                value = fn(*args, **kwargs)
                response["ok"] = True
            except BaseException as exc:  # noqa: BLE001 - everything the student raises is reported
                response["error"] = {"type": type(exc).__name__, "mro": [c.__name__ for c in type(exc).__mro__],
                                     "message": str(exc)[:2000], "where": _where(exc)}
            finally:
                sys.stderr.close()
                sys.stderr = stderr
        response["warnings"] = [{"category": w.category.__name__, "message": str(w.message)[:500]}
                                for w in caught if issubclass(w.category, RuntimeWarning)][:5]
        arrays = []
        if response["ok"]:
            response["value"] = _encode(value, arrays)
        response["args_after"] = _encode(list(args), arrays)
        response["kwargs_after"] = _encode(dict(kwargs), arrays)
        for index, array in enumerate(arrays):
            np.save(os.path.join(rpc_dir, f"resp-{number}-{index}.npy"), array, allow_pickle=False)
        response["arrays"] = len(arrays)
    return response


class OutputLimitExceeded(Exception):
    """Raised in the student's code when a cell writes more than the grader keeps."""


class _CappedStream:
    """Wraps the kernel's stdout/stderr: a cell that writes past `limit` characters is stopped right there,
    before ipykernel's buffer can exhaust the kernel's memory."""

    def __init__(self, stream, limit):
        self._stream, self._limit, self.written = stream, limit, 0

    def write(self, text):
        self.written += len(text)
        if self.written > self._limit:
            raise OutputLimitExceeded(f"the cell printed more than {self._limit // 2**20} MiB")
        return self._stream.write(text)

    def __getattr__(self, name):
        return getattr(self._stream, name)


def cap_output(limit):
    """Install the caps; they are reset before each cell."""
    streams = [_CappedStream(sys.stdout, limit), _CappedStream(sys.stderr, limit)]
    sys.stdout, sys.stderr = streams

    def reset(*_):
        for stream in streams:
            stream.written = 0

    get_ipython().events.register("pre_run_cell", reset)  # noqa: F821 - defined inside the kernel
