"""The core's base types, registered through ``register_types`` like any plugin's.

They have no lifecycle implementations: a node of a core type does nothing by itself,
but third-party wrappers still see its calls, and blueprints derive from these types.
"""

from __future__ import annotations

from typing import Any

from orchestrator import hookimpl

PLUGIN_NAME = "orchestrator.builtin"

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
    "data_types": {},
}


@hookimpl
def register_types() -> dict[str, Any]:
    return TYPES
