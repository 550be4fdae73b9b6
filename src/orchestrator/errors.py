"""Exceptions a hook raises to steer the engine, plus the core's own error types.

A hook's exception decides what happens next: ``NonRecoverableError`` fails the node
instance at once, ``RecoverableError`` and ``OperationRetry`` ask for another try (after
``retry_after`` seconds when given), and any other exception counts as recoverable.
"""

from __future__ import annotations


class OrchestratorError(Exception):
    """Base of every error the core raises on purpose."""


class UsageError(OrchestratorError):
    """Bad usage that is not a blueprint problem (unknown deployment, changed blueprint); exit 2."""


class NonRecoverableError(OrchestratorError):
    """The operation failed and retrying cannot help (bad parameters, refused credentials)."""


class RecoverableError(OrchestratorError):
    """The operation failed for a reason that may pass (throttling, a resource not ready yet).

    ``retry_after`` (seconds) overrides the engine's backoff for the next attempt.
    """

    def __init__(self, message: str = "", retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class OperationRetry(RecoverableError):
    """Raised by ``ctx.operation.retry()``: the operation asks to be run again later."""


class SkipOperation(OrchestratorError):
    """Raised by a hook wrapper *before* it yields: the operation is skipped, not failed.

    This is how a type-less plugin implements dry-run or a policy that bypasses an
    operation: the owning plugin's hook is not called, the operation counts as done,
    and an ``operation_skipped`` event records the reason.
    """


class PluginError(OrchestratorError):
    """A plugin could not be loaded or is inconsistent (names the plugin and distribution)."""


class StateLockedError(OrchestratorError):
    """Another live execution holds the deployment."""


class DamagedValue(ValueError):
    """A value read from the state is not what was written there (SQLite keeps no checksums:
    a flipped byte shows only when the value is read). The CLI says the state is damaged."""

    @classmethod
    def plan(cls, exc: Exception) -> DamagedValue:
        """A stored plan whose JSON is not the layout ``Plan.to_json`` writes."""
        return cls(f"a stored plan does not have the layout of one ({type(exc).__name__}: {exc})")


class StateError(OrchestratorError):
    """The state cannot be used as it is: damaged, unwritable, full, incompatible or lost.

    The message names the file and what to do; the command exits 1.
    """


class StatePathError(StateError):
    """``--state`` names no usable state file (a directory, or nothing for a read-only command); exit 2."""


class LockLostError(StateError):
    """This execution no longer holds its deployment's lock (it expired and was taken over, or was
    cleared with ``unlock --force``); nothing more is written."""


class ExecutorError(OrchestratorError):
    """Hook calls cannot be sent where they should run (the broker is unreachable, no worker
    answers); nothing has run; the command exits 1."""


class ExecutorUsageError(ExecutorError):
    """The executor is asked for without what it needs (a broker URL, Celery installed); exit 2."""
