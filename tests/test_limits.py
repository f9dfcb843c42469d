"""The grading limits as nbgrader traitlets, the one-BLAS-thread environment, and the one list of fault names."""
import ast
import io
import json
import math
import os
import pickle
import time
from pathlib import Path

import numpy as np
import pytest
from nbgrader.preprocessors import Execute
from traitlets.config import Config

from graders.checks.calling import CallBudget, Outcome
from graders.checks.failures import GRADING_FAULTS
from graders.checks.tester import Tester
from graders.engine import classgrade, remote
from graders.engine.classgrade import course_limits, grade_class
from graders.engine.sandbox import ONE_BLAS_THREAD, GradingLimits, default_to_one_blas_thread, kernel_environment
from graders.hidden import TIMING_FILE, LiveExpected, honest_time, stated_budgets
from graders.tooling.course import available_assignments, course_root

pytestmark = pytest.mark.unit

ROOT = course_root()
ENGINE = Path(remote.__file__).resolve().parent

DEFAULTS = {"notebook_seconds": 600.0, "memory_bytes": 3 * 2**30, "cpu_seconds": 900, "processes": 64,
            "file_bytes": 256 * 2**20, "output_bytes": 2 * 2**20, "allow_unfenced": False,
            "max_answer_bytes": 16 * 2**20, "show_hidden_expected": False,
            "secret_hidden_inputs": True, "fit_to_measured_time": True, "notebook_time_factor": 2.0,
            "notebook_time_margin": 15.0, "cell_time_factor": 4.0, "cell_time_margin": 3.0,
            "call_floor_seconds": 2.0, "call_reference_factor": 50.0, "call_unmeasured_seconds": 5.0,
            "stated_budget_factor": 1.5, "interrupt_grace_seconds": 1.0}


@pytest.fixture
def environ():
    """os.environ as it was, back after the test (loading a course's nbgrader_config.py sets variables)."""
    saved = dict(os.environ)
    yield os.environ
    os.environ.clear()
    os.environ.update(saved)


def scratch_course(path: Path, config: str) -> Path:
    (path / "nbgrader_config.py").write_text("c = get_config()  # noqa: F821\n" + config, encoding="utf-8")
    return path


# -- the limits ---------------------------------------------------------------------------------------------
def test_defaults():
    limits = GradingLimits()
    assert {name: getattr(limits, name) for name in DEFAULTS} == DEFAULTS
    # with no configuration at all, the per-cell limit is what nbgrader's Execute would use
    assert limits.cell_seconds == float(Execute().timeout)


def test_the_course_grades_with_its_own_config(environ):
    limits = course_limits(ROOT)
    assert limits.cell_seconds == 120.0
    assert {name: getattr(limits, name) for name in DEFAULTS} == DEFAULTS


def test_cell_seconds_follows_execute_timeout_unless_set_itself():
    assert GradingLimits(config=Config({"Execute": {"timeout": 7}})).cell_seconds == 7.0
    # nbgrader's "no timeout"
    assert GradingLimits(config=Config({"Execute": {"timeout": None}})).cell_seconds == math.inf
    assert GradingLimits(config=Config({"Execute": {"timeout": -1}})).cell_seconds == math.inf
    both = Config({"Execute": {"timeout": 7}, "GradingLimits": {"cell_seconds": 9}})
    assert GradingLimits(config=both).cell_seconds == 9.0
    assert GradingLimits(config=both, cell_seconds=8).cell_seconds == 8.0


def test_keyword_limits_as_tests_pass_them():
    limits = GradingLimits(cell_seconds=8, notebook_seconds=240, memory_bytes=2 * 2**30, output_bytes=2**20,
                           processes=64)
    assert (limits.cell_seconds, limits.notebook_seconds, limits.memory_bytes, limits.output_bytes,
            limits.processes, limits.cpu_seconds) == (8.0, 240.0, 2 * 2**30, 2**20, 64, 900)


def test_nbgrader_config_values_reach_grade_class(tmp_path, monkeypatch):
    course = scratch_course(tmp_path, "c.GradingLimits.notebook_seconds = 123\nc.Execute.timeout = 7\n")
    seen = []
    monkeypatch.setattr(classgrade, "_grade_all", lambda root, pending, workers, limits, *rest: seen.append(limits))
    grade_class(["01_neuron"], workers=1, root=course, out=io.StringIO())
    (limits,) = seen
    assert (limits.cell_seconds, limits.notebook_seconds, limits.memory_bytes) == (7.0, 123.0, 3 * 2**30)


def test_explicit_limits_win_over_the_course_config(tmp_path, monkeypatch):
    course = scratch_course(tmp_path, "c.GradingLimits.notebook_seconds = 123\n")
    seen = []
    monkeypatch.setattr(classgrade, "_grade_all", lambda root, pending, workers, limits, *rest: seen.append(limits))
    mine = GradingLimits(cell_seconds=8)
    grade_class(["01_neuron"], workers=1, root=course, limits=mine, out=io.StringIO())
    assert seen == [mine] and mine.notebook_seconds == 600.0


def test_limits_reach_a_worker_and_the_launcher():
    """Workers get the limits pickled; the kernel launcher gets them as JSON, by the names it reads."""
    limits = GradingLimits(config=Config({"Execute": {"timeout": 7}}), memory_bytes=2**30)
    copy = pickle.loads(pickle.dumps(limits))
    assert copy.trait_values(config=True) == limits.trait_values(config=True)
    sent = json.loads(json.dumps(limits.trait_values(config=True)))
    assert sent == dict(DEFAULTS, cell_seconds=7.0, memory_bytes=2**30)
    launcher = (ENGINE / "in_kernel" / "launcher.py").read_text(encoding="utf-8")
    assert {name for name in sent if f'limits["{name}"]' in launcher} == {"memory_bytes", "cpu_seconds",
                                                                           "file_bytes", "processes"}


# -- time limits that fit the work -----------------------------------------------------------------------------
def test_a_call_gets_fifty_times_the_reference_with_a_floor_of_two_seconds():
    limits = GradingLimits(cell_seconds=120)
    assert limits.call_seconds(reference_seconds=0.0001) == 2.0
    assert limits.call_seconds(reference_seconds=0.1) == pytest.approx(5.0)
    assert limits.call_seconds(reference_seconds=10.0) == 120.0  # never more than a cell
    assert limits.call_seconds(stated_seconds=20.0) == 30.0  # a training budget, with room for its own message
    assert limits.call_seconds() == 5.0  # the reference could not run on these inputs
    assert GradingLimits(cell_seconds=120, call_floor_seconds=1, call_reference_factor=10).call_seconds(0.5) == 5.0


def test_cell_and_notebook_limits_fit_the_measured_honest_time():
    honest = {"notebook_seconds": 4.0, "slowest_cell_seconds": 0.5}
    assert GradingLimits(config=Config({"Execute": {"timeout": 120}})).fitted(honest) == (5.0, 23.0)
    assert GradingLimits(config=Config({"Execute": {"timeout": 3}})).fitted(honest) == (3.0, 23.0)  # never above
    assert GradingLimits(config=Config({"Execute": {"timeout": 120}})).fitted(None) == (120.0, 600.0)
    assert GradingLimits(cell_seconds=8, notebook_seconds=240).fitted(honest) == (8.0, 240.0)  # set here: stands
    assert GradingLimits(cell_seconds=120, fit_to_measured_time=False).fitted(honest) == (120.0, 600.0)
    configured = GradingLimits(config=Config({"GradingLimits": {"notebook_seconds": 100.0}}))
    assert pickle.loads(pickle.dumps(configured)).fitted(honest)[1] == 100.0  # a worker's copy knows it too


def test_every_assignment_has_a_measured_honest_time():
    assert TIMING_FILE.is_file(), "run ./course measure-time"
    for assignment in available_assignments("source"):
        entry = honest_time(assignment)
        assert entry and 0 < entry["slowest_cell_seconds"] <= entry["notebook_seconds"], assignment


def test_training_functions_keep_the_budgets_their_checks_state():
    source = LiveExpected("03_backprop", references={})
    assert source.budget_for("train_mlp", (), {}) == CallBudget(stated_seconds=20.0)
    contract = (ROOT / "source" / "CONTRACT.md").read_text(encoding="utf-8")
    for name, seconds in stated_budgets().items():
        row = next(line for line in contract.splitlines() if line.startswith(f"| `{name}("))
        assert f"{seconds:g} s" in row, (name, seconds)


def test_the_reference_is_timed_on_the_same_inputs_before_the_students_call():
    calls = []

    def slow_double(x):
        calls.append(x.shape)
        time.sleep(0.05)
        return 2 * x

    source = LiveExpected("01_neuron", references={"double": slow_double})
    x = np.ones((4, 3))
    budget = source.budget_for("double", (x,), {})
    assert calls == [(4, 3)] and budget.reference_seconds >= 0.05
    source.budget_for("double", (np.zeros((4, 3)),), {})  # same shapes: timed once already
    assert calls == [(4, 3)]
    assert source.budget_for("double", (object(),), {}) == CallBudget()  # not data: the reference cannot run on it
    assert source.budget_for("missing", (x,), {}) == CallBudget()


def test_a_check_passes_the_budget_to_a_function_that_lives_elsewhere():
    seen = []

    class StandIn:
        def __call__(self, *args, **kwargs):
            raise AssertionError("a stand-in is called through invoke")

        def invoke(self, args, kwargs, budget=None):
            seen.append(budget)
            return Outcome(2 * args[0], [], list(args), dict(kwargs), None)

    source = LiveExpected("01_neuron", references={"double": lambda x: 2 * x})
    tester = Tester("01_neuron", "double", {"double": StandIn()}, np.random.default_rng(0), expected=source)
    tester.call("double", np.ones(3))
    assert len(seen) == 1 and seen[0].reference_seconds is not None and seen[0].stated_seconds is None


def test_an_overrun_message_names_the_inputs_and_the_references_time():
    text = remote.overrun_explanation(CallBudget(reference_seconds=0.0004), (np.ones((64, 10)),), {"axis": 1})
    assert text.startswith(" on inputs of shape (64, 10), axis=1; the reference takes 0.4 ms")
    assert "infinite loop" in text and "loop over every element" in text
    assert "budget is 30 s" in remote.overrun_explanation(CallBudget(stated_seconds=30.0), (), {})


# -- one BLAS thread ----------------------------------------------------------------------------------------
def test_one_blas_thread_everywhere(environ):
    environ.pop("OPENBLAS_NUM_THREADS", None)
    environ["OMP_NUM_THREADS"] = "3"  # a user's own choice stands
    default_to_one_blas_thread()
    assert environ["OMP_NUM_THREADS"] == "3" and environ["OPENBLAS_NUM_THREADS"] == "1"
    assert ONE_BLAS_THREAD.items() <= kernel_environment("/usr/bin/python3").items()


def test_the_python_side_spells_the_blas_variables_once():
    sources = [*sorted((ROOT / "graders").rglob("*.py")), ROOT / "nbgrader_config.py"]
    spelled = [path.relative_to(ROOT).as_posix() for path in sources
               for name in ONE_BLAS_THREAD if name in path.read_text(encoding="utf-8")]
    assert spelled == ["graders/engine/sandbox.py"] * len(ONE_BLAS_THREAD)


# -- one list of fault names ----------------------------------------------------------------------------------
def engine_trees():
    for path in sorted(ENGINE.rglob("*.py")):
        yield path.relative_to(ENGINE).as_posix(), ast.parse(path.read_text(encoding="utf-8"))


def test_the_engine_raises_no_fault_by_a_literal():
    literal = [(name, node.lineno) for name, tree in engine_trees() for node in ast.walk(tree)
               if isinstance(node, ast.Call) and getattr(node.func, "id", None) in ("RemoteError", "StudentError")
               and node.args and isinstance(node.args[0], ast.Constant)]
    assert literal == [], "use the fault constants of graders/engine/remote.py"


def test_every_fault_name_the_engine_uses_is_in_grading_faults():
    declared = [node.args[0].value for name, tree in engine_trees() for node in ast.walk(tree)
                if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "_fault"]
    assert declared and set(declared) <= set(GRADING_FAULTS)
    assert {remote.TIMEOUT, remote.KERNEL_DIED, remote.OUTPUT_TOO_LARGE, remote.NO_ANSWER,
            remote.PROTOCOL_ERROR} <= set(GRADING_FAULTS)
    # spelled once, where the constant is made: a fault name anywhere else in the engine is a second list
    spelled = [node.value for name, tree in engine_trees() for node in ast.walk(tree)
               if isinstance(node, ast.Constant) and node.value in GRADING_FAULTS]
    assert sorted(spelled) == sorted(declared)
