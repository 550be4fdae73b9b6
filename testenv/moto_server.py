"""A real moto server on 127.0.0.1, so boto3 talks HTTP as it would to AWS.

In-process (a thread) is cheapest for a test session; a subprocess is for the
demo and for tests that kill or outlive the Python process that started it.
moto's in-process ``mock_aws`` patching is deliberately not offered.
"""

from __future__ import annotations

import socket
import subprocess
import sys
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from testenv._proc import (
    TestEnvError,
    free_port,
    http_status,
    pid_matches,
    spawn,
    terminate,
    wait_until,
)


@dataclass
class MotoServer:
    """A running moto server; ``pid`` is None when it runs in this process."""

    endpoint_url: str
    pid: int | None = None
    _threaded: Any = field(default=None, repr=False)
    _proc: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    def reset(self) -> None:
        """Forget all mocked AWS state (moto's ``/moto-api/reset``)."""
        req = urllib.request.Request(f"{self.endpoint_url}/moto-api/reset", method="POST")
        urllib.request.build_opener(urllib.request.ProxyHandler({})).open(req, timeout=10).close()

    def stop(self) -> None:
        if self._threaded is not None:
            self._threaded.stop()
            self._threaded = None
        if self.pid is not None and (
            self._proc is not None or pid_matches(self.pid, "moto.server")
        ):
            terminate(self.pid, timeout=15.0, proc=self._proc)
        self.pid = None


def _check_bindable(port: int) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError as exc:
            raise TestEnvError(f"moto server: cannot bind 127.0.0.1:{port}: {exc}") from exc


def _answers(url: str) -> bool:
    return http_status(f"{url}/moto-api/data.json") is not None


def start_moto(
    port: int | None = None,
    in_process: bool = True,
    log_path: Path | None = None,
    timeout: float = 30.0,
    die_with_parent: bool = False,
) -> MotoServer:
    """Start moto on 127.0.0.1:*port* (a free one by default) and wait until it answers.

    ``in_process=False`` runs ``python -m moto.server`` detached in its own
    session, logging to *log_path* (or nowhere), so it outlives this process
    (unless *die_with_parent*).
    """
    try:
        import flask  # noqa: F401
        import moto.server  # noqa: F401  (needs moto[server]: flask, werkzeug)
    except ImportError as exc:
        raise TestEnvError(f"moto server needs `pip install 'moto[server]'`: {exc}") from exc
    port = port or free_port()
    url = f"http://127.0.0.1:{port}"
    if in_process:
        from moto.server import ThreadedMotoServer

        # ThreadedMotoServer.start() blocks forever if its thread cannot bind: check first.
        _check_bindable(port)
        threaded = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
        threaded.start()
        server = MotoServer(url, _threaded=threaded)
        try:
            wait_until(lambda: _answers(url), timeout, f"moto server on {url}")
        except TestEnvError:
            server.stop()
            raise
        return server

    log = log_path or Path("/dev/null")
    argv = [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)]
    proc = spawn(argv, log, die_with_parent=die_with_parent)
    server = MotoServer(url, pid=proc.pid, _proc=proc)
    try:
        wait_until(
            lambda: _answers(url),
            timeout,
            f"moto server ({' '.join(argv)})",
            alive=lambda: proc.poll() is None,
            log=log_path,
        )
    except TestEnvError:
        server.stop()
        raise
    return server
