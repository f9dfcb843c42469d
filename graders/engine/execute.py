"""Run one sanitized submission in a sandboxed kernel and decide its test cells outside the kernel.

Ordinary code cells run in the kernel. A test cell is never run there: its checks run here, in the grader's
process, and reach the student's functions only through `RemoteNamespace` (values in, plain arrays out).
The cell's outputs are then written by the grader: the report, and a CheckFailed error when a check failed,
so nbgrader's own rule (`determine_grade`) scores it exactly as the verdict says.

A cell that times out, runs out of memory, prints without end or kills its kernel gets an error output
saying so; the kernel is restarted, the cells that ran before are run again, and grading goes on.
"""
from __future__ import annotations

import os
import re
import time
from dataclasses import dataclass, field
from pathlib import Path

import nbformat

from ..tooling.course import nbgrader_meta
from ..checks.registry import assignment_of
from ..checks.runner import run_exercise
from ..hidden import LiveExpected
from .remote import KERNEL_DIED, RemoteError, RemoteNamespace
from .sandbox import GradingLimits, KernelSession

_TEST_CELL = re.compile(r'^from graders import check\n(?:#.*\n)*(?:### BEGIN HIDDEN TESTS\n)?'
                        r'check\("(?P<exercise>\w+)"(?P<hidden>, hidden=True)?\)\n?(?:### END HIDDEN TESTS\n?)?$')


def parse_test_cell(source: str) -> tuple[str, str] | None:
    """(exercise, level) of a course test cell, or None if the cell is not one."""
    # comment lines go, including nbgrader's "# This cell ... was added back by nbgrader." on a restored cell
    body = "\n".join(line for line in source.strip().split("\n") if line.strip() and not line.startswith("# ")) + "\n"
    match = _TEST_CELL.match(body)
    return (match["exercise"], "hidden" if match["hidden"] else "visible") if match else None


def _error(ename: str, message: str):
    return nbformat.v4.new_output("error", ename=ename, evalue=message,
                                  traceback=[f"\x1b[0;31m{ename}\x1b[0m: {message}"])


@dataclass
class ExecutionSummary:
    faults: list[str] = field(default_factory=list)   # what went wrong in the student's kernel, for the log
    grader_errors: list[str] = field(default_factory=list)  # bugs of ours: these make the command fail
    seconds: float = 0.0


def execute_notebook(nb, workdir: Path, *, limits: GradingLimits | None = None,
                     hide: tuple = ()) -> ExecutionSummary:
    """Execute `nb` (already sanitized by nbgrader) in place, with `workdir` as the kernel's working copy."""
    started = time.monotonic()
    limits = limits or GradingLimits()
    summary = ExecutionSummary()
    session = KernelSession(workdir, limits=limits, hide=hide)
    replayable: list[str] = []
    gave_up = None
    try:
        for index, cell in enumerate(nb.cells):
            if cell.cell_type != "code":
                continue
            meta = nbgrader_meta(cell)
            cell.outputs = []
            if gave_up:
                cell.outputs = [_error("NotRun", gave_up)]
                continue
            if time.monotonic() - started > limits.notebook_seconds:
                gave_up = (f"the notebook ran out of its {limits.notebook_seconds:g} s time limit before this "
                           "cell; cells that had run keep their credit.")
                summary.faults.append("notebook time limit")
                cell.outputs = [_error("NotRun", gave_up)]
                continue
            if meta.get("grade") and not meta.get("solution"):
                _grade_test_cell(cell, session, summary)
                healthy = session.alive()  # a check that hit a timeout has already settled the kernel
            else:
                status, outputs = session.run(cell.source, timeout=limits.cell_seconds)
                cell.outputs = outputs
                if any(o.get("ename") == "OutputLimitExceeded" for o in outputs):
                    status = "output-limit"
                elif any(o.get("ename") == "MemoryError" for o in outputs):
                    status = "memory"  # what it allocated may still be held: start afresh
                if status in ("ok", "error"):
                    if status == "ok":
                        replayable.append(cell.source)
                    continue
                summary.faults.append(f"cell {index}: {status}")
                cell.outputs.append(_error(*_fault_message(status, limits)))
                healthy = status not in ("died", "memory") and session.alive() and session.settle(10)
            if not healthy:
                summary.faults.append(f"cell {index}: kernel restarted")
                gave_up = _restart_and_replay(session, replayable, limits)
    finally:
        session.close()
    summary.seconds = time.monotonic() - started
    return summary


def _fault_message(status: str, limits: GradingLimits) -> tuple[str, str]:
    if status == "timeout":
        return "CellTimeout", (f"this cell did not finish within {limits.cell_seconds:g} s (an infinite loop?); "
                               "it was stopped and grading went on.")
    if status == "died":
        return KERNEL_DIED, ("the kernel died while running this cell (os._exit, a crash, or more than "
                             f"{limits.memory_bytes / 2**30:g} GiB of memory); it was restarted, the cells "
                             "before this one were run again, and grading went on.")
    if status == "memory":
        return "MemoryLimit", (f"this cell ran out of memory (the cap is {limits.memory_bytes / 2**30:g} GiB); the "
                               "kernel was restarted, the cells before this one were run again, and grading went on.")
    return "OutputLimit", f"this cell printed more than {limits.output_bytes // 2**20} MiB; the output was cut."


def _restart_and_replay(session: KernelSession, replayable: list[str], limits: GradingLimits) -> str | None:
    """Restart the kernel and re-run the cells that had run; a reason to stop if that fails."""
    try:
        session.restart()
        for source in replayable:
            status, _ = session.run(source, timeout=limits.cell_seconds, keep_outputs=False)
            if status not in ("ok", "error"):
                return "the kernel could not be brought back after it died, so this cell could not run."
    except RemoteError:
        return "the kernel could not be restarted after it died, so this cell could not run."
    return None


def _grade_test_cell(cell, session: KernelSession, summary: ExecutionSummary) -> None:
    parsed = parse_test_cell(cell.source)
    if parsed is None:
        cell.outputs = [_error("UnknownTestCell", "this test cell is not one the course's grader knows; no points.")]
        summary.grader_errors.append(f"unknown test cell {nbgrader_meta(cell).get('grade_id')}")
        return
    exercise, level = parsed
    try:
        report = run_exercise(exercise, RemoteNamespace(session), level,
                              expected=LiveExpected(assignment_of(exercise)))
    except Exception as exc:  # noqa: BLE001 - a bug in a check: no points, and the command reports it
        cell.outputs = [_error("GraderError", f"the check itself failed ({type(exc).__name__}: {exc}); "
                                              "tell your instructor.")]
        summary.grader_errors.append(f"{exercise} {level}: {type(exc).__name__}: {exc}")
        return
    cell.outputs = [nbformat.v4.new_output("display_data", data={"text/plain": report.text(), "text/html": report.html()})]
    if not report.passed:
        failed = sum(not r.passed for r in report.results)
        cell.outputs.append(_error("CheckFailed", f"{exercise}: {failed} {level} check(s) failed, details above."))


def execute_file(source_path: str, output_path: str, *, limits: GradingLimits | None = None,
                 hide: tuple = ()) -> ExecutionSummary:
    """Read a sanitized notebook, execute it in a sandbox, write the result atomically."""
    nb = nbformat.read(source_path, as_version=4)
    summary = execute_notebook(nb, Path(source_path).parent, limits=limits, hide=hide)
    tmp = output_path + ".tmp"
    os.makedirs(os.path.dirname(output_path), exist_ok=True)
    nbformat.write(nb, tmp)
    os.replace(tmp, output_path)
    return summary
