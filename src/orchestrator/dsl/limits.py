"""Limits that keep a hostile or broken blueprint from taking the machine.

Every blueprint must end in "valid" or a list of problems within seconds and bounded
memory. The YAML limits are fixed: no real blueprint comes near them. The instance
limits are generous defaults a large deployment may raise through the environment.
"""

from __future__ import annotations

import os

from orchestrator.dsl.problems import MAX_SHOWN, Mark, Problems

MAX_DEPTH = 100
"""Nesting of mappings and sequences in one YAML document (the document itself is level 1).

Well below Python's recursion limit for every walker of values (each takes at most
three frames a level) and far above any real blueprint (about 10 levels).
"""

MAX_ALIASES = 10_000
"""YAML aliases (``*name``) in one document."""

MAX_ALIAS_NODES = 100_000
"""Nodes that aliases add to one document when expanded (a scalar is 1, a collection
2 plus its contents): a "billion laughs" document is refused at the alias that crosses it."""

MAX_INT_DIGITS = 100
"""Decimal digits of an integer (64 bits need 20). Python refuses to print integers of
more than 4,300 digits, and arithmetic on huge ones is slow."""

MAX_INSTANCES_ENV = "ORCHESTRATOR_MAX_INSTANCES"
MAX_TEMPLATE_INSTANCES_ENV = "ORCHESTRATOR_MAX_INSTANCES_PER_TEMPLATE"
DEFAULT_MAX_INSTANCES = 100_000  # per deployment, contained_in replication included
DEFAULT_MAX_TEMPLATE_INSTANCES = 10_000  # the ``instances`` of one node template

ENVIRONMENT = Mark("<environment>", 1, 1)


def instance_limits(problems: Problems) -> tuple[int, int]:
    """``(per template, per deployment)`` from the environment, else the defaults."""
    return (_env_int(MAX_TEMPLATE_INSTANCES_ENV, DEFAULT_MAX_TEMPLATE_INSTANCES, problems),
            _env_int(MAX_INSTANCES_ENV, DEFAULT_MAX_INSTANCES, problems))


def _env_int(name: str, default: int, problems: Problems) -> int:
    text = os.environ.get(name, "").strip()
    if not text:
        return default
    if text.isdigit() and len(text) <= 18 and int(text) >= 1:
        return int(text)
    problems.add(ENVIRONMENT, f"{name} must be a whole number >= 1, got {text[:40]!r}")
    return default

__all__ = ["MAX_ALIASES", "MAX_ALIAS_NODES", "MAX_DEPTH", "MAX_INT_DIGITS", "MAX_SHOWN", "instance_limits"]
