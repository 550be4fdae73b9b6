"""What every command shares: error handling, common options, building the orchestrator."""

from __future__ import annotations

import functools
import json
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from orchestrator.dsl.problems import BlueprintError, Problems
from orchestrator.errors import (
    DamagedValue,
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

if TYPE_CHECKING:
    from orchestrator.deployments import Orchestrator
    from orchestrator.engine.options import Options
    from orchestrator.plugins import PluginManager


def fail(message: str, code: int) -> None:
    click.echo(message, err=True)
    sys.exit(code)


def handle_errors(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Known errors become a message and an exit code; tracebacks only with --debug (or
    ``ORCHESTRATOR_DEBUG=1``), whatever went wrong."""

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
            fail(f"error: {exc}", 2)
        except ExecutorUsageError as exc:
            fail(f"error: {exc}", 2)
        except (StateLockedError, StateError, ExecutorError) as exc:
            fail(f"error: {exc}", 1)
        except (json.JSONDecodeError, UnicodeDecodeError, DamagedValue) as exc:  # a stored value read past the store
            fail(f"error: {_damaged(exc)}", 1)
        except (click.ClickException, click.exceptions.Abort, click.exceptions.Exit):
            raise
        except Exception as exc:
            ctx = click.get_current_context(silent=True)
            if os.environ.get("ORCHESTRATOR_DEBUG") or (ctx is not None and ctx.params.get("debug")):
                raise
            fail(f"error: {_unexpected(exc)}", 1)

    return wrapper


def _unexpected(exc: Exception) -> str:
    """One line for an error nothing expected: a state file damaged in a way SQLite's own check
    finds (pages moved, say), else a bug, with where it happened."""
    from orchestrator.state.safety import passes_quick_check
    from orchestrator.state.sqlite import damaged_message

    state = _command_state()
    what = f"{type(exc).__name__}: {exc}"
    if isinstance(state, Path) and state.is_file() and not passes_quick_check(state):
        return damaged_message(state, f"SQLite's check fails; the command stopped on {what}")
    frame = exc.__traceback__
    while frame is not None and frame.tb_next is not None:
        frame = frame.tb_next
    where = f" at {Path(frame.tb_frame.f_code.co_filename).name}:{frame.tb_lineno}" if frame is not None else ""
    return (f"internal error ({what}{where}); this is a bug: please report it with what the same command "
            f"prints with ORCHESTRATOR_DEBUG=1")


def _damaged(exc: ValueError) -> str:
    """A value read from the state that cannot be what we wrote: the state file is damaged."""
    from orchestrator.state.sqlite import explain

    state = _command_state()
    if isinstance(state, Path):
        return str(explain(state, exc))
    where = f" {display(state)}" if state else ""
    return f"the state{where} holds a damaged value ({exc})"


def _command_state() -> Path | str | None:
    """The ``--state`` of the command running (None for a command without one)."""
    ctx = click.get_current_context(silent=True)
    return ctx.params.get("state") if ctx is not None else None


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
    """Where hook calls run; read by ``run_options`` (not passed to each command)."""
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


def run_options(**overrides: Any) -> Options:
    """The run's options as given on the command line (``execution_options``, ``executor_options``),
    with ``overrides`` (a drift check's own retries, uninstall's ``ignore_failures``)."""
    from orchestrator.engine.options import Options

    meta = click.get_current_context().meta
    given = {name: meta[f"orchestrator.{name}"] for name in _RUN_OPTIONS
             if meta.get(f"orchestrator.{name}") is not None}
    return Options(**{**given, **overrides})


def execution_options(fn: Callable[..., Any]) -> Callable[..., Any]:
    """How a workflow runs (read by ``run_options``), its secrets and ``--debug`` (passed to the command)."""
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


def open_orchestrator(state: Path | str | None = None, recover: bool = False, plugins: bool = True) -> Orchestrator:
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

def read_secrets(path: str | None) -> Any:
    from orchestrator.secrets import load_secrets

    problems = Problems()
    secrets = load_secrets(path, problems)
    problems.raise_if_any()
    return secrets
