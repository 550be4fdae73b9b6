"""The pytest plugin for plugin authors (registered as a ``pytest11`` entry point).

Any test suite with ``orchestrator`` installed gets the ``orch`` fixture::

    def test_create(orch):
        orch.use(my_plugin)                          # a fresh manager with only this plugin
        node = orch.node("hello.File", properties={"path": str(tmp)})
        node.call("create")                          # the real dispatcher, one hook, no retries
        assert node.runtime_properties["path"] == str(tmp)
        assert "wrote" in node.logs[0]

    def test_blueprint(orch):
        orch.use(my_plugin)
        run = orch.install("blueprint.yaml", inputs={"name": "x"})
        assert run.ok and run.states == {"file_0": "started"}
        assert [c.hook for c in run.calls] == ["create", "start"]
        orch.uninstall()

    def test_resume_after_a_crash_in_start(orch):
        orch.use(my_plugin)
        run = orch.install("blueprint.yaml", crash=orch.crash("start", node="file", at_save=1))
        assert run.crashed == "save #1"                # the process "died" there
        assert orch.install("blueprint.yaml").ok       # a new process resumes

Everything runs in-process against a temporary state file; managers are closed and
plugins unregistered after each test, even when it fails.
"""

from __future__ import annotations

import copy
import json
import textwrap
import time
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

import attrs
import pytest

from orchestrator import RecoverableError, hookimpl
from orchestrator.conformance import Subject, conformance_tests, run_checks  # noqa: F401 (re-exported)
from orchestrator.deployments import Orchestrator
from orchestrator.dsl.model import MISSING
from orchestrator.engine.context import InstanceRecord, OperationContext
from orchestrator.engine.dispatch import Dispatcher
from orchestrator.engine.events import Event, EventSink
from orchestrator.engine.factory import ContextFactory
from orchestrator.engine.options import Options
from orchestrator.engine.results import ExecutionResult
from orchestrator.engine.steps import save_runtime
from orchestrator.faults import Crash, CrashableStore, Faults
from orchestrator.hookspecs import LIFECYCLE_HOOKS, RELATIONSHIP_OPERATIONS
from orchestrator.plan import Plan, PlannedInstance, PlannedRelationship, build_plan
from orchestrator.plugins import PluginManager, get_plugin_manager
from orchestrator.secrets import Secrets
from orchestrator.state import NullStore

FAST = Options(concurrency=10, retries=5, retry_interval=0.01, max_backoff=0.05)


@attrs.define(frozen=True)
class HookCall:
    """One lifecycle hook call as a wrapper saw it."""

    hook: str
    instance: str  # "a_0" or, for relationship hooks, "a_0->b_0"
    node_type: str
    outcome: str  # "ok" or the exception's class name


class CallRecorder:
    """A type-less plugin whose wrappers record every lifecycle call, in order."""

    __name__ = "orchestrator.testing.recorder"

    def __init__(self) -> None:
        self.calls: list[HookCall] = []
        for hook in LIFECYCLE_HOOKS:
            setattr(self, hook, self._wrapper(hook))

    def _wrapper(self, hook: str) -> Any:
        def record(ctx: OperationContext) -> Any:
            relationship = hook in RELATIONSHIP_OPERATIONS
            node = ctx.source.node if relationship else ctx.node
            outcome = "ok"
            try:
                return (yield)
            except BaseException as exc:
                outcome = type(exc).__name__
                raise
            finally:
                self.calls.append(HookCall(hook, ctx.describe(), node.type, outcome))

        record.__name__ = hook
        return hookimpl(wrapper=True, specname=hook)(record)


@attrs.define
class RunResult:
    """What one workflow did: the hook calls in order, events, final states and outputs."""

    result: ExecutionResult
    calls: list[HookCall]
    events: list[Event]
    states: dict[str, str]
    runtime_properties: dict[str, dict[str, Any]]
    outputs: dict[str, Any]
    crashed: str | None = None  # where a simulated crash fired: "before", "save #n", "after"

    @property
    def ok(self) -> bool:
        return self.result.ok

    @property
    def failures(self) -> list[Any]:
        return self.result.failures

    def calls_of(self, hook: str) -> list[str]:
        return [c.instance for c in self.calls if c.hook == hook]

    def logs(self, instance: str | None = None) -> list[str]:
        return [e.message for e in self.events if e.type == "log" and (instance is None or e.instance == instance)]


class NodeUnderTest:
    """One node instance of one type, for calling single hooks in isolation."""

    def __init__(self, harness: Harness, plan: Plan, instance: str, deployment: str = "test") -> None:
        self._harness = harness
        self.deployment = deployment
        self.plan = plan
        self.instance = plan.instances[instance]
        self.node = plan.nodes[self.instance.node]
        self.events: list[Event] = []
        self.links: list[tuple[PlannedRelationship, NodeUnderTest]] = []
        self.record = InstanceRecord(instance, self.node.name, "uninitialized", {}, {})

    @property
    def id(self) -> str:
        return self.instance.id

    @property
    def properties(self) -> dict[str, Any]:
        return self.node.properties

    @property
    def runtime_properties(self) -> dict[str, Any]:
        """The instance's runtime properties: the same dict across calls; change it in place or
        assign a new one, the next ``call()`` sees it."""
        return self.record.runtime

    @runtime_properties.setter
    def runtime_properties(self, value: Mapping[str, Any]) -> None:
        self.record.runtime = dict(value)
        _sync(self.record)

    @property
    def logs(self) -> list[str]:
        return [e.message for e in self.events if e.type == "log"]

    def call(self, hook: str, *, retry_number: int = 0, max_retries: int = 5) -> None:
        """Run one lifecycle hook of this node's owning plugin once; exceptions propagate."""
        self._harness.call_hook(self, hook, None, retry_number=retry_number, max_retries=max_retries)

    def run(self, hook: str, *, max_retries: int = 20) -> int:
        """Run a hook as the engine does: again after ``retry_after`` while it asks to be retried
        (a ``wait_until``, a ``RecoverableError``); other errors propagate. The retries it took."""
        return _retrying(lambda n: self.call(hook, retry_number=n, max_retries=max_retries), max_retries)

    def operation(self, name: str, /, **inputs: Any) -> Any:
        """Run custom operation ``name`` (``run_operation``) once and return its result, the
        inputs checked against the type's declaration first (defaults filled in), as
        ``orchestrator execute`` does; a bad input raises ``BlueprintError``."""
        from orchestrator.dsl.inputs import given_from_mapping
        from orchestrator.dsl.problems import Problems
        from orchestrator.operations import Catalogue

        catalogue = Catalogue(self._harness.pm)
        declared = catalogue.of(self.node)
        if name not in declared:
            raise AssertionError(f"{self.node.type} declares no operation '{name}' "
                                 f"(it declares: {', '.join(declared) or 'none'})")
        problems = Problems()
        values = catalogue.check_inputs(declared[name], given_from_mapping(inputs), problems, label="<inputs>")
        problems.raise_if_any()
        return self._harness.call_hook(self, "run_operation", None, retry_number=0, max_retries=5,
                                       custom=(name, values))


class RelationshipUnderTest:
    """A relationship instance between two ``NodeUnderTest``, for relationship hooks."""

    def __init__(self, harness: Harness, rel_type: str, source: NodeUnderTest, target: NodeUnderTest,
                 properties: Mapping[str, Any] | None) -> None:
        self._harness = harness
        self.source = source
        self.target = target
        rtype = harness.relationship_type(rel_type)
        values = dict(properties or {})
        for name, prop in rtype.properties.items():
            if name not in values and prop.default is not MISSING:
                values[name] = copy.deepcopy(prop.default)
        self.relationship = PlannedRelationship(rel_type, rtype.hierarchy, rtype.owner, target.node.name,
                                                target.id, values)

    @property
    def events(self) -> list[Event]:
        return self.source.events

    def call(self, hook: str, *, retry_number: int = 0, max_retries: int = 5) -> None:
        self._harness.call_hook(self.source, hook, self, retry_number=retry_number, max_retries=max_retries)

    def run(self, hook: str, *, max_retries: int = 20) -> int:
        """As ``NodeUnderTest.run``: retried while it asks to be."""
        return _retrying(lambda n: self.call(hook, retry_number=n, max_retries=max_retries), max_retries)


class Harness:
    """The ``orch`` fixture: plugin managers, single hooks and whole blueprints, in-process."""

    def __init__(self, tmp_path: Path) -> None:
        self.tmp_path = tmp_path
        self.state_path = tmp_path / "state.db"
        self._plugins: list[object] = []
        self._entry_points = False
        self._pm: PluginManager | None = None
        self._managers: list[PluginManager] = []
        self._orchestrators: list[Orchestrator] = []
        self.recorder = CallRecorder()
        self.faults = Faults("orchestrator.testing.faults")
        self._counter = 0

    # -- plugin managers ------------------------------------------------------------

    def use(self, *plugins: object, entry_points: bool = False) -> PluginManager:
        """Use exactly these plugins (plus the core's built-ins) from now on."""
        self._plugins, self._entry_points = list(plugins), entry_points
        self._pm = None
        return self.pm

    def plugin_manager(self, *plugins: object, entry_points: bool = False) -> PluginManager:
        """A fresh manager holding only the named plugins; unregistered after the test."""
        pm = get_plugin_manager(plugins, entry_points=entry_points, env={})
        self._managers.append(pm)
        return pm

    @property
    def pm(self) -> PluginManager:
        if self._pm is None:
            self._pm = self.plugin_manager(*self._plugins, self.recorder, self.faults,
                                           entry_points=self._entry_points)
            errors = [e for e in self._pm.load_errors if e.fatal]
            if errors:
                raise AssertionError("plugins failed to load: " + "; ".join(map(str, errors)))
        return self._pm

    def relationship_type(self, name: str) -> Any:
        bp = self._load_text("node_templates: {}\n")
        if name not in bp.relationship_types:
            raise KeyError(f"unknown relationship type '{name}'")
        return bp.relationship_types[name]

    # -- single hooks --------------------------------------------------------------

    def node(self, node_type: str, properties: Mapping[str, Any] | None = None,
             runtime_properties: Mapping[str, Any] | None = None, *, id: str | None = None,
             relationships: Iterable[tuple[str, NodeUnderTest]] = (), deployment: str = "test") -> NodeUnderTest:
        """A node instance of ``node_type`` with validated properties (defaults filled in).

        ``relationships`` are ``(relationship type, target node)`` pairs, seen by hooks as
        ``ctx.instance.relationships``; a ``contained_in`` target becomes the host.
        """
        self._counter += 1
        name = id or f"node{self._counter}"
        relationships = list(relationships)
        # the targets as templates too, so validate_node sees the relationships as in a blueprint
        bp = self._load_text(_one_node_blueprint(name, node_type, properties or {}, relationships))
        plan = build_plan(bp)
        node = NodeUnderTest(self, plan, f"{name}_0", deployment)
        node.instance.relationships.clear()  # ... but hooks see the real targets, linked here
        node.instance.host_id = None
        for rel_type, target in relationships:
            link = RelationshipUnderTest(self, rel_type, node, target, None)
            node.links.append((link.relationship, target))
            node.instance.relationships.append(link.relationship)
            if "orchestrator.relationships.contained_in" in link.relationship.hierarchy:
                node.instance.host_id = target.id
        if runtime_properties:
            node.runtime_properties = runtime_properties
        return node

    def relationship(self, rel_type: str, source: NodeUnderTest, target: NodeUnderTest,
                     properties: Mapping[str, Any] | None = None) -> RelationshipUnderTest:
        return RelationshipUnderTest(self, rel_type, source, target, properties)

    def call_hook(self, node: NodeUnderTest, hook: str, rel: RelationshipUnderTest | None, *,
                  retry_number: int, max_retries: int, custom: tuple[str, Mapping[str, Any]] | None = None) -> Any:
        instances: dict[str, PlannedInstance] = {}
        records: dict[str, InstanceRecord] = {}
        nodes: dict[str, Any] = {}
        todo = [node] + ([rel.target] if rel is not None else [])
        while todo:  # the node, the relationship's target, and everything they link to
            item = todo.pop()
            if item.id in instances:
                continue
            instances[item.id], records[item.id] = item.instance, item.record
            nodes.update(item.plan.nodes)
            todo.extend(target for _, target in item.links)
        kept = {iid: rec.runtime for iid, rec in records.items()}
        for rec in records.values():  # a test may have changed runtime_properties in place
            _sync(rec)
        inst = node.instance
        if rel is not None:
            inst = PlannedInstance(node.id, node.node.name, node.instance.host_id, [rel.relationship])
            instances[node.id] = inst
        plan = Plan(nodes, instances, {}, str(self.tmp_path / "blueprint.yaml"))
        sink = EventSink(NullStore(), node.deployment, None)
        sink.listeners.append(node.events.append)

        def emit(level: str, text: str, instance: str, op: str, owner: str | None) -> None:
            sink.emit(sink.make("log", text, instance, op, owner, level))

        contexts = ContextFactory(plan, records, Secrets(), node.deployment, lambda rec: None, emit, max_retries)
        owner = rel.relationship.owner if rel is not None else node.node.owner
        caller = Dispatcher(self.pm).caller(owner, hook)
        if caller is None:
            if custom is not None:
                raise AssertionError(f"plugin '{owner}' declares operation '{custom[0]}' but implements no "
                                     "run_operation hook")
            return None
        ctx = contexts.operation(inst, hook, retry_number, 0 if rel is not None else None, owner, custom=custom)
        try:
            return caller(ctx=ctx)
        finally:
            save_runtime(ctx)
            for iid, rec in records.items():  # keep the dict a test holds up to date
                same = kept[iid]
                if rec.runtime is not same:
                    same.clear()
                    same.update(rec.runtime)
                    rec.runtime = same

    # -- whole blueprints ------------------------------------------------------------

    def blueprint(self, text_or_path: str | Path, name: str = "blueprint.yaml") -> Path:
        """A path for a blueprint given as text (written under tmp_path) or as a path."""
        if isinstance(text_or_path, Path) or ("\n" not in str(text_or_path) and Path(text_or_path).is_file()):
            return Path(text_or_path)
        path = self.tmp_path / name
        path.write_text(textwrap.dedent(str(text_or_path)), encoding="utf-8")
        return path

    def orchestrator(self) -> Orchestrator:
        """An orchestrator on the test's state file (a new one per workflow, like a new process)."""
        orch = Orchestrator(pm=self.pm, state_path=self.state_path,
                            store=CrashableStore(self.state_path, self.faults))
        self._orchestrators.append(orch)
        return orch

    def crash(self, operation: str, node: str, *, at_save: int | None = None, before: bool = False,
              target: str | None = None) -> Crash:
        """A simulated crash for ``install(..., crash=...)`` / ``uninstall(crash=...)``: in
        ``operation`` of template ``node``, before its ``at_save``-th ``ctx.instance.update()``
        is written, or ``before`` the hook runs, or else right after it returned. The
        state keeps exactly what a killed process leaves; the next workflow resumes."""
        return Crash(operation, node, at_save, before, target)

    def install(self, blueprint: str | Path, inputs: Mapping[str, Any] | Iterable[str] | None = None, *,
                deployment: str = "test", options: Options | None = None,
                secrets: Mapping[str, Any] | None = None, crash: Crash | None = None) -> RunResult:
        """Run install in-process; returns calls, events, states and outputs."""
        path = self.blueprint(blueprint)
        orch = self.orchestrator()
        return self._run(orch, deployment, crash, lambda listeners: orch.install(
            path, inputs if isinstance(inputs, Mapping) or inputs is None else list(inputs), deployment,
            options or FAST, listeners, Secrets(secrets or {}, env={}) if secrets is not None else None))

    def update(self, blueprint: str | Path, inputs: Mapping[str, Any] | Iterable[str] | None = None, *,
               deployment: str = "test", options: Options | None = None,
               secrets: Mapping[str, Any] | None = None, crash: Crash | None = None) -> RunResult:
        """Run update in-process (the diff of the blueprint against the deployment, applied)."""
        path = self.blueprint(blueprint)
        orch = self.orchestrator()
        return self._run(orch, deployment, crash, lambda listeners: orch.update(
            path, inputs if isinstance(inputs, Mapping) or inputs is None else list(inputs), deployment,
            options or FAST, listeners, Secrets(secrets or {}, env={}) if secrets is not None else None))

    def diff(self, blueprint: str | Path, inputs: Mapping[str, Any] | Iterable[str] | None = None, *,
             deployment: str = "test") -> Any:
        """What update would do (``orchestrator.diff.Diff``): ``.by_action("replace")``, ``.changes``."""
        inputs = inputs if isinstance(inputs, Mapping) or inputs is None else list(inputs)
        return self.orchestrator().propose(self.blueprint(blueprint), inputs, deployment).diff

    def drift(self, *, deployment: str = "test") -> dict[str, Any]:
        """``check_drift`` of every started instance: instance id -> what it returned (None: in sync)."""
        orch = self.orchestrator()
        result = orch.prepare_drift(deployment).run(FAST)
        if not result.ok:
            raise AssertionError(f"drift failed: {'; '.join(map(str, result.failures))}")
        return dict(result.results)

    def execute(self, operation: str, params: Mapping[str, Any] | None = None, *, nodes: Iterable[str] = (),
                instances: Iterable[str] = (), deployment: str = "test") -> dict[str, Any]:
        """A custom operation on a deployment's started instances, as ``orchestrator execute``:
        instance id -> what it returned. A failure raises ``AssertionError`` naming it."""
        result = self.orchestrator().execute(deployment, operation, dict(params or {}), list(nodes),
                                             list(instances), FAST)
        if not result.ok:
            raise AssertionError(f"execute {operation} failed: {'; '.join(map(str, result.failures))}")
        return dict(result.results)

    def uninstall(self, *, deployment: str = "test", options: Options | None = None,
                  secrets: Mapping[str, Any] | None = None, crash: Crash | None = None) -> RunResult:
        orch = self.orchestrator()
        return self._run(orch, deployment, crash, lambda listeners: orch.uninstall(
            deployment, options or FAST, listeners, Secrets(secrets or {}, env={}) if secrets is not None else None))

    def _run(self, orch: Orchestrator, deployment: str, crash: Crash | None, run: Any) -> RunResult:
        events: list[Event] = []
        start = len(self.recorder.calls)
        self.pm  # noqa: B018 - built (and the fault injector registered) before arming it
        if crash is not None:
            crash.arm(self.faults)
        try:
            result = run([events.append])
        finally:
            crashed = self.faults.fired if crash is not None else None
            self.faults.arm(None)
        _, _, rows = orch.status(deployment)
        outputs = orch.outputs(deployment)
        return RunResult(result, self.recorder.calls[start:], events, {i: r.state for i, r in rows.items()},
                         {i: r.runtime for i, r in rows.items()}, outputs, crashed)

    def _load_text(self, text: str) -> Any:
        path = self.tmp_path / f"_harness_{self._counter}.yaml"
        path.write_text(text, encoding="utf-8")
        return Orchestrator(pm=self.pm, state_path=self.state_path).load(path)

    def close(self) -> None:
        for orch in self._orchestrators:
            orch.close()
        for pm in self._managers:
            for name, plugin in list(pm.list_name_plugin()):
                pm.unregister(plugin, name=name)
        self._managers.clear()


def _retrying(call: Any, max_retries: int) -> int:
    for attempt in range(max_retries + 1):
        try:
            call(attempt)
            return attempt
        except RecoverableError as exc:
            if attempt == max_retries:
                raise
            time.sleep(min(exc.retry_after if exc.retry_after is not None else 0.01, 5.0))
    raise AssertionError("unreachable")


def _sync(record: InstanceRecord) -> None:
    """Make the record's stored form follow its dict (what a hook's ctx is built from)."""
    try:
        record.runtime_json = json.dumps(record.runtime, sort_keys=True, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise TypeError(f"runtime_properties of {record.id} must hold JSON values only: {exc}") from None


def _one_node_blueprint(name: str, node_type: str, properties: Mapping[str, Any],
                        relationships: Iterable[tuple[str, NodeUnderTest]] = ()) -> str:
    templates: dict[str, Any] = {name: {"type": node_type, "properties": dict(properties)}}
    links = []
    for rel_type, target in relationships:
        templates.setdefault(target.node.name, {"type": target.node.type, "properties": dict(target.properties)})
        links.append({"type": rel_type, "target": target.node.name})
    if links:
        templates[name]["relationships"] = links
    return json.dumps({"node_templates": templates}, default=str)


@pytest.fixture
def orch(tmp_path: Path) -> Iterator[Harness]:
    """Plugin managers, single hooks and whole blueprints, with a temporary state file."""
    harness = Harness(tmp_path)
    try:
        yield harness
    finally:
        harness.close()


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "integration: slow tests that start external engines")
    from orchestrator.conformance.report import reporter

    reporter(config)
