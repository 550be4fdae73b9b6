"""Cloudify's Docker plugin run by this plugin: 1.x ``cloudify.docker.Container`` and 2.x
``cloudify.nodes.docker.image``/``container``.

1.x gave docker-py's ``create_container``/``start`` arguments as ``params`` (a property in
the oldest versions, operation inputs of ``create`` and ``start`` later); they become the
properties of a ``docker.Container``. 2.x puts a container's settings in
``resource_config.container_args`` and an image's reference in ``resource_config``.
Building images from a Dockerfile, Docker hosts installed over SSH and the other 2.x
types need an agent or a shell on a remote host, and are refused by name.
"""

from __future__ import annotations

from typing import Any

from orchestrator import hookimpl
from orchestrator.cloudify import CloudifyPack, MappingError, PackNode, TypeMapping

_OPS = """
    interfaces:
      cloudify.interfaces.lifecycle:
        create: docker.docker_plugin.tasks.create_container
        configure: docker.docker_plugin.tasks.configure
        start: docker.docker_plugin.tasks.start
        stop: docker.docker_plugin.tasks.stop
        delete: docker.docker_plugin.tasks.remove_container
"""

TYPES = f"""
plugins:
  docker: {{executor: central_deployment_agent, package_name: cloudify-docker-plugin}}
node_types:
  cloudify.docker.Container:
    derived_from: cloudify.nodes.Root
    properties:
      image: {{}}
      name: {{default: ''}}
      use_external_resource: {{default: false}}
      resource_id: {{default: ''}}
      ports: {{default: {{}}}}
      params: {{default: {{}}}}
{_OPS}
  cloudify.nodes.docker.image:
    derived_from: cloudify.nodes.Root
    properties:
      client_config: {{default: {{}}}}
      resource_config: {{default: {{}}}}
{_OPS}
  cloudify.nodes.docker.container:
    derived_from: cloudify.nodes.Root
    properties:
      client_config: {{default: {{}}}}
      resource_config: {{default: {{}}}}
{_OPS}
"""


def _image_ref(image: Any, path: list[Any]) -> str:
    if isinstance(image, str):
        return image
    if not isinstance(image, dict) or not image.get("repository"):
        raise MappingError("image must be a name or {repository, tag}", path)
    if image.get("src"):
        raise MappingError("not supported: an image imported from a tarball (src)", path)
    return f"{image['repository']}:{image.get('tag') or 'latest'}"


def _ports(raw: Any) -> dict[str, Any]:
    """docker-py's ``ports``/``port_bindings`` (lists or {container: host}) as ``{"80/tcp": host}``."""
    out: dict[str, Any] = {}
    if isinstance(raw, list):
        for port in raw:
            out.setdefault(_port_key(port), None)
    elif isinstance(raw, dict):
        for port, host in raw.items():
            out[_port_key(port)] = host
    return out


def _port_key(port: Any) -> str:
    text = str(port)
    return text if "/" in text else f"{text}/tcp"


def _host(client: Any) -> dict[str, Any]:
    if not isinstance(client, dict) or not client.get("docker_host"):
        return {}
    host = str(client["docker_host"])
    if "://" not in host:
        host = f"tcp://{host}:{client.get('docker_rest_port') or 2375}"
    return {"docker_host": {"url": host}}


# docker-py arguments of 1.x ``create_container`` (create's params) and ``start`` (start's
# params), as docker.Container properties; anything else is refused by name.
_CREATE_PARAMS = {"command": "command", "environment": "environment", "entrypoint": "entrypoint",
                  "working_dir": "working_dir", "user": "user", "tty": "tty", "stdin_open": "stdin_open"}
_CREATE_IGNORED = ("ports", "detach", "name", "image")  # ports: from port_bindings; the rest are ours
_START_PARAMS = {"extra_hosts": "extra_hosts", "network_mode": "network_mode"}
_START_IGNORED = ("port_bindings", "container")


def _params(raw: Any, operation: str, known: dict[str, str], ignored: tuple[str, ...],
            out: dict[str, Any]) -> None:
    if not isinstance(raw, dict):
        raise MappingError(f"{operation} params must be a mapping of docker-py arguments", ["params"])
    for key, value in raw.items():
        if key in known:
            if value not in (None, "", {}, []):
                out[known[key]] = value
        elif key not in ignored:
            raise MappingError(f"not supported: the {operation} operation's docker-py argument '{key}' "
                               f"(orchestrator-docker passes {', '.join(sorted(known))} and ports)", ["params"])


def _container_v1(node: PackNode) -> dict[str, Any]:
    """1.x: ``create_container`` pulled the image, then created the container from
    ``params``; ``start`` bound ports. Pulled here only when the engine lacks the image."""
    p, ops = node.properties, node.operation_inputs
    if p.get("use_external_resource"):
        raise MappingError("not supported: use_external_resource (adopting a running container)",
                           ["use_external_resource"])
    for op in ("stop", "delete"):
        if (ops.get(op) or {}).get("params"):
            raise MappingError(f"not supported: {op} params (orchestrator-docker stops and removes containers "
                               "its own way)")
    if (ops.get("start") or {}).get("processes_to_wait_for"):
        raise MappingError("not supported: processes_to_wait_for (it needs docker top on the host; "
                           "use a docker.Container healthcheck)")
    create = dict((ops.get("create") or {}).get("params") or {})
    start = dict((ops.get("start") or {}).get("params") or {})
    params = {**dict(p.get("params") or {}), **create}
    ports = {**_ports(params.get("ports")), **_ports(p.get("ports")), **_ports(start.get("port_bindings"))}
    out: dict[str, Any] = {"image": _image_ref(p.get("image"), ["image"]), "pull_policy": "if_not_present",
                           "network_mode": "bridge" if ports else "host"}
    _params(params, "create", _CREATE_PARAMS, _CREATE_IGNORED, out)
    _params(start, "start", _START_PARAMS, _START_IGNORED, out)
    if p.get("name"):
        out["name"] = p["name"]
    if ports:
        out["ports"] = ports
    return out


def _image_v2(node: PackNode) -> dict[str, Any]:
    config = node.properties.get("resource_config") or {}
    if config.get("image_content") or config.get("dockerfile"):
        raise MappingError("not supported: building an image from a Dockerfile (pull one instead)",
                           ["resource_config"])
    image = config.get("image") or {}
    if isinstance(image, dict) and image.get("repository"):
        return {"repository": image["repository"], "tag": str(image.get("tag") or "latest"),
                **_host(node.properties.get("client_config"))}
    raise MappingError("resource_config.image needs a repository", ["resource_config"])


def _container_v2(node: PackNode) -> dict[str, Any]:
    config = node.properties.get("resource_config") or {}
    args = config.get("container_args") or {}
    image = config.get("image_tag") or args.get("image")
    if not image:
        raise MappingError("resource_config.image_tag names the image to run", ["resource_config"])
    out: dict[str, Any] = {"image": str(image), **_host(node.properties.get("client_config"))}
    for key in ("command", "environment", "entrypoint", "working_dir", "user", "name"):
        if args.get(key) not in (None, "", {}):
            out[key] = args[key]
    if args.get("ports"):
        out["ports"] = _ports(args["ports"])
        out["network_mode"] = "bridge"
    return out


PACK = CloudifyPack(
    name="cloudify-docker-plugin",
    imports=(r"https?://[^ ]*cloudify-docker-plugin/[^ ]*/(v2_)?plugin(_1_[45])?\.yaml",
             r"https?://(www\.)?getcloudify\.org(\.s3\.amazonaws\.com)?/spec/docker-plugin/[^/]+/plugin\.yaml"),
    types=TYPES,
    mappings={
        "cloudify.docker.Container": TypeMapping("docker.Container", _container_v1),
        "cloudify.nodes.docker.image": TypeMapping("docker.Image", _image_v2),
        "cloudify.nodes.docker.container": TypeMapping("docker.Container", _container_v2),
    },
    unsupported={"cloudify.nodes.docker.*": "orchestrator-docker runs images (pulled) and containers only",
                 "cloudify.docker.*": "orchestrator-docker runs containers only"},
    description="Cloudify Docker plugin 1.x and 2.x (images and containers)",
)


@hookimpl
def cloudify_packs() -> list[CloudifyPack]:
    return [PACK]
