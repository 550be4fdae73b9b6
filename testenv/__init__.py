"""Real external engines (dockerd, docker-registry, moto server, PostgreSQL) for tests and demos.

Not shipped in any distribution: used by ``tests/`` (via ``testenv.fixtures``)
and by the demo/Makefile (``python -m testenv up|env|down``). Only stdlib
helpers are imported here, so ``testenv.moto_server`` works without the docker SDK.
"""

from testenv._proc import TestEnvError, free_port, http_status

__all__ = ["TestEnvError", "free_port", "http_status"]
