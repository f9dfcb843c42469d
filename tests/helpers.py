"""Shared test helpers: grade a namespace of functions the way the notebook's test cells would."""
from __future__ import annotations

import contextlib
import io
from dataclasses import dataclass

from graders.course import notebook_path, read_notebook, graded_cells
from graders.reference import reference


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
    a cell that raises earns 0, any other earns its points."""
    grades = []
    for cell in graded_cells(read_notebook(notebook_path(assignment))):
        if exercise and cell.exercise != exercise:
            continue
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            try:
                exec(compile(cell.source, f"<{cell.grade_id}>", "exec"), namespace)
                earned = cell.points
            except Exception as exc:  # noqa: BLE001 - any error in a test cell means no points, as in nbgrader
                print(f"{type(exc).__name__}: {exc}")
                earned = 0.0
        grades.append(CellGrade(cell.grade_id, cell.exercise, cell.points, earned, out.getvalue()))
    return grades
