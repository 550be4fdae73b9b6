"""The ``orch`` fixture (``orchestrator.testing``): what plugin authors test with (issue 18 fixes)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import tomllib

from orchestrator import hookimpl

ROOT = Path(__file__).resolve().parents[1]


class Counter:
    """A plugin whose create reads and bumps a runtime property, and whose start saves twice."""

    __name__ = "counter"

    @hookimpl
    def register_types(self) -> dict[str, Any]:
        return {"node_types": {"count.Thing": {"derived_from": "orchestrator.nodes.Root"}}}

    @hookimpl
    def create(self, ctx: Any) -> None:
        runtime = ctx.instance.runtime_properties
        runtime["seen"] = runtime.get("seen", 0) + 1

    @hookimpl
    def start(self, ctx: Any) -> None:
        runtime = ctx.instance.runtime_properties
        runtime["launched"] = runtime.get("launched", 0) + 1  # a "process", counted
        ctx.instance.update()
        runtime["ready"] = True
        ctx.instance.update()


def test_changing_runtime_properties_in_place_between_calls_is_seen(orch: Any) -> None:
    """It used to be ignored silently: a test passed without testing anything."""
    orch.use(Counter())
    node = orch.node("count.Thing")
    node.call("create")
    assert node.runtime_properties == {"seen": 1}
    node.runtime_properties["seen"] = 41  # in place
    node.call("create")
    assert node.runtime_properties == {"seen": 42}
    kept = node.runtime_properties
    node.call("create")
    assert kept == {"seen": 43}  # the dict a test holds stays current
    node.runtime_properties["bad"] = object()
    with pytest.raises(TypeError, match=r"runtime_properties of .* must hold JSON values only"):
        node.call("create")


class NotANumber:
    """A plugin whose create keeps a NaN, and whose custom operation returns infinities."""

    __name__ = "nan"

    @hookimpl
    def register_types(self) -> dict[str, Any]:
        return {"node_types": {"nan.Thing": {"derived_from": "orchestrator.nodes.Root",
                                             "properties": {"ratio": {"type": "string", "default": "nan"}},
                                             "operations": {"measure": {"description": "numbers"}}}}}

    @hookimpl
    def create(self, ctx: Any) -> None:
        ctx.instance.runtime_properties["ratio"] = float(ctx.node.properties["ratio"])

    @hookimpl
    def run_operation(self, ctx: Any) -> Any:
        return {"high": float("inf"), "low": [float("-inf"), 1.5]}


def test_nan_and_infinities_are_refused_as_runtime_properties_and_said_as_text_in_results(orch: Any) -> None:
    # Python's json writes them, but no JSON reader takes them back (jq, JavaScript, PostgreSQL's jsonb).
    orch.use(NotANumber())
    refused = orch.install("node_templates: {t: {type: nan.Thing}}")
    assert not refused.ok
    assert "runtime properties of t_0 must be JSON-serializable: Out of range float values" in str(refused.failures[0])
    fine = orch.install("node_templates: {t: {type: nan.Thing, properties: {ratio: '0.5'}}}", deployment="ok")
    assert fine.ok and fine.runtime_properties["t_0"] == {"ratio": 0.5}
    assert orch.execute("measure", deployment="ok") == {"t_0": {"high": "inf", "low": ["-inf", 1.5]}}


def test_a_simulated_crash_in_any_operation_and_the_resume(orch: Any) -> None:
    orch.use(Counter())
    bp = "node_templates: {t: {type: count.Thing}}"
    crashed = orch.install(bp, crash=orch.crash("start", node="t", at_save=2))
    assert crashed.crashed == "save #2" and not crashed.ok
    assert crashed.states == {"t_0": "starting"}
    assert crashed.runtime_properties["t_0"] == {"seen": 1, "launched": 1}  # save #1 landed, #2 did not
    resumed = orch.install(bp)
    assert resumed.ok and resumed.crashed is None
    assert resumed.runtime_properties["t_0"] == {"seen": 1, "launched": 2, "ready": True}  # start ran again
    after = orch.uninstall(crash=orch.crash("delete", node="t"))
    assert after.crashed is None  # nothing implements delete: nothing to crash in


def test_the_testing_extra_is_pytest_alone() -> None:
    meta = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert meta["optional-dependencies"]["testing"] == ["pytest>=8"]
    assert "orchestrator-engine[testing]" in meta["optional-dependencies"]["test"]
