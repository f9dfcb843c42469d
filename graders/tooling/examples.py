"""Make the example class's submissions from the release notebooks.

Each example student is described in `examples/students.py` (course root) by a `Submission` per assignment:
which solution cells they filled in (with the reference code), which functions they wrote wrongly, what they
wrote in the written answers a TA grades, which test cells they deleted, and whether the file they handed in
is broken. The submissions are written where
nbgrader expects them: `submitted/<student>/<assignment>/<notebook>.ipynb`.
"""
from __future__ import annotations

import ast
import importlib.util
from dataclasses import dataclass, field
from pathlib import Path

import nbformat

from .course import course_root, nbgrader_meta, notebook_path, read_notebook


@dataclass(frozen=True)
class Submission:
    """What one student handed in for one assignment."""
    fill: str | tuple = "all"          # "all", "none", "source" (the source notebook itself, handed in as is),
                                       # or the grade_ids of the solution cells they answered
    replace: dict = field(default_factory=dict)  # function name -> their (wrong) code for it
    delete: tuple = ()                 # grade_ids of cells they deleted
    answers: dict = field(default_factory=dict)  # grade_id of a written answer cell -> their markdown; the
                                                 # others stay nbgrader's "YOUR ANSWER HERE" (no response)
    corrupt: bool = False              # the file is not valid JSON (a truncated save)


def load_class(root: Path | None = None):
    """The `examples/students.py` module of the course: STUDENTS, SUBMISSIONS, EXPECTED_SCORES."""
    path = Path(root or course_root()) / "examples" / "students.py"
    spec = importlib.util.spec_from_file_location("nnfs_example_class", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def strip_solution_markers(source: str) -> str:
    return "\n".join(line for line in source.split("\n")
                     if "### BEGIN SOLUTION" not in line and "### END SOLUTION" not in line)


def replace_function(source: str, name: str, code: str) -> str | None:
    """`source` with the top-level definition of `name` replaced by `code`, or None if it is not defined there."""
    tree = ast.parse(source)
    for node in tree.body:
        if isinstance(node, ast.FunctionDef) and node.name == name:
            lines = source.split("\n")
            start = min([node.lineno] + [d.lineno for d in node.decorator_list]) - 1
            return "\n".join(lines[:start] + code.strip("\n").split("\n") + lines[node.end_lineno:])
    return None


def make_submission(assignment: str, submission: Submission):
    """The notebook a student with this `submission` hands in, made from the release notebook."""
    if submission.fill == "source":
        return read_notebook(notebook_path(assignment, "source"))
    release = read_notebook(notebook_path(assignment, "release"))
    source_cells = {nbgrader_meta(c).get("grade_id"): c for c in read_notebook(notebook_path(assignment, "source")).cells}
    cells = []
    for cell in release.cells:
        meta = nbgrader_meta(cell)
        grade_id = meta.get("grade_id")
        if grade_id in submission.delete:
            continue
        if cell.cell_type == "markdown" and grade_id in submission.answers:
            cell.source = submission.answers[grade_id]
        elif (cell.cell_type == "code" and meta.get("solution")
              and (submission.fill == "all" or grade_id in submission.fill)):
            cell.source = strip_solution_markers(source_cells[grade_id].source)
        cells.append(cell)
    release.cells = cells
    for name, code in submission.replace.items():
        for cell in release.cells:
            if cell.cell_type == "code" and nbgrader_meta(cell).get("solution"):  # not a written answer
                new_source = replace_function(cell.source, name, code)
                if new_source is not None:
                    cell.source = new_source
                    break
        else:
            raise ValueError(f"{assignment}: no solution cell defines {name!r}")
    return release


def write_class(destination: Path, root: Path | None = None) -> list[tuple[str, str]]:
    """Write every example submission under destination/<student>/<assignment>/; return (student, assignment)."""
    example_class = load_class(root)
    written = []
    for assignment, students in example_class.SUBMISSIONS.items():
        name = notebook_path(assignment, "release").name
        for student, submission in students.items():
            path = Path(destination) / student / assignment / name
            path.parent.mkdir(parents=True, exist_ok=True)
            text = nbformat.writes(make_submission(assignment, submission))
            if submission.corrupt:
                text = text[: len(text) // 2]  # a save cut off half way
            path.write_text(text, encoding="utf-8")
            written.append((student, assignment))
    return written
