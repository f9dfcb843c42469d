"""The README's main job, end to end through real nbgrader, in a scratch copy of the course.

It proves: each source notebook (ada hands it in verbatim) runs clean and earns every autograded point (its
written answers wait for a TA, and count in the maximum); each release
notebook (dev hands it in untouched) runs without crashing the grader and earns 0; the example class gets
exactly its expected scores; feedback and CSVs are written and never show hidden test code; the self-check
gives a self-learner the same verdict without a gradebook.

The gradebook's tests run on both backends nbgrader's db_url is used with here: its default SQLite file and a
real PostgreSQL server (tests/postgres.py), and the two demos' reports are compared row by row.
"""
import csv
import json
import os
import subprocess
import sys

import pytest

from tests.helpers import copy_course
from tests.postgres import shared_server
from graders.tooling.course import course_root, total_points
from graders.tooling.examples import load_class
from graders.tooling.gradebook import set_course_db_url
from graders.engine.sandbox import ONE_BLAS_THREAD

ROOT = course_root()
#: The gradebooks the demo runs on: the course's configured db_url (nbgrader's default, a SQLite file in the
#: course folder), and a database of its own on the session's PostgreSQL server.
BACKENDS = ("sqlite", "postgresql")


@pytest.fixture(scope="module")
def demos(tmp_path_factory):
    """backend -> (course, demo's stdout, env): each backend's demo runs once, when a test first asks for it."""
    runs = {}

    def run(backend: str):
        if backend not in runs:
            course = tmp_path_factory.mktemp(f"course-{backend}")
            copy_course(course, ("nbgrader_config.py", "source", "examples"))
            if backend == "postgresql":
                set_course_db_url(course, shared_server().new_database("demo"))
            env = dict(os.environ, **ONE_BLAS_THREAD, NNFS_COURSE_ROOT=str(course))
            env.pop("MPLBACKEND", None)  # kernels must use the inline backend, as in JupyterLab, so figures render
            demo = subprocess.run([sys.executable, "-m", "graders", "demo"], cwd=course, env=env,
                                  capture_output=True, text=True, timeout=1800)
            assert demo.returncode == 0, demo.stdout + demo.stderr
            runs[backend] = course, demo.stdout, env
        return runs[backend]
    return run


@pytest.fixture(scope="module", params=BACKENDS)
def demo(demos, request):
    """(course, demo's stdout, env) of the demo on each backend in turn."""
    return demos(request.param)


def test_the_example_class_gets_exactly_its_expected_scores(demo):
    course, _, _ = demo
    expected = load_class(ROOT).EXPECTED_SCORES
    with open(course / "reports" / "grades.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    got = {(row["assignment"], row["student_id"]): float(row["score"]) for row in rows}
    for assignment, students in expected.items():
        for student, score in students.items():
            assert got.get((assignment, student), 0.0) == score, f"{assignment}/{student}"
    # nbgrader's maximum counts the written answers, which no autograded score includes yet
    assert {(row["assignment"], float(row["max_score"])) for row in rows} == {(a, total_points(a)) for a in expected}


def test_source_notebooks_run_clean_and_release_notebooks_score_zero(demo):
    course, _, _ = demo
    for path in (course / "autograded" / "ada").rglob("*.ipynb"):
        errors = [o for c in json.loads(path.read_text())["cells"] for o in c.get("outputs", [])
                  if o["output_type"] == "error" or o.get("name") == "stderr"]
        assert not errors, f"{path}: {errors[:1]}"
        images = [o for c in json.loads(path.read_text())["cells"] for o in c.get("outputs", [])
                  if "image/png" in o.get("data", {})]
        assert len(images) >= 3, f"{path}: the notebook's figures did not render inline ({len(images)} images)"
    with open(course / "reports" / "exercise_scores.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert {r["assignment"] for r in rows if r["student"] == "dev"} == set(load_class(ROOT).SUBMISSIONS)
    assert all(float(r["score"]) == 0 for r in rows if r["student"] == "dev")
    assert all(float(r["score"]) == float(r["max_score"]) for r in rows if r["student"] == "ada")


def test_03_pictures_come_before_the_code_and_again_from_it(demo):
    """03 draws each concept's picture before its exercise from the recordings its release ships, so dev (who
    wrote nothing) sees 8 figures (6 recorded, the digits, the diagnosis from its recording), and ada's full
    solution draws them again from her own code: 14."""
    course, _, _ = demo

    def figures(student: str) -> int:
        path = course / "autograded" / student / "03_backprop" / "backprop.ipynb"
        return sum("image/png" in output.get("data", {}) for cell in json.loads(path.read_text())["cells"]
                   for output in cell.get("outputs", []))

    assert figures("dev") == 8
    assert figures("ada") == 14


def test_feedback_is_written_and_shows_diagnostics_but_no_hidden_code(demo):
    course, _, _ = demo
    cleo = (course / "feedback" / "cleo" / "01_neuron" / "neuron.html").read_text()
    assert "N = 4 times too large" in cleo and "z &gt;= 0" in cleo
    for html in (course / "feedback").rglob("*.html"):
        text = html.read_text()
        assert "hidden=True" not in text and "BEGIN HIDDEN TESTS" not in text, html


def test_the_demo_says_what_it_wrote_and_why_a_submission_failed(demo):
    course, out, _ = demo
    assert "01_neuron/eve: NotJSONError" in out
    eve = (course / "feedback" / "eve" / "01_neuron" / "neuron.html").read_text()
    assert "could not be read" in eve and "NotJSONError" in eve
    for name in ("exercise_scores.csv", "grades.csv", "autograde_seconds.csv"):
        assert str(course / "reports" / name) in out
        assert (course / "reports" / name).exists()
    assert "total" in out and "cleo" in out


def test_selfcheck_gives_a_self_learner_the_same_verdict(demos):
    course, _, env = demos("sqlite")  # no gradebook involved: one backend is enough
    notebook = course / "submitted" / "cleo" / "01_neuron" / "neuron.ipynb"
    run = subprocess.run([sys.executable, "-m", "graders", "selfcheck", str(notebook)], env=env,
                         capture_output=True, text=True, timeout=600)
    assert run.returncode == 1, run.stdout + run.stderr
    assert "total                              36/53" in run.stdout
    assert "plus 2 points of written answers a TA grades (written_loss_floor)" in run.stdout
    assert "N = 4 times too large" in run.stdout and "must be 0 (use z > 0" in run.stdout
    assert "hidden=True" not in run.stdout
    broken = course / "submitted" / "eve" / "01_neuron" / "neuron.ipynb"
    run = subprocess.run([sys.executable, "-m", "graders", "selfcheck", str(broken)], env=env,
                         capture_output=True, text=True, timeout=60)
    assert run.returncode == 2 and "not a valid notebook" in run.stdout


def test_grading_again_changes_nothing_and_nbgrader_still_reads_the_gradebook(demo):
    course, _, env = demo
    before = (course / "reports" / "grades.csv").read_text()
    run = subprocess.run([sys.executable, "-m", "graders", "grade"], env=env, cwd=course, capture_output=True,
                         text=True, timeout=600)
    assert run.returncode == 0, run.stdout + run.stderr
    assert "0 to grade" in run.stdout
    run = subprocess.run([sys.executable, "-m", "graders", "grade", "01_neuron", "--force"], env=env, cwd=course,
                         capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stdout + run.stderr
    export = course / "regraded.csv"
    run = subprocess.run([sys.executable, "-m", "nbgrader", "export", "--to", str(export)], env=env, cwd=course, capture_output=True,
                         text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    assert export.read_text() == before
    run = subprocess.run([sys.executable, "-m", "nbgrader", "generate_feedback", "01_neuron", "--force"], env=env, cwd=course,
                         capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr


def test_postgresql_and_sqlite_give_the_same_reports(demos):
    """The same grades whatever the gradebook: nbgrader's own CSV export row for row, and the per-exercise
    scores. (Row order is compared too: nbgrader sorts students by name, which the example class leaves
    empty, so the order of ties is the database's; it is the same on both.)"""
    (sqlite, _, _), (postgresql, out, _) = demos("sqlite"), demos("postgresql")
    assert "gradebook:             postgresql+psycopg://" in out and shared_server().password not in out
    for name in ("grades.csv", "exercise_scores.csv"):
        with open(sqlite / "reports" / name, newline="") as a, open(postgresql / "reports" / name, newline="") as b:
            assert list(csv.reader(b)) == list(csv.reader(a)), name
