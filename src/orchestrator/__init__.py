"""orchestrator: YAML blueprints executed by pluggy plugins.

Plugin authors need only the names exported here (and ``orchestrator.sdk``)::

    from orchestrator import OperationContext, hookimpl, NonRecoverableError, RecoverableError
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from orchestrator.lazy import lazy_attributes

PROJECT_NAME = "orchestrator"
"""pluggy's project name: hookimpls are marked for it."""
DISTRIBUTION = "orchestrator-engine"
"""The core's name on PyPI (``orchestrator`` itself belongs to an unrelated project)."""
ENTRY_POINT_GROUP = "orchestrator.plugins"

__version__ = "0.1.0"

# The public names load on first use: ``orchestrator status`` never needs pluggy or the
# ctx classes, and a command's start-up is mostly imports (bench/cli_bench.py).
_LAZY = {
    **dict.fromkeys(("BlueprintContext", "DeploymentContext", "EntityContext", "InstanceContext", "Logger",
                     "NodeContext", "NodeTemplateInfo", "OperationContext", "OperationInfo", "RelationshipContext",
                     "RelationshipTemplateInfo"), "orchestrator.ctx"),
    "BlueprintError": "orchestrator.dsl.problems",
    **dict.fromkeys(("NonRecoverableError", "OperationRetry", "OrchestratorError", "RecoverableError",
                     "SkipOperation"), "orchestrator.errors"),
    "hookimpl": "orchestrator.hookmarks",
    "hookspec": "orchestrator.hookmarks",
}

if TYPE_CHECKING:
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
    from orchestrator.hookmarks import hookimpl, hookspec


__getattr__, __dir__ = lazy_attributes(globals(), _LAZY)


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
