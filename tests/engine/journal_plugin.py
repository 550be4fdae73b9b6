"""A test plugin whose behaviour is set by node properties, and which journals every call.

Each hook appends ``hook instance [target]`` to the file named by ``ORCH_TEST_JOURNAL``
(fsync'd, so a kill -9 cannot lose a finished call). Node properties steer it:
``sleep`` (seconds per operation), ``fail`` ({operation: times to fail recoverably}),
``fatal`` (operation that raises NonRecoverableError), ``retry_after`` (seconds),
``raise_base`` ({operation: SystemExit | KeyboardInterrupt | GeneratorExit | Custom}: a
BaseException), ``hang`` ({operation: attempts that hang for an hour}; counted in the
journal, since a hung attempt's runtime properties are discarded), ``log`` (a line each
operation logs, e.g. to fill a disk), ``print`` (a line each operation prints), ``zone`` (changing it replaces the instance).
``update`` journals the changed paths; ``check_drift`` reports what the file
``<journal>.drift.<instance>`` holds (JSON), if it exists: a test's out-of-band change.
Custom operations: ``echo`` (``text`` times ``times``), ``whoami`` and ``read`` (a blueprint resource).
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
                "raise_base": {"type": "dict", "default": {}},
                "hang": {"type": "dict", "default": {}},
                "log": {"type": "string", "default": ""},
                "print": {"type": "string", "default": ""},
                "zone": {"type": "string", "default": "a", "replace_on_change": True},
                "value": {"required": False},
            },
            "operations": {
                "echo": {"description": "Say the text back, times over, with the instance's address.",
                         "inputs": {"text": {"type": "string", "description": "what to say"},
                                    "times": {"type": "integer", "default": 1,
                                              "constraints": [{"greater_or_equal": 1}]}}},
                "whoami": {"description": "The instance and its node, one per line."},
                "read": {"description": "A file shipped beside the blueprint, and where it was read from.",
                         "inputs": {"path": {"type": "string"}}},
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


class Custom(BaseException):
    """A BaseException of the plugin's own."""


BASE_EXCEPTIONS = {"SystemExit": SystemExit, "KeyboardInterrupt": KeyboardInterrupt,
                   "GeneratorExit": GeneratorExit, "Custom": Custom}


def _journal_count(prefix: str) -> int:
    path = os.environ.get("ORCH_TEST_JOURNAL")
    if not path or not os.path.exists(path):
        return 0
    with open(path) as f:
        return sum(1 for line in f if line.startswith(prefix))


def _behave(ctx: Any, props: Any, runtime: dict) -> None:
    op = ctx.operation.name
    who = ctx.instance.id if ctx.type == "node-instance" else ctx.source.instance.id
    if props.get("log"):
        ctx.logger.info(props["log"])
    if props.get("print"):
        print(props["print"])
    if props.get("sleep"):
        time.sleep(props["sleep"])
    hangs = (props.get("hang") or {}).get(op, 0)
    if hangs and _journal_count(f"hang {op} {who}") < hangs:
        journal(f"hang {op} {who}")
        time.sleep(3600)
    base = (props.get("raise_base") or {}).get(op)
    if base:
        raise BASE_EXCEPTIONS[base](f"{base} raised by the test in {op}")
    if props.get("fatal") == op:
        raise NonRecoverableError(f"{op} refused by the test")
    budget = (props.get("fail") or {}).get(op, 0)
    key = f"failures_{op}"
    if runtime.get(key, 0) < budget:
        runtime[key] = runtime.get(key, 0) + 1
        raise RecoverableError(f"{op} failed on purpose ({runtime[key]}/{budget})",
                               retry_after=props.get("retry_after") or None)


def resource(instance: str) -> str | None:
    """The "real resource" of an instance: a file beside the journal, made and removed
    idempotently, so what exists after any crash and resume can be counted."""
    path = os.environ.get("ORCH_TEST_JOURNAL")
    return f"{path}.res/{instance}" if path else None


def _node_hook(op: str) -> Any:
    def hook(ctx: Any) -> None:
        journal(f"{op} {ctx.instance.id}")
        _behave(ctx, ctx.node.properties, ctx.instance.runtime_properties)
        marker = resource(ctx.instance.id)
        if op == "create":
            ctx.instance.runtime_properties["created"] = ctx.instance.runtime_properties.get("created", 0) + 1
            ctx.instance.runtime_properties["address"] = f"addr-{ctx.instance.id}"
            if marker:
                os.makedirs(os.path.dirname(marker), exist_ok=True)
                with open(marker, "a"):
                    pass
        elif op == "delete" and marker and os.path.exists(marker):
            os.unlink(marker)
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


@hookimpl
def update(ctx: Any) -> None:
    journal(f"update {ctx.instance.id} {','.join(sorted(ctx.changes))}")
    _behave(ctx, ctx.node.properties, ctx.instance.runtime_properties)
    ctx.instance.runtime_properties["updated"] = ctx.instance.runtime_properties.get("updated", 0) + 1
    journal(f"done update {ctx.instance.id}")


@hookimpl
def check_drift(ctx: Any) -> Any:
    import json

    path = os.environ.get("ORCH_TEST_JOURNAL", "") + f".drift.{ctx.instance.id}"
    journal(f"check_drift {ctx.instance.id}")
    if os.path.exists(path):
        with open(path) as f:
            return json.load(f)
    return None


@hookimpl
def run_operation(ctx: Any) -> Any:
    journal(f"run {ctx.operation.name} {ctx.instance.id}")
    _behave(ctx, ctx.node.properties, ctx.instance.runtime_properties)
    if ctx.operation.name == "echo":
        inputs = ctx.operation.inputs
        return {"text": inputs["text"] * inputs["times"], "address": ctx.instance.runtime_properties.get("address")}
    if ctx.operation.name == "read":
        return {"text": ctx.get_resource(ctx.operation.inputs["path"]).decode(), "directory": str(ctx.blueprint.directory),
                "pid": os.getpid()}
    return f"{ctx.instance.id}\n{ctx.node.id}"


create = _node_hook("create")
configure = _node_hook("configure")
start = _node_hook("start")
stop = _node_hook("stop")
delete = _node_hook("delete")
preconfigure = _relationship_hook("preconfigure")
postconfigure = _relationship_hook("postconfigure")
establish = _relationship_hook("establish")
unlink = _relationship_hook("unlink")
