"""Measurement helpers shared by our benchmarks and the Cloudify harness (standard library only).

* ``Clock``: wall time (``perf_counter``) and process CPU time (all threads) of a block;
* ``peak_rss_mb``: the process's peak resident set size so far;
* ``run_child``: one measurement in a fresh process, with a timeout, returning its JSON;
* ``machine_info``: CPU model, cores, load average, Python; ``stats``: min / median.
"""

from __future__ import annotations

import json
import os
import platform
import resource
import signal
import statistics
import subprocess
import sys
import time
from collections.abc import Sequence
from typing import Any


class Clock:
    """``with Clock() as c: ...`` then ``c.wall`` and ``c.cpu`` in seconds."""

    wall: float
    cpu: float

    def __enter__(self) -> Clock:
        self._cpu0 = time.process_time()
        self._t0 = time.perf_counter()
        return self

    def __exit__(self, *exc: object) -> None:
        self.wall = time.perf_counter() - self._t0
        self.cpu = time.process_time() - self._cpu0


def peak_rss_mb() -> float:
    """Peak RSS of this process so far, MiB (``ru_maxrss`` is KiB on Linux)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def load_average() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def run_child(argv: Sequence[str], timeout: float | None = None, env: dict[str, str] | None = None) -> dict[str, Any]:
    """Run ``argv`` (which prints one JSON object as its last stdout line) in a fresh process.

    Returns that object with ``wall_child_s`` (the whole process, imports included). On a
    timeout the child gets SIGTERM (then SIGKILL), and the result is ``{"error": "timeout"}``;
    on a failure ``{"error": "exit N", "stderr": ...}``.
    """
    t0 = time.perf_counter()
    proc = subprocess.Popen(list(argv), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
                            start_new_session=True)
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        _stop(proc)
        return {"error": "timeout", "timeout_s": timeout, "wall_child_s": time.perf_counter() - t0}
    if proc.returncode != 0:
        return {"error": f"exit {proc.returncode}", "stderr": err[-2000:], "wall_child_s": time.perf_counter() - t0}
    lines = out.strip().splitlines()
    if not lines:
        return {"error": "no output", "stderr": err[-2000:]}
    row = json.loads(lines[-1])
    row["wall_child_s"] = time.perf_counter() - t0
    return row


def _stop(proc: subprocess.Popen) -> None:
    """SIGTERM the child we started (its handler removes its temp dir), SIGKILL if it lingers."""
    try:
        os.kill(proc.pid, signal.SIGTERM)
        proc.communicate(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.communicate()
    except ProcessLookupError:
        pass


def stats(values: Sequence[float]) -> dict[str, float | int] | None:
    values = [v for v in values if v is not None]
    if not values:
        return None
    return {"min": min(values), "median": statistics.median(values), "max": max(values), "runs": len(values)}


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def memory_total_mb() -> float | None:
    try:
        with open("/proc/meminfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("MemTotal:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return None


def machine_info() -> dict[str, Any]:
    return {
        "cpu_model": cpu_model(),
        "cores": os.cpu_count(),
        "cores_usable": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
        "memory_mb": memory_total_mb(),
        "load_average": load_average(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "python_executable": sys.executable,
    }
