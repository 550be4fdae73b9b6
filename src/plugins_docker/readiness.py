"""Is a started container ready, and if it never will be, why not.

"Ready" means running (and healthy, when the container has a healthcheck, its own or
the image's) and still running ``startup_grace`` seconds after it was first seen
running. ``check`` inspects once: it returns the ``State`` when ready, a
``NotReady`` (saying when to look again) when not yet, and raises
``NonRecoverableError`` with the tail of the log for a container that exits,
crash-loops or turns unhealthy, because starting it again would fail the same way.
``start`` polls it through ``wait_until``, so waiting holds no worker.
"""

from __future__ import annotations

from typing import Any

from orchestrator import NonRecoverableError, RecoverableError
from orchestrator.sdk import NotReady
from plugins_docker.errors import engine_errors


def check(container: Any, *, grace: float, running_for: float | None, log_tail: int,
          where: str) -> dict[str, Any] | NotReady:
    """One look at a started container. ``running_for``: seconds since it was first seen
    running (None: not seen running yet)."""
    with engine_errors(f"inspecting container {container.name} on {where}"):
        container.reload()
    state = container.attrs.get("State") or {}
    status = state.get("Status")
    health = (state.get("Health") or {}).get("Status")
    if status in ("exited", "dead"):
        raise NonRecoverableError(
            f"container {container.name} exited with code {state.get('ExitCode')}"
            f"{_engine_error(state)} right after it started{log_excerpt(container, log_tail, where)}")
    if status == "restarting":
        raise NonRecoverableError(
            f"container {container.name} keeps restarting (exit code {state.get('ExitCode')})"
            f"{log_excerpt(container, log_tail, where)}")
    if status != "running":
        return NotReady(why=f"status {status}")
    if health == "unhealthy":
        raise NonRecoverableError(
            f"container {container.name} is unhealthy: {_last_probe(state)}{log_excerpt(container, log_tail, where)}")
    if health == "healthy":
        return state
    if health is None:
        waited = running_for or 0.0
        if waited >= grace:
            return state
        return NotReady(after=grace - waited, why="running, within its startup grace")
    return NotReady(why=f"health {health}")


def log_excerpt(container: Any, lines: int, where: str) -> str:
    """``; last N log lines:`` and the lines, or nothing when there are none."""
    if lines <= 0:
        return ""
    try:
        with engine_errors(f"reading the log of {container.name} on {where}"):
            raw = container.logs(stdout=True, stderr=True, tail=lines)
    except (NonRecoverableError, RecoverableError) as exc:
        return f" (log unavailable: {exc})"
    text = raw.decode("utf-8", "replace").rstrip() if isinstance(raw, bytes) else str(raw).rstrip()
    if not text:
        return " (the container printed nothing)"
    return f"; last {lines} log lines:\n" + "\n".join(f"  | {line}" for line in text.splitlines())


def _engine_error(state: dict[str, Any]) -> str:
    error = state.get("Error")
    return f" ({error})" if error else ""


def _last_probe(state: dict[str, Any]) -> str:
    probes = (state.get("Health") or {}).get("Log") or []
    if not probes:
        return "no probe output"
    last = probes[-1]
    return f"probe exit code {last.get('ExitCode')}: {str(last.get('Output', '')).strip()[:500]}"
