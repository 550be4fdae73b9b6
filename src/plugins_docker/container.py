"""Plugin ``docker_container``: the ``docker.Container`` node type.

Every container carries the ownership labels ``orchestrator.deployment`` and
``orchestrator.instance``; ``create`` looks for them first, so a create that was killed
after the engine made the container (but before the state said so) adopts that container
instead of making a second one. ``delete`` removes every container with the instance's
labels, so nothing leaks even if the runtime properties were never saved; and it needs
no engine at all when ``create`` never reached one. ``start`` and ``stop`` wait with
``wait_until`` (readiness, a stop signal given time to work): no worker is held.

Day 2: ``update`` changes what the engine changes on a live container (``docker
update``: restart policy, memory and CPU limits; ``docker rename``); everything else is
``replace_on_change`` in the type. ``check_drift`` inspects the container (found by id,
else by its labels, never changing anything) and reports it gone, not running, running
another image, or with other limits or restart policy than declared. Custom operations
(:mod:`plugins_docker.operations`): ``exec``, ``logs`` and ``restart``.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from orchestrator import NodeTemplateInfo, NonRecoverableError, RecoverableError
from orchestrator.sdk import NotReady, Plugin, Problem, Resource
from plugins_docker import labels, limits, operations, readiness, schema
from plugins_docker.container_spec import create_kwargs, image_for, restart_policy
from plugins_docker.engine import EngineSpec, connect, engine_for
from plugins_docker.errors import engine_errors, engine_message
from plugins_docker.image import local_image, pull

if TYPE_CHECKING:
    import docker

REMOVAL_WAIT = 30.0  # seconds to wait for a removal the engine already has in progress
RUNNING_SINCE = "running_since"  # runtime: when start first saw it running (its startup grace)
STOP_SENT = "stop_sent_at"  # runtime: when stop sent the stop signal (SIGKILL follows stop_timeout later)


class Container(schema.Validated, Resource):
    @property
    def spec(self) -> EngineSpec:
        return engine_for(self.ctx)

    def create(self) -> None:
        spec = self.spec
        deployment, instance = self.ctx.deployment.id, self.instance.id
        with connect(spec) as client:
            if self.runtime.get("engine") != str(spec):
                self.save(engine=str(spec))  # from here on, delete looks on this engine
            container = find_own(client, deployment, instance, spec, self.logger)
            if container is not None:
                self.logger.info("found container %s (%s) from an earlier attempt", container.name,
                                 container.short_id)
            else:
                image = image_for(self.properties, self.instance.relationships)
                self.pull(client, image, spec)
                kwargs = create_kwargs(self.properties, deployment, instance, image)
                container = _create(client, kwargs, deployment, instance, spec)
                self.logger.info("created container %s (%s) from %s on %s", container.name, container.short_id,
                                 image, spec)
            self.save(container_id=container.id, name=container.name, image=_image_of(container),
                      state=container.status)

    def pull(self, client: docker.DockerClient, image: str, spec: EngineSpec) -> None:
        """``pull_policy``: the image pulled before create (as Cloudify's Docker plugin 1.x did).

        Unlike a ``docker.Image`` node's pull, this one is never undone: the image may be
        shared, and nothing records that this deployment brought it.
        """
        policy = self.properties.get("pull_policy") or "never"
        if policy == "never" or (policy == "if_not_present" and local_image(client, image, spec) is not None):
            return
        self.logger.info("pulling %s on %s (pull_policy %s)", image, spec, policy)
        pull(client, image, None, spec)

    def start(self) -> None:
        props, spec = self.properties, self.spec
        with connect(spec) as client:
            container = self.lookup(client, spec)
            if container is None:
                raise NonRecoverableError(
                    f"container {self.runtime.get('name') or self.instance.id} is gone from {spec} "
                    "(removed outside the orchestrator); uninstall and install again")
            if container.status not in ("running", "restarting"):
                self.runtime.pop(RUNNING_SINCE, None)
                with engine_errors(f"starting container {container.name} on {spec}"):
                    container.start()

            def ready() -> Any:
                since = self.runtime.get(RUNNING_SINCE)
                result = readiness.check(container, grace=float(props.get("startup_grace", 1.0)),
                                         running_for=None if since is None else time.time() - since,
                                         log_tail=int(props.get("log_tail", 20)), where=str(spec))
                if not result and since is None and (container.attrs.get("State") or {}).get("Running"):
                    self.runtime[RUNNING_SINCE] = time.time()  # its startup grace counts from here
                return result

            try:
                state = self.wait_until(ready, f"container {container.name} to be ready",
                                        timeout=float(props.get("start_timeout", 60.0)), max_interval=1.0)
            finally:
                self.runtime["state"] = (container.attrs.get("State") or {}).get("Status", container.status)
            self.runtime.pop(RUNNING_SINCE, None)
            self.runtime.update(ports=published_ports(container.attrs), pid=state.get("Pid"))
            if state.get("Health"):
                self.runtime["health"] = state["Health"].get("Status")
        self.logger.info("container %s is %s", container.name, self.runtime.get("health") or "running")

    def stop(self) -> None:
        """The stop signal, then SIGKILL once ``stop_timeout`` has passed, as ``docker stop`` does;
        but the waiting in between is ``wait_until``'s, not a blocked API call."""
        spec, timeout = self.spec, float(self.properties.get("stop_timeout", 10))
        with connect(spec) as client:
            container = self.lookup(client, spec)
            if container is None:
                self.runtime["state"] = "gone"
                return

            def stopped() -> Any:
                import docker

                with engine_errors(f"stopping container {container.name} on {spec}"):
                    try:
                        container.reload()
                        if not (container.attrs.get("State") or {}).get("Running"):
                            return True
                        sent = self.runtime.get(STOP_SENT)
                        late = timeout <= 0 or (sent is not None and time.time() - sent >= timeout)
                        if sent is None or late:  # the stop signal once; SIGKILL once stop_timeout is over
                            container.kill(signal="SIGKILL" if late else _stop_signal(container))
                            self.runtime.setdefault(STOP_SENT, time.time())
                        if late and _gone_after_kill(container):
                            return True  # the poll that kills may be the wait's last one
                        if late:
                            return NotReady(why="killed")
                        # Look again when stop_timeout is over, to kill it then (as docker stop
                        # does), however few retries are left to spread the wait over.
                        kill_at = float(self.runtime[STOP_SENT]) + timeout
                        return NotReady(why="stop signal sent", by=kill_at - time.time())
                    except docker.errors.NotFound:
                        self.runtime["state"] = "gone"
                        return True
                    except docker.errors.APIError as exc:
                        if exc.status_code == 409:  # "is not running": it stopped meanwhile
                            return True
                        raise

            self.wait_until(stopped, f"container {container.name} to stop", timeout=timeout + 30.0,
                            max_interval=max(0.1, min(1.0, timeout / 4)))
            self.runtime.pop(STOP_SENT, None)
            if self.runtime.get("state") != "gone":
                self.runtime["state"] = (container.attrs.get("State") or {}).get("Status", "exited")
        self.logger.info("stopped container %s", container.name)

    def delete(self) -> None:
        spec = self.spec
        with contextlib.ExitStack() as stack:
            try:
                client = stack.enter_context(connect(spec))
            except RecoverableError as exc:
                if "engine" in self.runtime or self.runtime.get("container_id"):
                    raise  # create reached the engine: what it made must be removed there
                self.logger.info("create never reached an engine (and %s is unreachable: %s): nothing to "
                                 "remove", spec, exc)
                return
            ids = {c.id for c in _labelled(client, self.ctx.deployment.id, self.instance.id, spec)}
            if self.runtime.get("container_id"):
                ids.add(self.runtime["container_id"])
            for container_id in sorted(ids):
                self.wait_until(lambda cid=container_id: remove(client, cid, spec),
                                f"the removal of container {container_id[:12]} in progress", timeout=REMOVAL_WAIT)
        for key in ("container_id", "pid", "health", "ports", "engine", STOP_SENT, RUNNING_SINCE):
            self.runtime.pop(key, None)
        self.runtime["state"] = "deleted"
        self.logger.info("removed %d container(s)", len(ids))

    # -- day 2 ------------------------------------------------------------------------

    def update(self) -> None:
        """Restart policy and resources (``docker update``), then the name (``docker rename``)."""
        spec, props = self.spec, self.properties
        changed = {path.split(".")[0].split("[")[0] for path in self.ctx.changes}
        with connect(spec) as client:
            container = self.locate(client, spec)
            if container is None:
                raise NonRecoverableError(f"container {self.runtime.get('name') or self.instance.id} is gone from "
                                          f"{spec}: it cannot be updated (uninstall and install it again)")
            action = f"updating container {container.name} on {spec}"
            if changed & {"restart_policy", "resources"}:
                kwargs = limits.update_kwargs(props.get("resources"), container.attrs.get("HostConfig") or {})
                kwargs["restart_policy"] = restart_policy(props.get("restart_policy") or "no") or {"Name": "no"}
                with engine_errors(action):
                    container.update(**kwargs)
                self.logger.info("container %s: restart policy %s, limits %s", container.name,
                                 props.get("restart_policy") or "no", props.get("resources") or "none")
            name = props.get("name") or labels.container_name(self.ctx.deployment.id, self.instance.id)
            if container.name != name:
                with engine_errors(action):
                    container.rename(name)
                self.logger.info("container %s renamed %s", container.name, name)
            with engine_errors(action):
                container.reload()
            self.save(container_id=container.id, name=container.name, state=container.status)

    def check_drift(self) -> dict[str, Any] | None:
        """Inspect once (by id, else by labels): gone, not running, another image or other settings."""
        spec, props = self.spec, self.properties
        with connect(spec) as client:
            container = self.locate(client, spec)
        if container is None:
            return {"gone": f"container {self.runtime.get('name') or self.instance.id} is no longer on {spec}"}
        found: dict[str, Any] = {}
        recorded = self.runtime.get("container_id")
        if recorded and container.id != recorded:  # removed and run again by hand, with our labels
            found["container_id"] = _differs(recorded[:12], container.id[:12])
        status = (container.attrs.get("State") or {}).get("Status", container.status)
        if status != "running":
            found["state"] = _differs("running", status)
        image = image_for(props, self.instance.relationships)
        if _image_of(container) != image:
            found["image"] = _differs(image, _image_of(container))
        host = container.attrs.get("HostConfig") or {}
        policy = restart_policy(props.get("restart_policy") or "no") or {"Name": "no"}
        actual = host.get("RestartPolicy") or {}
        if (actual.get("Name") or "no", actual.get("MaximumRetryCount") or 0) != (
                policy["Name"], policy.get("MaximumRetryCount", 0)):
            found["restart_policy"] = _differs(props.get("restart_policy") or "no", _policy_text(actual))
        found.update(limits.drift(props.get("resources"), host))
        return found or None

    def locate(self, client: docker.DockerClient, spec: EngineSpec) -> Any:
        """The container by its recorded id, else the oldest with its labels; None. Changes nothing."""
        recorded = self._recorded(client, spec)
        if recorded is not None:
            return recorded
        found = sorted(_labelled(client, self.ctx.deployment.id, self.instance.id, spec),
                       key=lambda c: c.attrs.get("Created", ""))
        return found[0] if found else None

    def lookup(self, client: docker.DockerClient, spec: EngineSpec) -> Any:
        """The container by its recorded id, else by its labels; None if it is gone."""
        recorded = self._recorded(client, spec)
        if recorded is not None:
            return recorded
        return find_own(client, self.ctx.deployment.id, self.instance.id, spec, self.logger)

    def _recorded(self, client: docker.DockerClient, spec: EngineSpec) -> Any:
        """The container whose id this instance recorded; None when there is none (any more)."""
        import docker

        container_id = self.runtime.get("container_id")
        if not container_id:
            return None
        with engine_errors(f"inspecting container {container_id[:12]} on {spec}"):
            try:
                return client.containers.get(container_id)
            except docker.errors.NotFound:
                return None

    # -- custom operations (orchestrator execute) -------------------------------------

    def exec(self, command: Any, env: dict[str, str], check: bool, workdir: str | None = None,
             user: str | None = None) -> dict[str, Any]:
        return operations.exec_command(self, command, workdir, env, user, check)

    def logs(self, tail: int, timestamps: bool) -> str:
        return operations.logs(self, tail, timestamps)

    def restart(self, timeout: int | None = None) -> dict[str, Any]:
        return operations.restart(self, timeout)

    @classmethod
    def validate(cls, node: NodeTemplateInfo) -> Iterable[Problem]:
        found = list(super().validate(node))
        props = node.properties
        if not props.get("image") and not any(
                schema.USES_IMAGE in rel.type_hierarchy or schema.IMAGE_TYPE in rel.target_type_hierarchy
                for rel in node.relationships):
            found.append(f"no image: set the image property or add a relationship {schema.USES_IMAGE} to a "
                         f"{schema.IMAGE_TYPE} node")
        return found


# ---------------------------------------------------------------- engine helpers


def _gone_after_kill(container: Any, seconds: float = 5.0) -> bool:
    """Whether a container sent SIGKILL has stopped: the engine's own wait, bounded (a kill
    takes effect at once; this spares the retry schedule a last poll it may not have)."""
    import docker
    import requests

    try:
        container.wait(timeout=seconds)
        container.reload()
    except docker.errors.NotFound:
        return True
    except (requests.exceptions.RequestException, docker.errors.APIError):
        return False
    return not (container.attrs.get("State") or {}).get("Running")


def _stop_signal(container: Any) -> str:
    return str((container.attrs.get("Config") or {}).get("StopSignal") or "SIGTERM")


def find_own(client: docker.DockerClient, deployment: str, instance: str, spec: EngineSpec,
             logger: Any) -> Any:
    """This instance's container by its labels (oldest wins; strays from a bug are removed)."""
    found = sorted(_labelled(client, deployment, instance, spec), key=lambda c: c.attrs.get("Created", ""))
    for extra in found[1:]:
        logger.warning("removing duplicate container %s of %s", extra.name, instance)
        remove(client, extra.id, spec)
    return found[0] if found else None


def _labelled(client: docker.DockerClient, deployment: str, instance: str, spec: EngineSpec) -> list[Any]:
    """Containers with the instance's labels, inspected one by one.

    ``containers.list()`` would inspect them too, but fails as a whole when one of them
    is removed (or still being created) between the listing and its inspection.
    """
    import docker

    found = []
    with engine_errors(f"listing containers on {spec}"):
        for summary in client.api.containers(all=True, filters=labels.label_filters(deployment, instance)):
            try:
                found.append(client.containers.get(summary["Id"]))
            except docker.errors.NotFound:
                continue
    return found


def _create(client: docker.DockerClient, kwargs: dict[str, Any], deployment: str, instance: str,
            spec: EngineSpec) -> Any:
    import docker

    name, image = kwargs["name"], kwargs["image"]
    action = f"creating container {name} from {image} on {spec}"
    with engine_errors(action):
        try:
            return client.containers.create(**kwargs)
        except docker.errors.ImageNotFound as exc:
            raise NonRecoverableError(
                f"{action}: {engine_message(exc)} (pull it first: a {schema.IMAGE_TYPE} node "
                f"with a {schema.USES_IMAGE} relationship, on the same engine)") from exc
        except docker.errors.APIError as exc:
            if exc.status_code != 409:
                raise
            taken = client.containers.get(name)
            owner = {k: v for k, v in (taken.labels or {}).items() if k in labels.owner_labels("", "")}
            if owner == labels.owner_labels(deployment, instance):  # made by a racing attempt
                return taken
            whose = ", ".join(f"{k}={v}" for k, v in owner.items()) or "something else than this orchestrator"
            raise NonRecoverableError(f"{action}: {engine_message(exc)} (it belongs to {whose})") from exc


def remove(client: docker.DockerClient, container_id: str, spec: EngineSpec) -> bool | NotReady:
    """Force-remove a container: True once it is gone; ``NotReady`` while the engine is
    already removing it ("removal ... is already in progress")."""
    import docker

    action = f"removing container {container_id[:12]} on {spec}"
    with engine_errors(action):
        try:
            client.api.remove_container(container_id, force=True, v=False)
        except docker.errors.NotFound:
            pass
        except docker.errors.APIError as exc:
            if exc.status_code == 409:
                return NotReady(after=0.2, why=engine_message(exc))
            raise
    return True


def published_ports(attrs: dict[str, Any]) -> dict[str, list[str]]:
    """``{'80/tcp': ['0.0.0.0:8080']}``; empty with host networking (nothing is published)."""
    mapping = (attrs.get("NetworkSettings") or {}).get("Ports") or {}
    return {port: [f"{b.get('HostIp', '')}:{b.get('HostPort', '')}" for b in bindings or []]
            for port, bindings in mapping.items() if bindings}


def _image_of(container: Any) -> str:
    return str((container.attrs.get("Config") or {}).get("Image") or "")


def _differs(recorded: Any, actual: Any) -> dict[str, Any]:
    return {"recorded": recorded, "actual": actual}


def _policy_text(policy: dict[str, Any]) -> str:
    name, count = policy.get("Name") or "no", policy.get("MaximumRetryCount") or 0
    return f"{name}:{count}" if name == "on-failure" and count else name


plugin = Plugin(schema.CONTAINER_TYPES, {schema.CONTAINER_TYPE: Container})
"""The plugin object the ``docker_container`` entry point names."""
