"""A plugin whose operations do nothing (or sleep), to measure the engine itself."""

from __future__ import annotations

import time
from typing import Any

from orchestrator import hookimpl

SLEEP = 0.0


@hookimpl
def register_types() -> dict[str, Any]:
    return {"node_types": {"bench.Noop": {"derived_from": "orchestrator.nodes.Root"}}}


def _op(ctx: Any) -> None:
    if SLEEP:
        time.sleep(SLEEP)


@hookimpl
def create(ctx: Any) -> None:
    _op(ctx)


@hookimpl
def configure(ctx: Any) -> None:
    _op(ctx)


@hookimpl
def start(ctx: Any) -> None:
    _op(ctx)


@hookimpl
def stop(ctx: Any) -> None:
    _op(ctx)


@hookimpl
def delete(ctx: Any) -> None:
    _op(ctx)
