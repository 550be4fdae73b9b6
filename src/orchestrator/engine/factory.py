"""Building the ``ctx`` of one operation: the context factory.

Everything an operation's context holds comes from three things: the plan (what the
instance is), the instance records (runtime properties, live), and the secrets. The
factory keeps no other state, so the same request can be turned into a ``ctx`` by the
runner, by the plugin-testing harness, or by a worker elsewhere. ``get_attribute`` and
``get_secret`` are resolved here, each time a context is built.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from orchestrator.dsl.functions import SELF, SOURCE, TARGET, resolve_runtime, walk_path
from orchestrator.dsl.model import MISSING
from orchestrator.engine.context import (
    BlueprintContext,
    DeploymentContext,
    EntityContext,
    ImmutableProperties,
    InstanceContext,
    InstanceRecord,
    NodeContext,
    OperationContext,
    OperationInfo,
    OperationLogger,
    RelationshipContext,
    Unresolved,
)
from orchestrator.errors import NonRecoverableError
from orchestrator.plan import Plan, PlannedInstance, PlannedNode
from orchestrator.secrets import missing_secret_message

Emit = Callable[[str, str, str, str, "str | None"], None]  # (level, text, instance, operation, plugin)


class ContextFactory:
    def __init__(self, plan: Plan, records: Mapping[str, InstanceRecord], secrets: Mapping[str, Any],
                 deployment: str, persist: Callable[[InstanceRecord], None], emit: Emit | None = None,
                 max_retries: int = 0) -> None:
        self.plan = plan
        self.records = records
        self.secrets = secrets
        self.persist = persist  # writes an instance's runtime properties (ctx.instance.update())
        self.emit = emit  # a plugin's log record becomes an event
        self.max_retries = max_retries
        self.deployment = DeploymentContext(deployment)
        self.blueprint = BlueprintContext(plan.blueprint_path)
        self._nodes: dict[str, NodeContext] = {}  # contexts of nodes without run-time properties

    def operation(self, inst: PlannedInstance, op: str, attempt: int, relationship: int | None,
                  owner: str | None, live: Callable[[], bool] | None = None,
                  changes: Mapping[str, tuple[Any, Any]] | None = None,
                  custom: tuple[str, Mapping[str, Any]] | None = None) -> OperationContext:
        """The ``ctx`` of operation ``op`` of ``inst`` (of its ``relationship``-th relationship);
        ``live()`` turns False once the operation timed out or was abandoned: from then on what
        its hook does is discarded."""
        plan = self.plan
        node = plan.nodes[inst.node]
        if custom is not None:  # run_operation: the operation is the one declared
            op = custom[0]
        inputs = custom[1] if custom is not None else (node.operation_inputs.get(op) if relationship is None else None)
        operation = OperationInfo(op, attempt, self.max_retries, inputs)
        logger = OperationLogger(f"{inst.id}.{op}", self._log(inst.id, op, owner, live))
        persist, records = self.persist, self.records
        if relationship is None:
            return OperationContext(
                type="node-instance", deployment=self.deployment, blueprint=self.blueprint,
                operation=operation, logger=logger, plugin=owner, node=self.node(node, inst, None),
                instance=InstanceContext(records[inst.id], inst.host_id, persist,
                                         lambda: self.relationships(inst), live), changes=changes)
        rel = inst.relationships[relationship]
        target_inst = plan.instances[rel.target_id]
        pair = (inst, target_inst)
        source = EntityContext(self.node(node, inst, pair),
                               InstanceContext(records[inst.id], inst.host_id, persist, None, live))
        target = EntityContext(self.node(plan.nodes[target_inst.node], target_inst, pair),
                               InstanceContext(records[target_inst.id], target_inst.host_id, persist, None, live))
        return OperationContext(
            type="relationship-instance", deployment=self.deployment, blueprint=self.blueprint,
            operation=operation, logger=logger, plugin=owner, source=source, target=target,
            relationship=RelationshipContext(rel.type, rel.hierarchy, ImmutableProperties.of(rel.properties), target))

    def _log(self, instance: str, op: str, owner: str | None,
             live: Callable[[], bool] | None) -> Callable[[str, str], None]:
        emit = self.emit

        def log(level: str, text: str) -> None:
            if emit is not None and (live is None or live()):  # a hung hook's late logs are dropped
                emit(level, text, instance, op, owner)

        return log

    def relationships(self, inst: PlannedInstance) -> list[RelationshipContext]:
        """``ctx.instance.relationships``: each outgoing relationship with its live target."""
        result = []
        for rel in inst.relationships:
            target_inst = self.plan.instances[rel.target_id]
            target = EntityContext(
                self.node(self.plan.nodes[target_inst.node], target_inst, None),
                InstanceContext(self.records[target_inst.id], target_inst.host_id, self.persist,
                                lambda t=target_inst: self.relationships(t)))
            result.append(RelationshipContext(rel.type, rel.hierarchy, ImmutableProperties.of(rel.properties), target))
        return result

    def node(self, node: PlannedNode, inst: PlannedInstance,
             pair: tuple[PlannedInstance, PlannedInstance] | None) -> NodeContext:
        if not node.runtime_paths:  # the same for every instance: built once
            cached = self._nodes.get(node.name)
            if cached is None:
                cached = self._nodes[node.name] = NodeContext(node.name, node.type, node.hierarchy,
                                                              ImmutableProperties.of(node.properties))
            return cached
        lookup = RuntimeLookup(self, inst, pair)
        values = dict(node.properties)
        for name in node.runtime_paths:
            try:
                values[name] = resolve_runtime(values[name], lookup)
            except MissingSecret as exc:  # only a hook that reads this property fails
                values[name] = Unresolved(str(exc))
        return NodeContext(node.name, node.type, node.hierarchy, ImmutableProperties.of(values))


class RuntimeLookup:
    """Resolves ``get_attribute`` and ``get_secret`` against live instances and secrets."""

    def __init__(self, factory: ContextFactory, current: PlannedInstance | None,
                 pair: tuple[PlannedInstance, PlannedInstance] | None = None) -> None:
        self.factory = factory
        self.current = current
        self.pair = pair

    def get_attribute(self, args: list[Any]) -> Any:
        entity, attr, rest = args[0], args[1], list(args[2:])
        if entity == SELF:
            inst = self.current
        elif entity == SOURCE and self.pair:
            inst = self.pair[0]
        elif entity == TARGET and self.pair:
            inst = self.pair[1]
        else:
            inst = self._related(entity)
            if isinstance(inst, list):
                return [self._value(i, attr, rest) for i in inst]
        if inst is None:
            return None
        return self._value(inst, attr, rest)

    def _related(self, node_name: str) -> PlannedInstance | list[PlannedInstance] | None:
        plan = self.factory.plan
        ids = plan.nodes[node_name].instances if node_name in plan.nodes else []
        if len(ids) == 1:
            return plan.instances[ids[0]]
        if not ids:
            return None
        cur = self.current
        if cur is not None:
            related = [t for t in cur.targets if t in ids]
            if len(related) == 1:
                return plan.instances[related[0]]
            chain = set(_host_chain(plan, cur))
            same_host = [i for i in ids if chain & set(_host_chain(plan, plan.instances[i]))]
            if len(same_host) == 1:
                return plan.instances[same_host[0]]
            if cur.id in ids:
                return cur
        return [plan.instances[i] for i in ids]

    def _value(self, inst: PlannedInstance, attr: str, rest: list[Any]) -> Any:
        rec = self.factory.records.get(inst.id)
        runtime = {}
        if rec is not None:
            with rec.lock:
                runtime = rec.runtime
        value = runtime.get(attr, MISSING)
        if value is MISSING:
            node = self.factory.plan.nodes[inst.node]
            value = node.properties.get(attr)
            if attr in node.runtime_paths:
                value = resolve_runtime(value, RuntimeLookup(self.factory, inst))
        value = walk_path(value, rest) if rest else value
        return None if value is MISSING else value

    def get_sys(self, args: Any) -> Any:
        """Cloudify's ``get_sys``: what a deployment knows about itself (no tenants here)."""
        factory = self.factory
        if args == ["tenant", "name"]:
            return "default_tenant"
        if args[1] == "blueprint":
            return factory.plan.blueprint_path
        if args[1] == "owner":
            return None
        return factory.deployment.id if hasattr(factory.deployment, "id") else str(factory.deployment)

    def get_secret(self, args: Any) -> Any:
        path = [args] if isinstance(args, str) else list(args)
        name = path[0]
        secrets = self.factory.secrets
        if name not in secrets:
            raise MissingSecret(missing_secret_message(name))
        value = walk_path(secrets[name], path[1:])
        return None if value is MISSING else value


class MissingSecret(NonRecoverableError):
    """A ``get_secret`` whose value is not available to this execution."""


def _host_chain(plan: Plan, inst: PlannedInstance) -> list[str]:
    chain = []
    while inst.host_id is not None:
        chain.append(inst.host_id)
        inst = plan.instances[inst.host_id]
    return chain
