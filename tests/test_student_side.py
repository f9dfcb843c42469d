"""The student's side holds data, not code, and its visible checks say what the reference-backed ones say.

- Visible checks answered from the release's check data give, for every catalog entry (wrong or right),
  exactly the report that the same checks give when they ask the reference itself.
- The same holds for the student side alone: the student package's files and the release folders in a scratch
  folder, without source/, solutions/ or the instructor's side of graders/.
- The reference passes every visible check from the data.
"""
import json
import os
import subprocess
import sys

import pytest

from graders.checks.expected import find_check_data
from graders.checks.registry import exercises
from graders.checks.runner import run_exercise
from graders.hidden import LiveExpected
from tests.catalog import catalogs
from tests.helpers import COURSE, namespace_with

pytestmark = pytest.mark.catalog

CASES = [(c.ASSIGNMENT, w.exercise, w.mistake, w.code) for c in catalogs() for w in c.WRONG] + \
        [(c.ASSIGNMENT, None, r.name, r.code) for c in catalogs() for r in c.CORRECT]


def recorded(assignment, monkeypatch):
    monkeypatch.setenv("NNFS_CHECK_DATA", str(COURSE / "release" / assignment))
    data = find_check_data(assignment)
    assert data is not None, f"release/{assignment} has no check data: run ./course build"
    return data


@pytest.mark.parametrize("assignment,exercise,name,code", CASES, ids=[f"{a}:{e or 'all'}:{n}" for a, e, n, _ in CASES])
def test_visible_reports_from_data_equal_those_from_the_reference(assignment, exercise, name, code, monkeypatch):
    data = recorded(assignment, monkeypatch)
    for ex in [exercise] if exercise else exercises(assignment):
        from_data = run_exercise(ex, namespace_with(assignment, code), "visible", expected=data)
        from_reference = run_exercise(ex, namespace_with(assignment, code), "visible",
                                      expected=LiveExpected(assignment))
        assert from_data.text() == from_reference.text(), (
            f"{ex}: the student's side says\n{from_data.text()}\n\nthe reference says\n{from_reference.text()}")


CHILD = r"""
import json, sys
request = json.load(sys.stdin)
import graders
assert graders.__file__.startswith(request["package"]), graders.__file__
from graders.checks.registry import exercises
from graders.checks.runner import run_exercise
reports = []
for assignment, exercise, code in request["cases"]:
    namespace = {}
    exec(request["references"][assignment], namespace)
    exec(code, namespace)
    for ex in [exercise] if exercise else exercises(assignment):
        reports.append(run_exercise(ex, namespace, "visible").text())
missing = [m for m in sys.modules if m.startswith(("graders.hidden", "graders.engine", "graders.tooling"))]
print(json.dumps({"reports": reports, "instructor_modules": missing}))
"""


def test_a_student_side_alone_gives_every_catalog_entry_the_reference_backed_report(tmp_path):
    """The student side alone, in a scratch folder: the student package's files (no hidden/, engine/, tooling/)
    and the release folders (no source/, no solutions/), each notebook's checks run from its own folder's data.
    For every catalog entry of every assignment (and the reference itself), every visible report is exactly the
    one the instructor's side gives."""
    from graders.tooling.reference import reference_cells
    from graders.tooling.course import notebook_path, read_notebook
    from graders.tooling.student_package import student_files

    package = tmp_path / "site"
    for name, data in student_files(COURSE).items():
        (package / name).parent.mkdir(parents=True, exist_ok=True)
        (package / name).write_bytes(data)
    assert not (package / "graders" / "hidden").exists() and not (package / "graders" / "tooling").exists()
    references = {c.ASSIGNMENT: "\n\n".join(reference_cells(read_notebook(notebook_path(c.ASSIGNMENT, "source"))))
                  for c in catalogs()}
    for catalog in catalogs():
        assignment = catalog.ASSIGNMENT
        cases = [(assignment, None, "")] + [(assignment, w.exercise, w.code) for w in catalog.WRONG]
        expected = []
        for _, exercise, code in cases:
            for ex in [exercise] if exercise else exercises(assignment):
                expected.append(run_exercise(ex, namespace_with(assignment, code), "visible",
                                             expected=LiveExpected(assignment)).text())
        folder = tmp_path / "release" / assignment
        folder.mkdir(parents=True)
        for path in (COURSE / "release" / assignment).iterdir():
            (folder / path.name).write_bytes(path.read_bytes())
        env = {k: v for k, v in os.environ.items() if k not in ("NNFS_CHECK_DATA", "NNFS_COURSE_ROOT")}
        env["PYTHONPATH"] = str(package)
        run = subprocess.run([sys.executable, "-c", CHILD], cwd=folder, env=env, text=True, capture_output=True,
                             input=json.dumps({"package": str(package), "references": references, "cases": cases}),
                             timeout=600)
        assert run.returncode == 0 and not run.stderr, run.stderr[-3000:]
        result = json.loads(run.stdout)
        assert result["instructor_modules"] == [], result["instructor_modules"]
        got = result["reports"]
        assert len(got) == len(expected)
        differ = [(e, g) for e, g in zip(expected, got) if e != g]
        assert not differ, f"{assignment}: {len(differ)} report(s) differ, first:\n{differ[0][0]}\n---\n{differ[0][1]}"
        assert all("✓" in text for text in got[:len(exercises(assignment))]), "the reference fails a visible check"
