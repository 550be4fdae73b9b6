"""Where hook calls run: the seam between the scheduler and the plugins.

The runner decides *what* runs and records what came of it; an executor only runs one
hook call and hands back its result (or raises what the hook raised). ``LocalExecutor``
calls the hook in the runner's own thread. ``orchestrator.remote`` sends the same call,
as plain data (``Call``), to Celery workers on other hosts: each worker rebuilds the
``ctx`` from the stored plan with the same context factory, and its runtime property
changes come back to be merged here exactly as a local hook's are.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Protocol

import attrs

from orchestrator.engine import hook_output

if TYPE_CHECKING:
    from orchestrator.engine.context import OperationContext
    from orchestrator.plan import Plan


@attrs.define(slots=True, frozen=True)
class Call:
    """One hook call as data: enough for a worker elsewhere to build the same ``ctx``."""

    instance: str
    op: str  # the hook
    key: str  # how the instance's record names the step
    relationship: int | None  # index into the instance's relationships
    owner: str | None  # the plugin that owns the type
    attempt: int  # retry number
    plan: Plan
    changes: Mapping[str, tuple[Any, Any]] | None = None  # ctx.changes of an update
    custom: tuple[str, Mapping[str, Any]] | None = None  # run_operation: (operation, inputs)
    resumed: bool = False  # recorded as started by an earlier execution: a worker may have finished it
    transient: bool = False  # a check (drift, custom operation): nothing recorded on the instance


class Withdrawn(Exception):
    """A stop was requested before any worker took the call: it never ran, and nothing is
    recorded of it (the instance stays as it was, for a rerun to resume)."""


class Executor(Protocol):
    remote: bool  # True: a dispatch is recorded in the state, and settled with the step's write

    def call(self, caller: Any, ctx: OperationContext, call: Call | None, live: Any) -> Any:
        """Run the hook; return what it returned, or raise what it raised. ``call`` is the
        call as data, given to remote executors only (a local one needs ``ctx`` alone);
        ``live()`` turns False once the runner gave up on this call (timed out, abandoned)."""

    def close(self) -> None: ...


def run_hook(caller: Any, ctx: OperationContext) -> Any:
    """Call a hook as every executor does (here, or on a worker): what its thread prints becomes
    its log lines, and once it returned its ``ctx`` takes no more ``update()``."""
    token = hook_output.running(ctx.logger._say)
    try:
        return caller(ctx=ctx)
    finally:
        ctx._hook_returned()
        hook_output.done(token)


class LocalExecutor:
    """Hooks run in the runner's worker threads (the default)."""

    remote = False

    def call(self, caller: Any, ctx: OperationContext, call: Call | None, live: Any) -> Any:
        return run_hook(caller, ctx)

    def close(self) -> None:
        pass
