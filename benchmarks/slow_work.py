"""What slow work costs the grader: an honest notebook of 01 and three slow ones, graded in one run.

    .venv/bin/python benchmarks/slow_work.py [--assignment 01_neuron]

The four submissions of one assignment (default 01_neuron), graded one at a time by `./course grade`'s
pipeline (grade_class, one worker) in a scratch copy of the course:
  honest              the full solution;
  never_returns       the full solution with sigmoid replaced by `while True: pass`;
  ignores_interrupts  the same, but catching KeyboardInterrupt in the loop (so only a kernel restart stops it);
  sleeps              the full solution with `time.sleep(30)` at the end of every code cell.
Printed: each one's seconds in the sandbox, its excess over the honest one, its score, and the cell and
notebook limits it ran under (fitted from graders/hidden/timing.json, see `./course measure-time`).
"""
from __future__ import annotations

import argparse
import io
import os
import sys
import tempfile
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from graders.engine.classgrade import grade_class  # noqa: E402
from graders.tooling.build import build  # noqa: E402
from graders.tooling.course import nbgrader_meta  # noqa: E402
from graders.tooling.examples import Submission, make_submission  # noqa: E402
from graders.tooling.gradebook import course_db_url, exercise_scores, totals  # noqa: E402
from tests.helpers import copy_course  # noqa: E402

NEVER_RETURNS = "def sigmoid(z):\n    while True:\n        pass\n"
IGNORES_INTERRUPTS = ("def sigmoid(z):\n    while True:\n        try:\n            while True:\n                pass\n"
                      "        except KeyboardInterrupt:\n            pass\n")
SLEEP = "\nimport time\ntime.sleep(30)\n"


def submissions(assignment: str) -> dict:
    """student -> the notebook they hand in (see the module's docstring)."""
    sleeps = make_submission(assignment, Submission(fill="all"))
    for cell in sleeps.cells:
        meta = nbgrader_meta(cell)
        if cell.cell_type == "code" and not (meta.get("grade") and not meta.get("solution")):
            cell.source += SLEEP
    return {"honest": make_submission(assignment, Submission(fill="all")),
            "never_returns": make_submission(assignment, Submission(fill="all", replace={"sigmoid": NEVER_RETURNS})),
            "ignores_interrupts": make_submission(assignment, Submission(fill="all",
                                                                         replace={"sigmoid": IGNORES_INTERRUPTS})),
            "sleeps": sleeps}


def run(assignment: str = "01_neuron", course: Path | None = None, limits=None) -> dict:
    """Grade the four submissions in a scratch course (at `course`, default a temporary folder).

    Returns:
      {student: {"seconds": float, "excess": float, "score": float, "faults": tuple}}.
    """
    scratch = tempfile.TemporaryDirectory(prefix="nnfs-slow-work-") if course is None else None
    course = Path(scratch.name) if scratch else Path(course)
    saved = os.environ.get("NNFS_COURSE_ROOT")
    os.environ["NNFS_COURSE_ROOT"] = str(course)
    try:
        copy_course(course, ("nbgrader_config.py", "source", "release"))
        build([assignment], root=course)
        notebooks = submissions(assignment)
        name = next((course / "release" / assignment).glob("*.ipynb")).name
        for student, nb in notebooks.items():
            folder = course / "submitted" / student / assignment
            folder.mkdir(parents=True)
            nbformat.write(nb, str(folder / name))
        jobs = grade_class([assignment], workers=1, root=course, limits=limits, out=io.StringIO())
        scores = totals(exercise_scores(course_db_url(course), "nn-from-scratch", [assignment]))
    finally:
        if saved is None:
            os.environ.pop("NNFS_COURSE_ROOT", None)
        else:
            os.environ["NNFS_COURSE_ROOT"] = saved
        if scratch:
            scratch.cleanup()
    seconds = {job.student: job.seconds for job in jobs}
    return {job.student: {"seconds": job.seconds, "excess": job.seconds - seconds["honest"],
                          "score": scores.get((assignment, job.student)), "faults": tuple(job.faults),
                          "errors": tuple(job.errors)}
            for job in sorted(jobs, key=lambda j: list(notebooks).index(j.student))}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--assignment", default="01_neuron")
    options = parser.parse_args()
    from graders.engine.classgrade import course_limits
    from graders.hidden import honest_time
    limits = course_limits(ROOT)
    cell, notebook = limits.fitted(honest_time(options.assignment))
    print(f"{options.assignment}: cell limit {cell:.3g} s, notebook limit {notebook:.3g} s "
          f"(honest time {honest_time(options.assignment)})")
    load = os.getloadavg()[0]
    for student, row in run(options.assignment).items():
        print(f"{student:20s} {row['seconds']:6.1f} s   excess {row['excess']:+6.1f} s   score {row['score']}")
    print(f"load average at the start: {load:.2f} on {os.cpu_count()} cores")


if __name__ == "__main__":
    main()
