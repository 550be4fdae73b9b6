"""Real external engines (dockerd, docker-registry, moto server) for tests and demos.

Not shipped in any distribution: used by ``tests/`` (via ``testenv.fixtures``)
and by the demo/Makefile (``python -m testenv up|env|down``).
"""
