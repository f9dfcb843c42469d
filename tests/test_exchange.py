"""nbgrader's exchange delivers what a student needs and nothing more: the release notebook and its check
data (CourseDirectory.include), with which the visible checks run in the student's folder."""
import os
import subprocess
import sys

import pytest

from graders.checks.expected import RecordedExpected, data_file_names, find_check_data
from graders.checks.registry import exercises
from graders.checks.runner import run_exercise
from graders.tooling.reference import reference
from tests.helpers import copy_course

pytestmark = [pytest.mark.e2e]
ASSIGNMENT = "01_neuron"


def nbgrader(*args, cwd, env):
    run = subprocess.run([sys.executable, "-m", "nbgrader", *args], cwd=cwd, env=env, capture_output=True,
                         text=True, timeout=300)
    assert run.returncode == 0, run.stdout + run.stderr
    return run


def test_release_and_fetch_carry_the_check_data_and_no_answer_key(tmp_path, monkeypatch):
    course, exchange, student = tmp_path / "course", tmp_path / "exchange", tmp_path / "student"
    for folder in (course, exchange, student):
        folder.mkdir()
    copy_course(course, ("nbgrader_config.py", "source", "pyproject.toml"))
    env = dict(os.environ, NNFS_COURSE_ROOT=str(course))
    exchange_option = f"--Exchange.root={exchange}"
    subprocess.run([sys.executable, "-m", "graders", "build", ASSIGNMENT], cwd=course, env=env, check=True,
                   capture_output=True, timeout=300)
    nbgrader("release_assignment", ASSIGNMENT, exchange_option, cwd=course, env=env)
    nbgrader("fetch_assignment", ASSIGNMENT, "--course=nn-from-scratch", exchange_option, cwd=student, env=env)

    fetched = student / ASSIGNMENT
    names = sorted(p.name for p in fetched.iterdir())
    assert names == sorted(["neuron.ipynb", *data_file_names(ASSIGNMENT)]), names
    assert "BEGIN SOLUTION" not in (fetched / "neuron.ipynb").read_text(encoding="utf-8")

    monkeypatch.chdir(fetched)
    monkeypatch.delenv("NNFS_CHECK_DATA", raising=False)
    data = find_check_data(ASSIGNMENT)
    assert isinstance(data, RecordedExpected) and data.path.parent == fetched
    namespace = reference(ASSIGNMENT)
    for exercise in exercises(ASSIGNMENT):
        report = run_exercise(exercise, namespace, "visible", expected=data)
        assert report.passed, report.text()
