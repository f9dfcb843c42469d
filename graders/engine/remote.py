"""The grader's side of calling student functions that live in a sandboxed kernel.

`RemoteNamespace(session)` stands in for the notebook's globals when a worker runs a test cell's checks:
`t.call("sigmoid", z)` sends `z` to the kernel, the kernel stub (`in_kernel/stub.py`) calls the student's
`sigmoid`, and the result comes back as plain numbers and arrays, read without unpickling anything. Objects
that are not plain data (a cache, say) stay in the kernel and come back as a `Handle` to pass on.
"""
from __future__ import annotations

import json
import os

import cloudpickle
import numpy as np

from ..checks.calling import Handle, Outcome, StudentError
from ..checks.failures import GRADING_FAULTS

MAX_RESPONSE_BYTES = 256 * 2**20
MAX_NODES = 200_000


#: Raised for what the student's function raised in the kernel, or when the kernel could not answer.
RemoteError = StudentError


def _fault(name: str) -> str:
    """name, once it is known to be one of failures.GRADING_FAULTS (which tells the student what it means).

    Checked when the engine is imported, so the engine cannot raise a fault the student is not told about.
    """
    if name not in GRADING_FAULTS:
        raise LookupError(f"{name!r} is not in graders/checks/failures.py GRADING_FAULTS")
    return name


#: The grading faults the engine raises (as a RemoteError's type_name).
TIMEOUT = _fault("Timeout")
KERNEL_DIED = _fault("KernelDied")
OUTPUT_TOO_LARGE = _fault("OutputTooLarge")
NO_ANSWER = _fault("NoAnswer")
PROTOCOL_ERROR = _fault("ProtocolError")


def _encode_request(value):
    if isinstance(value, Handle):
        return {"__nnfs_handle__": value.key}
    if isinstance(value, (list, tuple)):
        return type(value)(_encode_request(v) for v in value)
    if isinstance(value, dict):
        return {k: _encode_request(v) for k, v in value.items()}
    return value


class _Decoder:
    def __init__(self, session, number: int, n_arrays: int):
        self.session, self.rpc_dir, self.number, self.n_arrays = session, session.rpc_dir, number, n_arrays
        self.nodes = 0
        self.bytes = 0
        self.arrays: dict[int, np.ndarray] = {}

    def array(self, index: int) -> np.ndarray:
        if not isinstance(index, int) or not 0 <= index < self.n_arrays:
            raise RemoteError(PROTOCOL_ERROR, "bad array reference in the kernel's answer")
        if index not in self.arrays:
            path = os.path.join(self.rpc_dir, f"resp-{self.number}-{index}.npy")
            self.bytes += os.path.getsize(path)
            if self.bytes > MAX_RESPONSE_BYTES:
                raise RemoteError(OUTPUT_TOO_LARGE, "the function returned more than 256 MiB")
            self.arrays[index] = np.load(path, allow_pickle=False)
        return self.arrays[index].copy()

    def value(self, node):
        self.nodes += 1
        if self.nodes > MAX_NODES or not isinstance(node, dict) or len(node) not in (1, 2, 3):
            raise RemoteError(PROTOCOL_ERROR, "the kernel's answer is malformed")
        (tag, body), *_ = node.items()
        if tag == "v" and (body is None or type(body) in (bool, int, float, str)):
            return body
        if tag == "f" and body in ("nan", "inf", "-inf"):
            return float(body)
        if tag == "a":
            return self.array(body)
        if tag in ("l", "t") and isinstance(body, list):
            items = [self.value(x) for x in body]
            return items if tag == "l" else tuple(items)
        if tag == "d" and isinstance(body, dict):
            return {str(k): self.value(v) for k, v in body.items()}
        if tag == "h" and isinstance(body, int):
            handle = Handle(body, str(node.get("type", "object"))[:80])
            # a function the student's code returned (e.g. `predict`) is called in the kernel too
            return RemoteFunction(self.session, handle) if node.get("callable") is True else handle
        raise RemoteError(PROTOCOL_ERROR, "the kernel's answer is malformed")


class RemoteFunction:
    """A student function in the kernel; `invoke` calls it there and returns an Outcome."""

    def __init__(self, session, name):
        self.session, self.name = session, name  # a name in the notebook, or a Handle to a returned function
        self.argnames: list | None = None
        self.typename = "function"

    def __call__(self, *args, **kwargs):
        outcome = self.invoke(args, kwargs)
        return outcome.value

    def invoke(self, args, kwargs) -> Outcome:
        number = self.session.next_request()
        rpc_dir = self.session.rpc_dir
        path = os.path.join(rpc_dir, f"req-{number}.pkl")
        with open(path, "wb") as handle:
            cloudpickle.dump((_encode_request(self.name), _encode_request(list(args)), _encode_request(dict(kwargs))),
                             handle)
        os.chmod(path, 0o644)
        self.session.call_stub(number)  # raises RemoteError on a timeout or a dead kernel
        response_path = os.path.join(rpc_dir, f"resp-{number}.json")
        try:
            if os.path.getsize(response_path) > MAX_RESPONSE_BYTES:
                raise RemoteError(OUTPUT_TOO_LARGE, "the kernel's answer is larger than 256 MiB")
            with open(response_path, encoding="utf-8") as handle:
                response = json.load(handle)
        except (OSError, ValueError) as exc:
            raise RemoteError(NO_ANSWER, f"the kernel did not answer ({type(exc).__name__})") from exc
        if not isinstance(response, dict):
            raise RemoteError(PROTOCOL_ERROR, "the kernel's answer is malformed")
        decoder = _Decoder(self.session, number, int(response.get("arrays", 0) or 0))
        argnames = response.get("argnames")
        self.argnames = [str(a) for a in argnames] if isinstance(argnames, list) else None
        if not response.get("ok"):
            error = response.get("error") or {}
            raise RemoteError(str(error.get("type", "Error"))[:80], str(error.get("message", ""))[:2000],
                              str(error["where"])[:300] if error.get("where") else None,
                              [str(m) for m in error.get("mro", [])][:20])
        warned = response.get("warnings") or []
        return Outcome(
            value=decoder.value(response.get("value")),
            warnings=[str(w.get("message", ""))[:500] for w in warned if isinstance(w, dict)][:5],
            args_after=decoder.value(response.get("args_after")),
            kwargs_after=decoder.value(response.get("kwargs_after")),
            argnames=self.argnames,
        )


class RemoteNamespace(dict):
    """Looks like a namespace of functions; every name is a RemoteFunction (missing ones fail when called)."""

    def __init__(self, session):
        super().__init__()
        self.session = session

    def get(self, name, default=None):
        return RemoteFunction(self.session, name)

    def __getitem__(self, name):
        return self.get(name)

    def __contains__(self, name):
        return True
