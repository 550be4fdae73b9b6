"""Real external engines (dockerd, docker-registry, moto server) for tests and demos.

Not shipped in any distribution: used by ``tests/`` (via ``testenv.fixtures``)
and by the demo/Makefile (``python -m testenv up|env|down``). Submodules are
imported lazily so that ``testenv.moto_server`` works without the docker SDK.
"""

from testenv._proc import TestEnvError

__all__ = ["TestEnvError"]
