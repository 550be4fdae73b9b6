"""The machinery under every check: deployments, fresh orchestrators, faults, listing.

One ``Session`` runs one check of one subject: it writes the blueprint, runs install
and uninstall through the real engine (a new ``Orchestrator`` each time, as a restarted
process builds it) with the fault injector armed for one operation, edits the state the
way a crash leaves it, and asks the subject's listers what exists.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import attrs
import yaml

from orchestrator.deployments import Orchestrator
from orchestrator.dsl.problems import BlueprintError
from orchestrator.engine.context import InstanceRecord
from orchestrator.engine.dispatch import Dispatcher
from orchestrator.engine.factory import ContextFactory
from orchestrator.engine.options import Options
from orchestrator.engine.results import ExecutionResult
from orchestrator.engine.steps import save_runtime
from orchestrator.errors import OperationRetry, OrchestratorError
from orchestrator.faults import CrashableStore, Faults
from orchestrator.hookspecs import RELATIONSHIP_OPERATIONS
from orchestrator.plan import relationship_keys
from orchestrator.plugins import PluginManager, get_plugin_manager
from orchestrator.sdk import Plugin
from orchestrator.secrets import Secrets

from .subject import Env, Fixtures, Listing, Subject, value_of

FAST = Options(concurrency=4, retries=10, retry_interval=0.01, max_backoff=0.05)
"""Workflow options of every run: quick retries, so a transient error costs milliseconds."""

OUT_OF_BAND_RETRIES = 30
MAX_SAVE_POINTS = 10  # crash points tried inside one operation (ctx.instance.update() calls)
INSTALL_OPS = ("create", "preconfigure", "configure", "postconfigure", "start", "establish")
UNINSTALL_OPS = ("stop", "unlink", "delete")


class Failed(Exception):
    """A check failed; the message says what happened (and what leaked)."""


class Skipped(Exception):
    """A check does not apply to the subject."""


@attrs.define(frozen=True)
class Operation:
    """One operation of the subject's instance: a node hook, or a hook of one of its relationships."""

    name: str  # the hook
    key: str  # the engine's step key: "start", "establish:site_0/hello.relationships.file_in_directory"
    target: str | None = None  # relationship hooks: the target template
    relationship: str | None = None  # relationship hooks: the relationship type

    @property
    def label(self) -> str:
        return f"{self.name}(->{self.target})" if self.target else self.name

    @property
    def install(self) -> bool:
        return self.name in INSTALL_OPS

    def faults(self) -> dict[str, Any]:
        return {"operation": self.name, "target": self.target, "relationship": self.relationship}


def phrase(ids: Sequence[str]) -> str:
    """``no resource`` / ``1 resource: a`` / ``2 resources: a, b``."""
    if not ids:
        return "no resource"
    return f"{len(ids)} resource{'s' if len(ids) > 1 else ''}: {', '.join(ids)}"


def count(ids: Sequence[str]) -> str:
    return phrase(ids).split(":")[0]


def summary(result: ExecutionResult) -> str:
    return "; ".join(str(f) for f in result.failures) or result.status


def ids(listed: Listing) -> list[str]:
    if isinstance(listed, Mapping):
        return sorted(f"{kind}:{rid}" for kind, found in listed.items() for rid in found)
    return sorted(str(rid) for rid in listed)


_MANAGERS: dict[tuple[Any, ...], tuple[PluginManager, Faults, list[object]]] = {}


def manager(plugins: Sequence[object], entry_points: bool) -> tuple[PluginManager, Faults]:
    """The plugins plus a fault injector, built once per plugin set (types load in ~0.1s)."""
    key = (tuple(id(p) for p in plugins), entry_points)
    hit = _MANAGERS.get(key)
    if hit is None:
        faults = Faults("orchestrator.conformance.faults")
        pm = get_plugin_manager([*plugins, faults], entry_points=entry_points, env={})
        errors = [e for e in pm.load_errors if e.fatal]
        if errors:
            raise Failed("set-up: plugins failed to load: " + "; ".join(map(str, errors)))
        hit = _MANAGERS[key] = (pm, faults, list(plugins))  # the list keeps the ids valid
    return hit[0], hit[1]


class Session:
    """One check of one subject: deployments, orchestrators, faults, listing and clean-up."""

    def __init__(self, check: str, short: str, subject: Subject, plugins: Sequence[object], entry_points: bool,
                 tmp_path: Path, fixtures: Fixtures, options: Options) -> None:
        self.check = check
        self.short = short
        self.subject = subject
        self.plugins = list(subject.plugins if subject.plugins is not None else plugins)
        self.tmp_path = tmp_path
        self.fixtures = fixtures
        self.options = subject.options or options
        self.token = uuid.uuid4().hex[:6]
        self._envs: list[Env] = []
        self._operations: list[Operation] | None = None
        self.pm, self.faults = manager(self.plugins, entry_points)
        self.faults.disarm()

    # -- deployments -----------------------------------------------------------------

    def env(self, suffix: str = "") -> Env:
        """A new deployment (set up by the subject's ``setup``)."""
        env = Env(self.check, f"cf-{self.short}{suffix}-{self.token}", self.tmp_path, self.subject.node,
                  self.fixtures)
        self._envs.append(env)
        if self.subject.setup is not None:
            self.subject.setup(env)
        return env

    def close(self) -> None:
        errors = []
        for env in self._envs:
            if self.subject.cleanup is not None and not env.clean:
                try:
                    self.subject.cleanup(env)
                except Exception as exc:
                    errors.append(f"cleanup of {env.deployment}: {type(exc).__name__}: {exc}")
        self.faults.disarm()
        if errors:
            raise Failed("; ".join(errors))

    # -- blueprint and orchestrators ---------------------------------------------------

    def blueprint(self, env: Env, properties: Mapping[str, Any]) -> Path:
        subject = self.subject
        extra = value_of(subject.blueprint, env)
        doc = dict(yaml.safe_load(extra) or {}) if isinstance(extra, str) else dict(extra or {})
        node: dict[str, Any] = {"type": subject.type, "properties": dict(properties)}
        relationships = value_of(subject.relationships, env)
        if relationships:
            node["relationships"] = [dict(r) for r in relationships]
        doc["node_templates"] = {subject.node: node, **dict(doc.get("node_templates") or {})}
        for name, text in dict(value_of(subject.files, env) or {}).items():
            path = self.tmp_path / name
            path.parent.mkdir(parents=True, exist_ok=True)
            if isinstance(text, bytes):
                path.write_bytes(text)
            else:
                path.write_text(text, encoding="utf-8")
        path = self.tmp_path / f"{env.deployment}.yaml"
        path.write_text(json.dumps(doc, indent=1, default=str), encoding="utf-8")  # JSON is YAML
        return path

    def orchestrator(self) -> Orchestrator:
        """A fresh orchestrator on the check's state file, as a restarted process builds it."""
        path = self.tmp_path / "state.db"
        return Orchestrator(pm=self.pm, state_path=path, store=CrashableStore(path, self.faults))

    @contextmanager
    def session(self) -> Iterator[Orchestrator]:
        orch = self.orchestrator()
        try:
            yield orch
        finally:
            orch.close()

    def operations(self) -> list[Operation]:
        """The subject instance's operations its plugins implement, in install order, then uninstall's."""
        if self._operations is None:
            env = Env(self.check, f"cf-{self.short}plan-{self.token}", self.tmp_path, self.subject.node,
                      self.fixtures)  # only planned: no setup, nothing to clean
            path = self.blueprint(env, value_of(self.subject.properties, env) or {})
            with self.session() as orch:
                plan = orch.plan(path)
            dispatcher = Dispatcher(self.pm)
            inst = plan.instances[env.instance]
            node = plan.nodes[inst.node]
            found = []
            for name in (*INSTALL_OPS, *UNINSTALL_OPS):
                if name in RELATIONSHIP_OPERATIONS:
                    for key, rel in zip(relationship_keys(inst), inst.relationships, strict=True):
                        if self._implements(dispatcher, rel.owner, rel.hierarchy, name):
                            found.append(Operation(name, f"{name}:{key}", rel.target_node, rel.type))
                elif self._implements(dispatcher, node.owner, node.hierarchy, name):
                    found.append(Operation(name, name))
            self._operations = found
        return self._operations

    def _implements(self, dispatcher: Dispatcher, owner: str | None, hierarchy: list[str], name: str) -> bool:
        """The owner implements the hook, and (for an SDK plugin) the type's class the method."""
        if dispatcher.caller(owner, name) is None:
            return False
        plugin = self.pm.get_plugin(owner) if owner is not None else None
        if isinstance(plugin, Plugin):
            cls = plugin.class_for(hierarchy)
            return cls is not None and callable(getattr(cls, name, None))
        return True

    def implements(self, name: str) -> bool:
        return any(op.name == name for op in self.operations())

    # -- workflows -----------------------------------------------------------------------

    def install(self, env: Env, properties: Mapping[str, Any] | None = None, **faults: Any) -> ExecutionResult:
        """Install with the fault injector armed with ``faults`` (watching only), then disarmed.

        ``self.faults`` tells afterwards what fired and how each watched attempt ended.
        """
        props = value_of(self.subject.properties, env) if properties is None else properties
        path = self.blueprint(env, props or {})
        self.faults.arm(env.node, **faults)
        try:
            with self.session() as orch:
                return orch.install(path, None, env.deployment, self.options)
        except (OrchestratorError, BlueprintError) as exc:
            raise Failed(f"install could not start: {exc}") from None
        finally:
            self.faults.node = None  # stop watching; keep what was seen

    def uninstall(self, env: Env, **faults: Any) -> ExecutionResult:
        if faults:
            self.faults.arm(env.node, **faults)
        try:
            with self.session() as orch:
                return orch.uninstall(env.deployment, self.options)
        finally:
            self.faults.node = None

    def installed(self, env: Env, what: str = "install", **kwargs: Any) -> ExecutionResult:
        """Install; the workflow must succeed."""
        result = self.install(env, **kwargs)
        if not result.ok:
            raise Failed(f"{what} failed: {summary(result)}")
        return result

    def uninstalled(self, env: Env, what: str = "uninstall") -> None:
        """Uninstall; it must succeed and leave nothing behind."""
        result = self.uninstall(env)
        if not result.ok:
            raise Failed(f"{what} failed: {summary(result)}")
        self.verify_clean(env, what)

    def verify_clean(self, env: Env, what: str, note: str = "") -> None:
        left = self.leftovers(env)
        if left:
            raise Failed(f"{what} left {phrase(left)}{note}")
        env.clean = True

    def row(self, env: Env) -> Any:
        with self.session() as orch:
            return orch.store.instances(env.deployment)[env.instance]

    def rerun(self, env: Env, op: Operation) -> None:
        """Make the engine forget that ``op`` finished: the next run runs it again (runtime kept)."""
        with self.session() as orch:
            row = orch.store.instances(env.deployment)[env.instance]
            orch.store.record(env.deployment, env.instance, row.state, json.dumps({**row.ops, op.key: "started"}),
                              None, [])

    # -- the target system -------------------------------------------------------------

    def resources(self, env: Env) -> list[str]:
        return ids(self.subject.list_resources(env))

    def running(self, env: Env) -> list[str] | None:
        """What the subject's probe says is running; None without a probe."""
        probe = self.subject.running
        return None if probe is None else ids(probe(env))

    def leftovers(self, env: Env) -> list[str]:
        lister = self.subject.list_leftovers or self.subject.list_resources
        return ids(lister(env))

    def exactly(self, env: Env, when: str) -> list[str]:
        """The subject's resources, which must number ``expected`` (and as many running, with a probe)."""
        found = self.resources(env)
        expected = self.subject.expected
        if len(found) != expected:
            if not found:
                raise Failed(f"{when}: list_resources shows no resource (expected {expected}; is the lister "
                             f"looking for '{env.deployment}'?)")
            raise Failed(f"{when} left {phrase(found)} (expected {expected})")
        self.check_running(env, when)
        return found

    def check_running(self, env: Env, when: str) -> None:
        """With a probe and a ``start``: exactly ``expected`` running."""
        running = self.running(env)
        if running is not None and self.implements("start") and len(running) != self.subject.expected:
            raise Failed(f"{when}: {phrase(running).replace('resource', 'running resource')} "
                         f"(expected {self.subject.expected})")

    def delete_out_of_band(self, env: Env, found: Sequence[str]) -> str:
        """Make the subject's resources vanish behind the engine's back; how it was done."""
        if self.subject.delete is not None:
            for rid in found:
                self.subject.delete(env, rid)
            return "deleted with the subject's deleter"
        with self.session() as orch:
            _, plan, rows = orch.status(env.deployment)
        records = {i: InstanceRecord(i, r.node, r.state, dict(r.ops), dict(r.runtime)) for i, r in rows.items()}
        contexts = ContextFactory(plan, records, Secrets(), env.deployment, lambda rec: None,
                                  max_retries=OUT_OF_BAND_RETRIES)
        inst = plan.instances[env.instance]
        node = plan.nodes[inst.node]
        caller = Dispatcher(self.pm).caller(node.owner, "delete")
        if caller is None:
            raise Skipped("the type has no delete hook and the subject no deleter")
        for attempt in range(OUT_OF_BAND_RETRIES + 1):  # the state file never hears of it
            ctx = contexts.operation(inst, "delete", attempt, None, node.owner)
            try:
                caller(ctx=ctx)
                break
            except OperationRetry as exc:  # a delete that waits (wait_until): poll again
                save_runtime(ctx)
                time.sleep(min(exc.retry_after or 0.0, 1.0))
        return "deleted by the plugin's delete hook, out of band"
