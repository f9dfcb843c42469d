"""The instructor and self-learner commands behind `./course`: build, demo, selfcheck."""
from __future__ import annotations

import argparse
import re
import shutil
import sys
import time
import warnings
from pathlib import Path

from . import gradebook
from .build import build, nbgrader_api
from .cli import register
from .course import available_assignments, course_root
from .examples import load_class, write_class

#: What the demo writes into the course folder (and wipes before it starts again).
DEMO_OUTPUTS = ("gradebook.db", "submitted", "autograded", "feedback", "reports")


@register("build", "[ASSIGNMENT...]", "generate release/ and solutions/ from source/ with nbgrader")
def build_command(args: list[str]) -> int:
    started = time.perf_counter()
    built = build(args or None)
    print(f"built {', '.join(built)} into release/ and solutions/ in {time.perf_counter() - started:.1f} s")
    return 0


def _only_examples_here(root: Path, students: set[str]) -> bool:
    submitted = root / "submitted"
    return not submitted.exists() or {p.name for p in submitted.iterdir()} <= students


def failure_reason(log: str) -> str:
    """The last exception line of an nbgrader log, shortened: why a submission could not be graded."""
    reasons = [(name, message) for name, message in re.findall(r"^\s*([\w.]*(?:Error|Exception)): (.*)$", log, re.MULTILINE)
               if not name.endswith("NbGraderException")]
    if not reasons:
        return "nbgrader could not process it (see its log)"
    name, message = reasons[-1]
    return f"{name.rsplit('.', 1)[-1]}: {message[:100]}"


def autograde_all(api, pairs: list[tuple[str, str]]) -> dict[tuple[str, str], tuple[bool, float, str]]:
    """Plain `nbgrader autograde`, one submission after another; (student, assignment) -> (ok, seconds, log)."""
    results = {}
    for student, assignment in pairs:
        started = time.perf_counter()
        result = api.autograde(assignment, student, force=True, create=True)
        seconds = time.perf_counter() - started
        results[student, assignment] = (bool(result.get("success")), seconds, result.get("log", "") + result.get("error", ""))
        status = "graded" if result.get("success") else "could not be graded"
        print(f"  {assignment}/{student:6s} {status} in {seconds:5.1f} s", flush=True)
    return results


@register("demo", "", "build the course, grade the example class, print and write the grades")
def demo_command(args: list[str]) -> int:
    root = course_root()
    example_class = load_class(root)
    if not _only_examples_here(root, set(example_class.STUDENTS)):
        print("submitted/ holds submissions other than the example class; the demo would overwrite your "
              "gradebook. Run it in a fresh clone of the course instead.", file=sys.stderr)
        return 1
    started = time.perf_counter()
    for name in DEMO_OUTPUTS:
        path = root / name
        if path.is_dir():
            shutil.rmtree(path)
        elif path.exists():
            path.unlink()
    (root / "autograded").mkdir()
    (root / "autograded" / "README.md").write_text(
        "`nbgrader autograde` writes graded copies of the submissions here (`autograded/<student>/<assignment>/`).\n"
        "Nothing in this folder is committed except this note.\n")

    print("==> building release/ and solutions/ from source/")
    assignments = build(list(example_class.SUBMISSIONS))
    print("==> writing the example class into submitted/")
    pairs = write_class(root / "submitted", root)
    for student, description in example_class.STUDENTS.items():
        print(f"  {student:6s} {description}")
    print(f"==> autograding {len(pairs)} submissions with nbgrader")
    api = nbgrader_api(root)
    with warnings.catch_warnings():
        # nbgrader's own internals warn (SQLAlchemy autoflush on a failed submission, a restored cell with no
        # id); the grades are right, and the demo's output is for reading.
        warnings.simplefilter("ignore")
        results = autograde_all(api, pairs)
    print("==> generating feedback")
    for assignment in assignments:
        api.generate_feedback(assignment)

    db_url, course_id = api.coursedir.db_url, api.coursedir.course_id
    rows = gradebook.exercise_scores(db_url, course_id, assignments)
    reports = root / "reports"
    gradebook.write_exercise_csv(rows, reports / "exercise_scores.csv")
    gradebook.export_nbgrader_csv(db_url, course_id, reports / "grades.csv")
    with open(reports / "autograde_seconds.csv", "w", encoding="utf-8") as handle:
        handle.write("assignment,student,graded,seconds\n")
        for (student, assignment), (ok, seconds, _) in results.items():
            handle.write(f"{assignment},{student},{ok},{seconds:.2f}\n")

    print()
    print(gradebook.format_tables(rows))
    print()
    for (student, assignment), (ok, _, log) in results.items():
        if not ok:
            print(f"{assignment}/{student} could not be graded and scores 0: {failure_reason(log)}")
    print(f"grades per exercise:   {reports / 'exercise_scores.csv'}")
    print(f"nbgrader's grades CSV: {reports / 'grades.csv'}")
    print(f"feedback for students: {root / 'feedback'}/<student>/<assignment>/*.html")
    print(f"autograde seconds:     {reports / 'autograde_seconds.csv'}")
    print(f"graded notebooks:      {root / 'autograded'}/<student>/<assignment>/")
    print(f"gradebook:             {db_url}")
    print(f"demo finished in {time.perf_counter() - started:.0f} s")
    return 0


@register("lab", "[JUPYTER ARGS]", "open the course in JupyterLab (the notebooks are under release/)")
def lab_command(args: list[str]) -> int:
    import os
    from .build import ensure_tools_on_path
    ensure_tools_on_path()
    os.chdir(course_root())
    os.execvp("jupyter", ["jupyter", "lab", *args])


@register("selfcheck", "NOTEBOOK [--assignment ID]", "run the hidden tests on your own notebook and print your score")
def selfcheck_command(args: list[str]) -> int:
    from .selfcheck import selfcheck
    parser = argparse.ArgumentParser(prog="./course selfcheck")
    parser.add_argument("notebook", type=Path)
    parser.add_argument("--assignment", choices=available_assignments("source"))
    options = parser.parse_args(args)
    return selfcheck(options.notebook, options.assignment)
