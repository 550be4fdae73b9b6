"""The ``aws`` plugin: data types shared by every AWS resource family.

A type may be registered by one plugin only, so the shared ones live here rather than
in each family's module.
"""

from __future__ import annotations

from typing import Any

from orchestrator import hookimpl
from plugins_aws.schema import DATA_TYPES


@hookimpl
def register_types() -> dict[str, Any]:
    return {"data_types": DATA_TYPES}
