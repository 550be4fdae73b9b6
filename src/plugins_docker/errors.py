"""Turning Docker SDK exceptions into the engine's retry decisions.

Retrying helps when the engine or a registry is briefly unreachable or overloaded
(connection refused, timeouts, 5xx from a proxy); it cannot help with a missing image,
a bad name, refused credentials or a TLS handshake the engine refuses (a wrong CA, a
missing client certificate), so those fail at once with the engine's (or TLS's) own
words. The Docker SDK is imported on first use, not when the plugin loads.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterator
from contextlib import contextmanager

from orchestrator import NonRecoverableError, RecoverableError

RETRY_AFTER = 2.0  # seconds; the core's backoff takes over when None

@functools.cache
def _patterns() -> tuple[re.Pattern[str], re.Pattern[str], re.Pattern[str]]:
    """(permanent, transient, TLS) error words; compiled when an error first needs them,
    not at plugin discovery (case-insensitive alternations take milliseconds to compile)."""
    # The engine reports registry failures as HTTP 500 with the registry's words in the body.
    permanent = re.compile(
        r"unauthorized|authentication required|no basic auth credentials|denied|forbidden"
        r"|manifest unknown|not found|no such|does not exist|invalid reference|invalid argument"
        r"|must be lowercase|repository name|invalid (tag|name|container name)|conflict"
        r"|is already in use|pull access denied",
        re.IGNORECASE,
    )
    transient = re.compile(
        r"connection refused|connection reset|timeout|timed out|temporarily|too many requests"
        r"|i/o timeout|eof|no route to host|service unavailable|bad gateway|try again",
        re.IGNORECASE,
    )
    tls = re.compile(r"SSLError|certificate verify failed|certificate required|bad certificate|unknown ca"
                     r"|wrong version number|TLSV1_ALERT|SSLV3_ALERT|handshake failure", re.IGNORECASE)
    return permanent, transient, tls


def engine_message(exc: BaseException) -> str:
    """The engine's own words for an error (docker-py wraps them in HTTP noise)."""
    explanation = getattr(exc, "explanation", None)
    if explanation:
        return str(explanation.decode() if isinstance(explanation, bytes) else explanation).strip()
    return str(exc).strip() or type(exc).__name__


def is_permanent_message(message: str) -> bool:
    """True when a registry/engine message means retrying cannot help."""
    permanent, transient, _ = _patterns()
    return bool(permanent.search(message)) and not transient.search(message)


def tls_failure(exc: BaseException) -> bool:
    """A TLS error anywhere in ``exc``'s chain (docker-py wraps it in its own exceptions)."""
    seen: list[BaseException] = []
    while exc is not None and exc not in seen:
        if "SSLError" in type(exc).__name__ or _patterns()[2].search(str(exc)):
            return True
        seen.append(exc)
        exc = exc.__cause__ or exc.__context__  # type: ignore[assignment]
    return False


def classify(exc: BaseException, action: str) -> Exception:
    """The hook error to raise for an SDK exception met while doing *action*."""
    import docker
    import requests

    if isinstance(exc, (NonRecoverableError, RecoverableError)):
        return exc
    message = f"{action}: {engine_message(exc)}"
    if tls_failure(exc):
        return NonRecoverableError(f"{action}: the TLS handshake with the engine failed (check tls_verify, ca_cert, "
                                   f"client_cert and client_key): {engine_message(exc)}")
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
    except Exception as exc:
        error = classify(exc, action)
        if error is exc:
            raise
        raise error from exc
