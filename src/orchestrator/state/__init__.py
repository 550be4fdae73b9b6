"""Where deployments live between commands: a SQLite file by default, PostgreSQL for teams.

``open_store`` picks the store from ``--state`` (a path, or a ``postgresql://`` URL); the
engine and the commands see only the ``StateStore`` protocol (``protocol.py``). The rows
handed out are plain data (``records.py``); locks are leases (``leases.py``); a lineage
file and a backup protect a SQLite state from being lost unnoticed (``safety.py``).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from orchestrator.lazy import lazy_attributes
from orchestrator.state.location import DEFAULT_STATE, display, is_url, state_exists

# The stores and records load on first use (``plan`` of a blueprint never opens a state).
_LAZY = {
    "NullStore": "orchestrator.state.null",
    "StateStore": "orchestrator.state.protocol",
    **dict.fromkeys(("DeploymentRow", "Event", "InstanceRow", "InstanceWrite", "LockInfo", "OperationOutcome"),
                    "orchestrator.state.records"),
    "SCHEMA_VERSION": "orchestrator.state.sqlite",
    "SqliteStore": "orchestrator.state.sqlite",
}

if TYPE_CHECKING:
    from orchestrator.state.null import NullStore
    from orchestrator.state.protocol import StateStore
    from orchestrator.state.records import (
        DeploymentRow,
        Event,
        InstanceRow,
        InstanceWrite,
        LockInfo,
        OperationOutcome,
    )
    from orchestrator.state.sqlite import SCHEMA_VERSION, SqliteStore


__getattr__, __dir__ = lazy_attributes(globals(), _LAZY)


def open_store(location: str | Path, *, create: bool = True, recover: bool = False) -> StateStore:
    """The state at ``location``: a SQLite file, or a PostgreSQL database (``postgresql://...``)."""
    if is_url(location):
        from orchestrator.state.postgres import PostgresStore

        if recover:
            from orchestrator.errors import StatePathError

            raise StatePathError("--state-recover restores a SQLite state's backup file; a PostgreSQL state is "
                                 "restored with PostgreSQL's own backups")
        return PostgresStore(str(location), create=create)
    from orchestrator.state.sqlite import SqliteStore

    return SqliteStore(Path(location), create=create, recover=recover)


__all__ = ["DEFAULT_STATE", "SCHEMA_VERSION", "DeploymentRow", "Event", "InstanceRow", "InstanceWrite", "LockInfo",
           "NullStore", "OperationOutcome", "SqliteStore", "StateStore", "display", "is_url", "open_store",
           "state_exists"]
