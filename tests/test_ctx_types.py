"""The typed public ctx (``orchestrator.ctx``) describes what the engine really hands to hooks.

The protocols are what plugins annotate with; the engine's classes are what they get.
Every protocol member must exist on the engine class (so annotated code works) and
every public member of the engine class must be in the protocol (so nothing a plugin
may use is missing from the types).
"""

from __future__ import annotations

import inspect
import typing

import pytest

import orchestrator
from orchestrator import ctx as public
from orchestrator.engine import context as engine
from orchestrator.validation import NodeTemplateInfo as ValidationNode
from orchestrator.validation import RelationshipTemplateInfo as ValidationRelationship

PAIRS = [
    (public.OperationContext, engine.OperationContext),
    (public.NodeContext, engine.NodeContext),
    (public.InstanceContext, engine.InstanceContext),
    (public.EntityContext, engine.EntityContext),
    (public.RelationshipContext, engine.RelationshipContext),
    (public.OperationInfo, engine.OperationInfo),
    (public.DeploymentContext, engine.DeploymentContext),
    (public.BlueprintContext, engine.BlueprintContext),
    (public.Logger, engine.OperationLogger),
    (public.NodeTemplateInfo, ValidationNode),
    (public.RelationshipTemplateInfo, ValidationRelationship),
]


def _members(cls: type) -> set[str]:
    names = {n for n in getattr(cls, "__slots__", ()) if not n.startswith("_")}
    names |= {n for n, v in vars(cls).items() if not n.startswith("_") and (callable(v) or isinstance(v, property))}
    names |= {n for n in getattr(cls, "__annotations__", {}) if not n.startswith("_")}
    if hasattr(cls, "__attrs_attrs__"):
        names |= {a.name for a in cls.__attrs_attrs__}
    return names


def _protocol_members(proto: type) -> set[str]:
    return {n for n in typing.get_type_hints(proto) | dict(vars(proto)) if not n.startswith("_")} - {
        "register", "__parameters__"}


@pytest.mark.parametrize(("proto", "cls"), PAIRS, ids=[p.__name__ for p, _ in PAIRS])
def test_protocol_and_engine_class_agree(proto: type, cls: type) -> None:
    declared = {n for n in _protocol_members(proto) if not inspect.isclass(getattr(proto, n, None))}
    engine_side = _members(cls) - {"warn", "isEnabledFor", "log", "level", "name"}  # logging.Logger extras
    assert declared - _members(cls) == set(), f"{proto.__name__} promises what {cls.__name__} lacks"
    assert engine_side - declared == set(), f"{cls.__name__} offers what {proto.__name__} does not declare"


def test_the_ctx_types_are_exported_from_orchestrator() -> None:
    for proto, _ in PAIRS:
        assert getattr(orchestrator, proto.__name__) is proto
        assert proto.__name__ in orchestrator.__all__


def test_hookspecs_are_annotated_with_the_public_types() -> None:
    from orchestrator import hookspecs

    hints = typing.get_type_hints(hookspecs.create, vars(public))
    assert hints["ctx"] is public.OperationContext
