"""What a student sees in a real Jupyter kernel, without a browser: Run All goes through a fresh release,
checks render as HTML with a plain-text twin, a failed check is one error line (never a traceback), and
validating a notebook (nbgrader's Validator, behind `nbgrader validate` and the Validate button) shows the
diagnostics and, through `./course validate`, exits non-zero when a test fails.
"""
import os
import shutil
import subprocess
import sys

import nbformat
import pytest
from nbclient import NotebookClient

from graders.tooling.course import available_assignments, nbgrader_meta, notebook_path
from graders.tooling.examples import Submission, make_submission

KERNEL_ARGS = ["--IPKernelApp.log_level=ERROR"]
WRONG_SIGMOID_GRAD = "def sigmoid_grad(z):\n    return sigmoid(z) * (1 - z)\n"  # sigma(z) where sigma'(z) needs it


def run_all(nb, path, assignment="01_neuron"):
    """JupyterLab's Run All, in a student's folder (the release folder's data files beside the notebook): stop
    at an error, except in a cell tagged raises-exception."""
    for data in notebook_path(assignment, "release").parent.iterdir():
        if data.suffix != ".ipynb":
            shutil.copy(data, path)
    NotebookClient(nb, timeout=120, kernel_name="python3", allow_errors=False, extra_arguments=KERNEL_ARGS,
                   resources={"metadata": {"path": str(path)}}).execute()
    return nb


def is_test_cell(cell) -> bool:
    meta = nbgrader_meta(cell)
    return bool(meta.get("grade")) and not meta.get("solution")


@pytest.mark.parametrize("assignment", available_assignments("release"))
def test_run_all_goes_through_a_fresh_release(assignment, tmp_path):
    nb = run_all(nbformat.read(str(notebook_path(assignment, "release")), as_version=4), tmp_path, assignment)
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert all(c.execution_count for c in code), "Run All stopped before the end"
    for cell in code:
        errors = [o for o in cell.outputs if o.output_type == "error"]
        stderr = [o for o in cell.outputs if o.get("name") == "stderr"]
        assert not stderr, f"{cell.source[:60]!r} wrote to stderr: {stderr[0].text[:300]}"
        if not is_test_cell(cell):
            assert not errors, f"{cell.source[:60]!r} raised {errors[0].ename} in a fresh release"
            continue
        for error in errors:
            assert error.ename == "CheckFailed" and len(error.traceback) == 1, error.traceback
    failed = [c for c in code if is_test_cell(c) and "check(" in c.source and
              any(o.output_type == "error" for o in c.outputs)]
    assert failed, "an untouched release passed a visible check"
    report = failed[0].outputs[0]
    assert report.output_type == "display_data" and "not written yet" in report.data["text/plain"]
    assert "not written yet" in report.data["text/html"] and "<table" in report.data["text/html"]


def test_a_pass_and_a_diagnosis_render_as_html_and_plain_text(tmp_path):
    nb = make_submission("01_neuron", Submission(fill="all", replace={"sigmoid_grad": WRONG_SIGMOID_GRAD}))
    run_all(nb, tmp_path)
    outputs = {nbgrader_meta(c).get("grade_id"): c.outputs for c in nb.cells if c.cell_type == "code"}
    passed = outputs["test_sigmoid_visible"]
    assert [o.output_type for o in passed] == ["display_data"]
    assert passed[0].data["text/plain"].startswith("✓ sigmoid: ")
    assert "✓" in passed[0].data["text/html"] and "#1a7f37" in passed[0].data["text/html"]
    failed = outputs["test_sigmoid_grad_visible"]
    assert [o.output_type for o in failed] == ["display_data", "error"]
    plain, html = failed[0].data["text/plain"], failed[0].data["text/html"]
    for words in ("expected", "got", "likely cause", "sigmoid(z) in both factors", "0.104994", "-0.880797"):
        assert words in plain and words in html, words
    assert "<script" not in html
    assert len(failed[1].traceback) == 1 and "sigmoid_grad: 1 visible check(s) failed" in failed[1].traceback[0]


def course(*args, **kwargs):
    env = dict(os.environ)
    env.pop("MPLBACKEND", None)
    return subprocess.run([sys.executable, "-m", "graders", *args], capture_output=True, text=True, env=env,
                          timeout=600, **kwargs)


def test_validate_shows_the_diagnosis_and_exits_non_zero_on_a_failed_test(tmp_path):
    notebook = tmp_path / "neuron.ipynb"
    answered = {"written_loss_floor": "The clouds overlap, so no line separates them."}
    nbformat.write(make_submission("01_neuron", Submission(fill="all", replace={"sigmoid_grad": WRONG_SIGMOID_GRAD},
                                                           answers=answered)), str(notebook))
    run = course("validate", str(notebook), cwd=tmp_path)
    assert run.returncode == 1, run.stdout + run.stderr
    assert "VALIDATION FAILED ON 1 CELL(S)" in run.stdout
    assert "✗ sigmoid_grad: " in run.stdout and "expected 0.104994, got -0.880797" in run.stdout
    assert "hidden=True" not in run.stdout and not run.stderr.strip()

    nbformat.write(make_submission("01_neuron", Submission(fill="all", answers=answered)), str(notebook))
    run = course("validate", str(notebook), cwd=tmp_path)
    assert run.returncode == 0 and "Success! Your notebook passes all the tests." in run.stdout, run.stdout

    # nbgrader's own rule: a written answer left as released is reported before the student submits
    nbformat.write(make_submission("01_neuron", Submission(fill="all")), str(notebook))
    run = course("validate", str(notebook), cwd=tmp_path)
    assert run.returncode == 1 and "YOUR ANSWER HERE" in run.stdout, run.stdout
    assert "You did not provide a response" in run.stdout

    notebook.write_text(notebook.read_text()[:3000])
    run = course("validate", str(notebook), cwd=tmp_path)
    assert run.returncode == 2 and "not a valid notebook" in run.stdout
