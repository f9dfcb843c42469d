"""What each `./course` command does (cli.py parses the arguments and calls one of these).

Each `<name>_command` takes the parsed arguments (an argparse.Namespace) and returns the exit status.
Everything heavy (nbgrader, nbformat, the grading engine) is imported inside the command that needs it, so
that `./course --help`, `--version` and argument errors answer without waiting seconds for those imports.
"""
from __future__ import annotations

import argparse
import os
import shutil
import sys
import time
import warnings
from pathlib import Path

#: The clone this package runs from (an editable install): pyproject.toml and tests/ are here.
CHECKOUT = Path(__file__).resolve().parents[2]

#: What the demo writes into the course folder (and wipes before it starts again), besides the gradebook,
#: which is wherever the course's db_url says.
DEMO_OUTPUTS = ("submitted", "autograded", "feedback", "reports", ".grading")


def build_command(options: argparse.Namespace) -> int:
    """options.assignments: assignment ids, [] for every one under source/."""
    from .build import build
    started = time.perf_counter()
    built = build(options.assignments or None)
    print(f"built {', '.join(built)} into release/ and solutions/ in {time.perf_counter() - started:.1f} s")
    return 0


def _only_examples_here(root: Path, students: set[str]) -> bool:
    submitted = root / "submitted"
    return not submitted.exists() or {p.name for p in submitted.iterdir()} <= students


def demo_command(options: argparse.Namespace) -> int:
    """No options: builds, grades the example class and writes the reports in the course folder."""
    from ..engine.classgrade import grade_class, summary_table
    from . import gradebook
    from .build import build, nbgrader_api
    from .course import course_root
    from .examples import load_class, write_class

    root = course_root()
    example_class = load_class(root)
    db_url = gradebook.course_db_url(root)
    if not _only_examples_here(root, set(example_class.STUDENTS)):
        print("submitted/ holds submissions other than the example class; the demo would overwrite your "
              "gradebook. Run it in a fresh clone of the course instead.", file=sys.stderr)
        return 1
    if not gradebook.gradebook_students(db_url) <= set(example_class.STUDENTS):
        print(f"the gradebook ({gradebook.shown_url(db_url)}) holds students other than the example class; the "
              "demo would empty it. Run it in a fresh clone of the course, with a gradebook of its own.",
              file=sys.stderr)
        return 1
    started = time.perf_counter()
    for name in DEMO_OUTPUTS:
        path = root / name
        if path.is_dir():
            shutil.rmtree(path)
        elif path.exists():
            path.unlink()
    gradebook.clear_gradebook(db_url)
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

    course_id = api.coursedir.course_id
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
    print(f"gradebook:             {gradebook.shown_url(db_url)}")
    print(f"demo finished in {time.perf_counter() - started:.0f} s")
    return 0


def grade_command(options: argparse.Namespace) -> int:
    """options.assignments ([] for every one with submissions), options.workers (None: one per core),
    options.force, options.allow_unfenced, options.students (None: everyone's), options.scheduler (None:
    c.ClassGrading.scheduler). Returns 1 if the grader itself
    failed on a submission, 2 if no kernel can be fenced here (and unfenced grading was not allowed), 130 on
    Ctrl-C."""
    from ..engine.classgrade import course_limits, grade_class, summary_table
    from ..engine.sandbox import FenceUnavailable
    from .course import course_root
    limits = course_limits(course_root())
    if options.allow_unfenced:
        limits.allow_unfenced = True
    try:
        jobs = grade_class(options.assignments or None, workers=options.workers, force=options.force, limits=limits,
                           students=options.students, scheduler=getattr(options, "scheduler", None))
    except KeyboardInterrupt:
        return 130
    except (FenceUnavailable, ConnectionError) as refusal:  # no fence here, or no Dask scheduler at --scheduler
        print(f"./course grade: {refusal}", file=sys.stderr)
        return 2
    print(summary_table(jobs))
    return 1 if any(job.status == "failed" for job in jobs) else 0


def watch_command(options: argparse.Namespace) -> int:
    """options.poll_seconds (None: c.Watch.poll_seconds), options.allow_unfenced. Runs until Ctrl-C or SIGTERM;
    returns 0 then, 2 if no kernel can be fenced here."""
    from ..engine.watch import watch
    return watch(poll_seconds=options.poll_seconds, allow_unfenced=options.allow_unfenced)


def report_command(options: argparse.Namespace) -> int:
    """options.assignment, options.out (None: <course>/reports/<assignment>/). Prints the page's path;
    returns 1 if nothing of the assignment is graded yet."""
    from .report import ReportError, write_report
    try:
        written = write_report(options.assignment, options.out)
    except ReportError as exc:
        print(f"./course report: {exc}", file=sys.stderr)
        return 1
    for path in written:
        print(path)
    return 0


def release_bundle_command(options: argparse.Namespace) -> int:
    """options.assignments ([] for every one with a release notebook), options.out (None: <course>/bundles/).
    Prints the path of each bundle written; returns 1 if an assignment's release folder is incomplete."""
    from .bundle import BundleError, write_bundles
    try:
        paths = write_bundles(options.assignments or None, options.out)
    except BundleError as exc:
        print(exc, file=sys.stderr)
        return 1
    for path in paths:
        print(path)
    return 0


def lab_command(options: argparse.Namespace) -> int:
    """options.extra: arguments for `jupyter lab`. Replaces this process with JupyterLab in the course folder."""
    from .build import ensure_tools_on_path
    from .course import course_root
    ensure_tools_on_path()
    os.chdir(course_root())
    os.execvp("jupyter", ["jupyter", "lab", *options.extra])


def validate_command(options: argparse.Namespace) -> int:
    """options.notebooks: notebook paths. Returns the worst status: 1 if a test fails, 2 if a locked cell changed."""
    from .selfcheck import validate
    return max(validate(path) for path in options.notebooks)


def selfcheck_command(options: argparse.Namespace) -> int:
    """options.notebook, options.assignment (None: inferred from the notebook). Non-zero until full marks."""
    from .selfcheck import selfcheck
    return selfcheck(options.notebook, options.assignment)


def totext_command(options: argparse.Namespace) -> int:
    """options.notebook: a source notebook, printed in the text form."""
    from .authoring import notebook_file_to_text
    sys.stdout.write(notebook_file_to_text(options.notebook))
    return 0


def fromtext_command(options: argparse.Namespace) -> int:
    """options.text: a text-form file; options.notebook: the notebook to (over)write from it."""
    from .authoring import text_file_to_notebook
    text_file_to_notebook(options.text, options.notebook)
    return 0


def test_command(options: argparse.Namespace) -> int:
    """options.extra: arguments for pytest. Replaces this process with pytest, run in the clone.

    `./course test` runs pytest itself (after installing what the browser tests need); this is `nnfs test`."""
    os.chdir(CHECKOUT)
    os.execv(sys.executable, [sys.executable, "-m", "pytest", *options.extra])
