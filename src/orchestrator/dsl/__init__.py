"""The blueprint language: YAML with positions -> types -> validation -> functions.

``load_blueprint`` is the one entry point; everything it finds wrong is collected and
raised together as ``BlueprintError`` so a user fixes a file in one pass.
"""

from __future__ import annotations

from typing import Any

from orchestrator.dsl.problems import BlueprintError, Mark, Problem


def __getattr__(name: str) -> Any:
    """``load_blueprint`` on first use: importing ``orchestrator.dsl.problems`` stays cheap."""
    if name == "load_blueprint":
        from orchestrator.dsl.loader import load_blueprint

        return load_blueprint
    raise AttributeError(f"module 'orchestrator.dsl' has no attribute {name!r}")

__all__ = ["BlueprintError", "Mark", "Problem", "load_blueprint"]
