"""Generate release/ and solutions/ from source/ with nbgrader's own converters.

In-process through nbgrader's API (the same converters `nbgrader generate_assignment` and
`nbgrader generate_solution` run), configured by the course's nbgrader_config.py.
"""
from __future__ import annotations

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
    config = PyFileConfigLoader("nbgrader_config.py", path=str(root)).load_config()
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
