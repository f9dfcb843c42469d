"""Grade a whole class: nbgrader's pipeline, with execution parallel, isolated and decided outside the kernel.

For each submission under submitted/<student>/<assignment>/:
1. sanitize (nbgrader's sanitize preprocessors, graders/engine/steps.py, just before a worker is free for it):
   the student and submission rows are made in the gradebook, and nbgrader's OverwriteCells puts back the
   locked and deleted cells from it;
2. execute (a worker: a local process or a Dask worker, N at once): the job carries the notebook's JSON and
   its files; the notebook runs in a sandboxed kernel, its test cells decided by the grader
   (graders/engine/execute.py), and the executed notebook's JSON comes back;
3. save (nbgrader's autograde preprocessors after execution, steps.py): SaveAutoGrades and late penalties write
   the grades in one commit, and the graded notebook goes to autograded/.
The sanitize and save steps run in this process with one gradebook session (SQLite has one writer), or, for a
database server, in c.ClassGrading.step_processes processes with a session each.

A submission whose files, source notebook and grader have not changed since it was graded is skipped
(`.grading/done/`), so an interrupted run picks up where it stopped and a second run changes nothing.
"""
from __future__ import annotations

import hashlib
import html
import json
import multiprocessing
import os
import secrets
import sys
import tempfile
import time
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from pathlib import Path

import nbformat
from traitlets import Integer, Unicode
from traitlets.config import LoggingConfigurable

from ..tooling.build import nbgrader_api
from ..tooling.course import available_assignments, course_root, nbgrader_meta, notebook_path
from .execute import sanitized_cell
from .preprocessor import SUMMARY_KEY, SandboxedExecute, hidden_folders
from .sandbox import GradingLimits, check_fence, default_to_one_blas_thread, fence_summary, launcher
from .steps import GradebookSteps, Unreadable

STATE = ".grading"


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


def find_jobs(root: Path, assignments: list[str], students: list[str] | None = None) -> list[Job]:
    """The submissions under root/submitted/ of `assignments`, each with its fingerprint.

    students: only these students' submissions (None: every student's)."""
    grader = grader_fingerprint()
    jobs = []
    submitted = root / "submitted"
    for assignment in assignments:
        source = notebook_path(assignment, "source").read_bytes()
        for folder in sorted(submitted.glob(f"*/{assignment}")):
            if students is not None and folder.parent.name not in students:
                continue
            files = [p for p in folder.rglob("*") if p.is_file()]
            digest = hashlib.sha256(grader.encode() + source + _hash_files(files).encode()).hexdigest()
            jobs.append(Job(folder.parent.name, assignment, digest))
    return jobs


def _done_marker(root: Path, job: Job) -> Path:
    return root / STATE / "done" / job.assignment / f"{job.student}.json"


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


# -- worker side ---------------------------------------------------------------------------------------------
def _init_worker() -> None:
    default_to_one_blas_thread()
    try:
        launcher(sys.executable)  # warm up while the coordinator sanitizes the first submissions
    except Exception:  # noqa: BLE001 - the first kernel start tries again, and reports why
        pass


def execute_job(payload: dict, limits: GradingLimits, root: str, hide: tuple) -> dict:
    """Worker side: execute one sanitized submission as `nbgrader autograde` does, with SandboxedExecute.

    payload: what GradebookSteps.sanitize returns (the notebook's JSON and its files, no path); limits: the
    coordinator's GradingLimits; root: the course folder on the coordinator (hidden from the kernel, like
    `hide`, the coordinator's hidden folders).
    Returns {"notebook": the executed notebook's JSON text, "seconds": float, "faults": [str],
    "errors": [str] (grader errors)}."""
    with tempfile.TemporaryDirectory(prefix="nnfs-job-") as folder:
        # the kernel's working copy holds what it holds under `nbgrader autograde`: the notebook and its files
        files = {**payload["files"], Path(payload["name"]).name: payload["notebook"].encode("utf-8")}
        for name, data in files.items():
            target = Path(folder, name)
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(data)
        nb = nbformat.reads(payload["notebook"], as_version=4)
        preprocessor = SandboxedExecute(limits=limits, course_root=root, hidden_paths=list(hide))
        nb, resources = preprocessor.preprocess(nb, {"metadata": {"path": folder}})
    summary = resources[SUMMARY_KEY]
    return {"notebook": nbformat.writes(nb), "seconds": summary.seconds, "faults": list(summary.faults),
            "errors": list(summary.grader_errors)}


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
                f"{self.total - self.done} remaining, {self.timing()}")
        if self.tty:
            self.stream.write("\r" + line + ("\n" if self.done == self.total else ""))
        else:
            self.stream.write(f"{line}  ({job.assignment}/{job.student}: {job.status})\n")
        self.stream.flush()

    def timing(self) -> str:
        """Elapsed seconds, the rate (notebooks/s) and the time left at that rate, e.g. `42 s, 0.31/s, ETA 29 s`."""
        elapsed = time.monotonic() - self.started
        rate = self.done / elapsed if elapsed > 0 else 0.0
        left = self.total - self.done
        eta = f"ETA {left / rate:.0f} s" if rate and left else ("ETA -" if left else "finished")
        return f"{elapsed:.0f} s, {rate:.2f}/s, {eta}"


class ClassGrading(LoggingConfigurable):
    """How `./course grade` spreads a class over machines (set in nbgrader_config.py: c.ClassGrading.*)."""

    scheduler = Unicode("", config=True, help=(
        "Address of an existing Dask distributed scheduler (e.g. tcp://10.0.0.5:8786) to run the execute step "
        "on; `./course grade --scheduler ADDRESS` overrides it. Empty (the default): a local process pool."))
    step_processes = Integer(1, config=True, help=(
        "Processes that run nbgrader's sanitize and save steps at once when the gradebook is a database server "
        "(c.CourseDirectory.db_url, e.g. PostgreSQL); 0: one per core. One process (the default) sustains about "
        "30 notebooks a second (benchmarks/coordinator.py); more help only where the coordinator has cores "
        "the workers do not use (workers on a Dask cluster). With SQLite these steps always run in the "
        "grading process, one after another (SQLite has one writer)."))


def course_limits(root: Path) -> GradingLimits:
    """The sandbox's limits as the course at `root` sets them (c.GradingLimits.* and c.Execute.timeout in its
    nbgrader_config.py; the defaults for the rest)."""
    return GradingLimits(config=nbgrader_api(root).config)


def grade_class(assignments: list[str] | None = None, *, workers: int | None = None, force: bool = False,
                limits: GradingLimits | None = None, root: Path | None = None, out=sys.stdout,
                students: list[str] | None = None, scheduler: str | None = None, execute=None) -> list[Job]:
    """Grade every submission of the assignments; returns the jobs with their status.

    scheduler: a Dask scheduler's address to execute on (None: c.ClassGrading.scheduler; empty there: a local
    pool of `workers` processes). execute: the worker's job function (default execute_job, which a benchmark
    may replace by one that costs nothing).

    students: grade only these students' submissions (None: everyone's), resumable and idempotent the same way.
    limits: the sandbox's limits; by default the course's, from its nbgrader_config.py (see course_limits).
    """
    root = Path(root or course_root()).resolve()
    assignments = assignments or [a for a in available_assignments("source")
                                  if any((root / "submitted").glob(f"*/{a}"))]
    limits = limits or course_limits(root)
    workers = workers or os.cpu_count() or 1
    jobs = find_jobs(root, assignments, students)
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

    config = nbgrader_api(root).config
    settings = ClassGrading(config=config)
    hide = hidden_folders(root)
    if scheduler is None:
        scheduler = settings.scheduler
    progress = Progress(len(pending), out)
    try:
        steps = pool = None
        try:
            pool = _new_pool(workers, scheduler)
            if scheduler:
                print(f"executing on the Dask cluster at {scheduler}: {pool.workers} worker thread(s)", file=out,
                      flush=True)
            steps = _new_steps(root, config, settings, pending)
            _grade_all(root, pending, getattr(pool, "workers", workers), limits, hide, steps, progress, pool,
                       execute or execute_job, lambda: _new_pool(workers, scheduler))
        finally:
            for executor in (steps, pool):
                if executor is not None:
                    executor.shutdown(wait=False, cancel_futures=True)
    except KeyboardInterrupt:
        print("\ninterrupted: run the same command again to pick up where it stopped", file=out)
        raise
    return jobs


class _Here:
    """The steps' executor for a single writer: each step runs in this process as it is submitted, with this
    process's GradebookSteps."""

    def __init__(self, config):
        self.steps = GradebookSteps(config)

    def submit(self, fn, *args) -> Future:
        future = Future()
        try:
            future.set_result(fn(*args, steps=self.steps))
        except Exception as exc:  # noqa: BLE001 - handed to the caller through the future, as a pool would
            future.set_exception(exc)
        return future

    def shutdown(self, wait: bool = True, cancel_futures: bool = False) -> None:
        self.steps.close()


_PROCESS_STEPS: GradebookSteps | None = None  # in a step process: its GradebookSteps, made once by _init_steps


def _init_steps(root: str) -> None:
    global _PROCESS_STEPS
    _PROCESS_STEPS = GradebookSteps(nbgrader_api(Path(root)).config)


def _new_steps(root: Path, config, settings: ClassGrading, pending: list[Job]):
    """Where the sanitize and save steps run: here, one after another, for SQLite; for a database server, in
    settings.step_processes processes (0: one per core; 1: here), each with its own gradebook session. Every
    student row is made here first, in one commit (and so that two processes never race to create the same
    student)."""
    here = _Here(config)
    here.steps.add_students(job.student for job in pending)
    db_url = here.steps.coursedir.db_url
    processes = settings.step_processes or os.cpu_count() or 1
    if db_url.startswith("sqlite") or processes < 2 or len(pending) < 2:
        return here
    here.shutdown()
    return ProcessPoolExecutor(max_workers=processes, mp_context=multiprocessing.get_context("spawn"),
                               initializer=_init_steps, initargs=(str(root),))


def _sanitize_step(root: str, job: Job, *, steps: GradebookSteps | None = None) -> tuple:
    """(job, the worker's payload): GradebookSteps.sanitize in whichever process runs it (steps: its
    GradebookSteps; default: this step process's). An unreadable submission is graded as such here and now
    (payload None, the reason in the job's faults)."""
    steps = steps or _PROCESS_STEPS
    try:
        return job, steps.sanitize(job.assignment, job.student)
    except Unreadable as reason:
        job.faults, job.status = (str(reason),), "unreadable"
        notebook = json.dumps(_unreadable_notebook(job.assignment, str(reason)))
        return _save_step(root, job, notebook, reason.files, steps=steps), None


def _save_step(root: str, job: Job, executed: str, files: dict, *, steps: GradebookSteps | None = None) -> Job:
    """GradebookSteps.save and the done marker, in whichever process runs it; returns the job with its status
    (failed, with the reason, if the grades could not be saved).

    executed: the executed notebook's JSON; files: the working copy's other files, for autograded/."""
    steps = steps or _PROCESS_STEPS
    try:
        steps.save(job.assignment, job.student, executed, files)
    except Exception as exc:  # noqa: BLE001 - reported, the batch goes on
        job.status, job.errors = "failed", (f"{type(exc).__name__}: {exc}",)
        return job
    if job.status == "pending":
        job.status = "graded" if not job.errors else "failed"
    marker = _done_marker(Path(root), job)
    marker.parent.mkdir(parents=True, exist_ok=True)
    tmp = marker.with_suffix(".tmp")
    tmp.write_text(json.dumps({"fingerprint": job.fingerprint, "seconds": round(job.seconds, 2),
                               "faults": list(job.faults)}))
    os.replace(tmp, marker)
    return job


def _adopt(job: Job, returned: Job) -> Job:
    """Copy into `job` what a step process did to its copy of it."""
    if returned is not job:
        vars(job).update(vars(returned))
    return job


def _new_pool(workers: int, scheduler: str = ""):
    """Where jobs execute: a DaskPool on the cluster at `scheduler`, else `workers` local processes."""
    if scheduler:
        from .distributed import DaskPool  # Dask is needed only by who uses it
        return DaskPool(scheduler)
    return ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("spawn"),
                               initializer=_init_worker)


def _grade_all(root: Path, pending: list[Job], workers: int, limits: GradingLimits, hide: tuple, steps,
               progress: Progress, pool, execute, new_pool) -> None:
    """1. sanitize in `steps`, just before a worker is free for the submission (so the workers never wait for a
    sanitize pass over the whole class); 2. execute in the workers (`execute(payload, limits, root, hide)`
    in `pool`); 3. save in `steps` as each one finishes. A dead local worker costs its submissions one retry
    (`new_pool()` replaces the broken pool)."""
    unsanitized = list(pending)
    sanitizing: dict = {}  # future -> job
    queue: list = []  # (job, payload, attempt), sanitized and waiting for a worker
    running: dict = {}  # future -> (job, payload, attempt)
    saving: dict = {}  # future -> job

    def sanitized(future) -> None:
        job = sanitizing.pop(future)
        try:
            returned, payload = future.result()
        except Exception as exc:  # noqa: BLE001 - a crash of ours: reported, the batch goes on
            job.status, job.errors = "failed", (f"{type(exc).__name__}: {exc}",)
            progress.update(job)
            return
        _adopt(job, returned)
        if payload is None:  # unreadable: graded as such by the step already
            progress.update(job)
        else:
            queue.append((job, payload, 0))

    def saved(future) -> None:
        job = saving.pop(future)
        try:
            _adopt(job, future.result())
        except Exception as exc:  # noqa: BLE001 - a crash of ours: reported, the batch goes on
            job.status, job.errors = "failed", (f"{type(exc).__name__}: {exc}",)
        progress.update(job)

    try:
        while unsanitized or sanitizing or queue or running or saving:
            while len(running) < workers * 2 and (queue or (unsanitized and not sanitizing)):
                if queue:
                    job, payload, attempt = queue.pop(0)
                    running[pool.submit(execute, payload, limits, str(root), hide)] = (job, payload, attempt)
                    continue
                job = unsanitized.pop(0)
                future = steps.submit(_sanitize_step, str(root), job)
                sanitizing[future] = job
                if future.done():  # sanitized here and now: hand it to a worker at once
                    sanitized(future)
            # with steps in other processes, sanitize ahead while the workers are busy
            while unsanitized and len(sanitizing) + len(queue) < workers and not isinstance(steps, _Here):
                job = unsanitized.pop(0)
                sanitizing[steps.submit(_sanitize_step, str(root), job)] = job
            if not (sanitizing or running or saving):
                continue
            finished, _ = wait([*sanitizing, *running, *saving], return_when=FIRST_COMPLETED)
            broken = False
            for future in finished:
                if future in sanitizing:
                    sanitized(future)
                    continue
                if future in saving:
                    saved(future)
                    continue
                job, payload, attempt = running.pop(future)
                try:
                    result = future.result()
                    job.seconds, faults, errors = result["seconds"], result["faults"], result["errors"]
                except BrokenProcessPool:
                    broken = True
                    if attempt == 0:
                        queue.append((job, payload, 1))
                        continue
                    job.status, job.errors = "failed", ("its grading worker died twice",)
                except Exception as exc:  # noqa: BLE001 - a crash of ours: reported, the batch goes on
                    job.status, job.errors = "failed", (f"{type(exc).__name__}: {exc}",)
                else:
                    job.faults, job.errors = tuple(faults), tuple(errors)
                    future = steps.submit(_save_step, str(root), job, result["notebook"], payload["files"])
                    saving[future] = job
                    continue
                progress.update(job)
            for future in [f for f in saving if f.done()]:  # saved here and now (one writer)
                saved(future)
            if broken:  # every job still in the broken pool is lost with it: run them again
                for job, payload, attempt in running.values():
                    queue.append((job, payload, attempt + 1))
                running.clear()
                pool.shutdown(wait=False, cancel_futures=True)
                pool = new_pool()
    finally:
        pool.shutdown(wait=False, cancel_futures=True)


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

