"""Installed distributions made on the fly, for testing entry-point discovery for real.

``importlib.metadata`` finds any ``NAME-VERSION.dist-info`` folder on ``sys.path``; a
folder holding one (plus the plugin's modules) behaves like ``pip install``ed code
when it is on ``sys.path`` or ``PYTHONPATH``, at a fraction of the cost.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path


def write_distribution(root: Path, name: str, entry_points: Mapping[str, str],
                       modules: Mapping[str, str], version: str = "1.0",
                       group: str = "orchestrator.plugins") -> Path:
    """Write modules (``{"pkg/mod.py": source}``) and a dist-info declaring the entry points."""
    root.mkdir(parents=True, exist_ok=True)
    for relpath, source in modules.items():
        path = root / relpath
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(source, encoding="utf-8")
    info = root / f"{name.replace('-', '_')}-{version}.dist-info"
    info.mkdir(exist_ok=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n", encoding="utf-8")
    lines = [f"[{group}]"] + [f"{ep} = {target}" for ep, target in entry_points.items()]
    (info / "entry_points.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return root
