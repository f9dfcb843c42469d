"""Running an exercise's checks: `check("sigmoid")` in a test cell, `run_exercise` in the grader."""
from __future__ import annotations

import hashlib
import sys
import zlib

import numpy as np

from . import expected as expected_sources
from .failures import CheckFailed, Failure, NotWritten
from .registry import HiddenChecksUnavailable, assignment_of, checks, hidden_side_available
from .report import Report, Result, _short_error_in_ipython, show
from .tester import Tester


def _seed(exercise: str, description: str, secret: bytes | None = None):
    """A check's seed: fixed by its name (visible checks, whose inputs the check data records), or drawn from a
    grading run's secret as well (hidden checks when a class is graded), so that no student can reproduce the
    hidden inputs of a run. Returns an int, or a SeedSequence entropy list."""
    if secret is None:
        return zlib.crc32(f"{exercise}/{description}".encode())
    digest = hashlib.sha256(secret + f"\0{exercise}/{description}".encode()).digest()
    return [int.from_bytes(digest[i:i + 4], "little") for i in range(0, 32, 4)]


#: Details of a failed hidden check that a student does not see unless the instructor asks for them: the hidden
#: expected values (what came back, the likely cause and where to look are always shown).
HIDDEN_DETAILS = ("expected",)


def _failed(description: str, failure: Failure, notes, hide: tuple = ()) -> Result:
    details = tuple((label, text) for label, text in failure.details() if label not in hide)
    return Result(description, False, failure.summary, details, tuple(notes))


def default_expected(assignment: str, level: str):
    """Where a check's expected values come from when nobody says: for visible checks the check data next to
    the notebook, else the reference where the instructor's side is installed (a full clone); for hidden
    checks the reference.

    Returns a source (graders.checks.expected), or raises Failure saying what is missing.
    """
    if level == "visible":
        data = expected_sources.find_check_data(assignment)
        if data is not None:
            return data
    source = expected_sources.live(assignment) if hidden_side_available() else None
    if source is not None:
        return source
    json_name, npz_name = expected_sources.data_file_names(assignment)
    raise Failure(f"The check data of {assignment} is missing: {json_name} and {npz_name} must be in the "
                  "notebook's folder.",
                  hint="keep the notebook in the folder it came in (the release folder, or the unpacked bundle), "
                       f"or set {expected_sources.DATA_PATH_VARIABLE} to the folder that holds those two files.")


def run_exercise(exercise: str, namespace: dict, level: str = "visible", expected=None, *,
                 secret: bytes | None = None, show_hidden_expected: bool = True) -> Report:
    """Run the checks of one exercise at one level against a namespace of student functions.

    Inputs:
      exercise: a contract function's name. namespace: name -> the student's function (or a stand-in).
      level: "visible" or "hidden". expected: a source of expected values; by default `default_expected`.
      secret: a grading run's secret; hidden checks then draw their inputs from it (see `_seed`).
      show_hidden_expected: whether a failed hidden check shows the expected values (the grader passes False
        unless the instructor's config asks for them; a self-learner's own run shows them).
    Returns:
      a Report with one Result per check (a check after a "not written yet" is not run).
    """
    try:
        found = checks(exercise, level)
        if expected is None:
            expected = default_expected(assignment_of(exercise), level)
    except HiddenChecksUnavailable as exc:
        return Report(exercise, level, [Result("the hidden checks", False, str(exc))])
    except Failure as failure:
        return Report(exercise, level, [_failed("the check data", failure, ())])
    results = []
    hidden_run = level == "hidden"
    hide = () if show_hidden_expected or not hidden_run else HIDDEN_DETAILS
    for chk in found:
        seed = _seed(exercise, chk.description, secret if hidden_run else None)
        tester = Tester(chk.assignment, exercise, namespace, np.random.default_rng(seed), expected=expected)
        try:
            chk.func(tester)
        except NotWritten as failure:
            results.append(_failed(chk.description, failure, tester.notes, hide))
            break  # every other check would say the same
        except Failure as failure:
            results.append(_failed(chk.description, failure, tester.notes, hide))
        except expected_sources.MissingAnswer as missing:
            results.append(_failed(chk.description, Failure(
                f"This check has no expected value for what it asked: {missing}.",
                cause="the check data is older or newer than the check library, or the notebook's cells were "
                      "changed in a way the check did not expect.",
                hint="download the assignment again (the notebook, its checks_*.json and checks_*.npz), or ask "
                     "your instructor."), tester.notes))
        except (TypeError, ValueError, IndexError, KeyError, AttributeError) as exc:
            # a check takes apart what the student's function returned (`loss, dw, db = t.call(...)`); a value of
            # another form (None, a number, a list of the wrong length) fails this check, never the grader
            results.append(_failed(chk.description, _unusable_return(exercise, exc), tester.notes, hide))
        else:
            results.append(Result(chk.description, True, notes=tuple(tester.notes)))
    return Report(exercise, level, results)


def _unusable_return(exercise: str, exc: Exception) -> Failure:
    """The failure of a check that could not take apart what `exercise` returned (`exc`: what that raised)."""
    return Failure(f"What {exercise} returned does not have the form this check needs, so it could not be checked "
                   f"({type(exc).__name__}: {str(exc)[:200]}).",
                   cause="the return value is not what the docstring's Returns section says: None (a missing "
                         "`return`), a single value where a tuple is expected, a tuple with items missing or in "
                         "another order, or a list instead of an array.",
                   hint=f"print(type(result)) and the length or shape of what {exercise} returns, and compare "
                        "with its docstring.")


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
