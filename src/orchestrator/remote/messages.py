"""What travels between the CLI and the workers: an operation request and its outcome, as JSON.

A request names everything a worker needs to build the operation's ``ctx`` with the same
context factory the CLI uses: the state (where the plan and the other instances'
runtime properties are), the stored plan by digest, the instance, the hook, the retry
number, the acting instances' runtime properties as the CLI holds them, and the secrets
the plan uses (so the broker must be as private as the state database). An outcome says
what the hook returned or raised, and how it changed runtime properties key by key;
exceptions come back as the engine's own classes so retries and failures behave as
they do locally, with the worker's traceback attached as a note.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from orchestrator.engine.events import clipped, exception_text, traceback_text
from orchestrator.errors import NonRecoverableError, OperationRetry, RecoverableError, SkipOperation

VERSION = 1


class RemoteError(Exception):
    """An exception a hook raised on a worker; its class is named like the original one."""


class RemoteExit(BaseException):
    """A plugin raised SystemExit or KeyboardInterrupt on a worker: not retried, as locally."""


_remote_types: dict[tuple[str, type], type[BaseException]] = {}


def runtime_diff(before: Mapping[str, Any], after: Mapping[str, Any]) -> dict[str, Any] | None:
    """Key by key: what changed from ``before`` to ``after`` (None when nothing did)."""
    changed = {k: v for k, v in after.items() if k not in before or before[k] != v}
    removed = [k for k in before if k not in after]
    if not changed and not removed:
        return None
    return {"set": changed, "unset": removed}


def apply_diff(runtime: dict[str, Any], diff: Mapping[str, Any]) -> None:
    for key in diff.get("unset", ()):
        runtime.pop(key, None)
    runtime.update(diff.get("set", {}))


# -- outcomes -----------------------------------------------------------------------


def success(result: Any, runtime: Mapping[str, Any], worker: str) -> str:
    return json.dumps({"ok": True, "result": result, "runtime": runtime, "worker": worker}, default=str,
                      ensure_ascii=False)


def failure(exc: BaseException, runtime: Mapping[str, Any], worker: str, masker: Any = None) -> str:
    """The outcome of a hook that raised ``exc`` (message and traceback masked by ``masker``)."""
    if isinstance(exc, SkipOperation):
        kind = "skip"
    elif isinstance(exc, OperationRetry):
        kind = "retry"
    elif isinstance(exc, RecoverableError):
        kind = "recoverable"
    elif isinstance(exc, NonRecoverableError):
        kind = "nonrecoverable"
    elif isinstance(exc, Exception):
        kind = "error"
    else:
        kind = "exit"
    mask = masker or (lambda text: text)
    error = {"kind": kind, "type": type(exc).__name__, "message": clipped(mask(exception_text(exc))),
             "traceback": traceback_text(exc, mask),
             "retry_after": getattr(exc, "retry_after", None)}
    return json.dumps({"ok": False, "error": error, "runtime": runtime, "worker": worker}, default=str,
                      ensure_ascii=False)


def exception_of(outcome: Mapping[str, Any]) -> BaseException:
    """The exception to raise in the CLI for a failed outcome: the engine's class, so retries
    and failures go exactly as they would have locally."""
    error = outcome.get("error") or {}
    kind, message = error.get("kind"), str(error.get("message", ""))
    exc: BaseException
    if kind == "skip":
        exc = SkipOperation(message)
    elif kind == "retry":
        exc = OperationRetry(message, retry_after=error.get("retry_after"))
    elif kind == "recoverable":
        exc = RecoverableError(message, retry_after=error.get("retry_after"))
    elif kind == "nonrecoverable":
        exc = NonRecoverableError(message)
    else:
        base = RemoteExit if kind == "exit" else RemoteError
        name = str(error.get("type") or base.__name__)
        cls = _remote_types.get((name, base))
        if cls is None:  # named like the original, so messages read as they would locally
            cls = _remote_types.setdefault((name, base), type(name, (base,), {"__module__": __name__}))
        exc = cls(message)
    if error.get("traceback"):
        exc.add_note(f"on worker {outcome.get('worker', '?')}:\n{error['traceback'].rstrip()}")
    return exc
