"""Workflows as data: which instances, in which order, run which steps.

A workflow is a list of phases. A phase walks a graph of instances (targets first, or
dependents first) and runs, for each instance, the steps its step function lists;
steps already recorded as done are skipped, which is what makes every workflow
resumable. A new workflow is a new entry here plus its command; the runner does not
change. Modelled on Cloudify's ``lifecycle.py`` (per-instance step sequences) and
Terraform's graph walk.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, Literal, NamedTuple

from orchestrator.plan import relationship_keys

if TYPE_CHECKING:
    from orchestrator.diff import Diff
    from orchestrator.engine.context import InstanceRecord
    from orchestrator.plan import Plan, PlannedInstance

Order = Literal["targets_first", "dependents_first", "any"]


class Step(NamedTuple):
    op: str  # the hook
    key: str  # how the instance's record names it ("create", "establish:vm_0/connected_to", ...)
    relationship: int | None  # index into the instance's relationships
    before: str | None  # instance state while the hook runs
    after: str | None  # instance state once it succeeded
    clears: tuple[str, ...] = ()  # once it succeeded, these records go (an unlink undoes an establish)
    transient: bool = False  # a check (drift): nothing recorded on the instance, only events


StepsOf = Callable[["PlannedInstance", "InstanceRecord"], list[Step]]


class Phase(NamedTuple):
    """One walk over instances of ``plan`` (all of them, or ``only``); ``_replace`` makes a variant."""

    name: str
    plan: Plan
    order: Order
    steps: StepsOf
    done_state: str | None = None  # the state an instance is left in once its steps are done
    removes: bool | frozenset[str] = False  # (these) instances are gone once done: records cleared
    only: frozenset[str] | None = None
    version: int | None = None  # once done, the instance is of this plan version
    custom: tuple[str, Mapping[str, Mapping[str, Any]]] | None = None  # run_operation: (operation, inputs per node)
    changes: Mapping[str, Mapping[str, tuple[Any, Any]]] = MappingProxyType({})  # ctx.changes of updates

    def removing(self, iid: str) -> bool:
        return self.removes if isinstance(self.removes, bool) else iid in self.removes

    def instances(self) -> list[str]:
        return [i for i in self.plan.instances if self.only is None or i in self.only]

    def waves(self) -> list[list[str]]:
        """Generations of this phase's walk: every instance comes after all it waits for."""
        import graphlib

        sorter: graphlib.TopologicalSorter[str] = graphlib.TopologicalSorter(self.graph())
        sorter.prepare()
        waves = []
        while sorter.is_active():
            ready = list(sorter.get_ready())
            waves.append(ready)
            sorter.done(*ready)
        order = {iid: n for n, iid in enumerate(self.plan.instances)}
        return [sorted(wave, key=order.__getitem__) for wave in waves]

    def graph(self) -> dict[str, set[str]]:
        """Each instance -> the instances it waits for, within this phase."""
        order = self.instances()  # plan order: the first ready instances start in it
        if self.order == "any":
            return {i: set() for i in order}
        if self.order == "targets_first":
            edges = {i: inst.targets for i, inst in self.plan.instances.items()}
        else:
            edges = self.plan.dependents()
        if self.only is None:
            return {i: set(edges[i]) for i in order}
        return {i: {t for t in edges[i] if t in self.only} for i in order}


class Workflow(NamedTuple):
    name: str
    phases: list[Phase]
    prepare: Callable[[Mapping[str, InstanceRecord]], None] | None = None  # before anything runs


# -- the lifecycle steps ----------------------------------------------------------------


CREATE = Step("create", "create", None, "creating", "created")
CONFIGURE = Step("configure", "configure", None, "configuring", "configured")
START = Step("start", "start", None, "starting", "started")
STOP = Step("stop", "stop", None, "stopping", "stopped")
DELETE = Step("delete", "delete", None, "deleting", "deleted")


def relationship_step(op: str, index: int, key: str) -> Step:
    return Step(op, f"{op}:{key}", index, None, None)


def install_steps(inst: PlannedInstance, _record: InstanceRecord | None = None) -> list[Step]:
    if not inst.relationships:
        return [CREATE, CONFIGURE, START]
    rels = list(enumerate(relationship_keys(inst)))
    return [
        CREATE,
        *(relationship_step("preconfigure", i, k) for i, k in rels),
        CONFIGURE,
        *(relationship_step("postconfigure", i, k) for i, k in rels),
        START,
        *(relationship_step("establish", i, k) for i, k in rels),
    ]


def uninstall_steps(inst: PlannedInstance, record: InstanceRecord) -> list[Step]:
    """Only what install attempted: stop if start ran, unlink if establish ran, delete if create ran."""
    return list(_uninstall_steps(inst, record.ops))


def _uninstall_steps(inst: PlannedInstance, ops: Mapping[str, str]) -> Iterator[Step]:
    if "start" in ops:
        yield STOP
    for i, key in reversed(list(enumerate(relationship_keys(inst)))):
        if f"establish:{key}" in ops:
            yield relationship_step("unlink", i, key)
    if "create" in ops:
        yield DELETE


def prepare_for_install(records: Mapping[str, InstanceRecord]) -> None:
    """Instances left half-uninstalled are brought back: what uninstall undid runs again."""
    for rec in records.values():
        if "delete" in rec.ops or rec.state == "deleted":
            rec.ops.clear()
            rec.state = "uninitialized"
        elif "stop" in rec.ops or any(k.startswith("unlink:") for k in rec.ops):
            for key in [k for k in rec.ops if k in ("start", "stop") or k.startswith(("establish:", "unlink:"))]:
                del rec.ops[key]


def _forget(keys: list[str]) -> Callable[[PlannedInstance, InstanceRecord], None]:
    """Drop the records of relationships an instance no longer has (or re-makes)."""
    ops = ("preconfigure", "postconfigure", "establish", "unlink")

    def forget(_inst: PlannedInstance, rec: InstanceRecord) -> None:
        for key in keys:
            for op in ops:
                rec.ops.pop(f"{op}:{key}", None)

    return forget


def unlink_steps(inst: PlannedInstance, keys: list[str], record: InstanceRecord) -> list[Step]:
    """Undo the establish of some relationships (removed, or toward a replaced target)."""
    index = {k: i for i, k in enumerate(relationship_keys(inst))}
    clears = ("preconfigure", "postconfigure", "establish", "unlink")
    return [Step("unlink", f"unlink:{k}", index[k], None, None, tuple(f"{op}:{k}" for op in clears))
            for k in reversed(keys) if k in index and f"establish:{k}" in record.ops]


# -- the table --------------------------------------------------------------------------


def install(plan: Plan, version: int | None = None) -> Workflow:
    return Workflow("install", [Phase("install", plan, "targets_first", install_steps, done_state="started",
                                      version=version)], prepare=prepare_for_install)


def uninstall(plan: Plan) -> Workflow:
    return Workflow("uninstall", [Phase("uninstall", plan, "dependents_first", uninstall_steps, removes=True)])


def update(diff: Diff, desired: Plan, version: int, old_plans: Mapping[str, Plan], name: str = "update") -> Workflow:
    """Removals dependents first (with each instance's old definition), then additions, updates
    and re-made relationships targets first (with the new ones). An instance that install left
    unfinished is finished too. Against a deployment that does not exist yet, this is install.

    ``old_plans`` gives, for each changed instance, the plan it was installed with.
    """
    removals: dict[int, dict[str, Callable[[PlannedInstance, InstanceRecord], list[Step]]]] = {}
    additions: dict[str, Callable[[PlannedInstance, InstanceRecord], list[Step]]] = {}
    changes: dict[str, dict[str, tuple[Any, Any]]] = {}
    plans_by_id: dict[int, Plan] = {}
    for change in diff.changes:
        iid, old = change.instance, old_plans.get(change.instance)
        if old is not None and (change.action in ("delete", "replace") or change.removed or change.relink):
            plans_by_id[id(old)] = old
            if change.action in ("delete", "replace"):
                removals.setdefault(id(old), {})[iid] = uninstall_steps
            else:
                keys = [*change.removed, *change.relink]
                removals.setdefault(id(old), {})[iid] = lambda inst, rec, keys=keys: unlink_steps(inst, keys, rec)
        if change.action == "delete":
            continue
        if change.action in ("create", "replace"):
            additions[iid] = install_steps
            continue
        props = {p.path: (p.old, p.new) for p in change.properties}
        changes[iid] = props
        additions[iid] = _update_steps(version, bool(props), [*change.added, *change.relink],
                                       _forget([*change.removed, *change.relink]), finish=name != "heal")
    gone = frozenset(c.instance for c in diff.changes if c.action in ("delete", "replace"))
    phases = [Phase("remove", plans_by_id[key], "dependents_first", _dispatch(steps), removes=gone,
                    only=frozenset(steps)) for key, steps in removals.items()]
    phases.append(Phase(name if name == "install" else "apply", desired, "targets_first", _dispatch(additions),
                        done_state="started", only=frozenset(additions), version=version, changes=changes))
    # Only what is installed again in place is brought back from a half-done uninstall; what
    # is deleted (or replaced) keeps its records, so its removal knows what to undo.
    kept = frozenset(c.instance for c in diff.changes if c.action in ("create", "update"))
    return Workflow(name, phases, prepare=lambda records: prepare_for_install(
        {i: r for i, r in records.items() if i in kept}))


def _dispatch(by_instance: Mapping[str, StepsOf]) -> StepsOf:
    return lambda inst, rec: by_instance[inst.id](inst, rec)


def _update_steps(version: int, properties: bool, relationships: list[str],
                  forget: Callable[[PlannedInstance, InstanceRecord], None], finish: bool = True) -> StepsOf:
    """The update hook if properties changed, then the establish of new (or re-made) relationships;
    with ``finish``, what install left unfinished too (heal leaves that to install)."""
    def steps(inst: PlannedInstance, rec: InstanceRecord) -> list[Step]:
        forget(inst, rec)  # relationships it lost, or re-makes, have no records any more
        result = [Step("update", f"update@{version}", None, "updating", None)] if properties else []
        unfinished = rec.state != "started" or any(
            v != "succeeded" for k, v in rec.ops.items() if not k.startswith("update@"))
        if unfinished and finish:
            return result + install_steps(inst)  # what install (or an update) left unfinished; done ones skip
        if unfinished:
            return result  # not started: its relationships are established when install finishes it
        index = {k: i for i, k in enumerate(relationship_keys(inst))}
        return result + [relationship_step("establish", index[k], k) for k in relationships if k in index]

    return steps


def drift(plan: Plan, instances: frozenset[str], execution: int | None) -> Workflow:
    """Each started instance's ``check_drift``, all at once, recording nothing on the instances."""
    check = Step("check_drift", f"check_drift@{execution}", None, None, None, transient=True)
    return Workflow("drift", [Phase("drift", plan, "any", lambda inst, rec: [check], only=instances)])


def execute(plan: Plan, instances: frozenset[str], operation: str,
            inputs: Mapping[str, Mapping[str, Any]]) -> Workflow:
    """A custom operation (``run_operation``) on the selected instances, all at once, with the
    inputs checked for each node template (``inputs[node]``); recorded as events, never on
    the instances."""
    step = Step("run_operation", f"run_operation:{operation}", None, None, None, transient=True)
    return Workflow("execute", [Phase("execute", plan, "any", lambda inst, rec: [step], only=instances,
                                      custom=(operation, {n: dict(v) for n, v in inputs.items()}))])


WORKFLOWS: dict[str, Callable[..., Workflow]] = {"install": install, "uninstall": uninstall, "update": update,
                                                 "drift": drift, "execute": execute}
