"""The Cloudify front-end: a ``cloudify_dsl_1_x`` blueprint to our ``Blueprint``.

Reading (``reader``) gives Cloudify's sections merged over imports and packs; they are
translated into our sections, keeping every mark, and loaded by the core loader as if
the blueprint had been written in our dialect, so every check and error message is the
same. Then what only Cloudify has is applied: interfaces (``interfaces``) and the
packs' mappings of Cloudify types onto plugin types (``mapping``). What we cannot run
is refused with ``not supported:`` where it is written, before anything runs.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from orchestrator.dsl.cloudify import PackSource
from orchestrator.dsl.cloudify.base_pack import BASE_PACK
from orchestrator.dsl.cloudify.mapping import apply_mappings
from orchestrator.dsl.cloudify.reader import Read, Reader
from orchestrator.dsl.cloudify.translate import Translation, translate
from orchestrator.dsl.functions import PlanResolver
from orchestrator.dsl.inputs import GivenInput, display_path
from orchestrator.dsl.loader import build_blueprint, fill_blueprint
from orchestrator.dsl.model import Blueprint
from orchestrator.dsl.problems import Problems, shown
from orchestrator.dsl.types import TypeSource
from orchestrator.dsl.yaml_source import child_mark


def load_cloudify(path: Path, inputs: Mapping[str, GivenInput], type_sources: Sequence[TypeSource],
                  missing_secret: Callable[[str], str | None] | None, packs: PackSource) -> Blueprint | Problems:
    """The blueprint, or the problems (all of them, each ``FILE:LINE:COL``)."""
    problems = Problems()
    available = _packs(packs, problems)
    read = Reader(available, BASE_PACK, problems).load(path)
    if read is None:
        return problems
    tr = translate(read, problems)
    bp = build_blueprint(path, display_path(path), tr.description, tr.sections, type_sources, problems)
    bp.dialect = "cloudify"
    fill_blueprint(bp, tr.sections, inputs, problems, missing_secret)
    if not problems:
        _finish(bp, read, tr, problems)
    if read.incomplete:  # the import said so already; what it may have declared is not missing
        problems.items[:] = [p for p in problems.items if not _KNOCK_ON.search(p.message)]
    return problems if problems else bp


_KNOCK_ON = re.compile(r"target '[^']*' is not a (node template|group)|get_attribute of unknown node template "
                       r"|get_property: node template '[^']*' has no property |is neither a node template nor a group")


def _finish(bp: Blueprint, read: Read, tr: Translation, problems: Problems) -> None:
    """Operation inputs resolved like properties (``get_input``, ``get_property``, ``concat``
    now; ``get_attribute`` stays for run time), then the packs' mappings, which read them."""
    resolver = PlanResolver(bp, problems)
    for name, t in bp.templates.items():
        info = tr.templates.get(name)
        if info is not None:
            t.operation_inputs = {
                op: {key: resolver.resolve(value, child_mark(inputs, key, t.mark), t,
                                           f"node template '{shown(name)}': operation '{op}': input '{shown(key)}'")
                     for key, value in inputs.items()}
                for op, inputs in info.operation_inputs.items()}
    if not problems:
        apply_mappings(bp, read, tr, problems)


def _packs(packs: PackSource, problems: Problems) -> list[tuple[str, Any]]:
    if packs is None:
        return []
    try:
        return list(packs())
    except Exception:  # the plugin manager reports a broken plugin among its load errors
        return []


__all__ = ["load_cloudify"]
