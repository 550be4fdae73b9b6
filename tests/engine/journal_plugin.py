"""A test plugin whose behaviour is set by node properties, and which journals every call.

Each hook appends ``hook instance [target]`` to the file named by ``ORCH_TEST_JOURNAL``
(fsync'd, so a kill -9 cannot lose a finished call). Node properties steer it:
``sleep`` (seconds per operation), ``fail`` ({operation: times to fail recoverably}),
``fatal`` (operation that raises NonRecoverableError), ``retry_after`` (seconds).
"""

from __future__ import annotations

import os
import time
from typing import Any

from orchestrator import NonRecoverableError, RecoverableError, hookimpl

TYPES = {
    "node_types": {
        "journal.Node": {
            "derived_from": "orchestrator.nodes.Root",
            "properties": {
                "sleep": {"type": "float", "default": 0.0},
                "fail": {"type": "dict", "default": {}},
                "fatal": {"type": "string", "default": ""},
                "retry_after": {"type": "float", "default": 0.0},
                "value": {"required": False},
            },
        },
        "journal.Host": {"derived_from": "orchestrator.nodes.Compute",
                         "properties": {"sleep": {"type": "float", "default": 0.0}}},
    },
    "relationships": {
        "journal.connected_to": {"derived_from": "orchestrator.relationships.connected_to",
                                 "properties": {"port": {"type": "integer", "default": 0}}},
    },
}


def journal(line: str) -> None:
    path = os.environ.get("ORCH_TEST_JOURNAL")
    if not path:
        return
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, (line + "\n").encode())
        os.fsync(fd)
    finally:
        os.close(fd)


def _behave(ctx: Any, props: Any, runtime: dict) -> None:
    op = ctx.operation.name
    if props.get("sleep"):
        time.sleep(props["sleep"])
    if props.get("fatal") == op:
        raise NonRecoverableError(f"{op} refused by the test")
    budget = (props.get("fail") or {}).get(op, 0)
    key = f"failures_{op}"
    if runtime.get(key, 0) < budget:
        runtime[key] = runtime.get(key, 0) + 1
        raise RecoverableError(f"{op} failed on purpose ({runtime[key]}/{budget})",
                               retry_after=props.get("retry_after") or None)


def _node_hook(op: str) -> Any:
    def hook(ctx: Any) -> None:
        journal(f"{op} {ctx.instance.id}")
        _behave(ctx, ctx.node.properties, ctx.instance.runtime_properties)
        if op == "create":
            ctx.instance.runtime_properties["created"] = ctx.instance.runtime_properties.get("created", 0) + 1
            ctx.instance.runtime_properties["address"] = f"addr-{ctx.instance.id}"
        journal(f"done {op} {ctx.instance.id}")

    hook.__name__ = op
    return hookimpl(hook)


def _relationship_hook(op: str) -> Any:
    def hook(ctx: Any) -> None:
        journal(f"{op} {ctx.source.instance.id} {ctx.target.instance.id}")
        links = ctx.target.instance.runtime_properties.setdefault("linked_from", [])
        if op == "establish":
            ctx.target.instance.runtime_properties[f"peer_{ctx.source.instance.id}"] = ctx.relationship.properties["port"]
        del links

    hook.__name__ = op
    return hookimpl(hook)


@hookimpl
def register_types() -> dict[str, Any]:
    return TYPES


create = _node_hook("create")
configure = _node_hook("configure")
start = _node_hook("start")
stop = _node_hook("stop")
delete = _node_hook("delete")
preconfigure = _relationship_hook("preconfigure")
postconfigure = _relationship_hook("postconfigure")
establish = _relationship_hook("establish")
unlink = _relationship_hook("unlink")
