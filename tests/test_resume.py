"""A grading run killed half way picks up where it stopped, and ends with the same grades as an uninterrupted one,
with the gradebook in nbgrader's default SQLite file and on a real PostgreSQL server (tests/postgres.py)."""
import os
import shutil
import signal
import subprocess
import sys
import time

import pytest

from tests.helpers import copy_course
from tests.postgres import postgres  # noqa: F401  (the fixture)
from graders.tooling.course import course_root
from graders.tooling.examples import load_class
from graders.tooling.gradebook import set_course_db_url
from graders.engine.sandbox import ONE_BLAS_THREAD

ROOT = course_root()


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_a_killed_run_resumes_and_gives_the_expected_grades(tmp_path, backend, request):
    copy_course(tmp_path, ("nbgrader_config.py", "source", "examples"))
    if backend == "postgresql":  # sqlite: the course's own db_url, nbgrader's default gradebook.db
        set_course_db_url(tmp_path, request.getfixturevalue("postgres").new_database("resume"))
    env = dict(os.environ, **ONE_BLAS_THREAD, NNFS_COURSE_ROOT=str(tmp_path))
    env.pop("MPLBACKEND", None)
    code = ("from graders.tooling.build import build; from graders.tooling.examples import write_class; "
            "from graders.tooling.course import course_root; build(); "
            "write_class(course_root() / 'submitted')")
    subprocess.run([sys.executable, "-c", code], env=env, check=True, timeout=300)
    for student in list((tmp_path / "submitted").iterdir()):  # keep 01_neuron only: this test is about resuming
        for other in student.iterdir():
            if other.name != "01_neuron":
                shutil.rmtree(other)

    grading = subprocess.Popen([sys.executable, "-m", "graders", "grade", "--workers", "1"], cwd=tmp_path, env=env,
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True)
    done = tmp_path / ".grading" / "done" / "01_neuron"
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and len(list(done.glob("*.json"))) < 3:
        time.sleep(0.2)
    os.killpg(grading.pid, signal.SIGKILL)  # the whole command and its workers, mid-batch
    grading.wait()
    finished_before = len(list(done.glob("*.json")))
    assert 3 <= finished_before < 6

    again = subprocess.run([sys.executable, "-m", "graders", "grade"], cwd=tmp_path, env=env, capture_output=True,
                           text=True, timeout=600)
    assert again.returncode == 0, again.stdout + again.stderr
    assert f"{finished_before} already graded" in again.stdout

    export = tmp_path / "grades.csv"
    subprocess.run([sys.executable, "-m", "nbgrader", "export", "--to", str(export)], cwd=tmp_path, env=env,
                   check=True, capture_output=True, timeout=300)
    rows = [line.split(",") for line in export.read_text().splitlines()[1:]]
    got = {row[3]: float(row[9]) for row in rows if row[0] == "01_neuron"}
    assert got == {s: float(v) for s, v in load_class(ROOT).EXPECTED_SCORES["01_neuron"].items()}
