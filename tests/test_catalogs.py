"""Every hidden test catches the mistake it exists for, and every valid alternative earns full marks.

For each assignment's catalog (tests/catalog/<assignment>.py):
- each Wrong entry must lose points on its exercise, with a failure message that names the mistake;
- each Right entry must earn every point of the whole notebook.
"""
import re

import pytest

from tests.catalog import catalogs
from tests.helpers import grade_namespace, namespace_with

WRONG = [(c.ASSIGNMENT, w) for c in catalogs() for w in c.WRONG]
RIGHT = [(c.ASSIGNMENT, r) for c in catalogs() for r in c.CORRECT]


@pytest.mark.parametrize("assignment,wrong", WRONG, ids=[f"{a}:{w.exercise}:{w.mistake}" for a, w in WRONG])
def test_wrong_implementation_loses_points_with_a_message_naming_it(assignment, wrong):
    grades = grade_namespace(assignment, namespace_with(assignment, wrong.code), exercise=wrong.exercise)
    assert grades, f"no test cells for exercise {wrong.exercise!r}"
    lost = sum(g.points - g.earned for g in grades)
    messages = "\n".join(g.output for g in grades)
    assert lost > 0, f"{wrong.mistake!r} earned full marks on {wrong.exercise}:\n{messages}"
    assert re.search(wrong.expect, messages, re.IGNORECASE | re.DOTALL), (
        f"{wrong.mistake!r} lost points but the message does not match {wrong.expect!r}:\n{messages}")


@pytest.mark.parametrize("assignment,right", RIGHT, ids=[f"{a}:{r.name}" for a, r in RIGHT])
def test_alternative_correct_implementation_earns_full_marks(assignment, right):
    grades = grade_namespace(assignment, namespace_with(assignment, right.code))
    failed = [g for g in grades if g.earned < g.points]
    assert not failed, "\n".join(f"{g.grade_id}:\n{g.output}" for g in failed)


def test_each_catalog_is_big_enough():
    for catalog in catalogs():
        assert len(catalog.WRONG) >= 10, f"{catalog.ASSIGNMENT}: at least 10 wrong implementations"
        alternatives = [r for r in catalog.CORRECT if r.code.strip()]  # the reference itself is not an alternative
        assert len(alternatives) >= 3, f"{catalog.ASSIGNMENT}: at least 3 alternative correct implementations"
        assert len({w.mistake for w in catalog.WRONG}) == len(catalog.WRONG), "mistake names must be unique"
