"""JSON every reader takes: Python writes NaN and infinities, jq, JavaScript and PostgreSQL refuse them.

What a plugin returns (a custom operation's result, what ``check_drift`` found) may hold
them; they are written as their text ("nan", "inf", "-inf"), like any other value JSON
cannot hold (``default=str``).
"""

from __future__ import annotations

import json
import math
from typing import Any


def dumps(value: Any, **options: Any) -> str:
    """``json.dumps(value, default=str, **options)``, with NaN and infinities as text."""
    try:
        return json.dumps(value, default=str, allow_nan=False, **options)
    except ValueError:  # a NaN or an infinity somewhere: found again below, said as text
        return json.dumps(finite(json.loads(json.dumps(value, default=str))), default=str, **options)


def finite(value: Any) -> Any:
    """JSON data with NaN and infinities as their text."""
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, list):
        return [finite(v) for v in value]
    if isinstance(value, dict):
        return {k: finite(v) for k, v in value.items()}
    return value
