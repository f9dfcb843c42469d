"""nbgrader's own `nbgrader autograde` is the safe path: the course's nbgrader_config.py puts SandboxedExecute in
place of nbgrader's Execute, and `./course grade` runs that same preprocessor in its workers, so the example class
gets identical grades, exercise by exercise, either way."""
import os
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

from tests.helpers import copy_course
from graders.engine import preprocessor
from graders.engine.preprocessor import SUMMARY_KEY, SandboxedExecute
from graders.engine.sandbox import ONE_BLAS_THREAD, FenceUnavailable, GradingLimits
from graders.tooling.course import available_assignments, course_root
from graders.tooling.examples import load_class
from graders.tooling.gradebook import course_db_url, exercise_scores, set_course_db_url
from tests.postgres import shared_server

ROOT = course_root()
ASSIGNMENTS = available_assignments("source")


def example_course(path: Path, db_url: str | None = None) -> Path:
    """A scratch course at `path`, built, with the example class in submitted/ (as `./course demo` makes it);
    db_url: its gradebook (None: nbgrader's default SQLite file in it)."""
    from graders.tooling.build import build
    from graders.tooling.examples import write_class
    copy_course(path, ("nbgrader_config.py", "source", "examples"))
    if db_url:
        set_course_db_url(path, db_url)
    build(ASSIGNMENTS, root=path)
    write_class(path / "submitted", path)
    return path


def course_env(course: Path) -> dict:
    env = dict(os.environ, **ONE_BLAS_THREAD, NNFS_COURSE_ROOT=str(course))
    env.pop("MPLBACKEND", None)  # kernels use the inline backend, as in JupyterLab
    return env


def scores(course: Path) -> dict:
    """(assignment, student, exercise) -> score, from the course's gradebook."""
    return {(r.assignment, r.student, r.exercise): r.score
            for r in exercise_scores(course_db_url(course), "nn-from-scratch", ASSIGNMENTS)}


@pytest.fixture(scope="module")
def graded(tmp_path_factory):
    """"nbgrader": the example class graded by plain `nbgrader autograde`, one assignment after another;
    "course": the same class graded by `./course grade`, into PostgreSQL where a server can start (tests/postgres.py).
    Both run at once, each in its own copy."""
    try:  # `./course grade` saves from several processes at once into a database server: the same grades
        server_db = shared_server().new_database("native")
    except pytest.skip.Exception:
        server_db = None  # no PostgreSQL here: both on SQLite
    courses = {"nbgrader": example_course(tmp_path_factory.mktemp("nbgrader")),
               "course": example_course(tmp_path_factory.mktemp("course"), server_db)}
    ours = subprocess.Popen([sys.executable, "-m", "graders", "grade", "--workers", "1"], cwd=courses["course"],
                            env=course_env(courses["course"]), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True)
    for assignment in ASSIGNMENTS:  # nbgrader exits 1 for eve's unreadable notebook: it grades the others
        subprocess.run([sys.executable, "-m", "nbgrader", "autograde", assignment], cwd=courses["nbgrader"],
                       env=course_env(courses["nbgrader"]), capture_output=True, timeout=1800)
    log, _ = ours.communicate(timeout=1800)
    assert ours.returncode == 0, log
    return {name: scores(course) for name, course in courses.items()}


def test_nbgrader_autograde_and_course_grade_give_identical_grades(graded):
    assert graded["nbgrader"] == graded["course"]


def test_both_give_the_example_class_its_expected_scores(graded):
    expected = load_class(ROOT).EXPECTED_SCORES
    for name, rows in graded.items():
        totals = {}
        for (assignment, student, _), score in rows.items():
            totals[assignment, student] = totals.get((assignment, student), 0.0) + score
        for assignment, students in expected.items():
            for student, score in students.items():
                assert totals.get((assignment, student), 0.0) == score, f"{name}: {assignment}/{student}"


def _notebook():
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell("x = 1")]
    return nb


def test_it_refuses_before_any_kernel_starts_where_none_can_be_fenced(monkeypatch, tmp_path):
    def no_fence(limits):
        raise FenceUnavailable("unshare(CLONE_NEWUSER): Operation not permitted")

    monkeypatch.setattr(preprocessor, "_FENCES", {})
    monkeypatch.setattr(preprocessor, "check_fence", no_fence)
    monkeypatch.setattr(preprocessor, "execute_notebook", lambda *a, **k: pytest.fail("a kernel was started"))
    with pytest.raises(FenceUnavailable):
        SandboxedExecute(limits=GradingLimits(), course_root=str(tmp_path)).preprocess(
            _notebook(), {"metadata": {"path": str(tmp_path)}})


def test_it_runs_in_the_notebook_folder_with_the_course_limits_and_hides_the_course(monkeypatch, tmp_path):
    """Under nbgrader the limits come from the config (c.Execute.timeout sets the cell limit), the working copy
    is resources' path (the autograded folder) and the course and the grader's clone are hidden."""
    from traitlets.config import Config
    seen = {}

    def record(nb, workdir, *, limits, hide):
        seen.update(workdir=workdir, limits=limits, hide=hide)
        return preprocessor.ExecutionSummary(seconds=0.5)

    monkeypatch.setattr(preprocessor, "_FENCES", {False: {}})
    monkeypatch.setattr(preprocessor, "execute_notebook", record)
    config = Config()
    config.CourseDirectory.root = str(tmp_path)
    config.Execute.timeout = 77
    folder = tmp_path / "autograded" / "ada" / "01_neuron"
    folder.mkdir(parents=True)
    _, resources = SandboxedExecute(config=config).preprocess(_notebook(), {"metadata": {"path": str(folder)}})
    assert seen["workdir"] == folder.resolve()
    assert seen["limits"].cell_seconds == 77
    assert str(tmp_path.resolve()) in seen["hide"] and str(Path(preprocessor.__file__).parents[2]) in seen["hide"]
    assert resources[SUMMARY_KEY].seconds == 0.5


def test_course_grade_jobs_carry_json_and_files_never_a_path(tmp_path):
    from graders.engine.classgrade import job_payload
    folder = tmp_path / "autograded" / "ada" / "01_neuron"
    folder.mkdir(parents=True)
    nbformat.write(_notebook(), str(folder / "neuron.ipynb"))
    (folder / "checks_01_neuron.npz").write_bytes(b"data")
    (folder / "elsewhere").symlink_to(tmp_path)
    payload = job_payload(folder / "neuron.ipynb")
    assert nbformat.reads(payload["notebook"], as_version=4).cells[0].source == "x = 1"
    assert payload["name"] == "neuron.ipynb" and payload["files"] == {"checks_01_neuron.npz": b"data"}
    assert str(tmp_path) not in repr(payload)
