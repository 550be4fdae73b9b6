"""Where deployments live between commands: SQLite by default (``sqlite.py``).

The rows handed out are plain data (``records.py``); locks are leases (``leases.py``);
a lineage file and a backup protect a state from being lost unnoticed (``safety.py``).
"""

from orchestrator.state.records import DeploymentRow, Event, InstanceRow, LockInfo
from orchestrator.state.sqlite import DEFAULT_STATE, SCHEMA_VERSION, StateStore

__all__ = ["DEFAULT_STATE", "SCHEMA_VERSION", "DeploymentRow", "Event", "InstanceRow", "LockInfo", "StateStore"]
