"""orchestrator-docker: Docker images and containers as blueprint nodes.

Two plugins, registered through the ``orchestrator.plugins`` entry points:
``docker_image`` (:mod:`plugins_docker.image`, type ``docker.Image`` and the shared data
types) and ``docker_container`` (:mod:`plugins_docker.container`, type
``docker.Container`` and relationship ``docker.relationships.container_uses_image``).
Which engine a node uses is decided in :mod:`plugins_docker.engine`; see README.md.
"""

from __future__ import annotations

__version__ = "0.1.0"
