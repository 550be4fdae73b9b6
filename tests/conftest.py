"""Shared test set-up: real engines (dockerd, registry, moto server) from ``testenv``."""

pytest_plugins = ["testenv.fixtures"]
