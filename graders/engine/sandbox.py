"""A Jupyter kernel for one submission, fenced in.

What the kernel gets, where the platform allows it (Linux; the namespace and uid parts need root):
- its own working copy: a fresh directory holding only the notebook, which is all it may write
  (plus a private HOME and TMPDIR inside it);
- rlimits: address space (memory), CPU seconds, processes, file size, open files;
- an unprivileged uid of its own (when the grader runs as root), so other students' sandboxes, the
  gradebook and the course files are not its to read or write;
- a network namespace with no interfaces (no network at all), talking to the grader over IPC sockets;
- a mount namespace in which the course folder is replaced by an empty one, except the Python environment,
  so the reference solutions, hidden tests, gradebook and other students' work cannot be read.

Kernels are forked from a launcher that has already imported ipykernel, NumPy and matplotlib (one per
grading worker, see graders/engine/in_kernel/launcher.py, where the fence itself is), so a submission does not pay for
those imports again.
"""
from __future__ import annotations

import atexit
import fcntl
import json
import math
import os
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import nbformat
from jupyter_client import BlockingKernelClient
from jupyter_client.connect import write_connection_file
from nbgrader.preprocessors import Execute
from traitlets import Float, Integer, default
from traitlets.config import LoggingConfigurable

from .remote import KERNEL_DIED, TIMEOUT, RemoteError

#: One BLAS thread in every process that grades or runs a notebook: the notebooks' time budgets are stated for
#: one core, and a class is graded one kernel per core. The one place the Python side takes these from.
ONE_BLAS_THREAD = {"OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


def default_to_one_blas_thread() -> None:
    """Put ONE_BLAS_THREAD in this process's environment (for the processes it starts), keeping any value the
    user set already."""
    for name, value in ONE_BLAS_THREAD.items():
        os.environ.setdefault(name, value)


class GradingLimits(LoggingConfigurable):
    """What one submission's kernel may use. Set them in nbgrader_config.py (`c.GradingLimits.memory_bytes =
    ...`); `./course grade` reads them from there, and a test may pass its own (`GradingLimits(cell_seconds=8)`)."""

    cell_seconds = Float(config=True, help=(
        "Seconds one cell, or one call of a student function from a check, may run. Defaults to "
        "c.Execute.timeout (None or -1 there: no limit)."))
    notebook_seconds = Float(600.0, config=True, help=(
        "Seconds the whole notebook may run; the cells after that are not run (and earn nothing)."))
    memory_bytes = Integer(3 * 2**30, config=True, help="Address space of the kernel (RLIMIT_AS), in bytes.")
    cpu_seconds = Integer(900, config=True, help="CPU seconds of the kernel (RLIMIT_CPU).")
    processes = Integer(256, config=True, help=(
        "Processes and threads of the kernel's uid (RLIMIT_NPROC; only when grading as root, with a uid of its own)."))
    file_bytes = Integer(256 * 2**20, config=True, help="Largest file the kernel may write (RLIMIT_FSIZE), in bytes.")
    output_bytes = Integer(2 * 2**20, config=True, help=(
        "Bytes of outputs kept per cell; the rest is cut, and the cell fails."))

    @default("cell_seconds")
    def _cell_seconds_from_execute(self) -> float:
        # c.Execute.timeout owns the per-cell limit: nbgrader's own Execute (plain `nbgrader autograde`,
        # `nbgrader validate`) reads it, so the sandbox follows the same number instead of keeping a second one.
        # Execute is asked rather than the config read, so a timeout set on its parent classes counts too.
        timeout = Execute(config=self.config).timeout
        return math.inf if timeout is None or timeout < 0 else float(timeout)


def _views(hide, python_prefixes, unprivileged: bool) -> tuple[list[str], list[str]]:
    """Folders to cover with an empty tmpfs, and the Python installs to bind back into them (read-only).

    Besides what the caller hides, an unprivileged kernel needs to reach the Python install: any ancestor
    it may not traverse (e.g. /root for a pyenv Python) is covered too, leaving only the install inside.
    """
    hidden = {os.path.realpath(p) for p in hide if os.path.isdir(p)}
    prefixes = {os.path.realpath(p) for p in python_prefixes}
    if unprivileged:
        for prefix in prefixes:
            parts = Path(prefix).parents
            for ancestor in sorted((str(p) for p in parts if str(p) != "/"), key=len):
                if not os.stat(ancestor).st_mode & 0o001:
                    hidden.add(ancestor)
                    break
    hidden = sorted(h for h in hidden if not any(h != o and h.startswith(o + os.sep) for o in hidden))
    keep = sorted(p for p in prefixes if any(p == h or p.startswith(h + os.sep) for h in hidden))
    return hidden, keep


def kernel_environment(python: str) -> dict:
    """What every grading kernel's environment holds (a session adds its private HOME and TMPDIR)."""
    return {"PATH": os.path.dirname(python) + ":/usr/bin:/bin", "LANG": "C.UTF-8", **ONE_BLAS_THREAD,
            "MPLBACKEND": "module://matplotlib_inline.backend_inline",
            "PYTHONWARNINGS": "ignore::DeprecationWarning", "NBGRADER_EXECUTION": "autograde",
            "PYDEVD_DISABLE_FILE_VALIDATION": "1"}


class ForkedKernel:
    """A kernel process the launcher forked: not our child, so it is watched through a pidfd."""

    def __init__(self, pid: int):
        self.pid = pid
        try:
            self._fd = os.pidfd_open(pid)
        except ProcessLookupError:  # it is gone already
            self._fd = None

    def poll(self) -> int | None:
        """None while it runs, else 0 (its exit status belongs to the launcher that reaps it)."""
        return None if self._fd is not None and not select.select([self._fd], [], [], 0)[0] else 0

    def kill(self) -> None:
        """SIGKILL its whole session (the kernel and anything it forked), and wait until it is gone."""
        for send in (os.killpg, os.kill):  # before it has called setsid there is no group of that id yet
            try:
                send(self.pid, signal.SIGKILL)
                break
            except ProcessLookupError:
                continue
        if self._fd is not None:
            select.select([self._fd], [], [], 10)
            os.close(self._fd)
            self._fd = None


class Launcher:
    """This process's kernel launcher (graders/engine/in_kernel/launcher.py): one per grading worker, started on first
    use, started again if it died."""

    def __init__(self, python: str):
        self.mpl_dir = tempfile.mkdtemp(prefix="nnfs-launcher-")
        os.chmod(self.mpl_dir, 0o755)
        atexit.register(shutil.rmtree, self.mpl_dir, True)
        code = (Path(__file__).parent / "in_kernel" / "launcher.py").read_text(encoding="utf-8")
        self.process = subprocess.Popen([python, "-c", code], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                        stderr=subprocess.DEVNULL, cwd="/", text=True,
                                        env=dict(kernel_environment(python), MPLCONFIGDIR=self.mpl_dir,
                                                 HOME=self.mpl_dir))
        if "ready" not in self._answer():
            raise RemoteError(KERNEL_DIED, "the kernel launcher did not start")

    def _answer(self) -> dict:
        line = self.process.stdout.readline()
        try:
            return json.loads(line) if line else {}
        except ValueError:
            return {}

    def fork(self, request: dict) -> ForkedKernel:
        try:
            self.process.stdin.write(json.dumps(request) + "\n")
            self.process.stdin.flush()
        except (BrokenPipeError, OSError) as exc:
            raise RemoteError(KERNEL_DIED, "the kernel launcher is gone") from exc
        answer = self._answer()
        if "pid" not in answer:
            raise RemoteError(KERNEL_DIED, f"the kernel could not be started ({answer.get('error', 'no answer')})")
        return ForkedKernel(int(answer["pid"]))


_LAUNCHERS: dict[str, Launcher] = {}


def launcher(python: str) -> Launcher:
    current = _LAUNCHERS.get(python)
    if current is None or current.process.poll() is not None:
        current = _LAUNCHERS[python] = Launcher(python)
    return current


_UID_LOCK: list = []  # (uid, the open lock file that holds it), for this process's lifetime


def sandbox_uid(first: int = 61000, last: int = 61999) -> int | None:
    """The unprivileged uid this process's kernels run as (None unless we are root).

    Each grading process holds a lock on its own uid, so two grading runs on one machine never share one
    (stopping a kernel kills everything of its uid); a uid whose holder died is free again, and the next
    holder kills whatever the dead run left running under it.
    """
    if os.geteuid() != 0:
        return None
    if not _UID_LOCK:
        for uid in range(first, last + 1):
            fd = os.open(os.path.join(tempfile.gettempdir(), f"nnfs-sandbox-uid-{uid}.lock"), os.O_CREAT | os.O_RDWR, 0o600)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                continue
            _UID_LOCK.append((uid, fd))
            break
        else:
            raise RemoteError(KERNEL_DIED, f"every sandbox uid from {first} to {last} is in use")
    return _UID_LOCK[0][0]



class KernelSession:
    """One sandboxed kernel and the means to run code in it and to call the student's functions."""

    def __init__(self, notebook_dir: Path, *, limits: GradingLimits | None = None, hide: tuple = (),
                 python: str = sys.executable):
        self.limits = limits or GradingLimits()
        self.root = Path(tempfile.mkdtemp(prefix="nnfs-sandbox-"))
        self.work = self.root / "work"
        shutil.copytree(notebook_dir, self.work)
        self.rpc_dir = str(self.root / "rpc")
        os.makedirs(self.rpc_dir)
        (self.root / "home").mkdir()
        self.uid = sandbox_uid()
        if self.uid is not None:
            for path in [self.root, *self.root.rglob("*")]:
                os.chown(path, self.uid, self.uid)
            os.chmod(self.root, 0o700)
        shutil.copy(Path(__file__).parent / "in_kernel" / "stub.py", self.root / "nnfs_stub.py")
        self.hide, self.keep = _views(hide, python_prefixes=(sys.prefix, sys.base_prefix),
                                      unprivileged=self.uid is not None)
        self.python = python
        self.requests = 0
        self.process = None
        self.client = None
        self.start()

    # -- lifecycle -----------------------------------------------------------------------------------------
    def start(self) -> None:
        connection_file = str(self.root / "kernel.json")
        write_connection_file(connection_file, transport="ipc", ip=str(self.root / "ipc"))
        if self.uid is not None:
            os.chown(connection_file, self.uid, self.uid)
        env = dict(kernel_environment(self.python), HOME=str(self.root / "home"), TMPDIR=str(self.root / "home"),
                   MPLCONFIGDIR=str(self.root / "home" / "mpl"))
        self._kill_leftovers()
        request = {"root": str(self.root), "hide": self.hide, "keep": self.keep, "uid": self.uid,
                   "limits": self.limits.trait_values(config=True), "env": env, "cwd": str(self.work),
                   "argv": ["-f", connection_file, "--IPKernelApp.log_level=ERROR",
                            "--HistoryManager.hist_file=:memory:"]}
        self.process = launcher(self.python).fork(request)
        self.client = BlockingKernelClient(connection_file=connection_file)
        self.client.load_connection_file()
        self.client.start_channels()
        try:
            self.client.wait_for_ready(timeout=60)
        except RuntimeError as exc:
            raise RemoteError(KERNEL_DIED, f"the kernel did not start ({exc})") from exc
        stub = str(self.root / "nnfs_stub.py")
        status, _ = self.run(f"__nnfs__ = {{'__file__': {stub!r}, '__name__': 'nnfs_stub'}}\n"
                             f"exec(compile(open({stub!r}).read(), {stub!r}, 'exec'), __nnfs__)\n"
                             "__nnfs__['ns'] = globals()\n"
                             f"__nnfs__['cap_output']({self.limits.output_bytes})", timeout=60, keep_outputs=False)
        if status != "ok":
            raise RemoteError(KERNEL_DIED, "the grading stub could not be loaded")

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def stop(self) -> None:
        if self.client is not None:
            self.client.stop_channels()
        if self.process is not None:
            self.process.kill()
        self._kill_leftovers()

    def _kill_leftovers(self) -> None:
        """Anything still running under this sandbox's uid: the student's forks, or an earlier killed run's."""
        if self.uid is not None:
            subprocess.run(["pkill", "-KILL", "-u", str(self.uid)], check=False, stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL)

    def restart(self) -> None:
        self.stop()
        self.start()

    def close(self) -> None:
        self.stop()
        shutil.rmtree(self.root, ignore_errors=True)

    def interrupt(self) -> None:
        if self.alive():
            os.kill(self.process.pid, signal.SIGINT)

    # -- running code -----------------------------------------------------------------------------------------
    def run(self, code: str, timeout: float, keep_outputs: bool = True) -> tuple[str, list]:
        """Execute code; returns (status, outputs). status: ok, error, timeout, died, or output-limit."""
        msg_id = self.client.execute(code, store_history=False, allow_stdin=False, stop_on_error=False)
        outputs, size, status = [], 0, None
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return self._after_timeout(outputs)
            try:
                msg = self.client.get_iopub_msg(timeout=min(remaining, 0.5))
            except Exception:  # noqa: BLE001 - queue.Empty: check the kernel is still there
                if not self.alive():
                    return "died", outputs
                continue
            if msg.get("parent_header", {}).get("msg_id") != msg_id:
                continue
            kind = msg["msg_type"]
            if kind == "status" and msg["content"].get("execution_state") == "idle":
                break
            if kind == "error":
                status = "error"
            if kind in ("stream", "display_data", "execute_result", "error") and keep_outputs:
                size += len(json.dumps(msg["content"]))
                if size > self.limits.output_bytes:
                    self.interrupt()
                    self._drain(msg_id, 5)
                    outputs.append(nbformat.v4.new_output("error", ename="OutputLimit", evalue="",
                                   traceback=[f"OutputLimit: the cell printed more than {self.limits.output_bytes // 2**20} MiB; the rest was cut."]))
                    return "output-limit", outputs
                outputs.append(nbformat.v4.output_from_msg(msg))
            elif kind == "clear_output" and keep_outputs:
                outputs = []
        reply = self._reply(msg_id)
        if reply is not None and reply.get("status") == "error":
            status = "error"
            if keep_outputs and not any(o.get("output_type") == "error" for o in outputs):
                # e.g. a MemoryError: the kernel may have had no memory left to publish the traceback
                outputs.append(nbformat.v4.new_output(
                    "error", ename=str(reply.get("ename", "Error")), evalue=str(reply.get("evalue", "")),
                    traceback=[f"{reply.get('ename', 'Error')}: {reply.get('evalue', '')}"]))
        return status or "ok", outputs

    def _reply(self, msg_id: str, seconds: float = 5.0):
        """The execute_reply of msg_id (older replies on the shell channel are dropped), or None."""
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            try:
                msg = self.client.get_shell_msg(timeout=max(0.05, deadline - time.monotonic()))
            except Exception:  # noqa: BLE001 - queue.Empty
                return None
            if msg.get("parent_header", {}).get("msg_id") == msg_id:
                return msg.get("content", {})
        return None

    def _drain(self, msg_id: str, seconds: float) -> bool:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            try:
                msg = self.client.get_iopub_msg(timeout=0.2)
            except Exception:  # noqa: BLE001
                if not self.alive():
                    return False
                continue
            if (msg.get("parent_header", {}).get("msg_id") == msg_id and msg["msg_type"] == "status"
                    and msg["content"].get("execution_state") == "idle"):
                return True
        return False

    def _after_timeout(self, outputs) -> tuple[str, list]:
        self.interrupt()
        return "timeout", outputs

    def next_request(self) -> int:
        self.requests += 1
        return self.requests

    def call_stub(self, number: int) -> None:
        """Have the kernel answer request `number` (see in_kernel/stub.py, serve)."""
        status, outputs = self.run(f"__nnfs__['serve']({self.rpc_dir!r}, {number}, __nnfs__['ns'])",
                                   timeout=self.limits.cell_seconds, keep_outputs=False)
        if status == "timeout":
            if not self.settle():
                self.stop()
                raise RemoteError(TIMEOUT, f"it did not return within {self.limits.cell_seconds:g} s, "
                                             "and the kernel had to be stopped")
            raise RemoteError(TIMEOUT, f"it did not return within {self.limits.cell_seconds:g} s")
        if status == "died" or not self.alive():
            raise RemoteError(KERNEL_DIED, "the kernel died while it ran")

    def settle(self, seconds: float = 10) -> bool:
        """After an interrupt: wait until the kernel is idle again; False if it is not (then it is dead or stuck)."""
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            status, _ = self.run("pass", timeout=1.0, keep_outputs=False)
            if status == "ok":
                return True
            if not self.alive():
                return False
        return False
