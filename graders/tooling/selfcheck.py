"""Grade your own notebook with the hidden tests, without an instructor or a gradebook.

What nbgrader autograde does, minus the gradebook: the notebook's test cells are replaced by the source
notebook's (hidden tests included; deleted ones are put back), the notebook runs top to bottom in a fresh
kernel, and each test cell is scored by nbgrader's own rule (`nbgrader.utils.determine_grade`).
"""
from __future__ import annotations

import json
import time
from pathlib import Path

import nbformat
from nbclient import NotebookClient
from nbgrader.utils import determine_grade
from nbgrader.validator import Validator

from .build import ensure_tools_on_path, nbgrader_api
from .course import ASSIGNMENTS, exercise_of, nbgrader_meta, notebook_path, read_notebook, written_cells


def infer_assignment(path: Path) -> str | None:
    """The assignment a notebook belongs to: its folder's name, else the source notebook with its file name."""
    for part in reversed(path.resolve().parts[:-1]):
        if part in ASSIGNMENTS:
            return part
    for assignment in ASSIGNMENTS:
        try:
            if notebook_path(assignment, "source").name == path.name:
                return assignment
        except FileNotFoundError:
            continue
    return None


def read_or_explain(path: Path):
    """The notebook at `path`, or None after telling the student why it cannot be read and what to do."""
    try:
        return nbformat.read(str(path), as_version=4)
    except (OSError, json.JSONDecodeError, nbformat.reader.NotJSONError) as exc:
        print(f"{path} is not a valid notebook file ({exc}). Open it in JupyterLab: if it does not open, "
              "restore it from a checkpoint (File > Revert Notebook to Checkpoint) or start again from release/.")
        return None


def with_source_tests(student_nb, source_nb):
    """The student's notebook with every test cell taken from the source (hidden tests in, deleted ones back)."""
    source_tests = {nbgrader_meta(c)["grade_id"]: c for c in source_nb.cells
                    if nbgrader_meta(c).get("grade") and not nbgrader_meta(c).get("solution")}
    cells, seen = [], set()
    for cell in student_nb.cells:
        grade_id = nbgrader_meta(cell).get("grade_id")
        if grade_id in source_tests:
            cell = nbformat.from_dict(dict(source_tests[grade_id]))
            seen.add(grade_id)
        cells.append(cell)
    position = {nbgrader_meta(c).get("grade_id"): i for i, c in enumerate(cells)}
    previous = None
    for cell in source_nb.cells:
        grade_id = nbgrader_meta(cell).get("grade_id")
        if grade_id in source_tests and grade_id not in seen:
            at = position.get(previous, len(cells) - 1) + 1
            cells.insert(at, nbformat.from_dict(dict(cell)))
            position = {nbgrader_meta(c).get("grade_id"): i for i, c in enumerate(cells)}
        if grade_id in position:
            previous = grade_id
    student_nb.cells = cells
    return student_nb


def _cell_text(cell) -> str:
    parts = []
    for output in cell.get("outputs", []):
        if output.get("output_type") == "stream":
            parts.append(output.get("text", ""))
        elif output.get("output_type") in ("display_data", "execute_result"):
            parts.append(output.get("data", {}).get("text/plain", "") + "\n")
        elif output.get("output_type") == "error" and output.get("ename") != "CheckFailed":
            parts.append(f"{output.get('ename')}: {output.get('evalue')}")
    return "".join(parts).rstrip()


def selfcheck(path: Path, assignment: str | None = None) -> int:
    """Print the score per exercise and the diagnostics of every failed check; exit 0 only on full marks."""
    ensure_tools_on_path()
    assignment = assignment or infer_assignment(path)
    if assignment is None:
        print(f"Cannot tell which assignment {path} is: pass --assignment (one of {', '.join(ASSIGNMENTS)}).")
        return 2
    student_nb = read_or_explain(path)
    if student_nb is None:
        return 2
    nb = with_source_tests(student_nb, read_notebook(notebook_path(assignment, "source")))
    execute = nbgrader_api().config.Execute
    started = time.perf_counter()
    print(f"Running {path} with the hidden tests of {assignment} (this takes as long as Run All)...", flush=True)
    NotebookClient(nb, timeout=execute.timeout, kernel_name="python3", allow_errors=True,
                   extra_arguments=list(execute.extra_arguments),
                   resources={"metadata": {"path": str(path.resolve().parent)}}).execute()
    seconds = time.perf_counter() - started

    scores: dict[str, list[float]] = {}
    failures = []
    for cell in nb.cells:
        meta = nbgrader_meta(cell)
        if not meta.get("grade") or meta.get("solution"):
            continue
        earned, maximum = determine_grade(cell)
        exercise = exercise_of(meta["grade_id"]) or meta["grade_id"]
        total = scores.setdefault(exercise, [0.0, 0.0])
        total[0] += earned or 0.0
        total[1] += maximum
        if (earned or 0.0) < maximum:
            failures.append((meta["grade_id"], _cell_text(cell)))

    width = max(len(e) for e in scores)
    print(f"\n{'exercise':{width}s}  score")
    for exercise, (earned, maximum) in scores.items():
        mark = "✓" if earned == maximum else "✗"
        print(f"{exercise:{width}s}  {earned:g}/{maximum:g} {mark}")
    earned = sum(s[0] for s in scores.values())
    maximum = sum(s[1] for s in scores.values())
    print(f"{'total':{width}s}  {earned:g}/{maximum:g}   ({seconds:.0f} s)")
    written = written_cells(nb)
    if written:  # no autograder can score these: the student compares with the model answers
        print(f"plus {sum(c.points for c in written):g} points of written answers a TA grades "
              f"({', '.join(c.grade_id for c in written)}): compare yours with the model answer in "
              f"solutions/{assignment}/")
    for grade_id, text in failures:
        print(f"\n--- {grade_id}\n{text or '(no output: the cell raised an error before printing)'}")
    return 0 if earned == maximum else 1


class _RememberingValidator(Validator):
    """nbgrader's Validator, keeping the result of the run it prints."""

    results: dict = {}

    def validate(self, filename):
        self.results = super().validate(filename)
        return self.results


def validate(path: Path) -> int:
    """What `nbgrader validate` prints, and an exit status it does not give: 0 when every test passes,
    1 when a test fails, 2 when a locked cell was changed or the file cannot be read."""
    ensure_tools_on_path()
    if read_or_explain(path) is None:
        return 2
    validator = _RememberingValidator(config=nbgrader_api().config)
    validator.validate_and_print(str(path))
    results = validator.results
    if results.get("changed") or results.get("type_changed"):
        return 2
    return 1 if results.get("failed") else 0
