"""Day 2 decisions of the Docker plugin that need no engine: resource limits at create, update
and drift, and what replaces each type."""

from __future__ import annotations

import pytest

from orchestrator import NonRecoverableError
from plugins_docker import limits, schema
from plugins_docker.container_spec import create_kwargs
from plugins_docker.testing import PLUGINS

MB = 2**20


def test_limits_at_create_follow_docker_run():
    assert limits.create_kwargs({"memory": "64m", "cpus": 1.5}) == {
        "mem_limit": 64 * MB, "memswap_limit": 128 * MB, "cpu_period": 100_000, "cpu_quota": 150_000}
    assert limits.create_kwargs({"memory": "1g", "memory_swap": "-1"}) == {"mem_limit": 2**30, "memswap_limit": -1}
    assert limits.create_kwargs(None) == {}
    kwargs = create_kwargs({"resources": {"cpus": 0.5}}, "d", "app_0", "busybox")
    assert (kwargs["cpu_period"], kwargs["cpu_quota"]) == (100_000, 50_000)


def test_limits_update_in_place_except_lifting_memory():
    now = {"Memory": 64 * MB, "MemorySwap": 128 * MB, "CpuPeriod": 100_000, "CpuQuota": 50_000}
    assert limits.update_kwargs({"memory": "128m"}, now) == {  # swap follows; the CPU limit is lifted
        "mem_limit": 128 * MB, "memswap_limit": 256 * MB, "cpu_quota": -1}
    assert limits.update_kwargs({"memory": "64m", "cpus": 2}, now) == {
        "mem_limit": 64 * MB, "memswap_limit": 128 * MB, "cpu_period": 100_000, "cpu_quota": 200_000}
    with pytest.raises(NonRecoverableError, match="cannot lift a container's memory limit in place"):
        limits.update_kwargs({"cpus": 1}, now)
    assert limits.update_kwargs(None, {"Memory": 0, "CpuQuota": 0}) == {}


def test_limits_drift_reads_in_the_declared_units():
    declared = {"memory": "64m", "cpus": 0.5}
    assert limits.drift(declared, {"Memory": 64 * MB, "MemorySwap": 128 * MB, "CpuPeriod": 100_000,
                                   "CpuQuota": 50_000}) == {}
    assert limits.drift(declared, {"Memory": 96 * MB, "MemorySwap": 192 * MB, "NanoCpus": 2_000_000_000}) == {
        "resources.memory": {"recorded": "64m", "actual": "96m"},
        "resources.cpus": {"recorded": 0.5, "actual": 2.0}}
    assert limits.drift(None, {"Memory": 0, "CpuQuota": -1}) == {}
    assert limits.drift({"memory": "64m"}, {"Memory": 64 * MB, "MemorySwap": -1}) == {
        "resources.memory_swap": {"recorded": "128m", "actual": "-1"}}
    assert [limits.human(n) for n in (None, 0, 1024, 3 * MB, 2**30, 1000)] == [None, None, "1k", "3m", "1g", "1000"]


REPLACED = {
    schema.IMAGE_TYPE: {"repository", "tag", "digest", "docker_host"},
    schema.CONTAINER_TYPE: {"image", "command", "entrypoint", "environment", "ports", "volumes", "network_mode",
                            "labels", "healthcheck", "user", "working_dir", "extra_hosts", "tty", "stdin_open",
                            "docker_host"},
}


@pytest.mark.parametrize("type_name", sorted(REPLACED))
def test_what_replaces_each_type_and_that_the_rest_updates_in_place(type_name):
    plugin = next(p for p in PLUGINS if type_name in (p.types or {}).get("node_types", {}))
    properties = plugin.types["node_types"][type_name]["properties"]
    assert {name for name, prop in properties.items() if prop.get("replace_on_change")} == REPLACED[type_name]
    assert plugin.handles("update", ["orchestrator.nodes.Root", type_name])
    assert plugin.handles("check_drift", ["orchestrator.nodes.Root", type_name])
