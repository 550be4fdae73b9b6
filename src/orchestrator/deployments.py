"""The operations behind the command line, usable from Python and tests alike.

Data flows one way: blueprint text -> ``Blueprint`` -> ``Plan`` -> ``Runner`` -> state
and events. The CLI only parses arguments and prints what these return.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import attrs

from orchestrator.dsl.functions import resolve_runtime
from orchestrator.dsl.inputs import GivenInput, given_from_mapping, parse_input_args
from orchestrator.dsl.loader import gc_paused, load_blueprint
from orchestrator.dsl.model import Blueprint
from orchestrator.dsl.problems import NOWHERE, BlueprintError, Mark, Problem, Problems
from orchestrator.engine.context import InstanceRecord
from orchestrator.engine.dispatch import Dispatcher
from orchestrator.engine.events import EventSink, Listener, Masker
from orchestrator.engine.interrupt import Interrupt
from orchestrator.engine.runner import ExecutionResult, Options, Runner, RuntimeLookup
from orchestrator.errors import OrchestratorError, PluginError, StateError
from orchestrator.plan import Plan, build_plan
from orchestrator.plugins import PluginManager, get_plugin_manager
from orchestrator.secrets import (
    OutputSecrets,
    Secrets,
    missing_secret_message,
    render_output,
    secret_names,
    secret_strings,
)
from orchestrator.state import (
    DEFAULT_STATE,
    DeploymentRow,
    Event,
    InstanceRow,
    LockInfo,
    StateStore,
)
from orchestrator.state.leases import LeaseKeeper, lease_seconds


class UsageError(OrchestratorError):
    """Bad usage that is not a blueprint problem (unknown deployment, changed blueprint)."""


Inputs = Sequence[str] | Mapping[str, Any] | None


def _given(inputs: Inputs, problems: Problems) -> dict[str, GivenInput]:
    if inputs is None:
        return {}
    if isinstance(inputs, Mapping):
        return given_from_mapping(inputs)
    return parse_input_args(inputs, problems)


def deployment_id_for(path: str | Path) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", Path(path).stem) or "default"


@attrs.define
class Orchestrator:
    """A plugin manager plus a state file: everything a command needs.

    Workflows open the state for writing (creating it if needed); queries open it for
    reading only and never create or change anything. ``recover=True`` puts the backup
    back when the state turns out damaged or lost deployments it had.
    """

    pm: PluginManager = attrs.field(factory=get_plugin_manager)
    state_path: Path = DEFAULT_STATE
    recover: bool = False
    _store: StateStore | None = None

    @property
    def store(self) -> StateStore:
        """The state, open for writing."""
        if self._store is None or not self._store.writable:
            self.close()
            self._store = StateStore(self.state_path, recover=self.recover)
        return self._store

    @property
    def reader(self) -> StateStore:
        """The state, open for reading (a missing file is "no state at PATH")."""
        if self._store is None:
            self._store = StateStore(self.state_path, create=False, recover=self.recover)
        return self._store

    def close(self) -> None:
        if self._store is not None:
            self._store.close()
            self._store = None

    # -- blueprint and plan ---------------------------------------------------------

    def load(self, path: str | Path, inputs: Inputs = None) -> Blueprint:
        problems = Problems()
        given = _given(inputs, problems)
        try:
            bp = load_blueprint(path, given, self.pm.type_sources)
        except BlueprintError as exc:
            problems.items.extend(exc.problems)
        problems.raise_if_any()
        from orchestrator.dsl.loader import _load
        from orchestrator.validation import validate_nodes

        problems.items.extend(validate_nodes(self.pm, bp, lambda: _load(Path(path), given, self.pm.type_sources,
                                                                         fast=False)))
        problems.raise_if_any()
        return bp

    def plan(self, path: str | Path, inputs: Inputs = None) -> Plan:
        bp = self.load(path, inputs)
        with gc_paused():
            return build_plan(bp)

    # -- workflows ----------------------------------------------------------------

    def install(self, path: str | Path, inputs: Inputs = None, deployment: str | None = None,
                options: Options | None = None, listeners: Iterable[Listener] = (),
                secrets: Mapping[str, Any] | None = None) -> ExecutionResult:
        return self.prepare_install(path, inputs, deployment, secrets).run(options, listeners)

    def uninstall(self, deployment: str | None = None, options: Options | None = None,
                  listeners: Iterable[Listener] = (), secrets: Mapping[str, Any] | None = None) -> ExecutionResult:
        return self.prepare_uninstall(deployment, secrets).run(options, listeners)

    def prepare_install(self, path: str | Path, inputs: Inputs = None, deployment: str | None = None,
                        secrets: Mapping[str, Any] | None = None) -> Prepared:
        """Load, validate and plan; nothing is written until ``run()`` holds the deployment's lock."""
        bp = self.load(path, inputs)
        with gc_paused():
            plan = build_plan(bp)
        deployment = deployment or deployment_id_for(path)
        self._check_plugins(plan)
        secrets = self._check_secrets(plan, secrets, bp)
        return Prepared(self, "install", deployment, plan, secrets,
                        lambda: self._save_plan(deployment, bp, plan))

    def prepare_uninstall(self, deployment: str | None = None,
                          secrets: Mapping[str, Any] | None = None) -> Prepared:
        row = self.deployment(deployment, write=True)
        plan = Plan.from_json(row.plan)
        self._check_plugins(plan)
        # Uninstall does not insist on secrets: often only create needed them. A hook that
        # reads a property whose secret is missing fails with a message naming it.
        return Prepared(self, "uninstall", row.id, plan, Secrets() if secrets is None else secrets,
                        lambda: self._check_unchanged(row))

    def _execute(self, prepared: Prepared, options: Options | None, listeners: Iterable[Listener],
                 interrupt: Interrupt | None) -> ExecutionResult:
        """Lock, then write: a refused execution leaves the state as it was."""
        options = options or Options()
        store, deployment, plan = self.store, prepared.deployment, prepared.plan
        masker = Masker(s for name in secret_names_of(plan) if name in prepared.secrets
                        for s in secret_strings(prepared.secrets[name]))
        lease = lease_seconds()
        execution = store.start_execution(deployment, prepared.workflow, lease, prepared.before)
        sink = EventSink(store, deployment, execution, masker)
        sink.listeners.extend(listeners)
        runner = Runner(plan=plan, store=store, deployment=deployment, dispatcher=Dispatcher(self.pm),
                        sink=sink, options=options, secrets=prepared.secrets, interrupt=interrupt)
        status, error = "failed", "interrupted"
        result: ExecutionResult | None = None
        try:
            with LeaseKeeper(lambda: store.renew_lease(execution, lease), lease, runner.lock_lost):
                result = runner.install() if prepared.workflow == "install" else runner.uninstall()
            status, error = result.status, "; ".join([*result.notes, *map(str, result.failures)]) or None
            if result.status == "succeeded":
                self._record_leftovers(result, plan)
            return result
        finally:
            try:
                store.end_execution(execution, status, error)
            except StateError as exc:  # e.g. the disk is still full: the lock stays, a rerun takes it over
                if result is None:
                    raise
                said = any(str(exc) in note for note in result.notes)
                result.notes.append(f"execution {execution} could not be marked {status} either"
                                    f"{'' if said else f' ({exc})'}; the next run takes its lock over")

    def _record_leftovers(self, result: ExecutionResult, plan: Plan) -> None:
        """Mark the deployment while an ``--ignore-failures`` uninstall may have left resources behind;
        a later run that succeeds without ignoring anything clears the mark."""
        leftovers = [{"instance": f.instance, "node": plan.instances[f.instance].node if f.instance in
                      plan.instances else None, "operation": f.operation, "plugin": f.plugin,
                      "message": f.message} for f in result.left_behind]
        self.store.set_leftovers(result.deployment, leftovers)

    def _check_unchanged(self, row: DeploymentRow) -> None:
        """Run under the lock: the deployment must still be the one that was prepared."""
        now = self.store.get_deployment(row.id)
        if now is None or now.plan != row.plan:
            raise UsageError(f"deployment '{row.id}' changed while this command was getting ready; run it again")

    def unlock(self, deployment: str, force: bool = False) -> tuple[LockInfo | None, str | None]:
        """Clear a deployment's lock: ``(the lock, why it was free)``; a live lease needs ``force``."""
        self.deployment(deployment, write=True)
        return self.store.unlock(deployment, force)

    def _save_plan(self, deployment: str, bp: Blueprint, plan: Plan) -> None:
        existing = self.store.get_deployment(deployment)
        structure = plan.structure_hash()
        if existing is not None and existing.structure != structure:
            busy = [r.id for r in self.store.instances(deployment).values()
                    if r.state not in ("uninitialized", "deleted")]
            if busy:
                raise UsageError(
                    f"deployment '{deployment}' was installed from a blueprint with other node instances or "
                    f"relationships ({len(busy)} instances exist, e.g. {busy[0]}); uninstall it first, or "
                    f"install under another name with -d")
        self.store.save_deployment(deployment, str(bp.path), bp.input_values, plan.to_json(), structure,
                                   ((i.id, i.node) for i in plan.instances.values()))

    def _check_plugins(self, plan: Plan) -> None:
        owners = {n.owner for n in plan.nodes.values()}
        owners |= {r.owner for i in plan.instances.values() for r in i.relationships}
        missing = Dispatcher(self.pm).check_owners(owners)
        if missing:
            errors = {e.plugin: e for e in self.pm.load_errors}
            details = "; ".join(str(errors[m]) if m in errors else f"plugin '{m}' is not installed" for m in missing)
            raise PluginError(f"this deployment needs plugins that are not available: {details}")

    def _check_secrets(self, plan: Plan, secrets: Mapping[str, Any] | None, bp: Blueprint) -> Mapping[str, Any]:
        """Every secret the plan uses is set; else a problem where each missing one is first used."""
        secrets = Secrets() if secrets is None else secrets
        missing = sorted(n for n in secret_names_of(plan) if n not in secrets)
        if not missing:
            return secrets
        marks = bp.secret_marks
        if any(marks.get(n, NOWHERE) == NOWHERE for n in missing):
            # Read on the fast path, the blueprint has no positions: read it again with them.
            from orchestrator.dsl.loader import _load

            with contextlib.suppress(BlueprintError):
                marks = _load(bp.path, given_from_mapping(bp.input_values), self.pm.type_sources,
                              fast=False).secret_marks
        raise BlueprintError([Problem(marks[n] if marks.get(n, NOWHERE) != NOWHERE else Mark(bp.display, 1, 1),
                                      missing_secret_message(n)) for n in missing])

    # -- queries --------------------------------------------------------------------

    def deployment(self, deployment: str | None, write: bool = False) -> DeploymentRow:
        store = self.store if write else self.reader
        if deployment is None:
            ids = store.deployment_ids()
            if not ids:
                raise UsageError(f"no deployments in {self.state_path}; run install first")
            if len(ids) > 1:
                raise UsageError(f"several deployments in {self.state_path} ({', '.join(ids)}); choose one with -d")
            deployment = ids[0]
        row = store.get_deployment(deployment)
        if row is None:
            known = ", ".join(store.deployment_ids()) or "none"
            raise UsageError(f"no deployment '{deployment}' in {self.state_path} (known: {known})")
        return row

    def status(self, deployment: str | None = None) -> tuple[DeploymentRow, Plan, dict[str, InstanceRow]]:
        row = self.deployment(deployment)
        return row, Plan.from_json(row.plan), self.reader.instances(row.id)

    def outputs(self, deployment: str | None = None, secrets: Mapping[str, Any] | None = None,
                show_secrets: bool = False) -> dict[str, Any]:
        """The blueprint's outputs, resolved against the deployment's runtime properties.

        Secrets are not shown unless ``show_secrets``: a value that is one secret reads
        ``<secret:NAME>``, a text holding one has it masked, and so does any text holding a
        known secret's value (a runtime property a plugin copied from one). A secret that
        is not set reads ``<secret:NAME unavailable>``; it never fails the command.
        """
        row, plan, rows = self.status(deployment)
        secrets = Secrets() if secrets is None else secrets
        masker = Masker() if show_secrets else Masker(
            s for name in secret_names_of(plan) if name in secrets for s in secret_strings(secrets[name]))
        if not show_secrets:  # runtime properties a plugin copied from a secret, known to be secret
            masker.add(s for r in rows.values() for k in r.secret_keys for s in secret_strings(r.runtime.get(k)))
        records = {i: InstanceRecord(i, r.node, r.state, r.ops, r.runtime) for i, r in rows.items()}
        runner = Runner(plan=plan, store=None, deployment=row.id, dispatcher=Dispatcher(self.pm),
                        sink=EventSink(None, row.id, None, masker), options=Options(),
                        secrets=OutputSecrets(secrets, reveal=show_secrets), records=records)
        lookup = RuntimeLookup(runner, None)
        return {name: render_output(resolve_runtime(value, lookup), masker) for name, value in plan.outputs.items()}

    def events(self, deployment: str | None = None, after: int = 0) -> list[Event]:
        row = self.deployment(deployment)
        return self.reader.events(row.id, after)


@attrs.define
class Prepared:
    """A workflow ready to run: the plan is known (for progress displays), nothing written yet."""

    orchestrator: Orchestrator
    workflow: str
    deployment: str
    plan: Plan
    secrets: Mapping[str, Any]
    before: Callable[[], None] | None = None  # runs under the lock, before the workflow (saves the plan)

    def run(self, options: Options | None = None, listeners: Iterable[Listener] = (),
            interrupt: Interrupt | None = None) -> ExecutionResult:
        return self.orchestrator._execute(self, options, listeners, interrupt)


def secret_names_of(plan: Plan) -> set[str]:
    names: set[str] = set()
    for node in plan.nodes.values():
        if node.runtime_paths:
            names |= secret_names(node.properties)
    for inst in plan.instances.values():
        for rel in inst.relationships:
            if rel.properties:
                names |= secret_names(rel.properties)
    names |= secret_names(plan.outputs)
    return names
