"""AWS failures as the engine's errors: transient ones retry, the rest fail at once.

botocore's standard retry mode already retries throttling and 5xx answers a few times
inside one call; what still escapes becomes a ``RecoverableError`` so the engine retries
the whole operation later. Bad parameters become a ``NonRecoverableError`` quoting AWS's
code and message, since retrying cannot fix them. botocore is imported on the first
call, not when the plugin is loaded (every command loads plugins).
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Collection
from typing import Any

from orchestrator import NonRecoverableError, RecoverableError

TRANSIENT_CODES = frozenset({
    "RequestLimitExceeded", "Throttling", "ThrottlingException", "RequestThrottled",
    "EC2ThrottledException", "TooManyRequestsException", "PriorRequestNotComplete",
    "InternalError", "InternalFailure", "ServiceUnavailable", "Unavailable", "RequestTimeout",
    "InsufficientInstanceCapacity", "InsufficientAddressCapacity", "IncorrectState",
    "IncorrectInstanceState", "ConcurrentTagAccess", "DependencyViolation",
})


@functools.cache
def _botocore() -> Any:
    import botocore.exceptions

    return botocore.exceptions


def sdk_errors() -> tuple[type[Exception], ...]:
    """The exceptions boto3 raises for AWS's answers and for its own failures."""
    exceptions = _botocore()
    return exceptions.BotoCoreError, exceptions.ClientError


def error_code(exc: BaseException | None) -> str | None:
    """AWS's error code of a ``ClientError`` (e.g. ``InvalidKeyPair.NotFound``), else None."""
    if exc is not None and isinstance(exc, _botocore().ClientError):
        return str(exc.response.get("Error", {}).get("Code") or "") or None
    return None


def translate(exc: Exception, retry_codes: Collection[str] = (),
              retry_after: float | None = None) -> Exception:
    """The engine error for a boto3 failure (returned, for ``raise ... from exc``)."""
    exceptions = _botocore()
    if isinstance(exc, exceptions.ClientError):
        code = error_code(exc) or "Unknown"
        message = exc.response.get("Error", {}).get("Message") or str(exc)
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0
        text = f"AWS {code} in {exc.operation_name}: {message}"
        if code in TRANSIENT_CODES or code in retry_codes or status >= 500:
            return RecoverableError(text, retry_after=retry_after)
        return NonRecoverableError(text)
    if isinstance(exc, (exceptions.ConnectionError, exceptions.HTTPClientError)):
        return RecoverableError(f"AWS unreachable: {exc}", retry_after=retry_after)
    if isinstance(exc, exceptions.BotoCoreError):  # credentials, region, parameters: retrying cannot help
        return NonRecoverableError(f"AWS client configuration: {exc}")
    return exc


def call(method: Callable[..., dict[str, Any]], /, *, ignore: Collection[str] = (),
         retry_codes: Collection[str] = (), retry_after: float | None = None,
         **params: Any) -> dict[str, Any] | None:
    """Call one boto3 method; None when AWS answers a code in ``ignore`` (e.g. NotFound).

    ``retry_codes`` are codes that mean "not yet" here (eventual consistency right after
    a create); they become a ``RecoverableError`` like throttling does.
    """
    try:
        return method(**params)
    except sdk_errors() as exc:
        if error_code(exc) in ignore:
            return None
        raise translate(exc, retry_codes, retry_after) from exc


def paginate(client: Any, operation: str, result_key: str, **params: Any) -> list[Any]:
    """Every item of ``result_key`` across all pages of a describe call."""
    try:
        pages = client.get_paginator(operation).paginate(**params)
        return [item for page in pages for item in page.get(result_key) or []]
    except sdk_errors() as exc:
        raise translate(exc) from exc
