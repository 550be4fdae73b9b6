"""Commands that run a workflow on a deployment: install, update, heal, scale, drift, execute, uninstall."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import click

from orchestrator.cli import output
from orchestrator.cli.common import (
    deployment_option,
    execution_options,
    executor_options,
    fail,
    handle_errors,
    inputs_option,
    json_option,
    open_orchestrator,
    read_secrets,
    run_options,
    state_option,
)

if TYPE_CHECKING:
    from orchestrator.deployments import Prepared
    from orchestrator.engine.options import Options
    from orchestrator.engine.results import ExecutionResult


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
            with output.stdout_for_json_only():
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


@click.command()
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
    orch = open_orchestrator(state, state_recover)
    options = run_options()
    prepared = orch.prepare_install(blueprint, inputs, deployment, read_secrets(secrets_file))
    _run_workflow(prepared, options, as_json, debug)


@click.command()
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
    orch = open_orchestrator(state, state_recover)
    options = run_options()
    prepared = orch.prepare_update(blueprint, inputs, deployment, read_secrets(secrets_file))
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
        fail(f"{prepared.workflow} cancelled: nothing was changed", 1)
    _run_workflow(prepared, options, as_json, debug)


@click.command()
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

    orch = open_orchestrator(state, state_recover)
    secrets = read_secrets(secrets_file)
    drifted = None
    if not instances:
        check = orch.prepare_drift(deployment, secrets)
        with signals.stop_requests(Interrupt()):
            found = check.run(run_options(retries=2, retry_interval=0.5))
        if not found.ok:
            fail("heal: check_drift failed: " + "; ".join(map(str, found.failures)), 1)
        drifted = {i: r for i, r in found.results.items() if r is not None}
    prepared = orch.prepare_heal(deployment, instances, drifted, secrets)
    options = run_options()
    _apply(prepared, f"Heal of deployment '{prepared.deployment}'", options, as_json, debug, yes, dry_run)


@click.command()
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
        fail("error: nothing to scale: give TEMPLATE=COUNT, +K or -K, or --remove ID", 2)
    changes: dict[str, str] = {}
    for item in counts:
        template, sep, spec = item.partition("=")
        if not sep or not template or not spec:
            fail(f"error: '{item}' is not TEMPLATE=COUNT, TEMPLATE=+K or TEMPLATE=-K", 2)
        changes[template] = spec
    orch = open_orchestrator(state, state_recover)
    prepared = orch.prepare_scale(deployment, changes, remove, read_secrets(secrets_file))
    options = run_options()
    _apply(prepared, f"Scale of deployment '{prepared.deployment}'", options, as_json, debug, yes, dry_run)


@click.command()
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

    orch = open_orchestrator(state, state_recover)
    prepared = orch.prepare_drift(deployment, read_secrets(secrets_file))
    interrupt = Interrupt()
    with signals.stop_requests(interrupt), output.stdout_for_json_only(as_json):
        result = prepared.run(run_options(concurrency=concurrency, retries=2, retry_interval=0.5), [], interrupt)
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
            click.echo(f"  {output.printable(note)}", err=True)
    if not result.ok or failed:
        sys.exit(1)
    if exit_code and (data["summary"]["drifted"] or data["summary"]["gone"]):
        sys.exit(3)


@click.command()
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
        fail("error: choose instances with --node or with --instance, not both", 2)
    orch = open_orchestrator(state, state_recover)
    prepared = orch.prepare_execute(deployment, operation, params, nodes, instances, read_secrets(secrets_file))
    options = run_options()
    interrupt = Interrupt()
    with signals.stop_requests(interrupt):
        if not as_json and sys.stdout.isatty() and os.environ.get("TERM") != "dumb":
            assert prepared.steps is not None
            with LiveProgress(prepared.steps) as progress:
                result = prepared.run(options, [progress], interrupt)
        else:
            with output.stdout_for_json_only(as_json):
                result = prepared.run(options, [output.stop_notice_listener], interrupt)
    data = output.execute_data(prepared, operation, result)
    if as_json:
        output.echo_json(data)
    else:
        output.print_execute(data, result, debug)
    _exit_after(result)


@click.command()
@deployment_option
@state_option
@json_option
@handle_errors
def operations(deployment: str | None, state: Path | str, state_recover: bool, as_json: bool) -> None:
    """List the custom operations each node template of a deployment offers, with their inputs."""
    orch = open_orchestrator(state, state_recover)
    name, nodes = orch.operations(deployment)
    if as_json:
        output.echo_json({"deployment": name, "nodes": nodes})
    else:
        output.print_operations(name, nodes)


@click.command()
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
    orch = open_orchestrator(state, state_recover)
    options = run_options(ignore_failures=ignore_failures)
    prepared = orch.prepare_uninstall(deployment, read_secrets(secrets_file))
    _run_workflow(prepared, options, as_json, debug)
