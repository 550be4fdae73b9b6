"""The core's base types, registered through ``register_types`` like any plugin's.

They have no lifecycle implementations: a node of a core type does nothing by itself
(no operation runs for it), and blueprints and plugins derive from these types.

``orchestrator.datatypes.DockerHost`` is here because two plugins that do not depend on
each other share it: an ``aws.ec2.Instance`` publishes the engine it runs, the Docker
plugin uses it, and a plain ``orchestrator.nodes.Compute`` host can declare one.
"""

from __future__ import annotations

from typing import Any

from orchestrator import hookimpl

PLUGIN_NAME = "orchestrator.builtin"
DOCKER_HOST = "orchestrator.datatypes.DockerHost"

TYPES: dict[str, Any] = {
    "node_types": {
        "orchestrator.nodes.Root": {
            "description": "The base of every node type.",
        },
        "orchestrator.nodes.Compute": {
            "derived_from": "orchestrator.nodes.Root",
            "description": "A host that other nodes can be contained_in (a VM, a machine).",
            "properties": {
                "ip": {"type": "string", "required": False,
                       "description": "The host's address, when known up front."},
                "docker_host": {"type": DOCKER_HOST, "required": False,
                                "description": "The Docker engine on this host, for containers "
                                               "contained_in it."},
            },
        },
    },
    "relationships": {
        "orchestrator.relationships.depends_on": {
            "description": "The source is installed after the target and uninstalled before it.",
        },
        "orchestrator.relationships.connected_to": {
            "derived_from": "orchestrator.relationships.depends_on",
            "description": "The source talks to the target (e.g. an app to its database).",
        },
        "orchestrator.relationships.contained_in": {
            "derived_from": "orchestrator.relationships.depends_on",
            "description": "The source runs on the target host; replicated per host instance.",
        },
    },
    "data_types": {
        DOCKER_HOST: {
            "description": "How to reach a Docker engine. A host that knows its own address (an "
                           "aws.ec2.Instance) derives url when it is omitted: tcp://<address>:<port>.",
            "properties": {
                "url": {"type": "string", "required": False,
                        "description": "unix:///var/run/docker.sock, tcp://HOST:2376, ..."},
                "port": {"type": "integer", "required": False,
                         "description": "For a derived url; default 2376 with TLS, else 2375."},
                "use_private_ip": {"type": "boolean", "default": False,
                                   "description": "Derive the url from the private address."},
                "tls_verify": {"type": "boolean", "default": False,
                               "description": "Verify the engine's certificate against ca_cert."},
                "ca_cert": {"type": "string", "required": False,
                            "description": "CA certificate: a file path or PEM text."},
                "client_cert": {"type": "string", "required": False,
                                "description": "Client certificate: a file path or PEM text."},
                "client_key": {"type": "string", "required": False,
                               "description": "Client key: a file path or PEM text."},
                "timeout": {"type": "integer", "required": False, "constraints": [{"greater_than": 0}],
                            "description": "Seconds to wait for one API call (default 60)."},
            },
        },
    },
}


@hookimpl
def register_types() -> dict[str, Any]:
    return TYPES
