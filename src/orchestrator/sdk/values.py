"""Telling values known when planning from those computed at run time."""

from __future__ import annotations

from typing import Any

from orchestrator.dsl.functions import has_runtime_function


def unresolved(value: Any) -> bool:
    """True if ``value`` is (or holds) a function resolved only at run time.

    ``validate_node`` sees properties once inputs, ``get_property`` and ``concat`` are
    resolved; ``{"get_attribute": [...]}`` and ``{"get_secret": ...}`` (and a ``concat``
    holding one) are still functions then. Check what is known; leave these to the hooks.
    """
    return has_runtime_function(value)
