"""Shared test helpers: grade a namespace of functions the way the notebook's test cells would."""
from __future__ import annotations

import contextlib
import io
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

from graders.tooling.course import course_root, graded_cells, notebook_path, read_notebook
from graders.tooling.reference import reference


def namespace_with(assignment: str, code: str) -> dict:
    """The reference namespace of an assignment with `code` exec'd on top (replacing some functions)."""
    namespace = reference(assignment)
    exec(compile(code, f"<catalog {assignment}>", "exec"), namespace)
    return namespace


@dataclass
class CellGrade:
    grade_id: str
    exercise: str
    points: float
    earned: float
    output: str


def grade_namespace(assignment: str, namespace: dict, exercise: str | None = None) -> list[CellGrade]:
    """Run the source notebook's test cells (hidden tests included) against `namespace`, like nbgrader does:
    a cell that raises earns 0, any other earns its points. Visible cells answer from the release's check
    data (as in a student's kernel), hidden cells from the reference."""
    grades = []
    for cell in graded_cells(read_notebook(notebook_path(assignment))):
        if exercise and cell.exercise != exercise:
            continue
        out = io.StringIO()
        # visible checks answer from the check data the release carries, as in a student's kernel
        data = str(COURSE / "release" / assignment) if cell.level == "visible" else ""
        with contextlib.redirect_stdout(out), _environment(NNFS_CHECK_DATA=data):
            try:
                exec(compile(cell.source, f"<{cell.grade_id}>", "exec"), namespace)
                earned = cell.points
            except Exception as exc:  # noqa: BLE001 - any error in a test cell means no points, as in nbgrader
                print(f"{type(exc).__name__}: {exc}")
                earned = 0.0
        grades.append(CellGrade(cell.grade_id, cell.exercise, cell.points, earned, out.getvalue()))
    return grades


@contextlib.contextmanager
def _environment(**variables):
    saved = {name: os.environ.get(name) for name in variables}
    os.environ.update(variables)
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


#: This clone, fixed at import: tests point NNFS_COURSE_ROOT at scratch courses while they build them.
COURSE = course_root()


def copy_course(destination: Path, names: tuple[str, ...]) -> Path:
    """Copy parts of this course (files or folders, e.g. "source") into a scratch course folder."""
    for name in names:
        (shutil.copytree if (COURSE / name).is_dir() else shutil.copy)(COURSE / name, destination / name)
    return destination
