"""`./course report ASSIGNMENT` on the graded example class (plus a student whose id is HTML): the page's numbers
are the gradebook's, on SQLite and on a real PostgreSQL server (tests/postgres.py); the named mistakes are counted
with their students; nothing a student wrote runs in the browser (Chromium, through Playwright); the figures load.
A screenshot of the page goes to test-artifacts/report/."""
from __future__ import annotations

import csv
import html
import os
import re
import shutil
import subprocess
import sys

import pytest
from nbgrader.api import Gradebook

from graders.engine.sandbox import ONE_BLAS_THREAD
from graders.tooling.course import total_points, written_points
from graders.tooling.gradebook import course_db_url, set_course_db_url
from tests.browser import CHROMIUM_ARGS, VIEWPORT, chromium_path, why_no_browser
from tests.helpers import COURSE, copy_course
from tests.postgres import postgres  # noqa: F401  (the fixture)

ASSIGNMENT = "01_neuron"
COURSE_ID = "nn-from-scratch"
#: A student id that would run script if the page wrote it unescaped.
HOSTILE = "<img src=x onerror=alert(1)>"
ARTIFACTS = COURSE / "test-artifacts" / "report"


#: Build 01_neuron and write the example class's submissions of it (as examples.write_class does for every one).
WRITE_CLASS = """
import nbformat
from graders.tooling.build import build
from graders.tooling.course import course_root, notebook_path
from graders.tooling.examples import load_class, make_submission
build(["01_neuron"])
for student, submission in load_class().SUBMISSIONS["01_neuron"].items():
    path = course_root() / "submitted" / student / "01_neuron" / notebook_path("01_neuron", "release").name
    path.parent.mkdir(parents=True)
    text = nbformat.writes(make_submission("01_neuron", submission))
    path.write_text(text[: len(text) // 2] if submission.corrupt else text, encoding="utf-8")
"""


def graded_class(course, env) -> None:
    """Build 01_neuron, write the example class (and HOSTILE, a copy of cleo's notebook) and grade it."""
    subprocess.run([sys.executable, "-c", WRITE_CLASS], env=env, check=True, timeout=600, capture_output=True)
    shutil.copytree(course / "submitted" / "cleo", course / "submitted" / HOSTILE)
    run = subprocess.run([sys.executable, "-m", "graders", "grade", ASSIGNMENT], cwd=course, env=env,
                         capture_output=True, text=True, timeout=1200)
    assert run.returncode == 0, run.stdout + run.stderr


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def reported(request, tmp_path_factory):
    """(course, the report's folder, what `./course report` printed), per gradebook backend."""
    course = tmp_path_factory.mktemp(f"report-{request.param}")
    copy_course(course, ("nbgrader_config.py", "source", "examples"))
    if request.param == "postgresql":
        set_course_db_url(course, request.getfixturevalue("postgres").new_database("report"))
    env = dict(os.environ, **ONE_BLAS_THREAD, NNFS_COURSE_ROOT=str(course))
    env.pop("MPLBACKEND", None)
    graded_class(course, env)
    run = subprocess.run([sys.executable, "-m", "graders", "report", ASSIGNMENT], cwd=course, env=env,
                         capture_output=True, text=True, timeout=300)
    assert run.returncode == 0 and not run.stderr, run.stdout + run.stderr
    return course, course / "reports" / ASSIGNMENT, run.stdout


def gradebook_scores(course) -> dict[str, float]:
    with Gradebook(course_db_url(course), COURSE_ID) as gb:
        return {s.student.id: s.score for s in gb.assignment_submissions(ASSIGNMENT)}


def gradebook_passes(course) -> dict[tuple[str, str], int]:
    """(exercise, level) -> students whose test cell of that exercise and level earned all its points, read
    straight from nbgrader's gradebook (one test cell per exercise and level in this course)."""
    passes: dict = {}
    with Gradebook(course_db_url(course), COURSE_ID) as gb:
        for submission in gb.assignment_submissions(ASSIGNMENT):
            for notebook in submission.notebooks:
                for grade in notebook.grades:
                    exercise, level = grade.name.removeprefix("test_").rsplit("_", 1)
                    if level in ("visible", "hidden"):
                        passes[exercise, level] = passes.get((exercise, level), 0) + (grade.score >= grade.max_score)
    return passes


def test_it_prints_where_it_wrote_and_counts_what_the_gradebook_holds(reported):
    course, folder, printed = reported
    assert printed.splitlines()[0] == str(folder / "report.html")
    assert {"report.html", "counts.csv", "score_distribution.png", "pass_rates.png", "grading_seconds.png"} <= {
        p.name for p in folder.iterdir()}
    rows = list(csv.DictReader(open(folder / "counts.csv", encoding="utf-8")))
    scores = {r["students"]: float(r["count"]) for r in rows if r["section"] == "student"}
    assert scores == gradebook_scores(course)
    # cleo and her copy forgot the 1/N: the diagnosis names it, with both of them
    mistakes = [r for r in rows if r["section"] == "mistake"]
    missing_mean = [r for r in mistakes if "missing 1/N" in r["what"]]
    assert missing_mean and all(set(r["students"].split(";")) >= {"cleo", HOSTILE} for r in missing_mean), mistakes
    stuck = {r["students"]: r["what"] for r in rows if r["section"] == "stuck"}
    assert "could not be read" in stuck["eve"] and stuck["dev"] == "no check passes" and "ada" not in stuck
    passes = {(r["exercise"], r["level"]): int(r["count"]) for r in rows if r["section"] == "pass_rate"}
    assert passes == gradebook_passes(course)
    assert passes[("sigmoid", "hidden")] < passes[("sigmoid", "visible")]  # the overflow only hidden checks catch
    # the maximum counts the written answer; the four that answered it (ada, ben, cleo and her copy) wait for a TA
    summary = html.unescape(re.search(r'id="summary">(.*?)</p>', (folder / "report.html").read_text()).group(1))
    assert (f"of {total_points(ASSIGNMENT):g} ({written_points(ASSIGNMENT):g} of them for written answers a TA "
            "grades in formgrader's Manual Grading; 4 answers still to grade, not yet counted)") in summary, summary


@pytest.mark.skipif(why_no_browser() is not None, reason=str(why_no_browser()))
def test_the_page_renders_its_numbers_and_runs_no_student_script(reported, request):
    from playwright.sync_api import sync_playwright
    course, folder, _ = reported
    backend = request.node.callspec.params["reported"]
    expected = gradebook_scores(course)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium_path(), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport=VIEWPORT)
            dialogs, errors = [], []
            page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
            page.on("pageerror", lambda error: errors.append(str(error)))
            page.goto((folder / "report.html").as_uri())
            page.wait_for_load_state("load")
            shown = {}
            for row in page.locator("#scores tbody tr").all():
                cells = row.locator("td").all_inner_texts()
                shown[cells[0]] = float(cells[1])
            assert shown == expected  # the hostile id shown as text, its score the gradebook's
            assert page.locator("img[src='x']").count() == 0 and not dialogs and not errors
            for image in page.locator("img").all():  # every figure loaded (a broken one has no natural width)
                assert image.evaluate("img => img.complete && img.naturalWidth > 0"), image.get_attribute("src")
            assert page.locator("#mistakes").get_by_text("missing 1/N").count() >= 1
            ARTIFACTS.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(ARTIFACTS / f"report-{backend}.png"), full_page=True)
        finally:
            browser.close()


def test_a_diagnosis_is_read_back_from_the_report_text_a_failed_check_prints():
    from graders.checks.failures import Failure
    from graders.checks.report import Report, Result
    from graders.tooling.report import causes_in_text
    failure = Failure("dW is wrong", expected="[1, 2]", got="[50, 100]",
                      cause="your result is exactly N = 50 times too large: you summed over the batch where the "
                            "mean is expected (missing 1/N).\nsecond line of the cause", hint="the last line")
    text = Report("loss", "hidden", [Result("dW", False, failure.summary, tuple(failure.details()))]).text()
    assert causes_in_text(text) == ["your result is exactly N times too large: you summed over the batch where the "
                                    "mean is expected (missing 1/N). second line of the cause"]
    assert causes_in_text("the student printed: likely cause: me") == []  # only the label that starts a line
