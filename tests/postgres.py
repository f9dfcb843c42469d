"""A real PostgreSQL server for the gradebook tests, started by the tests themselves and removed at the end.

The server is Debian's (`/usr/lib/postgresql/<version>/bin`, the `postgresql` package, which `./course test`
installs when it is missing and it may): a throwaway cluster in a temporary folder, listening on a free
loopback port only, with a password, driven through SQLAlchemy's `postgresql+psycopg` dialect (psycopg 3,
in the instructor extra). Where there is no server, no driver, or it cannot start, a test that asks for it is
skipped with the reason.

    from tests.postgres import postgres  # noqa: F401  (the fixture, session-scoped)

    def test_something(postgres):
        db_url = postgres.new_database("demo")   # an empty database of its own, as a SQLAlchemy URL

or, where a fixture decides late whether it needs the server, `shared_server()` (the same server).
"""
from __future__ import annotations

import atexit
import os
import pwd
import re
import secrets
import shutil
import socket
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

import pytest

#: The role the tests connect as; the cluster's superuser, so that it can create databases.
USER = "nnfs"
#: Debian's system user that owns the server's files (the `postgresql` package creates it). As root,
#: initdb and pg_ctl refuse to run, so they run as this user.
SYSTEM_USER = "postgres"


class Unavailable(Exception):
    """No server can be had here; the message says why and what would give one."""


def server_binaries() -> Path:
    """The newest Debian PostgreSQL bin/ folder holding initdb and pg_ctl.

    Returns: the folder. Raises Unavailable when there is none."""
    folders = [p.parent for p in Path("/usr/lib/postgresql").glob("*/bin/pg_ctl") if (p.parent / "initdb").exists()]
    if not folders:
        raise Unavailable("no PostgreSQL server binaries in /usr/lib/postgresql/*/bin (Debian's `postgresql` "
                          "package; `./course test` installs it when run as root)")
    return max(folders, key=lambda folder: [int(n) for n in re.findall(r"\d+", folder.parent.name)] or [0])


def free_port() -> int:
    """A loopback TCP port nothing listens on now (the server binds it a moment later)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@dataclass
class PostgresServer:
    """A running throwaway cluster: folder (its data, log and socket), port, password of USER."""
    bindir: Path
    folder: Path
    port: int
    password: str
    as_user: tuple[str, ...]  # the command prefix that runs a server binary as the folder's owner

    def url(self, database: str) -> str:
        """The SQLAlchemy URL of `database` on this server (what nbgrader's CourseDirectory.db_url takes)."""
        return f"postgresql+psycopg://{USER}:{self.password}@127.0.0.1:{self.port}/{database}"

    def new_database(self, name: str) -> str:
        """Create an empty database `name` (letters, digits, underscores) and return its URL."""
        import psycopg
        if not re.fullmatch(r"[a-z_][a-z0-9_]*", name):
            raise ValueError(f"not a plain database name: {name!r}")
        with psycopg.connect(host="127.0.0.1", port=self.port, user=USER, password=self.password,
                             dbname="postgres", autocommit=True) as connection:
            connection.execute(f"CREATE DATABASE {name}")
        return self.url(name)

    def run(self, *args: str, timeout: float = 120) -> subprocess.CompletedProcess:
        """Run one of the server's binaries (bin/<args[0]>) as the folder's owner; raises when it fails."""
        return subprocess.run([*self.as_user, str(self.bindir / args[0]), *args[1:]], capture_output=True,
                              text=True, timeout=timeout, check=True)

    def log_tail(self) -> str:
        log = self.folder / "server.log"
        return log.read_text(errors="replace")[-2000:] if log.exists() else ""

    def stop(self) -> None:
        """Stop the server (fast: open sessions are cut) and remove its folder. Safe to call twice."""
        if (self.folder / "data" / "postmaster.pid").exists():
            subprocess.run([*self.as_user, str(self.bindir / "pg_ctl"), "stop", "-D", str(self.folder / "data"),
                            "-m", "fast", "-w", "-t", "60"], capture_output=True, timeout=90, check=False)
        shutil.rmtree(self.folder, ignore_errors=True)


def _owner_prefix(folder: Path) -> tuple[str, ...]:
    """Hand `folder` to the user the server must run as; returns the prefix that runs a command as them."""
    if os.geteuid() != 0:
        return ()
    try:
        owner = pwd.getpwnam(SYSTEM_USER)
    except KeyError:
        raise Unavailable(f"running as root, and there is no `{SYSTEM_USER}` user to run the server as "
                          "(Debian's `postgresql` package creates it)") from None
    runuser = shutil.which("runuser")
    if not runuser:
        raise Unavailable("running as root, and there is no `runuser` to run the server as another user")
    os.chown(folder, owner.pw_uid, owner.pw_gid)
    return (runuser, "-u", SYSTEM_USER, "--")


def start_server(attempts: int = 3) -> PostgresServer:
    """initdb a cluster in a new temporary folder and start it on a free loopback port.

    attempts: how many ports to try (another process may take the free port between the probe and the start).
    Returns: the running server; the caller stops it. Raises Unavailable with the reason."""
    try:
        import psycopg  # noqa: F401  (SQLAlchemy's postgresql+psycopg dialect needs it)
    except ImportError:
        raise Unavailable("the psycopg driver is not installed (psycopg[binary], in the instructor extra)") from None
    bindir = server_binaries()
    # Not under pytest's tmp_path: its parents are private to root, and the server runs as another user.
    folder = Path(tempfile.mkdtemp(prefix="nnfs-postgres-"))
    server = PostgresServer(bindir, folder, 0, secrets.token_hex(16), ())
    try:
        server.as_user = _owner_prefix(folder)
        password_file = folder / "password"
        password_file.write_text(server.password + "\n")
        if server.as_user:
            shutil.chown(password_file, SYSTEM_USER)
        try:
            # C locale: strings sort by bytes, as in SQLite; a password even on loopback, as in production.
            server.run("initdb", "-D", str(folder / "data"), "-U", USER, f"--pwfile={password_file}",
                       "--auth=scram-sha-256", "--encoding=UTF8", "--no-locale", "--no-sync")
        except subprocess.CalledProcessError as exc:
            raise Unavailable(f"initdb failed: {(exc.stderr or exc.stdout)[-1000:]}") from None
        password_file.unlink()
        for _ in range(attempts):
            server.port = free_port()
            # The cluster is thrown away at the end, so it skips flushing to disk (durability is not what the
            # tests test, and fsyncs would slow the grading runs on a loaded machine).
            options = (f"-c listen_addresses=127.0.0.1 -c port={server.port} -c unix_socket_directories={folder} "
                       "-c fsync=off -c synchronous_commit=off -c full_page_writes=off")
            try:
                server.run("pg_ctl", "start", "-D", str(folder / "data"), "-l", str(folder / "server.log"),
                           "-w", "-t", "60", "-o", options)
                return server
            except subprocess.CalledProcessError:
                if "could not bind" not in server.log_tail() and "in use" not in server.log_tail():
                    break
        raise Unavailable(f"the PostgreSQL server did not start: {server.log_tail()}")
    except BaseException:
        server.stop()
        raise


#: The one server of a test session (or why there is none), started by the first test that asks for it.
_SESSION: dict[str, PostgresServer | Unavailable] = {}


def shared_server() -> PostgresServer:
    """The session's PostgreSQL server, started on the first call and stopped when the session ends (by the
    `postgres` fixture's teardown, or at exit where only this function was called). Skips the calling test
    with the reason where there is none."""
    if "server" not in _SESSION:
        try:
            _SESSION["server"] = start_server()
            atexit.register(_SESSION["server"].stop)
        except Unavailable as exc:
            _SESSION["server"] = exc
    server = _SESSION["server"]
    if isinstance(server, Unavailable):
        pytest.skip(f"PostgreSQL: {server}")
    return server


@pytest.fixture(scope="session")
def postgres():
    """The session's PostgreSQL server (a PostgresServer); skips the test with the reason where there is none.
    Every module that imports this fixture gets the same server."""
    server = shared_server()
    yield server
    server.stop()
