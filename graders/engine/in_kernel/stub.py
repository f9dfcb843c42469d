"""The only grading code that runs inside a student's kernel: it calls the student's functions on inputs the
grader hands it and returns what came back. It decides nothing: every comparison happens in the grader's
process. It is copied into the sandbox and loaded with `exec`, so it imports nothing from the course.

The channel (see graders/engine/channel.py) is the kernel's own Jupyter channels, never a file:
- Request (grader -> kernel, trusted): the one binary buffer of the execute_request that calls `serve`, a
  pickle of (name, args, kwargs, caps) in which {"__nnfs_handle__": key} stands for an object the kernel kept
  from an earlier call. `serve` empties that buffer list as soon as it has read it, so nothing of the request
  stays in the kernel (the call itself is silent and not stored in the history).
- Answer (kernel -> grader, untrusted): one IOPub message of type `nnfs_answer` whose buffers are the answer
  as JSON and one `.npy` file per array (allow_pickle=False), within caps["max_answer_bytes"].
  Of the arguments, only those the call changed are sent back (for the grader's check of in-place changes).
Objects that are not plain data are kept here as handles until the kernel runs its next cell.
"""
import io
import itertools
import json
import os
import pickle
import sys
import traceback
import warnings

import numpy as np
from IPython import get_ipython

ANSWER_TYPE = "nnfs_answer"
_handles = {}
_keys = itertools.count()  # never reused, so a handle from an earlier cell can never name a newer object


class _TooLarge(Exception):
    """The answer would be over one of the grader's caps."""


class _Encoder:
    """Turns a returned value into the answer's JSON nodes and `.npy` buffers, within the caps."""

    def __init__(self, caps):
        self.caps, self.nodes, self.size, self.buffers = caps, 0, 0, []

    def encode(self, value, depth=0):
        self.nodes += 1
        if self.nodes > self.caps["max_nodes"]:
            raise _TooLarge(f"it returned more than {self.caps['max_nodes']} values")
        if depth >= self.caps["max_depth"]:
            return _keep(value)
        if value is None or type(value) in (bool, str):
            return {"v": value}
        if type(value) is int:
            # an integer no float64 holds is refused by the grader; its digit count is all it needs
            return {"v": value} if value.bit_length() <= 1023 else {"big": int(value.bit_length() * 0.30103) + 1}
        if type(value) is float:
            return {"v": value} if np.isfinite(value) else {"f": repr(value)}
        if isinstance(value, (np.floating, np.integer, np.bool_)) and np.ndim(value) == 0:
            return self.encode(value.item(), depth)
        if type(value) is np.ndarray and value.dtype.kind in "biufc":
            buffer = io.BytesIO()
            np.lib.format.write_array(buffer, value, version=(1, 0), allow_pickle=False)
            self.size += buffer.tell()
            if self.size > self.caps["max_answer_bytes"]:
                raise _TooLarge(f"it returned more than the {self.caps['max_answer_bytes'] / 2**20:g} MiB the grader reads")
            self.buffers.append(buffer.getbuffer())
            return {"a": len(self.buffers) - 1}
        if type(value) in (list, tuple):
            return {"l" if type(value) is list else "t": [self.encode(x, depth + 1) for x in value]}
        if type(value) is dict and all(type(k) is str for k in value):
            return {"d": {k: self.encode(v, depth + 1) for k, v in value.items()}}
        return _keep(value)


def _keep(value):
    key = next(_keys)
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


def _unchanged(after, before):
    """Whether an argument is still what the grader sent (`before`, a fresh copy of the request's)."""
    if type(before) is dict and set(before) == {"__nnfs_handle__"}:
        return True  # an object of the kernel's: the grader never had it to compare
    if type(after) is not type(before):
        return False
    if type(before) is np.ndarray:
        return (after.shape == before.shape and after.dtype == before.dtype
                and bool(np.array_equal(after, before, equal_nan=before.dtype.kind in "fc")))
    if type(before) in (list, tuple):
        return len(after) == len(before) and all(_unchanged(a, b) for a, b in zip(after, before))
    if type(before) is dict:
        return after.keys() == before.keys() and all(_unchanged(after[k], before[k]) for k in before)
    if type(before) in (int, float, complex, bool, str, bytes, type(None)) or isinstance(before, np.generic):
        return bool(after == before) or (after != after and before != before)
    return True  # a random generator, a function: not compared (as graders.checks.calling.same)


def _where(exc):
    frames = [f for f in traceback.extract_tb(exc.__traceback__) if f.filename != __file__ and "site-packages" not in f.filename]
    if not frames:
        return None
    last = frames[-1]
    return f"line {last.lineno} of `{last.name}`" + (f": {last.line.strip()}" if last.line else "")


def _error(type_name, message, mro=None, where=None):
    return {"ok": False, "error": {"type": type_name, "mro": mro or [type_name], "message": message[:2000], "where": where}}


def serve(namespace):
    """Answer the request this cell's execute_request carries: call the student's function and publish the
    answer on IOPub."""
    kernel = get_ipython().kernel
    parent = kernel.get_parent()
    buffers = parent.get("buffers")
    payload = bytes(buffers[0]) if buffers else b""
    if isinstance(buffers, list):
        buffers.clear()  # the parent message outlives this call (until the next request): nothing of ours in it
    try:
        answer, arrays = _answer(payload, namespace)
    except Exception as exc:  # noqa: BLE001 - the grader must always get an answer
        answer, arrays = _error("StubError", f"{type(exc).__name__}: {_message(exc)}"[:500]), []
    del payload
    try:
        text = json.dumps(answer, allow_nan=False).encode()
    except (TypeError, ValueError) as exc:  # e.g. a name or message that is not text
        text, arrays = json.dumps(_error("StubError", f"{type(exc).__name__}: {exc}"[:500])).encode(), []
    kernel.session.send(kernel.iopub_socket, ANSWER_TYPE, {}, parent=parent, ident=ANSWER_TYPE.encode(),
                        buffers=[text, *arrays])


def _answer(payload, namespace):
    name, args, kwargs, caps = pickle.loads(payload)
    _, sent_args, sent_kwargs, _ = pickle.loads(payload)  # what the arguments were, to report what the call changed
    args, kwargs = _resolve(list(args)), _resolve(dict(kwargs))
    fn = _resolve(name) if type(name) is dict else namespace.get(name)  # a function, or one it returned
    if fn is None or not callable(fn):
        return _error("NameError", f"{name} is not defined"), []
    response = {"ok": False}
    try:
        import inspect
        response["argnames"] = [str(a) for a in inspect.signature(fn).bind(*args, **kwargs).arguments]
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
            response.update(_error(type(exc).__name__, _message(exc), [c.__name__ for c in type(exc).__mro__],
                                   _where(exc)))
        finally:
            sys.stderr.close()
            sys.stderr = stderr
    response["warnings"] = [{"category": w.category.__name__, "message": _message(w.message)[:500]}
                            for w in caught if issubclass(w.category, RuntimeWarning)][:5]
    encoder = _Encoder(caps)
    try:
        if response["ok"]:
            response["value"] = encoder.encode(value)
        response["args_after"] = {str(i): encoder.encode(a) for i, (a, b) in enumerate(zip(args, sent_args))
                                  if not _safely_unchanged(a, b)}
        response["kwargs_after"] = {k: encoder.encode(kwargs[k]) for k in sent_kwargs
                                    if not _safely_unchanged(kwargs[k], sent_kwargs[k])}
    except _TooLarge as exc:
        return _error(caps["too_large"], str(exc)), []  # the grader's name for this fault
    return response, encoder.buffers


def _safely_unchanged(after, before):
    try:
        return _unchanged(after, before)
    except Exception:  # noqa: BLE001 - a comparison the student's objects broke: report the argument
        return False


def _message(exc):
    try:
        return str(exc)[:2000]
    except Exception:  # noqa: BLE001 - an exception whose __str__ raises
        return f"<{type(exc).__name__} whose message cannot be printed>"


def _forget(*_):
    """Before each of the student's cells: drop the objects kept for the checks (a cache may hold the checks'
    inputs)."""
    _handles.clear()


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
    """Install the caps; they are reset before each cell (and the kept objects dropped)."""
    streams = [_CappedStream(sys.stdout, limit), _CappedStream(sys.stderr, limit)]
    sys.stdout, sys.stderr = streams

    def reset(*_):
        for stream in streams:
            stream.written = 0

    get_ipython().events.register("pre_run_cell", reset)
    get_ipython().events.register("pre_run_cell", _forget)
