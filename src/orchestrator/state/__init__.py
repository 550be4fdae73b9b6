"""Where deployments live between commands: a SQLite file by default, PostgreSQL for teams.

``open_store`` picks the store from ``--state`` (a path, or a ``postgresql://`` URL); the
engine and the commands see only the ``StateStore`` protocol (``protocol.py``). The rows
handed out are plain data (``records.py``); locks are leases (``leases.py``); a lineage
file and a backup protect a SQLite state from being lost unnoticed (``safety.py``).
"""

from __future__ import annotations

import re
from pathlib import Path

from orchestrator.state.null import NullStore
from orchestrator.state.protocol import StateStore
from orchestrator.state.records import DeploymentRow, Event, InstanceRow, LockInfo, OperationOutcome
from orchestrator.state.sqlite import DEFAULT_STATE, SCHEMA_VERSION, SqliteStore

URL = re.compile(r"^postgres(ql)?(\+\w+)?://", re.IGNORECASE)


def is_url(location: str | Path) -> bool:
    """Whether ``--state`` names a database server rather than a file."""
    return isinstance(location, str) and bool(URL.match(location))


def display(location: str | Path) -> str:
    """``location`` fit to print: a URL loses its password."""
    text = str(location)
    return re.sub(r"(://[^:/@]+:)[^@/]*@", r"\1***@", text) if is_url(text) else text


def open_store(location: str | Path, *, create: bool = True, recover: bool = False) -> StateStore:
    """The state at ``location``: a SQLite file, or a PostgreSQL database (``postgresql://...``)."""
    if is_url(location):
        from orchestrator.state.postgres import PostgresStore

        if recover:
            from orchestrator.errors import StatePathError

            raise StatePathError("--state-recover restores a SQLite state's backup file; a PostgreSQL state is "
                                 "restored with PostgreSQL's own backups")
        return PostgresStore(str(location), create=create)
    return SqliteStore(Path(location), create=create, recover=recover)


def state_exists(location: str | Path) -> bool:
    """Whether a query would find a state there (a server is assumed to exist)."""
    return is_url(location) or Path(location).exists()


__all__ = ["DEFAULT_STATE", "SCHEMA_VERSION", "DeploymentRow", "Event", "InstanceRow", "LockInfo", "NullStore",
           "OperationOutcome", "SqliteStore", "StateStore", "display", "is_url", "open_store", "state_exists"]
