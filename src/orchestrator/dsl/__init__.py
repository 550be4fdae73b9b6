"""The blueprint language: YAML with positions -> types -> validation -> functions.

``load_blueprint`` is the one entry point; everything it finds wrong is collected and
raised together as ``BlueprintError`` so a user fixes a file in one pass.
"""

from orchestrator.dsl.loader import load_blueprint
from orchestrator.dsl.problems import BlueprintError, Mark, Problem

__all__ = ["BlueprintError", "Mark", "Problem", "load_blueprint"]
