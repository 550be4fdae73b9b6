"""The ``docker_host`` runtime property: how the Docker plugin reaches an instance's engine.

Its shape is what ``plugins_docker`` reads from a ``contained_in`` host: ``url``,
``tls_verify``, ``ca_cert``, ``client_cert``, ``client_key`` (paths or PEM), ``timeout``.

Shared by the instance plugin (on start) and the elastic IP plugin (an association
changes the public address a derived URL points at). The data type is the core's
``orchestrator.datatypes.DockerHost`` (the Docker plugin reads the same);
``aws.datatypes.DockerHost`` remains as another name for it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

CORE_TYPE = "orchestrator.datatypes.DockerHost"
DATA_TYPE = "aws.datatypes.DockerHost"

DATA_TYPES: dict[str, Any] = {
    DATA_TYPE: {"derived_from": CORE_TYPE, "description": "The same as orchestrator.datatypes.DockerHost."},
}

_PASSED_ON = ("ca_cert", "client_cert", "client_key", "timeout")


def docker_host(spec: Mapping[str, Any] | None, public_ip: str | None,
                private_ip: str | None) -> dict[str, Any] | None:
    """The runtime ``docker_host`` for a ``DockerHost`` spec and the instance's addresses."""
    if not spec:
        return None
    tls = bool(spec.get("tls_verify", False))
    url = spec.get("url")
    if not url:
        address = private_ip if spec.get("use_private_ip") else (public_ip or private_ip)
        port = spec.get("port") or (2376 if tls else 2375)
        url = f"tcp://{address}:{port}" if address else None
    result: dict[str, Any] = {"url": url, "tls_verify": tls}
    result.update({k: spec[k] for k in _PASSED_ON if spec.get(k)})
    return result
