"""The `Tester` a check function receives: it calls the student's functions and holds their results to the
expected ones.

A check touches student code only through `t.call` and reads the results only through `t.array` /
`t.number` (which `t.close` uses), which copy them into plain float arrays. So a check never trusts an object
the student made, and the same check code runs in a notebook or in the grader, where the student's code is
out of reach. Expected values come only from `t.ref` and `t.data` (see graders.checks.expected).
"""
from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from . import diagnose, gradcheck
from .calling import StudentError, argument_names, invoke, is_returned_function, same, student_frame
from .failures import GRADING_FAULTS, Failure, NotWritten


@dataclass
class Tester:
    """What a check function gets: the student's namespace, the reference, a seeded rng and assertions."""
    __test__ = False  # not a pytest test class
    assignment: str
    exercise: str
    namespace: dict
    rng: np.random.Generator
    expected: object = None  # where expected values come from (graders.checks.expected); see `ref` and `data`
    allow_warnings: bool = False
    notes: list = field(default_factory=list)

    def note(self, text: str) -> None:
        """A line for the report under the check, pass or fail (e.g. the accuracy a training run reached)."""
        self.notes.append(str(text))

    # -- the two sides -------------------------------------------------------------------------------------
    def ref(self, name: str) -> Callable:
        """The reference's contract function `name`: the reference itself on the instructor's side, its recorded
        answers on the student's side (so a visible check may only ask it about inputs it made itself)."""
        return self.expected.function(name)

    def data(self, name: str, *args, **kwargs):
        """What the named generator gives for these inputs: the outputs of named mistakes, a numerical
        gradient. The generators stay on the instructor's side (graders.hidden); students get their outputs."""
        return self.expected.call("data", name, args, kwargs)

    def student(self, name: str) -> Callable:
        fn = self.namespace.get(name)
        if fn is None:
            raise Failure(f"`{name}` is not defined.",
                          hint=f"run the cell that defines `{name}` (or Run All) before the checks, and keep the name exactly `{name}`.")
        if not callable(fn):
            raise Failure(f"`{name}` is a {type(fn).__name__}, not a function.",
                          hint=f"did a later cell assign to the name `{name}`?")
        return fn

    def call_returned(self, fn, *args, name: str = "predict", **kwargs):
        """Call a function the student's code returned (e.g. the `predict` of a training function) with every
        guard of `call` (exceptions, warnings, changed inputs); `name` is what messages call it."""
        __tracebackhide__ = True
        if not callable(fn):
            raise Failure(f"`{name}` is a {getattr(fn, 'typename', type(fn).__name__)}, not a function.",
                          hint=f"return the function `{name}` itself, not the result of calling it.")
        returned = Tester(self.assignment, self.exercise, {name: fn}, self.rng, expected=self.expected,
                          allow_warnings=self.allow_warnings, notes=self.notes)
        return returned.call(name, *args, **kwargs)

    def call(self, name: str, *args, check_mutation: bool = True, **kwargs):
        """Call the student's function `name`; fail on an exception, a warning or a changed input."""
        __tracebackhide__ = True
        fn = self.student(name)
        snapshots = copy.deepcopy((args, kwargs)) if check_mutation else None
        try:
            outcome = invoke(fn, args, kwargs)
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
            names = argument_names(fn, args, kwargs)
            values = list(outcome.args_after) + list(outcome.kwargs_after.values())
            old_values = list(snapshots[0]) + list(snapshots[1].values())
            for arg_name, value, old in zip(names, values, old_values):
                if not same(value, old):
                    raise Failure(f"`{name}` changed its input `{arg_name}` in place.",
                                  cause="an in-place operation on an input: `x += ...`, `x[mask] = ...`, "
                                        "`np.maximum(x, 0, out=x)`, or a dict updated instead of copied.",
                                  hint=f"work on a new array (`{arg_name} = {arg_name} + ...`, `np.where`, "
                                       f"`.copy()`): the caller still needs the original `{arg_name}`.")
        return outcome.value

    def _failure_for(self, name: str, fn, args, kwargs, exc: Exception) -> Failure:
        """The Failure a student reads for an exception from their function (here or in a grading kernel)."""
        mro = exc.mro if isinstance(exc, StudentError) else [c.__name__ for c in type(exc).__mro__]
        type_name = exc.type_name if isinstance(exc, StudentError) else type(exc).__name__
        message = exc.message if isinstance(exc, StudentError) else str(exc)
        where = exc.where if isinstance(exc, StudentError) else student_frame(exc)
        if "NotImplementedError" in mro:
            return NotWritten(f"`{name}` is not written yet: it raises NotImplementedError.",
                              hint="replace the `raise NotImplementedError()` line with your code, then run the cell.")
        if isinstance(exc, StudentError) and type_name == "NameError" and message.endswith(" is not defined") \
                and not is_returned_function(fn):
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
        for arg_name, value in zip(argument_names(fn, args, kwargs), list(args) + list(kwargs.values())):
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
        path = _index_path(pick)
        if path:  # ask only for the part compared (a student's side then holds no cache of the reference)
            expected = self.expected.call("part", name, (list(path), copy.deepcopy(list(args))), copy.deepcopy(kwargs))
        else:
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
                       kwargs: dict | None = None, n_out: int = 1, out_names: tuple = ("output",),
                       batch: int | None = None, candidates=None, hints: dict | None = None,
                       rtol: float = 1e-6, atol: float = 1e-9) -> dict:
        """Check a layer's forward values and every gradient its backward returns; the one backward checker.

        Inputs:
          forward, backward: contract names. `forward(*args, **kwargs) -> (out_1, ..., out_n, cache)` with
            n = n_out; `backward(dout_1, ..., dout_n, cache)`. The cache is the student's own, passed on
            untouched (its form is the student's business).
          wrt: gradient name -> the input it is taken with respect to: an index into args, or (index, key)
            for an entry of a dict argument.
          unpack: backward's result -> {gradient name: gradient}.
          out_names: a name for each output in messages, e.g. ("h", "c"); "output" by default.
          candidates: {gradient name: {mistake: array}}, or a function of the upstream gradients (a list of
            n_out arrays) returning that dict, for mistakes that depend on them.
          hints: gradient name -> where to look when it is wrong.
        Steps: each output must match the reference; each upstream gradient is random (never ones); each
        gradient must match centered differences of sum_i(reference forward(...)[i] * dout_i) with a relative
        error below gradcheck.GRAD_REL_TOL (t.gradient).
        Returns:
          the student's gradients {name: value}.
        """
        kwargs = kwargs or {}
        names = list(out_names) + [f"output {i + 1}" for i in range(len(out_names), n_out)]
        label = [f"the output of {forward}" if name == "output" else f"the {name} returned by {forward}"
                 for name in names]
        result = self.agrees(forward, *args, rtol=rtol, atol=atol, batch=batch, pick=lambda r: r[0],
                             what=label[0], **kwargs)
        outs = [self.array(self.part(result, lambda r: r[0], forward), label[0])]
        if n_out > 1:
            expected = self.ref(forward)(*copy.deepcopy(args), **copy.deepcopy(kwargs))
            for i in range(1, n_out):
                got = self.part(result, lambda r, i=i: r[i], forward)
                outs.append(self.close(got, expected[i], label[i], rtol=rtol,
                                       atol=atol, batch=batch))
        cache = self.part(result, lambda r: r[n_out], forward)
        douts = [self.rng.normal(size=np.shape(o)) for o in outs]
        grads = self.part(self.call(backward, *douts, cache), unpack, backward)
        mistakes = candidates(douts) if callable(candidates) else (candidates or {})
        inputs = (f"{forward} inputs: " + self.describe_args(self.student(forward), args, kwargs)
                  + ("; dout random" if n_out == 1 else "; upstream gradients random"))
        for grad_name, where in wrt.items():
            if grad_name not in grads:
                raise Failure(f"`{backward}` did not return {grad_name}.",
                              hint=f"return every gradient the docstring of `{backward}` lists.")
            numerical = self.data("numerical_gradient", forward, list(args), kwargs, where, douts)
            self.gradient(grads[grad_name], numerical, f"{grad_name} from {backward}", batch=batch,
                          candidates=mistakes.get(grad_name), inputs=inputs, hint=(hints or {}).get(grad_name))
        return grads

    def raises(self, exception: type, name: str, *args, hint: str | None = None, **kwargs) -> None:
        """The student's `name(*args)` must raise `exception` (e.g. ValueError for an unknown option)."""
        fn = self.student(name)
        try:
            invoke(fn, args, kwargs)
        except Exception as exc:  # noqa: BLE001 - sorted below, locally or from a grading kernel
            mro = exc.mro if isinstance(exc, StudentError) else [c.__name__ for c in type(exc).__mro__]
            if exception.__name__ in mro:
                return
            failure = self._failure_for(name, fn, args, kwargs, exc)
            if isinstance(failure, NotWritten) or (isinstance(exc, StudentError) and exc.type_name in GRADING_FAULTS):
                raise failure from exc
            raise Failure(f"`{name}` raised {mro[0]} where {exception.__name__} is expected.",
                          inputs=self.describe_args(fn, args, kwargs), hint=hint) from exc
        else:
            raise Failure(f"`{name}` returned normally where it must raise {exception.__name__}.",
                          inputs=self.describe_args(fn, args, kwargs), hint=hint)

    def require(self, condition: bool, summary: str, **fields) -> None:
        if not condition:
            raise Failure(summary, **fields)


class _Probe:
    """Stands in for a result to learn which entry a `pick` takes: `(lambda r: r[0])(_Probe())` is a probe at (0,)."""

    def __init__(self, path: tuple = ()):
        self.path = path

    def __getitem__(self, key):
        return _Probe(self.path + (key,))


def _index_path(pick: Callable) -> tuple | None:
    """The indices `pick` takes from a result, e.g. (0,) for `lambda r: r[0]`, or None if it does more than index."""
    try:
        probe = pick(_Probe())
    except Exception:  # noqa: BLE001 - a pick that computes something: not a plain index path
        return None
    return probe.path if isinstance(probe, _Probe) else None

