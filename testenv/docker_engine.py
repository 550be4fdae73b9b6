"""A real Docker engine, plus (re-exported) a real registry and an offline image.

The sandbox this runs in has no Docker daemon and no internet, so we start
Debian's ``dockerd`` on a private socket (no bridge, no iptables: containers use
host networking only). The registry lives in :mod:`testenv.registry`, the
busybox image in :mod:`testenv.image`; both are re-exported here.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import docker

from testenv._proc import (
    LOG_MARKER,
    TestEnvError,
    ensure_binaries,
    mounts_under,
    pid_alive,
    pid_matches,
    pids_mentioning,
    spawn,
    terminate,
    wait_until,
)
from testenv.image import build_busybox_image
from testenv.registry import Registry, ensure_registry

__all__ = [
    "DockerEngine",
    "Registry",
    "build_busybox_image",
    "ensure_docker",
    "ensure_registry",
    "ping_docker",
]

DEFAULT_SOCKET = "/var/run/docker.sock"
_MAX_SOCKET_DIR = 60  # exec-root/containerd/containerd-debug.sock must fit in 108 bytes
_PROXY_VARS = ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy")


@dataclass
class DockerEngine:
    """A reachable Docker engine; ``stop()`` only ends a daemon we started."""

    base_url: str
    started: bool = False
    pid: int | None = None
    workdir: Path | None = None
    run_dir: Path | None = None  # socket, pidfile, exec-root (kept short)
    run_dir_is_temp: bool = False  # run_dir lives in /tmp because workdir is too long
    storage_driver: str | None = None
    from_env: bool = False  # the engine of DOCKER_HOST (+ DOCKER_TLS_VERIFY, ...)
    _client: docker.DockerClient | None = field(default=None, repr=False)
    _proc: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    @property
    def log_path(self) -> Path | None:
        return self.workdir / "dockerd.log" if self.workdir else None

    def client(self) -> docker.DockerClient:
        """A shared client for this engine (closed by ``stop()``)."""
        if self._client is None:
            if self.from_env:
                self._client = docker.from_env(timeout=120)
            else:
                self._client = docker.DockerClient(base_url=self.base_url, timeout=120)
        return self._client

    def run(self, image: str, command: str | list[str] | None = None, **kwargs: Any) -> Any:
        """``containers.run`` forced onto host networking (the daemon has no bridge).

        Returns what docker-py returns: a ``Container`` with ``detach=True``,
        else the container's output (bytes).
        """
        if kwargs.setdefault("network_mode", "host") != "host":
            raise ValueError("testenv containers must use network_mode='host'")
        return self.client().containers.run(image, command, **kwargs)

    def stop(self) -> None:
        """Stop the daemon if we started it, then sweep its helpers and mounts."""
        if self.started and self.pid is not None and pid_alive(self.pid):
            self._kill_containers()
        if self._client is not None:
            self._client.close()
            self._client = None
        if not self.started:
            return
        if self.pid is not None and (self._proc is not None or pid_matches(self.pid, "dockerd")):
            terminate(self.pid, timeout=45.0, proc=self._proc)
        if self.run_dir is not None and self.workdir is not None:
            _sweep(self.workdir / "data", self.run_dir / "x")
            if self.run_dir_is_temp:
                shutil.rmtree(self.run_dir, ignore_errors=True)
                (self.workdir / "run-dir").unlink(missing_ok=True)
        self.started = False

    def _kill_containers(self) -> None:
        """SIGKILL our daemon's running containers: dockerd would wait 10s for each."""
        with contextlib.suppress(Exception):  # best effort: dockerd's shutdown stops them too
            for container in self.client().containers.list():
                container.kill()


def ping_docker(base_url: str | None, timeout: int = 3) -> bool:
    """True when the engine answers; ``None`` means the one ``DOCKER_HOST`` names.

    Unix sockets are pinged by hand: docker-py leaks the socket of a refused
    connection (a ResourceWarning for every poll while dockerd starts).
    """
    url = os.environ.get("DOCKER_HOST", "") if base_url is None else base_url
    if url.startswith("unix://"):
        return _ping_unix(url[len("unix://") :], timeout)
    try:
        client = (
            docker.from_env(timeout=timeout)
            if base_url is None
            else docker.DockerClient(base_url=base_url, timeout=timeout)
        )
    except docker.errors.DockerException:
        return False
    try:
        return bool(client.ping())
    except Exception:  # requests/urllib3/docker errors alike mean "not answering"
        return False
    finally:
        client.close()


def _ping_unix(path: str, timeout: float) -> bool:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(timeout)
        try:
            sock.connect(path)
            sock.sendall(b"GET /_ping HTTP/1.0\r\nHost: docker\r\n\r\n")
            head = sock.recv(64)
        except OSError:
            return False
    return head.split(b" ", 2)[1:2] == [b"200"]


def _sweep(data_root: Path, exec_root: Path) -> None:
    """Clean up after a dockerd that died (kill -9): a no-op after a clean stop.

    Kills our containers' processes (found by their cgroups, named by the ids in
    our data-root), then containerd and its shims, unmounts what is left under
    our roots and removes the containers' empty cgroups.
    """
    ids = [d.name for d in (data_root / "containers").glob("*") if len(d.name) == 64]
    cgroups = [cg for cid in ids for cg in _container_cgroups(cid)]
    for cg in cgroups:
        for line in (cg / "cgroup.procs").read_text().split():
            with contextlib.suppress(ProcessLookupError):
                os.kill(int(line), signal.SIGKILL)
    for root in (exec_root, data_root):
        for pid in pids_mentioning(f"{root}/", ("containerd", "dockerd", "runc")):
            with contextlib.suppress(TestEnvError):
                terminate(pid, timeout=10.0)
    # dockerd reuses "containerd is still running" by pid, and a killed containerd
    # may linger as an unreaped zombie: a new dockerd would wait for it forever.
    (exec_root / "containerd" / "containerd.pid").unlink(missing_ok=True)
    for root in (exec_root, data_root):
        if root.exists():
            for point in mounts_under(root):
                subprocess.run(["umount", "-l", point], capture_output=True)
    for cg in cgroups:
        for _ in range(50):  # rmdir fails while killed processes are still exiting
            try:
                cg.rmdir()
                break
            except FileNotFoundError:
                break
            except OSError:
                time.sleep(0.1)


def _container_cgroups(container_id: str) -> list[Path]:
    """cgroup dirs (v1 hierarchies and v2) of one of our containers (cgroupfs driver)."""
    base = Path("/sys/fs/cgroup")
    found = [*base.glob(f"*/docker/{container_id}"), *base.glob(f"docker/{container_id}")]
    return [cg for cg in found if (cg / "cgroup.procs").exists()]


def _run_dir(workdir: Path) -> tuple[Path, bool]:
    """Directory for the socket and exec-root; a short /tmp one if *workdir* is long."""
    marker = workdir / "run-dir"
    if len(str(workdir.resolve())) <= _MAX_SOCKET_DIR:
        return workdir.resolve(), False
    if marker.exists():
        return Path(marker.read_text().strip()), True
    tmp = Path(tempfile.mkdtemp(prefix="testenv-", dir="/tmp"))
    marker.write_text(str(tmp))
    return tmp, True


def ensure_docker(
    workdir: Path, timeout: float = 90.0, die_with_parent: bool = False
) -> DockerEngine:
    """Reuse a Docker engine that answers, or install and start our own dockerd.

    Order: ``DOCKER_HOST``, ``/var/run/docker.sock``, a dockerd this workdir
    already runs (e.g. from ``python -m testenv up``), else a new dockerd.
    *die_with_parent*: the daemon gets SIGTERM if this process dies (test sessions).
    """
    env_host = os.environ.get("DOCKER_HOST")
    if env_host and ping_docker(None):
        return DockerEngine(base_url=env_host, started=False, from_env=True)
    if ping_docker(f"unix://{DEFAULT_SOCKET}"):
        return DockerEngine(base_url=f"unix://{DEFAULT_SOCKET}", started=False)

    workdir.mkdir(parents=True, exist_ok=True)
    workdir = workdir.resolve()
    run_dir, is_temp = _run_dir(workdir)
    run_dir.mkdir(parents=True, exist_ok=True)
    sock, pidfile, exec_root = run_dir / "docker.sock", run_dir / "dockerd.pid", run_dir / "x"
    base_url = f"unix://{sock}"
    if ping_docker(base_url):
        old = _read_pid(pidfile)
        return DockerEngine(base_url, False, old, workdir, run_dir, is_temp)

    # A previous run died here: clear its pid file, socket, helpers and mounts.
    old = _read_pid(pidfile)
    if old is not None and pid_matches(old, str(exec_root)):
        terminate(old, timeout=30.0)
    _sweep(workdir / "data", exec_root)
    pidfile.unlink(missing_ok=True)
    sock.unlink(missing_ok=True)

    ensure_binaries(["dockerd"])
    forced = os.environ.get("TESTENV_STORAGE_DRIVER")
    drivers: list[str | None] = [forced] if forced else [None, "vfs"]
    errors = []
    for driver in drivers:
        argv = _dockerd_argv(workdir, run_dir, driver)
        engine = _start_dockerd(argv, workdir, run_dir, is_temp, driver, die_with_parent)
        try:
            wait_until(
                lambda: ping_docker(base_url),
                timeout,
                f"dockerd ({' '.join(argv)})",
                alive=lambda e=engine: e._proc is not None and e._proc.poll() is None,  # type: ignore[misc]
                log=engine.log_path,
            )
            return engine
        except TestEnvError as exc:
            errors.append(str(exc))
            engine.stop()
            if "graphdriver" not in str(exc):  # only a storage driver failure is worth a retry
                break
    raise TestEnvError("could not start dockerd:\n" + "\n\n".join(errors))


def _dockerd_argv(workdir: Path, run_dir: Path, driver: str | None) -> list[str]:
    """Everything dockerd writes stays under *workdir*/*run_dir*; host config is ignored."""
    settings: dict[str, str] = {}
    if _dockerd_major() < 23:  # else it writes /etc/docker/key.json (gone in 23)
        settings["deprecated-key-path"] = str(workdir / "key.json")
    config = workdir / "daemon.json"
    config.write_text(json.dumps(settings) + "\n")
    argv = [
        "dockerd",
        f"--config-file={config}",  # not /etc/docker/daemon.json
        f"--data-root={workdir / 'data'}",
        f"--exec-root={run_dir / 'x'}",
        f"--host=unix://{run_dir / 'docker.sock'}",
        f"--pidfile={run_dir / 'dockerd.pid'}",
        "--bridge=none",
        "--iptables=false",
        "--ip6tables=false",
        "--ip-forward=false",
        "--ip-masq=false",
        "--userland-proxy=false",
        "--exec-opt=native.cgroupdriver=cgroupfs",  # no systemd here
    ]
    return [*argv, f"--storage-driver={driver}"] if driver else argv


@functools.cache
def _dockerd_major() -> int:
    out = subprocess.run(["dockerd", "--version"], capture_output=True, text=True).stdout
    match = re.search(r"version (\d+)\.", out)  # "Docker version 20.10.24+dfsg1, build ..."
    return int(match.group(1)) if match else 0


def _start_dockerd(
    argv: list[str],
    workdir: Path,
    run_dir: Path,
    is_temp: bool,
    driver: str | None,
    die_with_parent: bool,
) -> DockerEngine:
    env = {
        k: v for k, v in os.environ.items() if k not in _PROXY_VARS and not k.startswith("DOCKER_")
    }
    env["PATH"] = env.get("PATH", "/usr/bin:/bin") + ":/usr/sbin:/sbin"
    log = workdir / "dockerd.log"
    with open(log, "a") as fh:
        fh.write(f"\n{LOG_MARKER}{time.strftime('%F %T')} {' '.join(argv)}\n")
    proc = spawn(argv, log, env=env, die_with_parent=die_with_parent)
    return DockerEngine(
        base_url=f"unix://{run_dir / 'docker.sock'}",
        started=True,
        pid=proc.pid,
        workdir=workdir,
        run_dir=run_dir,
        run_dir_is_temp=is_temp,
        storage_driver=driver,
        _proc=proc,
    )


def _read_pid(path: Path) -> int | None:
    try:
        return int(path.read_text().strip())
    except (OSError, ValueError):
        return None
