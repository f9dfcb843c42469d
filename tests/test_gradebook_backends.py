"""The course's gradebook helpers work with any db_url nbgrader accepts: its default SQLite file in the course
folder, and a database on a real PostgreSQL server (tests/postgres.py). The grading runs themselves are compared
on both backends in tests/test_demo.py and tests/test_resume.py."""
import os
import subprocess
import sys
import uuid

import pytest
from nbgrader.api import Gradebook
from sqlalchemy import create_engine, inspect, text

from tests.helpers import copy_course
from tests.postgres import postgres  # noqa: F401  (the fixture)
from graders.tooling.gradebook import (clear_gradebook, course_db_url, gradebook_students, set_course_db_url,
                                       shown_url)

COURSE_ID = "nn-from-scratch"


@pytest.fixture(params=["sqlite", "postgresql"])
def course(request, tmp_path):
    """A scratch course (its nbgrader_config.py, source/ and examples/) whose gradebook is on each backend in turn:
    the course's own db_url (nbgrader's default SQLite file), or a new database on the PostgreSQL server."""
    copy_course(tmp_path, ("nbgrader_config.py", "source", "examples"))
    if request.param == "postgresql":
        set_course_db_url(tmp_path, request.getfixturevalue("postgres").new_database(f"t_{uuid.uuid4().hex[:12]}"))
    return tmp_path


def table_names(db_url: str) -> set[str]:
    engine = create_engine(db_url)
    try:
        with engine.connect() as connection:
            return set(inspect(connection).get_table_names())
    finally:
        engine.dispose()


def test_reading_the_students_of_a_missing_gradebook_creates_nothing(course):
    db_url = course_db_url(course)
    assert gradebook_students(db_url) == set()
    assert not (course / "gradebook.db").exists()
    if not db_url.startswith("sqlite"):
        assert table_names(db_url) == set()


def test_clearing_empties_the_gradebook_and_leaves_other_tables_alone(course):
    db_url = course_db_url(course)
    with Gradebook(db_url, COURSE_ID) as gb:
        gb.add_student("zed")
        gb.add_assignment("01_neuron")
    engine = create_engine(db_url)
    with engine.begin() as connection:  # another application's table in the same database
        connection.execute(text("CREATE TABLE other_app (x INTEGER)"))
    engine.dispose()
    assert gradebook_students(db_url) == {"zed"}

    clear_gradebook(db_url)
    assert gradebook_students(db_url) == set()
    if not db_url.startswith("sqlite"):  # a SQLite gradebook is its own file, deleted whole
        assert table_names(db_url) == {"other_app"}
    with Gradebook(db_url, COURSE_ID) as gb:  # nbgrader starts a new gradebook there
        assert gb.students == [] and gb.assignments == []


def test_the_demo_refuses_to_empty_a_gradebook_holding_other_students(course):
    db_url = course_db_url(course)
    with Gradebook(db_url, COURSE_ID) as gb:
        gb.add_student("zed")
    env = dict(os.environ, NNFS_COURSE_ROOT=str(course))
    run = subprocess.run([sys.executable, "-m", "graders", "demo"], cwd=course, env=env, capture_output=True,
                         text=True, timeout=300, check=False)
    assert run.returncode == 1, run.stdout + run.stderr
    assert "holds students other than the example class" in run.stderr
    assert gradebook_students(db_url) == {"zed"}
    assert not (course / "submitted").exists()


def test_a_printed_gradebook_url_hides_its_password():
    shown = shown_url("postgresql+psycopg://grader:s3cret@127.0.0.1:5432/course")
    assert "s3cret" not in shown and shown.startswith("postgresql+psycopg://grader:")
