"""A Jupyter kernel for one submission, fenced in: deny by default, the same as root and as an ordinary user.

What the kernel sees and may use (built by graders/engine/in_kernel/launcher.py, where the fence itself is):
- its own root: the Python install and the system's /usr and /lib* read-only, a generated /etc, a minimal /dev,
  its own /proc, private size-capped tmpfs on /tmp, /var/tmp and /dev/shm, and its sandbox folder read-write
  (a fresh copy of the notebook's folder, a private HOME, the connection file and sockets, the stub). No other
  file of the machine exists for it: no course copy, no home folder, no gradebook, no other sandbox;
- its own PID namespace (it is PID 1: when it dies, every process it made dies), IPC and UTS namespaces, and a
  network namespace with nothing but loopback;
- a uid no other kernel holds at the same time: as root, a sandbox uid locked by this grading process
  (`sandbox_uid`); as an ordinary user, a user namespace of its own (no other kernel, and none of the grader's
  processes, exist for it, and it keeps no capability);
- memory, processes and CPU in cgroups of its own where they are writable (memory then counts every process
  of the kernel and its tmpfs pages), and rlimits in any case (address space per process, CPU seconds, file
  size, open files, processes).
`KernelSession.fence` records what was in force. Where the platform allows no fence, starting a kernel raises
FenceUnavailable, saying why and how to enable it, unless c.GradingLimits.allow_unfenced is set.

Kernels are forked from a launcher that has already imported ipykernel, NumPy and matplotlib (one per grading
worker), so a submission does not pay for those imports again.
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
import stat
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import nbformat
from jupyter_client import BlockingKernelClient
from jupyter_client.connect import write_connection_file
from nbgrader.preprocessors import Execute
from traitlets import Bool, Bytes, Float, Integer, default, observe
from traitlets.config import LoggingConfigurable

from . import channel
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
        "Seconds one cell, or one call of a student function from a check, may run at most. Defaults to "
        "c.Execute.timeout (None or -1 there: no limit). The sandbox lowers it to the assignment's fitted cell "
        "limit (fit_to_measured_time), and each call to its own budget (call_floor_seconds and the rest)."))
    notebook_seconds = Float(600.0, config=True, help=(
        "Seconds the whole notebook may run at most; the cells after that are not run (and earn nothing). "
        "Lowered to the assignment's fitted notebook limit (fit_to_measured_time)."))
    fit_to_measured_time = Bool(True, config=True, help=(
        "Fit the cell and notebook limits to the assignment's honest time, as `./course measure-time` recorded "
        "it (graders/hidden/timing.json): a notebook may run notebook_time_factor x that + notebook_time_margin "
        "seconds, a cell cell_time_factor x the slowest honest cell + cell_time_margin, never more than "
        "notebook_seconds and cell_seconds (either one, when set in GradingLimits itself, stands as set). An "
        "assignment with no measurement keeps those two."))
    notebook_time_factor = Float(2.0, config=True, help="See fit_to_measured_time.")
    notebook_time_margin = Float(15.0, config=True, help="Seconds; see fit_to_measured_time.")
    cell_time_factor = Float(4.0, config=True, help="See fit_to_measured_time.")
    cell_time_margin = Float(3.0, config=True, help="Seconds; see fit_to_measured_time.")
    call_floor_seconds = Float(2.0, config=True, help=(
        "Seconds one call of a student function from a check may always run. A call may run "
        "max(call_floor_seconds, call_reference_factor x the reference's own time on the same inputs)."))
    call_reference_factor = Float(50.0, config=True, help="See call_floor_seconds.")
    call_unmeasured_seconds = Float(5.0, config=True, help=(
        "Seconds a call may run when the reference's time on its inputs is unknown (the reference cannot run "
        "on them: a cache the student's forward returned, or a function the student's code returned)."))
    stated_budget_factor = Float(1.5, config=True, help=(
        "A training function's call may run this times the budget its exercise states (e.g. train_mlp: 20 s), "
        "so that a run just over the budget fails with the check's own message, with the seconds it took."))
    interrupt_grace_seconds = Float(1.0, config=True, help=(
        "Seconds a call or cell that overran gets to stop after the interrupt; a kernel that ignores the "
        "interrupt is then stopped, restarted, and the cells that had run are run again."))
    memory_bytes = Integer(3 * 2**30, config=True, help=(
        "Memory of the kernel, in bytes: of all its processes and tmpfs pages together where a memory cgroup is "
        "writable (memory.limit_in_bytes or memory.max), and of each process's address space (RLIMIT_AS) always."))
    cpu_seconds = Integer(900, config=True, help="CPU seconds of the kernel (RLIMIT_CPU).")
    processes = Integer(64, config=True, help=(
        "Processes and threads of the kernel (a pids cgroup where one is writable, and RLIMIT_NPROC, which counts "
        "the kernel's own uid or user namespace). An honest kernel runs one process of 11 threads, 14 once a "
        "notebook has run."))
    file_bytes = Integer(256 * 2**20, config=True, help="Largest file the kernel may write (RLIMIT_FSIZE), in bytes.")
    output_bytes = Integer(2 * 2**20, config=True, help=(
        "Bytes of outputs kept per cell; the rest is cut, and the cell fails."))
    allow_unfenced = Bool(False, config=True, help=(
        "Grade even where this machine cannot fence a kernel in (no root and no unprivileged user namespaces): "
        "a submission can then read and change everything the grading user can. Off by default: grading refuses, "
        "saying why and how to enable the fence."))
    show_hidden_expected = Bool(False, config=True, help=(
        "Whether a failed hidden check's feedback shows the hidden expected values. Off by default: it names "
        "the mistake and shows what came back, and the hidden inputs stay unknown to the class."))
    secret_hidden_inputs = Bool(True, config=True, help=(
        "Draw hidden checks' inputs from the course's grading secret (.grading/hidden-inputs.secret, made once, "
        "kept across runs so that grading again gives the same verdicts) instead of the fixed seeds a student's "
        "copy of the checks could reproduce. Each hidden check's hard cases (extremes, N = 1, masked rows) are "
        "fixed whatever the draw, so that a verdict does not depend on the secret."))
    run_secret = Bytes(b"", help=(
        "A grading run's secret, from which hidden checks draw their inputs (set by grade_class; never sent to a "
        "kernel, since only config traits are)."))
    max_answer_bytes = Integer(16 * 2**20, config=True, help=(
        "Bytes the grader reads of one answer of a student's function to a check (its result and the inputs it "
        "changed, arrays included; decoded, every array reference counts). A larger answer fails that check "
        "(OutputTooLarge)."))

    def call_seconds(self, reference_seconds: float | None = None, stated_seconds: float | None = None) -> float:
        """The seconds one call of a student function may run (before the notebook's own deadline).

        Inputs:
          reference_seconds: the reference's time on the same inputs, or None if unknown.
          stated_seconds: the budget the exercise states (training functions), or None.
        Returns:
          seconds, never more than cell_seconds.
        """
        if stated_seconds is not None:
            seconds = self.stated_budget_factor * stated_seconds
        elif reference_seconds is not None:
            seconds = max(self.call_floor_seconds, self.call_reference_factor * reference_seconds)
        else:
            seconds = self.call_unmeasured_seconds
        return min(seconds, self.cell_seconds)

    def fitted(self, honest: dict | None) -> tuple[float, float]:
        """The (cell, notebook) limits in seconds for an assignment whose honest time is `honest`.

        Inputs:
          honest: {"notebook_seconds": float, "slowest_cell_seconds": float} as `./course measure-time`
            recorded them for the assignment, or None (not measured).
        Returns:
          (cell seconds, notebook seconds): fitted when fit_to_measured_time and measured, never above
          cell_seconds and notebook_seconds; either of those two set explicitly (config or keyword) is used as set.
        """
        if not self.fit_to_measured_time or not honest:
            return self.cell_seconds, self.notebook_seconds
        cell = self.cell_time_factor * float(honest["slowest_cell_seconds"]) + self.cell_time_margin
        notebook = self.notebook_time_factor * float(honest["notebook_seconds"]) + self.notebook_time_margin
        # a limit set on GradingLimits itself is the instructor's (or a test's) own choice: it stands as it is
        return (self.cell_seconds if "cell_seconds" in self._set_explicitly else min(cell, self.cell_seconds),
                self.notebook_seconds if "notebook_seconds" in self._set_explicitly
                else min(notebook, self.notebook_seconds))

    @observe("cell_seconds", "notebook_seconds")
    def _remember_explicit(self, change) -> None:
        # observers see what config or keywords set, never a default (c.Execute.timeout's 120 is a default here)
        self.__dict__.setdefault("_set_explicitly", set()).add(change["name"])

    @property
    def _set_explicitly(self) -> set:
        return self.__dict__.get("_set_explicitly", set())

    @default("cell_seconds")
    def _cell_seconds_from_execute(self) -> float:
        # c.Execute.timeout owns the per-cell limit: nbgrader's own Execute (plain `nbgrader autograde`,
        # `nbgrader validate`) reads it, so the sandbox follows the same number instead of keeping a second one.
        # Execute is asked rather than the config read, so a timeout set on its parent classes counts too.
        timeout = Execute(config=self.config).timeout
        return math.inf if timeout is None or timeout < 0 else float(timeout)


def format_seconds(seconds: float) -> str:
    """Seconds for a message: "2", "16.2", "507" (three significant digits, never an exponent)."""
    return f"{seconds:.3g}" if seconds < 100 else f"{seconds:.0f}"


def kernel_environment(python: str) -> dict:
    """What every grading kernel's environment holds (a session adds its private HOME and TMPDIR)."""
    return {"PATH": os.path.dirname(python) + ":/usr/bin:/bin", "LANG": "C.UTF-8", **ONE_BLAS_THREAD,
            "MPLBACKEND": "module://matplotlib_inline.backend_inline",
            "PYTHONWARNINGS": "ignore::DeprecationWarning", "NBGRADER_EXECUTION": "autograde",
            "PYDEVD_DISABLE_FILE_VALIDATION": "1"}


class FenceUnavailable(RuntimeError):
    """This machine cannot fence a kernel in; the message says why and how to enable it."""


def fence_advice(reason: str) -> str:
    """The message of FenceUnavailable: why a kernel cannot be fenced in here, and what the instructor can do.

    Inputs:
      reason: str, the step that failed (e.g. "unshare(CLONE_NEWUSER): Operation not permitted").
    Returns:
      str, the message.
    """
    if os.geteuid() == 0:
        how = ("the grader runs as root but may not create namespaces or mounts: in a container, give it "
               "CAP_SYS_ADMIN (or run it with user namespaces allowed)")
    else:
        how = ("grade as root, or let ordinary users create user namespaces: `sysctl -w "
               "kernel.unprivileged_userns_clone=1` (Debian and older Ubuntu kernels), `sysctl -w "
               "user.max_user_namespaces=15000` where that is 0, and on Ubuntu 23.10 and later `sysctl -w "
               "kernel.apparmor_restrict_unprivileged_userns=0` (or an AppArmor profile allowing them); "
               "`unshare -Urn true` succeeds once they are allowed")
    return (f"a submission's kernel cannot be fenced in on this machine ({reason}); without the fence a submission "
            f"could read and change everything this user can. To enable it: {how}. To grade anyway, unfenced, set "
            "c.GradingLimits.allow_unfenced = True in nbgrader_config.py.")


def _pidfd(pid: int) -> int | None:
    try:
        return os.pidfd_open(pid)
    except ProcessLookupError:
        return None


def _is_socket(path) -> bool:
    try:
        return stat.S_ISSOCK(os.lstat(path).st_mode)
    except OSError:
        return False


def _parent(pid: int) -> int | None:
    try:
        with open(f"/proc/{pid}/stat", encoding="utf-8") as handle:
            return int(handle.read().rsplit(")", 1)[1].split()[1])
    except (OSError, ValueError, IndexError):
        return None


class ForkedKernel:
    """A kernel the launcher forked, watched and signalled through pidfds (neither process is our child).

    pid: the intermediate process, which waits for the kernel and exits when it has died, and with it every
    process of its PID namespace; kernel: the kernel's own pid (PID 1 of that namespace), which interrupts and
    kills go to.
    """

    def __init__(self, pid: int, kernel: int):
        self.pid, self.kernel = pid, kernel
        self._fd = _pidfd(pid)
        self._kernel_fd = _pidfd(kernel)
        # the intermediate forks once: a pid whose parent it is is the kernel, not a reuse of a dead kernel's pid
        if self._kernel_fd is not None and _parent(kernel) != pid:
            os.close(self._kernel_fd)
            self._kernel_fd = None

    def poll(self) -> int | None:
        """None while it runs, else 0 (its exit status belongs to the launcher that reaps it)."""
        return None if self._fd is not None and not select.select([self._fd], [], [], 0)[0] else 0

    def _signal(self, number: int, fd: int | None) -> bool:
        if fd is None:
            return False
        try:
            signal.pidfd_send_signal(fd, number)
            return True
        except ProcessLookupError:
            return False

    def interrupt(self) -> None:
        self._signal(signal.SIGINT, self._kernel_fd)

    def kill(self) -> None:
        """SIGKILL the kernel (everything it made dies with it), and wait until the intermediate is gone."""
        if not self._signal(signal.SIGKILL, self._kernel_fd):
            self._signal(signal.SIGTERM, self._fd)  # the intermediate SIGKILLs the kernel
        if self._fd is not None:
            if not select.select([self._fd], [], [], 10)[0]:
                self._signal(signal.SIGKILL, self._fd)
                select.select([self._fd], [], [], 5)
            os.close(self._fd)
            self._fd = None
        if self._kernel_fd is not None:
            os.close(self._kernel_fd)
            self._kernel_fd = None


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

    def fork(self, request: dict) -> tuple[ForkedKernel, dict]:
        """Start one kernel (see launcher.py for the request).

        Returns:
          (the kernel, what its fence put in force: view, namespaces, uid, memory, processes, cpu).
        Raises:
          FenceUnavailable: the fence could not be built here; RemoteError (KernelDied): any other failure.
        """
        try:
            self.process.stdin.write(json.dumps(request) + "\n")
            self.process.stdin.flush()
        except (BrokenPipeError, OSError) as exc:
            raise RemoteError(KERNEL_DIED, "the kernel launcher is gone") from exc
        answer = self._answer()
        if answer.get("fence_failed"):
            raise FenceUnavailable(fence_advice(str(answer.get("error", ""))))
        if "pid" not in answer:
            raise RemoteError(KERNEL_DIED, f"the kernel could not be started ({answer.get('error', 'no answer')})")
        return ForkedKernel(int(answer["pid"]), int(answer["kernel"])), dict(answer.get("fence", {}))


_LAUNCHERS: dict[str, Launcher] = {}


def launcher(python: str) -> Launcher:
    current = _LAUNCHERS.get(python)
    if current is None or current.process.poll() is not None:
        current = _LAUNCHERS[python] = Launcher(python)
    return current


def fence_summary(fence: dict) -> str:
    """One line saying what isolation a grading run has in force (from check_fence)."""
    return ", ".join(f"{key} {value}" for key, value in fence.items())


def check_fence(limits: GradingLimits | None = None, python: str = sys.executable) -> dict:
    """Build one kernel's fence and let it exit before it becomes a kernel: what grading would put in force.

    For a command to call once before grading, so that it refuses at once rather than once per submission.

    Inputs:
      limits: GradingLimits (allow_unfenced, and the limits the probe applies); python: the kernels' Python.
    Returns:
      dict, as KernelSession.fence (view "the host's (unfenced)" where no fence is possible and that is allowed).
    Raises:
      FenceUnavailable: no fence is possible here (the message says why and how to enable it), unless
      limits.allow_unfenced.
    """
    limits = limits or GradingLimits()
    folder = tempfile.mkdtemp(prefix="nnfs-sandbox-")
    try:
        uid = sandbox_uid()
        if uid is not None:
            os.chown(folder, uid, uid)
        request = {"root": folder, "hide": [], "uid": uid, "limits": limits.trait_values(config=True),
                   "env": {"HOME": folder}, "cwd": folder, "argv": [], "probe": True, "fence": True}
        try:
            process, fence = launcher(python).fork(request)
        except FenceUnavailable:
            if not limits.allow_unfenced:
                raise
            _UNFENCED.add(python)
            process, fence = launcher(python).fork(dict(request, fence=False))
        process.kill()  # it is exiting already: this waits until it has
        return fence
    finally:
        shutil.rmtree(folder, ignore_errors=True)


_UID_LOCK: list = []  # (uid, the open lock file that holds it), for this process's lifetime
_STARTED = time.time()  # a sandbox folder older than this process, under a uid we now hold, is a dead run's
_UNFENCED: set = set()  # Pythons whose kernels start unfenced: the fence failed, and allow_unfenced was set


def sandbox_uid(first: int = 61000, last: int = 61999) -> int | None:
    """The unprivileged uid this process's kernels run as (None unless we are root).

    Each grading process holds a lock on its own uid, so two grading runs on one machine never share one; a
    uid whose holder died is free again, and the next holder clears what the dead run left under it.
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
            _clear_dead_run(uid)
            break
        else:
            raise RemoteError(KERNEL_DIED, f"every sandbox uid from {first} to {last} is in use")
    return _UID_LOCK[0][0]



def _clear_dead_run(uid: int) -> None:
    """What a grading run that died (SIGKILLed mid-kernel) left under the sandbox uid we now hold: its processes,
    and its sandbox folders with their channel folders."""
    subprocess.run(["pkill", "-KILL", "-u", str(uid)], check=False, stdout=subprocess.DEVNULL,
                   stderr=subprocess.DEVNULL)
    with os.scandir(tempfile.gettempdir()) as entries:
        for entry in entries:
            if (entry.name.startswith("nnfs-sandbox-") and not entry.name.endswith("-channels")
                    and entry.is_dir(follow_symlinks=False) and entry.stat(follow_symlinks=False).st_uid == uid
                    and entry.stat(follow_symlinks=False).st_mtime < _STARTED):
                shutil.rmtree(entry.path, ignore_errors=True)
                shutil.rmtree(f"{entry.path}-channels", ignore_errors=True)


class KernelSession:
    """One sandboxed kernel and the means to run code in it and to call the student's functions."""

    def __init__(self, notebook_dir: Path, *, limits: GradingLimits | None = None, hide: tuple = (),
                 python: str = sys.executable):
        self.limits = limits or GradingLimits()
        self.root = Path(tempfile.mkdtemp(prefix="nnfs-sandbox-"))
        # the grader's own links to the kernel's sockets: beside the sandbox (one file system), out of its view
        self.channels = Path(f"{self.root}-channels")
        self.channels.mkdir(mode=0o700)
        self.work = self.root / "work"
        shutil.copytree(notebook_dir, self.work)
        (self.root / "home").mkdir()
        self.uid = sandbox_uid()
        if self.uid is not None:
            for path in [self.root, *self.root.rglob("*")]:
                os.chown(path, self.uid, self.uid)
            os.chmod(self.root, 0o700)
        shutil.copy(Path(__file__).parent / "in_kernel" / "stub.py", self.root / "nnfs_stub.py")
        self.hide = [str(p) for p in hide]  # not in the kernel's view anyway; starting fails if an install holds one
        self.fence: dict = {}  # what the fence put in force for the running kernel (see Launcher.fork)
        self.python = python
        #: time.monotonic() after which no call of a student function runs (the notebook's time limit): set by
        #: execute_notebook, moved later by the time of calls that overran their own budget (see call_stub)
        self.notebook_deadline = math.inf
        self.process = None
        self.client = None
        try:
            self.start()
        except BaseException:  # nothing of a session that never started stays behind
            self.close()
            raise

    # -- lifecycle -----------------------------------------------------------------------------------------
    def start(self) -> None:
        for stale in self.root.glob("ipc-*"):  # the previous kernel's sockets, or what it left in their place
            if stale.is_dir() and not stale.is_symlink():
                shutil.rmtree(stale, ignore_errors=True)
            else:
                stale.unlink(missing_ok=True)
        connection_file, info = write_connection_file(str(self.root / "kernel.json"), transport="ipc",
                                                      ip=str(self.root / "ipc"))
        if self.uid is not None:
            os.chown(connection_file, self.uid, self.uid)
        env = dict(kernel_environment(self.python), HOME=str(self.root / "home"), TMPDIR=str(self.root / "home"),
                   MPLCONFIGDIR=str(self.root / "home" / "mpl"))
        self._kill_leftovers()
        request = {"root": str(self.root), "hide": self.hide, "uid": self.uid, "fence": self.python not in _UNFENCED,
                   "limits": self.limits.trait_values(config=True), "env": env, "cwd": str(self.work),
                   "argv": ["-f", connection_file, "--IPKernelApp.log_level=ERROR",
                            "--HistoryManager.hist_file=:memory:"]}
        try:
            self.process, self.fence = launcher(self.python).fork(request)
        except FenceUnavailable:
            if not self.limits.allow_unfenced:
                raise
            _UNFENCED.add(self.python)  # asked for: every later kernel of this Python starts unfenced at once
            self.process, self.fence = launcher(self.python).fork(dict(request, fence=False))
        self.client = BlockingKernelClient()
        self.client.load_connection_info(self._link_channels(info))
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

    def _link_channels(self, info: dict) -> dict:
        """The kernel's connection info, its sockets reached through hard links in a folder only we can write.

        The sockets are in the kernel's sandbox folder, where it could replace them with a link to any socket of
        the machine before the grader connects or reconnects. The links are made as soon as the fresh kernel has
        bound its sockets, before any of the student's code runs.

        Inputs:
          info: dict, the connection info the kernel was started with (ip: the sockets' path prefix).
        Returns:
          the same info with ip in self.channels.
        """
        for old in self.channels.iterdir():
            old.unlink()
        deadline = time.monotonic() + 60
        for port in (info[f"{name}_port"] for name in ("shell", "iopub", "stdin", "control", "hb")):
            source = f"{info['ip']}-{port}"
            while not _is_socket(source):
                if time.monotonic() > deadline or not self.alive():
                    raise RemoteError(KERNEL_DIED, "the kernel did not start (its sockets never appeared)")
                time.sleep(0.002)
            os.link(source, self.channels / f"ipc-{port}", follow_symlinks=False)
            if not _is_socket(self.channels / f"ipc-{port}"):
                raise RemoteError(KERNEL_DIED, "the kernel did not start (one of its sockets is not a socket)")
        return dict(info, ip=str(self.channels / "ipc"))

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def stop(self) -> None:
        if self.client is not None:
            self.client.stop_channels()
        if self.process is not None:
            self.process.kill()
        self._kill_leftovers()

    def _kill_leftovers(self) -> None:
        """Unfenced, as root: anything still running under this sandbox's uid (the student's forks, or an earlier
        killed run's). A fenced kernel's processes die with it, in its PID namespace."""
        if self.uid is not None and self.python in _UNFENCED:
            subprocess.run(["pkill", "-KILL", "-u", str(self.uid)], check=False, stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL)

    def restart(self) -> None:
        self.stop()
        self.start()

    def close(self) -> None:
        self.stop()
        shutil.rmtree(self.root, ignore_errors=True)
        shutil.rmtree(self.channels, ignore_errors=True)

    def interrupt(self) -> None:
        if self.alive():
            self.process.interrupt()

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

    def call_stub(self, payload: bytes, seconds: float | None = None, why: str = "") -> channel.Answer:
        """Have the kernel's stub answer one request, over the kernel's own channels (see channel.py).

        Inputs:
          payload: bytes, the request (graders/engine/remote.py, request_payload).
          seconds: how long the call may run (default limits.cell_seconds); never past notebook_deadline.
          why: what a Timeout's message says after "it did not return within N s" (the inputs, the
            reference's time).
        Returns:
          the stub's Answer, within limits.max_answer_bytes.
        Raises:
          RemoteError: Timeout (the kernel is interrupted; if it will not stop within
          limits.interrupt_grace_seconds it is stopped, and the caller restarts it), KernelDied, or a fault of
          the answer (OutputTooLarge, NoAnswer, ProtocolError).
        """
        if not self.alive():
            raise RemoteError(KERNEL_DIED, "the kernel had been stopped after an earlier call of this test cell "
                                           "overran (it is restarted before the next cell)")
        started = time.monotonic()
        own = self.limits.cell_seconds if seconds is None else seconds
        left = self.notebook_deadline - started
        if left <= 0:
            raise RemoteError(TIMEOUT, "it was not called: the notebook's time limit had run out")
        limit = min(own, left)
        msg_id = channel.send_request(self.client, payload)
        status, answer = channel.receive_answer(self.client, msg_id, deadline=started + limit, alive=self.alive,
                                                max_answer_bytes=self.limits.max_answer_bytes)
        if status == "timeout":
            message = (f"it did not return within {format_seconds(limit)} s" + why if limit == own else
                       f"it was stopped after {format_seconds(limit)} s, when the notebook's time limit ran out")
            self.interrupt()
            # one interrupt, then the interrupted call's own end, before settle() sends anything more
            grace = self.limits.interrupt_grace_seconds
            if not (channel.wait_until_done(self.client, msg_id, seconds=grace, alive=self.alive)
                    and self.settle(grace + 1)):
                self.stop()
                message += " (it ignored the interrupt, so the kernel was stopped and started again)"
            # the check fails for it already, whichever limit stopped it: not the notebook's time (so a training
            # call that meets the notebook's end does not cost the checks after it their turn)
            self.notebook_deadline += time.monotonic() - started
            raise RemoteError(TIMEOUT, message)
        if status == "died":
            raise RemoteError(KERNEL_DIED, "the kernel died while it ran")
        return answer

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
