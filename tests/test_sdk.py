"""orchestrator.sdk: resource classes routed by type, waiting by retries, markers, wrappers."""

from __future__ import annotations

import itertools
from typing import Any

import pytest

from orchestrator import NonRecoverableError, OperationContext, OperationRetry, hookimpl
from orchestrator.sdk import (
    EXTERNAL_PROPERTIES,
    NotReady,
    OwnedResource,
    Plugin,
    Relationship,
    Resource,
    markers_of,
    next_interval,
    owner_markers,
    unresolved,
    wait_until,
    wrap_operations,
)

TYPES: dict[str, Any] = {
    "node_types": {
        "kit.Base": {"derived_from": "orchestrator.nodes.Root", "properties": {"size": {"type": "integer", "default": 1}}},
        "kit.Other": {"derived_from": "orchestrator.nodes.Root",
                      "operations": {"greet": {"description": "Say hello.",
                                               "inputs": {"name": {"type": "string"},
                                                          "times": {"type": "integer", "default": 1}}},
                                     "missing": {}}},
    },
    "relationships": {"kit.link": {"derived_from": "orchestrator.relationships.connected_to"}},
}
SEEN: list[tuple[str, str]] = []


class Base(Resource):
    def create(self) -> None:
        SEEN.append(("Base.create", self.instance.id))
        self.save(made=True)

    def delete(self) -> None:
        SEEN.append(("Base.delete", self.instance.id))

    @classmethod
    def validate(cls, node: Any) -> list[Any]:
        return [("size", "must be odd")] if node.properties["size"] % 2 == 0 else []


class Other(Resource):
    def start(self) -> None:
        SEEN.append(("Other.start", self.instance.id))

    def greet(self, name: str, times: int) -> dict[str, Any]:
        return {"greeting": f"hello {name}" * times, "from": self.instance.id}


class Link(Relationship):
    def establish(self) -> None:
        SEEN.append(("Link.establish", self.ctx.describe()))
        self.target.instance.runtime_properties["peer"] = self.source.instance.id


plugin = Plugin(TYPES, {"kit.Base": Base, "kit.Other": Other, "kit.link": Link}, name="kit")

BLUEPRINT = """
node_types:
  my.Derived: {derived_from: kit.Base}
node_templates:
  a: {type: kit.Base, properties: {size: 3}}
  d: {type: my.Derived, properties: {size: 5}}
  o:
    type: kit.Other
    relationships: [{type: kit.link, target: a}]
"""


@pytest.fixture(autouse=True)
def _clear() -> None:
    SEEN.clear()


def test_hookimpls_are_generated_for_the_operations_some_class_implements() -> None:
    hooks = {name for name in dir(plugin) if hasattr(getattr(plugin, name), "orchestrator_impl")}
    assert hooks == {"register_types", "create", "delete", "start", "establish", "validate_node", "run_operation"}


def test_each_type_runs_its_class_and_derived_types_the_nearest_class(orch: Any) -> None:
    orch.use(plugin)
    run = orch.install(BLUEPRINT)
    assert run.ok, run.failures
    assert sorted(SEEN) == [("Base.create", "a_0"), ("Base.create", "d_0"), ("Link.establish", "o_0->a_0"),
                            ("Other.start", "o_0")]
    # an operation implemented for some type of the plugin is a no-op for a class without it
    assert run.runtime_properties["a_0"] == {"made": True, "peer": "o_0"}
    assert orch.uninstall().ok
    assert sorted(i for op, i in SEEN if op == "Base.delete") == ["a_0", "d_0"]


def test_a_custom_operation_is_the_method_of_its_name_called_with_its_inputs(orch: Any) -> None:
    from orchestrator import BlueprintError

    orch.use(plugin)
    node = orch.node("kit.Other")
    assert node.operation("greet", name="ada") == {"greeting": "hello ada", "from": node.id}
    with pytest.raises(BlueprintError, match="input 'times' of operation 'greet': expected integer, got string"):
        node.operation("greet", name="ada", times="2")
    with pytest.raises(NonRecoverableError, match="declares operation 'missing' but its class Other has no method"):
        node.operation("missing")
    assert orch.install("node_templates: {o: {type: kit.Other}, a: {type: kit.Base}}").ok
    assert orch.execute("greet", {"name": "bo", "times": 2}) == {"o_0": {"greeting": "hello bohello bo",
                                                                        "from": "o_0"}}


def test_validate_routes_to_the_class_and_reports_where(orch: Any) -> None:
    from orchestrator import BlueprintError

    orch.use(plugin)
    with pytest.raises(BlueprintError, match=r"blueprint.yaml:5:\d+: node template 'a': property 'size': must be odd"):
        orch.orchestrator().load(orch.blueprint(BLUEPRINT.replace("size: 3", "size: 4")))


def test_plain_hookimpls_on_a_subclass_keep_working(orch: Any) -> None:
    class WithExtra(Plugin):
        @hookimpl
        def configure(self, ctx: OperationContext) -> None:
            SEEN.append(("plain configure", ctx.instance.id))

    orch.use(WithExtra(TYPES, {"kit.Base": Base}, name="kit"))
    assert orch.install("node_templates: {a: {type: kit.Base}}").ok
    assert SEEN == [("Base.create", "a_0"), ("plain configure", "a_0")]


def test_a_class_that_is_not_a_resource_is_refused() -> None:
    with pytest.raises(TypeError, match="expected a Resource or Relationship subclass"):
        Plugin(TYPES, {"kit.Base": object})  # type: ignore[dict-item]


def test_ctx_plugin_is_the_entry_point_name_under_the_fixture_too(orch: Any) -> None:
    from orchestrator_hello.plugin import plugin as hello

    seen = []

    @wrap_operations(operations=("create",), name="spy")
    def spy(ctx: Any) -> Any:
        seen.append(ctx.plugin)
        return (yield)

    orch.use(hello, spy)
    assert orch.install(f"node_templates: {{d: {{type: hello.Directory, properties: {{path: {orch.tmp_path}/d}}}}}}").ok
    assert seen == ["hello"]  # as under the command line, not 'orchestrator_hello.plugin'


# ---------------------------------------------------------------- waiting


class FakeCtx:
    """Just what wait_until reads."""

    def __init__(self, retry_number: int = 0, max_retries: int = 5) -> None:
        self.source = None
        self.instance = type("I", (), {"runtime_properties": {}})()
        self.operation = type("O", (), {"name": "start", "retry_number": retry_number, "max_retries": max_retries})()


def test_wait_until_returns_at_once_when_ready_and_forgets_the_wait() -> None:
    ctx = FakeCtx()
    ctx.instance.runtime_properties["_waiting"] = {"for": "start: x", "since": 0, "interval": 1}
    assert wait_until(ctx, lambda: "ready", "x") == "ready"
    assert "_waiting" not in ctx.instance.runtime_properties


def test_wait_until_asks_to_be_retried_with_a_short_first_pause_then_longer() -> None:
    ctx, clock = FakeCtx(max_retries=200), [1000.0]
    with pytest.raises(OperationRetry, match=r"waiting for the thing \(0\.0s so far\)") as first:
        wait_until(ctx, lambda: False, "the thing", clock=lambda: clock[0])
    assert first.value.retry_after == pytest.approx(0.1)
    pauses = []
    for n in range(1, 8):
        ctx.operation.retry_number, clock[0] = n, clock[0] + 1
        with pytest.raises(OperationRetry) as info:
            wait_until(ctx, lambda: False, "the thing", clock=lambda: clock[0])
        pauses.append(info.value.retry_after)
    assert all(b >= a for a, b in itertools.pairwise(pauses)) and pauses[-1] <= 5.0  # doubling up to max_interval


def test_wait_until_gives_up_after_its_timeout_counted_across_retries() -> None:
    ctx, clock = FakeCtx(), [1000.0]
    with pytest.raises(OperationRetry):
        wait_until(ctx, lambda: False, "it", timeout=10, clock=lambda: clock[0])
    ctx.operation.retry_number, clock[0] = 1, 1011.0
    with pytest.raises(NonRecoverableError, match=r"gave up waiting for it after 11\.0s \(timeout 10s\)"):
        wait_until(ctx, lambda: False, "it", timeout=10, clock=lambda: clock[0])


def test_a_new_execution_starts_a_new_wait() -> None:
    ctx = FakeCtx(retry_number=0)
    ctx.instance.runtime_properties["_waiting"] = {"for": "start: it", "since": 0.0, "interval": 4}
    with pytest.raises(OperationRetry) as info:  # since 1970 would be long past any timeout
        wait_until(ctx, lambda: False, "it", clock=lambda: 5000.0)
    assert info.value.retry_after == pytest.approx(0.1)


def test_no_retries_left_is_said_plainly() -> None:
    with pytest.raises(NonRecoverableError, match=r"no retries left .*raise --retries"):
        wait_until(FakeCtx(retry_number=5, max_retries=5), lambda: False, "it")


def test_not_ready_after_delays_the_next_look() -> None:
    with pytest.raises(OperationRetry, match="within its grace") as info:
        wait_until(FakeCtx(), lambda: NotReady(after=0.9, why="within its grace"), "it")
    assert info.value.retry_after == pytest.approx(0.9)


def test_not_ready_by_brings_the_next_look_forward_when_few_retries_are_left() -> None:
    # A stop that kills once its timeout is over: the schedule alone would look again 30 s later.
    ctx, clock = FakeCtx(retry_number=4, max_retries=5), [1009.6]
    ctx.instance.runtime_properties["_waiting"] = {"for": "start: it", "since": 1000.0, "interval": 7.3}
    with pytest.raises(OperationRetry) as late:
        wait_until(ctx, lambda: NotReady(why="stop signal sent"), "it", timeout=40, clock=lambda: clock[0])
    assert late.value.retry_after == pytest.approx(30.4)
    ctx.instance.runtime_properties["_waiting"] = {"for": "start: it", "since": 1000.0, "interval": 7.3}
    with pytest.raises(OperationRetry) as soon:
        wait_until(ctx, lambda: NotReady(by=0.4), "it", timeout=40, clock=lambda: clock[0])
    assert soon.value.retry_after == pytest.approx(0.4)


@pytest.mark.parametrize(("retries", "budget"), [(3, 2.0), (5, 60.0), (5, 300.0), (10, 300.0), (60, 300.0)])
def test_the_schedule_lasts_the_whole_budget_with_the_retries_there_are(retries: int, budget: float) -> None:
    prev, spent = None, 0.0
    pauses = []
    for left in range(retries, 0, -1):
        pause = min(next_interval(prev, left, budget - spent, 0.1, 5.0), budget - spent)
        pauses.append(pause)
        spent += pause
        prev = pause
    assert pauses[0] == pytest.approx(0.1)
    assert spent == pytest.approx(budget)
    assert all(b >= a - 1e-6 for a, b in itertools.pairwise(pauses))


# ---------------------------------------------------------------- markers, values, wrappers


def test_one_spelling_of_the_ownership_markers() -> None:
    assert owner_markers("dep", "web_0") == {"orchestrator.deployment": "dep", "orchestrator.instance": "web_0"}
    from plugins_aws.tags import ownership_tags
    from plugins_docker.labels import owner_labels

    assert ownership_tags("dep", "web_0") == owner_labels("dep", "web_0") == owner_markers("dep", "web_0")


def test_markers_of_a_relationship_are_the_sources() -> None:
    ctx = type("C", (), {"deployment": type("D", (), {"id": "dep"})(),
                         "source": type("S", (), {"instance": type("I", (), {"id": "a_0"})()})()})()
    assert markers_of(ctx) == owner_markers("dep", "a_0")


def test_unresolved_values() -> None:
    assert unresolved({"get_attribute": ["x", "y"]}) and unresolved([1, {"get_secret": "s"}])
    assert unresolved({"concat": ["a", {"get_attribute": ["x", "y"]}]})
    assert not unresolved({"port": 22}) and not unresolved("text")


def test_one_wrapper_function_wraps_every_operation_and_adds_none(orch: Any) -> None:
    calls = []

    @wrap_operations
    def trace(ctx: Any) -> Any:
        calls.append(ctx.operation.name)
        try:
            return (yield)
        finally:
            calls.append(f"/{ctx.operation.name}")

    assert trace.__name__ == f"{__name__}.test_one_wrapper_function_wraps_every_operation_and_adds_none.<locals>.trace"
    orch.use(Plugin(TYPES, {"kit.Base": Base}, name="kit"), trace)
    assert orch.install("node_templates: {a: {type: kit.Base}}").ok
    assert calls == ["create", "/create"]  # the plugin implements create (and delete) only: nothing else runs


def test_wrap_operations_refuses_unknown_operations() -> None:
    with pytest.raises(ValueError, match="not lifecycle hooks: creat"):
        wrap_operations(operations=("creat",))(lambda ctx: (yield))


# ---------------------------------------------------------------- OwnedResource


class Cloud:
    def __init__(self) -> None:
        self.things: dict[str, dict[str, Any]] = {}

    def make(self, markers: dict[str, str]) -> dict[str, Any]:
        thing = {"id": f"t-{len(self.things) + 1}", "tags": dict(markers)}
        self.things[thing["id"]] = thing
        return thing


CLOUD = Cloud()


class Thing(OwnedResource):
    kind = "thing"

    def describe(self, resource_id: str) -> Any:
        return CLOUD.things.get(resource_id)

    def find(self, markers: Any) -> list[Any]:
        return [t for t in CLOUD.things.values() if markers.items() <= t["tags"].items()]

    def create_new(self) -> Any:
        return CLOUD.make(self.markers)

    def delete_existing(self, resource_id: str) -> None:
        CLOUD.things.pop(resource_id, None)

    def id_of(self, resource: Any) -> str:
        return str(resource["id"])


THINGS = Plugin({"node_types": {"kit.Thing": {"derived_from": "orchestrator.nodes.Root",
                                              "properties": dict(EXTERNAL_PROPERTIES)}}}, {"kit.Thing": Thing},
                name="things")


def test_owned_resource_resumes_finds_by_markers_and_adopts(orch: Any) -> None:
    CLOUD.things.clear()
    orch.use(THINGS)
    node = orch.node("kit.Thing", id="t")
    node.call("create")
    first = node.runtime_properties["resource_id"]
    node.call("create")  # resumes with the saved id
    node.runtime_properties.clear()  # the id was never saved: found by its markers
    node.call("create")
    assert node.runtime_properties["resource_id"] == first and list(CLOUD.things) == [first]
    node.runtime_properties.clear()
    node.call("delete")  # found by markers again
    assert CLOUD.things == {}
    theirs = CLOUD.make({})
    adopted = orch.node("kit.Thing", {"use_external_resource": True, "resource_id": theirs["id"]})
    adopted.call("create")
    adopted.call("delete")
    assert theirs["id"] in CLOUD.things  # never deleted
    with pytest.raises(NonRecoverableError, match="thing 'nope' does not exist"):
        orch.node("kit.Thing", {"use_external_resource": True, "resource_id": "nope"}).call("create")
