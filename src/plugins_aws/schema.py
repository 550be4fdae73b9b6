"""Property schemas every AWS node type shares, in blueprint form.

Kept as plain dicts so each plugin module composes its own type from them; the data
types themselves are registered once, by the ``aws`` plugin (``plugins_aws.base``).

``replace_on_change`` marks what an update cannot change in place: a resource lives in
one account and region (``client_config``), and adopting another one is another
resource (``use_external_resource``, ``resource_id``).
"""

from __future__ import annotations

from typing import Any

CLIENT_CONFIG = "aws.datatypes.ClientConfig"

DATA_TYPES: dict[str, Any] = {
    CLIENT_CONFIG: {
        "description": "How to reach AWS. Anything omitted comes from boto3's usual chain "
                       "(environment, ~/.aws, instance role); AWS_ENDPOINT_URL is honoured.",
        "properties": {
            "region_name": {"type": "string", "required": False},
            "aws_access_key_id": {"type": "string", "required": False,
                                  "description": "Use get_secret; never put keys in a blueprint."},
            "aws_secret_access_key": {"type": "string", "required": False},
            "aws_session_token": {"type": "string", "required": False},
            "profile_name": {"type": "string", "required": False},
            "endpoint_url": {"type": "string", "required": False,
                             "description": "An EC2-compatible endpoint, e.g. a local emulator."},
        },
    },
}



def replaced(prop: dict[str, Any]) -> dict[str, Any]:
    """A property schema whose change replaces the resource (``replace_on_change``)."""
    return {**prop, "replace_on_change": True}


CLIENT_PROPERTIES: dict[str, Any] = {
    "client_config": replaced({"type": CLIENT_CONFIG, "default": {},
                               "description": "Region, credentials and endpoint for this node's calls "
                                              "(a change replaces the resource: it may be another "
                                              "account or region)."}),
    "poll_interval": {"type": "float", "default": 5.0, "constraints": [{"greater_or_equal": 0}],
                      "description": "Longest pause between two looks while waiting for AWS (the "
                                     "first comes after 0.1 s; longer when few --retries are left)."},
    "wait_timeout": {"type": "float", "default": 300.0, "constraints": [{"greater_or_equal": 0}],
                     "description": "Seconds an operation waits for AWS in all (it waits by asking "
                                    "to be retried, never holding a worker); then it fails."},
}

EXTERNAL_PROPERTIES: dict[str, Any] = {
    "use_external_resource": replaced({"type": "boolean", "default": False,
                                       "description": "Adopt the existing resource named by resource_id: "
                                                      "verified on create, never deleted by uninstall."}),
    "resource_id": replaced({"type": "string", "required": False,
                             "description": "The id (or name) of the resource to adopt."}),
}

TAG_PROPERTIES: dict[str, Any] = {
    "tags": {"type": "dict", "entry_schema": "string", "default": {},
             "description": "Extra tags; the orchestrator:* ownership tags are always added."},
}


def resource_properties(own: dict[str, Any]) -> dict[str, Any]:
    """The common properties of an AWS resource type followed by its own."""
    return {**CLIENT_PROPERTIES, **EXTERNAL_PROPERTIES, **TAG_PROPERTIES, **own}
