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
    db_url: its gradebook (None: nbgrader's default SQLite file in it; a database server's is written to from
    two step processes at once)."""
    from graders.tooling.build import build
    from graders.tooling.examples import write_class
    copy_course(path, ("nbgrader_config.py", "source", "examples"))
    if db_url:
        set_course_db_url(path, db_url)
        with open(path / "nbgrader_config.py", "a", encoding="utf-8") as config:
            config.write("\nc.ClassGrading.step_processes = 2  # sanitize and save in two processes at once\n")
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


def gradebook_rows(course: Path) -> dict:
    """Everything nbgrader's autograde writes in the gradebook, by (assignment, student): the submission's
    timestamp, and per notebook its late penalty, each grade's (auto_score, needs_manual_grade) and each
    comment's auto_comment."""
    from nbgrader.api import Gradebook
    rows = {}
    with Gradebook(course_db_url(course), "nn-from-scratch") as gradebook:
        for assignment in ASSIGNMENTS:
            for submission in gradebook.find_assignment(assignment).submissions:
                rows[assignment, submission.student.id] = (submission.timestamp, [
                    (notebook.name, notebook.late_submission_penalty,
                     sorted((g.name, g.auto_score, g.needs_manual_grade) for g in notebook.grades),
                     sorted((c.name, c.auto_comment) for c in notebook.comments))
                    for notebook in submission.notebooks])
    return rows


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
    return courses


def test_nbgrader_autograde_and_course_grade_give_identical_grades(graded):
    assert scores(graded["nbgrader"]) == scores(graded["course"])


def test_they_write_the_same_gradebook_rows_and_autograded_folders(graded):
    """./course grade runs nbgrader's preprocessors in one session (graders/engine/steps.py): every row nbgrader
    writes (scores, needs_manual_grade, comments, late penalties, timestamps) and every file it leaves in
    autograded/ are the same, the notebooks cell by cell (up to how JSON lines are split)."""
    theirs, ours = gradebook_rows(graded["nbgrader"]), gradebook_rows(graded["course"])
    unreadable = {(assignment, student) for assignment, students in load_class(ROOT).SUBMISSIONS.items()
                  for student, submission in students.items() if submission.corrupt}
    assert unreadable, "the example class has no unreadable notebook: the test proves less than it says"
    for key in unreadable:  # nbgrader saves nothing for it; ./course grade saves 0 points, with the reason
        theirs.pop(key)
        (_, [(_, _, grades, _)]) = ours.pop(key)
        assert all(score == 0 and not manual for _, score, manual in grades)
    assert theirs == ours
    folders = {name: course / "autograded" for name, course in graded.items()}
    files = {name: sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file()
                          and (p.relative_to(folder).parts[1], p.relative_to(folder).parts[0]) not in unreadable)
             for name, folder in folders.items()}
    assert files["nbgrader"] == files["course"]
    for name in files["course"]:
        theirs, ours = (folders[k] / name for k in ("nbgrader", "course"))
        assert (theirs.stat().st_mode & 0o777) == (ours.stat().st_mode & 0o777), name
        if name.endswith(".ipynb"):
            theirs, ours = (nbformat.read(str(p), as_version=4) for p in (theirs, ours))
            assert [(c.cell_type, c.source, c.metadata) for c in theirs.cells] == \
                   [(c.cell_type, c.source, c.metadata) for c in ours.cells], name
        elif not name.endswith("timestamp.txt"):
            assert theirs.read_bytes() == ours.read_bytes(), name


def test_both_give_the_example_class_its_expected_scores(graded):
    expected = load_class(ROOT).EXPECTED_SCORES
    for name, course in graded.items():
        rows = scores(course)
        totals = {}
        for (assignment, student, _), score in rows.items():
            totals[assignment, student] = totals.get((assignment, student), 0.0) + score
        for assignment, students in expected.items():
            for student, score in students.items():
                assert totals.get((assignment, student), 0.0) == score, f"{name}: {assignment}/{student}"


def test_written_answers_wait_for_a_ta_and_untouched_ones_score_zero(graded):
    """Either way of grading leaves a written answer (a `written_<topic>` cell) the student wrote at "needs manual
    grade" with no score, and scores an untouched one ("YOUR ANSWER HERE") 0 with nothing left to grade."""
    from nbgrader.api import Gradebook
    example = load_class(ROOT)
    for name, course in graded.items():
        with Gradebook(course_db_url(course), "nn-from-scratch") as gradebook:
            for assignment in ASSIGNMENTS:
                for submission in gradebook.find_assignment(assignment).submissions:
                    handed_in = example.SUBMISSIONS[assignment][submission.student.id]
                    if handed_in.corrupt:
                        continue
                    written = [g for notebook in submission.notebooks for g in notebook.grades
                               if g.name.startswith("written_")]
                    assert written, f"{assignment}: no written answer in the gradebook"
                    for grade in written:
                        answered = handed_in.fill == "source" or grade.name in handed_in.answers
                        where = f"{name}: {assignment}/{submission.student.id}/{grade.name}"
                        assert grade.needs_manual_grade == answered, where
                        assert grade.auto_score == (None if answered else 0), where


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


def test_course_grade_jobs_carry_json_and_files_never_a_path(graded):
    """A worker's job is the sanitized notebook's JSON and the files of its working copy: the student's regular
    files (never a link's target) under the source's own."""
    from graders.engine.steps import GradebookSteps
    from graders.tooling.build import nbgrader_api
    course = graded["course"]
    folder = course / "submitted" / "ada" / "03_backprop"
    (folder / "notes.txt").write_text("mine")
    (folder / "digits_split.npz").write_bytes(b"not the real data")
    (folder / "elsewhere.txt").symlink_to(course / "nbgrader_config.py")
    steps = GradebookSteps(nbgrader_api(course).config)
    try:
        payload = steps.sanitize("03_backprop", "ada")
    finally:
        steps.close()
    assert payload["name"] == "backprop.ipynb" and nbformat.reads(payload["notebook"], as_version=4).cells
    assert payload["files"]["notes.txt"] == b"mine" and "elsewhere.txt" not in payload["files"]
    source = course / "source" / "03_backprop"
    assert payload["files"]["digits_split.npz"] == (source / "digits_split.npz").read_bytes()
    assert str(course) not in repr(payload) and str(ROOT) not in repr(payload)
