"""Read grades out of nbgrader's gradebook: per student, per exercise; print them and write CSV files.

Exercises are named by the test cells' grade ids (`test_<exercise>_<visible|hidden>`), so a student's
score on an exercise is the sum of its visible and hidden cells.

The gradebook is wherever the course's nbgrader_config.py puts it (`c.CourseDirectory.db_url`, any URL
nbgrader's SQLAlchemy accepts: nbgrader's default SQLite file `gradebook.db` in the course folder, or e.g.
`postgresql+psycopg://user:password@host/database`); nothing here assumes a backend.
"""
from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

from nbgrader.api import Base, Gradebook, MissingEntry, Student
from nbgrader.plugins import CsvExportPlugin
from sqlalchemy import create_engine, inspect, select, text
from sqlalchemy.engine import URL, make_url

from .build import nbgrader_api
from .course import exercise_of


def course_db_url(root: Path) -> str:
    """root: a course folder. Returns the URL of its gradebook as nbgrader sees it: its nbgrader_config.py's
    CourseDirectory.db_url, or nbgrader's default, sqlite:///<root>/gradebook.db."""
    return nbgrader_api(root).coursedir.db_url


def set_course_db_url(root: Path, db_url: str) -> None:
    """Point the course at `root` (its nbgrader_config.py, which every nbgrader command and ./course reads)
    at the gradebook `db_url`; the last setting in the file wins."""
    with open(Path(root) / "nbgrader_config.py", "a", encoding="utf-8") as handle:
        handle.write(f"\nc.CourseDirectory.db_url = {db_url!r}\n")


def shown_url(db_url: str) -> str:
    """db_url with its password (if any) masked, to print."""
    return make_url(db_url).render_as_string(hide_password=True)


def _sqlite_file(url: URL) -> Path | None:
    """The file of a SQLite URL (None for an in-memory database or another backend)."""
    if url.get_backend_name() != "sqlite" or url.database in (None, "", ":memory:"):
        return None
    return Path(url.database)


def gradebook_students(db_url: str) -> set[str]:
    """The ids of the students in the gradebook at db_url; empty where there is no gradebook yet. Creates
    nothing (not even an empty SQLite file)."""
    url = make_url(db_url)
    sqlite_file = _sqlite_file(url)
    if sqlite_file is not None and not sqlite_file.exists():
        return set()
    engine = create_engine(url)
    try:
        with engine.connect() as connection:
            if not inspect(connection).has_table(Student.__tablename__):
                return set()
            return set(connection.scalars(select(Student.id)))
    finally:
        engine.dispose()


def clear_gradebook(db_url: str) -> None:
    """Empty the gradebook at db_url, so that the next nbgrader command starts a new one: a SQLite file is
    deleted; in any other database nbgrader's tables (and only those) are dropped."""
    url = make_url(db_url)
    if url.get_backend_name() == "sqlite":
        sqlite_file = _sqlite_file(url)
        if sqlite_file is not None:
            sqlite_file.unlink(missing_ok=True)
        return
    engine = create_engine(url)
    try:
        with engine.begin() as connection:
            Base.metadata.drop_all(connection)
            # nbgrader records its schema's version in a table of its own, outside its models
            connection.execute(text("DROP TABLE IF EXISTS alembic_version"))
    finally:
        engine.dispose()


@dataclass(frozen=True)
class ExerciseScore:
    assignment: str
    student: str
    exercise: str
    score: float
    max_score: float


def exercise_scores(db_url: str, course_id: str, assignments: list[str]) -> list[ExerciseScore]:
    """Every (assignment, student, exercise) score of the submissions in the gradebook."""
    rows = []
    with Gradebook(db_url, course_id) as gb:
        students = sorted(s.id for s in gb.students)
        for assignment in assignments:
            try:
                exercises = _exercise_maxima(gb, assignment)
            except MissingEntry:
                continue
            for student in students:
                earned = dict.fromkeys(exercises, 0.0)
                try:
                    submission = gb.find_submission(assignment, student)
                except MissingEntry:
                    continue  # no submission: nbgrader's own export lists them with 0
                for notebook in submission.notebooks:
                    for grade in notebook.grades:
                        exercise = exercise_of(grade.name)
                        if exercise in earned:
                            earned[exercise] += grade.score or 0.0
                rows.extend(ExerciseScore(assignment, student, ex, earned[ex], exercises[ex]) for ex in exercises)
    return rows


def _exercise_maxima(gb: Gradebook, assignment: str) -> dict[str, float]:
    maxima: dict[str, float] = {}
    for notebook in gb.find_assignment(assignment).notebooks:
        for cell in notebook.grade_cells:
            exercise = exercise_of(cell.name)
            if exercise:
                maxima[exercise] = maxima.get(exercise, 0.0) + cell.max_score
    return maxima


def totals(rows: list[ExerciseScore]) -> dict[tuple[str, str], float]:
    """(assignment, student) -> total score."""
    out: dict[tuple[str, str], float] = {}
    for row in rows:
        out[row.assignment, row.student] = out.get((row.assignment, row.student), 0.0) + row.score
    return out


def format_tables(rows: list[ExerciseScore]) -> str:
    """One table per assignment: exercises down, students across, totals at the bottom."""
    blocks = []
    for assignment in dict.fromkeys(r.assignment for r in rows):
        mine = [r for r in rows if r.assignment == assignment]
        students = list(dict.fromkeys(r.student for r in mine))
        exercises = list(dict.fromkeys(r.exercise for r in mine))
        score = {(r.student, r.exercise): r for r in mine}
        width = max(len("exercise"), *(len(e) for e in exercises))
        col = max(6, *(len(s) for s in students)) + 2
        lines = [f"{assignment}", f"{'exercise':{width}s}  {'max':>4s}" + "".join(f"{s:>{col}s}" for s in students)]
        lines.append("-" * len(lines[-1]))
        for exercise in exercises:
            maximum = score[students[0], exercise].max_score
            cells = "".join(f"{_num(score[s, exercise].score):>{col}s}" for s in students)
            lines.append(f"{exercise:{width}s}  {_num(maximum):>4s}{cells}")
        lines.append("-" * len(lines[1]))
        total_max = sum(score[students[0], e].max_score for e in exercises)
        lines.append(f"{'total':{width}s}  {_num(total_max):>4s}" +
                     "".join(f"{_num(sum(score[s, e].score for e in exercises)):>{col}s}" for s in students))
        blocks.append("\n".join(lines))
    return "\n\n".join(blocks)


def _num(x: float) -> str:
    return f"{x:g}"


def write_exercise_csv(rows: list[ExerciseScore], path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["assignment", "student", "exercise", "score", "max_score"])
        for r in rows:
            writer.writerow([r.assignment, r.student, r.exercise, _num(r.score), _num(r.max_score)])


def export_nbgrader_csv(db_url: str, course_id: str, path: Path) -> None:
    """nbgrader's own CSV export (what `nbgrader export` writes), one row per student and assignment."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with Gradebook(db_url, course_id) as gb:
        CsvExportPlugin(to=str(path)).export(gb)
