"""Helpers for the browser tests (tests/test_browser.py): find Chromium, run a private Jupyter server
(JupyterLab or Notebook 7, the two frontends students open the notebooks in), take screenshots and record
timings.

Nothing here downloads a browser: Playwright drives the system's Chromium (Debian's `chromium` package),
which `./course test` installs with apt-get when it can.
"""
from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from tests.helpers import COURSE

#: Screenshots and timings land here, at the root of the clone, so CI can keep them as artefacts.
ARTIFACTS = COURSE / "test-artifacts" / "browser"

#: Where a Chromium may be, after $NNFS_CHROMIUM: Debian's name, other distributions' name, Debian's path.
CHROMIUM_CANDIDATES = ("chromium", "chromium-browser", "/usr/bin/chromium")

#: Without the background-networking flags, Chromium's own connections (updates, sync, QUIC probes) are
#: refused in a network-restricted CI and can stall page loads; none of them matter to a test.
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run", "--disable-quic"]

VIEWPORT = {"width": 1400, "height": 1000}


def chromium_path() -> str | None:
    """The system Chromium to drive: $NNFS_CHROMIUM, else the first of CHROMIUM_CANDIDATES that exists."""
    override = os.environ.get("NNFS_CHROMIUM")
    if override:
        return override if os.access(override, os.X_OK) else None
    for name in CHROMIUM_CANDIDATES:
        found = shutil.which(name)
        if found:
            return found
    return None


def why_no_browser() -> str | None:
    """None when Playwright and Chromium are both there; else the reason the browser tests cannot run."""
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return (f"Playwright is not installed in {sys.prefix}: `pip install -e '.[browser]'` "
                "(`./course test` does it)")
    if chromium_path() is None:
        looked = os.environ.get("NNFS_CHROMIUM") or ", ".join(CHROMIUM_CANDIDATES)
        return (f"no Chromium found (looked for {looked}): `apt-get install chromium` (`./course test` does it "
                "when run as root) or set NNFS_CHROMIUM to a Chromium binary")
    return None


def free_port() -> int:
    """A TCP port on the loopback that nothing listens on right now (the OS picks it)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# JupyterLab user settings for the test server (Notebook 7 reads the same ones: it is built from JupyterLab's
# plugins). Every cell in the DOM (no windowing), so a locator finds an output far down the notebook; and no
# "get Jupyter news?" toast over the screenshots.
LAB_SETTINGS = {
    "@jupyterlab/notebook-extension/tracker.jupyterlab-settings": {"windowingMode": "none"},
    "@jupyterlab/apputils-extension/notification.jupyterlab-settings": {"fetchNews": "false",
                                                                       "checkForUpdates": False},
}


def private_jupyter_env(course: Path, scratch: Path) -> dict:
    """The environment of a Jupyter server that sees nothing of the user's own Jupyter or matplotlib setup."""
    dirs = {name: scratch / name for name in ("home", "runtime", "settings", "workspaces", "exchange")}
    for path in dirs.values():
        path.mkdir(parents=True, exist_ok=True)
    for name, values in LAB_SETTINGS.items():
        target = dirs["settings"] / name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(json.dumps(values))
    # The user-level nbgrader config of the private HOME: an exchange of its own, so formgrader does not warn
    # that the system-wide one (/usr/local/share/nbgrader/exchange) is missing.
    dirs["exchange"].chmod(0o777)
    (dirs["home"] / ".jupyter").mkdir(exist_ok=True)
    (dirs["home"] / ".jupyter" / "nbgrader_config.py").write_text(
        f"c = get_config()  # noqa: F821\nc.Exchange.root = {str(dirs['exchange'])!r}\n")
    env = dict(os.environ, HOME=str(dirs["home"]), JUPYTER_RUNTIME_DIR=str(dirs["runtime"]),
               JUPYTERLAB_SETTINGS_DIR=str(dirs["settings"]), JUPYTERLAB_WORKSPACES_DIR=str(dirs["workspaces"]),
               NNFS_COURSE_ROOT=str(course),
               # As `./course lab` runs it: one BLAS thread, no library DeprecationWarnings on stderr.
               OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1", MKL_NUM_THREADS="1",
               PYTHONWARNINGS="ignore::DeprecationWarning")
    for name in ("MPLBACKEND", "JUPYTER_CONFIG_DIR", "JUPYTER_DATA_DIR", "JUPYTER_PATH", "JUPYTER_CONFIG_PATH",
                 "IPYTHONDIR", "MPLCONFIGDIR", "XDG_CONFIG_HOME", "XDG_CACHE_HOME", "XDG_DATA_HOME"):
        env.pop(name, None)  # kernels must use the inline backend and the private HOME, as in a fresh account
    return env


@dataclass(frozen=True)
class Frontend:
    """A frontend students open the notebooks in, as the browser tests name and reach it.

    app: the `jupyter APP` subcommand that serves it ("lab", "notebook").
    title: how timings name it ("JupyterLab", "Notebook 7").
    document_route: the URL path of an open document, with {path} (the file's path under the server's root).
    shell: a selector found only on this frontend's pages (its application shell), to tell the two apart.
    shot_prefix: what its screenshots' names start with, so both frontends' pictures sit side by side.
    """
    app: str
    title: str
    document_route: str
    shell: str
    shot_prefix: str

    def document_path(self, path: str) -> str:
        return self.document_route.format(path=path)

    def shot(self, step: str) -> str:
        """The name of this frontend's screenshot of `step` (e.g. "01-notebook-open")."""
        return self.shot_prefix + step


JUPYTERLAB = Frontend(app="lab", title="JupyterLab", document_route="/lab/tree/{path}", shell=".jp-LabShell",
                      shot_prefix="")
#: Notebook 7 (`jupyter notebook`, the `notebook` package >= 7): one document a tab, built from JupyterLab's
#: components, so the notebook's own DOM (cells, outputs, toolbar, menu bar) is JupyterLab's.
NOTEBOOK7 = Frontend(app="notebook", title="Notebook 7", document_route="/notebooks/{path}",
                     shell="body[data-notebook='notebooks']", shot_prefix="11-nb7-")


class JupyterServer:
    """`jupyter APP` (lab or notebook) from this environment, in a course folder, on a free loopback port with a
    random token."""

    def __init__(self, app: str, course: Path, scratch: Path):
        self.app, self.course, self.scratch = app, course, scratch
        self.env = private_jupyter_env(course, scratch)
        self.port = free_port()
        self.token = secrets.token_hex(16)
        self.log = scratch / f"jupyter-{app}.log"
        self.process: subprocess.Popen | None = None
        self.started_at = 0.0

    def url(self, path: str) -> str:
        joiner = "&" if "?" in path else "?"
        return f"http://127.0.0.1:{self.port}{path}{joiner}token={self.token}"

    def start(self) -> None:
        self.started_at = time.monotonic()
        command = [sys.executable, "-m", "jupyter", self.app, "--no-browser", "--allow-root",
                   "--ServerApp.ip=127.0.0.1", f"--ServerApp.port={self.port}", "--ServerApp.port_retries=0",
                   f"--IdentityProvider.token={self.token}", f"--ServerApp.root_dir={self.course}"]
        with open(self.log, "wb") as log:
            # Its own session, so a last-resort SIGKILL to the group hits the server and nothing of ours. Its
            # kernels (sessions of their own) are shut down by the server on SIGTERM, or exit when it dies.
            self.process = subprocess.Popen(command, cwd=self.course, env=self.env, stdout=log,
                                            stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                            start_new_session=True)

    def wait_until_ready(self, deadline_seconds: float = 90.0) -> float:
        """Seconds from start() until the REST API answers; fails with the server's log after the deadline."""
        deadline = self.started_at + deadline_seconds
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"jupyter {self.app} exited with {self.process.returncode}:\n{self.log_tail()}")
            try:
                with urllib.request.urlopen(self.url("/api/status"), timeout=5) as response:
                    if response.status == 200:
                        return time.monotonic() - self.started_at
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                pass
            time.sleep(0.2)
        raise TimeoutError(f"jupyter {self.app} did not answer within {deadline_seconds:.0f} s:\n{self.log_tail()}")

    def log_tail(self, characters: int = 4000) -> str:
        return self.log.read_text(errors="replace")[-characters:] if self.log.exists() else "(no log)"

    def stop(self) -> None:
        """SIGTERM first (the server then shuts its kernels down), SIGKILL to its session if it hangs."""
        if self.process is None or self.process.poll() is not None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            try:
                os.killpg(self.process.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            self.process.wait(timeout=10)


class Artifacts:
    """Screenshots named by step, and the timings of each step, under test-artifacts/browser/."""

    def __init__(self, folder: Path = ARTIFACTS):
        self.folder = folder
        folder.mkdir(parents=True, exist_ok=True)
        for old in [*folder.glob("*.png"), folder / "timings.json"]:  # a stale picture would mislead
            old.unlink(missing_ok=True)
        self.timings: dict[str, float] = {}
        self.screenshots: list[Path] = []

    def time(self, step: str, seconds: float) -> None:
        self.timings[step] = round(seconds, 2)

    def shoot(self, page, name: str, target=None) -> Path:
        """A viewport screenshot, with `target` (a locator) scrolled to the middle of the view first."""
        if target is not None:
            target.evaluate("element => element.scrollIntoView({block: 'center', inline: 'nearest'})")
        path = self.folder / f"{name}.png"
        page.screenshot(path=str(path), animations="disabled", caret="initial")
        self.screenshots.append(path)
        return path

    def write_timings(self) -> Path:
        path = self.folder / "timings.json"
        path.write_text(json.dumps(self.timings, indent=2) + "\n")
        return path


class Stopwatch:
    """`with Stopwatch() as watch: ...; watch.seconds`."""

    def __enter__(self):
        self.start = time.monotonic()
        self.seconds = 0.0
        return self

    def __exit__(self, *exc):
        self.seconds = time.monotonic() - self.start
        return False
