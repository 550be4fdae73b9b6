"""The PostgreSQL store's hot writes, each one statement: one round trip, one implicit transaction.

``record`` (about one call per operation) and ``add_events`` would otherwise cost a round
trip per statement (BEGIN, the fence, the update, the events lock, the inserts, COMMIT);
under load each round trip waits for the server process to be scheduled. As data-modifying
CTEs, the parts depend on each other through their rows: the events and the settled
dispatches are written only if the fenced update found its instance, and event ids are
drawn after the deployment's events lock is taken (so they commit in order).
"""

from __future__ import annotations

import functools
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


@functools.cache
def record_sql(fenced: bool, events: bool, forget: bool) -> str:
    """The statement for ``record``: its single row counts the instances updated (0 or 1)."""
    parts = [
        "up AS (UPDATE instances SET state = %(state)s, ops = %(ops)s, runtime = coalesce(%(runtime)s, runtime), "
        "updated_at = %(now)s, error = %(error)s, secret_keys = coalesce(%(keys)s, secret_keys), "
        "plan_version = coalesce(%(version)s::integer, plan_version) WHERE deployment = %(deployment)s AND "
        f"id = %(instance)s{' AND ' + FENCE if fenced else ''} RETURNING 1)"
    ]
    if events:
        parts.append(_insert_events("up"))
    if forget:
        parts.append("fg AS (DELETE FROM operations WHERE deployment = %(deployment)s AND instance = %(instance)s "
                     "AND key = ANY(%(forget)s::text[]) AND EXISTS (SELECT 1 FROM up) RETURNING 1)")
    return f"WITH {', '.join(parts)} SELECT count(*) FROM up"


@functools.cache
def events_sql(fenced: bool) -> str:
    """The statement for ``add_events``: its single row says whether the fence held (1) or not (0)."""
    gate = f"ok AS (SELECT 1 WHERE {FENCE})" if fenced else "ok AS (SELECT 1)"
    return f"WITH {gate}, {_insert_events('ok')} SELECT count(*) FROM ok"
