"""Time limits that fit the work: a function that never returns costs its own points and a few seconds, slow work
costs at most 30 s beyond an honest notebook, and the process cap stops a fork bomb but not an honest kernel.

The figures come from benchmarks/slow_work.py (run it for the numbers); the assertions here leave room for a
loaded machine: the allowed excess grows with the honest notebook's own time, which measures the load.
"""
import ast
import importlib.util

import nbformat

from graders.engine.execute import execute_notebook, parse_test_cell
from graders.engine.sandbox import GradingLimits
from graders.tooling.course import course_root, nbgrader_meta, notebook_path, read_notebook
from graders.tooling.examples import replace_function

ROOT = course_root()
LOOP = "def {name}(*args, **kwargs):\n    while True:\n        pass\n"


def _benchmark():
    spec = importlib.util.spec_from_file_location("slow_work", ROOT / "benchmarks" / "slow_work.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def with_function_replaced(assignment: str, name: str, code: str):
    """The assignment's full solution (its source notebook, hidden tests included) with `name` replaced."""
    nb = read_notebook(notebook_path(assignment, "source"))
    for cell in nb.cells:
        if (cell.cell_type == "code" and nbgrader_meta(cell).get("solution")
                and (new := replace_function(cell.source, name, code)) is not None):
            cell.source = new
            return nb
    raise ValueError(f"no solution cell of {assignment} defines {name}")


def cell_scores(nb) -> dict:
    """(exercise, level) -> (points earned, points) of each test cell, by nbgrader's rule: an error output
    earns nothing."""
    scores = {}
    for cell in nb.cells:
        meta = nbgrader_meta(cell)
        if meta.get("grade") and not meta.get("solution"):
            failed = any(o.get("output_type") == "error" for o in cell.get("outputs", []))
            scores[parse_test_cell(cell.source)] = (0.0 if failed else float(meta["points"]), float(meta["points"]))
    return scores


def callers_of(assignment: str, name: str) -> set:
    """The functions of the full solution that call `name`, directly or through each other."""
    calls = {}
    for cell in read_notebook(notebook_path(assignment, "source")).cells:
        if cell.cell_type == "code" and nbgrader_meta(cell).get("solution"):  # not the written answers
            for node in ast.parse(cell.source).body:
                if isinstance(node, ast.FunctionDef):
                    calls[node.name] = {n.id for n in ast.walk(node) if isinstance(n, ast.Name)}
    found, grown = {name}, True
    while grown:
        more = {fn for fn, used in calls.items() if used & found} - found
        found |= more
        grown = bool(more)
    return found


def test_a_function_that_never_returns_costs_only_its_own_points():
    """04, the full solution with scaled_dot_product_attention never returning: that exercise's points and those
    of the functions that call it are lost, every other exercise earns its points (today: 0 of 69)."""
    assignment, name = "04_attention", "scaled_dot_product_attention"
    nb = with_function_replaced(assignment, name, LOOP.format(name=name))
    summary = execute_notebook(nb, ROOT / "release" / assignment, limits=GradingLimits(config=_course_config()))
    scores = cell_scores(nb)
    lost = {exercise for (exercise, _), (earned, points) in scores.items() if earned < points}
    callers = callers_of(assignment, name)
    # a backward's checks run the student's forward first (Tester.backward_check), so they fail with it
    assert lost == callers | {f"{fn[:-len('_forward')]}_backward" for fn in callers if fn.endswith("_forward")}, \
        summary.faults
    assert {"causal_mask", "layernorm_forward", "ffn_backward", "embedding_backward", "sample"} <= {
        exercise for exercise, _ in scores} - lost
    total = sum(points for _, points in scores.values())
    expected = total - sum(points for (exercise, _), (_, points) in scores.items() if exercise in lost)
    assert sum(earned for earned, _ in scores.values()) == expected
    report = next(c for c in nb.cells if _is_test_of(c, name)).outputs[0]["data"]["text/plain"]
    assert "did not return within 2 s on inputs of shape" in report and "the reference takes" in report
    assert not summary.grader_errors


def _is_test_of(cell, exercise):
    meta = nbgrader_meta(cell)
    is_test = bool(meta.get("grade")) and not meta.get("solution")
    return is_test and (parse_test_cell(cell.source) or ("",))[0] == exercise


def _course_config():
    from graders.tooling.build import nbgrader_api
    return nbgrader_api(ROOT).config


def test_slow_work_costs_at_most_30_s_beyond_an_honest_notebook():
    rows = _benchmark().run("01_neuron")
    honest = rows["honest"]
    assert honest["score"] == 53 and not honest["faults"]
    slack = honest["seconds"]  # a loaded machine stretches every run as much as it stretches the honest one
    for student in ("never_returns", "ignores_interrupts", "sleeps"):
        assert rows[student]["excess"] <= 30 + slack, (student, rows[student])
        assert not rows[student]["errors"], (student, rows[student])
    # a sigmoid that never returns costs sigmoid and the exercises whose functions call it, nothing else
    assert rows["never_returns"]["score"] == rows["ignores_interrupts"]["score"] == 53 - _points_calling("sigmoid")


def _points_calling(name: str) -> float:
    callers = callers_of("01_neuron", name)
    return sum(float(nbgrader_meta(c)["points"]) for c in read_notebook(notebook_path("01_neuron", "source")).cells
               if any(_is_test_of(c, fn) for fn in callers))


FORK_BOMB = ("import os, time\nfor _ in range(100000):\n    if os.fork() == 0:\n        time.sleep(60)\n"
             "        os._exit(0)\n")


def test_the_default_process_cap_stops_a_fork_bomb_and_lets_an_honest_notebook_run():
    assert GradingLimits().processes == 64
    nb = read_notebook(notebook_path("01_neuron", "source"))
    setup = next(i for i, c in enumerate(nb.cells) if "setup" in c.metadata.get("tags", []))
    nb.cells.insert(setup + 1, nbformat.v4.new_code_cell(FORK_BOMB))
    summary = execute_notebook(nb, ROOT / "release" / "01_neuron", limits=GradingLimits(config=_course_config()))
    bomb = nb.cells[setup + 1]
    assert any(o.get("ename") in ("BlockingIOError", "OSError") for o in bomb.outputs), bomb.outputs
    scores = cell_scores(nb)
    assert all(earned == points for earned, points in scores.values()), summary.faults
