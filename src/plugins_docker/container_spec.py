"""From ``docker.Container`` properties to ``containers.create`` arguments.

Pure functions (no engine calls) so every mapping rule is unit-testable; a malformed
value is the blueprint author's mistake, so it raises ``NonRecoverableError``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from orchestrator import NonRecoverableError
from plugins_docker import labels, limits, schema
from plugins_docker.reference import image_reference

_NS = 1_000_000_000


def image_for(properties: Mapping[str, Any], relationships: list[Any]) -> str:
    """The ``image`` property, else the image of the related ``docker.Image`` node."""
    if properties.get("image"):
        return str(properties["image"])
    targets = [rel.target for rel in relationships
               if schema.USES_IMAGE in (rel.type_hierarchy or [])
               or schema.IMAGE_TYPE in (rel.target.node.type_hierarchy or [])]
    if not targets:
        raise NonRecoverableError(
            "docker.Container has no image: set the image property or add a relationship "
            f"{schema.USES_IMAGE} to a {schema.IMAGE_TYPE} node")
    if len(targets) > 1:
        ids = ", ".join(getattr(t.instance, "id", "?") for t in targets)
        raise NonRecoverableError(f"docker.Container relates to several images ({ids}); keep one")
    target = targets[0]
    return str(target.instance.runtime_properties.get("image") or image_reference(target.node.properties))


def create_kwargs(properties: Mapping[str, Any], deployment: str, instance: str, image: str) -> dict[str, Any]:
    """Keyword arguments for ``client.containers.create``."""
    kwargs: dict[str, Any] = {
        "image": image,
        "name": properties.get("name") or labels.container_name(deployment, instance),
        "labels": container_labels(properties.get("labels") or {}, deployment, instance),
        "network_mode": properties.get("network_mode") or "host",
        "detach": True,
    }
    for key in ("command", "entrypoint"):
        if properties.get(key) is not None:
            kwargs[key] = _command(properties[key], key)
    if properties.get("environment"):
        kwargs["environment"] = {str(k): _env_value(v) for k, v in properties["environment"].items()}
    if properties.get("ports"):
        kwargs["ports"] = ports(properties["ports"])
    if properties.get("volumes"):
        kwargs["volumes"] = [str(v) for v in properties["volumes"]]
    policy = restart_policy(properties.get("restart_policy") or "no")
    if policy:
        kwargs["restart_policy"] = policy
    if properties.get("healthcheck"):
        kwargs["healthcheck"] = healthcheck(properties["healthcheck"])
    for key in ("user", "working_dir"):
        if properties.get(key):
            kwargs[key] = str(properties[key])
    if properties.get("extra_hosts"):
        kwargs["extra_hosts"] = {str(k): str(v) for k, v in properties["extra_hosts"].items()}
    for key in ("tty", "stdin_open"):
        if properties.get(key):
            kwargs[key] = True
    kwargs.update(limits.create_kwargs(properties.get("resources")))
    return kwargs


def container_labels(user: Mapping[str, Any], deployment: str, instance: str) -> dict[str, str]:
    """User labels plus the ownership labels, which always win."""
    result = {str(k): "" if v is None else str(v) for k, v in user.items()}
    result.update(labels.owner_labels(deployment, instance))
    return result


def _command(value: Any, key: str) -> str | list[str]:
    if isinstance(value, str):
        return value
    if isinstance(value, list) and all(isinstance(v, (str, int, float)) for v in value):
        return [str(v) for v in value]
    raise NonRecoverableError(f"docker.Container {key} must be a string or a list of strings, got {value!r}")


def _env_value(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def ports(value: Mapping[str, Any]) -> dict[str, Any]:
    """``{'80/tcp': 8080 | '8080' | '127.0.0.1:8080' | null}`` in docker-py's shape."""
    result: dict[str, Any] = {}
    for key, host in value.items():
        port = str(key) if "/" in str(key) else f"{key}/tcp"
        if not re.fullmatch(r"\d+/(tcp|udp|sctp)", port):
            raise NonRecoverableError(f"docker.Container ports: bad container port {key!r} (use 80 or 80/tcp)")
        if host is None or isinstance(host, int):
            result[port] = host
        elif isinstance(host, str) and re.fullmatch(r"\d+", host):
            result[port] = int(host)
        elif isinstance(host, str) and re.fullmatch(r"(\[[0-9a-fA-F:]+\]|[^:\[\]]+):\d*", host):
            ip, _, number = host.rpartition(":")
            result[port] = (ip.strip("[]"), int(number)) if number else (ip.strip("[]"),)
        else:
            raise NonRecoverableError(f"docker.Container ports: bad host port {host!r} for {key!r} "
                                      "(use 8080, '127.0.0.1:8080' or null)")
    return result


def restart_policy(value: str) -> dict[str, Any] | None:
    """``on-failure:3`` -> ``{'Name': 'on-failure', 'MaximumRetryCount': 3}``; ``no`` -> None."""
    name, _, count = value.partition(":")
    if name not in ("no", "always", "unless-stopped", "on-failure") or (count and not count.isdigit()):
        raise NonRecoverableError(f"docker.Container restart_policy {value!r}: use no, always, "
                                  "unless-stopped or on-failure[:N]")
    if name == "no":
        return None
    policy: dict[str, Any] = {"Name": name}
    if count:
        policy["MaximumRetryCount"] = int(count)
    return policy


def healthcheck(value: Mapping[str, Any]) -> dict[str, Any]:
    """The data type in seconds -> the engine's healthcheck in nanoseconds."""
    test = value.get("test")
    if isinstance(test, str) and test.strip():
        test_list = ["CMD-SHELL", test]
    elif isinstance(test, list) and test and all(isinstance(t, str) for t in test):
        test_list = test if test[0] in ("CMD", "CMD-SHELL", "NONE") else ["CMD", *test]
    else:
        raise NonRecoverableError(f"docker.Container healthcheck.test must be a command string or list, got {test!r}")
    return {
        "test": test_list,
        "interval": int(float(value.get("interval", 1.0)) * _NS),
        "timeout": int(float(value.get("timeout", 5.0)) * _NS),
        "retries": int(value.get("retries", 3)),
        "start_period": int(float(value.get("start_period", 0.0)) * _NS),
    }
