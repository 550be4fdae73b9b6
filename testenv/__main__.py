"""CLI for the demo and Makefile: ``python -m testenv up|env|down --dir DIR``.

``up`` starts detached daemons (they outlive the command) and records them in
``DIR/env.json``; ``down`` stops exactly those, by pid (checked against the
command line, so a stale pid reused by another process is left alone).
``up`` is idempotent: whatever still answers is kept.
"""

from __future__ import annotations

import argparse
import fcntl
import json
import shlex
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from testenv._proc import TestEnvError, http_status, pid_matches
from testenv.docker_engine import (
    DockerEngine,
    Registry,
    build_busybox_image,
    ensure_docker,
    ensure_registry,
    ping_docker,
)
from testenv.moto_server import MotoServer, start_moto

State = dict[str, Any]


def _load(path: Path) -> State:
    try:
        return dict(json.loads(path.read_text()))
    except (OSError, ValueError):
        return {}


@contextmanager
def _locked(root: Path) -> Iterator[None]:
    """One ``up``/``down`` at a time per DIR."""
    root.mkdir(parents=True, exist_ok=True)
    with open(root / ".lock", "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        yield


def _docker_from(state: State) -> DockerEngine | None:
    rec = state.get("docker_engine")
    if not rec:
        return None
    return DockerEngine(
        base_url=rec["base_url"],
        started=rec["owned"],
        pid=rec["pid"],
        workdir=Path(rec["workdir"]) if rec["workdir"] else None,
        run_dir=Path(rec["run_dir"]) if rec["run_dir"] else None,
        run_dir_is_temp=rec["run_dir_is_temp"],
    )


def _up_docker(root: Path, state: State) -> DockerEngine:
    # Checked before ensure_docker(): with DOCKER_HOST exported by `env`, it would
    # find our own dockerd through DOCKER_HOST and take it for a foreign one.
    prev = _docker_from(state)
    if prev and prev.started and _ours_and_answering(prev):
        return prev
    engine = ensure_docker(root / "docker")
    owned = engine.started or engine.run_dir is not None  # ours, now or from an earlier `up`
    state["docker_host"] = engine.base_url
    state["docker_engine"] = {
        "base_url": engine.base_url,
        "owned": owned,
        "pid": engine.pid if owned else None,
        "workdir": str(engine.workdir) if engine.workdir else None,
        "run_dir": str(engine.run_dir) if engine.run_dir else None,
        "run_dir_is_temp": engine.run_dir_is_temp,
    }
    state["pids"]["dockerd"] = engine.pid if owned else None
    return engine


def _ours_and_answering(engine: DockerEngine) -> bool:
    return (
        engine.pid is not None
        and pid_matches(engine.pid, "dockerd")
        and ping_docker(engine.base_url)
    )


def _up_registry(root: Path, state: State) -> Registry:
    pid, address = state["pids"].get("registry"), state.get("registry")
    workdir = root / "registry"
    if pid and address and pid_matches(pid, str(workdir)):
        if http_status(f"http://{address}/v2/") == 200:
            return Registry(address, None, pid, workdir)
        Registry(address, None, pid, workdir).stop()  # alive but deaf: replace it
    reg = ensure_registry(workdir)
    state["registry"], state["pids"]["registry"] = reg.address, reg.pid
    if not str(state.get("image") or "").startswith(f"{reg.address}/"):
        state["image"] = None  # recorded for a registry address that is gone
    return reg


def _up_moto(root: Path, state: State) -> None:
    pid, url = state["pids"].get("moto"), state.get("aws_endpoint_url")
    if pid and url and pid_matches(pid, "moto.server"):
        if http_status(f"{url}/moto-api/data.json") is not None:
            return
        MotoServer(url, pid).stop()
    server = start_moto(in_process=False, log_path=root / "moto.log")
    state["aws_endpoint_url"], state["pids"]["moto"] = server.endpoint_url, server.pid


def up(root: Path, docker: bool, registry: bool, image: bool, moto: bool) -> State:
    """Start what is asked (all when nothing is), keep what already runs."""
    if not (docker or registry or image or moto):
        docker = registry = image = moto = True
    with _locked(root):
        state = _load(root / "env.json")
        state.setdefault("pids", {})
        for key in ("docker_host", "registry", "image", "aws_endpoint_url"):
            state.setdefault(key, None)
        try:
            engine = _up_docker(root, state) if (docker or image) else None
            reg = _up_registry(root, state) if (registry or image) else None
            if image and engine is not None and reg is not None:
                state["image"] = build_busybox_image(engine, reg)
            if moto:
                _up_moto(root, state)
        finally:  # record whatever did start, so `down` can stop it even after a failure
            (root / "env.json").write_text(json.dumps(state, indent=2) + "\n")
    return state


def down(root: Path) -> None:
    """Stop what ``up`` recorded and wait until it is gone; then forget it."""
    with _locked(root):
        state = _load(root / "env.json")
        pids = state.get("pids", {})
        if pids.get("moto") and state.get("aws_endpoint_url"):
            MotoServer(state["aws_endpoint_url"], pids["moto"]).stop()
        if pids.get("registry") and state.get("registry"):
            Registry(state["registry"], None, pids["registry"], root / "registry").stop()
        engine = _docker_from(state)
        if engine is not None:
            engine.stop()
        (root / "env.json").unlink(missing_ok=True)


def env_lines(root: Path) -> list[str]:
    """Shell ``export`` lines for what ``up`` recorded."""
    state = _load(root / "env.json")
    if not state:
        raise TestEnvError(f"nothing is up in {root} (no env.json); run `python -m testenv up`")
    values = {
        "DOCKER_HOST": state.get("docker_host"),
        "TESTENV_REGISTRY": state.get("registry"),
        "TESTENV_IMAGE": state.get("image"),
        "AWS_ENDPOINT_URL": state.get("aws_endpoint_url"),
    }
    if state.get("aws_endpoint_url"):
        values |= {
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_DEFAULT_REGION": "us-east-1",
        }
    return [f"export {k}={shlex.quote(v)}" for k, v in values.items() if v]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m testenv", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    p_up = sub.add_parser("up", help="start engines (all when no flag is given)")
    for name in ("docker", "registry", "image", "moto"):
        p_up.add_argument(f"--{name}", action="store_true")
    sub.add_parser("down", help="stop what `up` started")
    sub.add_parser("env", help="print shell export lines")
    for p in sub.choices.values():
        p.add_argument("--dir", type=Path, required=True, help="state directory")
    args = parser.parse_args(argv)
    root = args.dir.resolve()
    try:
        if args.command == "up":
            state = up(root, args.docker, args.registry, args.image, args.moto)
            print(json.dumps(state, indent=2))
        elif args.command == "down":
            down(root)
        else:
            print("\n".join(env_lines(root)))
    except TestEnvError as exc:
        print(f"testenv: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
