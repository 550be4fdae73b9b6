"""Bounded waits: poll inside the operation for a while, then hand back to the engine.

Nothing blocks longer than ``wait_timeout``: past it the operation raises a
``RecoverableError`` with ``retry_after`` and the engine runs it again later (within
its retry budget), so neither install nor uninstall can hang on a stuck resource.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import Any

from orchestrator import RecoverableError


class Waits:
    """A node's ``poll_interval`` and ``wait_timeout``."""

    def __init__(self, properties: Mapping[str, Any]) -> None:
        self.interval = float(properties.get("poll_interval", 5.0))
        self.timeout = float(properties.get("wait_timeout", 60.0))

    def until(self, probe: Callable[[], bool], what: str) -> None:
        """Return once ``probe()`` is true; raise ``RecoverableError`` past the timeout."""
        deadline = time.monotonic() + self.timeout
        while not probe():
            if time.monotonic() + self.interval > deadline:
                raise RecoverableError(f"still waiting for {what}", retry_after=self.interval)
            time.sleep(self.interval)
