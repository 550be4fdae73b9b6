"""orchestrator: YAML blueprints executed by pluggy plugins.

Plugin authors need only the names exported here (and ``orchestrator.sdk``)::

    from orchestrator import OperationContext, hookimpl, NonRecoverableError, RecoverableError
"""

from __future__ import annotations

import pluggy

from orchestrator.ctx import (
    BlueprintContext,
    DeploymentContext,
    EntityContext,
    InstanceContext,
    Logger,
    NodeContext,
    NodeTemplateInfo,
    OperationContext,
    OperationInfo,
    RelationshipContext,
    RelationshipTemplateInfo,
)
from orchestrator.dsl.problems import BlueprintError
from orchestrator.errors import (
    NonRecoverableError,
    OperationRetry,
    OrchestratorError,
    RecoverableError,
    SkipOperation,
)

PROJECT_NAME = "orchestrator"
"""pluggy's project name: hookimpls are marked for it."""
DISTRIBUTION = "orchestrator-engine"
"""The core's name on PyPI (``orchestrator`` itself belongs to an unrelated project)."""
ENTRY_POINT_GROUP = "orchestrator.plugins"

hookimpl = pluggy.HookimplMarker(PROJECT_NAME)
"""Marks a plugin function as the implementation of an ``orchestrator`` hook."""

hookspec = pluggy.HookspecMarker(PROJECT_NAME)

__version__ = "0.1.0"

__all__ = [
    "DISTRIBUTION",
    "ENTRY_POINT_GROUP",
    "PROJECT_NAME",
    "BlueprintContext",
    "BlueprintError",
    "DeploymentContext",
    "EntityContext",
    "InstanceContext",
    "Logger",
    "NodeContext",
    "NodeTemplateInfo",
    "NonRecoverableError",
    "OperationContext",
    "OperationInfo",
    "OperationRetry",
    "OrchestratorError",
    "RecoverableError",
    "RelationshipContext",
    "RelationshipTemplateInfo",
    "SkipOperation",
    "__version__",
    "hookimpl",
    "hookspec",
]
