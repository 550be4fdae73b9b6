"""How a workflow runs: concurrency, retries, timeouts, executor (no engine code, so cheap to import)."""

from __future__ import annotations

import attrs

from orchestrator.settings import DEFAULT_OPERATION_TIMEOUT


@attrs.define(slots=True)
class Options:
    concurrency: int = 10
    retries: int = 5
    retry_interval: float = 1.0  # first backoff; doubles each retry
    max_backoff: float = 30.0
    operation_timeout: float = DEFAULT_OPERATION_TIMEOUT  # per hook call; a template may override it
    ignore_failures: bool = False  # uninstall: go on past failed operations, report what may be left
    executor: str = "local"  # where hook calls run: "local" (threads here) or "celery" (workers via a broker)
    broker: str | None = None  # the Celery broker's URL (else ORCHESTRATOR_BROKER)
    queue: str = "orchestrator"  # the queue the workers consume
