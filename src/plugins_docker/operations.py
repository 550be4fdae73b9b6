"""Custom operations of ``docker.Container`` (``orchestrator execute``): ``exec``, ``logs``
and ``restart``.

Each finds the container the way ``check_drift`` does (by its recorded id, else by its
labels, changing nothing) and records nothing: a restart keeps the container and its id,
so what the deployment knows stays true. ``exec``'s exit code is part of its result, not a
failure, unless the caller asks for ``check``: a command that reports "no" (``test -f``,
``grep``) is an answer. The engine runs an exec to its end in one API call, so a command
must end within the engine's timeout (60 s) or the operation's (``--operation-timeout``).
Their inputs are declared in :mod:`plugins_docker.schema` with the type.
"""

from __future__ import annotations

import shlex
from typing import TYPE_CHECKING, Any

from orchestrator import NonRecoverableError
from plugins_docker.engine import EngineSpec, connect
from plugins_docker.errors import engine_errors

if TYPE_CHECKING:
    from plugins_docker.container import Container

OUTPUT_TAIL = 2000  # characters of a failed command's output quoted in its error


def exec_command(resource: Container, command: Any, workdir: str | None, env: dict[str, str],
                 user: str | None, check: bool) -> dict[str, Any]:
    """``docker exec``: ``{"output": text, "exit_code": n}``; with ``check``, a non-zero code fails."""
    argv = _argv(command)
    spec = resource.spec
    with connect(spec) as client:
        container = _found(resource, client, spec, "exec")
        if container.status != "running":
            raise NonRecoverableError(f"container {container.name} is {container.status}: exec needs it running "
                                      "(orchestrator heal brings it back)")
        with engine_errors(f"running {shlex.join(argv)} in container {container.name} on {spec}"):
            code, output = container.exec_run(argv, workdir=workdir or None, environment=env or None,
                                              user=user or "", demux=False)
    text = (output or b"").decode("utf-8", errors="replace")
    resource.logger.info("%s in %s exited with %s", shlex.join(argv), container.name, code)
    if check and code != 0:
        raise NonRecoverableError(f"{shlex.join(argv)} in container {container.name} exited with {code}: "
                                  f"{text[-OUTPUT_TAIL:].strip() or '(no output)'}")
    return {"output": text, "exit_code": code}


def logs(resource: Container, tail: int, timestamps: bool) -> str:
    """The last ``tail`` lines of the container's output (all with 0), as text."""
    spec = resource.spec
    with connect(spec) as client:
        container = _found(resource, client, spec, "logs")
        with engine_errors(f"reading the logs of container {container.name} on {spec}"):
            data = container.logs(stdout=True, stderr=True, tail=tail or "all", timestamps=timestamps)
    return bytes(data or b"").decode("utf-8", errors="replace")


def restart(resource: Container, timeout: int | None) -> dict[str, Any]:
    """``docker restart`` (a stopped container is started); its state and start time after."""
    spec = resource.spec
    grace = int(resource.properties.get("stop_timeout", 10) if timeout is None else timeout)
    with connect(spec) as client:
        container = _found(resource, client, spec, "restart")
        action = f"restarting container {container.name} on {spec}"
        with engine_errors(action):
            container.restart(timeout=grace)
            container.reload()
    state = container.attrs.get("State") or {}
    resource.logger.info("container %s restarted: %s", container.name, state.get("Status", container.status))
    return {"container": container.name, "container_id": container.id, "state": state.get("Status", container.status),
            "started_at": state.get("StartedAt")}


def _found(resource: Container, client: Any, spec: EngineSpec, operation: str) -> Any:
    """The instance's container (read-only lookup); gone is a final error."""
    container = resource.locate(client, spec)
    if container is None:
        raise NonRecoverableError(f"container {resource.runtime.get('name') or resource.instance.id} is gone from "
                                  f"{spec}: nothing to {operation} (orchestrator heal recreates it)")
    return container


def _argv(command: Any) -> list[str]:
    """The command as an argument list.

    ``-p command=VALUE`` is read as YAML, so ``false`` or ``42`` arrive as a boolean or a
    number: they are taken back as the words typed (``false``), in a list too.
    """
    if isinstance(command, str):
        try:
            argv = shlex.split(command)
        except ValueError as exc:  # an unclosed quote
            raise NonRecoverableError(f"command {command!r}: {exc}") from None
    elif _word(command) is not None:
        argv = [str(_word(command))]
    elif isinstance(command, list) and all(_word(a) is not None for a in command):
        argv = [str(_word(a)) for a in command]
    else:
        raise NonRecoverableError(f"command must be a string or a list of strings, not {command!r}")
    if not argv:
        raise NonRecoverableError("command is empty")
    return argv


def _word(value: Any) -> str | None:
    """A scalar as the word it was typed as (YAML reads ``true`` and ``3`` as data); else None."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (str, int, float)):
        return str(value)
    return None
