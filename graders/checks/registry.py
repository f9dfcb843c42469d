"""Which checks each exercise has, at each level.

Visible checks live in graders.visible (shipped to students); hidden checks live in graders.hidden, which only
the instructor's side has. A suite module registers its checks with the decorators `checks_for` returns:

    visible, hidden = checks_for("01_neuron")

    @visible("sigmoid")
    def small_values_and_shape(t):
        t.agrees("sigmoid", np.array([-2.0, 0.0, 2.0]))
"""
from __future__ import annotations

import importlib
import inspect
import pkgutil
from dataclasses import dataclass
from typing import Callable

LEVELS = ("visible", "hidden")
#: The package of hidden checks, imported by name only when hidden checks are asked for.
HIDDEN_PACKAGE = "graders.hidden"


@dataclass(frozen=True)
class Check:
    assignment: str
    exercise: str
    level: str
    func: Callable

    @property
    def description(self) -> str:
        doc = inspect.getdoc(self.func)
        return doc.splitlines()[0] if doc else self.func.__name__.replace("_", " ")


_REGISTRY: dict[str, dict[str, list[Check]]] = {}
_loaded: set[str] = set()


def checks_for(assignment: str):
    """Decorators `visible(exercise)` and `hidden(exercise)` that register checks of one assignment."""
    def register(level):
        def for_exercise(exercise):
            def decorator(func):
                levels = _REGISTRY.setdefault(exercise, {lvl: [] for lvl in LEVELS})
                levels[level].append(Check(assignment, exercise, level, func))
                return func
            return decorator
        return for_exercise
    return register("visible"), register("hidden")


class HiddenChecksUnavailable(ImportError):
    """The hidden checks are not installed here (the student's package has only the visible ones)."""


def _load(level: str) -> None:
    if "visible" not in _loaded:
        from .. import visible
        for info in pkgutil.iter_modules(visible.__path__):
            importlib.import_module(f"{visible.__name__}.{info.name}")
        _loaded.add("visible")
    if level == "hidden" and "hidden" not in _loaded:
        try:
            importlib.import_module(HIDDEN_PACKAGE)
        except ModuleNotFoundError as exc:
            if exc.name and HIDDEN_PACKAGE.startswith(exc.name):
                raise HiddenChecksUnavailable(
                    "the hidden checks are not part of the student's package: they run when your notebook is "
                    "graded (or with `./course selfcheck` in a full clone of the course).") from exc
            raise
        _loaded.add("hidden")


def hidden_side_available() -> bool:
    """Whether the instructor's side (hidden checks, the reference) is installed here; loads it if so."""
    try:
        _load("hidden")
    except HiddenChecksUnavailable:
        return False
    return True


def checks(exercise: str, level: str) -> list[Check]:
    """The checks of one exercise at one level ("visible" or "hidden"), in registration order."""
    _load(level)
    if exercise not in _REGISTRY:
        raise KeyError(f"no checks are registered for exercise {exercise!r}")
    return _REGISTRY[exercise][level]


def exercises(assignment: str | None = None) -> list[str]:
    """Every exercise that has visible checks (of one assignment, if given), in course order."""
    _load("visible")
    return [exercise for exercise, levels in _REGISTRY.items()
            if levels["visible"] and (assignment is None or levels["visible"][0].assignment == assignment)]


def assignment_of(exercise: str) -> str:
    """The assignment an exercise belongs to, e.g. "01_neuron" for "sigmoid"."""
    _load("visible")
    levels = _REGISTRY.get(exercise)
    if not levels or not levels["visible"]:
        raise KeyError(f"no checks are registered for exercise {exercise!r}")
    return levels["visible"][0].assignment
