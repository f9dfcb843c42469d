"""The instructor and self-learner commands behind `./course`: build, demo, selfcheck."""
from __future__ import annotations

import argparse
import shutil
import sys
import time
import warnings
from pathlib import Path

from . import gradebook
from .build import build, nbgrader_api
from .cli import register
from .course import available_assignments, course_root
from ..engine.classgrade import grade_class, summary_table
from .examples import load_class, write_class

#: What the demo writes into the course folder (and wipes before it starts again).
DEMO_OUTPUTS = ("gradebook.db", "submitted", "autograded", "feedback", "reports", ".grading")


@register("build", "[ASSIGNMENT...]", "generate release/ and solutions/ from source/ with nbgrader")
def build_command(args: list[str]) -> int:
    started = time.perf_counter()
    built = build(args or None)
    print(f"built {', '.join(built)} into release/ and solutions/ in {time.perf_counter() - started:.1f} s")
    return 0


def _only_examples_here(root: Path, students: set[str]) -> bool:
    submitted = root / "submitted"
    return not submitted.exists() or {p.name for p in submitted.iterdir()} <= students


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
    print(f"==> grading {len(pairs)} submissions (./course grade: nbgrader's pipeline, sandboxed kernels, one per core)")
    with warnings.catch_warnings():
        # nbgrader's own internals warn (SQLAlchemy autoflush on a failed submission, a restored cell with no
        # id); the grades are right, and the demo's output is for reading.
        warnings.simplefilter("ignore")
        jobs = grade_class(assignments, root=root)
    api = nbgrader_api(root)
    print("==> generating feedback")
    for assignment in assignments:
        api.generate_feedback(assignment)

    db_url, course_id = api.coursedir.db_url, api.coursedir.course_id
    rows = gradebook.exercise_scores(db_url, course_id, assignments)
    reports = root / "reports"
    gradebook.write_exercise_csv(rows, reports / "exercise_scores.csv")
    gradebook.export_nbgrader_csv(db_url, course_id, reports / "grades.csv")
    with open(reports / "autograde_seconds.csv", "w", encoding="utf-8") as handle:
        handle.write("assignment,student,status,seconds\n")
        for job in jobs:
            handle.write(f"{job.assignment},{job.student},{job.status},{job.seconds:.2f}\n")

    print()
    print(summary_table(jobs))
    print()
    print(gradebook.format_tables(rows))
    print()
    print(f"grades per exercise:   {reports / 'exercise_scores.csv'}")
    print(f"nbgrader's grades CSV: {reports / 'grades.csv'}")
    print(f"feedback for students: {root / 'feedback'}/<student>/<assignment>/*.html")
    print(f"autograde seconds:     {reports / 'autograde_seconds.csv'}")
    print(f"graded notebooks:      {root / 'autograded'}/<student>/<assignment>/")
    print(f"gradebook:             {db_url}")
    print(f"demo finished in {time.perf_counter() - started:.0f} s")
    return 0


@register("grade", "[ASSIGNMENT...] [--workers N] [--force]",
          "grade every submission under submitted/: parallel, sandboxed, tamper-proof, into the gradebook")
def grade_command(args: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="./course grade")
    parser.add_argument("assignments", nargs="*", choices=available_assignments("source") + [[]], default=[])
    parser.add_argument("--workers", type=int, default=None, help="parallel kernels (default: one per core)")
    parser.add_argument("--force", action="store_true", help="grade again even what is already graded")
    options = parser.parse_args(args)
    try:
        jobs = grade_class(options.assignments or None, workers=options.workers, force=options.force)
    except KeyboardInterrupt:
        return 130
    print(summary_table(jobs))
    return 1 if any(job.status == "failed" for job in jobs) else 0


@register("lab", "[JUPYTER ARGS]", "open the course in JupyterLab (the notebooks are under release/)")
def lab_command(args: list[str]) -> int:
    import os
    from .build import ensure_tools_on_path
    ensure_tools_on_path()
    os.chdir(course_root())
    os.execvp("jupyter", ["jupyter", "lab", *args])


@register("validate", "NOTEBOOK...", "nbgrader validate, with an exit status: 1 if a test fails, 2 if a locked cell changed")
def validate_command(args: list[str]) -> int:
    from .selfcheck import validate
    if not args or args[0].startswith("-"):
        print("usage: ./course validate NOTEBOOK...   (runs the notebook's visible tests, as nbgrader's Validate "
              "button does)")
        return 2
    return max(validate(Path(path)) for path in args)


@register("selfcheck", "NOTEBOOK [--assignment ID]", "run the hidden tests on your own notebook and print your score")
def selfcheck_command(args: list[str]) -> int:
    from .selfcheck import selfcheck
    parser = argparse.ArgumentParser(prog="./course selfcheck")
    parser.add_argument("notebook", type=Path)
    parser.add_argument("--assignment", choices=available_assignments("source"))
    options = parser.parse_args(args)
    return selfcheck(options.notebook, options.assignment)
