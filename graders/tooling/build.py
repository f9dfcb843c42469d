"""Generate release/ and solutions/ from source/ with nbgrader's own converters.

In-process through nbgrader's API (the same converters `nbgrader generate_assignment` and
`nbgrader generate_solution` run), configured by the course's nbgrader_config.py.
"""
from __future__ import annotations

import datetime
import json
import os
import sys
from pathlib import Path

from nbgrader.apps import NbGraderAPI
from nbgrader.converters import GenerateSolution
from nbgrader.coursedir import CourseDirectory
from nbgrader.utils import capture_log, temp_attrs
from traitlets.config.loader import PyFileConfigLoader

from .checkdata import write_check_data
from .course import available_assignments, course_root


class NbgraderError(RuntimeError):
    """An nbgrader step failed; the message carries nbgrader's own log."""


def ensure_tools_on_path() -> None:
    """nbgrader runs `alembic` (and grading runs `jupyter`) by name: put this environment's bin/ first."""
    bindir = os.path.dirname(sys.executable)
    if bindir not in os.environ.get("PATH", "").split(os.pathsep):
        os.environ["PATH"] = bindir + os.pathsep + os.environ.get("PATH", "")


def nbgrader_api(root: Path | None = None, **overrides) -> NbGraderAPI:
    """An NbGraderAPI for the course at `root`, configured by its nbgrader_config.py.

    `overrides` are extra `Section.option` settings, e.g. {"CourseDirectory.db_url": "sqlite:///..."}.
    """
    ensure_tools_on_path()
    root = Path(root or course_root()).resolve()
    # a course's nbgrader_config.py names itself in NNFS_COURSE_ROOT where that is unset (for nbgrader's own
    # commands); reading another course's configuration must not change which course this process works on
    before = os.environ.get("NNFS_COURSE_ROOT")
    try:
        config = PyFileConfigLoader("nbgrader_config.py", path=str(root)).load_config()
    finally:
        if before is None:
            os.environ.pop("NNFS_COURSE_ROOT", None)
        else:
            os.environ["NNFS_COURSE_ROOT"] = before
    config.CourseDirectory.root = str(root)
    for dotted, value in overrides.items():
        section, option = dotted.rsplit(".", 1)
        config[section][option] = value
    coursedir = CourseDirectory(config=config)
    return NbGraderAPI(coursedir=coursedir, config=config)


def _require(result: dict, step: str) -> None:
    if not result.get("success"):
        raise NbgraderError(f"{step} failed:\n{result.get('log', '')}\n{result.get('error', '')}")


def build(assignments: list[str] | None = None, root: Path | None = None) -> list[str]:
    """Write release/<id>/ (the notebook and its check data) and solutions/<id>/ for each assignment (default:
    every one in source/)."""
    api = nbgrader_api(root)
    assignments = assignments or available_assignments("source")
    for assignment in assignments:
        _require(api.generate_assignment(assignment, force=True, create=True), f"generate_assignment {assignment}")
        write_check_data(assignment, Path(api.coursedir.format_path(api.coursedir.release_directory, ".", assignment)))
        with temp_attrs(api.coursedir, assignment_id=assignment):
            app = GenerateSolution(coursedir=api.coursedir, parent=api)
            app.force = True
            _require(capture_log(app), f"generate_solution {assignment}")
    return assignments


def measure_time(assignments: list[str] | None = None, root: Path | None = None, repeat: int = 1,
                 timing_file: Path | None = None) -> dict:
    """Grade each assignment's full solution (its source notebook) in the sandbox and record how long it took
    in graders/hidden/timing.json, which the grader fits its cell and notebook limits to (GradingLimits.fitted).

    Timings vary by machine, so this is a step of its own, not part of `build` (whose outputs must be the same
    everywhere); run it on the grading machine, unloaded, when a notebook's work changes.

    Inputs:
      assignments: ids under source/ (default: every one). root: the course folder. repeat: runs per
        assignment; the fastest counts (the others were slowed by something else).
      timing_file: where to write (default graders.hidden.TIMING_FILE); other assignments' entries are kept.
    Returns:
      {assignment: {"notebook_seconds", "slowest_cell_seconds", "measured"}} for those measured.
    Raises:
      RuntimeError: the full solution did not run cleanly (a fault or a grader error), so its time says nothing.
    """
    from ..engine.classgrade import course_limits
    from ..engine.execute import execute_notebook
    from ..hidden import TIMING_FILE
    from .course import notebook_path, read_notebook
    root = Path(root or course_root())
    timing_file = Path(timing_file or TIMING_FILE)
    limits = course_limits(root)
    limits.fit_to_measured_time = False  # measure under the configured limits, not last time's fit
    measured = {}
    for assignment in assignments or available_assignments("source"):
        source = notebook_path(assignment, "source")
        release = root / "release" / assignment
        runs = []
        for _ in range(max(1, repeat)):
            summary = execute_notebook(read_notebook(source), release if release.is_dir() else source.parent,
                                       limits=limits)
            if summary.faults or summary.grader_errors:
                raise RuntimeError(f"the full solution of {assignment} did not run cleanly: "
                                   f"{summary.faults + summary.grader_errors}")
            runs.append(summary)
        fastest = min(runs, key=lambda run: run.seconds)
        measured[assignment] = {"notebook_seconds": round(fastest.seconds, 2),
                                "slowest_cell_seconds": round(min(r.slowest_cell_seconds for r in runs), 2),
                                "measured": datetime.date.today().isoformat()}
    try:
        recorded = json.loads(timing_file.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        recorded = {}
    recorded.update(measured)
    timing_file.write_text(json.dumps(dict(sorted(recorded.items())), indent=1) + "\n", encoding="utf-8")
    return measured


def measure_time_command(options) -> int:
    """`./course measure-time`: options.assignments (ids, [] for every one), options.repeat."""
    for assignment, entry in measure_time(options.assignments or None, repeat=options.repeat).items():
        print(f"{assignment}: {entry['notebook_seconds']:.1f} s, slowest cell {entry['slowest_cell_seconds']:.1f} s")
    return 0
