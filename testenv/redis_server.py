"""A real Redis on 127.0.0.1 (Debian's ``redis-server``): the Celery broker of the tests.

Private directory, a free port, nothing saved to disk; it dies with the process that
started it, so a killed test session leaves no daemon behind.
"""

from __future__ import annotations

import socket
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

from testenv._proc import TestEnvError, ensure_binaries, free_port, spawn, terminate, wait_until


@dataclass
class RedisServer:
    port: int
    directory: Path
    _proc: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def flush(self) -> None:
        """Drop every queued message (between tests)."""
        _command(self.port, b"FLUSHALL")

    def stop(self) -> None:
        if self._proc is not None:
            terminate(self._proc.pid, timeout=10.0, proc=self._proc)
            self._proc = None


def _command(port: int, command: bytes) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=2.0) as sock:
        sock.sendall(command + b"\r\n")
        return sock.recv(256)


def _answers(port: int) -> bool:
    try:
        return _command(port, b"PING").startswith(b"+PONG")
    except OSError:
        return False


def start_redis(directory: Path, attempts: int = 3) -> RedisServer:
    """Start ``redis-server`` on a free port (installing it first if missing) and wait for PONG."""
    ensure_binaries(["redis-server"])
    directory.mkdir(parents=True, exist_ok=True)
    last: Exception | None = None
    for _ in range(attempts):  # a free port can be taken between the check and the bind
        port = free_port()
        log = directory / f"redis-{port}.log"
        proc = spawn(["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
                      "--dir", str(directory), "--protected-mode", "yes"], log, die_with_parent=True)
        try:
            wait_until(lambda p=port: _answers(p), 15.0, "redis-server", alive=lambda c=proc: c.poll() is None,
                       log=log)
            return RedisServer(port, directory, proc)
        except TestEnvError as exc:
            last = exc
            terminate(proc.pid, timeout=5.0, proc=proc)
    raise TestEnvError(f"redis-server did not start: {last}")
