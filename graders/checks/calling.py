"""Calling a student's function, here or wherever it lives.

In a notebook the function is a plain Python function in the caller's namespace. When a class is graded it
lives in a sandboxed kernel, and the engine hands the checks stand-ins that have an `invoke(args, kwargs)`
method returning an `Outcome`; they raise `StudentError` for what the student's code raised there. This
module defines those types, so that the engine depends on the check library and never the reverse.
"""
from __future__ import annotations

import inspect
import io
import traceback
import warnings
from contextlib import redirect_stderr
from dataclasses import dataclass

import numpy as np


class StudentError(Exception):
    """The student's function raised somewhere else (a grading kernel), or that kernel could not answer.

    type_name: the exception's class name, or a grading fault (failures.GRADING_FAULTS).
    message: str(exception). where: the student's line that raised, if known. mro: class names, most derived first.
    """

    def __init__(self, type_name: str, message: str, where: str | None = None, mro: list | None = None):
        super().__init__(f"{type_name}: {message}")
        self.type_name, self.message, self.where, self.mro = type_name, message, where, mro or [type_name]


@dataclass(frozen=True)
class Handle:
    """An object the student's function returned that is not plain data; it stays where the function ran."""
    key: int
    typename: str


@dataclass
class Outcome:
    """What one call of a student function gave.

    value: the return value. warnings: messages of the NumPy RuntimeWarnings it raised.
    args_after, kwargs_after: the arguments as they were after the call (to catch in-place changes).
    argnames: the parameter names the arguments bound to, or None.
    """
    value: object
    warnings: list
    args_after: list
    kwargs_after: dict
    argnames: list | None


@dataclass(frozen=True)
class CallBudget:
    """What a call's time limit is made from, where the function lives in a grading kernel (a notebook's own
    call has no limit).

    reference_seconds: the reference's own time on the same inputs, or None if unknown.
    stated_seconds: the time budget the exercise states (training functions), or None.
    """
    reference_seconds: float | None = None
    stated_seconds: float | None = None


def invoke(fn, args, kwargs, budget: CallBudget | None = None) -> Outcome:
    """Call a student function: through its stand-in's `invoke` when it lives elsewhere (with `budget`, which
    sets its time limit there), else here, recording NumPy's RuntimeWarnings and keeping stderr quiet."""
    if hasattr(fn, "invoke") and not inspect.isfunction(fn):
        if budget is None or "budget" not in inspect.signature(fn.invoke).parameters:  # a stand-in without limits
            return fn.invoke(args, kwargs)
        return fn.invoke(args, kwargs, budget=budget)
    with warnings.catch_warnings(record=True) as caught, redirect_stderr(io.StringIO()), \
            np.errstate(over="warn", divide="warn", invalid="warn", under="ignore"):
        warnings.simplefilter("always")
        value = fn(*args, **kwargs)
    return Outcome(value, [str(w.message) for w in caught if issubclass(w.category, RuntimeWarning)],
                   list(args), dict(kwargs), None)


def input_shapes(args, kwargs) -> str:
    """The shapes of a call's inputs for a message, e.g. "(64, 10), (10,), 3", nested containers in brackets."""
    def one(value, depth=0):
        if isinstance(value, np.ndarray):
            return str(value.shape)
        if isinstance(value, (list, tuple)) and depth < 2:
            return "[" + ", ".join(one(v, depth + 1) for v in value[:6]) + (", ..." if len(value) > 6 else "") + "]"
        if isinstance(value, dict) and depth < 2:
            return "{" + ", ".join(f"{k}: {one(v, depth + 1)}" for k, v in list(value.items())[:6]) + "}"
        if isinstance(value, (bool, int, float, str, np.number)) and len(repr(value)) <= 20:
            return repr(value)
        return getattr(value, "typename", type(value).__name__)
    return ", ".join([one(v) for v in args] + [f"{k}={one(v)}" for k, v in kwargs.items()])


def argument_names(fn, args, kwargs) -> list[str]:
    """The parameter names `args` and `kwargs` bind to in `fn` (`argument 1`, ... when unknown)."""
    known = getattr(fn, "argnames", None)
    if isinstance(known, list) and len(known) == len(args) + len(kwargs):
        return list(known)
    try:
        signature = inspect.signature(fn)
        if not any(p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD) for p in signature.parameters.values()):
            return list(signature.bind(*args, **kwargs).arguments)
    except (TypeError, ValueError):
        pass
    return [f"argument {i + 1}" for i in range(len(args))] + list(kwargs)


def is_returned_function(fn) -> bool:
    """Whether a stand-in is a function the student's code returned (e.g. `predict`), not a notebook name."""
    return isinstance(getattr(fn, "name", None), Handle)


def same(a, b) -> bool:
    """Whether a value still equals its snapshot (arrays, numbers and containers of them)."""
    if isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
        return (isinstance(a, np.ndarray) and isinstance(b, np.ndarray) and a.shape == b.shape
                and a.dtype == b.dtype and np.array_equal(a, b, equal_nan=a.dtype.kind in "fc"))
    try:  # an object of the student's own may raise from __eq__: then it is not the same
        if isinstance(a, dict) and isinstance(b, dict):
            return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
        if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
            return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b))
        if isinstance(a, (int, float, complex, np.number, str, bool, type(None))):
            return bool(a == b or (a != a and b != b))
    except Exception:  # noqa: BLE001
        return False
    return True  # functions, generators, caches: not ours to compare


def student_frame(exc: BaseException) -> str | None:
    """The line of student code where an exception was raised (the last frame outside libraries)."""
    frames = [f for f in traceback.extract_tb(exc.__traceback__)
              if "site-packages" not in f.filename and "/graders/" not in f.filename
              and "/lib/python" not in f.filename]
    if not frames:
        return None
    last = frames[-1]
    code = (last.line or "").strip()
    return f"line {last.lineno} of `{last.name}`" + (f": {code}" if code else "")
