"""The `Tester` a check function receives: it calls the student's functions and holds their results to the
expected ones.

A check touches student code only through `t.call` and reads the results only through `t.array` /
`t.number` (which `t.close` uses), which copy them into plain float arrays. So a check never trusts an object
the student made, and the same check code runs in a notebook or in the grader, where the student's code is
out of reach. Expected values come only from `t.ref` and `t.data` (see graders.checks.expected).
"""
from __future__ import annotations

import copy
import inspect
from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from . import diagnose, gradcheck
from .calling import (CallBudget, StudentError, argument_names, invoke, is_returned_function, same,
                      student_frame)
from .failures import GRADING_FAULTS, Failure, NotWritten


class SeveralFailures(Failure):
    """Several parts of one result are wrong (e.g. three gradients of one backward pass), each with its own
    expected / got / likely cause / where to look.

    Inputs:
      summary: one sentence naming how many parts failed and which.
      parts: [(part name, the Failure of that part)], in the order they were checked.
      inputs: the inputs the parts share.
    The details list the inputs once, then each part: its name with its own summary, then its own details
    under the usual labels (so that whatever hides a label, such as a hidden check's expected values, still
    hides it for every part).
    """

    def __init__(self, summary: str, parts: list, *, inputs: str | None = None):
        super().__init__(summary, inputs=inputs)
        self.parts = list(parts)

    def details(self) -> list[tuple[str, str]]:
        rows = [("inputs", self.inputs)] if self.inputs else []
        for name, failure in self.parts:
            rows.append((name, failure.summary))
            rows += [(label, text) for label, text in failure.details() if label != "inputs"]
        return rows


def _signature(fn) -> inspect.Signature | None:
    """The signature of a function defined here (a notebook's), or None for a stand-in of one that lives in a
    grading kernel (whose own signature, *args and **kwargs, says nothing of the student's)."""
    if fn is None or (hasattr(fn, "invoke") and not inspect.isfunction(fn)):
        return None
    try:
        return inspect.signature(fn)
    except (TypeError, ValueError):
        return None


def _named_arguments(fn, args, kwargs) -> list[tuple[str, object]]:
    """(name, value) for every argument of a call, in the function's parameter order: the student's own
    parameter names, `args[0]`, `args[1]`, ... for the entries of a *args parameter and the keys of a **kwargs
    one; `argument 1`, ... where the function cannot be inspected."""
    signature = _signature(fn)
    if signature is not None:
        try:
            bound = signature.bind(*args, **kwargs)
        except TypeError:
            bound = None
        if bound is not None:
            pairs = []
            for name, value in bound.arguments.items():
                kind = signature.parameters[name].kind
                if kind is inspect.Parameter.VAR_POSITIONAL:
                    pairs += [(f"{name}[{i}]", item) for i, item in enumerate(value)]
                elif kind is inspect.Parameter.VAR_KEYWORD:
                    pairs += list(value.items())
                else:
                    pairs.append((name, value))
            return pairs
    return list(zip(argument_names(fn, args, kwargs), list(args) + list(kwargs.values())))


_PLAIN = (str, bool, int, float, complex, np.number, np.bool_, type(None))


def _describe(name: str, value) -> str:
    """One argument for the `inputs` line of a report, e.g. "scheme = 'xavier'" or "X: array of shape (4, 3), ..."."""
    if isinstance(value, np.ndarray) and value.dtype.kind == "b":  # a mask: how much of it is True
        return f"{name}: bool array of shape {value.shape}, {int(value.sum())} of {value.size} True"
    if isinstance(value, np.ndarray):
        extent = (f", values in [{value.min():.3g}, {value.max():.3g}]"
                  if value.size and value.dtype.kind in "iuf" else "")
        return f"{name}: array of shape {value.shape}{extent}"
    if isinstance(value, np.generic):
        value = value.item()  # np.float64(0.5) reads as 0.5
    if isinstance(value, _PLAIN):
        return f"{name} = {value!r}"
    if isinstance(value, (list, tuple)) and len(value) <= 8 and all(isinstance(v, _PLAIN) for v in value):
        return f"{name} = {value!r}"
    if isinstance(value, dict):
        return f"{name}: dict with keys {sorted(value, key=str)}"
    return f"{name}: {getattr(value, 'typename', type(value).__name__)}"


def _chooses_option(value, default) -> bool:
    """Whether an argument picks another option than its parameter's default: another string or flag
    (scheme="xavier", cell="rnn"), or something where the default is None (a mask). Another number is a
    setting (lr, alpha, eps), not a branch of the code that could be missing."""
    if value is default or not (default is None or isinstance(default, (str, bool, np.bool_))):
        return False
    if isinstance(value, _PLAIN) and isinstance(default, _PLAIN):
        try:
            return not bool(value == default)
        except (TypeError, ValueError):
            return True
    return True


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
            outcome = invoke(fn, args, kwargs, self._budget(name, fn, args, kwargs))
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

    def _budget(self, name: str, fn, args, kwargs) -> CallBudget | None:
        """What the time limit of calling `fn` (the student's `name`) on these inputs is made from: None for a
        function of this process (a notebook's own, which runs without a limit), else the reference's time on
        the same inputs or the exercise's stated budget, where the expected values' source knows them
        (`budget_for`, the instructor's side)."""
        if not hasattr(fn, "invoke") or inspect.isfunction(fn):
            return None
        budget_for = getattr(self.expected, "budget_for", None)
        if is_returned_function(fn) or budget_for is None:
            return CallBudget()
        return budget_for(name, args, kwargs)

    def _failure_for(self, name: str, fn, args, kwargs, exc: Exception) -> Failure:
        """The Failure a student reads for an exception from their function (here or in a grading kernel)."""
        mro = exc.mro if isinstance(exc, StudentError) else [c.__name__ for c in type(exc).__mro__]
        type_name = exc.type_name if isinstance(exc, StudentError) else type(exc).__name__
        message = exc.message if isinstance(exc, StudentError) else str(exc)
        where = exc.where if isinstance(exc, StudentError) else student_frame(exc)
        if "NotImplementedError" in mro:
            options = self._options_given(name, fn, args, kwargs)
            if options:  # the function is written for its defaults: only this option is missing, the rest can run
                chosen = ", ".join(options)
                return Failure(f"`{name}` raises NotImplementedError when called with {chosen}: that option is not "
                               "written yet.", inputs=self.describe_args(fn, args, kwargs), raised_at=where,
                               cause=f"the branch for {chosen} still raises NotImplementedError (or a function it "
                                     "calls does); the other checks still run.",
                               hint=f"write the code for {chosen} in place of its `raise NotImplementedError()`, "
                                    "then run the cell.")
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

    def _options_given(self, name: str, fn, args, kwargs) -> list[str]:
        """The arguments of a call that choose another option than the default (see _chooses_option), described
        ("scheme = 'xavier'"); empty for a call that keeps every option at its default.

        The parameters are the student's where their function can be inspected (in a notebook), else the
        reference's (when a class is graded, the student's function lives in a kernel; the contract fixes the
        signature).
        """
        signature = _signature(fn)
        if signature is None and not is_returned_function(fn) and self.expected is not None:
            try:
                signature = _signature(self.expected.function(name))
            except LookupError:
                signature = None
        if signature is None:
            return []
        try:
            bound = signature.bind(*args, **kwargs)
        except TypeError:
            return []
        return [_describe(param, value) for param, value in bound.arguments.items()
                if signature.parameters[param].default is not inspect.Parameter.empty
                and _chooses_option(value, signature.parameters[param].default)]

    @staticmethod
    def describe_args(fn, args, kwargs) -> str:
        """Every argument of a call by the student's parameter name, e.g. "T = 3; D = 4" (the `inputs` line)."""
        return "; ".join(_describe(arg_name, value) for arg_name, value in _named_arguments(fn, args, kwargs))

    # -- reading results -----------------------------------------------------------------------------------
    def array(self, got, what: str) -> np.ndarray:
        """A float64 copy of what the student returned, or a failure saying why it is not an array."""
        if isinstance(got, (bool, np.bool_)) or got is None:
            raise Failure(f"{what} returned {got!r}, expected numbers.",
                          hint="did the function forget a `return`, or return a comparison instead of a value?")
        if isinstance(got, (int, float, np.number)):
            try:
                return np.float64(got)
            except Exception:  # noqa: BLE001 - 10**400, or a number type of the student's own whose conversion raises
                raise Failure(f"{what} returned a {type(got).__name__} that does not convert to a float64 number.",
                              hint="return a Python float or a NumPy array of floats.") from None
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
        error below gradcheck.GRAD_REL_TOL (t.gradient). Every gradient is checked: one wrong gradient fails
        with its own message, several fail together (SeveralFailures, one entry each).
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
        failed = []  # every gradient is checked, so that a wrong dW is not hidden behind a wrong dX
        for grad_name, where in wrt.items():
            try:
                if grad_name not in grads:
                    raise Failure(f"`{backward}` did not return {grad_name}.",
                                  hint=f"return every gradient the docstring of `{backward}` lists.")
                numerical = self.data("numerical_gradient", forward, list(args), kwargs, where, douts)
                self.gradient(grads[grad_name], numerical, f"{grad_name} from {backward}", batch=batch,
                              candidates=mistakes.get(grad_name), inputs=inputs, hint=(hints or {}).get(grad_name))
            except NotWritten:
                raise
            except Failure as failure:
                failed.append((grad_name, failure))
        if len(failed) == 1:
            raise failed[0][1]
        if failed:
            names = ", ".join(grad_name for grad_name, _ in failed)
            raise SeveralFailures(f"{len(failed)} of the {len(wrt)} gradients from {backward} are wrong: {names} "
                                  "(each is listed below).", failed, inputs=inputs)
        return grads

    def raises(self, exception: type, name: str, *args, hint: str | None = None, **kwargs) -> None:
        """The student's `name(*args)` must raise `exception` (e.g. ValueError for an unknown option)."""
        fn = self.student(name)
        try:
            invoke(fn, args, kwargs, self._budget(name, fn, args, kwargs))
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

    def draws_only_from_rng(self, name: str, run: Callable, *, seeds: tuple = (7, 7, 8), hint: str) -> None:
        """The student's `name` takes its randomness from the rng it is given, and only from it: generators
        seeded alike give the same result, generators seeded differently different ones.

        Inputs:
          name: the contract function, for messages.
          run: rng -> what a call of `name` with that rng gave, as an array (the ids drawn, history["loss"]).
          seeds: three seeds, the first two equal.
          hint: where the student should take their randomness from, for this function.
        """
        first, again, other = (np.asarray(run(np.random.default_rng(seed))) for seed in seeds)
        self.require(first.shape == again.shape and np.array_equal(first, again),
                     f"`{name}` gave different results for two generators seeded alike "
                     f"(np.random.default_rng({seeds[0]})).",
                     cause=f"`{name}` draws from np.random.* (NumPy's global state: np.random.choice, "
                           "np.random.rand, ...), or from a new np.random.default_rng() made inside the function "
                           "without a seed, instead of the rng it is given.",
                     hint=hint)
        self.require(first.shape != other.shape or not np.array_equal(first, other),
                     f"`{name}` gave exactly the same results for generators seeded differently ({seeds[0]} and "
                     f"{seeds[2]}): the rng argument is ignored.",
                     cause="the function makes its own generator with a fixed seed (rng = np.random.default_rng(0)) "
                           "or calls np.random.seed, so every run is the same whatever rng it is given.",
                     hint="use the rng you are given instead of making one.")

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

