"""A sample third-party plugin: local processes with a TCP readiness check.

The kind of plugin whose author found issue 18's holes in the conformance suite. A
``sample.Process`` is a small TCP server (a Python child, detached) that writes the port
it listens on to a file; ``start`` launches it and waits (``wait_until``, by retries)
until it accepts a connection, ``stop`` terminates it, ``delete`` removes its files.
Each process carries its owner in its command line (``--sample-owner=DEPLOYMENT/INSTANCE``),
so it is found again without the state file: the listers scan ``/proc``.

The ``flaw`` property breaks it the ways that author's broken versions were broken:

- ``trusts_pid``: ``start`` trusts only the pid it saved; a crash between the launch and
  the save leaves a process nobody finds, and the resumed ``start`` launches a second;
- ``stop_noop``: ``stop`` does nothing (``delete`` still kills, so uninstall looks clean);
- ``always_launch``: every ``start`` launches a new process (it reuses one only across the
  retries of its own wait).
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

from orchestrator.sdk import Plugin, Resource

TYPE = "sample.Process"
FLAWS = ("", "trusts_pid", "stop_noop", "always_launch")
SERVER = """\
import os, socket, sys
s = socket.socket()
s.bind(("127.0.0.1", 0))
s.listen(16)
tmp = sys.argv[1] + ".tmp"
with open(tmp, "w") as f:
    f.write(str(s.getsockname()[1]))
os.replace(tmp, sys.argv[1])
s.settimeout(600)  # never outlive a test run by much, whatever happens to it
try:
    while True:
        conn, _ = s.accept()
        conn.close()
except OSError:
    pass
"""

TYPES: dict[str, Any] = {
    "node_types": {
        TYPE: {
            "derived_from": "orchestrator.nodes.Root",
            "properties": {
                "directory": {"type": "string", "description": "Where port files go."},
                "flaw": {"type": "string", "default": "", "constraints": [{"valid_values": list(FLAWS)}]},
            },
        },
    },
}


def owner_arg(deployment: str, instance: str = "") -> str:
    return f"--sample-owner={deployment}/{instance}"


def processes(prefix: str) -> list[int]:
    """Live processes whose command line has an argument starting with ``prefix``."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            args = Path(f"/proc/{entry}/cmdline").read_bytes().split(b"\0")
        except OSError:
            continue  # gone meanwhile
        if any(a.decode(errors="replace").startswith(prefix) for a in args):  # a zombie has no cmdline
            found.append(int(entry))
    return sorted(found)


def kill(pids: list[int]) -> None:
    for pid in pids:
        try:
            os.kill(pid, signal.SIGTERM)
        except ProcessLookupError:
            pass


def launch(port_file: Path, owner: str) -> int:
    """Start the server detached (a shell backgrounds it, so no one here must reap it); its pid."""
    command = '"$0" -c "$1" "$2" "$3" >/dev/null 2>&1 </dev/null & echo $!'
    out = subprocess.run(["sh", "-c", command, sys.executable, SERVER, str(port_file), owner],
                         capture_output=True, text=True, check=True, timeout=30).stdout
    return int(out.strip())


def listening(port_file: Path) -> bool:
    try:
        port = int(port_file.read_text())
    except (OSError, ValueError):
        return False
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


class Process(Resource):
    @property
    def owner(self) -> str:
        return owner_arg(self.ctx.deployment.id, self.instance.id)

    @property
    def flaw(self) -> str:
        return str(self.properties["flaw"])

    @property
    def port_file(self) -> Path:
        return Path(self.properties["directory"]) / f"{self.ctx.deployment.id}-{self.instance.id}.port"

    def create(self) -> None:
        self.port_file.parent.mkdir(parents=True, exist_ok=True)
        self.save(port_file=str(self.port_file))

    def start(self) -> None:
        mine = processes(self.owner)
        pid = self.runtime.get("pid")
        fresh = self.ctx.operation.retry_number == 0  # a new start, not a retry of its own wait
        if (self.flaw == "always_launch" and fresh) or pid not in mine:
            pid = None
        if pid is None and self.flaw not in ("trusts_pid", "always_launch") and mine:
            pid = mine[0]  # launched by an attempt that crashed before saving its pid
        if pid is None:
            self.port_file.unlink(missing_ok=True)
            pid = launch(self.port_file, self.owner)
            self.save(pid=pid)  # right after the side effect
            self.logger.info("launched process %s", pid)
        self.wait_until(lambda: listening(self.port_file), f"process {pid} to accept connections", timeout=20)

    def stop(self) -> None:
        if self.flaw == "stop_noop":
            return
        kill(processes(self.owner))
        self.wait_until(lambda: not processes(self.owner), "the process to exit", timeout=20)
        self.runtime.pop("pid", None)

    def delete(self) -> None:
        kill(processes(self.owner))  # whatever stop left (uninstall after a failed start)
        self.port_file.unlink(missing_ok=True)
        self.runtime.pop("port_file", None)


plugin = Plugin(TYPES, {TYPE: Process}, name="sample_processes")
