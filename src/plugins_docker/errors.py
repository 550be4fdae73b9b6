"""Turning Docker SDK exceptions into the engine's retry decisions.

Retrying helps when the engine or a registry is briefly unreachable or overloaded
(connection refused, timeouts, 5xx from a proxy); it cannot help with a missing image,
a bad name or refused credentials, so those fail at once with the engine's own message.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager

import docker
import requests

from orchestrator import NonRecoverableError, RecoverableError

RETRY_AFTER = 2.0  # seconds; the core's backoff takes over when None

# The engine reports registry failures as HTTP 500 with the registry's words in the body.
_PERMANENT = re.compile(
    r"unauthorized|authentication required|no basic auth credentials|denied|forbidden"
    r"|manifest unknown|not found|no such|does not exist|invalid reference|invalid argument"
    r"|must be lowercase|repository name|invalid (tag|name|container name)|conflict"
    r"|is already in use|pull access denied",
    re.IGNORECASE,
)
_TRANSIENT = re.compile(
    r"connection refused|connection reset|timeout|timed out|temporarily|too many requests"
    r"|i/o timeout|eof|no route to host|service unavailable|bad gateway|try again",
    re.IGNORECASE,
)


def engine_message(exc: BaseException) -> str:
    """The engine's own words for an error (docker-py wraps them in HTTP noise)."""
    explanation = getattr(exc, "explanation", None)
    if explanation:
        return str(explanation.decode() if isinstance(explanation, bytes) else explanation).strip()
    return str(exc).strip() or type(exc).__name__


def is_permanent_message(message: str) -> bool:
    """True when a registry/engine message means retrying cannot help."""
    return bool(_PERMANENT.search(message)) and not _TRANSIENT.search(message)


def classify(exc: BaseException, action: str) -> Exception:
    """The hook error to raise for an SDK exception met while doing *action*."""
    if isinstance(exc, (NonRecoverableError, RecoverableError)):
        return exc
    message = f"{action}: {engine_message(exc)}"
    if isinstance(exc, docker.errors.APIError):
        status = exc.status_code or 0
        if status in (502, 503, 504, 429, 408):
            return RecoverableError(message, retry_after=RETRY_AFTER)
        if 400 <= status < 500:  # 404 missing, 400 bad name, 401/403 credentials, 409 conflict
            return NonRecoverableError(message)
        if is_permanent_message(engine_message(exc)):
            return NonRecoverableError(message)
        return RecoverableError(message, retry_after=RETRY_AFTER)
    if isinstance(exc, (docker.errors.TLSParameterError, docker.errors.InvalidArgument,
                        docker.errors.InvalidRepository, docker.errors.NullResource)):
        return NonRecoverableError(message)
    if isinstance(exc, (requests.exceptions.ConnectionError, requests.exceptions.Timeout,
                        docker.errors.DockerException, ConnectionError, TimeoutError)):
        return RecoverableError(message, retry_after=RETRY_AFTER)
    return exc if isinstance(exc, Exception) else RuntimeError(message)


@contextmanager
def engine_errors(action: str) -> Iterator[None]:
    """Re-raise SDK exceptions inside the block as Recoverable/NonRecoverable errors."""
    try:
        yield
    except (NonRecoverableError, RecoverableError):
        raise
    except (docker.errors.DockerException, requests.exceptions.RequestException,
            ConnectionError, TimeoutError) as exc:
        raise classify(exc, action) from exc
