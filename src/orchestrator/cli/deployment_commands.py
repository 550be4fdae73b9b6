"""Commands that read or repair a deployment's state: status, outputs, events, unlock."""

from __future__ import annotations

from pathlib import Path

import click

from orchestrator.cli import output
from orchestrator.cli.common import (
    deployment_option,
    handle_errors,
    json_option,
    open_orchestrator,
    read_secrets,
    state_option,
)


@click.command()
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
    orch = open_orchestrator(state, state_recover, plugins=False)
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


@click.command()
@deployment_option
@state_option
@json_option
@handle_errors
def status(deployment: str | None, state: Path | str, state_recover: bool, as_json: bool) -> None:
    """List node instances and their states (with the error of failed ones)."""
    orch = open_orchestrator(state, state_recover, plugins=False)
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
        error = f"  {output.printable(str(item['error']))}" if "error" in item else ""
        click.echo(f"  {item['instance']:<{width}}  {item['state']:<13}  {item['type']}{error}")
    if row.leftovers:
        click.echo(f"warning: an uninstall with --ignore-failures may have left {len(row.leftovers)} "
                   f"resource{'s' if len(row.leftovers) != 1 else ''} behind:", err=True)
        for left in row.leftovers:
            click.echo(f"  {left['instance']}: {left['operation']} ({left['plugin'] or 'no plugin'}) failed: "
                       f"{output.printable(str(left['message']))}", err=True)


@click.command()
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
    orch = open_orchestrator(state, state_recover, plugins=False)
    values = orch.outputs(deployment, read_secrets(secrets_file), show_secrets=show_secrets)
    if as_json:
        output.echo_json(values)
        return
    for name, value in values.items():
        click.echo(f"{name}: {output.printable(str(value))}")


@click.command()
@deployment_option
@state_option
@json_option
@handle_errors
def events(deployment: str | None, state: Path | str, state_recover: bool, as_json: bool) -> None:
    """Show the deployment's events: operations, retries, failures and plugin logs."""
    orch = open_orchestrator(state, state_recover, plugins=False)
    rows = orch.events(deployment)
    if as_json:
        for e in rows:
            click.echo(output.json.dumps(e.as_dict(), default=str))
        return
    for e in rows:
        click.echo(output.format_event(e))
