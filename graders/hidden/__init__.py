"""The instructor's side of the checks: hidden checks, and the generators of named mistakes.

Nothing here reaches a student. Importing this package registers every assignment's hidden checks and lets
checks ask the reference itself (`LiveExpected`), instead of the data recorded from it for students.

A generator computes something a check compares with but a student must not have the code of: the outputs
of named mistakes (several of which are a correct solution with one option changed), or a numerical gradient
of the reference. Register one with `@generates(name)`; a check asks for it with `t.data(name, *args)`.
"""
from __future__ import annotations

import importlib
import pkgutil
from typing import Callable

import numpy as np

from ..checks import expected
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


class LiveExpected:
    """Answers a check's questions by running the reference of an assignment (and the generators).

    assignment: e.g. "01_neuron". references: name -> function to use instead of the source notebook's.
    """

    def __init__(self, assignment: str, references: dict | None = None):
        self.assignment = assignment
        self._references = references

    @property
    def references(self) -> dict:
        if self._references is None:
            self._references = reference(self.assignment)
        return self._references

    def function(self, name: str) -> Callable:
        return self.references[name]

    def call(self, kind: str, name: str, args, kwargs):
        if kind == "ref":
            return self.references[name](*args, **kwargs)
        if kind == "data":
            return GENERATORS[name](self, *args, **kwargs)
        if kind == "part":  # one entry of a reference result: args is (index path, the function's args)
            path, fn_args = args
            value = self.references[name](*fn_args, **kwargs)
            for key in path:
                value = value[key]
            return value
        raise ValueError(f"unknown kind of question {kind!r}")


@generates("numerical_gradient")
def layer_numerical_gradient(source, forward: str, args: list, kwargs: dict, where, douts: list) -> np.ndarray:
    """Centered differences of sum_i(sum(reference forward(*args, **kwargs)[i] * douts[i])) with respect to the
    input at `where` (an index into args, or (index, key) for an entry of a dict argument); shaped like it."""
    fn = source.function(forward)

    def loss(value):
        outputs = fn(*gradients.with_input(args, where, value), **kwargs)
        return float(sum(np.sum(np.asarray(outputs[i]) * dout) for i, dout in enumerate(douts)))

    return gradients.numerical_gradient(loss, np.asarray(gradients.input_at(args, where), dtype=np.float64))


for _info in pkgutil.iter_modules(__path__):
    importlib.import_module(f"{__name__}.{_info.name}")

expected.install_live(LiveExpected)
