"""The Cloudify dialect: blueprints whose version line says ``cloudify_dsl_1_0`` ... ``1_5``.

Only what the loader needs to notice such a blueprint lives here, so reading one of our
own blueprints imports nothing more: ``sniff`` looks at the head of the file,
``IsCloudify`` is raised when the version key turns up later than the sniff looked. The
front-end itself is ``front.load_cloudify``.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

VERSIONS = tuple(f"cloudify_dsl_1_{minor}" for minor in range(6))
VERSION_KEY = "tosca_definitions_version"
SNIFF_BYTES = 8192
_VERSION_LINE = re.compile(rb"^tosca_definitions_version[ \t]*:", re.MULTILINE)

# Where packs come from: a callable giving ``(plugin name, CloudifyPack)`` pairs (the plugin
# manager's ``cloudify_packs``), or None for the core's own pack only.
PackSource = Callable[[], Sequence[tuple[str, Any]]] | None


class IsCloudify(Exception):
    """The blueprint being read turned out to be a Cloudify blueprint."""


def sniff(path: Path) -> bool:
    """Whether the file's head has a ``tosca_definitions_version`` line (cheap: one small read)."""
    try:
        with open(path, "rb") as f:
            head = f.read(SNIFF_BYTES)
    except (OSError, ValueError):
        return False
    return _VERSION_LINE.search(head) is not None


__all__ = ["VERSIONS", "VERSION_KEY", "IsCloudify", "PackSource", "sniff"]
