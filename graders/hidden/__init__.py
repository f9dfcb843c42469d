"""The instructor's side of the checks: hidden checks, and the generators of named mistakes.

Nothing here reaches a student. Importing this package registers every assignment's hidden checks and lets
checks ask the reference itself (`LiveExpected`), instead of the data recorded from it for students.

A generator computes something a check compares with but a student must not have the code of: the outputs
of named mistakes (several of which are a correct solution with one option changed), or a numerical gradient
of the reference. Register one with `@generates(name)`; a check asks for it with `t.data(name, *args)`.
"""
from __future__ import annotations

import copy
import functools
import importlib
import inspect
import json
import pkgutil
import time
from pathlib import Path
from typing import Callable

import numpy as np

from ..checks import expected
from ..checks.calling import CallBudget
from . import gradients
from ..tooling.reference import reference

GENERATORS: dict[str, Callable] = {}


def generates(name: str):
    """Register `func(source, *args, **kwargs)` as the generator `name` (unique across the course)."""
    def decorator(func):
        if name in GENERATORS and GENERATORS[name] is not func:
            raise ValueError(f"two generators are named {name!r}")
        GENERATORS[name] = func
        return func
    return decorator


#: The committed honest grading times, per assignment (written by `./course measure-time`).
TIMING_FILE = Path(__file__).with_name("timing.json")


def honest_time(assignment: str) -> dict | None:
    """How long grading the assignment's full solution took when it was measured, or None if it was not.

    Returns:
      {"notebook_seconds": float, "slowest_cell_seconds": float}, or None.
    """
    try:
        recorded = json.loads(TIMING_FILE.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    entry = recorded.get(assignment) if isinstance(recorded, dict) else None
    return entry if isinstance(entry, dict) and {"notebook_seconds", "slowest_cell_seconds"} <= entry.keys() else None


@functools.cache
def stated_budgets() -> dict[str, float]:
    """Training function -> the seconds its exercise states and its checks hold it to (read from the checks,
    so that there is one number)."""
    from ..visible import attention as visible_attention
    from . import attention, backprop, gating
    sequence_budget = inspect.signature(visible_attention._train_and_measure).parameters["budget"].default
    return {"train_mlp": backprop.TIME_BUDGET, "train_gated_memory": gating.TIME_LIMIT,
            "train_char_lm": attention.CHAR_LM_BUDGET, "train_sequence_model": sequence_budget}


_PLAIN = (str, bytes, bool, int, float, complex, np.number, np.bool_, type(None), np.random.Generator)


def _input_key(value, depth: int = 0):
    """What a call's time depends on, hashable: shapes and dtypes of arrays, values of scalars, recursively."""
    if isinstance(value, np.ndarray):
        return ("array", value.shape, value.dtype.str)
    if isinstance(value, (list, tuple)) and depth < 4:
        return (type(value).__name__, tuple(_input_key(v, depth + 1) for v in value))
    if isinstance(value, dict) and depth < 4:
        return ("dict", tuple((str(k), _input_key(v, depth + 1)) for k, v in value.items()))
    if isinstance(value, (str, bool, int, float, np.number)) and len(repr(value)) <= 40:
        return repr(value)
    return type(value).__name__


def _is_plain(value, depth: int = 0) -> bool:
    """Whether a reference may run on a copy of `value`: data only (no stand-in of the student's objects)."""
    if isinstance(value, (np.ndarray, *_PLAIN)):
        return not isinstance(value, np.ndarray) or value.dtype.kind in "biufc"
    if isinstance(value, (list, tuple)) and depth < 4:
        return all(_is_plain(v, depth + 1) for v in value)
    if isinstance(value, dict) and depth < 4:
        return all(_is_plain(v, depth + 1) for v in value.values())
    return False


class LiveExpected:
    """Answers a check's questions by running the reference of an assignment (and the generators), and knows
    how long the reference takes on the inputs it ran on (`budget_for`).

    assignment: e.g. "01_neuron". references: name -> function to use instead of the source notebook's.
    """

    def __init__(self, assignment: str, references: dict | None = None):
        self.assignment = assignment
        self._references = references
        self._seconds: dict = {}  # (name, input key) -> the longest the reference took on such inputs

    @property
    def references(self) -> dict:
        if self._references is None:
            self._references = reference(self.assignment)
        return self._references

    def _timed(self, name: str, args, kwargs):
        started = time.perf_counter()
        value = self.references[name](*args, **kwargs)
        key = (name, _input_key(tuple(args)), _input_key(dict(kwargs)))
        self._seconds[key] = max(self._seconds.get(key, 0.0), time.perf_counter() - started)
        return value

    def function(self, name: str) -> Callable:
        fn = self.references[name]

        @functools.wraps(fn)  # keeps the signature, which checks read
        def timed(*args, **kwargs):
            return self._timed(name, args, kwargs)
        return timed

    def call(self, kind: str, name: str, args, kwargs):
        if kind == "ref":
            return self._timed(name, args, kwargs)
        if kind == "data":
            return GENERATORS[name](self, *args, **kwargs)
        if kind == "part":  # one entry of a reference result: args is (index path, the function's args)
            path, fn_args = args
            value = self._timed(name, fn_args, kwargs)
            for key in path:
                value = value[key]
            return value
        raise ValueError(f"unknown kind of question {kind!r}")

    def budget_for(self, name: str, args, kwargs) -> CallBudget:
        """What the time limit of the student's `name` on these inputs is made from: the budget its exercise
        states (training functions), else the reference's own time on inputs of the same shapes, timed now on
        copies if it has not run on such inputs yet (unknown when it cannot run on them, e.g. the student's
        cache)."""
        if name in stated_budgets():
            return CallBudget(stated_seconds=float(stated_budgets()[name]))
        key = (name, _input_key(tuple(args)), _input_key(dict(kwargs)))
        if key not in self._seconds and name in self.references and _is_plain((args, kwargs)):
            try:
                self._timed(name, copy.deepcopy(tuple(args)), copy.deepcopy(dict(kwargs)))
            except Exception:  # noqa: BLE001 - inputs the reference refuses (a check of errors): time unknown
                pass
        return CallBudget(reference_seconds=self._seconds.get(key))


@generates("numerical_gradient")
def layer_numerical_gradient(source, forward: str, args: list, kwargs: dict, where, douts: list) -> np.ndarray:
    """Centered differences of sum_i(sum(reference forward(*args, **kwargs)[i] * douts[i])) with respect to the
    input at `where` (an index into args, or (index, key) for an entry of a dict argument); shaped like it."""
    # Not the timed reference: every evaluation has the shapes of the check's own call of `forward`, whose time
    # is known already (budget_for times a new shape on demand), and timing thousands of them is most of the cost.
    fn = source.references[forward] if isinstance(source, LiveExpected) else source.function(forward)
    arguments = gradients.with_input(args, where)

    def loss(value):
        outputs = fn(*arguments(value), **kwargs)
        return float(sum(np.sum(np.asarray(outputs[i]) * dout) for i, dout in enumerate(douts)))

    return gradients.numerical_gradient(loss, np.asarray(gradients.input_at(args, where), dtype=np.float64))


for _info in pkgutil.iter_modules(__path__):
    importlib.import_module(f"{__name__}.{_info.name}")

expected.install_live(LiveExpected)
