"""The rows a state store hands out: plain data, independent of how they are stored.

Dataclasses, not attrs: queries of the state (``status``, ``events``) import this and
nothing heavier, and a command line waits on every module it imports."""

from __future__ import annotations

import json
import json.encoder
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, NamedTuple

from orchestrator.errors import DamagedValue


def _ops_encoder() -> Callable[[Mapping[str, str]], str]:
    """``json.dumps`` of an instance's operations, built once: ``json.dumps`` builds its C
    encoder again at every call, which is most of its cost on a dict of a few keys, and the
    engine encodes one at every write."""
    make = getattr(json.encoder, "c_make_encoder", None)
    if make is None:  # no C accelerator: the same text, the slow way
        return json.dumps
    encode = make(None, None, json.encoder.encode_basestring_ascii, None, ": ", ", ", False, False, True)
    return lambda ops: encode(ops, 0)[0]


ops_json = _ops_encoder()
"""The stored form of an instance's operations (exactly ``json.dumps(ops)``)."""


def loads_object(text: str) -> dict[str, Any]:
    """A stored JSON object; ``{}``, what most instances hold, without the parser."""
    if text == "{}":
        return {}
    try:
        value = json.loads(text)
    except TypeError:  # NULL where a NOT NULL text was written: the page was damaged
        value = text
    if type(value) is not dict:
        raise DamagedValue(f"a stored value is not a JSON object: {str(text)[:60]!r}")
    return value


def merged_runtime(stored: str, changed: Mapping[str, Any], removed: Iterable[str]) -> str:
    """A stored runtime JSON with key-by-key changes applied (``merge_runtime`` of every store)."""
    runtime = json.loads(stored)
    for key in removed:
        runtime.pop(key, None)
    runtime.update(changed)
    return json.dumps(runtime, sort_keys=True)


class InstanceWrite(NamedTuple):
    """One instance's part of a state write (``StateStore.write``). ``state`` None: only its
    runtime properties (``ctx.instance.update()``), and then ``ops`` and ``error`` are kept."""

    instance: str
    state: str | None
    ops_json: str | None
    runtime_json: str | None = None  # None: unchanged
    error: str | None = None  # written with ``state`` (None clears it)
    secret_keys: list[str] | None = None  # None: unchanged
    version: int | None = None  # the plan version it now has; None: unchanged
    forget: tuple[str, ...] = ()  # operations whose worker dispatch this write settles

    def merged(self, newer: InstanceWrite) -> InstanceWrite:
        """This write followed by ``newer`` of the same instance, as one."""
        full = newer.state is not None
        return InstanceWrite(
            self.instance, newer.state if full else self.state, newer.ops_json if full else self.ops_json,
            newer.runtime_json if newer.runtime_json is not None else self.runtime_json,
            newer.error if full else self.error,
            newer.secret_keys if newer.secret_keys is not None else self.secret_keys,
            newer.version if newer.version is not None else self.version, self.forget + newer.forget)


@dataclass(slots=True)
class InstanceRow:
    id: str
    node: str
    state: str
    ops: dict[str, str]
    runtime: dict[str, Any]
    updated_at: float = 0.0
    error: str | None = None  # the last failure, while the instance is failed
    secret_keys: list[str] = field(default_factory=list)  # runtime keys whose values hold a secret
    plan_version: int | None = None  # the plan it was last installed or updated with (None: never)


INSTANCE_COLUMNS = "id, node, state, ops, runtime, updated_at, error, secret_keys, plan_version"
"""What every store selects for an ``InstanceRow`` (``instance_row``), in this order."""


def instance_row(r: Sequence[Any]) -> InstanceRow:
    """An ``InstanceRow`` from a row of ``INSTANCE_COLUMNS`` (the JSON columns as text)."""
    return InstanceRow(r[0], r[1], r[2], loads_object(r[3]), loads_object(r[4]), r[5], r[6],
                       json.loads(r[7]) if r[7] else [], r[8])


@dataclass(slots=True)
class DeploymentRow:
    id: str
    blueprint: str
    inputs: dict[str, Any]
    plan: str
    structure: str
    created_at: float
    updated_at: float
    # What an ``uninstall --ignore-failures`` may have left behind, until a later run clears it.
    leftovers: list[dict[str, Any]] = field(default_factory=list)
    plan_version: int = 1  # the version of ``plan`` among the deployment's plans


@dataclass(slots=True)
class Event:
    """One deployment event: an operation's progress, a retry, a failure, or a plugin log record."""

    ts: float
    deployment: str
    execution: int | None
    instance: str | None
    operation: str | None
    plugin: str | None
    type: str  # workflow_started, operation_started, operation_succeeded, ..., log
    level: str
    message: str
    id: int | None = None  # set once stored

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(slots=True, frozen=True)
class LockInfo:
    """Who holds a deployment's lock, and until when their lease runs."""

    deployment: str
    execution: int
    workflow: str
    pid: int
    host: str
    proc_start: str
    acquired_at: float
    expires_at: float

    def describe(self) -> str:
        import time

        since = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(self.acquired_at))
        return (f"execution {self.execution} ({self.workflow}) of pid {self.pid} on {self.host}, "
                f"running since {since}")


@dataclass(slots=True, frozen=True)
class OperationOutcome:
    """One dispatch of an operation to a worker: who runs it, and what came of it."""

    token: str
    instance: str
    key: str
    worker: str | None  # the worker that claimed it (None: not yet)
    claimed_until: float | None  # its claim's lease: a worker gone silent past it lost it
    outcome: str | None  # JSON once finished: {"ok": ..., "result": ..., "runtime": ..., "error": ...}

    def live_claim(self, now: float) -> bool:
        return self.outcome is None and self.worker is not None and (self.claimed_until or 0) > now
