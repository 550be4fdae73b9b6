"""A third-party plugin's bugs are its own failures, said in its name: never an engine error,
a hook that silently does nothing, or a state file swollen by one message."""

from __future__ import annotations

import copy
import datetime
import json
import sys
import threading
from typing import Any

import pytest

from orchestrator import NonRecoverableError, hookimpl
from orchestrator.plugins import get_plugin_manager


class Unreadable(Exception):
    def __str__(self) -> str:
        raise RuntimeError("no message for you")


class Buggy:
    """Each node type is one planted bug in create."""

    __name__ = "buggy"

    @hookimpl
    def register_types(self) -> dict[str, Any]:
        kinds = ("Unreadable", "Huge", "Deleted", "Replaced", "Closes")
        return {"node_types": {f"bug.{k}": {"derived_from": "orchestrator.nodes.Root"} for k in kinds}}

    @hookimpl
    def create(self, ctx: Any) -> None:
        kind = ctx.node.type.split(".")[1]
        if kind == "Unreadable":
            raise Unreadable()
        if kind == "Huge":
            ctx.logger.info("y" * 3_000_000)
            raise RuntimeError("x" * 5_000_000)
        if kind == "Deleted":
            del ctx.instance.runtime_properties
        if kind == "Replaced":
            ctx.instance.runtime_properties = ["not", "a", "dict"]
        if kind == "Closes":
            sys.stdout.close()
            print("after closing", file=sys.stderr)


def _failure(orch: Any, kind: str) -> str:
    orch.use(Buggy())
    result = orch.install(f"node_templates: {{n: {{type: bug.{kind}}}}}", deployment=kind.lower())
    assert not result.ok and result.states == {"n_0": "failed"}
    [failure] = result.failures
    assert failure.operation == "create" and failure.plugin == "buggy", failure
    return failure.message


def test_an_exception_whose_message_cannot_be_read_is_still_the_plugins_failure(orch):
    assert _failure(orch, "Unreadable").startswith("Unreadable: (its message could not be read: RuntimeError) (gave up")


def test_a_huge_message_is_kept_clipped_in_the_state(orch):
    message = _failure(orch, "Huge")
    assert len(message) < 70_000 and message.endswith("characters; the first 65,536)"), message[-100:]
    size = sum(p.stat().st_size for p in orch.tmp_path.glob("state.db*"))
    assert size < 2_000_000, "the log line and the failure went in whole"


@pytest.mark.parametrize(("kind", "said"), [("Deleted", "deleted it"), ("Replaced", "made it a list")])
def test_runtime_properties_that_stop_being_a_dict_fail_the_operation(orch, kind, said):
    assert _failure(orch, kind) == f"ctx.instance.runtime_properties of n_0 must stay a dict; the hook {said}"


def test_a_hook_closing_stdout_closes_nothing_of_the_commands(orch):
    orch.use(Buggy())
    result = orch.install("node_templates: {n: {type: bug.Closes}}")
    assert result.ok and not sys.stdout.closed
    assert result.logs("n_0") == ["after closing"]


class Idle:
    """Hooks whose bodies would never run: pluggy takes them, and the hook then does nothing."""

    @hookimpl
    def create(self, ctx: Any) -> Any:
        ctx.instance.runtime_properties["created"] = True
        yield

    @hookimpl
    async def start(self, ctx: Any) -> None:
        ctx.instance.runtime_properties["started"] = True


def test_a_generator_or_async_hook_is_refused_when_the_plugin_loads():
    pm = get_plugin_manager([Idle()], entry_points=False, env={})
    problems = sorted(str(e) for e in pm.load_errors)
    assert len(problems) == 2 and all(e.fatal for e in pm.load_errors)
    assert "hookimpl 'create' (test_plugin_bugs.Idle.create) is a generator function" in problems[0]
    assert "hookimpl 'start' (test_plugin_bugs.Idle.start) is 'async def'" in problems[1]
    assert "Idle" not in {name for name, _ in pm.list_name_plugin()}


class Mutates:
    """Changes what a node's properties hold, in place: before, every other instance saw it."""

    __name__ = "mutates"

    def __init__(self) -> None:
        self.seen: list[tuple[str, Any]] = []

    @hookimpl
    def register_types(self) -> dict[str, Any]:
        return {"node_types": {"mut.T": {"derived_from": "orchestrator.nodes.Root",
                                         "properties": {"tags": {"type": "dict"}, "ports": {"type": "list"}}}}}

    @hookimpl
    def create(self, ctx: Any) -> None:
        props = ctx.node.properties
        self.seen.append((ctx.instance.id, json.dumps(props, sort_keys=True)))
        mine = copy.deepcopy(props)  # the way to change them: a plain copy
        mine["tags"]["seen_by"] = ctx.instance.id
        mine["ports"][0]["port"] += 1
        ctx.instance.runtime_properties["mine"] = mine
        for change in (lambda: props["tags"].update(x=1), lambda: props["ports"].append(1),
                       lambda: props["ports"][0].__setitem__("port", 1), lambda: props["tags"].setdefault("y", 2)):
            try:
                change()
            except NonRecoverableError as exc:
                assert "read-only, and so is what it holds" in str(exc)
            else:
                raise AssertionError("changed in place")


def test_what_properties_hold_is_read_only_too_and_a_deep_copy_can_change(orch):
    plugin = Mutates()
    orch.use(plugin)
    result = orch.install("node_templates: {n: {type: mut.T, instances: 3, properties: "
                          "{tags: {a: '1'}, ports: [{port: 80}]}}}")
    assert result.ok, result.failures
    assert {text for _, text in plugin.seen} == {'{"ports": [{"port": 80}], "tags": {"a": "1"}}'}, "no instance saw another's change"
    assert result.runtime_properties["n_2"]["mine"] == {"tags": {"a": "1", "seen_by": "n_2"}, "ports": [{"port": 81}]}


class InputsChanger:
    """Changes its operation's inputs in place, as a hook given kwargs may."""

    __name__ = "inputs"

    def __init__(self) -> None:
        self.seen: list[Any] = []

    @hookimpl
    def register_types(self) -> dict[str, Any]:
        return {"node_types": {"in.T": {"derived_from": "orchestrator.nodes.Root",
                                        "operations": {"go": {"inputs": {"opts": {"type": "dict"}}}}}}}

    @hookimpl
    def run_operation(self, ctx: Any) -> Any:
        opts = ctx.operation.inputs["opts"]
        self.seen.append(json.dumps(opts, sort_keys=True))
        opts.setdefault("by", []).append(ctx.instance.id)
        return opts


def test_a_hooks_changes_to_its_inputs_stay_its_own(orch):
    plugin = InputsChanger()
    orch.use(plugin)
    assert orch.install("node_templates: {n: {type: in.T, instances: 3}}").ok
    results = orch.execute("go", {"opts": {"level": 1}})
    assert set(plugin.seen) == {'{"level": 1}'}
    assert results == {f"n_{i}": {"level": 1, "by": [f"n_{i}"]} for i in range(3)}


class LeavesAThread:
    """create starts a thread that saves once start (so after create returned) runs."""

    __name__ = "threads"

    def __init__(self) -> None:
        self.late: list[str] = []
        self.starting = threading.Event()
        self.done = threading.Event()

    @hookimpl
    def register_types(self) -> dict[str, Any]:
        return {"node_types": {"th.T": {"derived_from": "orchestrator.nodes.Root"}}}

    @hookimpl
    def create(self, ctx: Any) -> None:
        def later() -> None:
            self.starting.wait(5)
            ctx.instance.runtime_properties["late"] = True
            try:
                ctx.instance.update()
            except NonRecoverableError as exc:
                self.late.append(str(exc))
            self.done.set()

        threading.Thread(target=later, daemon=True).start()
        ctx.instance.runtime_properties["created"] = True

    @hookimpl
    def start(self, ctx: Any) -> None:
        self.starting.set()
        self.done.wait(5)


def test_a_thread_a_hook_left_behind_cannot_write_after_the_hook_returned(orch):
    plugin = LeavesAThread()
    orch.use(plugin)
    result = orch.install("node_templates: {n: {type: th.T}}")
    assert result.ok, result.failures
    assert result.runtime_properties["n_0"] == {"created": True}
    assert plugin.late == ["ctx.instance.update() of n_0 after create returned: nothing is written "
                           "(a thread a hook starts must end before the hook returns)"]


class NotPlainTypes:
    """register_types with values JSON cannot hold: before, every install of them raised TypeError."""

    def __init__(self, default: Any) -> None:
        self.default = default

    @hookimpl
    def register_types(self) -> dict[str, Any]:
        return {"node_types": {"np.T": {"derived_from": "orchestrator.nodes.Root",
                                        "properties": {"when": {"default": self.default}}}}}


@pytest.mark.parametrize(("default", "said"), [
    (datetime.datetime(2020, 1, 1), "is a datetime"), ({1, 2}, "is a set"), (float("nan"), "is nan, which JSON"),
    ({1: "a"}, "has a key 1 that is not a string")])
def test_types_that_are_not_plain_data_are_a_load_error_of_their_plugin(default: Any, said: str) -> None:
    pm = get_plugin_manager([NotPlainTypes(default)], entry_points=False, env={})
    [error] = pm.load_errors
    assert error.fatal and "register_types: node_types.np.T.properties.when" in str(error) and said in str(error)
    assert "np.T" not in pm.type_owner
