"""Which Docker engine a node talks to, and a client for it.

Resolution order (first match wins), so a container follows the machine it runs on:

1. the node's own ``docker_host`` property;
2. up the ``contained_in`` chain: each host's ``docker_host`` runtime property, then its
   ``docker_host`` property (an ``aws.ec2.Instance`` publishes its engine at runtime);
3. the ``DOCKER_HOST`` environment variable (with ``DOCKER_TLS_VERIFY`` and
   ``DOCKER_CERT_PATH``);
4. the local default engine (``docker.from_env()``).

The Docker SDK is imported when a client is first built, not when the plugin loads.
"""

from __future__ import annotations

import atexit
import functools
import hashlib
import os
import shutil
import tempfile
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from orchestrator import NonRecoverableError
from plugins_docker.errors import engine_errors

if TYPE_CHECKING:
    import docker

CONTAINED_IN = "orchestrator.relationships.contained_in"
DEFAULT_TIMEOUT = 60
_MAX_HOST_DEPTH = 32  # a contained_in chain longer than this is a cycle


class _Instance(Protocol):
    runtime_properties: Mapping[str, Any]
    relationships: list[Any]


@dataclass(frozen=True)
class EngineSpec:
    """Connection settings of one engine; ``url=None`` means "from the environment"."""

    url: str | None
    source: str  # where the setting came from, for logs and errors
    tls_verify: bool = False
    ca_cert: str | None = None
    client_cert: str | None = None
    client_key: str | None = None
    timeout: int = DEFAULT_TIMEOUT

    def __str__(self) -> str:
        return f"{self.url or 'the default engine'} (from {self.source})"


def spec_from_value(value: Any, source: str) -> EngineSpec | None:
    """An ``EngineSpec`` from a ``docker_host`` value: a URL string or the data type's dict."""
    if isinstance(value, str):
        return EngineSpec(url=value, source=source) if value else None
    if not isinstance(value, Mapping) or not value.get("url"):
        return None
    return EngineSpec(
        url=str(value["url"]),
        source=source,
        tls_verify=bool(value.get("tls_verify", False)),
        ca_cert=value.get("ca_cert") or None,
        client_cert=value.get("client_cert") or None,
        client_key=value.get("client_key") or None,
        timeout=int(value.get("timeout") or DEFAULT_TIMEOUT),
    )


def resolve_engine(properties: Mapping[str, Any], instance: _Instance,
                   environ: Mapping[str, str] | None = None) -> EngineSpec:
    """Apply the resolution order above to one node instance (pure, so it is unit-testable)."""
    own = spec_from_value(properties.get("docker_host"), "the node's docker_host property")
    if own is not None:
        return own
    current, seen = instance, 0
    while seen < _MAX_HOST_DEPTH:
        host = _host_of(current)
        if host is None:
            break
        seen += 1
        host_id = getattr(host.instance, "id", "host")
        spec = spec_from_value(host.instance.runtime_properties.get("docker_host"),
                               f"host {host_id}'s docker_host runtime property")
        spec = spec or spec_from_value(host.node.properties.get("docker_host"),
                                       f"host {host_id}'s docker_host property")
        if spec is not None:
            return spec
        current = host.instance
    env = os.environ if environ is None else environ
    if env.get("DOCKER_HOST"):
        return EngineSpec(url=None, source=f"DOCKER_HOST={env['DOCKER_HOST']}")
    return EngineSpec(url=None, source="the local default")


def _host_of(instance: _Instance) -> Any:
    """The target (``.node``, ``.instance``) of the instance's ``contained_in`` relationship."""
    for rel in getattr(instance, "relationships", None) or []:
        if CONTAINED_IN in (rel.type_hierarchy or [rel.type]):
            return rel.target
    return None


def engine_for(ctx: Any) -> EngineSpec:
    """The engine of the node instance an operation runs on."""
    return resolve_engine(ctx.node.properties, ctx.instance)


@contextmanager
def connect(spec: EngineSpec) -> Iterator[docker.DockerClient]:
    """A client for one operation (closed afterwards); engine errors become hook errors."""
    with engine_errors(f"connecting to the Docker engine {spec}"):
        client_class = _client_classes()[1]
        if spec.url is None:
            client = client_class.from_env(timeout=spec.timeout)
        else:
            client = client_class(base_url=spec.url, tls=_tls(spec), timeout=spec.timeout)
    try:
        yield client
    finally:
        client.close()


@functools.cache
def _client_classes() -> tuple[type, type]:
    """docker-py's API client and client, fixed to verify a TLS engine against its own CA.

    requests lets REQUESTS_CA_BUNDLE / CURL_CA_BUNDLE replace a session's ``verify`` on
    every request that passes none (psf/requests#3829), and docker-py passes none: an
    engine whose certificate a private CA signed (``ca_cert``, ``DOCKER_CERT_PATH``) would
    be checked against the system bundle instead, and refused; ``tls_verify: false`` would
    verify all the same. The session's own setting wins; proxy variables still apply. The
    API client asks the engine for its version while it is constructed, so the fix must be
    in place before that: subclasses, not a patch applied afterwards. Built on first use.
    """
    import docker

    class APIClient(docker.APIClient):
        def merge_environment_settings(self, url: Any, proxies: Any, stream: Any, verify: Any,
                                       cert: Any) -> dict[str, Any]:
            settings: dict[str, Any] = super().merge_environment_settings(url, proxies, stream, verify, cert)
            if verify is None and self.verify is not True:  # the engine's CA file, or False
                settings["verify"] = self.verify
            return settings

    class DockerClient(docker.DockerClient):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            self.api = APIClient(*args, **kwargs)

    return APIClient, DockerClient


def _tls(spec: EngineSpec) -> Any:
    """docker-py's ``TLSConfig`` for the spec, or False for plain TCP."""
    import docker
    from docker.tls import TLSConfig

    if not (spec.tls_verify or spec.ca_cert or spec.client_cert):
        return False
    if bool(spec.client_cert) != bool(spec.client_key):
        raise NonRecoverableError(f"docker_host of {spec}: client_cert and client_key go together")
    try:
        cert = (_pem_file(spec.client_cert), _pem_file(spec.client_key)) if spec.client_cert else None
        return TLSConfig(client_cert=cert, ca_cert=_pem_file(spec.ca_cert) if spec.ca_cert else None,
                         verify=spec.tls_verify)
    except docker.errors.TLSParameterError as exc:
        raise NonRecoverableError(f"docker_host of {spec}: {exc}") from None


_pem_dir: str | None = None
_pem_lock = threading.Lock()


def _pem_file(value: str | None) -> str | None:
    """A path for a certificate or key given either as a path or as PEM text.

    PEM text (e.g. a host's runtime property) is written once to a private directory
    that is removed when the process exits.
    """
    global _pem_dir
    if value is None or "-----BEGIN" not in value:
        return value
    with _pem_lock:
        if _pem_dir is None:
            _pem_dir = tempfile.mkdtemp(prefix="orchestrator-docker-tls-")
            atexit.register(shutil.rmtree, _pem_dir, True)
        path = os.path.join(_pem_dir, hashlib.sha256(value.encode()).hexdigest()[:32] + ".pem")
        if not os.path.exists(path):
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as fh:
                fh.write(value)
    return path
