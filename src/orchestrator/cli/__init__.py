"""The ``orchestrator`` command: thin wiring over ``orchestrator.deployments``.

Exit codes: 0 success, 1 a workflow failed (or the deployment is busy), 2 bad usage, a
bad blueprint or bad input. Blueprint problems are printed as ``FILE:LINE:COL: message``
with no traceback.
"""

from __future__ import annotations

import functools
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from orchestrator import DISTRIBUTION
from orchestrator.cli import output
from orchestrator.dsl.problems import BlueprintError, Problems
from orchestrator.errors import (
    ExecutorError,
    ExecutorUsageError,
    PluginError,
    StateError,
    StateLockedError,
    StatePathError,
    UsageError,
)
from orchestrator.settings import DEFAULT_OPERATION_TIMEOUT
from orchestrator.state.location import DEFAULT_STATE, display, is_url

# Each command imports what it uses (``output`` is cheap and every command prints): a
# command's start-up is mostly imports, and ``status`` needs neither the engine nor the
# plugins (bench/cli_bench.py).
if TYPE_CHECKING:
    from orchestrator.deployments import Orchestrator, Prepared
    from orchestrator.engine.options import Options
    from orchestrator.engine.results import ExecutionResult
    from orchestrator.plugins import PluginManager


def _fail(message: str, code: int) -> None:
    click.echo(message, err=True)
    sys.exit(code)


def handle_errors(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Known errors become a message and an exit code; tracebacks only with --debug."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except BlueprintError as exc:
            for problem in exc.problems:
                click.echo(str(problem), err=True)
            n = len(exc.problems)
            click.echo(f"{n} problem{'s' if n != 1 else ''} found", err=True)
            sys.exit(2)
        except (UsageError, PluginError, StatePathError) as exc:
            _fail(f"error: {exc}", 2)
        except ExecutorUsageError as exc:
            _fail(f"error: {exc}", 2)
        except (StateLockedError, StateError, ExecutorError) as exc:
            _fail(f"error: {exc}", 1)

    return wrapper


def state_option(fn: Callable[..., Any]) -> Callable[..., Any]:
    fn = click.option("--state-recover", "state_recover", is_flag=True,
                      help="If the state file is damaged, or lost deployments it had, put back the copy taken "
                           "when the last execution started (STATE.backup); the damaged file is kept aside.")(fn)
    return click.option("--state", "state", metavar="PATH|URL", callback=_state_location,
                        default=lambda: os.environ.get("ORCHESTRATOR_STATE", str(DEFAULT_STATE)),
                        show_default=str(DEFAULT_STATE),
                        help="The state: a SQLite file, or a PostgreSQL database as postgresql://USER@HOST/DB "
                             "(password from ~/.pgpass or PGPASSWORD; environment: ORCHESTRATOR_STATE).")(fn)


def _state_location(ctx: click.Context, param: click.Parameter, value: str) -> Path | str:
    """A path stays a path; a ``postgresql://`` URL stays text."""
    return value if is_url(value) else Path(value)


def json_option(fn: Callable[..., Any]) -> Callable[..., Any]:
    return click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")(fn)


def inputs_option(fn: Callable[..., Any]) -> Callable[..., Any]:
    return click.option("-i", "--inputs", "inputs", multiple=True, metavar="KEY=VALUE|FILE",
                        help="Deployment inputs: KEY=VALUE (';'-separated pairs allowed) or a YAML file; "
                             "repeatable.")(fn)


def deployment_option(fn: Callable[..., Any]) -> Callable[..., Any]:
    return click.option("-d", "--deployment", default=None,
                        help="Deployment name (install: defaults to the blueprint's file name; "
                             "other commands: the only deployment in the state).")(fn)


def _remember(ctx: click.Context, param: click.Parameter, value: Any) -> Any:
    ctx.meta[f"orchestrator.{param.name}"] = value
    return value


def executor_options(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Where hook calls run; read by ``_options`` (not passed to each command)."""
    for option in reversed([
        click.option("--executor", type=click.Choice(["local", "celery"]), expose_value=False, callback=_remember,
                     default=lambda: os.environ.get("ORCHESTRATOR_EXECUTOR", "local"), show_default="local",
                     help="Where hook calls run: threads in this process, or 'orchestrator worker' processes "
                          "reached through a Celery broker (environment: ORCHESTRATOR_EXECUTOR)."),
        click.option("--broker", metavar="URL", expose_value=False, callback=_remember,
                     help="With --executor celery: the broker, redis://HOST:PORT/DB or amqp://USER:PASS@HOST// "
                          "(environment: ORCHESTRATOR_BROKER)."),
        click.option("--queue", default="orchestrator", show_default=True, expose_value=False, callback=_remember,
                     help="With --executor celery: the queue the workers consume."),
    ]):
        fn = option(fn)
    return fn


_RUN_OPTIONS = ("concurrency", "retries", "retry_interval", "operation_timeout", "executor", "broker", "queue")


def _options(**overrides: Any) -> Options:
    """The run's options as given on the command line (``execution_options``, ``executor_options``),
    with ``overrides`` (a drift check's own retries, uninstall's ``ignore_failures``)."""
    from orchestrator.engine.options import Options

    meta = click.get_current_context().meta
    given = {name: meta[f"orchestrator.{name}"] for name in _RUN_OPTIONS
             if meta.get(f"orchestrator.{name}") is not None}
    return Options(**{**given, **overrides})


def execution_options(fn: Callable[..., Any]) -> Callable[..., Any]:
    """How a workflow runs (read by ``_options``), its secrets and ``--debug`` (passed to the command)."""
    fn = executor_options(fn)
    for option in reversed([
        click.option("--concurrency", default=10, show_default=True, type=click.IntRange(min=1),
                     expose_value=False, callback=_remember, help="Node instances worked on at once."),
        click.option("--retries", default=5, show_default=True, type=click.IntRange(min=0), expose_value=False,
                     callback=_remember, help="Retries of a failing operation before the workflow fails."),
        click.option("--retry-interval", default=1.0, show_default=True, type=click.FloatRange(min=0),
                     expose_value=False, callback=_remember,
                     help="First backoff in seconds; doubles each retry (capped at 30s)."),
        click.option("--operation-timeout", default=DEFAULT_OPERATION_TIMEOUT, show_default=True,
                     type=click.FloatRange(min=0, min_open=True), metavar="SECONDS", expose_value=False,
                     callback=_remember,
                     help="A hook call that takes longer fails as 'timed out' (retried per --retries); "
                          "a node template's operation_timeout overrides it."),
        click.option("--secrets", "secrets_file", type=click.Path(exists=True, dir_okay=False), default=None,
                     help="YAML file of secrets for get_secret (environment: ORCHESTRATOR_SECRET_<NAME>, "
                          "which wins). Values are masked in events, logs, trace and output. A value shorter "
                          "than 3 characters cannot be masked (using one prints a warning naming the secret), "
                          "nor can a line that short of a multi-line value."),
        click.option("--debug", is_flag=True, help="Show tracebacks of failed operations."),
    ]):
        fn = option(fn)
    return fn


def get_plugin_manager() -> PluginManager:
    """Every installed plugin (a seam: tests put their own plugins here)."""
    from orchestrator.plugins import get_plugin_manager as discover

    return discover()


def _orchestrator(state: Path | str | None = None, recover: bool = False, plugins: bool = True) -> Orchestrator:
    """With ``plugins=False`` (queries of the state) no plugin is imported unless one is needed."""
    from orchestrator.deployments import Orchestrator

    orch = Orchestrator(pm=get_plugin_manager() if plugins else None, state_path=state or DEFAULT_STATE,
                        recover=recover, discover=plugins)
    if plugins:
        for error in orch.pm.load_errors:
            click.echo(f"{'error' if error.fatal else 'warning'}: {error}", err=True)
    if recover:  # recover now, and say so before anything else
        store = orch.store
        click.echo(f"warning: {store.recovered}" if store.recovered else
                   f"--state-recover: {display(orch.state_path)} is healthy; nothing to recover", err=True)
    return orch


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name=DISTRIBUTION)
def cli() -> None:
    """Install and uninstall cloud applications described by YAML blueprints."""


@cli.command()
@click.argument("blueprint", type=click.Path(dir_okay=False))
@inputs_option
@json_option
@handle_errors
def validate(blueprint: str, inputs: tuple[str, ...], as_json: bool) -> None:
    """Check a blueprint and its inputs; print every problem."""
    orch = _orchestrator()
    bp = orch.load(blueprint, inputs)
    count = sum(t.instances for t in bp.templates.values())
    if as_json:
        output.echo_json({"valid": True, "node_templates": len(bp.templates), "inputs": sorted(bp.inputs)})
    else:
        click.echo(f"{bp.display}: valid ({len(bp.templates)} node templates, {count} top-level instances)")


@cli.command()
@click.argument("blueprint", type=click.Path(dir_okay=False))
@inputs_option
@click.option("-d", "--deployment", default=None,
              help="Compare with this deployment: what update would create, update, replace and delete.")
@state_option
@json_option
@handle_errors
def plan(blueprint: str, inputs: tuple[str, ...], deployment: str | None, state: Path | str, state_recover: bool,
         as_json: bool) -> None:
    """Show what install would do, in order; with -d, what update would change in a deployment.

    \b
    Examples:
      orchestrator plan blueprint.yaml -i replicas=3
      orchestrator plan blueprint.yaml -d web --json
    """
    from orchestrator.engine.dispatch import Dispatcher

    orch = _orchestrator(state, state_recover)
    if deployment is not None:
        from orchestrator.cli import diffview

        proposal = orch.propose(blueprint, inputs, deployment)
        if as_json:
            output.echo_json(diffview.diff_data(proposal.diff, blueprint))
        else:
            diffview.print_diff(proposal.diff, blueprint)
        return
    the_plan = orch.plan(blueprint, inputs)
    dispatcher = Dispatcher(orch.pm)
    available = set(orch.pm.type_owner.values()) | {None}
    data = output.plan_data(
        the_plan, lambda owner, op: owner in available and dispatcher.caller(owner, op) is not None)
    if as_json:
        output.echo_json(data)
    else:
        output.print_plan(data, blueprint)


def _run_workflow(prepared: Prepared, options: Options, as_json: bool, debug: bool) -> None:
    """JSON lines with --json; a live view on a terminal; otherwise one plain line per event.

    SIGINT and SIGTERM ask the run to stop (the running hooks finish); a second one
    abandons the running hooks. Either way the execution is recorded and its lock released.
    """
    from orchestrator.cli import signals
    from orchestrator.cli.progress import LiveProgress
    from orchestrator.engine.interrupt import Interrupt

    interrupt = Interrupt()
    say = output.stop_notice_listener
    with signals.stop_requests(interrupt):
        if as_json:
            result = prepared.run(options, [output.json_listener, say], interrupt)
        elif sys.stdout.isatty() and os.environ.get("TERM") != "dumb":
            assert prepared.steps is not None
            with LiveProgress(prepared.steps) as progress:
                result = prepared.run(options, [progress], interrupt)
        else:
            result = prepared.run(options, [output.plain_listener, say], interrupt)
    if not as_json:
        output.print_summary(result, debug)
    _exit_after(result)


def _exit_after(result: ExecutionResult) -> None:
    """Exit 1 unless the run succeeded; with hooks left running (abandoned, timed out), at once."""
    code = 0 if result.ok else 1
    if result.abandoned or any("timed out" in f.message for f in result.failures):
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)  # hung hooks live in daemon threads; nothing of theirs is recorded any more
    if code:
        sys.exit(code)


def _secrets(path: str | None) -> Any:
    from orchestrator.secrets import load_secrets

    problems = Problems()
    secrets = load_secrets(path, problems)
    problems.raise_if_any()
    return secrets


@cli.command()
@click.argument("blueprint", type=click.Path(dir_okay=False))
@inputs_option
@deployment_option
@execution_options
@state_option
@json_option
@handle_errors
def install(blueprint: str, inputs: tuple[str, ...], deployment: str | None, secrets_file: str | None, debug: bool,
            state: Path | str, state_recover: bool, as_json: bool) -> None:
    """Create, configure and start every node instance; rerun to resume after a failure.

    \b
    Example:
      orchestrator install blueprint.yaml -i region=eu-west-1 --operation-timeout 600
    """
    orch = _orchestrator(state, state_recover)
    options = _options()
    prepared = orch.prepare_install(blueprint, inputs, deployment, _secrets(secrets_file))
    _run_workflow(prepared, options, as_json, debug)


@cli.command()
@click.argument("blueprint", type=click.Path(dir_okay=False))
@inputs_option
@click.option("-d", "--deployment", required=True, help="The deployment to change.")
@execution_options
@click.option("-y", "--yes", is_flag=True, help="Do not ask before deleting or replacing instances (on a terminal).")
@state_option
@json_option
@handle_errors
def update(blueprint: str, inputs: tuple[str, ...], deployment: str, secrets_file: str | None, debug: bool, yes: bool,
           state: Path | str, state_recover: bool, as_json: bool) -> None:
    """Apply a changed blueprint (or inputs) to a deployment; rerun to resume.

    Shows the diff first (as 'plan -d'), then: removals dependents first, then additions,
    in-place updates (the plugin's update hook) and replacements targets first. On a
    terminal it asks before deleting or replacing anything, unless --yes.

    \b
    Example:
      orchestrator update blueprint.yaml -d web -i replicas=3
    """
    orch = _orchestrator(state, state_recover)
    options = _options()
    prepared = orch.prepare_update(blueprint, inputs, deployment, _secrets(secrets_file))
    _apply(prepared, f"Plan for {blueprint} against deployment '{prepared.deployment}'", options, as_json, debug,
           yes)


def _apply(prepared: Prepared, title: str, options: Options, as_json: bool, debug: bool, yes: bool,
           dry_run: bool = False) -> None:
    """Show what a day-2 workflow will do; on a terminal, ask before deleting or replacing; run it."""
    from orchestrator.cli import diffview

    assert prepared.diff is not None
    if as_json and dry_run:
        output.echo_json(diffview.diff_data(prepared.diff, ""))
        return
    if not as_json:
        diffview.print_diff(prepared.diff, "", title=title)
        if dry_run:
            return
        click.echo()
    counts = prepared.diff.counts()
    destructive = (counts["delete"] or counts["replace"]) and not yes and not as_json
    if destructive and sys.stdin.isatty() and not click.confirm(
            f"Delete {counts['delete']} and replace {counts['replace']} instances?", default=False):
        _fail(f"{prepared.workflow} cancelled: nothing was changed", 1)
    _run_workflow(prepared, options, as_json, debug)


@cli.command()
@deployment_option
@click.option("--instance", "instances", multiple=True, metavar="ID",
              help="Heal this instance (repeatable); default: every failed, drifted or gone one.")
@click.option("--dry-run", is_flag=True, help="Only show what would be reinstalled.")
@click.option("-y", "--yes", is_flag=True, help="Do not ask before reinstalling (on a terminal).")
@execution_options
@state_option
@json_option
@handle_errors
def heal(deployment: str | None, instances: tuple[str, ...], dry_run: bool, yes: bool, secrets_file: str | None,
         debug: bool, state: Path | str, state_recover: bool, as_json: bool) -> None:
    """Reinstall failed, gone or drifted instances (and what they contain); nothing else is touched.

    Without --instance, check_drift runs first on every started instance. Each instance to
    heal is uninstalled and installed again with its planned properties, with what is
    contained in it; its neighbours re-run their relationship hooks toward it.

    \b
    Examples:
      orchestrator heal -d web --dry-run
      orchestrator heal -d web --instance vm_0
    """
    from orchestrator.cli import signals
    from orchestrator.engine.interrupt import Interrupt

    orch = _orchestrator(state, state_recover)
    secrets = _secrets(secrets_file)
    drifted = None
    if not instances:
        check = orch.prepare_drift(deployment, secrets)
        with signals.stop_requests(Interrupt()):
            found = check.run(_options(retries=2, retry_interval=0.5))
        if not found.ok:
            _fail("heal: check_drift failed: " + "; ".join(map(str, found.failures)), 1)
        drifted = {i: r for i, r in found.results.items() if r is not None}
    prepared = orch.prepare_heal(deployment, instances, drifted, secrets)
    options = _options()
    _apply(prepared, f"Heal of deployment '{prepared.deployment}'", options, as_json, debug, yes, dry_run)


@cli.command()
@deployment_option
@click.argument("counts", nargs=-1, metavar="TEMPLATE=COUNT|+K|-K...")
@click.option("--remove", "remove", multiple=True, metavar="ID",
              help="Remove this instance (repeatable); else the newest go first.")
@click.option("--dry-run", is_flag=True, help="Only show what would be added and removed.")
@click.option("-y", "--yes", is_flag=True, help="Do not ask before removing instances (on a terminal).")
@execution_options
@state_option
@json_option
@handle_errors
def scale(deployment: str | None, counts: tuple[str, ...], remove: tuple[str, ...], dry_run: bool, yes: bool,
          secrets_file: str | None, debug: bool, state: Path | str, state_recover: bool, as_json: bool) -> None:
    """Add or remove instances of node templates (with what they contain and their relationships).

    COUNT is per host instance for a template contained in another (like 'instances' in the
    blueprint). The deployment's blueprint is read again, with its inputs; the count holds
    until the next update, which applies the blueprint's own count (plan -d shows it).

    \b
    Examples:
      orchestrator scale -d web app=3
      orchestrator scale -d web app=+1 db=-1
      orchestrator scale -d web --remove app_2
    """
    if not counts and not remove:
        _fail("error: nothing to scale: give TEMPLATE=COUNT, +K or -K, or --remove ID", 2)
    changes: dict[str, str] = {}
    for item in counts:
        template, sep, spec = item.partition("=")
        if not sep or not template or not spec:
            _fail(f"error: '{item}' is not TEMPLATE=COUNT, TEMPLATE=+K or TEMPLATE=-K", 2)
        changes[template] = spec
    orch = _orchestrator(state, state_recover)
    prepared = orch.prepare_scale(deployment, changes, remove, _secrets(secrets_file))
    options = _options()
    _apply(prepared, f"Scale of deployment '{prepared.deployment}'", options, as_json, debug, yes, dry_run)


@cli.command()
@deployment_option
@click.option("--exit-code", is_flag=True, help="Exit 3 when an instance drifted or is gone (for CI).")
@click.option("--concurrency", default=10, show_default=True, type=click.IntRange(min=1),
              help="Instances checked at once.")
@click.option("--secrets", "secrets_file", type=click.Path(exists=True, dir_okay=False), default=None,
              help="YAML file of secrets for get_secret (environment: ORCHESTRATOR_SECRET_<NAME>).")
@executor_options
@state_option
@json_option
@handle_errors
def drift(deployment: str | None, exit_code: bool, concurrency: int, secrets_file: str | None, state: Path | str,
          state_recover: bool, as_json: bool) -> None:
    """Check whether the real resources still match the deployment (check_drift of each started instance).

    Changes nothing. Each instance is in sync, drifted (what differs) or gone.

    \b
    Example:
      orchestrator drift -d web --exit-code
    """
    from orchestrator.cli import diffview, signals
    from orchestrator.engine.interrupt import Interrupt

    orch = _orchestrator(state, state_recover)
    prepared = orch.prepare_drift(deployment, _secrets(secrets_file))
    interrupt = Interrupt()
    with signals.stop_requests(interrupt):
        result = prepared.run(_options(concurrency=concurrency, retries=2, retry_interval=0.5), [], interrupt)
    checked, failed = [], []
    plan = prepared.plan
    failed_ids = {f.instance for f in result.failures}
    steps = prepared.steps
    assert steps is not None
    for iid in steps.phases[0].instances():
        if iid in failed_ids:
            continue
        node = plan.nodes[plan.instances[iid].node]
        found = result.results.get(iid)
        item = {"instance": iid, "node": node.name, "type": node.type, "status": diffview.drift_status(found)}
        if found is not None:
            item["differences"] = found if isinstance(found, dict) else {"gone": True}
        checked.append(item)
    failed = [f for f in result.failures if f.operation == "check_drift"]
    data = diffview.drift_data(prepared.deployment, checked, failed)
    if as_json:
        output.echo_json(data)
    else:
        diffview.print_drift(data)
        for note in result.notes:
            click.echo(f"  {note}", err=True)
    if not result.ok or failed:
        sys.exit(1)
    if exit_code and (data["summary"]["drifted"] or data["summary"]["gone"]):
        sys.exit(3)


@cli.command()
@deployment_option
@click.argument("operation")
@click.option("--node", "nodes", multiple=True, metavar="TEMPLATE",
              help="Only the instances of this node template (repeatable).")
@click.option("--instance", "instances", multiple=True, metavar="ID", help="Only this instance (repeatable).")
@click.option("-p", "--param", "params", multiple=True, metavar="KEY=VALUE|FILE",
              help="The operation's inputs: KEY=VALUE (';'-separated pairs allowed) or a YAML file; repeatable.")
@execution_options
@state_option
@json_option
@handle_errors
def execute(deployment: str | None, operation: str, nodes: tuple[str, ...], instances: tuple[str, ...],
            params: tuple[str, ...], secrets_file: str | None, debug: bool, state: Path | str, state_recover: bool,
            as_json: bool) -> None:
    """Run a custom operation a plugin declares (see 'orchestrator operations') on started instances.

    Every started instance that offers OPERATION runs it, in parallel, unless --node or
    --instance choose. Its inputs are checked against the declared schema before anything
    runs. Each instance's result is printed and kept as an event. Exits 1 if one failed.

    \b
    Examples:
      orchestrator execute -d web reboot --node vm
      orchestrator execute -d web logs --instance app_0 -p tail=20
      orchestrator execute -d web exec -p 'command=[sh, -c, "df -h"]' --json
    """
    from orchestrator.cli import signals
    from orchestrator.cli.progress import LiveProgress
    from orchestrator.engine.interrupt import Interrupt

    if nodes and instances:
        _fail("error: choose instances with --node or with --instance, not both", 2)
    orch = _orchestrator(state, state_recover)
    prepared = orch.prepare_execute(deployment, operation, params, nodes, instances, _secrets(secrets_file))
    options = _options()
    interrupt = Interrupt()
    with signals.stop_requests(interrupt):
        if not as_json and sys.stdout.isatty() and os.environ.get("TERM") != "dumb":
            assert prepared.steps is not None
            with LiveProgress(prepared.steps) as progress:
                result = prepared.run(options, [progress], interrupt)
        else:
            result = prepared.run(options, [output.stop_notice_listener], interrupt)
    data = output.execute_data(prepared, operation, result)
    if as_json:
        output.echo_json(data)
    else:
        output.print_execute(data, result, debug)
    _exit_after(result)


@cli.command()
@deployment_option
@state_option
@json_option
@handle_errors
def operations(deployment: str | None, state: Path | str, state_recover: bool, as_json: bool) -> None:
    """List the custom operations each node template of a deployment offers, with their inputs."""
    orch = _orchestrator(state, state_recover)
    name, nodes = orch.operations(deployment)
    if as_json:
        output.echo_json({"deployment": name, "nodes": nodes})
    else:
        output.print_operations(name, nodes)


@cli.command()
@deployment_option
@execution_options
@click.option("--ignore-failures", is_flag=True,
              help="Go on past failing stop/delete operations (after their retries) and uninstall everything "
                   "else; the summary and 'status' list what may have been left behind.")
@state_option
@json_option
@handle_errors
def uninstall(deployment: str | None, secrets_file: str | None, debug: bool, ignore_failures: bool,
              state: Path | str, state_recover: bool, as_json: bool) -> None:
    """Stop and delete every node instance, dependents before their targets.

    \b
    Example:
      orchestrator uninstall -d web --ignore-failures --retries 1
    """
    orch = _orchestrator(state, state_recover)
    options = _options(ignore_failures=ignore_failures)
    prepared = orch.prepare_uninstall(deployment, _secrets(secrets_file))
    _run_workflow(prepared, options, as_json, debug)


@cli.command()
@click.option("-d", "--deployment", required=True, help="The deployment whose lock to clear.")
@click.option("--force", is_flag=True,
              help="Clear it even while its holder's lease is live (that execution stops at its next write).")
@state_option
@json_option
@handle_errors
def unlock(deployment: str, force: bool, state: Path | str, state_recover: bool, as_json: bool) -> None:
    """Clear a deployment's lock left by an execution that cannot finish.

    A lock is a lease its execution renews while it runs (ORCHESTRATOR_LOCK_LEASE seconds,
    default 60). It is taken over without this command once the lease expired, or at once
    when its process ran on this host and is gone. unlock refuses a live lease unless
    --force is given, and says whose lock it was.

    \b
    Example:
      orchestrator unlock -d web
    """
    orch = _orchestrator(state, state_recover, plugins=False)
    lock, why = orch.unlock(deployment, force)
    if as_json:
        output.echo_json({"deployment": deployment, "cleared": lock is not None,
                          "lock": None if lock is None else output.lock_data(lock),
                          "reason": why or ("forced" if lock is not None else None)})
        return
    if lock is None:
        click.echo(f"deployment '{deployment}' is not locked")
        return
    click.echo(f"cleared the lock of {lock.describe()} ({why or 'forced while its lease was live'}); "
               f"execution {lock.execution} is marked interrupted")


@cli.command()
@deployment_option
@state_option
@json_option
@handle_errors
def status(deployment: str | None, state: Path | str, state_recover: bool, as_json: bool) -> None:
    """List node instances and their states (with the error of failed ones)."""
    orch = _orchestrator(state, state_recover, plugins=False)
    row, items = orch.instance_states(deployment)
    lock = orch.reader.lock(row.id)
    if as_json:
        output.echo_json({"deployment": row.id, "blueprint": row.blueprint, "instances": items,
                          "locked_by": output.lock_data(lock) if lock else None, "left_behind": row.leftovers})
        return
    click.echo(f"deployment '{row.id}' ({row.blueprint})")
    if lock is not None:
        click.echo(f"  locked by {lock.describe()}")
    width = max((len(i["instance"]) for i in items), default=8)
    for item in items:
        error = f"  {item['error']}" if "error" in item else ""
        click.echo(f"  {item['instance']:<{width}}  {item['state']:<13}  {item['type']}{error}")
    if row.leftovers:
        click.echo(f"warning: an uninstall with --ignore-failures may have left {len(row.leftovers)} "
                   f"resource{'s' if len(row.leftovers) != 1 else ''} behind:", err=True)
        for left in row.leftovers:
            click.echo(f"  {left['instance']}: {left['operation']} ({left['plugin'] or 'no plugin'}) failed: "
                       f"{left['message']}", err=True)


@cli.command()
@deployment_option
@click.option("--secrets", "secrets_file", type=click.Path(exists=True, dir_okay=False), default=None,
              help="YAML file of secrets for get_secret (environment: ORCHESTRATOR_SECRET_<NAME>, which wins). "
                   "A secret not set reads <secret:NAME unavailable>; a secret set is also masked where a "
                   "plugin copied its value into a runtime property.")
@click.option("--show-secrets", is_flag=True,
              help="Print secret values. Without it an output that is one secret reads <secret:NAME>, a "
                   "secret inside a longer text is masked (******), and a secret that is not set reads "
                   "<secret:NAME unavailable>.")
@state_option
@json_option
@handle_errors
def outputs(deployment: str | None, secrets_file: str | None, show_secrets: bool, state: Path | str,
            state_recover: bool, as_json: bool) -> None:
    """Show the blueprint's outputs, resolved against the deployment's runtime properties."""
    orch = _orchestrator(state, state_recover, plugins=False)
    values = orch.outputs(deployment, _secrets(secrets_file), show_secrets=show_secrets)
    if as_json:
        output.echo_json(values)
        return
    for name, value in values.items():
        click.echo(f"{name}: {value}")


@cli.command()
@deployment_option
@state_option
@json_option
@handle_errors
def events(deployment: str | None, state: Path | str, state_recover: bool, as_json: bool) -> None:
    """Show the deployment's events: operations, retries, failures and plugin logs."""
    orch = _orchestrator(state, state_recover, plugins=False)
    rows = orch.events(deployment)
    if as_json:
        for e in rows:
            click.echo(output.json.dumps(e.as_dict(), default=str))
        return
    for e in rows:
        click.echo(output.format_event(e))


@cli.command()
@click.argument("blueprint", type=click.Path(dir_okay=False))
@inputs_option
@click.option("--format", "fmt", type=click.Choice(["mermaid", "dot"]), default="mermaid", show_default=True)
@handle_errors
def graph(blueprint: str, inputs: tuple[str, ...], fmt: str) -> None:
    """Draw the blueprint's node templates and relationships (Mermaid or Graphviz DOT)."""
    from orchestrator.graph import to_dot, to_mermaid

    bp = _orchestrator().load(blueprint, inputs)
    click.echo(to_mermaid(bp) if fmt == "mermaid" else to_dot(bp), nl=False)


@cli.command()
@click.option("--broker", metavar="URL", default=lambda: os.environ.get("ORCHESTRATOR_BROKER"),
              help="The Celery broker: redis://HOST:PORT/DB or amqp://USER:PASS@HOST// (environment: "
                   "ORCHESTRATOR_BROKER).")
@click.option("--concurrency", default=10, show_default=True, type=click.IntRange(min=1),
              help="Operations run at once (threads).")
@click.option("--queues", default="orchestrator", show_default=True, metavar="NAME[,NAME...]",
              help="The queues to consume (the CLI's --queue).")
@click.option("--state", "state", metavar="PATH|URL", default=lambda: os.environ.get("ORCHESTRATOR_STATE"),
              help="Use this state whatever the CLI says (default: the one each operation names; environment: "
                   "ORCHESTRATOR_STATE).")
@click.option("--name", default=None, help="The worker's name (default: HOST:PID).")
@handle_errors
def worker(broker: str | None, concurrency: int, queues: str, state: str | None, name: str | None) -> None:
    """Run hook calls sent by 'orchestrator ... --executor celery' (a Celery worker with the installed plugins).

    \b
    Example:
      orchestrator worker --broker redis://127.0.0.1:6379/0 --concurrency 20
    """
    from orchestrator.remote.serve import serve

    serve(broker, concurrency, queues, state, name)


@cli.group()
def plugins() -> None:
    """Inspect the plugins found through the 'orchestrator.plugins' entry points."""


@plugins.command("list")
@json_option
def plugins_list(as_json: bool) -> None:
    """Every discovered plugin: distribution, version, types, hooks, and load errors.

    Exits 1 when a plugin failed to load (warnings do not count).
    """
    from orchestrator.operations import Catalogue, describe
    from orchestrator.plugins import near_miss_entry_points

    pm = get_plugin_manager()
    pm.load_errors.extend(near_miss_entry_points())
    infos = pm.plugin_infos()
    declared = Catalogue(pm).node_types
    operations = {i.name: {t: [describe(op) for op in declared[t].own_operations.values()]
                           for t in i.types if t in declared and declared[t].own_operations} for i in infos}
    failed = any(e.fatal for e in pm.load_errors)
    if as_json:
        output.echo_json({
            "plugins": [{"name": i.name, "distribution": i.distribution, "version": i.version,
                         "module": i.module, "types": i.types, "hooks": i.hooks, "wrappers": i.wrappers,
                         "operations": operations[i.name]}
                        for i in infos],
            "errors": [{"plugin": e.plugin, "distribution": e.distribution, "version": e.version,
                        "error": e.error, "fatal": e.fatal} for e in pm.load_errors],
        })
        sys.exit(1 if failed else 0)
    for i in infos:
        dist = f"{i.distribution} {i.version}" if i.distribution else "(registered directly)"
        click.echo(f"{i.name}  [{dist}]  module {i.module}")
        if i.types:
            click.echo(f"  types:    {', '.join(i.types)}")
        if i.hooks:
            click.echo(f"  hooks:    {', '.join(i.hooks)}")
        for type_name, ops in operations[i.name].items():
            click.echo(f"  operations of {type_name}: {', '.join(op['name'] for op in ops)}")
        if i.wrappers:
            click.echo(f"  wrappers: {', '.join(i.wrappers)}")
    for e in pm.load_errors:
        click.echo(f"{'error' if e.fatal else 'warning'}: {e}", err=True)
    sys.exit(1 if failed else 0)


def main() -> None:
    try:
        cli(prog_name="orchestrator")
    except KeyboardInterrupt:  # Ctrl+C outside a workflow (loading, planning): nothing was written
        click.echo("interrupted", err=True)
        sys.exit(130)
