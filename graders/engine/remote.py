"""The grader's side of calling student functions that live in a sandboxed kernel.

`RemoteNamespace(session)` stands in for the notebook's globals when a worker runs a test cell's checks:
`t.call("sigmoid", z)` sends `z` to the kernel, the kernel stub (`in_kernel/stub.py`) calls the student's
`sigmoid`, and the result comes back as plain numbers and arrays, read without unpickling anything (the
transport and its size checks are in channel.py). Objects that are not plain data (a cache, say) stay in the
kernel and come back as a `Handle` to pass on, until the kernel runs its next cell.

Whatever the kernel sends, decoding it ends in plain values (None, bool, int, float, str, float/int/complex
arrays, lists, tuples, dicts with str keys, Handles, RemoteFunctions) or in a RemoteError with a grading
fault: never in another exception. Every cap is counted on what is built, not on what was sent: an array that
the answer refers to twice counts twice.
"""
from __future__ import annotations

import cloudpickle
import numpy as np

from ..checks.calling import CallBudget, Handle, Outcome, StudentError, input_shapes
from ..checks.failures import GRADING_FAULTS

#: The most nodes (values, list items, dict entries) an answer may hold, and its deepest nesting.
MAX_NODES = 100_000
MAX_DEPTH = 32
#: The most decimal digits an integer of an answer may have: a float64 holds at most 309.
MAX_INT_DIGITS = 330

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


def int_too_large(digits: int) -> RemoteError:
    """The fault for an integer that no float64 holds (so no check can compare it), e.g. 10**400."""
    return RemoteError(OUTPUT_TOO_LARGE, f"it returned an integer of about {digits} digits, beyond what a float64 "
                                         "holds (about 1.8e308), so it cannot be compared with anything")


def _malformed(what: str = "malformed") -> RemoteError:
    return RemoteError(PROTOCOL_ERROR, f"the kernel's answer is {what}")


def _encode_request(value):
    if isinstance(value, RemoteFunction) and isinstance(value.name, Handle):
        value = value.name  # a function an earlier call returned, passed back (e.g. inside a cache)
    if isinstance(value, Handle):
        return {"__nnfs_handle__": value.key}
    if isinstance(value, (list, tuple)):
        return type(value)(_encode_request(v) for v in value)
    if isinstance(value, dict):
        return {k: _encode_request(v) for k, v in value.items()}
    return value


def request_payload(name, args, kwargs, max_answer_bytes: int) -> bytes:
    """The request the stub reads: a pickle (the grader -> kernel direction is trusted) of
    (name, args, kwargs, caps), with Handles replaced by {"__nnfs_handle__": key}; caps are the answer's limits
    and the fault name the stub reports when its answer would exceed them.

    Inputs:
      name: str, a name in the notebook, or a Handle to a function an earlier call returned.
      args: list, kwargs: dict, the call's arguments.
      max_answer_bytes: int, the largest encoded answer the grader reads (the stub refuses larger ones itself).
    Returns:
      payload: bytes.
    """
    caps = {"max_answer_bytes": int(max_answer_bytes), "max_nodes": MAX_NODES, "max_depth": MAX_DEPTH,
            "too_large": OUTPUT_TOO_LARGE}
    return cloudpickle.dumps((_encode_request(name), _encode_request(list(args)), _encode_request(dict(kwargs)), caps))


class _Decoder:
    """Builds the values of one answer, counting nodes, depth and the bytes of every array reference."""

    def __init__(self, session, answer, max_bytes: int):
        self.session, self.answer, self.max_bytes = session, answer, max_bytes
        self.nodes = 0
        self.bytes = 0

    def array(self, index) -> np.ndarray:
        view = self.answer.array(index)
        self.bytes += view.nbytes  # each reference is a copy of its own, so each counts
        if self.bytes > self.max_bytes:
            raise RemoteError(OUTPUT_TOO_LARGE, f"the function's answer decodes to more than "
                                                f"{self.max_bytes / 2**20:g} MiB")
        return view.copy()

    def value(self, node, depth: int = 0):
        self.nodes += 1
        if self.nodes > MAX_NODES:
            raise RemoteError(OUTPUT_TOO_LARGE, f"the function returned more than {MAX_NODES} values")
        if depth > MAX_DEPTH:
            raise _malformed(f"nested deeper than {MAX_DEPTH} levels")
        if type(node) is not dict or len(node) not in (1, 3):
            raise _malformed()
        (tag, body), *_ = node.items()
        if tag == "v" and (body is None or type(body) in (bool, int, float, str)):
            return body
        if tag == "f" and body in ("nan", "inf", "-inf"):
            return float(body)
        if tag == "big" and type(body) is int:
            raise int_too_large(body)
        if tag == "a":
            return self.array(body)
        if tag in ("l", "t") and type(body) is list:
            items = [self.value(x, depth + 1) for x in body]
            return items if tag == "l" else tuple(items)
        if tag == "d" and type(body) is dict:
            return {k: self.value(v, depth + 1) for k, v in body.items()}
        if tag == "h" and type(body) is int and type(node.get("type")) is str:
            handle = Handle(body, node["type"][:80])
            # a function the student's code returned (e.g. `predict`) is called in the kernel too
            return RemoteFunction(self.session, handle) if node.get("callable") is True else handle
        raise _malformed()

    def changed(self, originals, nodes, keys):
        """The arguments after the call: the originals, with those the stub reports changed decoded."""
        if type(nodes) is not dict:
            raise _malformed()
        after = originals.copy()
        for key, node in nodes.items():
            slot = keys(key)
            if slot is None:
                raise _malformed()
            after[slot] = self.value(node)
        return after


def _text(value, limit: int) -> str:
    return value[:limit] if type(value) is str else ""


def _argnames(tree: dict, count: int) -> list | None:
    """The parameter names the call's arguments bound to, as the stub reports them (for messages only)."""
    names = tree.get("argnames")
    return [_text(a, 200) for a in names[:count]] if type(names) is list else None


def _raised(tree: dict) -> RemoteError:
    """What the student's function raised (or the stub's own fault), as the stub reports it."""
    error = tree.get("error") if type(tree.get("error")) is dict else {}
    mro = error.get("mro") if type(error.get("mro")) is list else []
    return RemoteError(_text(error.get("type"), 80) or "Error", _text(error.get("message"), 2000),
                       _text(error.get("where"), 300) or None, [_text(m, 80) for m in mro[:20]])


def _outcome(session, answer, args: list, kwargs: dict, argnames, max_bytes: int) -> Outcome:
    """The Outcome of one successful call from the stub's answer (arguments it does not report as changed
    by the call are the grader's own)."""
    tree = answer.tree
    decoder = _Decoder(session, answer, max_bytes)
    value = decoder.value(tree.get("value"))
    positions = {str(i): i for i in range(len(args))}
    args_after = decoder.changed(args, tree.get("args_after", {}), positions.get)
    kwargs_after = decoder.changed(kwargs, tree.get("kwargs_after", {}), lambda key: key if key in kwargs else None)
    warned = tree.get("warnings") if type(tree.get("warnings")) is list else []
    warnings = [_text(w.get("message"), 500) for w in warned[:5] if type(w) is dict]
    return Outcome(value=value, warnings=warnings, args_after=args_after, kwargs_after=kwargs_after,
                   argnames=argnames)


def overrun_explanation(budget: CallBudget | None, args, kwargs) -> str:
    """What a Timeout's message says after "it did not return within N s": the inputs, and how long the
    reference or the exercise's budget says the call should take.

    Inputs:
      budget: the call's CallBudget (None: unknown). args, kwargs: the call's arguments.
    Returns:
      str, starting with " on inputs ...".
    """
    shapes = input_shapes(args, kwargs)
    text = f" on inputs of shape {shapes}" if shapes else ""
    if budget is not None and budget.stated_seconds is not None:
        return text + (f"; the exercise's budget is {budget.stated_seconds:g} s: an infinite loop, or far more "
                       "epochs or steps than needed?")
    if budget is not None and budget.reference_seconds is not None:
        ms = budget.reference_seconds * 1000
        return text + (f"; the reference takes {ms:.2g} ms on them: an infinite loop (a `while` whose condition "
                       "never turns False)? a Python loop over every element instead of one NumPy operation?")
    return text + ": an infinite loop (a `while` whose condition never turns False)?"


class RemoteFunction:
    """A student function in the kernel; `invoke` calls it there and returns an Outcome.

    stuck: a dict shared by the test cells of one exercise, name -> the message of that name's call that
    overran its time; a later call of the name in the same exercise fails at once with it (its cell has
    failed already, so this costs no points, only the seconds of calling it again).
    """

    def __init__(self, session, name, stuck: dict | None = None):
        self.session, self.name = session, name  # a name in the notebook, or a Handle to a returned function
        self.stuck = {} if stuck is None else stuck
        self.argnames: list | None = None
        self.typename = "function"

    def __call__(self, *args, **kwargs):
        outcome = self.invoke(args, kwargs)
        return outcome.value

    def invoke(self, args, kwargs, budget: CallBudget | None = None) -> Outcome:
        """Call the function in the kernel.

        Inputs:
          args: sequence, kwargs: dict, the arguments (the grader's own values; they are not changed).
          budget: what the call's time limit is made from (GradingLimits.call_seconds); None: cell_seconds.
        Returns:
          an Outcome; args_after/kwargs_after are the grader's own arguments except those the kernel reports
          changed by the call.
        Raises:
          RemoteError: what the function raised, or a grading fault (a timeout, a dead kernel, an answer over a
          cap or unreadable).
        """
        limits = self.session.limits
        memo = self.name if isinstance(self.name, str) else None
        if memo in self.stuck:
            raise RemoteError(TIMEOUT, f"{self.stuck[memo]}; it was not called again in this exercise")
        seconds = None if budget is None else limits.call_seconds(budget.reference_seconds, budget.stated_seconds)
        payload = request_payload(self.name, args, kwargs, limits.max_answer_bytes)
        try:
            answer = self.session.call_stub(payload, seconds, overrun_explanation(budget, args, kwargs))
        except RemoteError as exc:
            if exc.type_name == TIMEOUT and memo is not None:
                self.stuck[memo] = exc.message
            raise
        max_bytes = limits.max_answer_bytes
        if type(answer.tree) is not dict:
            raise _malformed()
        self.argnames = _argnames(answer.tree, len(args) + len(kwargs))
        if answer.tree.get("ok") is not True:
            raise _raised(answer.tree)
        return _outcome(self.session, answer, list(args), dict(kwargs), self.argnames, max_bytes)


class RemoteNamespace(dict):
    """Looks like a namespace of functions; every name is a RemoteFunction (missing ones fail when called)."""

    def __init__(self, session, stuck: dict | None = None):
        super().__init__()
        self.session = session
        self.stuck = {} if stuck is None else stuck  # see RemoteFunction

    def get(self, name, default=None):
        return RemoteFunction(self.session, name, self.stuck)

    def __getitem__(self, name):
        return self.get(name)

    def __contains__(self, name):
        return True
