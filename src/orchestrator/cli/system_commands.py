"""Commands about this installation: plugins, and the remote worker."""

from __future__ import annotations

import os
import sys

import click

from orchestrator.cli import output
from orchestrator.cli.common import get_plugin_manager, handle_errors, json_option


@click.command()
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


@click.group()
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
