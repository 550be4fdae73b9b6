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
from typing import TYPE_CHECKING, Literal

import attrs

if TYPE_CHECKING:
    from orchestrator.engine.context import InstanceRecord
    from orchestrator.plan import Plan, PlannedInstance

Order = Literal["targets_first", "dependents_first", "any"]


@attrs.define(slots=True, frozen=True)
class Step:
    op: str  # the hook
    key: str  # how the instance's record names it ("create", "establish:0", ...)
    relationship: int | None  # index into the instance's relationships
    before: str | None  # instance state while the hook runs
    after: str | None  # instance state once it succeeded


StepsOf = Callable[["PlannedInstance", "InstanceRecord"], list[Step]]


@attrs.define(slots=True, frozen=True)
class Phase:
    """One walk over instances of ``plan`` (all of them, or ``only``)."""

    name: str
    plan: Plan
    order: Order
    steps: StepsOf
    done_state: str | None = None  # the state an instance is left in once its steps are done
    removes: bool = False  # once done, the instance is gone: runtime properties and records cleared
    only: frozenset[str] | None = None

    def instances(self) -> list[str]:
        return [i for i in self.plan.instances if self.only is None or i in self.only]

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


@attrs.define(slots=True, frozen=True)
class Workflow:
    name: str
    phases: list[Phase]
    prepare: Callable[[Mapping[str, InstanceRecord]], None] | None = None  # before anything runs


# -- the lifecycle steps ----------------------------------------------------------------


def install_steps(inst: PlannedInstance, _record: InstanceRecord | None = None) -> list[Step]:
    rels = range(len(inst.relationships))
    return [
        Step("create", "create", None, "creating", "created"),
        *(Step("preconfigure", f"preconfigure:{i}", i, None, None) for i in rels),
        Step("configure", "configure", None, "configuring", "configured"),
        *(Step("postconfigure", f"postconfigure:{i}", i, None, None) for i in rels),
        Step("start", "start", None, "starting", "started"),
        *(Step("establish", f"establish:{i}", i, None, None) for i in rels),
    ]


def uninstall_steps(inst: PlannedInstance, record: InstanceRecord) -> list[Step]:
    """Only what install attempted: stop if start ran, unlink if establish ran, delete if create ran."""
    return list(_uninstall_steps(inst, record.ops))


def _uninstall_steps(inst: PlannedInstance, ops: Mapping[str, str]) -> Iterator[Step]:
    if "start" in ops:
        yield Step("stop", "stop", None, "stopping", "stopped")
    for i in reversed(range(len(inst.relationships))):
        if f"establish:{i}" in ops:
            yield Step("unlink", f"unlink:{i}", i, None, None)
    if "create" in ops:
        yield Step("delete", "delete", None, "deleting", "deleted")


def prepare_for_install(records: Mapping[str, InstanceRecord]) -> None:
    """Instances left half-uninstalled are brought back: what uninstall undid runs again."""
    for rec in records.values():
        if "delete" in rec.ops or rec.state == "deleted":
            rec.ops.clear()
            rec.state = "uninitialized"
        elif "stop" in rec.ops or any(k.startswith("unlink:") for k in rec.ops):
            for key in [k for k in rec.ops if k in ("start", "stop") or k.startswith(("establish:", "unlink:"))]:
                del rec.ops[key]


# -- the table --------------------------------------------------------------------------


def install(plan: Plan) -> Workflow:
    return Workflow("install", [Phase("install", plan, "targets_first", install_steps, done_state="started")],
                    prepare=prepare_for_install)


def uninstall(plan: Plan) -> Workflow:
    return Workflow("uninstall", [Phase("uninstall", plan, "dependents_first", uninstall_steps, removes=True)])


WORKFLOWS: dict[str, Callable[[Plan], Workflow]] = {"install": install, "uninstall": uninstall}
