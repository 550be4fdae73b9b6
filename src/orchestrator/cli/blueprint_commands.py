"""Commands that read a blueprint: validate, plan, graph."""

from __future__ import annotations

from pathlib import Path

import click

from orchestrator.cli import output
from orchestrator.cli.common import (
    handle_errors,
    inputs_option,
    json_option,
    open_orchestrator,
    state_option,
)
from orchestrator.dsl.problems import BlueprintError


@click.command()
@click.argument("blueprint", type=click.Path(dir_okay=False))
@inputs_option
@json_option
@handle_errors
def validate(blueprint: str, inputs: tuple[str, ...], as_json: bool) -> None:
    """Check a blueprint and its inputs; print every problem."""
    orch = open_orchestrator()
    try:
        bp = orch.load(blueprint, inputs)
    except BlueprintError as exc:
        if as_json:  # the problems as data too (stderr still says them, and the exit status is 2)
            output.echo_json({"valid": False, "problems": [
                {"file": p.mark.file, "line": p.mark.line, "column": p.mark.column, "message": p.message}
                for p in exc.problems]})
        raise
    count = sum(t.instances for t in bp.templates.values())
    if as_json:
        output.echo_json({"valid": True, "node_templates": len(bp.templates), "inputs": sorted(bp.inputs)})
    else:
        click.echo(f"{bp.display}: valid ({len(bp.templates)} node templates, {count} top-level instances)")


@click.command()
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
    orch = open_orchestrator(state, state_recover)
    if deployment is not None:
        from orchestrator.cli import diffview

        proposal = orch.propose(blueprint, inputs, deployment)
        if as_json:
            output.echo_json(diffview.diff_data(proposal.diff, blueprint))
        else:
            diffview.print_diff(proposal.diff, blueprint)
        return
    the_plan = orch.plan(blueprint, inputs)
    data = output.plan_data(the_plan, orch.pm.implements)  # from what the index knows: imports no plugin
    if as_json:
        output.echo_json(data)
    else:
        output.print_plan(data, blueprint)


@click.command()
@click.argument("blueprint", type=click.Path(dir_okay=False))
@inputs_option
@click.option("--format", "fmt", type=click.Choice(["mermaid", "dot"]), default="mermaid", show_default=True)
@handle_errors
def graph(blueprint: str, inputs: tuple[str, ...], fmt: str) -> None:
    """Draw the blueprint's node templates and relationships (Mermaid or Graphviz DOT)."""
    from orchestrator.graph import to_dot, to_mermaid

    bp = open_orchestrator().load(blueprint, inputs)
    click.echo(to_mermaid(bp) if fmt == "mermaid" else to_dot(bp), nl=False)
