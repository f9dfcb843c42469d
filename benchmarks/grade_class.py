"""Grade one class with plain `nbgrader autograde` and with `./course grade`, side by side, in one run.

    .venv/bin/python benchmarks/grade_class.py --students 40 [--workers 2] [--floor-students 5] [--db-url URL]
                                               [--dask]

The class: every student hands in every released notebook; by student number, 6 in 10 are fully right,
2 in 10 half done, 1 in 10 makes a mistake in every assignment, and 1 in 10 hands in a broken file
(alternately invalid JSON and a notebook with its test cells deleted). Both graders get their own copy
of the course, each with its own gradebook: nbgrader's default SQLite file in the copy, or for `./course grade`
the database --db-url names (any URL nbgrader accepts, e.g. postgresql+psycopg://user:password@host/db; it is
emptied first). The run fails if an honest submission (all but the broken ones) scores differently.

`nbgrader autograde` runs with the course's nbgrader_config.py, so it is sandboxed too (SandboxedExecute), one
submission after another. With --dask, `./course grade` also grades a third copy on a Dask LocalCluster of
--workers single-threaded worker processes (`--scheduler`), whose throughput is printed beside the local pool's
and whose scores must be identical.

Printed: notebooks per minute for each and their ratio, wall seconds per notebook for each, and two
floors on a sample of the same notebooks, one at a time: a bare kernel (nbclient, no nbgrader, no sandbox)
executing each notebook with its test cells, and without them (the student's code, figures and demos only).
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import nbformat
from nbclient import NotebookClient

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from graders.tooling.build import build  # noqa: E402
from graders.tooling.course import available_assignments, nbgrader_meta, notebook_path, read_notebook  # noqa: E402
from graders.tooling.examples import Submission, make_submission  # noqa: E402
from graders.tooling.gradebook import (  # noqa: E402
    clear_gradebook, course_db_url, exercise_scores, set_course_db_url, shown_url, totals)
from graders.engine.sandbox import ONE_BLAS_THREAD  # noqa: E402


def profile(number: int) -> str:
    return {6: "half", 7: "half", 8: "mistake", 9: "broken"}.get(number % 10, "full")


def submission_for(assignment: str, kind: str) -> Submission:
    solution_ids = [nbgrader_meta(c)["grade_id"] for c in read_notebook(notebook_path(assignment, "release")).cells
                    if nbgrader_meta(c).get("solution")]
    if kind == "half":
        return Submission(fill=tuple(solution_ids[: len(solution_ids) // 2]))
    if kind == "mistake":  # the last exercise left as released: a realistic unfinished-or-wrong tail
        return Submission(fill=tuple(solution_ids[:-1]))
    return Submission(fill="all")


def make_class(course: Path, students: int, assignments: list[str]) -> list[tuple[str, str, bool]]:
    """Write submitted/; returns (student, assignment, honest)."""
    made = []
    for number in range(students):
        student = f"s{number:03d}"
        kind = profile(number)
        for assignment in assignments:
            target = course / "submitted" / student / assignment / notebook_path(assignment, "release").name
            target.parent.mkdir(parents=True, exist_ok=True)
            if kind == "broken" and number % 20 == 9:
                target.write_text(nbformat.writes(make_submission(assignment, Submission()))[:5000])
            elif kind == "broken":
                nb = make_submission(assignment, Submission())
                nb.cells = [c for c in nb.cells if not (nbgrader_meta(c).get("grade") and not nbgrader_meta(c).get("solution"))]
                target.write_text(nbformat.writes(nb))
            else:
                target.write_text(nbformat.writes(make_submission(assignment, submission_for(assignment, kind))))
            made.append((student, assignment, kind != "broken"))
    return made


def course_copy(base: Path, name: str, assignments: list[str], db_url: str | None = None) -> Path:
    """A built copy of the course in base/name; db_url: its gradebook, emptied here (None: nbgrader's default,
    a new gradebook.db in the copy)."""
    course = base / name
    course.mkdir()
    shutil.copy(ROOT / "nbgrader_config.py", course)
    shutil.copytree(ROOT / "source", course / "source")
    if db_url:
        set_course_db_url(course, db_url)
        clear_gradebook(db_url)
    build(assignments, root=course)
    return course


def scores(course: Path, assignments: list[str]) -> dict:
    rows = exercise_scores(course_db_url(course), "nn-from-scratch", assignments)
    return {(s, a): v for (a, s), v in totals(rows).items()}


def floor_seconds(course: Path, pairs: list[tuple[str, str]], with_tests: bool) -> list[float]:
    """A bare kernel (nbclient, no nbgrader, no sandbox) executing each sanitized notebook as nbgrader left
    it in autograded/, one at a time: with its test cells (the checks run in the kernel) or without them
    (only the student's notebook: code, figures, training demos)."""
    seconds = []
    for student, assignment in pairs:
        path = next((course / "autograded" / student / assignment).glob("*.ipynb"))
        nb = nbformat.read(str(path), as_version=4)
        if not with_tests:
            nb.cells = [c for c in nb.cells if not (nbgrader_meta(c).get("grade") and not nbgrader_meta(c).get("solution"))]
        for cell in nb.cells:
            if cell.cell_type == "code":
                cell.outputs = []
        started = time.perf_counter()
        NotebookClient(nb, timeout=300, kernel_name="python3", allow_errors=True,
                       extra_arguments=["--IPKernelApp.log_level=ERROR"],
                       resources={"metadata": {"path": str(path.parent)}}).execute()
        seconds.append(time.perf_counter() - started)
    return seconds


def dask_run(base: Path, assignments: list[str], options, env: dict) -> tuple[float, dict]:
    """`./course grade --scheduler` on a fresh copy with the same class, on a LocalCluster of options.workers
    single-threaded processes started here. Returns (seconds, scores)."""
    from distributed import LocalCluster
    course = course_copy(base, "dask", assignments)
    make_class(course, options.students, assignments)
    saved = dict(os.environ)
    os.environ.update(env, NNFS_COURSE_ROOT=str(course))  # the workers inherit it: the course their checks read
    try:
        with LocalCluster(n_workers=options.workers, threads_per_worker=1, processes=True, dashboard_address=None,
                          silence_logs=50) as cluster:
            started = time.perf_counter()
            run = subprocess.run([sys.executable, "-m", "graders", "grade", "--scheduler", cluster.scheduler_address],
                                 cwd=course, env=dict(env, NNFS_COURSE_ROOT=str(course)), capture_output=True, text=True)
            seconds = time.perf_counter() - started
    finally:
        os.environ.clear()
        os.environ.update(saved)
    print(f"./course grade on a Dask LocalCluster ({options.workers} workers): {seconds:.0f} s", flush=True)
    if run.returncode != 0:
        print(run.stdout[-3000:], run.stderr[-3000:])
    return seconds, scores(course, assignments)


def mean(values) -> float:
    return sum(values) / max(len(values), 1)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--students", type=int, default=40)
    parser.add_argument("--workers", type=int, default=os.cpu_count())
    parser.add_argument("--floor-students", type=int, default=5,
                        help="size of the floor's sample, in students' worth of notebooks, spread over the class")
    parser.add_argument("--assignments", nargs="*", default=None)
    parser.add_argument("--db-url", default=None,
                        help="the gradebook of the ./course grade run, any URL nbgrader accepts (emptied first); "
                             "default: a SQLite gradebook.db in its copy of the course")
    parser.add_argument("--dask", action="store_true",
                        help="also grade with ./course grade on a Dask LocalCluster of --workers processes")
    options = parser.parse_args()
    assignments = options.assignments or available_assignments("source")
    env = dict(os.environ, **ONE_BLAS_THREAD)
    env.pop("MPLBACKEND", None)
    env["PATH"] = os.path.dirname(sys.executable) + os.pathsep + env.get("PATH", "")

    with tempfile.TemporaryDirectory(prefix="nnfs-bench-") as tmp:
        base = Path(tmp)
        plain, ours = course_copy(base, "plain", assignments), course_copy(base, "ours", assignments, options.db_url)
        made = make_class(plain, options.students, assignments)
        make_class(ours, options.students, assignments)
        n = len(made)
        print(f"{options.students} students x {len(assignments)} notebooks = {n} submissions", flush=True)
        print(f"gradebooks: plain nbgrader {shown_url(course_db_url(plain))}, "
              f"./course grade {shown_url(course_db_url(ours))}", flush=True)

        started = time.perf_counter()
        for assignment in assignments:
            subprocess.run([sys.executable, "-m", "nbgrader", "autograde", assignment], cwd=plain, env=dict(env, NNFS_COURSE_ROOT=str(plain)),
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False)
        plain_seconds = time.perf_counter() - started
        print(f"plain nbgrader autograde (sequential): {plain_seconds:.0f} s", flush=True)

        started = time.perf_counter()
        run = subprocess.run([sys.executable, "-m", "graders", "grade", "--workers", str(options.workers)], cwd=ours,
                             env=dict(env, NNFS_COURSE_ROOT=str(ours)), capture_output=True, text=True)
        ours_seconds = time.perf_counter() - started
        print(f"./course grade ({options.workers} workers): {ours_seconds:.0f} s", flush=True)
        if run.returncode != 0:
            print(run.stdout[-3000:], run.stderr[-3000:])
            return 1

        dask_seconds = None
        if options.dask:
            dask_seconds, dask_scores = dask_run(base, assignments, options, env)
            if dask_scores != scores(ours, assignments):
                print("the Dask run's scores differ from the local pool's")
                return 1

        plain_scores, our_scores = scores(plain, assignments), scores(ours, assignments)
        differ = [(s, a, plain_scores.get((s, a)), our_scores.get((s, a))) for s, a, honest in made
                  if honest and plain_scores.get((s, a)) != our_scores.get((s, a))]
        honest = sum(h for _, _, h in made)

        # the floor and our per-notebook worker time, on the same honest notebooks: a sample spread over
        # the students (so over every kind of submission), not the first few
        honest_pairs = [(s, a) for s, a, h in made if h]
        stride = max(1, len(honest_pairs) // max(1, options.floor_students * len(assignments)))
        floor_pairs = honest_pairs[::stride]
        floor = mean(floor_seconds(plain, floor_pairs, with_tests=True))
        bare = mean(floor_seconds(plain, floor_pairs, with_tests=False))
        worker = mean([json.loads((ours / ".grading" / "done" / a / f"{s}.json").read_text())["seconds"]
                       for s, a in floor_pairs])

        print()
        print(f"{'':34s}{'plain nbgrader':>16s}{'./course grade':>16s}")
        print(f"{'notebooks per minute':34s}{60 * n / plain_seconds:16.1f}{60 * n / ours_seconds:16.1f}")
        print(f"{'wall seconds per notebook':34s}{plain_seconds / n:16.2f}{ours_seconds / n:16.2f}")
        print(f"{'throughput ratio':34s}{'':16s}{plain_seconds / ours_seconds:15.2f}x")
        if dask_seconds:
            print(f"./course grade on a Dask LocalCluster ({options.workers} workers): {60 * n / dask_seconds:.1f} "
                  f"notebooks per minute, {ours_seconds / dask_seconds:.2f}x the local pool's")
        print(f"{'core-seconds per notebook':34s}{plain_seconds / n:16.2f}{options.workers * ours_seconds / n:16.2f}")
        print(f"floor, on a sample of {len(floor_pairs)} honest notebooks spread over the class, one at a time:")
        print(f"  a bare kernel running each notebook with its test cells (checks in the kernel): {floor:.2f} s")
        print(f"  a bare kernel running each notebook without its test cells (no checking at all): {bare:.2f} s")
        print(f"  a ./course grade worker on the same notebooks (sandbox, checks, hidden tests):   {worker:.2f} s "
              f"= {worker / floor:.2f}x the first floor, {worker / bare:.2f}x the second")
        print(f"  ./course grade's wall seconds per notebook ({options.workers} workers): {ours_seconds / n:.2f} s "
              f"= {ours_seconds / n / floor:.2f}x the first floor, {ours_seconds / n / bare:.2f}x the second")
        print(f"honest submissions with identical scores: {honest - len(differ)} of {honest}")
        for row in differ[:20]:
            print("  differs:", row)
        return 1 if differ else 0


if __name__ == "__main__":
    sys.exit(main())
