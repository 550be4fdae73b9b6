"""Debian's ``docker-registry`` (distribution v2) on 127.0.0.1, optionally with htpasswd.

Plain http is fine: dockerd treats registries on 127.0.0.0/8 as insecure by
default, so neither TLS nor daemon configuration is needed.
"""

from __future__ import annotations

import base64
import json
import os
import secrets
import subprocess
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from testenv._proc import (
    TestEnvError,
    ensure_binaries,
    free_port,
    http_status,
    pid_matches,
    spawn,
    terminate,
    wait_until,
)


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
