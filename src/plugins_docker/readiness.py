"""Waiting for a started container to be ready, and explaining why it is not.

"Ready" means running (and healthy, when the container has a healthcheck, its own or
the image's) and still running after ``startup_grace`` seconds. A container that exits,
crash-loops or turns unhealthy fails ``start`` at once with the tail of its log, because
starting it again would fail the same way; one that is merely slow is retried.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from orchestrator import NonRecoverableError, RecoverableError
from plugins_docker.errors import engine_errors

POLL = 0.1  # seconds between inspections; doubles up to MAX_POLL
MAX_POLL = 1.0


def wait_ready(container: Any, *, timeout: float, grace: float, log_tail: int, where: str,
               clock: Callable[[], float] = time.monotonic, sleep: Callable[[float], None] = time.sleep) -> dict[str, Any]:
    """Poll until ready; returns the container's final ``State``."""
    started = clock()
    poll = POLL
    while True:
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
        if status == "running":
            if health == "unhealthy":
                raise NonRecoverableError(
                    f"container {container.name} is unhealthy: {_last_probe(state)}"
                    f"{log_excerpt(container, log_tail, where)}")
            if health == "healthy" or (health is None and clock() - started >= grace):
                return state
        elapsed = clock() - started
        if elapsed >= timeout:
            raise RecoverableError(f"container {container.name} is not ready after {elapsed:.1f}s "
                                   f"(status {status}, health {health or 'none'})", retry_after=0)
        sleep(min(poll, max(0.0, timeout - elapsed)))
        poll = min(poll * 2, MAX_POLL)


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
