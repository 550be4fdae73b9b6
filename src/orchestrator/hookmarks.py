"""pluggy's markers for the ``orchestrator`` project (re-exported as ``orchestrator.hookimpl``)."""

from __future__ import annotations

import pluggy

from orchestrator import PROJECT_NAME

hookimpl = pluggy.HookimplMarker(PROJECT_NAME)
"""Marks a plugin function as the implementation of an ``orchestrator`` hook."""

hookspec = pluggy.HookspecMarker(PROJECT_NAME)
