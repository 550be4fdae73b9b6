"""Numbers the environment may set (leases, timeouts): one rule for reading them all."""

from __future__ import annotations

import math
import os
from collections.abc import Mapping

DEFAULT_OPERATION_TIMEOUT = 3600.0  # seconds per hook call; a template or --operation-timeout may change it


def positive_seconds(name: str, default: float, env: Mapping[str, str] | None = None) -> float:
    """``env[name]`` (the process environment by default) as seconds; ``default`` unless it is a
    positive, finite number (a typo never means "no limit" or "at once")."""
    try:
        value = float((os.environ if env is None else env).get(name, ""))
    except ValueError:
        return default
    return value if value > 0 and math.isfinite(value) else default
