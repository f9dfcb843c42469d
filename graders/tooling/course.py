"""Where the course lives on disk, and what its notebooks declare.

The course is the folder that holds `nbgrader_config.py`. Test cells follow one naming rule, which the grade
table, the self-check and the tests all rely on: a test cell's nbgrader `grade_id` is
`test_<exercise>_visible` or `test_<exercise>_hidden`, and a solution cell's is `sol_<name>`.
A written answer (a markdown cell a TA grades by hand in formgrader) is `written_<topic>`.
"""
from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

import nbformat

ASSIGNMENTS = ("01_neuron", "02_mlp", "03_backprop", "04_attention", "05_gating")

_TEST_ID = re.compile(r"^test_(?P<exercise>.+)_(?P<level>visible|hidden)$")


def course_root() -> Path:
    """The course folder: $NNFS_COURSE_ROOT, else the folder above this package (an editable install)."""
    env = os.environ.get("NNFS_COURSE_ROOT")
    if env:
        return Path(env)
    here = Path(__file__).resolve().parent.parent.parent
    if (here / "nbgrader_config.py").exists():
        return here
    raise RuntimeError(
        "Cannot find the course folder (the one with nbgrader_config.py). Install the course with "
        "`./course` from a clone, or set NNFS_COURSE_ROOT to the clone's path."
    )


def available_assignments(kind: str = "source") -> list[str]:
    """Assignment ids that have a notebook under `kind` (source, release or solutions), in course order."""
    root = course_root() / kind
    return [a for a in ASSIGNMENTS if any((root / a).glob("*.ipynb"))]


def notebook_path(assignment: str, kind: str = "source") -> Path:
    """The one notebook of an assignment under source/, release/ or solutions/."""
    paths = sorted((course_root() / kind / assignment).glob("*.ipynb"))
    if len(paths) != 1:
        raise FileNotFoundError(f"expected one notebook in {kind}/{assignment}/, found {len(paths)}")
    return paths[0]


def nbgrader_meta(cell) -> dict:
    return cell.get("metadata", {}).get("nbgrader", {})


@dataclass(frozen=True)
class GradedCell:
    """A graded test cell: which exercise it checks, visible or hidden, and its points."""
    grade_id: str
    exercise: str
    level: str
    points: float
    source: str


def graded_cells(nb) -> list[GradedCell]:
    """The graded test cells of a notebook, in notebook order."""
    cells = []
    for cell in nb.cells:
        meta = nbgrader_meta(cell)
        if not meta.get("grade") or meta.get("solution") or cell.cell_type != "code":
            continue
        match = _TEST_ID.match(meta.get("grade_id", ""))
        if not match:
            raise ValueError(f"test cell {meta.get('grade_id')!r} does not follow test_<exercise>_<visible|hidden>")
        cells.append(GradedCell(meta["grade_id"], match["exercise"], match["level"], float(meta["points"]),
                              cell.source))
    return cells


def exercise_of(grade_id: str) -> str | None:
    match = _TEST_ID.match(grade_id)
    return match["exercise"] if match else None


def read_notebook(path: Path):
    return nbformat.read(str(path), as_version=4)


@dataclass(frozen=True)
class WrittenCell:
    """A written answer a TA grades by hand (an nbgrader manually graded markdown cell) and its points."""
    grade_id: str
    points: float


def written_cells(nb) -> list[WrittenCell]:
    """The manually graded answer cells of a notebook, in notebook order."""
    answers = [nbgrader_meta(cell) for cell in nb.cells if cell.cell_type == "markdown"]
    return [WrittenCell(meta["grade_id"], float(meta["points"])) for meta in answers
            if meta.get("grade") and meta.get("solution")]


def autograded_points(assignment: str) -> float:
    """The points of an assignment's test cells: the most autograding gives, before a TA grades written answers."""
    return sum(c.points for c in graded_cells(read_notebook(notebook_path(assignment))))


def written_points(assignment: str) -> float:
    """The points of an assignment's written answers, which only a TA's manual grade awards."""
    return sum(c.points for c in written_cells(read_notebook(notebook_path(assignment))))


def total_points(assignment: str) -> float:
    """All the points of an assignment (nbgrader's max_score): autograded and written."""
    return autograded_points(assignment) + written_points(assignment)
