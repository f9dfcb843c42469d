"""Starts sandboxed kernels by forking a process that has already imported what every kernel needs.

A fresh `python -m ipykernel_launcher` spends most of a second importing ipykernel, NumPy and matplotlib
before the first cell runs, and a class of 200 notebooks pays that 200 times. This launcher pays it once per
grading worker: it imports them, then forks one child per kernel. The child fences itself in (namespaces,
mounts, rlimits, an unprivileged uid: see `fence`) and becomes the kernel.

It runs as `python -c <this file's text>` with the kernel's base environment, so it imports nothing from the
course (no reference solution or check is ever in a kernel's memory) and has nothing on sys.path but the
Python install. Protocol, one JSON object per line: the worker writes a request
{"root", "hide", "keep", "uid", "limits", "env", "cwd", "argv"}; the launcher answers {"pid": n} or
{"error": "..."}. It exits when its worker closes stdin or dies.
"""
import ctypes
import json
import os
import resource
import signal
import sys

CLONE_NEWNS, CLONE_NEWNET = 0x00020000, 0x40000000
MS_REC, MS_PRIVATE, MS_BIND, MS_RDONLY, MS_REMOUNT = 0x4000, 0x40000, 0x1000, 0x1, 0x20
MNT_DETACH = 2
PR_SET_PDEATHSIG = 1

#: What the course's notebooks import; a module that fails to import here is simply imported by the kernel.
WARM = ("numpy", "matplotlib", "matplotlib.pyplot", "cloudpickle",
        "ipykernel.kernelapp")


def _mount(libc, source, target, fstype, flags, data=None):
    if libc.mount(source.encode() if source else None, target.encode(), fstype.encode() if fstype else None,
                  flags, data.encode() if data else None) != 0:
        raise OSError(ctypes.get_errno(), f"mount {target}")


def fence(root, hide, keep, uid, limits):
    """In the kernel's process, before it starts: no network, the course hidden, rlimits, its own uid."""
    libc = ctypes.CDLL(None, use_errno=True)
    if os.geteuid() == 0 and libc.unshare(CLONE_NEWNET | CLONE_NEWNS) == 0:
        _mount(libc, None, "/", None, MS_REC | MS_PRIVATE)
        stash = os.path.join(root, ".keep")
        for index, path in enumerate(keep):  # bind what must stay visible out of the way first
            os.makedirs(f"{stash}/{index}", exist_ok=True)
            _mount(libc, path, f"{stash}/{index}", None, MS_BIND | MS_REC)
        for path in hide:
            _mount(libc, "tmpfs", path, "tmpfs", 0, "size=1m,mode=755")
        for index, path in enumerate(keep):
            os.makedirs(path, exist_ok=True)
            _mount(libc, f"{stash}/{index}", path, None, MS_BIND | MS_REC)
            _mount(libc, None, path, None, MS_BIND | MS_REMOUNT | MS_RDONLY | MS_REC)
            libc.umount2(f"{stash}/{index}".encode(), MNT_DETACH)
    for limit, value in ((resource.RLIMIT_AS, limits["memory_bytes"]), (resource.RLIMIT_CPU, limits["cpu_seconds"]),
                         (resource.RLIMIT_FSIZE, limits["file_bytes"]), (resource.RLIMIT_NOFILE, 1024),
                         (resource.RLIMIT_CORE, 0)):
        resource.setrlimit(limit, (value, value))
    if uid is not None:
        os.setgroups([])
        os.setgid(uid)
        os.setuid(uid)
        resource.setrlimit(resource.RLIMIT_NPROC, (limits["processes"], limits["processes"]))


def become_kernel(request):
    """The forked child: fence in, reset what the launcher set up, and run the kernel; never returns."""
    code = 1
    try:
        os.setsid()
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)
        devnull = os.open(os.devnull, os.O_RDWR)
        for fd in (0, 1, 2):
            os.dup2(devnull, fd)
        fence(request["root"], request["hide"], request["keep"], request["uid"], request["limits"])
        os.chdir(request["cwd"])
        os.environ.clear()
        os.environ.update(request["env"], JPY_PARENT_PID=str(os.getppid()))  # the kernel exits with us
        if "numpy" in sys.modules:  # NumPy's global RNG was seeded once, in the launcher: every kernel its own
            sys.modules["numpy"].random.seed()
        from ipykernel.kernelapp import IPKernelApp
        sys.argv = ["ipykernel_launcher", *request["argv"]]
        IPKernelApp.launch_instance(argv=request["argv"])
        code = 0
    finally:
        os._exit(code)


def _reap(*_):
    while True:
        try:
            pid, _status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return


def main():
    ctypes.CDLL(None).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    if sys.path and sys.path[0] in ("", os.getcwd()):
        del sys.path[0]
    for module in WARM:
        try:
            __import__(module)
        except Exception:  # noqa: BLE001 - not installed: the kernel imports it itself, if it needs it
            pass
    signal.signal(signal.SIGCHLD, _reap)
    out = sys.stdout
    out.write(json.dumps({"ready": os.getpid()}) + "\n")
    out.flush()
    for line in sys.stdin:
        try:
            request = json.loads(line)
            pid = os.fork()
        except Exception as exc:  # noqa: BLE001 - the worker is told, and falls back to a plain start
            out.write(json.dumps({"error": f"{type(exc).__name__}: {exc}"}) + "\n")
            out.flush()
            continue
        if pid == 0:
            become_kernel(request)
        out.write(json.dumps({"pid": pid}) + "\n")
        out.flush()


if __name__ == "__main__":
    main()
