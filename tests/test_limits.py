"""The grading limits as nbgrader traitlets, the one-BLAS-thread environment, and the one list of fault names."""
import ast
import io
import json
import math
import os
import pickle
from pathlib import Path

import pytest
from nbgrader.preprocessors import Execute
from traitlets.config import Config

from graders.checks.failures import GRADING_FAULTS
from graders.engine import classgrade, remote
from graders.engine.classgrade import course_limits, grade_class
from graders.engine.sandbox import ONE_BLAS_THREAD, GradingLimits, default_to_one_blas_thread, kernel_environment
from graders.tooling.course import course_root

pytestmark = pytest.mark.unit

ROOT = course_root()
ENGINE = Path(remote.__file__).resolve().parent

DEFAULTS = {"notebook_seconds": 600.0, "memory_bytes": 3 * 2**30, "cpu_seconds": 900, "processes": 256,
            "file_bytes": 256 * 2**20, "output_bytes": 2 * 2**20, "allow_unfenced": False,
            "max_answer_bytes": 16 * 2**20, "show_hidden_expected": False,
            "secret_hidden_inputs": False}


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
