"""The checks behind every test cell.

A test cell says `check("sigmoid")` (visible checks) or `check("sigmoid", hidden=True)` (hidden checks).
The checks of an exercise live in `graders/suites/<assignment>.py` as small functions of a `Tester`:

    visible, hidden = checks_for("01_neuron")

    @hidden("sigmoid")
    def no_overflow_at_extremes(t):
        z = np.array([-1e4, -800.0, 0.0, 800.0, 1e4])
        t.close(t.call("sigmoid", z), t.ref("sigmoid")(z), "sigmoid(z)")

A check touches student code only through `t.call` and reads the results only through `t.array` /
`t.number` (which `t.close` uses), which copy them into plain float arrays. So a check never trusts an object
the student made, and the same check code can run where the student's code cannot reach it.
"""
from __future__ import annotations

import copy
import importlib
import inspect
import io
import os
import pkgutil
import sys
import textwrap
import traceback
import warnings
import zlib
from contextlib import redirect_stderr
from dataclasses import dataclass, field
from html import escape
from typing import Callable

import numpy as np

from . import diagnose, gradcheck
from .reference import reference
from .remote import Handle, Outcome, RemoteError, RemoteFunction

LEVELS = ("visible", "hidden")


class CheckFailed(AssertionError):
    """Raised by a test cell when a check fails; nbgrader then gives the cell no points."""


class Failure(Exception):
    """One check failed. The fields become the message a student reads."""

    def __init__(self, summary: str, *, expected: str | None = None, got: str | None = None,
                 cause: str | None = None, hint: str | None = None, inputs: str | None = None,
                 raised_at: str | None = None):
        super().__init__(summary)
        self.summary, self.expected, self.got = summary, expected, got
        self.cause, self.hint, self.inputs, self.raised_at = cause, hint, inputs, raised_at

    def details(self) -> list[tuple[str, str]]:
        """(label, text) pairs in reading order, the empty ones left out."""
        return [(label, str(value)) for label, value in (
            ("inputs", self.inputs), ("raised at", self.raised_at), ("expected", self.expected), ("got", self.got),
            ("likely cause", self.cause), ("where to look", self.hint)) if value]

    def text(self) -> str:
        return failure_text(self.summary, self.details())


def failure_text(summary: str, details) -> str:
    """A failure as plain text: the summary, then one aligned `label: text` line per detail."""
    lines = [summary]
    for label, value in details:
        lines.append(f"{label + ':':15s}" + value.replace("\n", "\n" + " " * 15))
    return "\n".join(lines)


class NotWritten(Failure):
    """The student's function still raises NotImplementedError."""


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


def _load_suites() -> None:
    from . import suites
    for info in pkgutil.iter_modules(suites.__path__):
        importlib.import_module(f"{suites.__name__}.{info.name}")


def checks(exercise: str, level: str) -> list[Check]:
    if not _REGISTRY:
        _load_suites()
    if exercise not in _REGISTRY:
        raise KeyError(f"no checks are registered for exercise {exercise!r}")
    return _REGISTRY[exercise][level]


def exercises() -> list[str]:
    if not _REGISTRY:
        _load_suites()
    return list(_REGISTRY)


# ----------------------------------------------------------------------------------------------------------
# Calling student code

def _same(a, b) -> bool:
    """Whether a value still equals its snapshot (arrays, numbers and containers of them)."""
    if isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
        return (isinstance(a, np.ndarray) and isinstance(b, np.ndarray) and a.shape == b.shape
                and a.dtype == b.dtype and np.array_equal(a, b, equal_nan=a.dtype.kind in "fc"))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    if isinstance(a, (int, float, complex, np.number, str, bool, type(None))):
        return a == b or (a != a and b != b)
    return True  # functions, generators, caches: not ours to compare


#: Faults of a grading kernel (not exceptions of the student's code), with what they usually mean.
GRADING_FAULTS = {
    "Timeout": "an infinite loop, or far more work than the exercise needs.",
    "KernelDied": "the kernel died: os._exit, a crash, or the memory cap (an allocation that never stops).",
    "OutputTooLarge": "the function returned far more data than the exercise asks for.",
    "NoAnswer": "the kernel did not answer the grader.",
    "ProtocolError": "the kernel's answer could not be read.",
}


def _invoke(fn, args, kwargs) -> Outcome:
    """Call a student function: over RPC when grading, else here, recording NumPy's RuntimeWarnings."""
    if isinstance(fn, RemoteFunction):
        return fn.invoke(args, kwargs)
    with warnings.catch_warnings(record=True) as caught, redirect_stderr(io.StringIO()), \
            np.errstate(over="warn", divide="warn", invalid="warn", under="ignore"):
        warnings.simplefilter("always")
        value = fn(*args, **kwargs)
    return Outcome(value, [str(w.message) for w in caught if issubclass(w.category, RuntimeWarning)],
                   list(args), dict(kwargs), None)


def _argument_names(fn, args, kwargs) -> list[str]:
    if isinstance(fn, RemoteFunction) and fn.argnames and len(fn.argnames) == len(args) + len(kwargs):
        return list(fn.argnames)
    try:
        bound = inspect.signature(fn).bind(*args, **kwargs)
        return list(bound.arguments)
    except (TypeError, ValueError):
        return [f"argument {i + 1}" for i in range(len(args))] + list(kwargs)


def _student_frame(exc: BaseException) -> str | None:
    """The line of student code where an exception was raised (the last frame outside libraries)."""
    frames = [f for f in traceback.extract_tb(exc.__traceback__)
              if "site-packages" not in f.filename and "/graders/" not in f.filename
              and "/lib/python" not in f.filename]
    if not frames:
        return None
    last = frames[-1]
    code = (last.line or "").strip()
    return f"line {last.lineno} of `{last.name}`" + (f": {code}" if code else "")


@dataclass
class Tester:
    """What a check function gets: the student's namespace, the reference, a seeded rng and assertions."""
    __test__ = False  # not a pytest test class
    assignment: str
    exercise: str
    namespace: dict
    rng: np.random.Generator
    allow_warnings: bool = False
    references: dict | None = None  # by default, the assignment's source notebook
    notes: list = field(default_factory=list)

    def note(self, text: str) -> None:
        """A line for the report under the check, pass or fail (e.g. the accuracy a training run reached)."""
        self.notes.append(str(text))

    # -- the two sides -------------------------------------------------------------------------------------
    def ref(self, name: str) -> Callable:
        """The reference implementation of a contract function (from the source notebook)."""
        return (self.references if self.references is not None else reference(self.assignment))[name]

    def student(self, name: str) -> Callable:
        fn = self.namespace.get(name)
        if fn is None:
            raise Failure(f"`{name}` is not defined.",
                          hint=f"run the cell that defines `{name}` (or Run All) before the checks, and keep the name exactly `{name}`.")
        if not callable(fn):
            raise Failure(f"`{name}` is a {type(fn).__name__}, not a function.",
                          hint=f"did a later cell assign to the name `{name}`?")
        return fn

    def call(self, name: str, *args, check_mutation: bool = True, **kwargs):
        """Call the student's function `name`; fail on an exception, a warning or a changed input."""
        __tracebackhide__ = True
        fn = self.student(name)
        snapshots = copy.deepcopy((args, kwargs)) if check_mutation else None
        try:
            outcome = _invoke(fn, args, kwargs)
        except Failure:
            raise
        except Exception as exc:  # the student's bug (or a dead kernel), reported as a failed check
            raise self._failure_for(name, fn, args, kwargs, exc) from exc
        if outcome.warnings and not self.allow_warnings:
            message = outcome.warnings[0]
            if "overflow" in message:
                cause = ("np.exp of a large number overflowed to inf (exp(710) is already too big for float64); "
                         "remember that np.where computes both branches.")
                hint = "use a numerically stable formula: shift by the max, np.logaddexp, or exp(-|z|)."
            else:
                cause = "a division by zero, 0/0, or log(0) happened on an input the contract allows."
                hint = "guard the special case (a zero norm, an empty mask, a probability of 0) before dividing or taking the log."
            raise Failure(f"`{name}` raised a NumPy warning on valid input: {message}",
                          inputs=self.describe_args(fn, args, kwargs), cause=cause, hint=hint)
        if check_mutation:
            names = _argument_names(fn, args, kwargs)
            values = list(outcome.args_after) + list(outcome.kwargs_after.values())
            old_values = list(snapshots[0]) + list(snapshots[1].values())
            for arg_name, value, old in zip(names, values, old_values):
                if not _same(value, old):
                    raise Failure(f"`{name}` changed its input `{arg_name}` in place.",
                                  cause="an in-place operation on an input: `x += ...`, `x[mask] = ...`, "
                                        "`np.maximum(x, 0, out=x)`, or a dict updated instead of copied.",
                                  hint=f"work on a new array (`{arg_name} = {arg_name} + ...`, `np.where`, "
                                       f"`.copy()`): the caller still needs the original `{arg_name}`.")
        return outcome.value

    def _failure_for(self, name: str, fn, args, kwargs, exc: Exception) -> Failure:
        """The Failure a student reads for an exception from their function (here or in a grading kernel)."""
        mro = exc.mro if isinstance(exc, RemoteError) else [c.__name__ for c in type(exc).__mro__]
        type_name = exc.type_name if isinstance(exc, RemoteError) else type(exc).__name__
        message = exc.message if isinstance(exc, RemoteError) else str(exc)
        where = exc.where if isinstance(exc, RemoteError) else _student_frame(exc)
        if "NotImplementedError" in mro:
            return NotWritten(f"`{name}` is not written yet: it raises NotImplementedError.",
                              hint="replace the `raise NotImplementedError()` line with your code, then run the cell.")
        if isinstance(exc, RemoteError) and type_name == "NameError" and message.endswith(" is not defined") \
                and not isinstance(fn.name, Handle):
            return Failure(f"`{name}` is not defined.",
                           hint=f"define `{name}` in its solution cell and keep the name exactly `{name}`.")
        if type_name in GRADING_FAULTS:
            return Failure(f"`{name}` could not finish: {message}", inputs=self.describe_args(fn, args, kwargs),
                           cause=GRADING_FAULTS[type_name])
        return Failure(f"`{name}` raised {type_name}: {message}", inputs=self.describe_args(fn, args, kwargs),
                       raised_at=where,
                       hint="run the function by hand on these inputs and print the shape of each intermediate.")

    @staticmethod
    def describe_args(fn, args, kwargs) -> str:
        parts = []
        for arg_name, value in zip(_argument_names(fn, args, kwargs), list(args) + list(kwargs.values())):
            if isinstance(value, np.ndarray):
                extent = f", values in [{value.min():.3g}, {value.max():.3g}]" if value.size and value.dtype.kind in "biuf" else ""
                parts.append(f"{arg_name}: array of shape {value.shape}{extent}")
            elif isinstance(value, (int, float, np.number)):
                parts.append(f"{arg_name} = {value!r}")
            elif isinstance(value, dict):
                parts.append(f"{arg_name}: dict with keys {sorted(value)}")
            else:
                parts.append(f"{arg_name}: {type(value).__name__}")
        return "; ".join(parts)

    # -- reading results -----------------------------------------------------------------------------------
    def array(self, got, what: str) -> np.ndarray:
        """A float64 copy of what the student returned, or a failure saying why it is not an array."""
        if isinstance(got, (bool, np.bool_)) or got is None:
            raise Failure(f"{what} returned {got!r}, expected numbers.",
                          hint="did the function forget a `return`, or return a comparison instead of a value?")
        if isinstance(got, (int, float, np.number)):
            return np.float64(got)
        if type(got) is np.ndarray or isinstance(got, (list, tuple)):
            try:
                arr = np.array(got, copy=True)
            except Exception as exc:
                raise Failure(f"{what} returned something that is not an array of numbers: {exc}")
            if arr.dtype.kind not in "biuf":
                raise Failure(f"{what} returned an array of dtype {arr.dtype}, expected numbers.",
                              hint="return a NumPy array of floats.")
            return arr.astype(np.float64)
        raise Failure(f"{what} returned a {getattr(got, 'typename', type(got).__name__)}, expected a NumPy array or a number.",
                      hint="return a plain numpy.ndarray (np.asarray(...)) or a Python float.")

    def number(self, got, what: str) -> float:
        """A single number: a Python/NumPy scalar or a 0-d array, not a 1-element vector."""
        arr = self.array(got, what)
        if np.ndim(arr) != 0:
            raise Failure(f"{what} returned an array of shape {np.shape(arr)}, expected a single number.",
                          cause=diagnose.shape_mistake(np.shape(arr), ()),
                          hint="return float(value).")
        return float(arr)

    # -- assertions ----------------------------------------------------------------------------------------
    def close(self, got, expected, what: str, *, rtol: float = 1e-6, atol: float = 1e-9, batch: int | None = None,
              candidates: dict | None = None, inputs: str | None = None, cause: str | None = None,
              hint: str | None = None, scalar: bool | None = None) -> np.ndarray:
        """Compare a student result with the expected one: shape, finiteness, then values.

        rtol/atol are those of np.allclose. `batch` lets the diagnosis recognise a missing 1/N;
        `candidates` maps known mistakes to the outputs they would give. Returns the coerced result.
        """
        expected = np.asarray(expected, dtype=np.float64)
        if scalar or (scalar is None and expected.ndim == 0):
            got_arr = np.asarray(self.number(got, what))
        else:
            got_arr = np.asarray(self.array(got, what))
        if got_arr.shape != expected.shape:
            raise Failure(f"{what} has shape {got_arr.shape}, expected {expected.shape}.",
                          inputs=inputs, cause=diagnose.shape_mistake(got_arr.shape, expected.shape), hint=hint)
        if np.allclose(got_arr, expected, rtol=rtol, atol=atol, equal_nan=False):
            return got_arr
        mistake = diagnose.value_mistake(got_arr, expected, batch=batch, candidates=candidates, rtol=rtol, atol=atol)
        raise Failure(f"{what} is not what the reference computes ({diagnose.where_they_differ(got_arr, expected)}).",
                      inputs=inputs, expected=diagnose.fmt(expected), got=diagnose.fmt(got_arr),
                      cause=mistake or cause, hint=hint if (mistake or cause) else (hint or
                      "recompute a small case by hand (the tiny numeric example above the exercise) and compare."))

    def gradient(self, analytic, numerical, what: str, *, batch: int | None = None, candidates: dict | None = None,
                 inputs: str | None = None, hint: str | None = None, tol: float = gradcheck.GRAD_REL_TOL) -> None:
        """Hold an analytic gradient to a centered-difference one: relative error below `tol` (1e-6)."""
        numerical = np.asarray(numerical, dtype=np.float64)
        got = np.asarray(self.array(analytic, what)) if numerical.ndim else np.asarray(self.number(analytic, what))
        if got.shape != numerical.shape:
            raise Failure(f"{what} has shape {got.shape}, expected {numerical.shape} (the shape of what it is the gradient of).",
                          inputs=inputs, cause=diagnose.shape_mistake(got.shape, numerical.shape), hint=hint)
        error = gradcheck.relative_error(got, numerical) if np.all(np.isfinite(got)) else np.inf
        if error < tol:
            return
        mistake = diagnose.value_mistake(got, numerical, batch=batch, candidates=candidates, rtol=1e-4, atol=1e-7)
        raise Failure(f"{what} fails the gradient check: relative error {error:.2e} against centered differences "
                      f"(passes below {tol:.0e}).",
                      inputs=inputs, expected=diagnose.fmt(numerical) + "  (numerical)", got=diagnose.fmt(got),
                      cause=mistake, hint=hint or "write the local derivative of each step of the forward pass and "
                                                  "multiply them in reverse order (the chain rule as a gear train).")

    def agrees(self, name: str, *args, rtol: float = 1e-6, atol: float = 1e-9, batch: int | None = None,
               candidates: dict | None = None, hint: str | None = None, scalar: bool | None = None,
               pick: Callable | None = None, what: str | None = None, **kwargs):
        """Call the student's and the reference `name` on the same inputs and compare.

        `pick` selects what to compare from a result (e.g. `lambda r: r[0]` for the `out` of `(out, cache)`);
        `candidates` maps a named mistake to its output: an array, or a function of the same inputs whose
        result `pick` also applies to. Returns the student's raw result (so a cache can be passed on).
        """
        pick = pick or (lambda result: result)
        expected = pick(self.ref(name)(*copy.deepcopy(args), **copy.deepcopy(kwargs)))
        suspects = {label: (pick(suspect(*copy.deepcopy(args), **copy.deepcopy(kwargs))) if callable(suspect) else suspect)
                    for label, suspect in (candidates or {}).items()}
        result = self.call(name, *args, **kwargs)
        self.close(self.part(result, pick, name), expected, what or f"{name}(...)", rtol=rtol, atol=atol,
                   batch=batch, candidates=suspects, inputs=self.describe_args(self.student(name), args, kwargs),
                   hint=hint, scalar=scalar)
        return result

    def part(self, result, pick: Callable, name: str):
        """`pick(result)` for a student's result, as a failure (not a crash) when the result has the wrong form."""
        try:
            return pick(result)
        except (IndexError, KeyError, TypeError) as exc:
            raise Failure(f"`{name}` returned {type(result).__name__}, which does not have the form the contract "
                          f"describes ({type(exc).__name__}: {exc}).",
                          hint=f"return exactly what the docstring of `{name}` lists, in that order.") from exc

    def backward_check(self, forward: str, backward: str, args: list, wrt: dict, *, unpack: Callable,
                       kwargs: dict | None = None, cache_index: int = 1, batch: int | None = None,
                       candidates: dict | None = None, rtol: float = 1e-6, atol: float = 1e-9) -> None:
        """Check a layer's forward values and every gradient its backward returns.

        The forward is `forward(*args, **kwargs) -> (out, cache, ...)`; the backward is `backward(dout, cache)`.
        Steps: the student's `out` must match the reference; `dout` is random (never ones); each gradient
        `unpack(backward result)[name]` must match the centered-difference gradient of
        `sum(reference_forward(...)[0] * dout)` with respect to the input `wrt[name]`, an index into `args`
        or `(index, key)` for an entry of a dict argument. `candidates` maps a gradient name to
        {mistake: array}. Relative error threshold: gradcheck.GRAD_REL_TOL.
        """
        kwargs = kwargs or {}
        ref_forward = self.ref(forward)
        result = self.agrees(forward, *args, rtol=rtol, atol=atol, batch=batch, pick=lambda r: r[0],
                             what=f"the output of {forward}", **kwargs)
        out = self.array(self.part(result, lambda r: r[0], forward), f"the output of {forward}")
        cache = self.part(result, lambda r: r[cache_index], forward)
        dout = self.rng.normal(size=np.shape(out))
        grads = self.part(self.call(backward, dout, cache), unpack, backward)

        for grad_name, where in wrt.items():
            original = gradcheck.input_at(args, where)
            loss = lambda value, where=where: float(np.sum(  # noqa: E731
                np.asarray(ref_forward(*gradcheck.with_input(args, where, value), **kwargs)[0]) * dout))
            numerical = gradcheck.numerical_gradient(loss, np.asarray(original, dtype=np.float64))
            if grad_name not in grads:
                raise Failure(f"`{backward}` did not return {grad_name}.",
                              hint=f"return every gradient the docstring of `{backward}` lists.")
            self.gradient(grads[grad_name], numerical, f"{grad_name} from {backward}", batch=batch,
                          candidates=(candidates or {}).get(grad_name),
                          inputs=f"{forward} inputs: " + self.describe_args(self.ref(forward), args, kwargs)
                                 + "; dout random")

    def raises(self, exception: type, name: str, *args, hint: str | None = None, **kwargs) -> None:
        """The student's `name(*args)` must raise `exception` (e.g. ValueError for an unknown option)."""
        fn = self.student(name)
        try:
            _invoke(fn, args, kwargs)
        except Exception as exc:  # noqa: BLE001 - sorted below, locally or from a grading kernel
            mro = exc.mro if isinstance(exc, RemoteError) else [c.__name__ for c in type(exc).__mro__]
            if exception.__name__ in mro:
                return
            failure = self._failure_for(name, fn, args, kwargs, exc)
            if isinstance(failure, NotWritten) or (isinstance(exc, RemoteError) and exc.type_name in GRADING_FAULTS):
                raise failure from exc
            raise Failure(f"`{name}` raised {mro[0]} where {exception.__name__} is expected.",
                          inputs=self.describe_args(fn, args, kwargs), hint=hint) from exc
        else:
            raise Failure(f"`{name}` returned normally where it must raise {exception.__name__}.",
                          inputs=self.describe_args(fn, args, kwargs), hint=hint)

    def require(self, condition: bool, summary: str, **fields) -> None:
        if not condition:
            raise Failure(summary, **fields)


# ----------------------------------------------------------------------------------------------------------
# Running checks and reporting

@dataclass
class Result:
    description: str
    passed: bool
    summary: str = ""
    details: tuple = ()   # (label, text) pairs of the failure
    notes: tuple = ()     # what the check said besides its verdict (Tester.note)

    @property
    def message(self) -> str:
        return failure_text(self.summary, self.details) if not self.passed else ""


_PASS_COLOR, _FAIL_COLOR = "#1a7f37", "#cf222e"


@dataclass
class Report:
    exercise: str
    level: str
    results: list[Result]

    @property
    def passed(self) -> bool:
        return all(r.passed for r in self.results)

    def text(self) -> str:
        n_pass = sum(r.passed for r in self.results)
        n = len(self.results)
        mark = "✓" if self.passed else "✗"
        lines = [f"{mark} {self.exercise}: {n_pass} of {n} {self.level} checks passed"]
        for r in self.results:
            lines += [f"    ({note})" for note in r.notes]
            if r.passed:
                continue
            body = r.message.replace("\n", "\n      ")
            lines.append(f"  ✗ {r.description}\n      {body}")
        return "\n".join(lines)

    def html(self) -> str:
        """The same report for frontends that render HTML (JupyterLab, nbgrader's feedback): a pass line, or
        each failed check with its expected / got / likely cause / where to look, as a small table."""
        n_pass, n = sum(r.passed for r in self.results), len(self.results)
        color = _PASS_COLOR if self.passed else _FAIL_COLOR
        head = (f'<div style="color:{color};font-weight:600">{"✓" if self.passed else "✗"} '
                f'<code>{escape(self.exercise)}</code>: {n_pass} of {n} {self.level} checks passed</div>')
        blocks = []
        for r in self.results:
            blocks += [f'<div style="margin-left:1.4em;color:var(--jp-ui-font-color2,#57606a)">{escape(note)}</div>'
                       for note in r.notes]
            if r.passed:
                continue
            rows = "".join(f'<tr><th style="text-align:left;vertical-align:top;padding:1px 12px 1px 0;'
                           f'white-space:nowrap;font-weight:500">{escape(label)}</th><td style="text-align:left;'
                           f'padding:1px 0"><pre style="margin:0;white-space:pre-wrap;background:none">'
                           f'{escape(value)}</pre></td></tr>' for label, value in r.details)
            blocks.append(f'<div style="margin:6px 0 2px 0"><span style="color:{_FAIL_COLOR}">✗</span> '
                          f'{escape(r.description)}<div style="margin-left:1.4em"><div style="font-weight:600">'
                          f'{escape(r.summary)}</div><table style="border-collapse:collapse;margin:2px 0;'
                          f'font-size:inherit">{rows}</table></div></div>')
        border = f"border-left:3px solid {color};padding:2px 0 2px 8px"
        return f'<div class="nnfs-check" style="{border}">{head}{"".join(blocks)}</div>'


def _seed(exercise: str, description: str) -> int:
    return zlib.crc32(f"{exercise}/{description}".encode())


def _failed(description: str, failure: Failure, notes: list) -> Result:
    return Result(description, False, failure.summary, tuple(failure.details()), tuple(notes))


def run_exercise(exercise: str, namespace: dict, level: str = "visible") -> Report:
    """Run the checks of one exercise at one level against a namespace of student functions."""
    results = []
    for chk in checks(exercise, level):
        tester = Tester(chk.assignment, exercise, namespace, np.random.default_rng(_seed(exercise, chk.description)))
        try:
            chk.func(tester)
        except NotWritten as failure:
            results.append(_failed(chk.description, failure, tester.notes))
            break  # every other check would say the same
        except Failure as failure:
            results.append(_failed(chk.description, failure, tester.notes))
        else:
            results.append(Result(chk.description, True, notes=tuple(tester.notes)))
    return Report(exercise, level, results)


def _ipython():
    return sys.modules.get("IPython") and sys.modules["IPython"].get_ipython()


def show(report: Report) -> None:
    """Show a report: HTML and plain text in a Jupyter kernel (the frontend picks), plain text elsewhere."""
    if _ipython() is None:
        print(report.text())
        return
    from IPython.display import display
    display({"text/plain": report.text(), "text/html": report.html()}, raw=True)


def _wrapped(text: str, width: int) -> str:
    lines = []
    for line in text.split("\n"):
        indent = " " * (len(line) - len(line.lstrip()))
        lines += textwrap.wrap(line, width, subsequent_indent=indent + "  ", break_on_hyphens=False) or [""]
    return "\n".join(lines)


def _short_error_in_ipython() -> None:
    """In a Jupyter kernel, show a failed check as one error line instead of a traceback.

    The details are already shown above it, the traceback would only repeat the test cell's code (which,
    for hidden tests, must not reach the student), and nbgrader still sees an error output and gives 0.
    Under `nbgrader validate` (and the Validate button) the error is all nbgrader shows of a failed cell,
    so there the error carries the report's text.
    """
    shell = _ipython()
    if shell is None or CheckFailed in getattr(shell, "custom_exceptions", ()):
        return

    def one_line(shell, etype, value, tb, tb_offset=None):
        if os.environ.get("NBGRADER_EXECUTION") == "validate" and getattr(value, "report", ""):
            stb = [_wrapped(value.report, width=86)]  # nbgrader's validator cuts lines at 90 columns
        else:
            stb = [f"\x1b[0;31m{etype.__name__}\x1b[0m: {value}"]
        shell._showtraceback(etype, value, stb)
        return stb

    shell.set_custom_exc((CheckFailed,), one_line)


def check(exercise: str, hidden: bool = False, namespace: dict | None = None) -> None:
    """Run an exercise's visible (or hidden) checks on the caller's functions; raise CheckFailed if any fails.

    Inputs:
      exercise: a function name from the curriculum, e.g. "sigmoid".
      hidden: run the hidden checks instead of the visible ones.
      namespace: where to find the student's functions; by default the caller's globals (the notebook).
    """
    __tracebackhide__ = True
    if namespace is None:
        namespace = sys._getframe(1).f_globals
    report = run_exercise(exercise, namespace, "hidden" if hidden else "visible")
    show(report)
    if not report.passed:
        _short_error_in_ipython()
        failed = sum(not r.passed for r in report.results)
        error = CheckFailed(f"{exercise}: {failed} {report.level} check(s) failed, details above.")
        error.report = report.text()
        raise error from None
    return None
