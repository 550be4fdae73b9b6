"""The ``aws`` plugin: data types shared by every AWS resource family.

A type may be registered by one plugin only, so the shared ones live here rather than
in each family's module.
"""

from __future__ import annotations

from orchestrator.sdk import Plugin
from plugins_aws.schema import DATA_TYPES

plugin = Plugin({"data_types": DATA_TYPES})
