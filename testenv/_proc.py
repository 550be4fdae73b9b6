"""Process, port and package helpers shared by the engine modules.

Everything here is deliberately dependency-free (stdlib only) so that the
engine modules stay small and the CLI can stop daemons that a *previous*
process started (by pid, after checking the pid still names our binary).
"""

from __future__ import annotations

import contextlib
import ctypes
import fcntl
import os
import shutil
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

#: Binary -> Debian package that provides it. Installed together, in one apt run,
#: because one ``apt-get install`` is much cheaper than several.
TOOL_PACKAGES: dict[str, str] = {
    "dockerd": "docker.io",
    "busybox": "busybox-static",
    "docker-registry": "docker-registry",
    "htpasswd": "apache2-utils",
    "redis-server": "redis-server",
    "postgres": "postgresql",  # not on PATH: found in /usr/lib/postgresql/VERSION/bin
}
BUSYBOX = Path("/bin/busybox")
PG_LIB = Path("/usr/lib/postgresql")
_APT_LOCK = Path("/tmp/testenv-apt.lock")
_POLICY_RC_D = Path("/usr/sbin/policy-rc.d")


class TestEnvError(RuntimeError):
    """An engine could not be provided (missing binary, daemon died, timeout)."""

    __test__ = False  # not a pytest test class despite the name


LOG_MARKER = "==== "  # our line before each start, so a tail shows only the last try
_ERROR_HINTS = ("level=error", "level=fatal", "level=panic")


def log_tail(path: Path, lines: int = 12) -> str:
    """The end of a daemon's log for error messages: error lines first, then the tail.

    Only the part after the last start marker counts; dockerd is chatty (grpc)
    so its error lines would otherwise scroll out of a plain tail.
    """
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return f"(no log at {path})"
    section = (
        text.rsplit("\n" + LOG_MARKER, 1)[-1].splitlines()[1:]
        if LOG_MARKER in text
        else text.splitlines()
    )
    errors = [
        line
        for line in section
        if any(h in line for h in _ERROR_HINTS) or (line and not line.startswith("time="))
    ][-lines:]  # logrus error lines, and plain lines (fatal messages, panics, usage)
    tail = [line for line in section[-4:] if line not in errors]
    return "\n".join(errors + tail) or f"(empty log at {path})"


def free_port() -> int:
    """A TCP port on 127.0.0.1 that is free right now (racy, callers retry)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def http_status(url: str, timeout: float = 2.0) -> int | None:
    """HTTP status of a GET on a loopback URL, or None when nothing answers.

    Proxies from the environment are ignored on purpose: traffic stays on loopback.
    """
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(url, timeout=timeout) as resp:
            return int(resp.status)
    except urllib.error.HTTPError as exc:
        return int(exc.code)
    except (OSError, ValueError):
        return None


def wait_until(
    check: Callable[[], bool],
    timeout: float,
    what: str,
    alive: Callable[[], bool] | None = None,
    log: Path | None = None,
) -> None:
    """Poll *check* until true; fail fast when *alive* says the process died."""
    deadline = time.monotonic() + timeout
    while True:
        if check():
            return
        if alive is not None and not alive():
            raise TestEnvError(f"{what}: process exited early.{_tail_msg(log)}")
        if time.monotonic() > deadline:
            raise TestEnvError(f"{what}: not ready after {timeout:.0f}s.{_tail_msg(log)}")
        time.sleep(0.1)


def _tail_msg(log: Path | None) -> str:
    return f"\n--- log tail ({log}) ---\n{log_tail(log)}" if log else ""


def spawn(
    argv: Sequence[str],
    log: Path,
    env: dict[str, str] | None = None,
    die_with_parent: bool = False,
    user: str | None = None,
) -> subprocess.Popen[bytes]:
    """Start a daemon in its own session, logging to *log*.

    Detached by default so it can outlive this process (the CLI's ``up``). With
    *die_with_parent* the kernel sends it SIGTERM when this process dies, so a
    killed test session leaves no daemons behind. *user*: run it as that user
    (root only; PostgreSQL refuses to run as root).
    """
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "ab") as out:
        return subprocess.Popen(
            list(argv),
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            env=env,
            close_fds=True,
            preexec_fn=_die_with_parent if die_with_parent else None,
            **as_user(user),
        )


def as_user(user: str | None) -> dict[str, object]:
    """``subprocess`` arguments that run a child as *user*, with that user's groups only."""
    if user is None:
        return {}
    import pwd

    entry = pwd.getpwnam(user)
    return {"user": entry.pw_uid, "group": entry.pw_gid, "extra_groups": []}


def _die_with_parent() -> None:
    """In the child, before exec: SIGTERM when the parent thread exits (Linux prctl)."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(1, signal.SIGTERM, 0, 0, 0)  # 1 == PR_SET_PDEATHSIG


def pid_alive(pid: int) -> bool:
    """True while *pid* exists and is not a zombie."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    # state is the first field after the parenthesised command name
    return stat.rsplit(")", 1)[1].split()[0] not in ("Z", "X")


def pid_cmdline(pid: int) -> list[str]:
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return []
    return [part.decode(errors="replace") for part in raw.split(b"\0") if part]


def pid_matches(pid: int, needle: str) -> bool:
    """Guard against pid reuse: the live process's command line mentions *needle*."""
    return pid_alive(pid) and any(needle in part for part in pid_cmdline(pid))


def terminate(pid: int, timeout: float = 30.0, proc: subprocess.Popen[bytes] | None = None) -> None:
    """SIGTERM, wait for exit, then SIGKILL. Reaps *proc* when it is our child."""
    for sig, wait in ((signal.SIGTERM, timeout), (signal.SIGKILL, 10.0)):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, sig)
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            if proc is not None and proc.poll() is not None:
                return
            if proc is None and not pid_alive(pid):
                return
            time.sleep(0.1)
    if pid_alive(pid):
        raise TestEnvError(f"pid {pid} did not exit after SIGKILL")


def pids_mentioning(path: str, programs: tuple[str, ...]) -> list[int]:
    """Pids of *programs* (basename prefixes) whose command line mentions *path*.

    Used to find helpers a dead daemon left behind (containerd, its shims).
    """
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        argv = pid_cmdline(int(entry.name))
        if argv and Path(argv[0]).name.startswith(programs) and any(path in a for a in argv):
            found.append(int(entry.name))
    return found


def mounts_under(root: Path) -> list[str]:
    """Mount points at or below *root*, deepest first (to unmount them in order)."""
    top = str(root.resolve())
    points = []
    with open("/proc/self/mounts") as fh:
        for line in fh:
            point = line.split()[1].replace("\\040", " ")
            if point == top or point.startswith(top + "/"):
                points.append(point)
    return sorted(points, key=len, reverse=True)


def ensure_binaries(binaries: Iterable[str]) -> None:
    """Install the Debian packages of missing *binaries* (root only, via apt-get).

    All missing tools of :data:`TOOL_PACKAGES` are installed in the same run.
    ``apt-get update`` runs only when the plain install fails (stale lists).
    """
    wanted = [b for b in binaries if not _have(b)]
    if not wanted:
        return
    if os.geteuid() != 0 or shutil.which("apt-get") is None:
        raise TestEnvError(
            f"missing {', '.join(wanted)} (Debian packages "
            f"{', '.join(TOOL_PACKAGES[b] for b in wanted)}); install them, "
            "or run as root on Debian so testenv can apt-get install them"
        )
    with open(_APT_LOCK, "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # serialise concurrent test processes
        missing = sorted({TOOL_PACKAGES[b] for b in TOOL_PACKAGES if not _have(b)})
        if missing:
            _apt_install(missing)
    still = [b for b in wanted if not _have(b)]
    if still:
        raise TestEnvError(f"apt-get install succeeded but {', '.join(still)} still missing")


def pg_bindir() -> Path | None:
    """The newest installed PostgreSQL's bin directory (Debian keeps it off PATH)."""
    found = sorted((p.parent for p in PG_LIB.glob("*/bin/postgres")),
                   key=lambda p: int(p.parent.name) if p.parent.name.isdigit() else 0)
    return found[-1] if found else None


def _have(binary: str) -> bool:
    if binary == "postgres":
        return pg_bindir() is not None
    if binary == "busybox":  # must be the *static* one: it is copied into an image
        if not BUSYBOX.is_file():
            return False
        with open(BUSYBOX, "rb") as fh:
            return b"ld-linux" not in fh.read(4096)  # no ELF interpreter => static
    return shutil.which(binary) is not None


def _apt_install(packages: list[str]) -> None:
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    cmd = ["apt-get", "install", "-y", "-q", "--no-install-recommends", *packages]
    # Keep apt from starting system services (dockerd on /var/run/docker.sock...).
    created_policy = False
    if not _POLICY_RC_D.exists():
        _POLICY_RC_D.write_text("#!/bin/sh\nexit 101\n")
        _POLICY_RC_D.chmod(0o755)
        created_policy = True
    try:
        first = subprocess.run(cmd, env=env, capture_output=True, text=True)
        if first.returncode == 0:
            return
        subprocess.run(["apt-get", "update", "-q"], env=env, capture_output=True, text=True)
        second = subprocess.run(cmd, env=env, capture_output=True, text=True)
        if second.returncode != 0:
            tail = "\n".join((second.stdout + second.stderr).splitlines()[-20:])
            raise TestEnvError(f"`{' '.join(cmd)}` failed:\n{tail}")
    finally:
        if created_policy:
            _POLICY_RC_D.unlink(missing_ok=True)
