"""`./course watch` takes a submission from nbgrader's exchange to the student's fetched feedback with nobody at the
keyboard: students submit with nbgrader's own `submit` (each with a HOME of their own, as on a JupyterHub), the
watcher collects, grades in the fence, generates and releases the feedback, and nbgrader's own `fetch_feedback`
brings it back. A resubmission replaces the grade, a broken notebook gets its reason, and a watcher killed
mid-grade and started again loses nothing and logs nothing twice.

The seconds from a warm watcher's view of a submit to feedback fetchable are written to
test-artifacts/watch/timings.json."""
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import nbformat
import pytest
from nbgrader.api import Gradebook

from graders.engine.sandbox import ONE_BLAS_THREAD
from graders.tooling.course import total_points
from graders.tooling.examples import Submission, load_class, make_submission
from graders.tooling.gradebook import course_db_url
from tests.helpers import COURSE, copy_course

ASSIGNMENT = "01_neuron"
COURSE_ID = "nn-from-scratch"
NOTEBOOK = "neuron.ipynb"
ARTIFACTS = COURSE / "test-artifacts" / "watch"
EXAMPLE_CLASS = load_class(COURSE)
#: examples/students.py: ada hands in the source notebook (every autograded point), ben a partial one; MAX
#: counts the written answer too, which waits for a TA
FULL, PARTIAL = (EXAMPLE_CLASS.SUBMISSIONS[ASSIGNMENT][name] for name in ("ada", "ben"))
FULL_SCORE, PARTIAL_SCORE = (float(EXAMPLE_CLASS.EXPECTED_SCORES[ASSIGNMENT][name]) for name in ("ada", "ben"))
MAX = f"/{total_points(ASSIGNMENT):g}"


def nbgrader(*args, cwd: Path, env: dict) -> subprocess.CompletedProcess:
    run = subprocess.run([sys.executable, "-m", "nbgrader", *args], cwd=cwd, env=env, capture_output=True, text=True,
                         timeout=300, check=False)
    assert run.returncode == 0, run.stdout + run.stderr
    return run


class Student:
    """A student with a HOME and a folder of their own, who uses nbgrader's exchange commands."""

    def __init__(self, name: str, base: Path, exchange: Path):
        self.name, self.folder = name, base / name
        home = base / f"{name}-home"
        for folder in (self.folder, home):
            folder.mkdir()
        self.env = dict(os.environ, HOME=str(home))
        self.env.pop("NNFS_COURSE_ROOT", None)
        self.options = (f"--course={COURSE_ID}", f"--Exchange.root={exchange}", f"--student={name}")
        nbgrader("fetch_assignment", ASSIGNMENT, *self.options[:2], cwd=self.folder, env=self.env)

    def submit(self, submission: Submission, corrupt: bool = False) -> float:
        """Hand in `submission` with nbgrader submit; returns the monotonic time just after it returned."""
        text = nbformat.writes(make_submission(ASSIGNMENT, submission))
        (self.folder / ASSIGNMENT / NOTEBOOK).write_text(text[: len(text) // 2] if corrupt else text, encoding="utf-8")
        time.sleep(1.1)  # nbgrader's timestamps have one-second names: a resubmission must get a new one
        nbgrader("submit", ASSIGNMENT, *self.options, cwd=self.folder, env=self.env)
        return time.monotonic()

    def feedback(self) -> list[Path]:
        """nbgrader fetch_feedback, then every feedback page fetched so far (one folder per submission time)."""
        nbgrader("fetch_feedback", ASSIGNMENT, *self.options, cwd=self.folder, env=self.env)
        return sorted((self.folder / ASSIGNMENT / "feedback").glob(f"*/{NOTEBOOK.replace('.ipynb', '.html')}"))


class Watcher:
    """`python -m graders watch` in the course, in a session of its own (so a SIGKILL takes its workers too)."""

    def __init__(self, course: Path, env: dict, log: Path):
        self.log = log
        with open(log, "ab") as handle:
            self.process = subprocess.Popen([sys.executable, "-m", "graders", "watch", "--poll", "1"], cwd=course,
                                            env=env, stdout=handle, stderr=subprocess.STDOUT,
                                            start_new_session=True)
        self.offset = log.stat().st_size

    def lines(self) -> list[str]:
        """The log lines this watcher wrote about submissions (a score, or why not)."""
        text = self.log.read_bytes()[self.offset:].decode(errors="replace")
        return [line for line in text.splitlines() if f" {ASSIGNMENT} " in line]

    def wait_for(self, student: str, count: int = 1, timeout: float = 400) -> str:
        """The `count`-th log line about `student`; fails with the log if it does not come."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            mine = [line for line in self.lines() if line.split()[2] == student]
            if len(mine) >= count:
                return mine[count - 1]
            assert self.process.poll() is None, self.log.read_text(errors="replace")
            time.sleep(0.3)
        raise AssertionError(f"no log line about {student} within {timeout} s:\n{self.log.read_text()}")

    def kill(self) -> None:
        os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait()

    def stop(self) -> int:
        """SIGTERM, as a service manager stops it; returns its exit status."""
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.kill()
        return self.process.returncode


def scores(course: Path) -> dict[str, float]:
    """student -> score of every submission of ASSIGNMENT in the course's gradebook (sanitized ones too)."""
    with Gradebook(course_db_url(course), COURSE_ID) as gb:
        return {s.student.id: s.score for s in gb.assignment_submissions(ASSIGNMENT)}


@pytest.fixture
def course(tmp_path):
    """A built course whose 01_neuron is released to a local exchange folder."""
    course, exchange = tmp_path / "course", tmp_path / "exchange"
    course.mkdir()
    exchange.mkdir(mode=0o777)
    copy_course(course, ("nbgrader_config.py", "source", "examples"))
    with open(course / "nbgrader_config.py", "a", encoding="utf-8") as handle:
        handle.write(f"\nc.Exchange.root = {str(exchange)!r}\n")
    # The watcher runs a snapshot of the grading code: the grader's fingerprint (graders/**.py) then stays put
    # while others edit this checkout, which would otherwise (rightly) have every submission graded again.
    code = tmp_path / "code"
    shutil.copytree(COURSE / "graders", code / "graders", ignore=shutil.ignore_patterns("__pycache__"))
    env = dict(os.environ, **ONE_BLAS_THREAD, NNFS_COURSE_ROOT=str(course), PYTHONPATH=str(code))
    env.pop("MPLBACKEND", None)
    subprocess.run([sys.executable, "-m", "graders", "build", ASSIGNMENT], cwd=course, env=env, check=True,
                   capture_output=True, timeout=300)
    nbgrader("release_assignment", ASSIGNMENT, cwd=course, env=env)
    return course, exchange, env


def test_the_watcher_grades_releases_and_survives_a_kill(course, tmp_path):
    course, exchange, env = course
    ada, ben, eve, finn = (Student(name, tmp_path, exchange) for name in ("ada", "ben", "eve", "finn"))
    ada.submit(FULL)
    ben.submit(PARTIAL)
    log = tmp_path / "watch.log"
    watcher = Watcher(course, env, log)
    try:
        assert "feedback released" in watcher.wait_for("ada") and "feedback released" in watcher.wait_for("ben")
        assert f"score {FULL_SCORE:g}{MAX}" in watcher.wait_for("ada")
        assert f"score {PARTIAL_SCORE:g}{MAX}" in watcher.wait_for("ben")
        assert scores(course) == {"ada": FULL_SCORE, "ben": PARTIAL_SCORE}
        ada_pages, ben_pages = ada.feedback(), ben.feedback()
        assert len(ada_pages) == 1 and len(ben_pages) == 1
        assert ada_pages[0].read_text() != ben_pages[0].read_text()  # each their own

        # a resubmission, to a warm watcher: timed from submit to feedback fetchable by the student
        submitted = ben.submit(FULL)
        while len(ben.feedback()) < 2:
            assert time.monotonic() - submitted < 400, log.read_text()
            time.sleep(0.5)
        warm_seconds = time.monotonic() - submitted
        assert f"score {FULL_SCORE:g}{MAX}" in watcher.wait_for("ben", 2)
        assert scores(course)["ben"] == FULL_SCORE  # the new grade replaces the old one

        # a broken file: graded 0, the reason in the log and in the student's feedback
        eve.submit(FULL, corrupt=True)
        line = watcher.wait_for("eve")
        assert f"score 0{MAX}; " in line and "feedback released" in line, line  # "; " then the reason
        [page] = eve.feedback()
        assert "Your notebook could not be read" in page.read_text(errors="replace")

        # killed mid-grade: finn's submission sanitized (its gradebook rows made) and in a kernel, no verdict yet
        finn.submit(PARTIAL)
        done = course / ".grading" / "done" / ASSIGNMENT / "finn.json"
        deadline = time.monotonic() + 300
        while "finn" not in scores(course) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert "finn" in scores(course) and not done.exists(), log.read_text()
        watcher.kill()
    finally:
        watcher.stop()

    restarted = Watcher(course, env, log)
    try:
        assert f"score {PARTIAL_SCORE:g}{MAX}" in restarted.wait_for("finn")
        time.sleep(3)  # a few more polls: nothing else may be graded or released again
        assert [line.split()[2] for line in restarted.lines()] == ["finn"], restarted.lines()
        assert len(finn.feedback()) == 1
    finally:
        assert restarted.stop() == 0
    assert "stopped" in log.read_text()
    assert scores(course) == {"ada": FULL_SCORE, "ben": FULL_SCORE, "eve": 0.0, "finn": PARTIAL_SCORE}
    state = json.loads((course / ".grading" / "watch.json").read_text())
    assert sorted(state["released"]) == [f"{ASSIGNMENT}/{s}" for s in ("ada", "ben", "eve", "finn")]

    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    (ARTIFACTS / "timings.json").write_text(json.dumps(
        {"submit_to_feedback_fetchable_warm_seconds": round(warm_seconds, 1),
         "load_average_1min": os.getloadavg()[0]}, indent=2) + "\n")
