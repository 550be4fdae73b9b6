"""A real Docker engine, a real registry and an offline busybox image.

The sandbox this runs in has no Docker daemon and no internet, so we start
Debian's ``dockerd`` on a private socket (no bridge, no iptables: containers use
host networking only), Debian's ``docker-registry`` on 127.0.0.1 and build an
image from the static busybox binary. Registries on 127.0.0.0/8 are treated as
insecure (plain http) by dockerd by default, so no daemon config is needed.
"""

from __future__ import annotations

import base64
import contextlib
import functools
import io
import json
import os
import re
import secrets
import shutil
import signal
import subprocess
import tarfile
import tempfile
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import docker

from testenv._proc import (
    BUSYBOX,
    LOG_MARKER,
    TestEnvError,
    ensure_binaries,
    free_port,
    http_status,
    mounts_under,
    pid_alive,
    pid_matches,
    pids_mentioning,
    spawn,
    terminate,
    wait_until,
)

DEFAULT_SOCKET = "/var/run/docker.sock"
_MAX_SOCKET_DIR = 60  # exec-root/containerd/containerd-debug.sock must fit in 108 bytes
_PROXY_VARS = ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy")


# --------------------------------------------------------------------------- engine


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


def _ping(base_url: str | None, timeout: int = 3) -> bool:
    """True when the engine answers; ``None`` means the one ``DOCKER_HOST`` names."""
    try:
        if base_url is None:
            client = docker.from_env(timeout=timeout)
        else:
            client = docker.DockerClient(base_url=base_url, timeout=timeout)
    except docker.errors.DockerException:
        return False
    try:
        return bool(client.ping())
    except Exception:  # requests/urllib3/docker errors alike mean "not answering"
        return False
    finally:
        client.close()


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
    if env_host and _ping(None):
        return DockerEngine(base_url=env_host, started=False, from_env=True)
    if _ping(f"unix://{DEFAULT_SOCKET}"):
        return DockerEngine(base_url=f"unix://{DEFAULT_SOCKET}", started=False)

    workdir.mkdir(parents=True, exist_ok=True)
    workdir = workdir.resolve()
    run_dir, is_temp = _run_dir(workdir)
    run_dir.mkdir(parents=True, exist_ok=True)
    sock, pidfile, exec_root = run_dir / "docker.sock", run_dir / "dockerd.pid", run_dir / "x"
    base_url = f"unix://{sock}"
    if _ping(base_url):
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
                lambda: _ping(base_url),
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


# ------------------------------------------------------------------------- registry


@dataclass
class Registry:
    """A ``docker-registry`` (distribution v2) serving plain http on 127.0.0.1."""

    address: str
    auth: tuple[str, str] | None = None
    pid: int | None = None
    workdir: Path | None = None
    _proc: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    @property
    def url(self) -> str:
        return f"http://{self.address}"

    @property
    def auth_config(self) -> dict[str, str] | None:
        """Credentials in the shape docker-py's push/pull expect."""
        if self.auth is None:
            return None
        return {"username": self.auth[0], "password": self.auth[1]}

    def has_manifest(self, repository: str, tag: str) -> bool:
        req = urllib.request.Request(
            f"{self.url}/v2/{repository}/manifests/{tag}",
            method="HEAD",
            headers={"Accept": "application/vnd.docker.distribution.manifest.v2+json"},
        )
        if self.auth:
            token = base64.b64encode(f"{self.auth[0]}:{self.auth[1]}".encode()).decode()
            req.add_header("Authorization", f"Basic {token}")
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        try:
            with opener.open(req, timeout=5) as resp:
                return int(resp.status) == 200
        except OSError:
            return False

    def stop(self) -> None:
        if self.pid is not None and (
            self._proc is not None or pid_matches(self.pid, "docker-registry")
        ):
            terminate(self.pid, timeout=15.0, proc=self._proc)
        self.pid = None


def ensure_registry(
    workdir: Path,
    auth: tuple[str, str] | None = None,
    timeout: float = 30.0,
    die_with_parent: bool = False,
) -> Registry:
    """Start a registry on a free 127.0.0.1 port with storage in *workdir*.

    With *auth*, an htpasswd file (bcrypt, via ``htpasswd -B``) is configured.
    Ready when ``/v2/`` answers 200 (or 401 with auth).
    """
    ensure_binaries(["docker-registry", *(["htpasswd"] if auth else [])])
    workdir.mkdir(parents=True, exist_ok=True)
    workdir = workdir.resolve()
    log = workdir / "registry.log"
    errors = []
    for _ in range(3):  # free_port() is racy: retry on a lost port
        port = free_port()
        config = _registry_config(workdir, port, auth)
        argv = ["docker-registry", "serve", str(config)]
        proc = spawn(argv, log, env=_registry_env(), die_with_parent=die_with_parent)
        reg = Registry(f"127.0.0.1:{port}", auth, proc.pid, workdir, proc)
        try:
            wait_until(
                lambda r=reg: http_status(f"{r.url}/v2/") in (200, 401),  # type: ignore[misc]
                timeout,
                f"docker-registry on {reg.address}",
                alive=lambda p=proc: p.poll() is None,  # type: ignore[misc]
                log=log,
            )
            return reg
        except TestEnvError as exc:
            errors.append(str(exc))
            reg.stop()
    raise TestEnvError("\n\n".join(errors))


def _registry_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("REGISTRY_")}


def _registry_config(workdir: Path, port: int, auth: tuple[str, str] | None) -> Path:
    config: dict[str, Any] = {
        "version": 0.1,
        "log": {"level": "info", "accesslog": {"disabled": True}},
        "storage": {
            "filesystem": {"rootdirectory": str(workdir / "storage")},
            "delete": {"enabled": True},
        },
        "http": {"addr": f"127.0.0.1:{port}", "secret": secrets.token_hex(16)},
    }
    if auth:
        htpasswd = workdir / "htpasswd"
        line = subprocess.run(
            ["htpasswd", "-nbB", auth[0], auth[1]], capture_output=True, text=True, check=True
        ).stdout.strip()
        htpasswd.write_text(line + "\n")
        config["auth"] = {"htpasswd": {"realm": "testenv", "path": str(htpasswd)}}
    path = workdir / "config.yml"
    path.write_text(json.dumps(config, indent=2))  # JSON is valid YAML
    return path


# ---------------------------------------------------------------------------- image


def build_busybox_image(
    engine: DockerEngine,
    registry: Registry,
    repository: str = "testenv/busybox",
    tag: str = "latest",
) -> str:
    """Import a busybox image offline, push it to *registry*, drop the local copy.

    Returns ``ADDRESS/repository:tag``. Skips the build when the registry already
    holds that tag, so repeated calls are cheap. The local copy is removed so a
    later pull is a real pull from the registry (checked once here).
    """
    ensure_binaries(["busybox"])
    name = f"{registry.address}/{repository}"
    ref = f"{name}:{tag}"
    if registry.has_manifest(repository, tag):
        return ref
    api = engine.client().api
    api.import_image_from_data(
        _busybox_rootfs_tar(),
        repository=name,
        tag=tag,
        changes=['CMD ["/bin/sh"]', "ENV PATH=/usr/sbin:/usr/bin:/sbin:/bin"],
    )
    _check_stream(
        api.push(name, tag, stream=True, decode=True, auth_config=registry.auth_config), ref
    )
    api.remove_image(ref)
    _check_stream(
        api.pull(name, tag, stream=True, decode=True, auth_config=registry.auth_config), ref
    )
    api.remove_image(ref)
    return ref


def _check_stream(chunks: Any, ref: str) -> None:
    for chunk in chunks:
        if "error" in chunk:
            raise TestEnvError(f"{ref}: {chunk.get('error')}")


def _busybox_rootfs_tar() -> bytes:
    """A minimal root filesystem: static busybox plus one symlink per applet."""
    applets = subprocess.run([str(BUSYBOX), "--list"], capture_output=True, text=True, check=True)
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for d, mode in [("bin", 0o755), ("etc", 0o755), ("usr", 0o755), ("root", 0o700),
                        ("tmp", 0o1777), ("proc", 0o555), ("sys", 0o555), ("dev", 0o755),
                        ("var", 0o755), ("var/www", 0o755)]:  # fmt: skip
            _add(tar, d, tarfile.DIRTYPE, mode)
        for link, target in [("sbin", "bin"), ("usr/bin", "../bin"), ("usr/sbin", "../bin")]:
            _add(tar, link, tarfile.SYMTYPE, 0o777, linkname=target)
        _add(tar, "bin/busybox", tarfile.REGTYPE, 0o755, data=BUSYBOX.read_bytes())
        for applet in sorted(set(applets.stdout.split()) - {"busybox"}):
            _add(tar, f"bin/{applet}", tarfile.SYMTYPE, 0o777, linkname="busybox")
        _add(tar, "etc/passwd", tarfile.REGTYPE, 0o644, data=b"root:x:0:0:root:/root:/bin/sh\n")
        _add(tar, "etc/group", tarfile.REGTYPE, 0o644, data=b"root:x:0:\n")
    return buf.getvalue()


def _add(
    tar: tarfile.TarFile, name: str, kind: bytes, mode: int, data: bytes = b"", linkname: str = ""
) -> None:
    info = tarfile.TarInfo(name)
    info.type, info.mode, info.linkname, info.mtime = kind, mode, linkname, 0
    info.size = len(data) if kind == tarfile.REGTYPE else 0
    tar.addfile(info, io.BytesIO(data) if kind == tarfile.REGTYPE else None)
