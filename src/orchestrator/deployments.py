"""The operations behind the command line, usable from Python and tests alike.

Data flows one way: blueprint text -> ``Blueprint`` -> ``Plan`` -> ``Runner`` -> state
and events. The CLI only parses arguments and prints what these return.
"""

from __future__ import annotations

import collections
import json
import re
from collections.abc import Callable, Iterable, Mapping, Sequence, Set
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

from orchestrator.dsl.problems import BlueprintError, Mark, Problem, Problems, did_you_mean
from orchestrator.errors import DamagedValue, PluginError, StateError, UsageError
from orchestrator.state import DEFAULT_STATE, display, open_store, state_exists

# The engine, the diff, the loader and the plugins load where a method first needs them:
# ``status`` and ``plan`` start in a fraction of the time (bench/cli_bench.py).
if TYPE_CHECKING:
    from orchestrator.diff import Change, Diff
    from orchestrator.dsl.inputs import GivenInput
    from orchestrator.dsl.model import Blueprint
    from orchestrator.engine.events import Listener
    from orchestrator.engine.interrupt import Interrupt
    from orchestrator.engine.options import Options
    from orchestrator.engine.results import ExecutionResult
    from orchestrator.engine.workflows import Workflow
    from orchestrator.plan import Plan
    from orchestrator.plugins import PluginManager
    from orchestrator.state import DeploymentRow, Event, InstanceRow, LockInfo, StateStore


Inputs = Sequence[str] | Mapping[str, Any] | None


def _given(inputs: Inputs, problems: Problems, label: str = "<-i>") -> dict[str, GivenInput]:
    from orchestrator.dsl.inputs import given_from_mapping, parse_input_args

    if inputs is None:
        return {}
    if isinstance(inputs, Mapping):
        return given_from_mapping(inputs)
    return parse_input_args(inputs, problems, label)


def deployment_id_for(path: str | Path) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", Path(path).stem) or "default"


class Orchestrator:
    """A plugin manager plus a state file: everything a command needs.

    Workflows open the state for writing (creating it if needed); queries open it for
    reading only and never create or change anything. ``recover=True`` puts the backup
    back when the state turns out damaged or lost deployments it had. Queries of the
    state import neither the planner nor attrs: ``status`` is the command run in loops.
    """

    def __init__(self, pm: PluginManager | None = None, state_path: Path | str = DEFAULT_STATE,
                 recover: bool = False, store: StateStore | None = None, discover: bool = True) -> None:
        self._pm = pm  # built on first use: queries of the state need no plugins
        self.state_path = state_path  # a SQLite file, or a postgresql:// URL
        self.recover = recover
        self._store = store
        self.discover = discover  # without a manager given: False builds one of the core's built-in types only

    def __repr__(self) -> str:
        return f"Orchestrator(state_path={self.state_path!r})"

    @property
    def pm(self) -> PluginManager:
        """The plugin manager given, or one built when first asked for (queries of the state need none)."""
        if self._pm is None:
            from orchestrator.plugins import get_plugin_manager

            self._pm = get_plugin_manager(entry_points=self.discover)
        return self._pm

    @property
    def store(self) -> StateStore:
        """The state, open for writing."""
        if self._store is None or not self._store.writable:
            self.close()
            self._store = open_store(self.state_path, recover=self.recover)
        return self._store

    @property
    def reader(self) -> StateStore:
        """The state, open for reading (a missing file is "no state at PATH")."""
        if self._store is None:
            self._store = open_store(self.state_path, create=False, recover=self.recover)
        return self._store

    @property
    def where(self) -> str:
        """The state's location fit to print (a URL without its password)."""
        return display(self.state_path)

    def close(self) -> None:
        if self._store is not None:
            self._store.close()
            self._store = None

    # -- blueprint and plan ---------------------------------------------------------

    def load(self, path: str | Path, inputs: Inputs = None, secrets: Mapping[str, Any] | None = None) -> Blueprint:
        """The validated blueprint; with ``secrets``, every secret it uses must be among them."""
        from orchestrator.dsl.loader import load_blueprint

        problems = Problems()
        given = _given(inputs, problems)
        missing: Callable[[str], str | None] | None = None
        if secrets is not None:
            from orchestrator.secrets import missing_secret_message

            def missing(name: str) -> str | None:
                return None if name in secrets else missing_secret_message(name)
        try:
            bp = load_blueprint(path, given, self.pm.type_sources, missing, packs=self.pm.cloudify_packs)
        except BlueprintError as exc:
            problems.items.extend(exc.problems)
        problems.raise_if_any()
        if any(self.pm.implements(owner, "validate_node") for owner in {t.owner for t in bp.templates.values()}):
            from orchestrator.dsl.loader import _load
            from orchestrator.validation import validate_nodes

            problems.items.extend(validate_nodes(self.pm, bp, lambda: _load(
                Path(path), given, self.pm.type_sources, fast=False, packs=self.pm.cloudify_packs)))
            problems.raise_if_any()
        return bp

    def plan(self, path: str | Path, inputs: Inputs = None) -> Plan:
        from orchestrator.dsl.loader import gc_paused
        from orchestrator.plan import build_plan

        bp = self.load(path, inputs)
        with gc_paused():
            return build_plan(bp)

    def propose(self, path: str | Path, inputs: Inputs = None, deployment: str | None = None,
                secrets: Mapping[str, Any] | None = None, *, write: bool = False,
                counts: Mapping[str, int] | None = None, remove: Set[str] = frozenset()) -> Proposal:
        """The blueprint planned against the deployment (kept ids), and the diff to get there.

        A deployment that does not exist yet is all ``create``. Reading only (``write=False``)
        never creates the state. ``counts`` overrides templates' instance counts and
        ``remove`` names instances to drop first (scale).
        """
        from orchestrator.diff import compute as compute_diff
        from orchestrator.dsl.loader import gc_paused
        from orchestrator.engine.dispatch import Dispatcher
        from orchestrator.plan import Plan, build_plan

        bp = self.load(path, inputs, secrets)
        name = deployment or deployment_id_for(path)
        for template, count in (counts or {}).items():
            bp.templates[template].instances = count
        store = self.store if write else (self.reader if state_exists(self.state_path) else None)
        row = store.get_deployment(name) if store is not None else None
        rows = store.instances(name) if row is not None and store is not None else {}
        current = _plan_from_json(row.plan) if row is not None else None
        with gc_paused():
            desired = build_plan(bp, current, remove)
        self._check_plugins(desired)
        version_plan = self._version_plans(store, name, row, current)
        dispatcher = Dispatcher(self.pm)
        diff = compute_diff(name, current or Plan({}, {}, {}), row.plan_version if row else 0, rows, version_plan,
                            desired, lambda node: dispatcher.implements(node.owner, "update", node.hierarchy))
        if row is None:
            version = 1
        else:
            version = row.plan_version + (0 if desired.to_json() == row.plan else 1)
        return Proposal(name, bp, desired, diff, row, _old_plans(diff, rows, version_plan, desired), version,
                        store.last_execution(name) if row is not None and store is not None else None)

    @staticmethod
    def _version_plans(store: StateStore | None, name: str, row: DeploymentRow | None,
                       current: Plan | None) -> Callable[[int | None], Plan | None]:
        """The plan of each version of the deployment (read once each); None: the latest."""
        loaded: dict[int, Plan] = {}

        def version_plan(version: int | None) -> Plan | None:
            if version is None or (row is not None and version == row.plan_version):
                return current
            if version not in loaded and store is not None:
                text = store.plan_version(name, version)
                if text is None:
                    return current
                loaded[version] = _plan_from_json(text)
            return loaded.get(version, current)

        return version_plan

    # -- workflows ----------------------------------------------------------------

    def install(self, path: str | Path, inputs: Inputs = None, deployment: str | None = None,
                options: Options | None = None, listeners: Iterable[Listener] = (),
                secrets: Mapping[str, Any] | None = None) -> ExecutionResult:
        return self.prepare_install(path, inputs, deployment, secrets).run(options, listeners)

    def uninstall(self, deployment: str | None = None, options: Options | None = None,
                  listeners: Iterable[Listener] = (), secrets: Mapping[str, Any] | None = None) -> ExecutionResult:
        return self.prepare_uninstall(deployment, secrets).run(options, listeners)

    def update(self, path: str | Path, inputs: Inputs = None, deployment: str | None = None,
               options: Options | None = None, listeners: Iterable[Listener] = (),
               secrets: Mapping[str, Any] | None = None) -> ExecutionResult:
        return self.prepare_update(path, inputs, deployment, secrets).run(options, listeners)

    def execute(self, deployment: str | None, operation: str, params: Inputs = None, nodes: Sequence[str] = (),
                instances: Sequence[str] = (), options: Options | None = None, listeners: Iterable[Listener] = (),
                secrets: Mapping[str, Any] | None = None) -> ExecutionResult:
        """A custom operation; ``result.results`` holds what each instance's hook returned."""
        return self.prepare_execute(deployment, operation, params, nodes, instances, secrets).run(options, listeners)

    def prepare_install(self, path: str | Path, inputs: Inputs = None, deployment: str | None = None,
                        secrets: Mapping[str, Any] | None = None) -> Prepared:
        """Load, validate and plan; nothing is written until ``run()`` holds the deployment's lock.

        On a deployment that exists, install only creates and resumes: anything else the
        blueprint changes is for ``update``, which says what it will do first.
        """
        from orchestrator.engine import workflows
        from orchestrator.secrets import Secrets

        secrets = Secrets() if secrets is None else secrets
        proposal = self.propose(path, inputs, deployment, secrets, write=True)
        self._check_secrets(proposal.plan, secrets, proposal.blueprint)
        rows = self.store.instances(proposal.deployment) if proposal.base is not None else {}
        live = [c for c in proposal.diff.changes if c.action == "delete" or (
            c.action in ("update", "replace") and rows[c.instance].state == "started")]
        if live:
            counts = collections.Counter(c.action for c in live)
            what = ", ".join(f"{n} to {a}" for a, n in counts.items())
            raise UsageError(
                f"deployment '{proposal.deployment}' was installed from another blueprint or other inputs ({what}); "
                f"see the changes with 'orchestrator plan {path} -d {proposal.deployment}' and apply them with "
                f"'orchestrator update {path} -d {proposal.deployment}'")
        workflow = workflows.update(proposal.diff, proposal.plan, proposal.version, proposal.old_plans, "install")
        return Prepared(self, "install", proposal.deployment, proposal.plan, secrets,
                        lambda: self._save(proposal), workflow, lambda result: self._settle(proposal), proposal.diff)

    def prepare_update(self, path: str | Path, inputs: Inputs = None, deployment: str | None = None,
                       secrets: Mapping[str, Any] | None = None) -> Prepared:
        """Plan against the deployment; ``run()`` applies the diff (see ``engine.workflows.update``)."""
        from orchestrator.engine import workflows
        from orchestrator.secrets import Secrets

        secrets = Secrets() if secrets is None else secrets
        proposal = self.propose(path, inputs, deployment, secrets, write=True)
        if proposal.base is None:
            known = ", ".join(self.store.deployment_ids()) or "none"
            raise UsageError(f"no deployment '{proposal.deployment}' in {self.where} to update (known: {known}); "
                             f"install it first")
        self._check_secrets(proposal.plan, secrets, proposal.blueprint)
        workflow = workflows.update(proposal.diff, proposal.plan, proposal.version, proposal.old_plans)
        return Prepared(self, "update", proposal.deployment, proposal.plan, secrets, lambda: self._save(proposal),
                        workflow, lambda result: self._settle(proposal), proposal.diff)

    def prepare_heal(self, deployment: str | None = None, instances: Sequence[str] = (),
                     drifted: Mapping[str, Any] | None = None, secrets: Mapping[str, Any] | None = None) -> Prepared:
        """Reinstall instances as planned: the given ones, else every failed, drifted or gone one
        (``drifted``: what ``check_drift`` returned per instance), with what they contain; their
        neighbours re-run their relationship hooks toward them. Nothing else is touched (an
        install that merely stopped half way is finished by running install again)."""
        from orchestrator.diff import forced as forced_diff
        from orchestrator.engine import workflows
        from orchestrator.secrets import Secrets

        row = self.deployment(deployment, write=True)
        plan = _plan_from_json(row.plan)
        self._check_plugins(plan)
        rows = self.store.instances(row.id)
        reasons: dict[str, str] = {}
        unknown = [i for i in instances if i not in plan.instances]
        if unknown:
            raise UsageError(f"deployment '{row.id}' has no instance {', '.join(map(repr, unknown))} "
                             f"(instances: {', '.join(plan.instances)})")
        for iid in instances:
            reasons[iid] = "asked for"
        if not instances:
            for iid in plan.instances:
                r = rows.get(iid)
                found = (drifted or {}).get(iid)
                if r is not None and (r.state == "failed" or r.error):
                    reasons[iid] = f"failed: {r.error}" if r.error else "failed"
                elif found is not None:
                    reasons[iid] = "gone" if found == "gone" or (isinstance(found, dict) and "gone" in found) else \
                        f"drifted: {', '.join(map(str, found)) if isinstance(found, dict) else found}"
        diff = forced_diff(row.id, plan, reasons)
        version_plan = self._version_plans(self.store, row.id, row, plan)
        workflow = workflows.update(diff, plan, row.plan_version, _old_plans(diff, rows, version_plan, plan), "heal")
        return Prepared(self, "heal", row.id, plan, Secrets() if secrets is None else secrets,
                        lambda: self._check_unchanged(row), workflow, None, diff)

    def prepare_scale(self, deployment: str | None, changes: Mapping[str, str], remove: Sequence[str] = (),
                      secrets: Mapping[str, Any] | None = None) -> Prepared:
        """More or fewer instances of templates (``{"app": "3" | "+1" | "-1"}``); ``remove`` names the
        ones to take away (else the newest go). The blueprint is read again from where the deployment
        was installed from, with its inputs: it must not have changed otherwise (that is ``update``)."""
        from orchestrator.engine import workflows
        from orchestrator.secrets import Secrets

        row = self.deployment(deployment, write=True)
        plan = _plan_from_json(row.plan)
        path = Path(row.blueprint)
        if not path.is_file():
            raise UsageError(f"scale reads the deployment's blueprint again, and {path} is gone; run "
                             f"'orchestrator update BLUEPRINT -d {row.id}' from its new place first")
        request = json.dumps({"counts": dict(changes), "remove": sorted(remove)}, sort_keys=True)
        last = self.store.last_request(row.id)
        same = last is not None and last[0] == "scale" and last[2] == request
        resuming = same and last[1] != "succeeded"
        if same and not resuming:
            # The same removal again after it succeeded (its process killed before it could say
            # so, say): what it removed is gone already, which is what was asked. Its template
            # keeps the count that removal left (ids are TEMPLATE_N), not the blueprint's.
            gone = [i for i in remove if i not in plan.instances]
            remove = [i for i in remove if i in plan.instances]
            changes = dict(changes)
            for template in {i.rpartition("_")[0] for i in gone} & plan.nodes.keys():
                changes.setdefault(template, str(_per_host(plan, template)))
        for iid in remove if not resuming else ():
            if iid not in plan.instances:
                raise UsageError(f"deployment '{row.id}' has no instance '{iid}' to remove")
        if resuming:
            # The same scale, stopped half way (killed, failed): it resumes toward the target it set,
            # which is the deployment's plan now; "+1" again would add one more.
            # A removed instance's row is gone once the removal settled (a kill can land between
            # that and the execution's end): its template is then the one its id names.
            rows = self.store.instances(row.id)
            templates = {*changes, *(rows[i].node if i in rows else i.rpartition("_")[0] for i in remove)}
            changes = {t: str(_per_host(plan, t)) for t in templates if t in plan.nodes}
            remove = ()
        counts: dict[str, int] = {}
        removed = collections.Counter(plan.instances[i].node for i in remove)
        for template, spec in changes.items():
            node = plan.nodes.get(template)
            if node is None:
                raise UsageError(f"deployment '{row.id}' has no node template '{template}'{did_you_mean(template, plan.nodes)}")
            current = _per_host(plan, template)
            spec = str(spec).strip()
            try:
                counts[template] = current + int(spec) if spec[:1] in "+-" else int(spec)
            except ValueError:
                raise UsageError(f"scale {template}={spec}: give a count, +K or -K") from None
            if counts[template] < 0:
                raise UsageError(f"scale {template}={spec}: {template} has {current} per host; it cannot go below 0")
        for template, n in removed.items():
            counts.setdefault(template, _per_host(plan, template) - n)
        secrets = Secrets() if secrets is None else secrets
        proposal = self.propose(path, dict(row.inputs), row.id, secrets, write=True, counts=counts,
                                remove=frozenset(remove))
        scaled = set(counts)
        other = [c for c in proposal.diff.changes if not _scaling(c, proposal, scaled)]
        if other:
            what = ", ".join(f"{c.instance} ({c.action})" for c in other[:5])
            raise UsageError(f"the blueprint {path} (or what it imports) changed since deployment '{row.id}' was "
                             f"installed or updated ({what}); see it with 'orchestrator plan {path} -d {row.id}' "
                             f"and apply it with update first")
        workflow = workflows.update(proposal.diff, proposal.plan, proposal.version, proposal.old_plans, "scale")
        return Prepared(self, "scale", row.id, proposal.plan, secrets, lambda: self._save(proposal), workflow,
                        lambda result: self._settle(proposal), proposal.diff, request)

    def prepare_uninstall(self, deployment: str | None = None,
                          secrets: Mapping[str, Any] | None = None) -> Prepared:
        from orchestrator.engine import workflows
        from orchestrator.secrets import Secrets

        row = self.deployment(deployment, write=True)
        plan = _plan_from_json(row.plan)
        self._check_plugins(plan)
        versions = self.store.instance_versions(row.id)
        phases = workflows.uninstall(plan).phases
        older = sorted({v for v in versions.values() if v is not None and v != row.plan_version}, reverse=True)
        for version in older:  # instances an update left at an older plan (deleted from the latest)
            text = self.store.plan_version(row.id, version)
            if text is not None:
                old = workflows.uninstall(_plan_from_json(text)).phases[0]
                phases.append(old._replace(only=frozenset(i for i, v in versions.items()
                                                               if v == version and i in old.plan.instances)))
        if older:  # the latest plan's phase leaves those to theirs
            phases[0] = phases[0]._replace(only=frozenset(i for i, v in versions.items()
                                                               if v in (None, row.plan_version) and i in plan.instances))
        # Uninstall does not insist on secrets: often only create needed them. A hook that
        # reads a property whose secret is missing fails with a message naming it.
        return Prepared(self, "uninstall", row.id, plan, Secrets() if secrets is None else secrets,
                        lambda: self._check_unchanged(row), workflows.Workflow("uninstall", phases))

    def prepare_drift(self, deployment: str | None = None, secrets: Mapping[str, Any] | None = None) -> Prepared:
        """``check_drift`` of every started instance; nothing is changed."""
        from orchestrator.engine import workflows
        from orchestrator.secrets import Secrets

        row = self.deployment(deployment, write=True)
        plan = _plan_from_json(row.plan)
        self._check_plugins(plan)
        started = frozenset(i for i, r in self.store.instances(row.id).items() if r.state == "started"
                            and i in plan.instances)
        return Prepared(self, "drift", row.id, plan, Secrets() if secrets is None else secrets,
                        lambda: self._check_unchanged(row), workflows.drift(plan, started, None))

    def prepare_execute(self, deployment: str | None, operation: str, params: Inputs = None,
                        nodes: Sequence[str] = (), instances: Sequence[str] = (),
                        secrets: Mapping[str, Any] | None = None) -> Prepared:
        """A custom operation on the started instances that offer it (of ``nodes``, or just
        ``instances``), its inputs checked against each node type's declaration first."""
        from orchestrator.engine import workflows
        from orchestrator.engine.dispatch import Dispatcher
        from orchestrator.operations import Catalogue
        from orchestrator.secrets import Secrets

        row = self.deployment(deployment, write=True)
        plan = _plan_from_json(row.plan)
        self._check_plugins(plan)
        catalogue = Catalogue(self.pm)
        offered = {name: catalogue.of(node) for name, node in plan.nodes.items()}
        offering = [name for name, ops in offered.items() if operation in ops]
        if not offering:
            known = sorted({op for ops in offered.values() for op in ops})
            raise UsageError(f"no node of deployment '{row.id}' has an operation '{operation}'"
                             f"{did_you_mean(operation, known) or ''}"
                             f" ({'its operations: ' + ', '.join(known) if known else 'its nodes declare none'}; "
                             f"see 'orchestrator operations -d {row.id}')")
        for name in nodes:
            if name not in plan.nodes:
                raise UsageError(f"deployment '{row.id}' has no node template '{name}'{did_you_mean(name, plan.nodes)}")
            if name not in offering:
                raise UsageError(f"node '{name}' ({plan.nodes[name].type}) has no operation '{operation}' "
                                 f"(nodes that have it: {', '.join(offering)})")
        for iid in instances:
            if iid not in plan.instances:
                raise UsageError(f"deployment '{row.id}' has no instance '{iid}'{did_you_mean(iid, plan.instances)}")
            if plan.instances[iid].node not in offering:
                node = plan.nodes[plan.instances[iid].node]
                raise UsageError(f"instance '{iid}' ({node.type}) has no operation '{operation}' "
                                 f"(nodes that have it: {', '.join(offering)})")
        rows = self.store.instances(row.id)
        if instances:
            stopped = [i for i in instances if rows.get(i) is None or rows[i].state != "started"]
            if stopped:
                raise UsageError("; ".join(f"instance '{i}' is {rows[i].state if i in rows else 'uninitialized'}"
                                           for i in stopped) + f": {operation} runs on started instances")
            selected = frozenset(instances)
        else:
            chosen = nodes or offering
            selected = frozenset(i for n in chosen for i in plan.nodes[n].instances
                                 if i in rows and rows[i].state == "started")
            if not selected:
                raise UsageError(f"no started instance of {', '.join(chosen)} in deployment '{row.id}' "
                                 f"to run {operation} on (see 'orchestrator status -d {row.id}')")
        dispatcher = Dispatcher(self.pm)
        problems = Problems()
        given = _given(params, problems, "<-p>")
        inputs = {}
        for name in sorted({plan.instances[i].node for i in selected}):
            node = plan.nodes[name]
            if not dispatcher.implements(node.owner, "run_operation", node.hierarchy):
                raise PluginError(f"plugin '{node.owner}' declares operation '{operation}' on {node.type} but does "
                                  f"not implement it (no run_operation hook, nor a method '{operation}' on its class)")
            before = len(problems)
            inputs[name] = catalogue.check_inputs(offered[name][operation], given, problems)
            if len(problems) > before:
                break  # the same -p arguments: one node's complaints are enough
        problems.raise_if_any()
        return Prepared(self, "execute", row.id, plan, Secrets() if secrets is None else secrets,
                        lambda: self._check_unchanged(row), workflows.execute(plan, selected, operation, inputs))

    def _save(self, proposal: Proposal) -> None:
        """Under the lock: the deployment is still as proposed; its new plan is saved."""
        store, name = self.store, proposal.deployment
        now = store.get_deployment(name)
        same = (now is None and proposal.base is None) or (
            now is not None and proposal.base is not None and now.plan == proposal.base.plan
            and now.plan_version == proposal.base.plan_version and store.last_execution(name) == proposal.execution)
        if not same:
            raise UsageError(f"deployment '{name}' changed while this command was getting ready; run it again")
        bp, plan = proposal.blueprint, proposal.plan
        store.save_deployment(name, str(bp.path), bp.input_values, plan.to_json(), plan.structure_hash(),
                              ((i.id, i.node) for i in plan.instances.values()))

    def _settle(self, proposal: Proposal) -> None:
        if proposal.base is None:
            return  # a new deployment: every instance got its version as it was installed
        self.store.settle_plan(proposal.deployment, proposal.version, proposal.diff.unchanged,
                               set(proposal.plan.instances))

    def _execute(self, prepared: Prepared, options: Options | None, listeners: Iterable[Listener],
                 interrupt: Interrupt | None) -> ExecutionResult:
        """Lock, then write: a refused execution leaves the state as it was."""
        from orchestrator.engine import hook_output
        from orchestrator.engine.dispatch import Dispatcher
        from orchestrator.engine.events import EventSink, Masker
        from orchestrator.engine.options import Options
        from orchestrator.engine.runner import Runner
        from orchestrator.secrets import secret_strings
        from orchestrator.state.leases import LeaseKeeper, lease_seconds

        options = options or Options()
        store, deployment, plan = self.store, prepared.deployment, prepared.plan
        masker = Masker(s for name in secret_names_of(plan) if name in prepared.secrets
                        for s in secret_strings(prepared.secrets[name]))
        lease = lease_seconds()
        executor = self._executor(options)  # before anything is written: no worker, nothing done
        execution = store.start_execution(deployment, prepared.workflow, lease, prepared.before,
                                          request=prepared.request)
        sink = EventSink(store, deployment, execution, masker)
        sink.listeners.extend(listeners)
        workflow = prepared.steps
        plans = [phase.plan for phase in workflow.phases]
        status, error = "failed", "interrupted"
        result: ExecutionResult | None = None
        try:
            self.pm.load_pending()  # the plugins known from the index: imported before any worker asks
            runner = Runner(store=store, deployment=deployment, dispatcher=Dispatcher(self.pm), sink=sink,
                            options=options, secrets=prepared.secrets, plans=plans, interrupt=interrupt,
                            executor=executor)
            if executor is not None:
                used = set().union(*(secret_names_of(p) for p in plans)) if plans else set()
                executor.begin(store, deployment, sink, plans, prepared.secrets, used, options.retries,
                               stopping=runner.ex.stop.is_set)
            with LeaseKeeper(lambda: store.renew_lease(execution, lease), lease, runner.lock_lost), \
                    hook_output.captured():
                result = runner.run(workflow)
            status, error = result.status, "; ".join([*result.notes, *map(str, result.failures)]) or None
            if result.status == "succeeded":
                if prepared.after is not None:
                    prepared.after(result)
                if prepared.workflow not in ("drift", "execute"):
                    self._record_leftovers(result, plan)
            return result
        finally:
            if executor is not None:
                executor.close()
            try:
                store.end_execution(execution, status, error)
            except StateError as exc:  # e.g. the disk is still full: the lock stays, a rerun takes it over
                if result is None:
                    raise
                result.unended = True  # not a silent success: the command exits non-zero
                said = any(str(exc) in note for note in result.notes)
                result.notes.append(f"execution {execution} could not be marked {status} either"
                                    f"{'' if said else f' ({exc})'}; the next run takes its lock over")

    def _executor(self, options: Options) -> Any:
        """Where hook calls run: None for threads here; workers for ``--executor celery``."""
        if options.executor == "local":
            return None
        if options.executor != "celery":
            raise UsageError(f"unknown executor '{options.executor}' (local or celery)")
        from orchestrator.remote.app import broker_url
        from orchestrator.remote.executor import CeleryExecutor

        return CeleryExecutor(broker_url(options.broker), options.queue, self.state_path)

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

    def _check_plugins(self, plan: Plan) -> None:
        from orchestrator.engine.dispatch import Dispatcher

        owners = {n.owner for n in plan.nodes.values()}
        owners |= {r.owner for i in plan.instances.values() for r in i.relationships}
        missing = Dispatcher(self.pm).check_owners(owners)
        if missing:
            errors = {e.plugin: e for e in self.pm.load_errors}
            details = "; ".join(str(errors[m]) if m in errors else f"plugin '{m}' is not installed" for m in missing)
            raise PluginError(f"this deployment needs plugins that are not available: {details}")

    def _check_secrets(self, plan: Plan, secrets: Mapping[str, Any], bp: Blueprint) -> None:
        """Every secret the plan uses is set (the loader reported those it saw used, where they are)."""
        from orchestrator.secrets import missing_secret_message

        missing = sorted(n for n in secret_names_of(plan) if n not in secrets)
        if missing:
            raise BlueprintError([Problem(Mark(bp.display, 1, 1), missing_secret_message(n)) for n in missing])

    # -- queries --------------------------------------------------------------------

    def deployment(self, deployment: str | None, write: bool = False) -> DeploymentRow:
        store = self.store if write else self.reader
        if deployment is None:
            ids = store.deployment_ids()
            if not ids:
                raise UsageError(f"no deployments in {self.where}; run install first")
            if len(ids) > 1:
                raise UsageError(f"several deployments in {self.where} ({', '.join(ids)}); choose one with -d")
            deployment = ids[0]
        row = store.get_deployment(deployment)
        if row is None:
            known = ", ".join(store.deployment_ids()) or "none"
            raise UsageError(f"no deployment '{deployment}' in {self.where} (known: {known})")
        return row

    def status(self, deployment: str | None = None) -> tuple[DeploymentRow, Plan, dict[str, InstanceRow]]:
        row = self.deployment(deployment)
        return row, _plan_from_json(row.plan), self.reader.instances(row.id)

    def instance_states(self, deployment: str | None = None) -> tuple[DeploymentRow, list[dict[str, str]]]:
        """Each planned instance (in plan order) with its node, type, state and error: what
        ``status`` shows, read from the stored plan's JSON without building the plan."""
        row = self.deployment(deployment)
        rows = self.reader.instances(row.id)
        stored = json.loads(row.plan)  # the layout of Plan.to_json
        items = []
        try:
            types = {name: node["type"] for name, node in stored["nodes"].items()}
            for iid, node, _host, _relationships in stored["instances"]:
                record = rows.get(iid)
                item = {"instance": iid, "node": node, "type": types[node],
                        "state": record.state if record else "uninitialized"}
                if record is not None and record.error:
                    item["error"] = record.error
                items.append(item)
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise DamagedValue.plan(exc) from None
        return row, items

    def outputs(self, deployment: str | None = None, secrets: Mapping[str, Any] | None = None,
                show_secrets: bool = False) -> dict[str, Any]:
        """The blueprint's outputs, resolved against the deployment's runtime properties.

        Secrets are not shown unless ``show_secrets``: a value that is one secret reads
        ``<secret:NAME>``, a text holding one has it masked, and so does any text holding a
        known secret's value (a runtime property a plugin copied from one). A secret that
        is not set reads ``<secret:NAME unavailable>``; it never fails the command.
        """
        from orchestrator.dsl.functions import resolve_runtime
        from orchestrator.engine.context import InstanceRecord
        from orchestrator.engine.events import Masker
        from orchestrator.engine.factory import ContextFactory, RuntimeLookup
        from orchestrator.secrets import OutputSecrets, Secrets, render_output, secret_strings

        row, plan, rows = self.status(deployment)
        secrets = Secrets() if secrets is None else secrets
        masker = Masker() if show_secrets else Masker(
            s for name in secret_names_of(plan) if name in secrets for s in secret_strings(secrets[name]))
        if not show_secrets:  # runtime properties a plugin copied from a secret, known to be secret
            masker.add(s for r in rows.values() for k in r.secret_keys for s in secret_strings(r.runtime.get(k)))
        records = {i: InstanceRecord(i, r.node, r.state, r.ops, r.runtime) for i, r in rows.items()}
        contexts = ContextFactory(plan, records, OutputSecrets(secrets, reveal=show_secrets), row.id, lambda rec: None)
        lookup = RuntimeLookup(contexts, None)
        return {name: render_output(resolve_runtime(value, lookup), masker) for name, value in plan.outputs.items()}

    def operations(self, deployment: str | None = None) -> tuple[str, list[dict[str, Any]]]:
        """Per node template of the deployment, the custom operations it offers (with their
        inputs) and how many of its instances are started to run them on."""
        from orchestrator.operations import Catalogue, describe

        row, plan, rows = self.status(deployment)
        catalogue = Catalogue(self.pm)
        result = []
        for name, node in plan.nodes.items():
            ops = catalogue.of(node)
            if ops:
                started = [i for i in node.instances if i in rows and rows[i].state == "started"]
                result.append({"node": name, "type": node.type, "plugin": node.owner, "instances": len(node.instances),
                               "started": started, "operations": [describe(op) for op in ops.values()]})
        return row.id, result

    def events(self, deployment: str | None = None, after: int = 0) -> list[Event]:
        row = self.deployment(deployment)
        return self.reader.events(row.id, after)


class Proposal(NamedTuple):
    """A blueprint planned against a deployment: the plan, the diff, and what it was based on."""

    deployment: str
    blueprint: Blueprint
    plan: Plan
    diff: Diff
    base: DeploymentRow | None  # the deployment as read (None: it does not exist yet)
    old_plans: dict[str, Plan]  # per changed instance, the plan it was installed or updated with
    version: int  # the plan version ``plan`` gets
    execution: int | None  # the deployment's last execution when read: whether anything ran since


class Prepared(NamedTuple):
    """A workflow ready to run: the plan is known (for progress displays), nothing written yet."""

    orchestrator: Orchestrator
    workflow: str
    deployment: str
    plan: Plan
    secrets: Mapping[str, Any]
    before: Callable[[], None] | None = None  # runs under the lock, before the workflow (saves the plan)
    steps: Workflow | None = None
    after: Callable[[ExecutionResult], None] | None = None  # once it succeeded, still under the lock
    diff: Diff | None = None
    request: str | None = None  # what was asked (scale's counts), so a rerun of the same resumes it

    def run(self, options: Options | None = None, listeners: Iterable[Listener] = (),
            interrupt: Interrupt | None = None) -> ExecutionResult:
        return self.orchestrator._execute(self, options, listeners, interrupt)


def _plan_from_json(text: str) -> Plan:
    """A stored plan; the planner is imported when a command first needs one."""
    from orchestrator.plan import Plan

    return Plan.from_json(text)


def _per_host(plan: Plan, template: str) -> int:
    """A template's instances per host instance (its ``instances`` count), as deployed."""
    node = plan.nodes[template]
    hosts = collections.Counter(plan.instances[i].host_id for i in node.instances)
    return max(hosts.values(), default=0)


def _scaling(change: Change, proposal: Proposal, scaled: set[str]) -> bool:
    """Whether a change is what scaling those templates does: their instances (and what they
    contain) come or go; others gain or lose relationships to them."""
    if change.action == "update":
        return not change.properties and not change.relink
    if change.action not in ("create", "delete"):
        return False
    plan = proposal.old_plans.get(change.instance) if change.action == "delete" else proposal.plan
    inst = plan.instances.get(change.instance) if plan is not None else None
    while inst is not None:  # the instance, or a host it stands on, is of a scaled template
        if inst.node in scaled:
            return True
        inst = plan.instances.get(inst.host_id) if inst.host_id else None  # type: ignore[union-attr]
    return False


def _old_plans(diff: Diff, rows: Mapping[str, InstanceRow], version_plan: Callable[[int | None], Plan | None],
               fallback: Plan) -> dict[str, Plan]:
    """Per changed instance that exists, the plan it was installed or updated with."""
    from orchestrator.diff import exists

    result = {}
    for change in diff.changes:
        row = rows.get(change.instance)
        if row is not None and exists(row):
            result[change.instance] = version_plan(row.plan_version) or fallback
    return result


def secret_names_of(plan: Plan) -> set[str]:
    from orchestrator.secrets import secret_names

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
