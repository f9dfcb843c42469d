"""Catalogs of realistic implementations, one module per assignment, each defining:

  ASSIGNMENT: the assignment id, e.g. "01_neuron"
  WRONG:      list of Wrong: a mistake students make, which must lose points with a message naming it
  CORRECT:    list of Right: another valid way to write some functions, which must earn full marks

The code of an entry is exec'd on top of the reference namespace, so it only needs to define the functions
it replaces (and may call any other contract function, which then resolves to the reference).
"""
from __future__ import annotations

import importlib
import pkgutil
from dataclasses import dataclass


@dataclass(frozen=True)
class Wrong:
    exercise: str      # the exercise whose checks must catch it
    mistake: str       # what the student did, in a few words (the test id)
    code: str          # the wrong implementation
    expect: str        # regex that the failure message must match: it names the mistake


@dataclass(frozen=True)
class Right:
    name: str          # what makes this implementation different
    code: str          # one or more correct functions


def catalogs() -> list:
    """All catalog modules, in course order."""
    modules = [importlib.import_module(f"{__name__}.{info.name}") for info in pkgutil.iter_modules(__path__)]
    return sorted(modules, key=lambda m: m.ASSIGNMENT)
