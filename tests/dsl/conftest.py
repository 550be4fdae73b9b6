"""Fixtures for the blueprint-language tests: write blueprints, load them, collect problems."""

from __future__ import annotations

import textwrap
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import pytest

from orchestrator.deployments import Orchestrator
from orchestrator.dsl import BlueprintError
from orchestrator.dsl.model import Blueprint
from orchestrator.plan import Plan
from orchestrator.plugins import PluginManager, get_plugin_manager


@pytest.fixture
def pm() -> PluginManager:
    """The core's built-in types only: installed entry-point plugins play no part."""
    return get_plugin_manager(entry_points=False)


@pytest.fixture
def write(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Callable[..., Path]:
    """``write("main.yaml", text)`` writes a dedented file under tmp_path (also the cwd)."""
    monkeypatch.chdir(tmp_path)

    def write(name: str, text: str) -> Path:
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text).lstrip("\n"), encoding="utf-8")
        return path

    return write


Inputs = Mapping[str, Any] | list[str] | None


@pytest.fixture
def load(pm: PluginManager, write: Callable[..., Path]) -> Callable[..., Blueprint]:
    """``load(text)`` (or ``load(path)``): a validated Blueprint, as the CLI would load it."""

    def load(source: str | Path, inputs: Inputs = None) -> Blueprint:
        path = source if isinstance(source, Path) else write("main.yaml", source)
        return Orchestrator(pm=pm).load(path, inputs)

    return load


@pytest.fixture
def plan(pm: PluginManager, write: Callable[..., Path]) -> Callable[..., Plan]:
    def plan(source: str | Path, inputs: Inputs = None) -> Plan:
        path = source if isinstance(source, Path) else write("main.yaml", source)
        return Orchestrator(pm=pm).plan(path, inputs)

    return plan


@pytest.fixture
def problems(load: Callable[..., Blueprint]) -> Callable[..., list[str]]:
    """``problems(text)``: the problem lines a bad blueprint gets, as the CLI prints them."""

    def problems(source: str | Path, inputs: Inputs = None) -> list[str]:
        with pytest.raises(BlueprintError) as info:
            load(source, inputs)
        return [str(p) for p in info.value.problems]

    return problems
