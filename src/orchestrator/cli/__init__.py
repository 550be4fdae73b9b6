"""The ``orchestrator`` command: thin wiring over ``orchestrator.deployments``.

Exit codes: 0 success, 1 a workflow failed (or the deployment is busy), 2 bad usage, a
bad blueprint or bad input. Blueprint problems are printed as ``FILE:LINE:COL: message``
with no traceback.

A command's start-up is mostly imports (``bench/cli_bench.py``), so each command imports
what it uses, and the commands themselves live in four modules imported only for the
command that runs (click's "lazily loading subcommands" pattern): building every
command's options costs ~5 ms, a tenth of what ``plan`` may spend beyond Python and click.
"""

from __future__ import annotations

import importlib
import sys

import click

from orchestrator import DISTRIBUTION

# command -> the module of this package defining it (a function of the same name)
COMMANDS = {
    **dict.fromkeys(("validate", "plan", "graph"), "blueprint_commands"),
    **dict.fromkeys(("install", "update", "heal", "scale", "drift", "execute", "operations", "uninstall"),
                    "workflow_commands"),
    **dict.fromkeys(("status", "outputs", "events", "unlock"), "deployment_commands"),
    **dict.fromkeys(("plugins", "worker"), "system_commands"),
}


class _LazyGroup(click.Group):
    """A group whose commands are imported when asked for (running one, ``--help`` listing all)."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*COMMANDS, *self.commands})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        module = COMMANDS.get(cmd_name)
        if module is None:
            return super().get_command(ctx, cmd_name)
        command = getattr(importlib.import_module(f"{__name__}.{module}"), cmd_name)
        assert isinstance(command, click.Command), cmd_name
        return command


@click.group(cls=_LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name=DISTRIBUTION)
def cli() -> None:
    """Install and uninstall cloud applications described by YAML blueprints."""


def main() -> None:
    try:
        cli(prog_name="orchestrator")
    except KeyboardInterrupt:  # Ctrl+C outside a workflow (loading, planning): nothing was written
        click.echo("interrupted", err=True)
        sys.exit(130)
