"""Record the check data a release carries: every visible check run once against the reference.

`./course build` calls `write_check_data` for each assignment after nbgrader's generate_assignment. A visible
check that fails on the reference, or asks a question whose answer cannot be written as data, stops the
build with the check's name: both are bugs of the check.
"""
from __future__ import annotations

from pathlib import Path

from ..checks import expected
from ..checks.registry import exercises
from ..checks.runner import run_exercise
from .reference import reference


class CheckDataError(RuntimeError):
    """A visible check cannot be recorded."""


def record_visible(assignment: str) -> expected.Recorder:
    """Run every visible check of `assignment` on the reference; return the recorder holding every answer
    ({digest: value}) the checks asked for."""
    from ..hidden import LiveExpected
    recorder = expected.Recorder(LiveExpected(assignment))
    for exercise in exercises(assignment):
        try:
            report = run_exercise(exercise, reference(assignment), "visible", expected=recorder)
        except expected.Unrecordable as exc:
            raise CheckDataError(f"a visible check of {exercise} asks about {exc}, which check data cannot hold: "
                                 "make its inputs plain numbers and arrays, or move it to the hidden checks") from exc
        if not report.passed:
            raise CheckDataError(f"the visible checks of {exercise} fail on the reference:\n{report.text()}")
    return recorder


def write_check_data(assignment: str, folder: Path) -> list[Path]:
    """Write checks_<assignment>.json and .npz into `folder` (the release folder); return their paths."""
    recorder = record_visible(assignment)
    json_bytes, npz_bytes = expected.dump_check_data(assignment, recorder.entries, recorder.advanced)
    paths = [Path(folder) / name for name in expected.data_file_names(assignment)]
    for path, data in zip(paths, (json_bytes, npz_bytes)):
        path.write_bytes(data)
    return paths
