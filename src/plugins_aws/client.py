"""boto3 EC2 clients, one per distinct configuration, shared by every operation.

Building a client loads the service model (tens of milliseconds), so clients are cached
by their ``client_config`` and the AWS_* environment they were built under; boto3
clients are thread-safe, sessions are not, hence the lock around construction.

``client_config`` may give only some settings: the rest comes from boto3's usual chain
(environment, ``~/.aws``, instance role), credentials included: a ``client_config``
with only ``aws_session_token``, say, takes the key pair from the chain. A
configuration that cannot work fails at once with ``NonRecoverableError`` saying why.
This module imports boto3: plugin modules import it when a client is first needed.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Mapping
from typing import Any

import boto3
import botocore.config
import botocore.exceptions
import botocore.session

from orchestrator import NonRecoverableError

BOTO_CONFIG = botocore.config.Config(
    retries={"mode": "standard", "max_attempts": 5},  # throttling and 5xx, with backoff
    connect_timeout=10,
    read_timeout=60,
    user_agent_extra="orchestrator-aws/0.1",
)

# Environment that changes what a client talks to or as whom: part of the cache key.
_ENV_KEYS = (
    "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_EC2", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN", "AWS_PROFILE", "AWS_DEFAULT_REGION", "AWS_REGION",
    "AWS_CONFIG_FILE", "AWS_SHARED_CREDENTIALS_FILE", "AWS_IGNORE_CONFIGURED_ENDPOINT_URLS",
)
KEY_FIELDS = ("aws_access_key_id", "aws_secret_access_key", "aws_session_token")
_MAX_CACHED = 32

_lock = threading.Lock()
_clients: dict[tuple[Any, ...], Any] = {}


def ec2_client(client_config: Mapping[str, Any] | None = None) -> Any:
    """An EC2 client for ``client_config`` (an ``aws.datatypes.ClientConfig`` value)."""
    config = {k: v for k, v in (client_config or {}).items() if v not in (None, "")}
    key = (tuple(sorted((k, str(v)) for k, v in config.items())),
           tuple(os.environ.get(k) for k in _ENV_KEYS))
    with _lock:
        client = _clients.get(key)
        if client is None:
            client = _build(config)
            if len(_clients) >= _MAX_CACHED:
                _clients.clear()
            _clients[key] = client
    return client


def _build(config: Mapping[str, Any]) -> Any:
    try:
        session = boto3.session.Session(region_name=config.get("region_name"),
                                        profile_name=config.get("profile_name"),
                                        **credentials(config))
        return session.client("ec2", endpoint_url=config.get("endpoint_url"), config=BOTO_CONFIG)
    except botocore.exceptions.NoRegionError:
        raise NonRecoverableError("no AWS region: set client_config.region_name or "
                                  "AWS_DEFAULT_REGION") from None
    except botocore.exceptions.ProfileNotFound as exc:
        raise NonRecoverableError(f"AWS profile not found: {exc}") from None
    except (botocore.exceptions.BotoCoreError, TypeError, ValueError) as exc:
        raise NonRecoverableError(f"AWS client configuration: {type(exc).__name__}: {exc}") from None


def credentials(config: Mapping[str, Any]) -> dict[str, str]:
    """The key pair (and token) to use: ``client_config``'s, completed from boto3's chain."""
    given = {k: str(config[k]) for k in KEY_FIELDS if config.get(k)}
    if not given or ("aws_access_key_id" in given and "aws_secret_access_key" in given):
        return given  # nothing given (boto3 finds everything), or a key pair of its own
    try:
        found = botocore.session.Session(profile=config.get("profile_name")).get_credentials()
    except botocore.exceptions.BotoCoreError as exc:
        raise NonRecoverableError(f"AWS credentials: client_config gives only {', '.join(given)}, and "
                                  f"boto3's chain fails: {exc}") from None
    chain = found.get_frozen_credentials() if found is not None else None
    merged = {"aws_access_key_id": getattr(chain, "access_key", None),
              "aws_secret_access_key": getattr(chain, "secret_key", None),
              "aws_session_token": getattr(chain, "token", None), **given}
    missing = [k for k in ("aws_access_key_id", "aws_secret_access_key") if not merged.get(k)]
    if missing:
        raise NonRecoverableError(
            f"AWS credentials: client_config gives only {', '.join(given)}, and boto3's chain (environment, "
            f"~/.aws, instance role) has no {' nor '.join(missing)} to go with it")
    return {k: v for k, v in merged.items() if v}


def clear_cache() -> None:
    """Forget cached clients (tests that change credentials or endpoints)."""
    with _lock:
        _clients.clear()
