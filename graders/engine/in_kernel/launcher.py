"""Starts sandboxed kernels by forking a process that has already imported what every kernel needs.

A fresh `python -m ipykernel_launcher` spends most of a second importing ipykernel, NumPy and matplotlib
before the first cell runs, and a class of 200 notebooks pays that 200 times. This launcher pays it once per
grading worker: it imports them, then forks for each kernel.

The fence is deny-by-default: a kernel sees only what it is given. For each kernel the launcher forks an
intermediate process, which puts itself in the kernel's cgroups (where one is writable), enters a user
namespace of its own unless it runs as root, unshares a PID namespace and forks the kernel: PID 1 of that
namespace, so that when it dies every process it made dies with it. The kernel unshares mount, network, IPC
and UTS namespaces, builds a fresh root (see `build_root`: a tmpfs holding read-only binds of the Python install
and the system's /usr and /lib*, every site-packages folder of which is an empty tmpfs holding only the files of
KERNEL_DISTRIBUTIONS and what they require (and the student side of `graders`), a generated /etc, a minimal /dev, its own /proc, private size-capped
tmpfs on /tmp, /var/tmp and /dev/shm, and the sandbox folder read-write at its own path), pivots into it, detaches
the old root, forgets the modules and import hooks the launcher loaded from files outside that view, brings up
loopback (its only network), drops every privilege and becomes the kernel. The
intermediate waits for it, exits with its status and removes its cgroups; told to stop (or orphaned) it
SIGKILLs the kernel first.

It runs as `python -c <this file's text>` with the kernel's base environment, so it imports nothing from the
course (no reference solution or check is ever in a kernel's memory) and has nothing on sys.path but the
Python install. Protocol, one JSON object per line: the worker writes a request
{"root", "hide", "uid", "limits", "env", "cwd", "argv", "fence", "probe"}; the launcher answers
{"pid": <the intermediate>, "kernel": <the kernel>, "fence": {what was in force}} or
{"error": "...", "fence_failed": bool}. It exits when its worker closes stdin or dies.
"""
import atexit
import ctypes
import errno
import fcntl
import json
import os
import resource
import select
import shutil
import signal
import socket
import stat
import struct
import sys
import sysconfig
import tempfile
import time

CLONE_NEWNS, CLONE_NEWUTS, CLONE_NEWIPC = 0x00020000, 0x04000000, 0x08000000
CLONE_NEWUSER, CLONE_NEWPID, CLONE_NEWNET = 0x10000000, 0x20000000, 0x40000000
MS_RDONLY, MS_NOSUID, MS_NODEV, MS_NOEXEC = 0x1, 0x2, 0x4, 0x8
MS_REMOUNT, MS_NOATIME, MS_NODIRATIME, MS_BIND = 0x20, 0x400, 0x800, 0x1000
MS_REC, MS_PRIVATE, MS_RELATIME, MS_STRICTATIME = 0x4000, 0x40000, 0x200000, 0x1000000
MNT_DETACH = 2
PR_SET_PDEATHSIG, PR_CAPBSET_DROP, PR_SET_NO_NEW_PRIVS, PR_CAP_AMBIENT = 1, 24, 38, 47
PR_CAP_AMBIENT_CLEAR_ALL = 4
SIOCSIFFLAGS, IFF_UP, IFF_LOOPBACK, IFF_RUNNING = 0x8914, 0x1, 0x8, 0x40
#: (pivot_root, capset) by machine: Python wraps neither, and glibc has no pivot_root
SYSCALLS = {"x86_64": (155, 126), "aarch64": (41, 91), "riscv64": (41, 91)}

#: What the course's notebooks import; a module that fails to import here is simply imported by the kernel.
WARM = ("numpy", "matplotlib", "matplotlib.pyplot", "cloudpickle",
        "ipykernel.kernelapp")
#: The distributions whose files a kernel's site-packages holds, with everything they require: NumPy and matplotlib
#: (the course), ipykernel (being a kernel) and cloudpickle (the grader's requests are its pickles). No file of any
#: other distribution (scipy, sklearn, nbgrader, jupyterlab, the course's own install) is there.
KERNEL_DISTRIBUTIONS = ("numpy", "matplotlib", "ipykernel", "cloudpickle")
#: The student side of the course's own package (what ships to students): the checks send objects of its classes
#: (a stand-in model, say) by reference, so a kernel imports them; graders/hidden, engine and tooling never exist there
STUDENT_SIDE = ("__init__.py", "checks", "visible")
#: Where a Python's third-party modules live, besides its own site.getsitepackages(): Debian's and /usr/local's
#: folders, reachable by sys.path.append from any Python whose /usr is in the view
SYSTEM_SITE_GLOBS = ("/usr/lib/python3*/*-packages", "/usr/local/lib/python3*/*-packages")
#: The host's top-level system folders a kernel sees (read-only), or the symlinks they are (/bin -> usr/bin)
SYSTEM = ("usr", "bin", "sbin", "lib", "lib32", "lib64", "libx32")
DEVICES = ("null", "zero", "full", "random", "urandom")
#: Each of the kernel's /tmp, /var/tmp and /dev/shm: private, and small, since without a memory cgroup their
#: pages count against no limit
SCRATCH = "size=64m,nr_inodes=16384"
HOSTNAME = "nnfs-sandbox"
#: One CPU core per kernel (a cgroup's quota, where one is writable): the notebooks' budgets are for one core
CPU_PERIOD_US = 100_000
REPORT_SECONDS = 30

libc = ctypes.CDLL(None, use_errno=True)
LAUNCHER_PID = os.getpid()


# -- system calls -------------------------------------------------------------------------------------------
def _call(result: int, what: str) -> None:
    if result != 0:
        code = ctypes.get_errno()
        raise OSError(code, f"{what}: {os.strerror(code)}")


def _bytes(text):
    return text.encode() if isinstance(text, str) else text


def mount(source, target, fstype=None, flags=0, data=None) -> None:
    _call(libc.mount(_bytes(source), _bytes(target), _bytes(fstype), ctypes.c_ulong(flags), _bytes(data)),
          f"mount {target}")


def unshare(flags: int, what: str) -> None:
    _call(libc.unshare(flags), f"unshare({what})")


def prctl(option: int, arg: int = 0) -> None:
    _call(libc.prctl(option, ctypes.c_ulong(arg), 0, 0, 0), f"prctl({option})")


def _syscall(index: int, what: str, *args) -> None:
    numbers = SYSCALLS.get(os.uname().machine)
    if numbers is None:
        raise OSError(errno.ENOSYS, f"{what}: the fence does not know this machine ({os.uname().machine})")
    _call(libc.syscall(numbers[index], *args), what)


def _write(path: str, text: str) -> None:
    with open(path, "w", encoding="utf-8") as handle:
        handle.write(text)


# -- what every kernel's view holds, found once per launcher ------------------------------------------------
def _inside(path: str, folder: str) -> bool:
    return path == folder or path.startswith(folder.rstrip("/") + "/")


def distribution_closure(names) -> dict:
    """The installed distributions `names` need: themselves and, transitively, every requirement whose marker
    holds here (with the extras a requirement asks for).

    Inputs:
      names: iterable of str, distribution names (those not installed are left out).
    Returns:
      {canonical name: importlib.metadata.Distribution}, each the one this Python imports (first on sys.path).
    """
    from importlib import metadata

    from packaging.requirements import InvalidRequirement, Requirement  # matplotlib requires packaging
    from packaging.utils import canonicalize_name

    found, seen, todo = {}, set(), [(name, "") for name in names]
    while todo:
        name, extra = todo.pop()
        if (canonicalize_name(name), extra) in seen:
            continue
        seen.add((canonicalize_name(name), extra))
        try:
            dist = metadata.distribution(name)
        except metadata.PackageNotFoundError:
            continue
        found[canonicalize_name(name)] = dist
        for text in dist.requires or ():
            try:
                requirement = Requirement(text)
            except InvalidRequirement:  # unreadable metadata: what it names stays out of the view
                continue
            if requirement.marker is None or requirement.marker.evaluate({"extra": extra}):
                todo += [(requirement.name, wanted) for wanted in ("", *requirement.extras)]
    return found


def bind_plan(allowed: set, denied: set, prefix: tuple = ()) -> list:
    """The fewest paths to bind so that every allowed file is there and no denied one.

    Inputs:
      allowed, denied: sets of path tuples ("numpy", "__init__.py"), relative to one site-packages folder (a path in
               both counts as allowed); prefix: the folder (a path tuple) planned, () for the whole.
    Returns:
      list of path tuples, sorted: each holds allowed files and no denied one (a folder whole, with whatever no
      distribution owns in it, such as __pycache__ of its own modules).
    """
    depth = len(prefix) + 1
    allowed_under = {path[:depth] for path in allowed if len(path) >= depth and path[:depth - 1] == prefix}
    denied_under = {path[:d] for path in denied - allowed for d in range(depth, len(path) + 1)}
    plan = []
    for path in sorted(allowed_under):
        if path not in denied_under:
            plan.append(path)
        elif path not in allowed:  # a folder two distributions share: its allowed part only
            plan += bind_plan({p for p in allowed if p[:depth] == path}, {p for p in denied if p[:depth] == path}, path)
    return plan


def _name(dist) -> str:
    """A distribution's name, read from its metadata's headers only (its long description can be large)."""
    from email.parser import HeaderParser

    return HeaderParser().parsestr(dist.read_text("METADATA") or dist.read_text("PKG-INFO") or "")["Name"] or ""


def _files(dist) -> list:
    """The files a distribution installed, as path tuples relative to its folder: RECORD read with csv (as
    importlib.metadata does, without a Path object per file), else what importlib.metadata lists."""
    import csv

    record = dist.read_text("RECORD")
    if record is None:
        return [f.parts for f in dist.files or ()]
    return [tuple(row[0].split("/")) for row in csv.reader(record.splitlines()) if row]


def site_folders(prefixes) -> list:
    """The real paths of the site-packages (and dist-packages) folders of `prefixes` and of the system's Pythons.

    Inputs:
      prefixes: iterable of str, Python install prefixes.
    Returns:
      sorted list of str, the folders that exist.
    """
    import glob
    import site

    folders = site.getsitepackages(list(prefixes)) + [p for pattern in SYSTEM_SITE_GLOBS for p in glob.glob(pattern)]
    return sorted({os.path.realpath(f) for f in folders if os.path.isdir(f)})


def kernel_site_packages(folders, names=KERNEL_DISTRIBUTIONS) -> dict:
    """What each site-packages folder of a kernel's view holds: the files of `names` and their requirements.

    Inputs:
      folders: list of str, real paths of site-packages folders; names: the distributions a kernel needs.
    Returns:
      {folder: [relative path to bind, ...]}, for every folder (empty where none of the closure lives). Not
      bound: every other distribution's files, anything no distribution owns at the top, and .pth files (the
      warm kernel never runs `site` again; an editable install's finder points at a checkout outside the view).
    """
    from importlib import metadata

    needed = {}
    for dist in distribution_closure(names).values():
        needed.setdefault(os.path.realpath(dist.locate_file("")), set()).add(_name(dist))
    plans = {}
    for folder in folders:
        allowed, denied = set(), set()
        for dist in metadata.distributions(path=[folder]):
            files = [p for p in _files(dist) if p and p[0] != ".."]
            if _name(dist) in needed.get(folder, ()):
                allowed.update(p for p in files if not (len(p) == 1 and p[0].endswith(".pth")))
            else:
                denied.update(files)
        plans[folder] = ["/".join(path) for path in bind_plan(allowed, denied)]
    return plans


def _remove_if_mine(folder: str, owner: int) -> None:
    """Remove `folder` at exit, from the process that made it only (not from a forked kernel)."""
    if os.getpid() == owner:
        shutil.rmtree(folder, ignore_errors=True)


def student_side() -> dict:
    """{relative path in site-packages: host path} of the course package's student side (STUDENT_SIDE), wherever
    this Python imports `graders` from (an editable install's checkout included); {} if it has none. The package
    is only looked up, never imported."""
    import importlib.util

    try:
        spec = importlib.util.find_spec("graders")
    except (ImportError, ValueError):
        return {}
    folders = list(spec.submodule_search_locations or ()) if spec else []
    if not folders:
        return {}
    # bound from a copy of the launcher's own, not from the checkout: a bind mount's source path shows in the
    # kernel's /proc/self/mountinfo, and the checkout's path is none of its business
    staging = os.path.join(tempfile.mkdtemp(prefix="nnfs-student-side-"), "graders")
    atexit.register(_remove_if_mine, os.path.dirname(staging), os.getpid())
    os.mkdir(staging, 0o755)
    side = {}
    for name in STUDENT_SIDE:
        source = os.path.join(folders[0], name)
        if os.path.isdir(source):
            shutil.copytree(source, os.path.join(staging, name), ignore=shutil.ignore_patterns("__pycache__"))
        elif os.path.exists(source):
            shutil.copyfile(source, os.path.join(staging, name))
        else:
            continue
        side[f"graders/{name}"] = os.path.join(staging, name)
    return side


def host_view() -> dict:
    """What the kernels' roots are built from, read once: the launcher runs as long as its worker.

    Returns a dict:
      system: [(name, symlink target or None)], the host's top-level system folders that exist;
      pythons: real paths of this Python's install(s) (prefix, base prefix, the interpreter's folder), none
               inside another or inside a system folder;
      links: {path: real path}, for each install path that is a symlink (made as a symlink in the view);
      sites: {site-packages folder in the view: {what of it a kernel sees, as a relative path: its host path}}:
             kernel_site_packages, and in this Python's own folder the student side of `graders` (student_side);
      etc: {name: bytes}, the host files the loader and Python read (ld.so.cache, localtime).
    """
    system = [(name, os.readlink(f"/{name}") if os.path.islink(f"/{name}") else None)
              for name in SYSTEM if os.path.lexists(f"/{name}")]
    covered = [os.path.realpath(f"/{name}") for name, _ in system]
    named = {sys.prefix, sys.base_prefix, sys.exec_prefix, sys.base_exec_prefix,
             os.path.dirname(os.path.realpath(sys.executable))}
    real = sorted({os.path.realpath(p) for p in named}, key=len)
    pythons = []
    for path in real:
        if not any(_inside(path, other) for other in covered + pythons):
            pythons.append(path)
    links = {p: os.path.realpath(p) for p in named if os.path.realpath(p) != p}
    etc = {}
    for name in ("ld.so.cache", "localtime"):
        try:
            with open(f"/etc/{name}", "rb") as handle:
                etc[name] = handle.read()
        except OSError:
            pass
    folders = [f for f in site_folders(named) if any(_inside(f, p) for p in covered + pythons)]
    sites = {folder: {entry: os.path.join(folder, entry) for entry in entries}
             for folder, entries in kernel_site_packages(folders).items()}
    own = os.path.realpath(sysconfig.get_paths()["purelib"])
    if own in sites and not any(entry.split("/")[0] == "graders" for entry in sites[own]):
        sites[own].update(student_side())
    return {"system": system, "pythons": pythons, "links": links, "sites": sites, "etc": etc}


def _own_cgroup(controller: str) -> str | None:
    """This process's cgroup in a v1 hierarchy of `controller` ("" for v2), from /proc/self/cgroup."""
    with open("/proc/self/cgroup", encoding="utf-8") as handle:
        for line in handle:
            _, controllers, path = line.rstrip("\n").split(":", 2)
            if controller in controllers.split(","):
                return path
    return None


def cgroup_bases() -> list[tuple[str, str, str]]:
    """The cgroups a kernel's own can be made in: [(controller, version, folder)] for memory, pids and cpu.

    Each is a child of this process's own cgroup (so the machine's limits on the grader still count), and only
    where that folder is writable: cgroup v1 (one hierarchy per controller), or v2 where this process's cgroup
    may hand the controller to children (in practice: the root cgroup of a container that has its own).
    """
    mounts = []
    with open("/proc/self/mountinfo", encoding="utf-8") as handle:
        for line in handle:
            fields = line.split()
            tail = fields[fields.index("-") + 1:]
            if tail[0] in ("cgroup", "cgroup2"):
                mounts.append((tail[0], fields[3], fields[4], tail[2].split(",")))
    bases = []
    for controller in ("memory", "pids", "cpu"):
        for fstype, root, point, options in mounts:
            if fstype == "cgroup" and controller in options:
                own = _own_cgroup(controller)
                if own is not None and _inside(own, root):
                    folder = os.path.join(point, os.path.relpath(own, root))
                    if os.access(folder, os.W_OK):
                        bases.append((controller, "v1", os.path.normpath(folder)))
                break
        else:
            for fstype, root, point, _ in mounts:
                own = _own_cgroup("") if fstype == "cgroup2" else None
                if own is None or not _inside(own, root):
                    continue
                folder = os.path.normpath(os.path.join(point, os.path.relpath(own, root)))
                try:
                    _write(os.path.join(folder, "cgroup.subtree_control"), f"+{controller}")
                    with open(os.path.join(folder, "cgroup.subtree_control"), encoding="utf-8") as handle:
                        if controller in handle.read().split():
                            bases.append((controller, "v2", folder))
                except OSError:
                    pass
                break
    return bases


def remove_stale_cgroups(bases) -> None:
    """Kernel cgroups a dead launcher left behind (it was SIGKILLed mid-kernel); busy ones stay."""
    for _, _, folder in bases:
        for name in os.listdir(folder):
            if not name.startswith("nnfs-kernel-"):
                continue
            try:
                os.kill(int(name.split("-")[2]), 0)
            except ProcessLookupError:
                try:
                    os.rmdir(os.path.join(folder, name))
                except OSError:
                    pass
            except (ValueError, IndexError, PermissionError):
                continue


# -- the intermediate: cgroups, user and PID namespaces, then the kernel ------------------------------------
def _report(fd: int, **items) -> None:
    os.write(fd, (json.dumps(items) + "\n").encode())


def join_cgroups(bases, limits) -> tuple[list, dict]:
    """Make this kernel's cgroups and move this process into them (the kernel, forked next, stays there).

    Returns ([(folder, its parent)], {"memory": ..., "processes": ..., "cpu": ...}: what is in force).
    """
    name = f"nnfs-kernel-{LAUNCHER_PID}-{os.getpid()}"
    settings = {
        ("memory", "v1"): [("memory.limit_in_bytes", limits["memory_bytes"]),
                           ("memory.memsw.limit_in_bytes", limits["memory_bytes"])],
        ("memory", "v2"): [("memory.max", limits["memory_bytes"]), ("memory.swap.max", 0)],
        ("pids", "v1"): [("pids.max", limits["processes"])],
        ("pids", "v2"): [("pids.max", limits["processes"])],
        ("cpu", "v1"): [("cpu.cfs_period_us", CPU_PERIOD_US), ("cpu.cfs_quota_us", CPU_PERIOD_US)],
        ("cpu", "v2"): [("cpu.max", f"{CPU_PERIOD_US} {CPU_PERIOD_US}")],
    }
    optional = {"memory.memsw.limit_in_bytes", "memory.swap.max"}  # there only with swap accounting on
    joined, in_force = [], {}
    for controller, version, base in bases:
        folder = os.path.join(base, name)
        try:
            os.mkdir(folder, 0o755)
        except OSError:
            continue
        try:
            for file, value in settings[(controller, version)]:
                try:
                    _write(os.path.join(folder, file), str(value))
                except OSError:
                    if file not in optional:
                        raise
            _write(os.path.join(folder, "cgroup.procs"), str(os.getpid()))
        except OSError:
            os.rmdir(folder)
            continue
        joined.append((folder, base))
        in_force[controller] = f"cgroup {version} " + ", ".join(
            f"{file}={value}" for file, value in settings[(controller, version)] if file not in optional)
    return joined, in_force


def leave_cgroups(joined, remove: bool) -> None:
    """Move this process back to where it came from; with remove, delete the (then empty) kernel cgroups."""
    for folder, base in joined:
        try:
            _write(os.path.join(base, "cgroup.procs"), str(os.getpid()))
        except OSError:
            pass
        for _ in range(200 if remove else 0):  # the kernel's processes leave their cgroup a moment after exit
            try:
                os.rmdir(folder)
                break
            except FileNotFoundError:
                break
            except OSError:
                time.sleep(0.005)


def enter_user_namespace() -> None:
    """As an ordinary user: a user namespace in which this process keeps its uid and gid (mapped to
    themselves, nothing else mapped) and gets the capabilities to build the kernel's view."""
    uid, gid = os.geteuid(), os.getegid()
    unshare(CLONE_NEWUSER, "CLONE_NEWUSER")
    _write("/proc/self/setgroups", "deny")
    _write("/proc/self/uid_map", f"{uid} {uid} 1\n")
    _write("/proc/self/gid_map", f"{gid} {gid} 1\n")


def intermediate(request: dict, report_fd: int, view: dict, bases) -> None:
    """The launcher's child: sets up what the kernel is forked into, forks it, waits; never returns."""
    code = 1
    try:
        os.setsid()
        prctl(PR_SET_PDEATHSIG, signal.SIGTERM)  # the launcher died: stop the kernel (see on_stop below)
        if os.getppid() != LAUNCHER_PID:
            return
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)
        devnull = os.open(os.devnull, os.O_RDWR)
        for fd in (0, 1, 2):
            os.dup2(devnull, fd)
        os.close(devnull)
        fenced = request.get("fence", True)
        joined, in_force = join_cgroups(bases, request["limits"])
        try:
            if fenced:
                if os.geteuid() != 0:
                    enter_user_namespace()
                unshare(CLONE_NEWPID, "CLONE_NEWPID")
        except OSError as exc:
            _report(report_fd, error=str(exc), fence_failed=True)
            leave_cgroups(joined, remove=True)
            return
        stops = (signal.SIGTERM, signal.SIGHUP, signal.SIGINT)
        signal.pthread_sigmask(signal.SIG_BLOCK, stops)
        kernel = os.fork()
        if kernel == 0:
            become_kernel(request, report_fd, view, fenced, stops)
        leave_cgroups(joined, remove=False)

        def on_stop(*_):
            os.kill(kernel, signal.SIGKILL)

        for stop in stops:
            signal.signal(stop, on_stop)
        signal.pthread_sigmask(signal.SIG_UNBLOCK, stops)
        _report(report_fd, kernel=kernel, memory=in_force.get("memory", "RLIMIT_AS (per process)"),
                processes=in_force.get("pids", "RLIMIT_NPROC" if fenced or request["uid"] is not None else "none"),
                cpu=in_force.get("cpu", "RLIMIT_CPU (CPU seconds only)"))
        os.close(report_fd)
        _, status = os.waitpid(kernel, 0)
        if not fenced:  # no PID namespace: what the kernel left in its process group goes with it
            try:
                os.killpg(os.getpgid(0), signal.SIGKILL)
            except OSError:
                pass
        leave_cgroups(joined, remove=True)
        code = os.waitstatus_to_exitcode(status)
        code = 128 - code if code < 0 else code
    except BaseException:  # noqa: BLE001 - nothing of this process may run on into the launcher's loop
        code = 1
    finally:
        os._exit(code)


# -- the kernel: its own root, no privileges ----------------------------------------------------------------
def _mkdirs(root: str, path: str) -> str:
    """root + path, its missing folders made on the view's own tmpfs; never through a symlink."""
    target = root
    for part in path.strip("/").split("/"):
        target = os.path.join(target, part)
        if os.path.islink(target):
            raise OSError(errno.ELOOP, f"the view's {path} would go through a symlink")
        if not os.path.isdir(target):
            os.mkdir(target, 0o755)
    return target


def _locked_flags(fd: int) -> int:
    """The mount flags of an open path that a user namespace may not drop (nosuid, nodev, noexec, atime)."""
    flags = os.fstatvfs(fd).f_flag
    kept = {os.ST_NOSUID: MS_NOSUID, os.ST_NODEV: MS_NODEV, os.ST_NOEXEC: MS_NOEXEC,
            os.ST_NOATIME: MS_NOATIME, os.ST_NODIRATIME: MS_NODIRATIME, os.ST_RELATIME: MS_RELATIME}
    result = 0
    for stat_flag, mount_flag in kept.items():
        if flags & stat_flag:
            result |= mount_flag
    return result if result & (MS_NOATIME | MS_RELATIME) else result | MS_STRICTATIME


def _bind(fd: int, target: str, writable: bool = False) -> None:
    """Bind the folder or file open as fd (O_PATH) at target, read-only unless writable, never setuid."""
    mount(f"/proc/self/fd/{fd}", target, None, MS_BIND)
    mount(None, target, None, MS_BIND | MS_REMOUNT | MS_NOSUID | MS_NODEV | _locked_flags(fd)
          | (0 if writable else MS_RDONLY))


def _open_path(path: str) -> int:
    return os.open(path, os.O_PATH | os.O_CLOEXEC)


def etc_files(view: dict, uid: int, gid: int, home: str) -> dict:
    """The kernel's /etc: what the dynamic loader and Python read, and a passwd and group naming its uid."""
    users = [("root", 0, 0, "/"), ("sandbox", uid, gid, home), ("nobody", 65534, 65534, "/nonexistent")]
    passwd = "".join(f"{name}:x:{u}:{g}::{h}:/usr/sbin/nologin\n" for name, u, g, h in users if name == "root"
                     or u != 0)
    groups = "".join(f"{name}:x:{g}:\n" for name, g in (("root", 0), ("sandbox", gid), ("nogroup", 65534))
                     if name == "root" or g != 0)
    return {**view["etc"], "passwd": passwd.encode(), "group": groups.encode(),
            "nsswitch.conf": b"passwd: files\ngroup: files\nshadow: files\nhosts: files\n",
            "hosts": f"127.0.0.1 localhost\n::1 localhost\n127.0.1.1 {HOSTNAME}\n".encode(),
            "hostname": f"{HOSTNAME}\n".encode()}


def _open_site_entries(view: dict) -> dict:
    """{host path: O_PATH fd, or the symlink's target for a symlink} of every site-packages entry a kernel sees;
    one removed since the launcher started is left out."""
    opened = {}
    for entries in view["sites"].values():
        for path in entries.values():
            try:
                opened[path] = os.readlink(path) if os.path.islink(path) else _open_path(path)
            except FileNotFoundError:
                continue
    return opened


def fill_site_packages(target: str, entries: dict) -> None:
    """Cover a site-packages folder of the view with an empty tmpfs holding only the given entries, read-only.

    Inputs:
      target: str, the folder in the new root; entries: {relative path: O_PATH fd of the host's file or folder,
              or str: the target of a symlink}.
    """
    mount("nnfs-site-packages", target, "tmpfs", MS_NOSUID | MS_NODEV, "size=1m,mode=755")
    for relative, source in entries.items():
        point = os.path.join(_mkdirs(target, os.path.dirname(relative)) if "/" in relative else target,
                             os.path.basename(relative))
        if isinstance(source, str):
            os.symlink(source, point)
            continue
        if stat.S_ISDIR(os.fstat(source).st_mode):
            os.mkdir(point, 0o755)
        else:
            os.close(os.open(point, os.O_CREAT | os.O_WRONLY, 0o644))
        _bind(source, point)
    mount(None, target, None, MS_REMOUNT | MS_RDONLY | MS_NOSUID | MS_NODEV)


def build_root(request: dict, view: dict, uid: int, gid: int) -> None:
    """In a fresh mount namespace: make a tmpfs the root holding only the kernel's view, and detach the old one.

    The view: the system folders and the Python install(s) read-only at their own paths, each of their
    site-packages folders holding only what kernels need (view["sites"]: NumPy, matplotlib, ipykernel and their
    requirements, and the student side of `graders`; every other installed module does not exist for the
    kernel), a generated /etc, a /dev of
    null, zero, full, random and urandom, a /proc of the kernel's PID namespace, private size-capped tmpfs on
    /tmp, /var/tmp and /dev/shm, and the sandbox folder (request["root"]) read-write at its own path.
    """
    sandbox = os.path.realpath(request["root"])
    binds = [(p, False) for p in view["pythons"]] + [(sandbox, True)]
    for hidden in request.get("hide", ()):
        hidden = os.path.realpath(hidden)
        exposed = [p for p, _ in binds[:-1] if _inside(hidden, p)]
        if exposed:
            raise OSError(errno.EPERM, f"the Python install {exposed[0]} holds {hidden}, which a kernel may not "
                                       "see: grade with a Python installed outside the course folder")
    for (path, _), (other, _) in ((a, b) for a in binds for b in binds if a != b):
        if _inside(path, other):
            raise OSError(errno.EINVAL, f"the view cannot hold {path} inside {other}")
    # open everything first: the new root is staged on /tmp, over the host's /tmp (where sandboxes live)
    opened = {path: _open_path(path) for path, _ in binds}
    opened.update({f"/{name}": _open_path(f"/{name}") for name, target in view["system"] if target is None})
    opened.update({f"/dev/{name}": _open_path(f"/dev/{name}") for name in DEVICES if os.path.exists(f"/dev/{name}")})
    site_entries = _open_site_entries(view)
    new = "/tmp"
    try:
        mount("nnfs-root", new, "tmpfs", MS_NOSUID | MS_NODEV, "size=8m,nr_inodes=4096,mode=755")
        for name, target in view["system"]:
            if target is not None:
                os.symlink(target, f"{new}/{name}")
            else:
                os.mkdir(f"{new}/{name}", 0o755)
                _bind(opened[f"/{name}"], f"{new}/{name}")
        os.mkdir(f"{new}/etc", 0o755)
        for name, content in etc_files(view, uid, gid, request["env"].get("HOME", "/")).items():
            with open(f"{new}/etc/{name}", "wb") as handle:
                handle.write(content)
        os.mkdir(f"{new}/dev", 0o755)
        mount("nnfs-dev", f"{new}/dev", "tmpfs", MS_NOSUID | MS_NOEXEC, "size=64k,nr_inodes=64,mode=755")
        for name in DEVICES:
            if f"/dev/{name}" in opened:
                os.close(os.open(f"{new}/dev/{name}", os.O_CREAT | os.O_WRONLY, 0o666))
                mount(f"/proc/self/fd/{opened[f'/dev/{name}']}", f"{new}/dev/{name}", None, MS_BIND)
        for name, target in (("fd", "/proc/self/fd"), ("stdin", "/proc/self/fd/0"), ("stdout", "/proc/self/fd/1"),
                             ("stderr", "/proc/self/fd/2")):
            os.symlink(target, f"{new}/dev/{name}")
        for scratch in ("dev/shm", "tmp", "var/tmp"):
            mount("nnfs-scratch", _mkdirs(new, scratch), "tmpfs", MS_NOSUID | MS_NODEV, f"{SCRATCH},mode=1777")
        mount(None, f"{new}/dev", None, MS_REMOUNT | MS_RDONLY | MS_NOSUID | MS_NOEXEC)
        mount("proc", _mkdirs(new, "proc"), "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC)
        for path, writable in sorted(binds, key=lambda b: len(b[0])):
            _bind(opened[path], _mkdirs(new, path), writable)
        for folder, entries in view["sites"].items():
            fill_site_packages(_mkdirs(new, folder), {entry: site_entries[source] for entry, source in entries.items()
                                                      if source in site_entries})
        for link, target in view["links"].items():
            if not os.path.lexists(new + link):
                _mkdirs(new, os.path.dirname(link))
                os.symlink(target, new + link)
        os.chdir(new)
        _syscall(0, "pivot_root", b".", b".")
        _call(libc.umount2(b".", MNT_DETACH), "detach the old root")
        os.chdir("/")
        mount(None, "/", None, MS_REMOUNT | MS_RDONLY | MS_NOSUID | MS_NODEV)
    finally:
        for fd in [*opened.values(), *(e for e in site_entries.values() if isinstance(e, int))]:
            os.close(fd)


def _visible(module) -> bool:
    """Whether a module's file (or, for a namespace package, one of its folders) exists in this view; a module
    with neither (built in, frozen, made at run time) counts as visible."""
    file = getattr(module, "__file__", None)
    if isinstance(file, str):
        return os.path.exists(file)
    paths = getattr(module, "__path__", None)
    try:
        return paths is None or any(os.path.isdir(p) for p in list(paths))
    except Exception:  # noqa: BLE001 - a namespace path that cannot be listed: keep the module
        return True


def forget_unseen_modules() -> None:
    """Drop what the launcher loaded from files the kernel's view does not hold (an editable install's finder,
    setuptools' distutils shim, ...): their modules, the import hooks they installed and the sys.path entries
    that name nothing in the view, so that the view alone decides what the kernel can import."""
    unseen = {name for name, module in list(sys.modules.items()) if not _visible(module)}
    sys.meta_path[:] = [f for f in sys.meta_path if getattr(f, "__module__", None) not in unseen]
    sys.path_hooks[:] = [h for h in sys.path_hooks if getattr(h, "__module__", None) not in unseen]
    sys.path[:] = [p for p in sys.path if os.path.exists(p)]
    for name in unseen:
        del sys.modules[name]
    sys.path_importer_cache.clear()


def bring_up_loopback() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        fcntl.ioctl(sock, SIOCSIFFLAGS, struct.pack("16sh22x", b"lo", IFF_UP | IFF_LOOPBACK | IFF_RUNNING))


def drop_privileges(uid) -> None:
    """No capabilities left, none to gain (no setuid, no file capabilities, no new user namespaces when in
    one of ours), and as root: the sandbox uid."""
    if os.path.exists("/proc/sys/user/max_user_namespaces") and os.geteuid() != 0:
        try:  # inside our user namespace this limit is its own: no nested ones, and so none of their privileges
            _write("/proc/sys/user/max_user_namespaces", "0")
        except OSError:
            pass
    for capability in range(64):
        if libc.prctl(PR_CAPBSET_DROP, ctypes.c_ulong(capability), 0, 0, 0) != 0:
            if ctypes.get_errno() == errno.EINVAL:  # past the last capability this kernel knows
                break
    libc.prctl(PR_CAP_AMBIENT, ctypes.c_ulong(PR_CAP_AMBIENT_CLEAR_ALL), 0, 0, 0)
    prctl(PR_SET_NO_NEW_PRIVS, 1)
    if uid is not None:
        os.setgroups([])
        os.setgid(uid)
        os.setuid(uid)  # all of root's capabilities go with the uid
    else:
        header = struct.pack("Ii", 0x20080522, 0)  # _LINUX_CAPABILITY_VERSION_3, this thread
        _syscall(1, "capset", ctypes.c_char_p(header), ctypes.c_char_p(bytes(24)))


def apply_rlimits(limits: dict, own_uid: bool) -> None:
    """The per-process limits; the process cap only where its count is the kernel's own (the sandbox uid, or
    our user namespace, where processes are counted per namespace), not the whole of the grader's user."""
    for limit, value in ((resource.RLIMIT_AS, limits["memory_bytes"]), (resource.RLIMIT_CPU, limits["cpu_seconds"]),
                         (resource.RLIMIT_FSIZE, limits["file_bytes"]), (resource.RLIMIT_NOFILE, 1024),
                         (resource.RLIMIT_CORE, 0)):
        resource.setrlimit(limit, (value, value))
    if own_uid:
        resource.setrlimit(resource.RLIMIT_NPROC, (limits["processes"], limits["processes"]))


def become_kernel(request: dict, report_fd: int, view: dict, fenced: bool, stops) -> None:
    """The intermediate's child (PID 1 of its namespace when fenced): fence in, run the kernel; never returns."""
    code = 1
    try:
        for stop in stops:
            signal.signal(stop, signal.SIG_DFL)
        signal.signal(signal.SIGINT, signal.default_int_handler)
        signal.pthread_sigmask(signal.SIG_UNBLOCK, stops)
        uid = request["uid"]
        try:
            described = {"view": "the host's (unfenced)", "namespaces": "none", "uid": uid}
            if fenced:
                unshare(CLONE_NEWNS | CLONE_NEWNET | CLONE_NEWIPC | CLONE_NEWUTS, "mount, network, IPC, UTS")
                mount(None, "/", None, MS_REC | MS_PRIVATE)
                ids = (uid, uid) if uid is not None else (os.geteuid(), os.getegid())
                build_root(request, view, *ids)
                forget_unseen_modules()
                bring_up_loopback()
                _call(libc.sethostname(HOSTNAME.encode(), len(HOSTNAME)), "sethostname")
                described = {"view": "own root (pivot_root)", "uid": ids[0],
                             "namespaces": "mount, PID, IPC, network (loopback only), UTS"
                                           + (", user" if uid is None else "")}
                drop_privileges(uid)
            elif uid is not None:
                drop_privileges(uid)
            apply_rlimits(request["limits"], own_uid=fenced or uid is not None)
            prctl(PR_SET_PDEATHSIG, signal.SIGKILL)  # after the uid change, which clears it
        except OSError as exc:
            _report(report_fd, error=str(exc), fence_failed=fenced)
            return
        _report(report_fd, **described)
        os.close(report_fd)
        if request.get("probe"):
            code = 0
            return
        os.closerange(3, resource.getrlimit(resource.RLIMIT_NOFILE)[0])
        os.chdir(request["cwd"])
        os.environ.clear()
        os.environ.update(request["env"])
        if "numpy" in sys.modules:  # NumPy's global RNG was seeded once, in the launcher: every kernel its own
            sys.modules["numpy"].random.seed()
        from ipykernel.kernelapp import IPKernelApp
        sys.argv = ["ipykernel_launcher", *request["argv"]]
        IPKernelApp.launch_instance(argv=request["argv"])
        code = 0
    except BaseException:  # noqa: BLE001 - the kernel's process never returns into the launcher's code
        code = 1
    finally:
        os._exit(code)


# -- the launcher ---------------------------------------------------------------------------------------------
def _read_reports(fd: int, seconds: float) -> dict:
    """Everything the intermediate and the kernel report (one JSON object a line), until both have closed."""
    data, deadline = b"", time.monotonic() + seconds
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0 or not select.select([fd], [], [], remaining)[0]:
            return {"error": f"the kernel was not ready to start within {seconds} s"}
        chunk = os.read(fd, 65536)
        if not chunk:
            break
        data += chunk
    merged = {}
    for line in data.decode(errors="replace").splitlines():
        try:
            merged.update(json.loads(line))
        except ValueError:
            continue
    return merged


def start_kernel(request: dict, view: dict, bases) -> dict:
    """Fork the intermediate for one request; the answer for the worker."""
    read_fd, report_fd = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(read_fd)
        intermediate(request, report_fd, view, bases)
    os.close(report_fd)
    try:
        report = _read_reports(read_fd, REPORT_SECONDS)
    finally:
        os.close(read_fd)
    if "error" in report or "kernel" not in report:
        try:
            os.kill(pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
        return {"error": report.get("error", "the kernel's process did not start"),
                "fence_failed": bool(report.get("fence_failed"))}
    fence = {key: report[key] for key in ("view", "namespaces", "uid", "memory", "processes", "cpu") if key in report}
    return {"pid": pid, "kernel": report["kernel"], "fence": fence}


def _reap(*_):
    while True:
        try:
            pid, _status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return


def main():
    prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    if sys.path and sys.path[0] in ("", os.getcwd()):
        del sys.path[0]
    for module in WARM:
        try:
            __import__(module)
        except Exception:  # noqa: BLE001 - not installed: the kernel imports it itself, if it needs it
            pass
    view = host_view()
    try:
        bases = cgroup_bases()
        remove_stale_cgroups(bases)
    except OSError:
        bases = []
    signal.signal(signal.SIGCHLD, _reap)
    out = sys.stdout
    out.write(json.dumps({"ready": os.getpid()}) + "\n")
    out.flush()
    for line in sys.stdin:
        try:
            answer = start_kernel(json.loads(line), view, bases)
        except Exception as exc:  # noqa: BLE001 - the worker is told
            answer = {"error": f"{type(exc).__name__}: {exc}", "fence_failed": False}
        out.write(json.dumps(answer) + "\n")
        out.flush()


if __name__ == "__main__":
    main()
