"""The PostgreSQL store's hot writes, each one statement: one round trip, one implicit transaction.

``write`` (about one call per operation) and ``add_events`` would otherwise cost a round
trip per statement (BEGIN, the fence, the update, the events lock, the inserts, COMMIT);
under load each round trip waits for the server process to be scheduled. As data-modifying
CTEs, the parts depend on each other through their rows: the events and the settled
dispatches are written only if the fenced update found its instance, and event ids are
drawn after the deployment's events lock is taken (so they commit in order).
"""

from __future__ import annotations

import functools
import json
from typing import Any

from orchestrator.state.postgres_schema import EVENTS_NAMESPACE

EVENT_COLUMNS = "ts, deployment, execution, instance, operation, plugin, type, level, message"
EVENT_TYPES = ("float8", "text", "bigint", "text", "text", "text", "text", "text", "text")
FENCE = "EXISTS (SELECT 1 FROM locks WHERE deployment = %(deployment)s AND execution = %(execution)s FOR KEY SHARE)"


def event_args(events: list[tuple]) -> dict[str, Any]:
    """Events as one array per column (``unnest`` turns them back into rows, in order)."""
    columns = list(zip(*events, strict=True)) if events else [()] * len(EVENT_TYPES)
    return {f"e{i}": list(column) for i, column in enumerate(columns)}


def _insert_events(after: str) -> str:
    """CTEs ``lk`` (the events lock, taken once ``after`` has a row) and ``ev`` (the inserts)."""
    arrays = ", ".join(f"%(e{i})s::{t}[]" for i, t in enumerate(EVENT_TYPES))
    return (f"lk AS (SELECT pg_advisory_xact_lock({EVENTS_NAMESPACE}, hashtext(%(deployment)s)) FROM {after} "
            f"LIMIT 1), "
            f"ev AS (INSERT INTO events ({EVENT_COLUMNS}) SELECT {EVENT_COLUMNS} FROM unnest({arrays}) "
            f"WITH ORDINALITY AS e({EVENT_COLUMNS}, n), lk ORDER BY n RETURNING 1)")


WRITE_TYPES = ("text", "text", "text", "text", "text", "text", "integer", "boolean")


def write_args(writes: list[Any]) -> dict[str, Any]:
    """Instance writes (``InstanceWrite``) as one array per column, and their settled dispatches."""
    rows = [(w.instance, w.state, w.ops_json, w.runtime_json, w.error,
             None if w.secret_keys is None else json.dumps(w.secret_keys), w.version, w.state is not None)
            for w in writes]
    settled = [(w.instance, key) for w in writes for key in w.forget]
    return {**{f"w{i}": list(column) for i, column in enumerate(zip(*rows, strict=True))},
            "fi": [i for i, _ in settled], "fk": [k for _, k in settled]}


@functools.cache
def write_sql(fenced: bool, events: bool, forget: bool) -> str:
    """The statement for ``write``: its single row counts the instances updated (all or none).

    A write without ``state`` (``whole`` false) changes the runtime properties only."""
    arrays = ", ".join(f"%(w{i})s::{t}[]" for i, t in enumerate(WRITE_TYPES))
    parts = [
        f"w AS (SELECT * FROM unnest({arrays}) AS w(instance, state, ops, runtime, error, keys, version, whole))",
        "up AS (UPDATE instances AS i SET state = coalesce(w.state, i.state), ops = coalesce(w.ops, i.ops), "
        "runtime = coalesce(w.runtime, i.runtime), updated_at = %(now)s, "
        "error = CASE WHEN w.whole THEN w.error ELSE i.error END, secret_keys = coalesce(w.keys, i.secret_keys), "
        "plan_version = coalesce(w.version, i.plan_version) FROM w WHERE i.deployment = %(deployment)s AND "
        f"i.id = w.instance{' AND ' + FENCE if fenced else ''} RETURNING 1)"
    ]
    if events:
        parts.append(_insert_events("up"))
    if forget:
        parts.append("fg AS (DELETE FROM operations WHERE deployment = %(deployment)s AND (instance, key) IN "
                     "(SELECT * FROM unnest(%(fi)s::text[], %(fk)s::text[])) AND EXISTS (SELECT 1 FROM up) "
                     "RETURNING 1)")
    return f"WITH {', '.join(parts)} SELECT count(*) FROM up"


@functools.cache
def events_sql(fenced: bool) -> str:
    """The statement for ``add_events``: its single row says whether the fence held (1) or not (0)."""
    gate = f"ok AS (SELECT 1 WHERE {FENCE})" if fenced else "ok AS (SELECT 1)"
    return f"WITH {gate}, {_insert_events('ok')} SELECT count(*) FROM ok"
