"""Debian's PostgreSQL on 127.0.0.1, with a private data directory and a free port.

PostgreSQL refuses to run as root: as root, the server runs as the ``postgres`` user
(which the Debian package creates) in a directory of its own under /tmp (pytest's
temporary directories are closed to other users). Tuned for tests, not for data:
``fsync=off``, and ``max_connections=300`` (ten CLIs with workers pass the default 100).
The superuser ``postgres`` logs in with a password over TCP (so tests see real
authentication) and without one on the private Unix socket.
"""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from testenv._proc import (
    TestEnvError,
    as_user,
    ensure_binaries,
    free_port,
    pg_bindir,
    pid_alive,
    spawn,
    terminate,
    wait_until,
)

READY = "database system is ready to accept connections"
PREFIX = "testenv-postgres-"
STALE_S = 3600  # a directory this old whose server is gone was left by a killed session
SETTINGS = {
    "listen_addresses": "127.0.0.1",
    "max_connections": "300",
    "fsync": "off",
    "synchronous_commit": "off",
    "full_page_writes": "off",
}


@dataclass
class PostgresServer:
    """A running PostgreSQL; ``url(db)`` names one of its databases with the superuser's password."""

    port: int
    password: str
    root: Path
    user: str = "postgres"
    pid: int | None = None
    _proc: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://{self.user}:{self.password}@127.0.0.1:{self.port}/{database}"

    def create_database(self, name: str) -> str:
        """A new empty database; its URL."""
        self._admin(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def drop_database(self, name: str) -> None:
        self._admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    def _admin(self, sql: str) -> None:
        try:
            import psycopg
        except ImportError as exc:
            raise TestEnvError(f"PostgreSQL tests need psycopg: pip install 'psycopg[binary]' ({exc})") from exc
        try:
            with psycopg.connect(self.url(), autocommit=True, connect_timeout=10) as db:
                db.execute(sql)
        except psycopg.Error as exc:
            raise TestEnvError(f"PostgreSQL on port {self.port}: {sql}: {exc}") from exc

    def stop(self) -> None:
        """Fast shutdown (SIGINT: clients are disconnected), then the data directory goes."""
        if self.pid is not None and pid_alive(self.pid):
            os.kill(self.pid, signal.SIGINT)
            deadline = time.monotonic() + 15
            while time.monotonic() < deadline and (self._proc.poll() is None if self._proc else pid_alive(self.pid)):
                time.sleep(0.05)
            terminate(self.pid, timeout=5.0, proc=self._proc)
        self.pid = None
        shutil.rmtree(self.root, ignore_errors=True)


def start_postgres(timeout: float = 60.0, die_with_parent: bool = False) -> PostgresServer:
    """initdb a private cluster and start it on a free 127.0.0.1 port (installing PostgreSQL if needed)."""
    ensure_binaries(["postgres"])
    bindir = pg_bindir()
    assert bindir is not None
    user = "postgres" if os.geteuid() == 0 else None
    _sweep()
    root = Path(tempfile.mkdtemp(prefix=PREFIX))
    try:
        password = secrets.token_hex(12)
        _initdb(bindir, root, password, user)
        return _start(bindir, root, password, user, timeout, die_with_parent)
    except BaseException:
        shutil.rmtree(root, ignore_errors=True)
        raise


def _sweep() -> None:
    """Remove what killed sessions left: old directories whose server no longer runs."""
    for root in Path(tempfile.gettempdir()).glob(PREFIX + "*"):
        try:
            if time.time() - root.stat().st_mtime < STALE_S:
                continue
            pidfile = root / "data" / "postmaster.pid"
            pid = int(pidfile.read_text().split()[0]) if pidfile.exists() else None
        except (OSError, ValueError, IndexError):
            continue
        if pid is None or not pid_alive(pid):
            shutil.rmtree(root, ignore_errors=True)


def _initdb(bindir: Path, root: Path, password: str, user: str | None) -> None:
    (root / "pwfile").write_text(password + "\n")
    if user is not None:
        shutil.chown(root, user)
        shutil.chown(root / "pwfile", user)
    argv = [str(bindir / "initdb"), "-D", str(root / "data"), "-U", "postgres", f"--pwfile={root / 'pwfile'}",
            "--auth-local=trust", "--auth-host=scram-sha-256", "-E", "UTF8", "--locale=C", "--no-sync"]
    done = subprocess.run(argv, capture_output=True, text=True, cwd=root, **as_user(user))  # type: ignore[call-overload]
    (root / "pwfile").unlink()
    if done.returncode != 0:
        raise TestEnvError(f"initdb failed ({done.returncode}): {(done.stdout + done.stderr)[-2000:]}")


def _start(bindir: Path, root: Path, password: str, user: str | None, timeout: float,
           die_with_parent: bool) -> PostgresServer:
    log = root / "postgres.log"
    errors = []
    for _ in range(3):  # free_port() is racy: retry on a lost port
        port = free_port()
        argv = [str(bindir / "postgres"), "-D", str(root / "data"), "-p", str(port), "-k", str(root)]
        for name, value in SETTINGS.items():
            argv += ["-c", f"{name}={value}"]
        offset = log.stat().st_size if log.exists() else 0
        proc = spawn(argv, log, die_with_parent=die_with_parent, user=user)
        server = PostgresServer(port, password, root, pid=proc.pid, _proc=proc)
        try:
            wait_until(lambda o=offset: READY in _read_from(log, o), timeout, f"PostgreSQL on port {port}",
                       alive=lambda p=proc: p.poll() is None, log=log)
            return server
        except TestEnvError as exc:
            errors.append(str(exc))
            if proc.poll() is None:
                terminate(proc.pid, timeout=10.0, proc=proc)
    raise TestEnvError("\n\n".join(errors))


def _read_from(path: Path, offset: int) -> str:
    try:
        with open(path, errors="replace") as fh:
            fh.seek(offset)
            return fh.read()
    except OSError:
        return ""
