"""The source notebooks follow the course's rules, and release/ and solutions/ are exactly what the build makes.

Rules (CONTRIBUTING.md): solution and setup cells hold definitions only; every test cell is a two-line call
of `check` for an exercise that has checks at that level; the stated total is the sum of the points (test cells
and written answers); every
function of the contract (source/CONTRACT.md) is an exercise.
"""
import ast
import re
import shutil
from pathlib import Path

import pytest

from graders.tooling.authoring import notebook_to_text, text_to_notebook
from graders.tooling.build import build
from graders.tooling.course import (available_assignments, course_root, nbgrader_meta, notebook_path, read_notebook,
                                    graded_cells, total_points, written_cells)
import graders.hidden  # noqa: F401  (registers the hidden checks)
from graders.checks.registry import checks

ASSIGNMENTS = available_assignments("source")
CURRICULUM = course_root() / "source" / "CONTRACT.md"


def contract_functions(assignment: str) -> list[str]:
    """Function names in the contract's table for an assignment: the `name(` of every signature in the first
    column of the rows under the heading `## <assignment>...` (one row may list several functions)."""
    names, section = [], None
    for line in CURRICULUM.read_text(encoding="utf-8").splitlines():
        if line.startswith("## "):
            section = line[3:].split(":")[0].split()[0]
        elif section == assignment and line.startswith("| `"):
            names += re.findall(r"`(\w+)\(", line.split("|")[1])
    return names


@pytest.mark.parametrize("assignment", ASSIGNMENTS)
def test_solution_and_setup_cells_only_define_things(assignment):
    allowed = (ast.Import, ast.ImportFrom, ast.FunctionDef, ast.ClassDef, ast.Assign, ast.AnnAssign, ast.Expr)
    for cell in read_notebook(notebook_path(assignment)).cells:
        meta = nbgrader_meta(cell)
        if cell.cell_type != "code" or not (meta.get("solution") or "setup" in cell.metadata.get("tags", [])):
            continue
        for node in ast.parse(cell.source).body:
            assert isinstance(node, allowed), f"{meta.get('grade_id', 'setup cell')}: top-level {type(node).__name__}"
            if isinstance(node, ast.Expr):  # only docstrings
                assert isinstance(node.value, ast.Constant), f"{meta.get('grade_id')}: a top-level call"
            if isinstance(node, (ast.Assign, ast.AnnAssign)):
                assert not any(isinstance(n, ast.Call) and not _is_numpy_constant(n) for n in ast.walk(node)), \
                    f"{meta.get('grade_id', 'setup cell')}: a top-level assignment calls a function"


def _is_numpy_constant(call: ast.Call) -> bool:
    return isinstance(call.func, ast.Attribute) and isinstance(call.func.value, ast.Name) and call.func.value.id == "np"


@pytest.mark.parametrize("assignment", ASSIGNMENTS)
def test_test_cells_call_registered_checks_and_points_add_up(assignment):
    nb = read_notebook(notebook_path(assignment))
    cells = graded_cells(nb)
    assert cells, "no test cells"
    for cell in cells:
        assert checks(cell.exercise, cell.level), f"{cell.grade_id}: no {cell.level} checks for {cell.exercise}"
        if cell.level == "visible":
            assert cell.source == f'from graders import check\ncheck("{cell.exercise}")', cell.grade_id
        else:
            assert f'### BEGIN HIDDEN TESTS\ncheck("{cell.exercise}", hidden=True)\n### END HIDDEN TESTS' in cell.source
        assert cell.points > 0
    stated = re.search(r"\*\*Total: (\d+) points\*\*", nb.cells[0].source)
    assert stated, "the first cell must state **Total: N points**"
    assert int(stated.group(1)) == total_points(assignment), "the stated total counts test cells and written answers"
    levels = {(c.exercise, c.level) for c in cells}
    for exercise in {c.exercise for c in cells}:
        assert {(exercise, "visible"), (exercise, "hidden")} <= levels, f"{exercise}: a visible and a hidden cell"


@pytest.mark.parametrize("assignment", ASSIGNMENTS)
def test_written_answers_are_manually_graded_cells_whose_rubric_stays_in_source(assignment):
    """A written answer is an nbgrader manually graded markdown cell (`written_<topic>`, 2-3 points) after its
    question; the source holds a model answer and a TA rubric (a mark scheme region), the release only nbgrader's
    stub, and solutions/ the model answer without the rubric."""
    source = read_notebook(notebook_path(assignment))
    released = {nbgrader_meta(c).get("grade_id"): c for c in read_notebook(notebook_path(assignment, "release")).cells}
    solved = {nbgrader_meta(c).get("grade_id"): c for c in read_notebook(notebook_path(assignment, "solutions")).cells}
    for index, cell in enumerate(source.cells):
        meta = nbgrader_meta(cell)
        if not (meta.get("grade") and meta.get("solution")):
            continue
        assert cell.cell_type == "markdown", f"{meta['grade_id']}: a graded answer cell must be markdown"
        assert {"grade_id", "locked", "points", "schema_version"} <= meta.keys() and not meta["locked"]
        assert meta["grade_id"].startswith("written_") and 2 <= meta["points"] <= 3, meta
        assert source.cells[index - 1].cell_type == "markdown" and not nbgrader_meta(source.cells[index - 1]), \
            f"{meta['grade_id']}: a markdown question cell goes right before its answer cell"
        model, rubric = cell.source.split("### BEGIN MARK SCHEME\n")
        assert model.strip() and rubric.strip().endswith("### END MARK SCHEME"), meta["grade_id"]
        assert released[meta["grade_id"]].source == "YOUR ANSWER HERE"
        assert solved[meta["grade_id"]].source.strip() == model.strip()
    assert len(written_cells(source)) <= 2


@pytest.mark.parametrize("assignment", ASSIGNMENTS)
def test_every_contract_function_is_an_exercise(assignment):
    """source/CONTRACT.md and the notebook's test cells name the same functions, in both directions."""
    listed = contract_functions(assignment)
    assert listed, f"source/CONTRACT.md has no table under a heading `## {assignment}`"
    twice = sorted({name for name in listed if listed.count(name) > 1})
    assert not twice, f"functions listed twice in source/CONTRACT.md: {twice}"
    exercises = {c.exercise for c in graded_cells(read_notebook(notebook_path(assignment)))}
    missing = sorted(set(listed) - exercises)
    assert not missing, f"contract functions with no test cells: {missing}"
    unlisted = sorted(exercises - set(listed))
    assert not unlisted, f"exercises with test cells missing from source/CONTRACT.md: {unlisted}"


@pytest.mark.parametrize("assignment", ASSIGNMENTS)
def test_text_form_round_trips_exactly(assignment):
    nb = read_notebook(notebook_path(assignment))
    again = text_to_notebook(notebook_to_text(nb))
    assert [(c.cell_type, c.source, c.metadata) for c in again.cells] == \
           [(c.cell_type, c.source, c.metadata) for c in nb.cells]


def test_release_and_solutions_are_what_the_build_makes(tmp_path):
    """The drift test: rebuild from source/ in a scratch course folder and compare every file (notebooks and
    check data) byte for byte."""
    root = course_root()
    shutil.copy(root / "nbgrader_config.py", tmp_path)
    shutil.copytree(root / "source", tmp_path / "source")
    build(ASSIGNMENTS, root=tmp_path)
    for kind in ("release", "solutions"):
        built = sorted(p.relative_to(tmp_path / kind) for p in (tmp_path / kind).rglob("*") if p.is_file())
        committed = sorted(p.relative_to(root / kind) for p in (root / kind).rglob("*") if p.is_file())
        assert built == committed, f"{kind}/ holds other files than the build makes: run ./course build"
        for rel in built:
            assert (tmp_path / kind / rel).read_bytes() == (root / kind / rel).read_bytes(), \
                f"{kind}/{rel} differs from what the build makes from source/: run ./course build and commit"


def test_release_notebooks_hold_no_solutions_or_hidden_tests():
    for assignment in ASSIGNMENTS:
        text = Path(notebook_path(assignment, "release")).read_text(encoding="utf-8")
        assert "BEGIN SOLUTION" not in text and "hidden=True" not in text, assignment


@pytest.mark.parametrize("assignment", ASSIGNMENTS)
def test_test_cells_let_run_all_go_on_past_a_failed_check(assignment):
    for cell in read_notebook(notebook_path(assignment)).cells:
        meta = nbgrader_meta(cell)
        if meta.get("grade") and not meta.get("solution"):
            assert "raises-exception" in cell.metadata.get("tags", []), meta["grade_id"]
