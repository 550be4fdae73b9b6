"""What ``--state`` names: a SQLite file path or a PostgreSQL URL (cheap to import: the CLI reads it first)."""

from __future__ import annotations

import re
from pathlib import Path

DEFAULT_STATE = Path(".orchestrator") / "state.db"

URL = re.compile(r"^postgres(ql)?(\+\w+)?://", re.IGNORECASE)


def is_url(location: str | Path) -> bool:
    """Whether ``--state`` names a database server rather than a file."""
    return isinstance(location, str) and bool(URL.match(location))


def display(location: str | Path) -> str:
    """``location`` fit to print: a URL loses its password."""
    text = str(location)
    return re.sub(r"(://[^:/@]+:)[^@/]*@", r"\1***@", text) if is_url(text) else text


def state_exists(location: str | Path) -> bool:
    """Whether a query would find a state there (a server is assumed to exist)."""
    return is_url(location) or Path(location).exists()
