"""Type declarations (blueprint form) of the Docker plugins.

The image plugin owns the shared data types (``RegistryAuth``, and the name
``docker.datatypes.DockerHost``) because a type name may be registered by one plugin
only; the container plugin refers to them. ``docker_host`` properties are of the core's
``orchestrator.datatypes.DockerHost``, the type the AWS plugin publishes on instances
and an ``orchestrator.nodes.Compute`` host may declare; ``docker.datatypes.DockerHost``
remains as another name for it.

``replace_on_change`` marks what ``update`` cannot change in place: a container's image,
command, environment, ports and the rest of its creation settings (the engine has no
way to change them), an image's reference, and the engine itself (``docker_host``).
"""

from __future__ import annotations

from typing import Any

IMAGE_TYPE = "docker.Image"
CONTAINER_TYPE = "docker.Container"
USES_IMAGE = "docker.relationships.container_uses_image"
CORE_DOCKER_HOST = "orchestrator.datatypes.DockerHost"
DOCKER_HOST_TYPE = "docker.datatypes.DockerHost"
REGISTRY_AUTH_TYPE = "docker.datatypes.RegistryAuth"
HEALTHCHECK_TYPE = "docker.datatypes.Healthcheck"
RESOURCES_TYPE = "docker.datatypes.Resources"


def _optional(type_: str | None, description: str) -> dict[str, Any]:
    prop: dict[str, Any] = {"required": False, "description": description}
    if type_:
        prop["type"] = type_
    return prop


def _default(type_: str, default: Any, description: str, **extra: Any) -> dict[str, Any]:
    return {"type": type_, "default": default, "description": description, **extra}


def _replaced(prop: dict[str, Any]) -> dict[str, Any]:
    """A property whose change replaces the resource (``replace_on_change``)."""
    return {**prop, "replace_on_change": True}


DOCKER_HOST_PROPERTY = _replaced(_optional(
    CORE_DOCKER_HOST, "The engine to use (url required). Unset: the contained_in host's docker_host, "
    "then DOCKER_HOST, then the local default."))
_BYTES = r"\d+[bkmgBKMG]?"

SHARED_DATA_TYPES: dict[str, Any] = {
    DOCKER_HOST_TYPE: {"derived_from": CORE_DOCKER_HOST,
                       "description": "The same as orchestrator.datatypes.DockerHost."},
    REGISTRY_AUTH_TYPE: {
        "description": "Registry credentials (pass the password with get_secret).",
        "properties": {
            "username": {"type": "string"},
            "password": {"type": "string"},
            "registry": _optional("string", "The registry address (docker's serveraddress); "
                                  "default: the image repository's registry."),
        },
    },
}

IMAGE_TYPES: dict[str, Any] = {
    "data_types": SHARED_DATA_TYPES,
    "node_types": {
        IMAGE_TYPE: {
            "derived_from": "orchestrator.nodes.Root",
            "description": "An image pulled on create; removed on delete if this deployment pulled it.",
            "properties": {
                "repository": _replaced({"type": "string", "description": "e.g. registry:5000/team/app"}),
                "tag": _replaced(_default("string", "latest", "Ignored when digest is set.")),
                "digest": _replaced(_optional("string", "sha256:... ; pins the image instead of tag.")),
                "registry_auth": _optional(REGISTRY_AUTH_TYPE, "Credentials for a private registry."),
                "pull_policy": _default(
                    "string", "always", "always: pull on create; if_not_present: pull only when "
                    "missing; never: the image must already be there.",
                    constraints=[{"valid_values": ["always", "if_not_present", "never"]}]),
                "keep_on_delete": _default("boolean", False, "Never remove the image on delete."),
                "docker_host": DOCKER_HOST_PROPERTY,
            },
        },
    },
}

CONTAINER_OPERATIONS: dict[str, Any] = {  # orchestrator execute; see operations.py
    "exec": {
        "description": "Run a command in the running container (docker exec); its output and exit code.",
        "inputs": {
            "command": {"required": True,
                        "description": "A string, split like a shell would (but not run by one: "
                                       "[sh, -c, '...'] for pipes and $VARS), or a list."},
            "workdir": {"type": "string", "required": False, "description": "Working directory."},
            "env": {"type": "dict", "entry_schema": "string", "default": {},
                    "description": "More environment variables for the command."},
            "user": {"type": "string", "required": False, "description": "User (and group) to run as."},
            "check": {"type": "boolean", "default": False,
                      "description": "Fail the operation when the exit code is not 0."},
        },
    },
    "logs": {
        "description": "The container's output (stdout and stderr), its last lines.",
        "inputs": {
            "tail": {"type": "integer", "default": 100, "constraints": [{"greater_or_equal": 0}],
                     "description": "Only the last N lines (0: all)."},
            "timestamps": {"type": "boolean", "default": False, "description": "Prefix each line with its time."},
        },
    },
    "restart": {
        "description": "Stop and start the container again (docker restart); the same container.",
        "inputs": {
            "timeout": {"type": "integer", "required": False, "constraints": [{"greater_or_equal": 0}],
                        "description": "Seconds between the stop signal and SIGKILL (default: the "
                                       "node's stop_timeout)."},
        },
    },
}

CONTAINER_TYPES: dict[str, Any] = {
    "data_types": {
        HEALTHCHECK_TYPE: {
            "description": "A container healthcheck; start waits until it reports healthy.",
            "properties": {
                "test": {"description": "A shell command (string, run with CMD-SHELL) or an "
                         "exec list like [CMD, wget, -q, URL]."},
                "interval": _default("float", 1.0, "Seconds between checks."),
                "timeout": _default("float", 5.0, "Seconds one check may take."),
                "retries": _default("integer", 3, "Failures in a row before unhealthy."),
                "start_period": _default("float", 0.0, "Seconds of grace after start."),
            },
        },
        RESOURCES_TYPE: {
            "description": "Resource limits; changed in place (docker update).",
            "properties": {
                "memory": {"type": "string", "required": False, "constraints": [{"pattern": _BYTES}],
                           "description": "Memory limit: bytes or 512k, 256m, 1g. Docker can raise or "
                                          "lower it in place, not lift it (that needs a new container)."},
                "memory_swap": {"type": "string", "required": False, "constraints": [{"pattern": f"-1|{_BYTES}"}],
                                "description": "Memory plus swap (-1: unlimited swap); default twice "
                                               "memory."},
                "cpus": {"type": "float", "required": False, "constraints": [{"greater_than": 0}],
                         "description": "CPUs the container may use, like docker run --cpus (1.5)."},
            },
        },
    },
    "relationships": {
        USES_IMAGE: {
            "derived_from": "orchestrator.relationships.depends_on",
            "description": "The container runs the target docker.Image (pulled on its engine).",
        },
    },
    "node_types": {
        CONTAINER_TYPE: {
            "derived_from": "orchestrator.nodes.Root",
            "description": "A container: created on create, started (and awaited) on start.",
            "properties": {
                "image": _replaced(_optional("string", "Image reference; or a relationship to a docker.Image.")),
                "name": _optional("string", "Container name; default <deployment>-<instance> "
                                  "(set it only with instances: 1). Renamed in place."),
                "command": _replaced(_optional(None, "A string (split like a shell) or a list.")),
                "entrypoint": _replaced(_optional(None, "A string or a list; overrides the image's.")),
                "environment": _replaced(_default("dict", {}, "Environment variables.")),
                "ports": _replaced(_default("dict", {}, "Published ports, {'80/tcp': 8080 | '127.0.0.1:8080' "
                                            "| null}; ignored by the engine with network_mode host.")),
                "volumes": _replaced(_default("list", [], "Binds like /host/dir:/ctr/dir[:ro] or volume:/dir.",
                                              entry_schema="string")),
                "restart_policy": _default(
                    "string", "no", "no | always | unless-stopped | on-failure[:MAX_RETRIES]; changed in place.",
                    constraints=[{"pattern": r"no|always|unless-stopped|on-failure(:\d+)?"}]),
                "resources": _optional(RESOURCES_TYPE, "Memory and CPU limits; changed in place."),
                "network_mode": _replaced(_default("string", "host", "host, none, bridge, container:NAME, ...")),
                "labels": _replaced(_default("dict", {}, "Extra labels (orchestrator.* are set automatically).")),
                "healthcheck": _replaced(_optional(HEALTHCHECK_TYPE, "Start waits until the container is healthy.")),
                "user": _replaced(_optional("string", "User (and group) to run as.")),
                "working_dir": _replaced(_optional("string", "Working directory inside the container.")),
                "stop_timeout": _default("integer", 10, "Seconds between SIGTERM and SIGKILL on stop.",
                                         constraints=[{"greater_or_equal": 0}]),
                "start_timeout": _default("float", 60.0, "Seconds start waits for running/healthy "
                                          "before it retries.", constraints=[{"greater_than": 0}]),
                "startup_grace": _default("float", 1.0, "Seconds the container must stay up before "
                                          "start succeeds (catches a container that exits at once).",
                                          constraints=[{"greater_or_equal": 0}]),
                "log_tail": _default("integer", 20, "Log lines quoted when the container fails.",
                                     constraints=[{"greater_or_equal": 0}]),
                "extra_hosts": _replaced(_default("dict", {}, "Extra /etc/hosts entries, {name: address}.")),
                "tty": _replaced(_default("boolean", False, "Give the container a terminal.")),
                "stdin_open": _replaced(_default("boolean", False, "Keep the container's stdin open.")),
                "pull_policy": _default(
                    "string", "never", "never: the image must be on the engine (or come from a related "
                    f"{IMAGE_TYPE}); if_not_present: pulled when missing (never removed: pull through a "
                    f"{IMAGE_TYPE} for that); always: pulled on every create.",
                    constraints=[{"valid_values": ["always", "if_not_present", "never"]}]),
                "docker_host": DOCKER_HOST_PROPERTY,
            },
            "operations": CONTAINER_OPERATIONS,
        },
    },
}


class Validated:
    """``validate_node`` checks both Docker node types share (a mixin of their resource classes)."""

    @classmethod
    def validate(cls, node: Any) -> list[Any]:
        from orchestrator.sdk import unresolved

        host = node.properties.get("docker_host")
        if isinstance(host, dict) and not host.get("url") and not unresolved(host):
            return [("docker_host", "url is required here (only a host that knows its address, such as an "
                                    "aws.ec2.Instance, derives one)")]
        return []
