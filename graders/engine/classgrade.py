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
import tempfile
import time
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from pathlib import Path

import nbformat
from nbconvert.preprocessors import ClearMetadataPreprocessor
from nbgrader.preprocessors import AssignLatePenalties, IgnorePattern, LimitOutput, SaveAutoGrades

from ..tooling.build import nbgrader_api
from ..tooling.course import available_assignments, course_root, nbgrader_meta, notebook_path
from traitlets import Integer, Unicode
from traitlets.config import LoggingConfigurable

from .execute import sanitized_cell
from .preprocessor import SUMMARY_KEY, SandboxedExecute, hidden_folders
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


def job_payload(sanitized: Path) -> dict:
    """What a worker needs to execute one submission, with no path of this machine in it.

    sanitized: the sanitized notebook nbgrader wrote in autograded/<student>/<assignment>/.
    Returns {"name": its file name, "notebook": its JSON text, "files": {path relative to its folder: bytes} of
    the files beside it (check data, .npz), symbolic links left out}."""
    folder = sanitized.parent
    files = {path.relative_to(folder).as_posix(): path.read_bytes() for path in sorted(folder.rglob("*"))
             if path.is_file() and not path.is_symlink() and path != sanitized}
    return {"name": sanitized.name, "notebook": sanitized.read_text(encoding="utf-8"), "files": files}


def execute_job(payload: dict, limits: GradingLimits, root: str, hide: tuple) -> dict:
    """Worker side: execute one sanitized submission as `nbgrader autograde` does, with SandboxedExecute.

    payload: job_payload's dict; limits: the coordinator's GradingLimits; root: the course folder on the
    coordinator (hidden from the kernel, like `hide`, the coordinator's hidden folders).
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
    step_processes = Integer(0, config=True, help=(
        "Processes that run nbgrader's sanitize and save steps at once when the gradebook is a database server "
        "(c.CourseDirectory.db_url, e.g. PostgreSQL). 0 (the default): one per core. With SQLite these steps "
        "always run in the grading process, one after another (SQLite has one writer)."))


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

    apis = coordinator_apis(root)
    settings = ClassGrading(config=apis[0].config)
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
            steps = _new_steps(root, apis, settings, pending)
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


def coordinator_apis(root: Path) -> tuple:
    """(sanitize_api, save_api) for the course at `root`: nbgrader's Autograde without execution, and without
    sanitizing or execution (reading the executed notebooks from .grading/executed/)."""
    sanitize_api = nbgrader_api(root, **{"Autograde.autograde_preprocessors": []})
    save_api = nbgrader_api(root, **{"Autograde.sanitize_preprocessors": [],
                                     "Autograde.autograde_preprocessors": SAVE_PREPROCESSORS,
                                     "CourseDirectory.submitted_directory": f"{STATE}/executed"})
    return sanitize_api, save_api


class _Here:
    """The steps' executor for a single writer: each step runs in this process as it is submitted.

    apis: coordinator_apis' pair, passed to each step."""

    def __init__(self, apis: tuple):
        self.apis = apis

    def submit(self, fn, *args) -> Future:
        future = Future()
        try:
            future.set_result(fn(*args, apis=self.apis))
        except Exception as exc:  # noqa: BLE001 - handed to the caller through the future, as a pool would
            future.set_exception(exc)
        return future

    def shutdown(self, wait: bool = True, cancel_futures: bool = False) -> None:
        pass


_STEP_APIS: tuple = ()  # in a step process: its coordinator_apis, made once by _init_steps


def _init_steps(root: str) -> None:
    global _STEP_APIS
    _STEP_APIS = coordinator_apis(Path(root))


def _new_steps(root: Path, apis: tuple, settings: ClassGrading, pending: list[Job]):
    """Where the sanitize and save steps run: here, one after another, for SQLite; for a database server, in
    settings.step_processes processes (0: one per core), each with its own nbgrader API. Every student row is
    made here first, so that two processes never race to create the same student."""
    db_url = apis[0].coursedir.db_url
    processes = settings.step_processes or os.cpu_count() or 1
    if db_url.startswith("sqlite") or processes < 2 or not pending:
        return _Here(apis)
    from nbgrader.api import Gradebook
    with Gradebook(db_url, apis[0].coursedir.course_id) as gradebook:
        for student in sorted({job.student for job in pending}):
            gradebook.update_or_create_student(student)
    return ProcessPoolExecutor(max_workers=processes, mp_context=multiprocessing.get_context("spawn"),
                               initializer=_init_steps, initargs=(str(root),))


def _sanitize_step(root: str, job: Job, *, apis: tuple = ()) -> tuple:
    """_sanitize in whichever process runs it (apis: its nbgrader APIs; default: this step process's)."""
    sanitize_api, save_api = apis or _STEP_APIS
    return _sanitize(Path(root), job, sanitize_api, save_api)


def _save_step(root: str, job: Job, executed: Path, *, apis: tuple = ()) -> Job:
    """_save in whichever process runs it; returns the job with its status (failed, with the reason, if the
    grades could not be saved)."""
    try:
        _save(Path(root), job, (apis or _STEP_APIS)[1], executed)
    except Exception as exc:  # noqa: BLE001 - reported, the batch goes on
        job.status, job.errors = "failed", (f"{type(exc).__name__}: {exc}",)
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
    sanitize pass over the whole class); 2. execute in the workers (`execute(job_payload, limits, root, hide)`
    in `pool`); 3. save in `steps` as each one finishes. A dead local worker costs its submissions one retry
    (`new_pool()` replaces the broken pool)."""
    unsanitized = list(pending)
    sanitizing: dict = {}  # future -> job
    queue: list = []  # (job, sanitized, executed, attempt), sanitized and waiting for a worker
    running: dict = {}  # future -> (job, sanitized, executed, attempt)
    saving: dict = {}  # future -> job

    def sanitized(future) -> None:
        job = sanitizing.pop(future)
        try:
            returned, notebook, executed = future.result()
        except Exception as exc:  # noqa: BLE001 - a crash of ours: reported, the batch goes on
            job.status, job.errors = "failed", (f"{type(exc).__name__}: {exc}",)
            progress.update(job)
            return
        _adopt(job, returned)
        if notebook is None:  # unreadable: graded as such by the step already
            progress.update(job)
        else:
            queue.append((job, notebook, executed, 0))

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
                    job, notebook, executed, attempt = queue.pop(0)
                    future = pool.submit(execute, job_payload(notebook), limits, str(root), hide)
                    running[future] = (job, notebook, executed, attempt)
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
                job, notebook, executed, attempt = running.pop(future)
                try:
                    result = future.result()
                    _write_atomically(executed, result["notebook"])
                    job.seconds, faults, errors = result["seconds"], result["faults"], result["errors"]
                except BrokenProcessPool:
                    broken = True
                    if attempt == 0:
                        queue.append((job, notebook, executed, 1))
                        continue
                    job.status, job.errors = "failed", ("its grading worker died twice",)
                except Exception as exc:  # noqa: BLE001 - a crash of ours: reported, the batch goes on
                    job.status, job.errors = "failed", (f"{type(exc).__name__}: {exc}",)
                else:
                    job.faults, job.errors = tuple(faults), tuple(errors)
                    saving[steps.submit(_save_step, str(root), job, executed)] = job
                    continue
                progress.update(job)
            for future in [f for f in saving if f.done()]:  # saved here and now (one writer)
                saved(future)
            if broken:  # every job still in the broken pool is lost with it: run them again
                for job, notebook, executed, attempt in running.values():
                    queue.append((job, notebook, executed, attempt + 1))
                running.clear()
                pool.shutdown(wait=False, cancel_futures=True)
                pool = new_pool()
    finally:
        pool.shutdown(wait=False, cancel_futures=True)


def _write_atomically(path: Path, text: str) -> None:
    tmp = Path(f"{path}.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def _sanitize(root: Path, job: Job, api, save_api) -> tuple:
    """(job, sanitized notebook, where its execution goes); the sanitized notebook is None when the submission
    could not be read (then it is graded as empty here and now, with the reason, in the job's status)."""
    result = api.autograde(job.assignment, job.student, force=True, create=True)
    name = notebook_path(job.assignment, "release").name
    sanitized = root / "autograded" / job.student / job.assignment / name
    executed = _executed_path(root, job, name)
    executed.parent.mkdir(parents=True, exist_ok=True)
    for extra in ("timestamp.txt", "submission_secret.txt"):
        source = root / "submitted" / job.student / job.assignment / extra
        # a student's file: a small regular file is copied, a link (to a file of the instructor's) never followed
        if source.is_file() and not source.is_symlink() and source.stat().st_size < 4096:
            shutil.copyfile(source, executed.parent / extra)
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
    return job, None, executed


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

