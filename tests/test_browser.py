"""The course as a student and an instructor meet it: JupyterLab and Jupyter Notebook 7 in a real browser
(the system's Chromium, driven by Playwright), nothing mocked.

What it proves, for each of the two frontends students open the notebooks in (the student's tests run once
with `jupyter lab` and once with `jupyter notebook`, each on a scratch course of its own):

- the release notebook of 01_neuron opens and its kernel comes up idle (and how long that takes);
- a student who types answers into the editor and runs Run > Run All Cells sees, on the page, a green pass
  line for a correct answer, a red diagnosis (expected / got / likely cause, with the numbers) for a wrong
  one, one red `CheckFailed` line instead of a traceback, rendered figures, and nothing else on stderr;
- nbgrader's Validate button in the notebook toolbar reports the failed check with its diagnosis, and only
  the checks that fail;

and, in JupyterLab, that formgrader, opened from the Nbgrader menu, lists the submissions `./course grade`
graded with their scores, generates a student's feedback, and lets a TA grade a written answer by hand in its
Manual Grading, after which the student's total follows in formgrader and in `nbgrader export`.

Screenshots of every step (Notebook 7's are named 11-nb7-*) and the timings go to test-artifacts/browser/.
Without Playwright or Chromium the tests are skipped, with the reason and how to install them (`./course test`
installs both).
"""
from __future__ import annotations

import csv
import os
import re
import subprocess
import sys
import time

import nbformat
import pytest

from graders.checks.runner import run_exercise
from graders.tooling.course import (
    autograded_points,
    nbgrader_meta,
    notebook_path,
    read_notebook,
    total_points,
    written_cells,
)
from graders.tooling.examples import (
    load_class,
    make_submission,
    replace_function,
    strip_solution_markers,
)
from graders.tooling.reference import reference
from tests.browser import (
    CHROMIUM_ARGS,
    JUPYTERLAB,
    NOTEBOOK7,
    VIEWPORT,
    Artifacts,
    JupyterServer,
    Stopwatch,
    chromium_path,
    why_no_browser,
)
from tests.helpers import COURSE, copy_course

try:
    from playwright.sync_api import expect, sync_playwright
except ImportError:  # every test is skipped (below), saying why and how to install it
    expect = sync_playwright = None

#: Skipped, not passed, without Playwright or Chromium: the reason says what is missing and how to get it.
#: (A mark rather than a module-level skip, so that running only this file still exits 0.)
MISSING = why_no_browser()
pytestmark = pytest.mark.skipif(MISSING is not None, reason=str(MISSING))

ASSIGNMENT = "01_neuron"
NOTEBOOK = "release/01_neuron/neuron.ipynb"
EXAMPLE_CLASS = load_class(COURSE)
#: ada hands in the instructor's source (full marks), cleo makes the classic mistakes (examples/students.py).
GRADED_STUDENTS = ("ada", "cleo")
TIMEOUT_MS = 60_000
#: sigma(z) * (1 - z) instead of sigma(z) * (1 - sigma(z)): the slip the exercise text warns about.
WRONG_SIGMOID_GRAD = "def sigmoid_grad(z):\n    return sigmoid(z) * (1 - z)\n"
#: What the visible check reports for it (graders.checks.runner.run_exercise on the reference namespace): the
#: numbers, and the likely cause naming the slip.
WRONG_SIGMOID_GRAD_NUMBERS = "expected 0.104994, got -0.880797"
WRONG_SIGMOID_GRAD_CAUSE = "sigmoid(z) * (1 - z): the derivative must use sigmoid(z) in both factors."
STDERR = ".jp-OutputArea-output[data-mime-type='application/vnd.jupyter.stderr']"
#: The written answer a TA grades by hand in the test: cleo's to Question 4.4 (examples/students.py), which names
#: one of the rubric's two items, so it earns 1 of its 2 points.
WRITTEN, WRITTEN_SCORE = "written_loss_floor", 1
#: The fixture that serves each frontend to the student (below).
SERVED_BY = {JUPYTERLAB: "lab", NOTEBOOK7: "notebook7"}


def solution_cell_source(grade_id: str) -> str:
    """The reference answer of a solution cell, as a student would type it (without nbgrader's markers)."""
    for cell in read_notebook(notebook_path(ASSIGNMENT, "source")).cells:
        if nbgrader_meta(cell).get("grade_id") == grade_id:
            return strip_solution_markers(cell.source).strip()
    raise LookupError(grade_id)


def student_answers() -> list[tuple[str, str]]:
    """(text that finds the solution cell, what the student types there): two right answers, one wrong.
    sigmoid must be right too, or sigmoid_grad's diagnosis would be about sigmoid's mistake."""
    wrong = replace_function(solution_cell_source("sol_sigmoid_grad"), "sigmoid_grad", WRONG_SIGMOID_GRAD)
    return [("def cosine_similarity(", solution_cell_source("sol_cosine_similarity")),
            ("def sigmoid(", solution_cell_source("sol_sigmoid")),
            ("def sigmoid_grad(", wrong.strip())]


# ------------------------------------------------------------------------------------ what a user does

def new_page(browser):
    page = browser.new_page(viewport=VIEWPORT)
    page.set_default_timeout(TIMEOUT_MS)
    return page


def open_menu_item(page, menu: str, item: str) -> None:
    """Click `menu` in the menu bar (JupyterLab's and Notebook 7's are the same widget), then `item` in it
    (exact labels: "Formgrader" is not "Formgrader (local)")."""
    page.locator(".lm-MenuBar-itemLabel", has_text=re.compile(f"^{re.escape(menu)}$")).click()
    page.locator(".lm-Menu-itemLabel", has_text=re.compile(f"^{re.escape(item)}$")).click()


def code_cell(page, source_text: str):
    """The notebook's code cell whose source (not its output) contains `source_text`."""
    return page.locator(".jp-Notebook .jp-CodeCell").filter(has=page.locator(".jp-InputArea", has_text=source_text))


def wait_for_idle_kernel(page) -> None:
    """The notebook's toolbar names its kernel and its execution indicator reads idle: the kernel is up and
    nothing is running or queued. Both frontends have this toolbar (Notebook 7 has no status bar). The name
    matters: before the notebook has a kernel the toolbar says "No Kernel" and the indicator already reads idle;
    then it goes Initializing, Connecting, Idle. (JupyterLab's status bar would do for the start, but it reads
    Idle between the cells of a Run All; the indicator stays busy until the last one.)"""
    toolbar = page.locator(".jp-NotebookPanel-toolbar").filter(
        has=page.locator(".jp-Toolbar-kernelName", has_not_text="No Kernel"))
    expect(toolbar.locator(".jp-Notebook-ExecutionIndicator[data-status='idle']")).to_be_visible()


def type_into_cell(page, cell, code: str) -> None:
    """Click into the cell's editor, select everything, type the answer. insert_text sends the text as one
    input event, so CodeMirror does not add its auto-indentation to the indentation already in `code`."""
    cell.locator(".cm-content").click()
    page.keyboard.press("Control+A")
    page.keyboard.insert_text(code)


def editor_text(cell) -> str:
    """The editor's text, line by line (textContent: an empty line is a bare <br>, which innerText would read
    as a line break of its own)."""
    lines = cell.locator(".cm-content .cm-line").evaluate_all("lines => lines.map(line => line.textContent)")
    return "\n".join(lines).replace("\u00a0", " ")


def run_all_cells(page) -> None:
    """Run > Run All Cells, then wait until every code cell shows an execution count and the kernel is idle."""
    open_menu_item(page, "Run", "Run All Cells")
    page.wait_for_function(
        "() => [...document.querySelectorAll('.jp-Notebook .jp-CodeCell .jp-InputPrompt')]"
        ".every(prompt => /\\[\\d+\\]/.test(prompt.textContent))", timeout=3 * TIMEOUT_MS)
    wait_for_idle_kernel(page)


def submission_row(frame, student: str):
    return frame.locator("#main-table tr").filter(
        has=frame.locator("td.student-id", has_text=re.compile(f"^{student}$")))


def press_for_student(formgrader, student: str, column: str, artifacts, what: str, shot: str):
    """Press the button in `column` (its td class, e.g. "autograde") of the student's row in Manage Submissions,
    wait for formgrader's result dialog, time it as "formgrader: <what>", screenshot it as `shot`, and return the
    dialog, which must be the success one."""
    page, frame = formgrader
    with Stopwatch() as watch:
        submission_row(frame, student).locator(f"td.{column} a").click()
        modal = frame.locator("#success-modal, #error-modal")
        expect(modal).to_be_visible(timeout=3 * TIMEOUT_MS)
    artifacts.time(f"formgrader: {what}", watch.seconds)
    artifacts.shoot(page, shot)
    expect(modal).to_have_id("success-modal")
    return modal


def open_submissions(frame) -> None:
    """From formgrader's assignment list to the assignment's submissions (the link in "# Submissions")."""
    row = frame.locator("#main-table tr").filter(has=frame.locator("td", has_text=re.compile(f"^{ASSIGNMENT}$")))
    row.locator("td.num-submissions a").click()
    expect(submission_row(frame, "ada").locator("td.score")).to_be_visible()


# ---------------------------------------------------------------------------------------------- fixtures

@pytest.fixture(scope="module")
def artifacts(pytestconfig):
    """Screenshots and timings; the timings are written and printed when the module is done, pass or fail."""
    recorded = Artifacts()
    yield recorded
    path = recorded.write_timings()
    reporter = pytestconfig.pluginmanager.get_plugin("terminalreporter")
    capture = pytestconfig.pluginmanager.get_plugin("capturemanager")
    if reporter is None or capture is None:
        return
    with capture.global_and_fixture_disabled():  # to the terminal, not into some test's captured output
        reporter.ensure_newline()
        reporter.write_line(f"browser test timings in seconds (also in {path}):")
        for step, seconds in recorded.timings.items():
            reporter.write_line(f"  {step:58s}{seconds:7.2f}")
        reporter.write_line(f"screenshots: {len(recorded.screenshots)} in {recorded.folder}/")


def course_command(course, *args: str) -> str:
    """`python -m graders ARGS` in the scratch course, as an instructor runs `./course ARGS` there."""
    env = dict(os.environ, NNFS_COURSE_ROOT=str(course), OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1")
    env.pop("MPLBACKEND", None)  # grading kernels use the inline backend, as in JupyterLab
    run = subprocess.run([sys.executable, "-m", "graders", *args], cwd=course, env=env, capture_output=True,
                         text=True, timeout=900)
    assert run.returncode == 0, f"./course {' '.join(args)} failed:\n{run.stdout}\n{run.stderr}"
    return run.stdout


def assert_check_data_beside_the_notebook(root) -> None:
    """The visible checks read their data from the notebook's folder: without it every check cell fails."""
    folder = (root / NOTEBOOK).parent
    missing = [name for name in (f"checks_{ASSIGNMENT}.json", f"checks_{ASSIGNMENT}.npz")
               if not (folder / name).is_file()]
    assert not missing, f"{folder} has no {', '.join(missing)}: `./course build {ASSIGNMENT}` writes them"


@pytest.fixture(scope="module")
def course(tmp_path_factory, artifacts):
    """A scratch course with 01_neuron built (so the gradebook knows the assignment, and release/ holds the
    notebook and its check data) and ada's and cleo's submissions graded by `./course grade`."""
    root = tmp_path_factory.mktemp("browser-course")
    copy_course(root, ("nbgrader_config.py", "source", "release"))
    with Stopwatch() as watch:
        course_command(root, "build", ASSIGNMENT)
        for student in GRADED_STUDENTS:
            target = root / "submitted" / student / ASSIGNMENT / "neuron.ipynb"
            target.parent.mkdir(parents=True)
            nbformat.write(make_submission(ASSIGNMENT, EXAMPLE_CLASS.SUBMISSIONS[ASSIGNMENT][student]), str(target))
        course_command(root, "grade", ASSIGNMENT)
    artifacts.time("course: build 01_neuron, grade 2 submissions", watch.seconds)
    assert_check_data_beside_the_notebook(root)
    return root


@pytest.fixture(scope="module")
def student_course(tmp_path_factory):
    """The folder a student runs Notebook 7 in: this clone's release/ as it is (each notebook beside its check
    data) and nbgrader_config.py (Validate reads it). A course of its own, because JupyterLab's Validate saves
    the typed answers and outputs into the other course's notebook."""
    root = copy_course(tmp_path_factory.mktemp("student-course"), ("nbgrader_config.py", "release"))
    assert_check_data_beside_the_notebook(root)
    return root


@pytest.fixture(scope="module")
def browser():
    expect.set_options(timeout=TIMEOUT_MS)
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=chromium_path(), args=CHROMIUM_ARGS, headless=True)
        yield chromium
        chromium.close()


def serve(frontend, course, tmp_path_factory, artifacts):
    """`jupyter lab` or `jupyter notebook` on `course` until the module is done; its start is timed."""
    server = JupyterServer(frontend.app, course, tmp_path_factory.mktemp(f"jupyter-{frontend.app}"))
    server.start()
    try:
        artifacts.time(f"jupyter {frontend.app} start -> server answers", server.wait_until_ready())
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def lab(course, browser, artifacts, tmp_path_factory):
    """One JupyterLab server for the module (the student's and the instructor's), started once the browser
    is up, so that its clock measures Jupyter, not Chromium's start."""
    yield from serve(JUPYTERLAB, course, tmp_path_factory, artifacts)


@pytest.fixture(scope="module")
def notebook7(student_course, browser, artifacts, tmp_path_factory):
    """One Notebook 7 server, on the student's course."""
    yield from serve(NOTEBOOK7, student_course, tmp_path_factory, artifacts)


@pytest.fixture(scope="module", params=list(SERVED_BY), ids=lambda frontend: frontend.title.replace(" ", ""))
def frontend(request):
    """Each frontend in turn: every test of the student runs once in JupyterLab, once in Notebook 7."""
    return request.param


@pytest.fixture(scope="module")
def notebook(frontend, browser, artifacts, request):
    """The student's release notebook, open in `frontend`, its kernel idle."""
    server = request.getfixturevalue(SERVED_BY[frontend])
    page = new_page(browser)
    opened = time.monotonic()
    page.goto(server.url(frontend.document_path(NOTEBOOK)))
    expect(page.locator(".jp-Notebook h1", has_text="Assignment 01")).to_be_visible()
    artifacts.time(f"{frontend.title}: notebook URL -> first cells rendered", time.monotonic() - opened)
    wait_for_idle_kernel(page)
    artifacts.time(f"{frontend.title}: notebook URL -> kernel idle", time.monotonic() - opened)
    artifacts.time(f"jupyter {frontend.app} start -> notebook rendered, kernel idle",
                   time.monotonic() - server.started_at)
    artifacts.shoot(page, frontend.shot("01-notebook-open"))
    yield page
    page.close()


@pytest.fixture(scope="module")
def ran_all(notebook, frontend, artifacts):
    """The notebook after the student typed three answers (one of them wrong) and ran every cell."""
    page = notebook
    with Stopwatch() as watch:
        for finder, code in student_answers():
            type_into_cell(page, code_cell(page, finder), code)
    artifacts.time(f"{frontend.title}: type 3 answers", watch.seconds)
    artifacts.shoot(page, frontend.shot("02-answers-typed"), code_cell(page, "def sigmoid_grad("))
    with Stopwatch() as watch:
        run_all_cells(page)
    artifacts.time(f"{frontend.title}: Run All Cells -> every cell ran, kernel idle", watch.seconds)
    return page


@pytest.fixture(scope="module")
def formgrader(lab, browser, artifacts):
    """Formgrader as an instructor opens it: JupyterLab (a workspace of its own, so the student's open
    notebook is not restored), then Nbgrader > Formgrader, which shows formgrader in a tab (an iframe).
    Opening /formgrader/...?token= directly does not work in nbgrader 0.9.6: its pages set the login cookie
    with the page's own path, so formgrader's API calls are redirected to the login page and its tables stay
    empty."""
    page = new_page(browser)
    with Stopwatch() as watch:
        page.goto(lab.url("/lab/workspaces/instructor"))
        open_menu_item(page, "Nbgrader", "Formgrader")
        frame = page.frame_locator(".jp-MainAreaWidget iframe[src*='formgrader']")
        expect(frame.locator("#main-table td", has_text=re.compile(f"^{ASSIGNMENT}$"))).to_be_visible()
    artifacts.time("JupyterLab -> Nbgrader > Formgrader -> assignments listed", watch.seconds)
    artifacts.shoot(page, "07-formgrader-assignments")
    open_submissions(frame)
    yield page, frame
    page.close()


# ------------------------------------------------------------------------------------------ the student

def test_the_answers_get_the_verdicts_the_page_is_checked_for():
    """Outside the browser, on the reference namespace with the typed answers in: what the assertions on
    the page below expect (so a change of the check's wording fails here, with the reason, first)."""
    namespace = reference(ASSIGNMENT)
    for _, code in student_answers():
        exec(code, namespace)
    assert run_exercise("cosine_similarity", namespace, "visible").passed
    assert run_exercise("sigmoid", namespace, "visible").passed
    report = run_exercise("sigmoid_grad", namespace, "visible")
    assert not report.passed
    assert WRONG_SIGMOID_GRAD_NUMBERS in report.text() and WRONG_SIGMOID_GRAD_CAUSE in report.text(), report.text()


def test_the_release_notebook_opens_with_its_kernel_idle(notebook, frontend, artifacts):
    expect(notebook.locator(frontend.shell)).to_have_count(1)  # this frontend's page, not the other's
    expect(notebook.locator(".jp-Notebook .jp-Cell")).to_have_count(len(read_notebook(COURSE / NOTEBOOK).cells))
    expect(code_cell(notebook, "def cosine_similarity(")).to_have_count(1)
    assert artifacts.timings[f"jupyter {frontend.app} start -> notebook rendered, kernel idle"] < 60


def test_typed_answers_are_in_the_editors_as_typed(ran_all):
    for finder, code in student_answers():
        assert editor_text(code_cell(ran_all, finder)) == code, finder


def test_a_correct_answer_shows_a_green_pass_line(ran_all, frontend, artifacts):
    cell = code_cell(ran_all, 'check("cosine_similarity")')
    artifacts.shoot(ran_all, frontend.shot("03-pass-line"), cell)
    outputs = cell.locator(".jp-OutputArea-output")
    expect(outputs).to_have_count(1)
    expect(outputs).to_have_attribute("data-mime-type", "text/html")
    expect(outputs).to_have_text(re.compile(r"^✓ cosine_similarity: 1 of 1 visible checks passed"))
    headline = outputs.locator(".nnfs-check > div").first
    assert headline.evaluate("e => getComputedStyle(e).color") == "rgb(26, 127, 55)"  # green survived sanitizing


def test_a_wrong_answer_shows_its_diagnosis_in_red(ran_all, frontend, artifacts):
    cell = code_cell(ran_all, 'check("sigmoid_grad")')
    artifacts.shoot(ran_all, frontend.shot("04-diagnosis"), cell)
    report = cell.locator(".jp-OutputArea-output[data-mime-type='text/html'] .nnfs-check")
    expect(report).to_have_count(1)
    expect(report).to_contain_text("✗ sigmoid_grad: 0 of 1 visible checks passed")
    expect(report).to_contain_text(WRONG_SIGMOID_GRAD_NUMBERS)
    rows = dict(zip(report.locator("th").all_inner_texts(), report.locator("td").all_inner_texts()))
    assert {"inputs", "expected", "got", "likely cause"} <= set(rows), rows
    assert "0.105" in rows["expected"] and "-0.8808" in rows["got"], rows
    assert rows["likely cause"] == WRONG_SIGMOID_GRAD_CAUSE, rows
    assert report.evaluate("e => getComputedStyle(e).borderLeftColor") == "rgb(207, 34, 46)"


def test_a_failed_check_ends_in_one_red_line_not_a_traceback(ran_all):
    error = code_cell(ran_all, 'check("sigmoid_grad")').locator(STDERR)
    expect(error).to_have_count(1)
    expect(error).to_have_text("CheckFailed: sigmoid_grad: 1 visible check(s) failed, details above.")
    expect(error.locator(".ansi-red-fg")).to_have_text("CheckFailed")


def test_figures_render_as_images(ran_all, frontend, artifacts):
    images = ran_all.locator(".jp-OutputArea-output[data-mime-type='image/png'] img")
    expect(images.first).to_be_visible()
    artifacts.shoot(ran_all, frontend.shot("05-figure"), images.first)
    widths = [image.evaluate("e => e.complete ? e.naturalWidth : 0") for image in images.all()]
    assert len(widths) >= 2 and min(widths) >= 300, widths


def test_only_failed_checks_write_to_stderr(ran_all):
    """Correct code (the answers, the figure cells, the passing checks) never writes to stderr; a check that
    fails (the wrong answer, the exercises not written yet) writes exactly its one CheckFailed line."""
    failed = []
    for text in ran_all.locator(STDERR).all_inner_texts():
        match = re.fullmatch(r"CheckFailed: (\w+): \d+ visible check\(s\) failed, details above\.", text.strip())
        assert match, f"unexpected output on stderr: {text[:500]!r}"
        failed.append(match[1])
    assert "sigmoid_grad" in failed and not {"cosine_similarity", "sigmoid"} & set(failed), failed


def test_the_validate_button_reports_the_failed_check_with_its_diagnosis(ran_all, frontend, artifacts):
    page = ran_all
    button = page.locator(".jp-NotebookPanel-toolbar jp-button.validate-button")
    expect(button).to_have_text("Validate")
    with Stopwatch() as watch:
        button.click()  # saves the notebook, then nbgrader validates the saved file in a fresh kernel
        dialog = page.locator(".jp-Dialog", has_text="Validation Results")
        expect(dialog).to_be_visible(timeout=3 * TIMEOUT_MS)
    artifacts.time(f"{frontend.title}: Validate button -> results dialog", watch.seconds)
    message = dialog.locator("#validation-message")
    expect(message).to_have_class(re.compile(r"\bvalidation-failed\b"))
    failed_cells = [s for s in message.locator(".jp-RenderedText pre").all_inner_texts() if s.startswith("from graders")]
    assert any('check("sigmoid_grad")' in s for s in failed_cells), failed_cells
    assert not any(re.search(r'check\("(cosine_similarity|sigmoid)"\)', s) for s in failed_cells), failed_cells
    diagnosis = message.locator(".jp-RenderedText pre", has_text="✗ sigmoid_grad")
    expect(diagnosis).to_have_count(1)
    artifacts.shoot(page, frontend.shot("06-validate-dialog"), diagnosis)
    expect(diagnosis).to_contain_text(WRONG_SIGMOID_GRAD_NUMBERS)
    expect(diagnosis).to_contain_text("likely cause:")
    expect(diagnosis).to_contain_text("sigmoid(z) * (1 - z)")
    dialog.locator(".jp-Dialog-button.jp-mod-accept").click()
    expect(dialog).to_have_count(0)


# --------------------------------------------------------------------------------------- the instructor

def test_formgrader_lists_the_graded_submissions_with_their_scores(formgrader, artifacts):
    page, frame = formgrader
    artifacts.shoot(page, "08-formgrader-submissions")
    expected = EXAMPLE_CLASS.EXPECTED_SCORES[ASSIGNMENT]
    for student in GRADED_STUDENTS:  # both wrote a written answer, which waits for a TA
        row = submission_row(frame, student)
        expect(row.locator("td.status")).to_have_text("needs manual grading")
        expect(row.locator("td.score")).to_have_text(f"{expected[student]:g} / {total_points(ASSIGNMENT):g}")


def test_formgrader_generates_feedback_for_a_submission(formgrader, browser, course, artifacts):
    feedback = course / "feedback" / "ada" / ASSIGNMENT / "neuron.html"
    assert not feedback.exists()
    modal = press_for_student(formgrader, "ada", "generate-feedback", artifacts, "generate feedback for ada",
                              "09-feedback-generated")
    expect(modal).to_contain_text(f"Successfully generated feedback for '{ASSIGNMENT}' for student 'ada'.")
    modal.get_by_role("button", name="OK").click()  # formgrader stays usable for the tests after this one
    expect(modal).to_be_hidden()
    assert feedback.exists(), "formgrader says it generated the feedback, but there is no file"
    reader = new_page(browser)
    try:
        reader.goto(feedback.as_uri())
        # every autograded point; the written answer counts in the maximum and waits for a TA
        expect(reader.locator("body")).to_contain_text(
            f"neuron (Score: {autograded_points(ASSIGNMENT):.1f} / {total_points(ASSIGNMENT):.1f})")
        artifacts.shoot(reader, "10-feedback-ada")
    finally:
        reader.close()


def nbgrader_export(course) -> dict[str, tuple[float, float]]:
    """student -> (score, max_score) of ASSIGNMENT in `nbgrader export`'s CSV of the course's gradebook."""
    target = course / "export.csv"
    env = dict(os.environ, NNFS_COURSE_ROOT=str(course))
    run = subprocess.run([sys.executable, "-m", "nbgrader", "export", "--to", str(target)], cwd=course, env=env,
                         capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stdout + run.stderr
    with open(target, newline="", encoding="utf-8") as handle:
        return {row["student_id"]: (float(row["score"]), float(row["max_score"])) for row in csv.DictReader(handle)
                if row["assignment"] == ASSIGNMENT}


def test_a_ta_grades_a_written_answer_by_hand_and_the_total_follows(formgrader, course, artifacts):
    """Formgrader's Manual Grading: cleo's written answer waits for a TA (0 of its points so far, "needs manual
    grade"); the TA opens her submission, reads the answer, types a score, and her total goes up by that score
    in formgrader's views and in `nbgrader export`'s CSV."""
    page, frame = formgrader
    before, maximum = float(EXAMPLE_CLASS.EXPECTED_SCORES[ASSIGNMENT]["cleo"]), total_points(ASSIGNMENT)
    written = next(c.points for c in written_cells(read_notebook(notebook_path(ASSIGNMENT))) if c.grade_id == WRITTEN)
    assert nbgrader_export(course)["cleo"] == (before, maximum)
    frame.locator("a", has_text=re.compile("^Manual Grading$")).first.click()
    frame.locator("#main-table td.name a", has_text=re.compile(f"^{ASSIGNMENT}$")).click()
    frame.locator("#main-table td.name a", has_text=re.compile("^neuron$")).click()
    row = frame.locator("#main-table tr").filter(has=frame.locator("a.name-shown", has_text=re.compile("^cleo$")))
    expect(row.locator("td.score")).to_have_text(f"{before:g} / {maximum:g}")
    expect(row.locator("td.written-score")).to_have_text(f"0 / {written:g}")
    expect(row.locator("td.needs-manual-grade .glyphicon-ok")).to_have_count(1)
    frame.locator("#toggle_names").click()  # the list is anonymous until the names are shown
    expect(row.locator("a.name-shown")).to_be_visible()
    artifacts.shoot(page, "12-manual-grading-list")

    with Stopwatch() as watch:
        row.locator("a.name-shown").click()
        score = frame.locator(f"input.score#{WRITTEN}")
        expect(score).to_have_class(re.compile(r"\bneeds_manual_grade\b"))
        answer = frame.locator(".nbgrader_cell").filter(has=score)
        expect(answer).to_contain_text(EXAMPLE_CLASS.HALF_ANSWER[:40])  # the TA reads what cleo wrote
        score.fill(str(WRITTEN_SCORE))
        score.press("Tab")  # leaving the field saves the score (formgrader's change event)
        expect(score).not_to_have_class(re.compile(r"\bneeds_manual_grade\b"))
    artifacts.time("formgrader: open a submission, grade its written answer", watch.seconds)
    artifacts.shoot(page, "13-manual-grade-entered")

    after = before + WRITTEN_SCORE
    frame.locator(".breadcrumb a", has_text=re.compile("^neuron$")).click()
    expect(row.locator("td.score")).to_have_text(f"{after:g} / {maximum:g}")
    expect(row.locator("td.written-score")).to_have_text(f"{WRITTEN_SCORE:g} / {written:g}")
    expect(row.locator("td.needs-manual-grade .glyphicon-ok")).to_have_count(0)
    frame.locator("a", has_text=re.compile("^Manage Assignments$")).first.click()
    open_submissions(frame)
    expect(submission_row(frame, "cleo").locator("td.score")).to_have_text(f"{after:g} / {maximum:g}")
    expect(submission_row(frame, "cleo").locator("td.status")).to_have_text("graded")
    artifacts.shoot(page, "14-total-after-manual-grade")
    assert nbgrader_export(course)["cleo"] == (after, maximum)



def autograded_scores(course, student: str) -> dict[str, float]:
    """grade_id -> auto_score of each test cell of the student's ASSIGNMENT in the course's gradebook."""
    from nbgrader.api import Gradebook

    from graders.tooling.gradebook import course_db_url
    with Gradebook(course_db_url(course), "nn-from-scratch") as gradebook:
        notebook = gradebook.find_submission_notebook("neuron", ASSIGNMENT, student)
        return {grade.name: grade.auto_score for grade in notebook.grades}


def test_formgrader_autograde_button_grades_in_the_sandbox_as_course_grade_does(formgrader, course, artifacts):
    """Formgrader's Autograde button (the flash icon in Manage Submissions) is nbgrader's own autograde, which
    the course's nbgrader_config.py runs through SandboxedExecute: its log says the notebook ran in the grading
    sandbox, every test cell of cleo's keeps the score `./course grade` gave it, and the TA's grade stays."""
    before, total = autograded_scores(course, "cleo"), nbgrader_export(course)["cleo"]
    assert 0 < sum(score or 0 for score in before.values()) < autograded_points(ASSIGNMENT)  # passes and fails
    modal = press_for_student(formgrader, "cleo", "autograde", artifacts, "Autograde cleo again",
                              "15-formgrader-autograde")
    expect(modal).to_contain_text("executed in the grading sandbox")
    modal.get_by_role("button", name="OK").click()
    expect(modal).to_be_hidden()
    assert autograded_scores(course, "cleo") == before
    assert nbgrader_export(course)["cleo"] == total
