"""A container's ``resources`` (memory, swap, CPUs): the same values at create, update and drift.

``cpus`` becomes CpuPeriod/CpuQuota, the pair ``docker run --cpus`` stands for, rather
than NanoCpus: docker-py's ``update`` cannot send NanoCpus, and the engine refuses to mix
the two. What the engine can and cannot change in place (seen on dockerd 20.10, API 1.41):

- memory: raised or lowered, but never lifted (0 means "unchanged", -1 is refused), so
  removing a limit fails the update with a clear message instead of silently keeping it;
- swap: always sent with memory (declared, else twice memory, as at create);
- cpus: changed, or lifted with a quota of -1.

Pure functions (``docker.utils.parse_bytes`` is imported on first use).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from orchestrator import NonRecoverableError

PERIOD = 100_000  # microseconds: docker run --cpus uses the same period


def _bytes(value: Any) -> int:
    from docker.utils import parse_bytes

    return -1 if str(value) == "-1" else int(parse_bytes(str(value).lower()))


def wanted(resources: Mapping[str, Any] | None) -> dict[str, int]:
    """``{Memory, MemorySwap, CpuQuota}`` as the engine should have them (0 or -1: no limit)."""
    resources = resources or {}
    memory = _bytes(resources["memory"]) if resources.get("memory") else 0
    swap = _bytes(resources["memory_swap"]) if resources.get("memory_swap") else 2 * memory
    cpus = resources.get("cpus")
    return {"Memory": memory, "MemorySwap": swap if memory else 0,
            "CpuQuota": round(float(cpus) * PERIOD) if cpus else -1}


def create_kwargs(resources: Mapping[str, Any] | None) -> dict[str, Any]:
    """Arguments of ``containers.create`` for the limits that are declared."""
    limits = wanted(resources)
    kwargs: dict[str, Any] = {}
    if limits["Memory"]:
        kwargs.update(mem_limit=limits["Memory"], memswap_limit=limits["MemorySwap"])
    if limits["CpuQuota"] > 0:
        kwargs.update(cpu_period=PERIOD, cpu_quota=limits["CpuQuota"])
    return kwargs


def update_kwargs(resources: Mapping[str, Any] | None, actual: Mapping[str, Any]) -> dict[str, Any]:
    """Arguments of ``container.update`` bringing ``actual`` (HostConfig) to ``resources``."""
    limits = wanted(resources)
    kwargs: dict[str, Any] = {}
    if limits["Memory"]:
        kwargs.update(mem_limit=limits["Memory"], memswap_limit=limits["MemorySwap"])
    elif actual.get("Memory"):
        raise NonRecoverableError(
            "resources.memory: Docker cannot lift a container's memory limit in place; declare a larger "
            "limit, or change a property that replaces the container (e.g. an environment variable)")
    if limits["CpuQuota"] > 0:
        kwargs.update(cpu_period=PERIOD, cpu_quota=limits["CpuQuota"])
    elif (actual.get("CpuQuota") or 0) > 0:
        kwargs.update(cpu_quota=-1)
    return kwargs


def drift(resources: Mapping[str, Any] | None, actual: Mapping[str, Any]) -> dict[str, Any]:
    """``resources.*`` entries where the engine's HostConfig differs from the declaration."""
    limits, found = wanted(resources), {}
    if (actual.get("Memory") or 0) != limits["Memory"]:
        found["resources.memory"] = {"recorded": human(limits["Memory"]), "actual": human(actual.get("Memory"))}
    elif limits["Memory"] and (actual.get("MemorySwap") or 0) != limits["MemorySwap"]:
        found["resources.memory_swap"] = {"recorded": human(limits["MemorySwap"]),
                                          "actual": human(actual.get("MemorySwap"))}
    recorded = limits["CpuQuota"] / PERIOD if limits["CpuQuota"] > 0 else None
    if actual.get("NanoCpus"):
        cpus = actual["NanoCpus"] / 1e9
    elif (actual.get("CpuQuota") or 0) > 0:
        cpus = actual["CpuQuota"] / (actual.get("CpuPeriod") or PERIOD)
    else:
        cpus = None
    if cpus != recorded:
        found["resources.cpus"] = {"recorded": recorded, "actual": cpus}
    return found


def human(size: int | None) -> str | None:
    """``64m`` for 67108864 (the units ``resources`` is written in); None for no limit."""
    if not size:
        return None
    if size < 0:
        return str(size)
    for unit, factor in (("g", 2**30), ("m", 2**20), ("k", 2**10)):
        if size % factor == 0:
            return f"{size // factor}{unit}"
    return str(size)
