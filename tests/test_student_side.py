"""The student's side holds data, not code, and its visible checks say what the reference-backed ones say.

- Visible checks answered from the release's check data give, for every catalog entry (wrong or right),
  exactly the report that the same checks give when they ask the reference itself.
- The reference passes every visible check from the data.
"""
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
