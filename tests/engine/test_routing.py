"""Routing (contract §2): a node's hooks run only the owning plugin's implementations."""

from __future__ import annotations

from typing import Any

from orchestrator import hookimpl
from orchestrator.engine.dispatch import DirectCall, Dispatcher
from orchestrator.plugins import get_plugin_manager


class Owner:
    """A type-owning plugin that records which instances it saw."""

    def __init__(self, name: str, prefix: str) -> None:
        self.__name__ = name
        self.prefix = prefix
        self.seen: list[tuple[str, str]] = []

    @hookimpl
    def register_types(self) -> dict[str, Any]:
        return {"node_types": {f"{self.prefix}.Thing": {"derived_from": "orchestrator.nodes.Root"}},
                "relationships": {f"{self.prefix}.link": {"derived_from": "orchestrator.relationships.connected_to"}}}

    @hookimpl
    def create(self, ctx: Any) -> None:
        self.seen.append(("create", ctx.instance.id))

    @hookimpl
    def establish(self, ctx: Any) -> None:
        self.seen.append(("establish", f"{ctx.source.instance.id}->{ctx.target.instance.id}:{ctx.relationship.type}"))

    @hookimpl(wrapper=True)
    def start(self, ctx: Any) -> Any:
        self.seen.append(("own-wrapper-start", ctx.instance.id))
        return (yield)

    @hookimpl(specname="start")
    def start_impl(self, ctx: Any) -> None:
        self.seen.append(("start", ctx.instance.id))


class Tracer:
    """A type-less plugin: its wrappers see every call, for every owner."""

    __name__ = "tracer"

    def __init__(self) -> None:
        self.seen: list[tuple[str, str]] = []

    @hookimpl(wrapper=True)
    def create(self, ctx: Any) -> Any:
        self.seen.append(("create", ctx.instance.id))
        return (yield)

    @hookimpl(wrapper=True)
    def establish(self, ctx: Any) -> Any:
        self.seen.append(("establish", ctx.describe()))
        return (yield)


BLUEPRINT = """
node_types:
  my.Derived: {derived_from: a.Thing}
node_templates:
  x: {type: a.Thing}
  y: {type: b.Thing}
  z: {type: my.Derived}
  core: {type: orchestrator.nodes.Root}
  w:
    type: b.Thing
    relationships:
      - {type: a.link, target: x}
      - {type: b.link, target: y}
"""


def test_each_node_runs_only_its_owners_hooks(orch):
    a, b, tracer = Owner("plugin_a", "a"), Owner("plugin_b", "b"), Tracer()
    orch.use(a, b, tracer)
    run = orch.install(BLUEPRINT)
    assert run.ok, run.failures
    assert sorted(i for op, i in a.seen if op == "create") == ["x_0", "z_0"]  # z derives from a.Thing
    assert sorted(i for op, i in b.seen if op == "create") == ["w_0", "y_0"]
    # relationship hooks go to the owner of the relationship type, not of the node
    assert [i for op, i in a.seen if op == "establish"] == ["w_0->x_0:a.link"]
    assert [i for op, i in b.seen if op == "establish"] == ["w_0->y_0:b.link"]
    # a type-owning plugin's own wrapper sees only its own types
    assert sorted(i for op, i in a.seen if op == "own-wrapper-start") == ["x_0", "z_0"]
    # a type-less plugin's wrappers see every call the engine makes (none for the core type:
    # nothing implements its create)
    assert sorted(i for op, i in tracer.seen if op == "create") == ["w_0", "x_0", "y_0", "z_0"]
    assert sorted(i for op, i in tracer.seen if op == "establish") == ["w_0->x_0", "w_0->y_0"]


def test_a_wrapper_never_changes_which_operations_run(orch):
    """Issue 18: a type-less wrapper made configure/postconfigure/establish run for every instance."""
    a, b = Owner("plugin_a", "a"), Owner("plugin_b", "b")
    orch.use(a, b)
    without = orch.install(BLUEPRINT, deployment="plain")
    tracer = Tracer()
    every = _wrap_every_hook(tracer)
    orch.use(a, b, every)
    wrapped = orch.install(BLUEPRINT, deployment="wrapped")
    assert without.ok and wrapped.ok
    ops = lambda run: sorted((c.hook, c.instance) for c in run.calls)  # noqa: E731
    assert ops(wrapped) == ops(without)
    assert ("configure", "x_0") not in ops(wrapped) and ("create", "core_0") not in ops(wrapped)
    assert ("start", "x_0") in ops(wrapped) and ("establish", "w_0->x_0") in ops(wrapped)
    ran = sorted((e.type, e.instance, e.operation) for e in wrapped.events if e.type == "operation_started")
    assert ran == sorted((e.type, e.instance, e.operation) for e in without.events if e.type == "operation_started")


def _wrap_every_hook(tracer: Tracer) -> Any:
    from orchestrator.sdk import wrap_operations

    @wrap_operations(name="every")
    def trace(ctx: Any) -> Any:
        tracer.seen.append((ctx.operation.name, ctx.describe()))
        return (yield)

    return trace


def test_dispatcher_caches_one_caller_per_owner_and_operation():
    a, b = Owner("plugin_a", "a"), Owner("plugin_b", "b")
    pm = get_plugin_manager([a, b], entry_points=False, env={})
    d = Dispatcher(pm)
    assert d.caller("plugin_a", "create") is d.caller("plugin_a", "create")
    impls = d.caller("plugin_a", "create").get_hookimpls()
    assert {pm.get_name(i.plugin) for i in impls} == {"plugin_a"}
    assert d.caller("plugin_a", "delete") is None  # nothing implements it: nothing runs
    assert d.caller("orchestrator.builtin", "create") is None  # the core's types implement nothing


def test_non_wrapper_hook_of_typeless_plugin_is_reported():
    class Confused:
        __name__ = "confused"

        @hookimpl
        def create(self, ctx: Any) -> None: ...

    pm = get_plugin_manager([Confused()], entry_points=False, env={})
    warnings = [e for e in pm.load_errors if not e.fatal]
    assert len(warnings) == 1 and "never called" in warnings[0].error and "wrapper=True" in warnings[0].error


def test_two_plugins_registering_one_type_is_an_error_naming_both():
    a1, a2 = Owner("first", "a"), Owner("second", "a")
    pm = get_plugin_manager([a1, a2], entry_points=False, env={})
    errors = [str(e) for e in pm.load_errors if e.fatal]
    assert any("'first'" in e and "'second'" in e and "a.Thing" in e for e in errors), errors


def test_misspelled_hookimpl_names_plugin_and_function():
    class Typo:
        __name__ = "typo"

        @hookimpl
        def register_types(self) -> dict[str, Any]:
            return {"node_types": {"t.T": {}}}

        @hookimpl
        def creat(self, ctx: Any) -> None: ...

    pm = get_plugin_manager([Typo()], entry_points=False, env={})
    (error,) = [e for e in pm.load_errors if e.fatal]
    assert error.plugin == "typo"
    assert "'creat'" in error.error and "did you mean 'create'" in error.error
    assert not pm.has_plugin("typo")  # skipped, the host keeps working


def test_a_typeless_wrapper_can_skip_operations_for_dry_run(orch):
    from orchestrator import SkipOperation

    class DryRun:
        __name__ = "dry_run"

        @hookimpl(wrapper=True)
        def create(self, ctx: Any) -> Any:
            if ctx.node.type == "a.Thing":
                raise SkipOperation("dry run")
            return (yield)

    owner = Owner("plugin_a", "a")
    orch.use(owner, DryRun())
    run = orch.install("node_templates: {x: {type: a.Thing}}")
    assert run.ok, run.failures
    assert not [i for op, i in owner.seen if op == "create"]  # the owner's create never ran
    assert run.states == {"x_0": "started"}
    assert [e.message for e in run.events if e.type == "operation_skipped"] == ["create skipped: dry run"]


class Answers:
    """One implementation per hook: the engine calls it without pluggy's machinery, and must get
    what pluggy would have returned (a list for ordinary hooks, the value for firstresult ones)."""

    __name__ = "answers"

    @hookimpl
    def register_types(self) -> dict[str, Any]:
        return {"node_types": {"answers.Thing": {"derived_from": "orchestrator.nodes.Root"}}}

    @hookimpl
    def create(self, ctx: Any) -> str:
        return f"created {ctx}"

    @hookimpl
    def configure(self) -> None:  # a hookimpl may take fewer arguments than the spec
        return None

    @hookimpl
    def start(self, ctx: Any) -> None:
        raise KeyError(ctx)

    @hookimpl
    def check_drift(self, ctx: Any) -> dict[str, Any]:
        return {"drifted": ctx}


def test_a_hook_with_one_implementation_returns_what_pluggy_returns():
    import pytest

    answers = Answers()
    pm = get_plugin_manager([answers], entry_points=False, env={})
    direct = Dispatcher(pm)
    for op, ctx in (("create", 1), ("configure", 2), ("check_drift", 3)):
        via_pluggy = getattr(pm.hook, op)(ctx=ctx)
        caller = direct.caller("answers", op)
        assert isinstance(caller, DirectCall) and caller(ctx=ctx) == via_pluggy, op
    with pytest.raises(KeyError):
        direct.caller("answers", "start")(ctx=4)
    traced = get_plugin_manager([Answers()], entry_points=False, env={"ORCHESTRATOR_TRACE_HOOKS": "1"})
    assert not isinstance(Dispatcher(traced).caller("answers", "create"), DirectCall)  # tracing sees every call
