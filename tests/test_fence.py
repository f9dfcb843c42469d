"""The fence, proven from inside a kernel, as root and as an ordinary user.

A kernel is started the way the engine starts one (a KernelSession on a notebook's folder, with the course
folders to hide), while a second copy of the course is planted elsewhere on the disk. Code in the kernel then
searches its whole view for any trace of a course (source/, solutions/, submitted/, a gradebook.db, the planted
copy, anything under /root or /home/ but the Python install it runs from) and looks at its processes, its
network and its scratch folders; it leaves a process running, which must die with the kernel; a second kernel
must find nothing the first one left in /tmp, /var/tmp or /dev/shm.

As an ordinary user the same probe runs through `runuser` (this module is also the probe's script: `python -m
tests.test_fence PROBE-ARGS-JSON`), from a scratch copy of the grader that user owns, with a Python that user
can run: the project's own if it can, else a venv of the system's Python of the same version whose
site-packages are hard links to the project's.
"""
from __future__ import annotations

import json
import os
import pwd
import secrets
import shlex
import shutil
import site
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

pytestmark = [pytest.mark.e2e]

TEST_USER = "nnfs-fence-test"
REPO = Path(__file__).resolve().parent.parent
#: What marks a course's files: found anywhere in a kernel's view (outside its Python install and the system's
#: read-only folders), the fence leaks
COURSE_MARKS = ("source", "solutions", "gradebook.db", "submitted")
MAX_ENTRIES = 2_000_000
#: The read-only system folders of a kernel's view (their content is the machine's software, not searched for
#: COURSE_MARKS: "resources" holds "source"), and the course's assignment folders, searched for everywhere
SYSTEM = ("usr", "bin", "sbin", "lib", "lib32", "lib64", "libx32")
#: Marks of a course in the read-only folders too, as whole names ("source" is common in public software there)
READONLY_MARKS = ("gradebook.db", "solutions", "submitted")
#: What of the course's package a kernel's view may hold (what ships to students); any other part is a leak
STUDENT_SIDE = ("__init__.py", "checks", "visible")
#: What a kernel imports (the course allows NumPy, matplotlib and the standard library; ipykernel is the kernel;
#: the checks' own classes, which requests carry by reference, are on the student side of `graders`)
ALLOWED_IMPORTS = ("numpy", "matplotlib.pyplot", "ipykernel", "cloudpickle", "json", "sqlite3", "ctypes",
                   "graders.visible")
#: What the grader's Python has (scipy and sklearn where installed) and a kernel must not import in any way
DENIED_IMPORTS = ("scipy", "sklearn", "nbgrader", "jupyterlab", "pytest", "graders.hidden", "graders.engine",
                  "graders.tooling", "setuptools")
ASSIGNMENTS = sorted(p.name for p in (REPO / "source").iterdir() if p.is_dir()) if (REPO / "source").is_dir() else []

#: Runs inside the kernel. Inputs: ARGS (installs, marks, token, sandbox); prints one JSON object.
PROBE = r'''
import json, os, socket, subprocess, sys
ARGS = json.loads(__ARGS__)
installs, token, sandbox = ARGS["installs"], ARGS["token"], ARGS["sandbox"]
readonly = installs + ARGS["system"]

def inside(path, folder):
    return path == folder or path.startswith(folder.rstrip("/") + "/")

def ancestor(path):  # a folder on the way to a Python install
    return any(inside(install, path) for install in installs)

found, chains, entries, truncated = [], {}, 0, False
for top, dirs, files in os.walk("/", followlinks=False):
    if top == "/":
        dirs[:] = [d for d in dirs if d != "proc"]  # looked at below
    if ancestor(top) and not any(inside(top, install) for install in installs):
        chains[top] = sorted(dirs + files)
    for name in dirs + files:
        entries += 1
        path = os.path.join(top, name)
        if any(inside(path, folder) for folder in readonly):  # public software: "resources", "docs/source"...
            parts = path.split("/")
            course = parts[parts.index("graders") + 1:][:1] if "graders" in parts else []
            marked = (token in path or name in ARGS["assignments"] or name in ARGS["readonly_marks"]
                      or any(part not in ARGS["student_side"] for part in course))
        else:
            marked = (any(mark in path for mark in ARGS["marks"]) or token in path or name in ARGS["assignments"]
                      or (inside(path, "/root") or path.startswith("/home/")) and not ancestor(path))
        if marked and len(found) < 50:
            found.append(path)
    if entries > ARGS["max_entries"]:
        truncated = True
        break

processes = {}
for pid in (p for p in os.listdir("/proc") if p.isdigit()):
    try:
        stat = open(f"/proc/{pid}/stat").read()
        processes[int(pid)] = int(stat.rsplit(")", 1)[1].split()[1])
    except (OSError, ValueError):
        pass

mounts = {}
for line in open("/proc/self/mountinfo"):
    fields = line.split()
    mounts[fields[4]] = fields[fields.index("-") + 1]
scratch = {}
for folder in ("/tmp", "/var/tmp", "/dev/shm"):
    stat = os.statvfs(folder)
    # its own sandbox folder, and the way to a Python install that lives there (a course cloned into /tmp), are
    # part of the view; anything else in a scratch folder is a note left behind
    on_the_way = [sandbox, *installs]
    scratch[folder] = {"type": mounts.get(folder), "bytes": stat.f_blocks * stat.f_frsize,
                       "entries": sorted(e for e in os.listdir(folder)
                                         if not any(inside(p, os.path.join(folder, e)) for p in on_the_way))}

writable = []
for install in installs:
    try:
        with open(os.path.join(install, f"nnfs-probe-{token}"), "w"):
            writable.append(install)
    except OSError:
        pass

with socket.socket() as server:
    server.bind(("127.0.0.1", 0))
    server.listen()
    try:
        socket.create_connection(server.getsockname(), timeout=2).close()
        loopback = True
    except OSError:
        loopback = False
try:
    socket.create_connection(("1.1.1.1", 53), timeout=3).close()
    outside = "connected"
except OSError as exc:
    outside = f"{type(exc).__name__}: {exc}"

# imports: what the course allows works; nothing else exists, by a computed name or with every site folder of
# the view put back on sys.path
import importlib, io
imports = {}
for name in ARGS["allowed_imports"] + ARGS["denied_imports"]:
    try:
        importlib.import_module(name)
        imports[name] = "ok"
    except ImportError as exc:
        imports[name] = f"{type(exc).__name__}: {exc}"
sys.path.extend(ARGS["sites"])
for name in ARGS["denied_imports"]:
    try:
        __import__("" + name)
        imports[f"{name} (site folders on sys.path)"] = "ok"
    except ImportError as exc:
        imports[f"{name} (site folders on sys.path)"] = f"{type(exc).__name__}: {exc}"
import matplotlib.pyplot as plt
figure, axes = plt.subplots()
axes.plot([0, 1], [1, 0])
png = io.BytesIO()
figure.savefig(png, format="png")
plt.close(figure)
sites = {folder: sorted(os.listdir(folder)) if os.path.isdir(folder) else None for folder in ARGS["sites"]}
try:
    import graders
    course_package = sorted(os.listdir(os.path.dirname(graders.__file__)))
except ImportError as exc:
    course_package = f"{type(exc).__name__}: {exc}"
unseen_modules = sorted(name for name, module in sys.modules.items()
                        if isinstance(getattr(module, "__file__", None), str) and not os.path.exists(module.__file__))

caps = [line.split()[1] for line in open("/proc/self/status") if line.startswith("CapEff")]
if ARGS["leave"]:
    for folder in ("/tmp", "/var/tmp", "/dev/shm"):
        open(os.path.join(folder, f"note-{token}"), "w").write("left by the previous kernel")
    subprocess.Popen([sys.executable, "-c", "import time; time.sleep(3600)", f"leftover-{token}"],
                     start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
print(json.dumps({"found": found, "chains": chains, "entries": entries, "truncated": truncated,
                  "processes": processes, "interfaces": [name for _, name in socket.if_nameindex()],
                  "loopback": loopback, "outside": outside, "scratch": scratch, "writable_installs": writable,
                  "uid": os.getuid(), "cap_eff": caps[0] if caps else None, "imports": imports,
                  "png": png.getvalue()[:8].hex(), "sites": sites, "unseen_modules": unseen_modules,
                  "graders": course_package}))
'''


# -- the probe (runs in the process that starts kernels: the test's, or the ordinary user's) -------------------
def installs() -> list[str]:
    """The real paths of this Python's install(s), which every kernel's view holds read-only."""
    return sorted({os.path.realpath(p) for p in (sys.prefix, sys.base_prefix, sys.exec_prefix, sys.base_exec_prefix)})


def _leftovers(token: str) -> list[int]:
    """Pids of the process the probe left running, as the host sees them."""
    pids = []
    for pid in (p for p in os.listdir("/proc") if p.isdigit()):
        try:
            if f"leftover-{token}".encode() in Path(f"/proc/{pid}/cmdline").read_bytes():
                pids.append(int(pid))
        except OSError:
            continue
    return pids


def site_plan() -> dict:
    """{site-packages folder: the top-level names a kernel's view of it holds}, as the launcher plans them."""
    from graders.engine.in_kernel.launcher import host_view

    return {folder: sorted({entry.split("/")[0] for entry in entries}) for folder, entries in host_view()["sites"].items()}


def _run_probe(session, token: str, leave: bool, assignments: list[str]) -> dict:
    args = json.dumps({"installs": installs(), "marks": list(COURSE_MARKS), "token": token, "leave": leave,
                       "sandbox": str(session.root), "max_entries": MAX_ENTRIES, "assignments": assignments,
                       "system": [f"/{name}" for name in SYSTEM if os.path.isdir(f"/{name}")],
                       "readonly_marks": list(READONLY_MARKS), "allowed_imports": list(ALLOWED_IMPORTS),
                       "student_side": list(STUDENT_SIDE),
                       "denied_imports": list(DENIED_IMPORTS), "sites": list(site_plan())})
    status, outputs = session.run(PROBE.replace("__ARGS__", repr(args)), timeout=300)
    text = "".join(o.get("text", "") for o in outputs if o.get("output_type") == "stream")
    if status != "ok" or not text.strip():
        raise AssertionError(f"the probe failed in the kernel ({status}): {outputs}")
    return json.loads(text.strip().splitlines()[-1])


def probe_fence(hide: list[str], token: str, assignments: list[str]) -> dict:
    """Start a kernel as the engine does, probe its view, leave a process and notes behind, stop it; then a
    second kernel looks for the notes. Returns what was found (see check_fence_findings)."""
    from graders.engine.sandbox import GradingLimits, KernelSession

    notebook = Path(tempfile.mkdtemp(prefix="nnfs-fence-notebook-"))
    (notebook / "notebook.ipynb").write_text("{}", encoding="utf-8")
    try:
        session = KernelSession(notebook, limits=GradingLimits(), hide=tuple(hide))
        try:
            first = _run_probe(session, token, leave=True, assignments=assignments)
            fence = session.fence
            # the grader reaches the kernel's sockets through its own links, not through the kernel's folder
            client_outside = not os.path.realpath(session.client.ip).startswith(str(session.root) + "/")
            deadline = time.monotonic() + 10
            while not _leftovers(token) and time.monotonic() < deadline:
                time.sleep(0.1)
            running = _leftovers(token)
        finally:
            session.close()
        gone_after = _leftovers(token)
        session = KernelSession(notebook, limits=GradingLimits(), hide=tuple(hide))
        try:
            second = _run_probe(session, token, leave=False, assignments=assignments)
        finally:
            session.close()
    finally:
        shutil.rmtree(notebook, ignore_errors=True)
    return {"first": first, "second": second, "fence": fence, "client_outside": client_outside,
            "leftover_running": running,
            "leftover_after_stop": gone_after, "installs": installs(), "euid": os.geteuid(),
            "site_plan": site_plan(), "grader_imports": [name for name in DENIED_IMPORTS if _importable(name)]}


def _importable(name: str) -> bool:
    """Whether this (the grader's) Python finds the module `name`."""
    import importlib.util

    try:
        return importlib.util.find_spec(name) is not None
    except ImportError:
        return False


def check_fence_findings(result: dict) -> None:
    """What must hold of a fenced kernel, as root and as an ordinary user."""
    first, second = result["first"], result["second"]
    assert not first["truncated"] and first["entries"] > 1000, first["entries"]
    assert first["found"] == [], f"the kernel sees course files or home folders: {first['found']}"
    for folder, entries in first["chains"].items():  # on the way to the Python install: nothing but the way
        on_the_way = {os.path.relpath(i, folder).split("/")[0] for i in result["installs"]
                      if i.startswith(folder.rstrip("/") + "/")}
        if folder != "/":
            # the kernel's own sandbox folder (its working copy) may sit on the same way, e.g. in /tmp
            own = {e for e in entries if e.startswith("nnfs-sandbox-")}
            assert len(own) <= 1 and set(entries) - own == on_the_way, (folder, entries)
    assert first["writable_installs"] == []
    # its own PID namespace: it is PID 1, and everything else in /proc is its own child or grandchild
    processes = {int(pid): parent for pid, parent in first["processes"].items()}
    assert processes.get(1) == 0, processes
    for pid in processes:
        seen = set()
        while pid != 1:
            assert pid in processes and pid not in seen, f"process {pid} is not the kernel's: {processes}"
            seen.add(pid)
            pid = processes[pid]
    assert first["interfaces"] == ["lo"] and first["loopback"], first
    assert first["outside"] != "connected"
    for probe in (first, second):
        for folder, seen in probe["scratch"].items():
            assert seen["type"] == "tmpfs" and 0 < seen["bytes"] <= 256 * 2**20, (folder, seen)
    assert all(seen["entries"] == [] for seen in first["scratch"].values()), first["scratch"]
    assert all(seen["entries"] == [] for seen in second["scratch"].values()), "notes of the previous kernel"
    assert first["cap_eff"] == "0000000000000000"
    check_kernel_imports(result)
    assert result["client_outside"]
    assert len(result["leftover_running"]) == 1, "the probe's leftover process did not start"
    assert result["leftover_after_stop"] == [], "a process outlived its kernel"
    fence = result["fence"]
    assert fence["view"] == "own root (pivot_root)" and "PID" in fence["namespaces"], fence
    if result["euid"] == 0:
        assert 61000 <= first["uid"] <= 61999 and fence["uid"] == first["uid"]
    else:
        assert "user" in fence["namespaces"] and first["uid"] == result["euid"]


def check_kernel_imports(result: dict) -> None:
    """The kernel imports NumPy, matplotlib, ipykernel and the standard library, and nothing else the grader's
    Python has: its site-packages folders hold only what the launcher planned, none of it the course's."""
    first = result["first"]
    # the test proves something only where the grader itself has what the kernel must not
    assert {"nbgrader", "graders.hidden", "graders.engine"} <= set(result["grader_imports"]), result
    for name in ALLOWED_IMPORTS:
        assert first["imports"][name] == "ok", (name, first["imports"][name])
    assert first["png"] == "89504e470d0a1a0a", "matplotlib did not draw a PNG"
    for name in result["grader_imports"]:
        for attempt in (name, f"{name} (site folders on sys.path)"):
            assert first["imports"][attempt].startswith("ModuleNotFoundError"), (attempt, first["imports"][attempt])
    assert first["unseen_modules"] == [], "the kernel holds modules loaded from files outside its view"
    assert any(first["sites"].values()), first["sites"]
    for folder, listing in first["sites"].items():
        assert listing is None or listing == result["site_plan"][folder], (folder, listing)
        for entry in listing or ():
            assert not entry.endswith(".pth") and not entry.startswith(
                ("nnfs", "__editable__", "nbgrader", "scipy", "sklearn", "jupyterlab", "pytest")), entry
    assert first["graders"] == sorted(STUDENT_SIDE), first["graders"]


# -- a second course copy, and an ordinary user ------------------------------------------------------------
@pytest.fixture(scope="module")
def planted():
    """A second copy of the course elsewhere, readable by everyone: (its folder, a token in its path)."""
    token = secrets.token_hex(6)
    base = Path(tempfile.mkdtemp(prefix=f"nnfs-planted-{token}-"))
    course = base / "nn-from-scratch"
    for part in ("source/01_neuron", "solutions", "submitted/alice/01_neuron"):
        (course / part).mkdir(parents=True)
    shutil.copy(REPO / "source" / "01_neuron" / "neuron.ipynb", course / "source" / "01_neuron")
    (course / "gradebook.db").write_bytes(b"SQLite format 3\x00")
    os.chmod(base, 0o755)
    for path in course.rglob("*"):
        os.chmod(path, 0o755 if path.is_dir() else 0o644)
    os.chmod(course, 0o755)
    yield course, token
    shutil.rmtree(base, ignore_errors=True)


def _as_user(user: str, *command, timeout: float = 60, cwd: str = "/") -> subprocess.CompletedProcess:
    home = pwd.getpwnam(user).pw_dir
    return subprocess.run(["runuser", "-u", user, "--", "env", "-i", f"HOME={home}", "PATH=/usr/bin:/bin",
                           "LANG=C.UTF-8", *command], capture_output=True, text=True, timeout=timeout, cwd=cwd)


def ordinary_user() -> str:
    """TEST_USER, created if needed (pytest.skip with the reason when it cannot be)."""
    if os.geteuid() != 0:
        pytest.skip("creating and switching to an ordinary user needs root; this run is an ordinary user already")
    if not shutil.which("runuser"):
        pytest.skip("runuser is not installed")
    try:
        pwd.getpwnam(TEST_USER)
    except KeyError:
        made = subprocess.run(["useradd", "--create-home", TEST_USER], capture_output=True, text=True)
        if made.returncode != 0:
            pytest.skip(f"could not create the user {TEST_USER}: {made.stderr.strip()}")
    return TEST_USER


def user_python(user: str, folder: Path) -> str:
    """A Python with the project's dependencies that `user` can run: sys.executable if it can, else a venv of
    the system's Python of the same version in `folder`, its site-packages hard links to ours (read-only to
    that user: nothing of them is ever changed here)."""
    check = "import numpy, ipykernel, matplotlib, nbgrader, jupyter_client"
    if _as_user(user, sys.executable, "-c", check).returncode == 0:
        return sys.executable
    version = f"python{sys.version_info.major}.{sys.version_info.minor}"
    system = next((p for p in (f"/usr/bin/{version}", f"/usr/local/bin/{version}") if os.access(p, os.X_OK)), None)
    if system is None or _as_user(user, system, "-c", "import venv").returncode != 0:
        pytest.skip(f"{user} cannot run {sys.executable} (its folders are closed to other users) and there is no "
                    f"system {version} with venv to make one from")
    venv = folder / "venv"
    subprocess.run([system, "-m", "venv", "--without-pip", str(venv)], check=True)
    ours = Path(site.getsitepackages()[0])
    theirs = venv / "lib" / version / "site-packages"
    shutil.rmtree(theirs)
    if subprocess.run(["cp", "-al", str(ours), str(theirs)], capture_output=True).returncode != 0:
        shutil.copytree(ours, theirs, symlinks=True)  # another file system: a copy
    python = str(venv / "bin" / "python")
    made = _as_user(user, python, "-c", check)
    if made.returncode != 0:
        pytest.skip(f"a venv for {user} from {system} cannot import the project's dependencies: {made.stderr[-300:]}")
    return python


@pytest.fixture(scope="module")
def user_copy():
    """(user, its Python, a scratch copy of the grader it owns)."""
    user = ordinary_user()
    entry = pwd.getpwnam(user)
    folder = Path(tempfile.mkdtemp(prefix="nnfs-fence-", dir=entry.pw_dir))
    os.chown(folder, entry.pw_uid, entry.pw_gid)
    try:
        python = user_python(user, folder)
        course = folder / "course"
        shutil.copytree(REPO / "graders", course / "graders", ignore=shutil.ignore_patterns("__pycache__"))
        (course / "tests").mkdir()
        for name in ("__init__.py", "test_fence.py"):
            shutil.copy(REPO / "tests" / name, course / "tests" / name)
        for path in [*course.rglob("*"), course]:
            os.chown(path, entry.pw_uid, entry.pw_gid)
        yield user, python, course
    finally:
        shutil.rmtree(folder, ignore_errors=True)


# -- the tests ---------------------------------------------------------------------------------------------------
def test_a_kernel_sees_only_its_view_as_root(planted):
    if os.geteuid() != 0:
        pytest.skip("this run is not root (the ordinary-user test covers this user)")
    course, token = planted
    result = probe_fence([str(course), str(REPO)], token, ASSIGNMENTS)
    check_fence_findings(result)
    from graders.engine.in_kernel.launcher import cgroup_bases
    if any(controller == "memory" for controller, _, _ in cgroup_bases()):  # writable here: it must be in force
        assert result["fence"]["memory"].startswith("cgroup"), result["fence"]


def test_a_kernel_sees_only_its_view_as_an_ordinary_user(planted, user_copy):
    course, token = planted
    user, python, copy = user_copy
    # the user could read the planted copy itself: only the fence keeps it from the kernel
    assert _as_user(user, "cat", str(course / "source" / "01_neuron" / "neuron.ipynb")).returncode == 0
    ran = _as_user(user, python, "-m", "tests.test_fence", json.dumps({"hide": [str(course), str(copy)],
                                                                       "token": token, "assignments": ASSIGNMENTS}),
                   timeout=900, cwd=str(copy))
    assert ran.returncode == 0, ran.stderr[-3000:]
    result = json.loads(ran.stdout.strip().splitlines()[-1])
    check_fence_findings(result)


def test_a_folder_two_distributions_share_is_bound_only_in_part():
    """bind_plan: whole folders where they hold nothing denied; a shared namespace folder (mpl_toolkits with a
    denied distribution's module in it) only file by file, and nothing of what no allowed distribution owns."""
    from graders.engine.in_kernel.launcher import bind_plan

    allowed = {("numpy", "__init__.py"), ("numpy", "core", "x.so"), ("mpl_toolkits", "mplot3d", "__init__.py"),
               ("__pycache__", "six.cpython-311.pyc"), ("six.py",)}
    denied = {("scipy", "__init__.py"), ("mpl_toolkits", "basemap", "__init__.py"),
              ("__pycache__", "pytest.cpython-311.pyc"), ("nbgrader", "x.py")}
    assert bind_plan(allowed, denied) == [("__pycache__", "six.cpython-311.pyc"), ("mpl_toolkits", "mplot3d"),
                                          ("numpy",), ("six.py",)]
    assert bind_plan(set(), denied) == []


def refusal() -> dict:
    """Where no fence can be built: starting a kernel refuses, saying why; with allow_unfenced it starts."""
    from graders.engine.sandbox import FenceUnavailable, GradingLimits, KernelSession

    notebook = Path(tempfile.mkdtemp(prefix="nnfs-fence-notebook-"))
    try:
        try:
            KernelSession(notebook, limits=GradingLimits()).close()
            refused = None
        except FenceUnavailable as exc:
            refused = str(exc)
        session = KernelSession(notebook, limits=GradingLimits(allow_unfenced=True))
        try:
            status, _ = session.run("1 + 1", timeout=60)
            fence = session.fence
        finally:
            session.close()
    finally:
        shutil.rmtree(notebook, ignore_errors=True)
    return {"refused": refused, "unfenced_status": status, "unfenced_fence": fence}


def test_without_user_namespaces_grading_refuses_unless_allowed(user_copy):
    """The ordinary user, in a user namespace that may make no more of them (as where a sysctl forbids them)."""
    user, python, copy = user_copy
    entry = pwd.getpwnam(user)
    forbid = (f"echo 1 > /proc/sys/user/max_user_namespaces && exec unshare -U --map-user={entry.pw_uid} "
              f"--map-group={entry.pw_gid} {shlex.quote(python)} -m tests.test_fence "
              + shlex.quote(json.dumps({"mode": "refusal"})))
    ran = _as_user(user, "unshare", "-Ur", "sh", "-c", forbid, timeout=300, cwd=str(copy))
    assert ran.returncode == 0, ran.stderr[-3000:]
    result = json.loads(ran.stdout.strip().splitlines()[-1])
    assert result["refused"], "a kernel started where no fence could be built"
    for words in ("CLONE_NEWUSER", "user.max_user_namespaces", "allow_unfenced"):
        assert words in result["refused"], result["refused"]
    assert result["unfenced_status"] == "ok" and result["unfenced_fence"]["view"] == "the host's (unfenced)"


if __name__ == "__main__":  # run as an ordinary user by the tests above
    arguments = json.loads(sys.argv[1])
    if arguments.get("mode") == "refusal":
        print(json.dumps(refusal()))
    else:
        print(json.dumps(probe_fence(arguments["hide"], arguments["token"], arguments["assignments"])))
