"""How many notebooks a second `./course grade`'s coordinator handles when executing costs nothing.

    .venv/bin/python benchmarks/coordinator.py [--submissions 200] [--workers 2] [--backends sqlite postgresql]
                                               [--step-processes N] [--profile FILE]

The coordinator sanitizes each submission with nbgrader, hands it to a worker and saves the executed notebook's
grades with nbgrader. Here the worker's job (classgrade.execute_job) is replaced by one that returns the sanitized
notebook unchanged, so what is measured is the coordinator alone: the ceiling on a cluster of any size. Each
backend grades the same class of `--submissions` copies of assignment 01's source notebook in a fresh copy of the
course: SQLite (nbgrader's default gradebook.db) and PostgreSQL (a throwaway server, tests/postgres.py; skipped
with the reason where none can start). SQLite has one writer, so nbgrader's sanitize and save steps run in the
grading process one after another; PostgreSQL is measured that way too (as every backend was graded before) and
with the steps in --step-processes processes at once (c.ClassGrading.step_processes; default one per core).
`--profile FILE` writes cProfile statistics of the SQLite run.
"""
from __future__ import annotations

import argparse
import cProfile
import io
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from graders.engine.classgrade import grade_class  # noqa: E402
from graders.tooling.build import build  # noqa: E402
from graders.tooling.course import notebook_path  # noqa: E402
from graders.tooling.gradebook import clear_gradebook, set_course_db_url  # noqa: E402

ASSIGNMENT = "01_neuron"


def execute_nothing(payload: dict, limits, root: str, hide: tuple) -> dict:
    """A job that costs nothing: the sanitized notebook comes back as it went (classgrade.execute_job's
    signature and result)."""
    return {"notebook": payload["notebook"], "seconds": 0.0, "faults": [], "errors": []}


def course_copy(base: Path, name: str, submissions: int, db_url: str | None, step_processes: int) -> Path:
    """A built copy of the course in base/name with `submissions` students handing in 01's source notebook;
    db_url: its gradebook, emptied first (None: nbgrader's default SQLite file in the copy); step_processes:
    its c.ClassGrading.step_processes."""
    course = base / name
    course.mkdir()
    shutil.copy(ROOT / "nbgrader_config.py", course)
    with open(course / "nbgrader_config.py", "a", encoding="utf-8") as handle:
        handle.write(f"\nc.ClassGrading.step_processes = {step_processes}\n")
    shutil.copytree(ROOT / "source", course / "source")
    if db_url:
        set_course_db_url(course, db_url)
        clear_gradebook(db_url)
    build([ASSIGNMENT], root=course)
    text = notebook_path(ASSIGNMENT, "source").read_bytes()
    for number in range(submissions):
        target = course / "submitted" / f"s{number:04d}" / ASSIGNMENT / notebook_path(ASSIGNMENT, "release").name
        target.parent.mkdir(parents=True)
        target.write_bytes(text)
    return course


def rate(course: Path, workers: int, profile: str | None = None) -> tuple[float, float, int]:
    """(notebooks per second over the whole run, notebooks per second from the first notebook saved to the last,
    notebooks graded) of one grading run of the course with jobs that cost nothing. The second is what the
    coordinator sustains; the first also pays once for starting the workers and probing the fence."""
    os.environ["NNFS_COURSE_ROOT"] = str(course)
    profiler = cProfile.Profile() if profile else None
    started = time.perf_counter()
    if profiler:
        profiler.enable()
    jobs = grade_class([ASSIGNMENT], workers=workers, root=course, out=io.StringIO(), execute=execute_nothing)
    if profiler:
        profiler.disable()
        profiler.dump_stats(profile)
    seconds = time.perf_counter() - started
    graded = sum(job.status == "graded" for job in jobs)
    if graded != len(jobs):
        raise SystemExit(f"{len(jobs) - graded} of {len(jobs)} submissions were not graded: "
                         f"{[j.errors for j in jobs if j.errors][:3]}")
    saved = sorted(path.stat().st_mtime for path in (course / ".grading" / "done").rglob("*.json"))
    return graded / seconds, (len(saved) - 1) / (saved[-1] - saved[0]), graded


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--submissions", type=int, default=200)
    parser.add_argument("--workers", type=int, default=os.cpu_count())
    parser.add_argument("--backends", nargs="+", default=["sqlite", "postgresql"], choices=["sqlite", "postgresql"])
    parser.add_argument("--step-processes", type=int, default=os.cpu_count(),
                        help="processes running the sanitize and save steps for PostgreSQL (default: one per core)")
    parser.add_argument("--profile", metavar="FILE", help="write cProfile statistics of the SQLite run to FILE")
    options = parser.parse_args()
    print(f"{options.submissions} submissions of {ASSIGNMENT}, jobs that cost nothing, {options.workers} workers; "
          f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores", flush=True)
    server = None
    with tempfile.TemporaryDirectory(prefix="nnfs-coordinator-") as tmp:
        try:
            for backend in options.backends:
                runs = [("sqlite", None, 1)]
                if backend == "postgresql":
                    from tests.postgres import Unavailable, start_server
                    try:
                        server = start_server()
                    except Unavailable as reason:
                        print(f"{backend} skipped: {reason}")
                        continue
                    runs = [(f"postgresql{k}", server.new_database(f"coordinator{k}"), k)
                            for k in dict.fromkeys((1, options.step_processes))]
                for name, db_url, processes in runs:
                    course = course_copy(Path(tmp), name, options.submissions, db_url, processes)
                    whole, sustained, graded = rate(course, options.workers, options.profile if not db_url else None)
                    label = f"{backend}, steps in {processes} process{'es' if processes > 1 else ''}"
                    print(f"{label:34s} {sustained:6.2f} notebooks/s sustained, {whole:6.2f} over the whole run "
                          f"({graded} graded)", flush=True)
        finally:
            if server:
                server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
