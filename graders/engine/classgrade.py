"""Grade a whole class: nbgrader's pipeline, with execution parallel, isolated and decided outside the kernel.

For each submission under submitted/<student>/<assignment>/:
1. sanitize (this process, nbgrader's Autograde with no execution, just before a worker is free for it):
   the student and submission rows are made in the gradebook, and nbgrader's OverwriteCells puts back the
   locked and deleted cells from it;
2. execute (a worker process, N at once): the notebook runs in a sandboxed kernel; test cells are decided
   by the grader (graders/engine/execute.py); the result is written atomically to .grading/executed/;
3. save (this process, nbgrader's Autograde with no sanitizing and no execution): SaveAutoGrades and late
   penalties write the grades. Only this process writes the gradebook, one submission at a time.

A submission whose files, source notebook and grader have not changed since it was graded is skipped
(`.grading/done/`), so an interrupted run picks up where it stopped and a second run changes nothing.
"""
from __future__ import annotations

import hashlib
import html
import json
import multiprocessing
import os
import re
import secrets
import shutil
import sys
import time
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from pathlib import Path

import nbformat
from nbconvert.preprocessors import ClearMetadataPreprocessor
from nbgrader.preprocessors import AssignLatePenalties, IgnorePattern, LimitOutput, SaveAutoGrades

from ..tooling.build import nbgrader_api
from ..tooling.course import available_assignments, course_root, nbgrader_meta, notebook_path
from .execute import sanitized_cell
from .sandbox import GradingLimits, check_fence, default_to_one_blas_thread, launcher

STATE = ".grading"
# nbgrader's autograde_preprocessors without Execute, and without its second CheckCellMetadata: the sanitize
# pass has validated the same metadata already (execution only writes outputs), and nbgrader's validation
# costs a third of a second per notebook in the one process that writes the gradebook.
SAVE_PREPROCESSORS = [IgnorePattern, ClearMetadataPreprocessor, LimitOutput, SaveAutoGrades, AssignLatePenalties]


@dataclass
class Job:
    student: str
    assignment: str
    fingerprint: str
    status: str = "pending"      # pending, graded, unreadable, failed (a grader error)
    seconds: float = 0.0
    faults: tuple = ()
    errors: tuple = ()


def _hash_files(paths) -> str:
    digest = hashlib.sha256()
    for path in sorted(paths):
        digest.update(str(path.name).encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()


def grader_fingerprint() -> str:
    """Changes when the grading code changes, so that old verdicts are not kept."""
    package = Path(__file__).resolve().parent.parent
    digest = hashlib.sha256()
    for path in sorted(package.rglob("*.py")):
        digest.update(path.relative_to(package).as_posix().encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()


def find_jobs(root: Path, assignments: list[str]) -> list[Job]:
    grader = grader_fingerprint()
    jobs = []
    submitted = root / "submitted"
    for assignment in assignments:
        source = notebook_path(assignment, "source").read_bytes()
        for folder in sorted(submitted.glob(f"*/{assignment}")):
            files = [p for p in folder.rglob("*") if p.is_file()]
            digest = hashlib.sha256(grader.encode() + source + _hash_files(files).encode()).hexdigest()
            jobs.append(Job(folder.parent.name, assignment, digest))
    return jobs


def _done_marker(root: Path, job: Job) -> Path:
    return root / STATE / "done" / job.assignment / f"{job.student}.json"


def _executed_path(root: Path, job: Job, notebook: str) -> Path:
    return root / STATE / "executed" / job.student / job.assignment / notebook


def _unreadable_notebook(assignment: str, reason: str):
    """What a submission that cannot be read is graded as: the release, every test cell failed with the reason."""
    nb = nbformat.read(str(notebook_path(assignment, "release")), as_version=4)
    message = f"Your notebook could not be read, so nothing in it could be graded: {reason}"
    # the reason quotes the file's first bytes, which the student wrote: shown as text, never as HTML
    nb.cells.insert(0, sanitized_cell(nbformat.v4.new_markdown_cell(f"**{html.escape(message)}**")))
    for cell in nb.cells:
        if cell.cell_type == "code":
            meta = nbgrader_meta(cell)
            cell.outputs = ([nbformat.v4.new_output("error", ename="UnreadableSubmission", evalue=reason,
                                                    traceback=[f"UnreadableSubmission: {message}"])]
                            if meta.get("grade") else [])
    return nb


def failure_reason(log: str) -> str:
    """The last exception line of an nbgrader log, shortened: why a submission could not be graded."""
    reasons = [(name, message) for name, message in re.findall(r"^\s*([\w.]*(?:Error|Exception)): (.*)$", log, re.MULTILINE)
               if not name.endswith("NbGraderException")]
    if not reasons:
        return "nbgrader could not process it (see its log)"
    name, message = reasons[-1]
    return f"{name.rsplit('.', 1)[-1]}: {message[:100]}"


# -- worker side ---------------------------------------------------------------------------------------------
def _init_worker() -> None:
    default_to_one_blas_thread()
    try:
        launcher(sys.executable)  # warm up while the coordinator sanitizes the first submissions
    except Exception:  # noqa: BLE001 - the first kernel start tries again, and reports why
        pass


def _execute_job(sanitized: str, executed: str, limits: GradingLimits, hide: tuple) -> tuple[float, list, list]:
    from .execute import execute_file
    summary = execute_file(sanitized, executed, limits=limits, hide=hide)
    return summary.seconds, summary.faults, summary.grader_errors


# -- coordinator ---------------------------------------------------------------------------------------------
class Progress:
    def __init__(self, total: int, stream=sys.stdout):
        self.total, self.stream = total, stream
        self.done = self.failed = 0
        self.started = time.monotonic()
        self.tty = stream.isatty()

    def update(self, job: Job) -> None:
        self.done += 1
        self.failed += job.status != "graded"
        width = 30
        filled = int(width * self.done / max(self.total, 1))
        line = (f"[{'#' * filled}{'.' * (width - filled)}] {self.done}/{self.total} done, {self.failed} failed, "
                f"{self.total - self.done} remaining, {time.monotonic() - self.started:.0f} s")
        if self.tty:
            self.stream.write("\r" + line + ("\n" if self.done == self.total else ""))
        else:
            self.stream.write(f"{line}  ({job.assignment}/{job.student}: {job.status})\n")
        self.stream.flush()


def course_limits(root: Path) -> GradingLimits:
    """The sandbox's limits as the course at `root` sets them (c.GradingLimits.* and c.Execute.timeout in its
    nbgrader_config.py; the defaults for the rest)."""
    return GradingLimits(config=nbgrader_api(root).config)


def grade_class(assignments: list[str] | None = None, *, workers: int | None = None, force: bool = False,
                limits: GradingLimits | None = None, root: Path | None = None, out=sys.stdout) -> list[Job]:
    """Grade every submission of the assignments; returns the jobs with their status.

    limits: the sandbox's limits; by default the course's, from its nbgrader_config.py (see course_limits).
    """
    root = Path(root or course_root()).resolve()
    assignments = assignments or [a for a in available_assignments("source")
                                  if any((root / "submitted").glob(f"*/{a}"))]
    limits = limits or course_limits(root)
    workers = workers or os.cpu_count() or 1
    jobs = find_jobs(root, assignments)
    pending = []
    for job in jobs:
        marker = _done_marker(root, job)
        if not force and marker.exists() and json.loads(marker.read_text()).get("fingerprint") == job.fingerprint:
            job.status = "graded"
        else:
            pending.append(job)
    print(f"{len(jobs)} submissions of {', '.join(assignments)}; {len(jobs) - len(pending)} already graded, "
          f"{len(pending)} to grade with {workers} worker(s)", file=out, flush=True)
    if limits.secret_hidden_inputs and not limits.run_secret:  # then no student can reproduce the hidden inputs
        limits.run_secret = grading_secret(root)
    if pending:  # refuse once, before any work, where no kernel could be fenced (FenceUnavailable says how)
        fence = check_fence(limits)
        print(f"fence: {fence_summary(fence)}", file=out, flush=True)

    sanitize_api = nbgrader_api(root, **{"Autograde.autograde_preprocessors": []})
    save_api = nbgrader_api(root, **{"Autograde.sanitize_preprocessors": [],
                                     "Autograde.autograde_preprocessors": SAVE_PREPROCESSORS,
                                     "CourseDirectory.submitted_directory": f"{STATE}/executed"})
    # the course being graded, and the clone the grader runs from (its source/ holds the same solutions)
    hide = tuple(sorted({str(root), str(Path(__file__).resolve().parent.parent.parent)}))
    progress = Progress(len(pending), out)
    try:
        _grade_all(root, pending, workers, limits, hide, sanitize_api, save_api, progress)
    except KeyboardInterrupt:
        print("\ninterrupted: run the same command again to pick up where it stopped", file=out)
        raise
    return jobs


def _new_pool(workers: int) -> ProcessPoolExecutor:
    return ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("spawn"),
                               initializer=_init_worker)


def _grade_all(root: Path, pending: list[Job], workers: int, limits: GradingLimits, hide: tuple, sanitize_api, save_api,
               progress: Progress) -> None:
    """1. sanitize here, just before a worker is free for the submission (so the workers never wait for a
    sanitize pass over the whole class); 2. execute in the workers; 3. save here as each one finishes.
    A dead worker costs its submissions one retry."""
    unsanitized = list(pending)
    queue: list = []  # (job, sanitized, executed, attempt), sanitized and waiting for a worker
    running: dict = {}
    pool = _new_pool(workers)
    try:
        while unsanitized or queue or running:
            while len(running) < workers * 2 and (queue or unsanitized):
                if not queue:
                    ready = _sanitize(root, unsanitized.pop(0), sanitize_api, save_api, progress)
                    if ready:
                        queue.append((*ready, 0))
                    continue
                job, sanitized, executed, attempt = queue.pop(0)
                future = pool.submit(_execute_job, str(sanitized), str(executed), limits, hide)
                running[future] = (job, sanitized, executed, attempt)
            if not running:
                continue
            finished, _ = wait(running, return_when=FIRST_COMPLETED)
            broken = False
            for future in finished:
                job, sanitized, executed, attempt = running.pop(future)
                try:
                    job.seconds, faults, errors = future.result()
                except BrokenProcessPool:
                    broken = True
                    if attempt == 0:
                        queue.append((job, sanitized, executed, 1))
                        continue
                    job.status, job.errors = "failed", ("its grading worker died twice",)
                except Exception as exc:  # noqa: BLE001 - a crash of ours: reported, the batch goes on
                    job.status, job.errors = "failed", (f"{type(exc).__name__}: {exc}",)
                else:
                    job.faults, job.errors = tuple(faults), tuple(errors)
                    try:
                        _save(root, job, save_api, executed)
                    except Exception as exc:  # noqa: BLE001
                        job.status, job.errors = "failed", (f"{type(exc).__name__}: {exc}",)
                progress.update(job)
            if broken:  # every job still in the broken pool is lost with it: run them again
                for job, sanitized, executed, attempt in running.values():
                    queue.append((job, sanitized, executed, attempt + 1))
                running.clear()
                pool.shutdown(wait=False, cancel_futures=True)
                pool = _new_pool(workers)
    finally:
        pool.shutdown(wait=False, cancel_futures=True)


def _sanitize(root: Path, job: Job, api, save_api, progress: Progress) -> tuple | None:
    """(job, sanitized notebook, where its execution goes), or None when it could not be read (then it is
    graded as empty here and now, with the reason)."""
    result = api.autograde(job.assignment, job.student, force=True, create=True)
    name = notebook_path(job.assignment, "release").name
    sanitized = root / "autograded" / job.student / job.assignment / name
    executed = _executed_path(root, job, name)
    executed.parent.mkdir(parents=True, exist_ok=True)
    for extra in ("timestamp.txt",):
        if (root / "submitted" / job.student / job.assignment / extra).exists():
            shutil.copy(root / "submitted" / job.student / job.assignment / extra, executed.parent / extra)
    if result.get("success") and sanitized.exists():
        return job, sanitized, executed
    reason = failure_reason(result.get("log", "") + result.get("error", ""))
    tmp = str(executed) + ".tmp"
    nbformat.write(_unreadable_notebook(job.assignment, reason), tmp)
    os.replace(tmp, executed)
    job.faults, job.status = (reason,), "unreadable"
    try:
        _save(root, job, save_api, executed)
    except Exception as exc:  # noqa: BLE001
        job.status, job.errors = "failed", (f"{type(exc).__name__}: {exc}",)
    progress.update(job)
    return None


def _save(root: Path, job: Job, api, executed: Path) -> None:
    result = api.autograde(job.assignment, job.student, force=True, create=True)
    if not result.get("success"):
        raise RuntimeError(f"nbgrader could not save the grades of {job.assignment}/{job.student}: "
                           f"{result.get('error', '')[-500:]}")
    if job.status == "pending":
        job.status = "graded" if not job.errors else "failed"
    marker = _done_marker(root, job)
    marker.parent.mkdir(parents=True, exist_ok=True)
    tmp = marker.with_suffix(".tmp")
    tmp.write_text(json.dumps({"fingerprint": job.fingerprint, "seconds": round(job.seconds, 2),
                               "faults": list(job.faults)}))
    os.replace(tmp, marker)


def summary_table(jobs: list[Job]) -> str:
    """Per assignment: submissions, graded, unreadable, grader failures, mean seconds; then each problem."""
    lines = [f"{'assignment':14s}{'submissions':>12s}{'graded':>8s}{'unreadable':>11s}{'failed':>8s}{'s/notebook':>11s}"]
    for assignment in dict.fromkeys(j.assignment for j in jobs):
        mine = [j for j in jobs if j.assignment == assignment]
        timed = [j.seconds for j in mine if j.seconds]
        mean = f"{sum(timed) / len(timed):.1f}" if timed else "-"
        lines.append(f"{assignment:14s}{len(mine):12d}{sum(j.status == 'graded' for j in mine):8d}"
                     f"{sum(j.status == 'unreadable' for j in mine):11d}{sum(j.status == 'failed' for j in mine):8d}{mean:>11s}")
    for job in jobs:
        for fault in job.faults:
            lines.append(f"  {job.assignment}/{job.student}: {fault}")
        for error in job.errors:
            lines.append(f"  GRADER ERROR {job.assignment}/{job.student}: {error}")
    return "\n".join(lines)


def fence_summary(fence: dict) -> str:
    """One line saying what isolation a grading run has in force (from sandbox.check_fence)."""
    return ", ".join(f"{key} {value}" for key, value in fence.items())


def grading_secret(root: Path) -> bytes:
    """The course's grading secret, from which hidden checks draw their inputs: made once, on first grading, in
    the grader's state folder (readable by the instructor only). Kept across runs, so that grading again gives
    the same verdicts (resume, --force, idempotence), while no student can reproduce the hidden inputs."""
    path = root / STATE / "hidden-inputs.secret"
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return path.read_bytes()
    with os.fdopen(descriptor, "wb") as handle:
        handle.write(secrets.token_bytes(32))
    return path.read_bytes()

