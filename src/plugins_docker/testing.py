"""Leak checks for test suites: what a deployment still has on a Docker engine.

Containers are found by the ``orchestrator.deployment`` label (in every state), images
by the ``orchestrator-pulled/<deployment>`` marker tag the image plugin puts on images it
pulled; neither needs the orchestrator's state file.
"""

from __future__ import annotations

import docker

from plugins_docker import container, image, labels

PLUGINS: tuple[object, ...] = (image.plugin, container.plugin)
"""Both plugins (what the entry points name), for ``orch.use(*PLUGINS)`` in tests."""


def list_resources(deployment_id: str, base_url: str | None = None) -> dict[str, list[str]]:
    """``{"containers": [names], "images": [references]}`` the deployment left on the engine.

    *base_url* picks the engine (e.g. ``unix:///path/docker.sock``); ``None`` means the
    one ``DOCKER_HOST`` (or the local default) names. ``images`` lists the user-facing
    references of each pulled image (its marker tag when nothing else is left).
    """
    client = docker.from_env() if base_url is None else docker.DockerClient(base_url=base_url)
    try:
        # The raw listing: containers.list() would inspect each one and fail on a container
        # that disappears in between.
        containers = client.api.containers(all=True, filters=labels.label_filters(deployment_id))
        repository = labels.pulled_repository(deployment_id)
        refs: list[str] = []
        for summary in client.api.images(name=repository):  # RepoTags here: only the matching ones
            try:
                all_tags = list(client.api.inspect_image(summary["Id"]).get("RepoTags") or [])
            except docker.errors.ImageNotFound:
                continue
            tags = [t for t in all_tags if not t.startswith(f"{repository}:")]
            refs.extend(tags or all_tags)
        names = [(c.get("Names") or [c["Id"]])[0].lstrip("/") for c in containers]
        return {"containers": sorted(names), "images": sorted(set(refs))}
    finally:
        client.close()
