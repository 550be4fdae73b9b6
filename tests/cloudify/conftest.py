"""Fixtures of the Cloudify front-end tests: write a Cloudify blueprint, load it, collect problems.

The plugin manager here has the installed plugins (their Cloudify packs included), as
the CLI has.
"""

from __future__ import annotations

import textwrap
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import pytest

from orchestrator.deployments import Orchestrator
from orchestrator.dsl import BlueprintError
from orchestrator.dsl.model import Blueprint
from orchestrator.plugins import PluginManager, get_plugin_manager

HEADER = "tosca_definitions_version: cloudify_dsl_1_4\nimports: [cloudify/types/types.yaml]\n"


@pytest.fixture(scope="session")
def cpm() -> PluginManager:
    return get_plugin_manager()


@pytest.fixture
def cwrite(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Callable[..., Path]:
    """``cwrite(text)`` writes main.yaml (dedented; HEADER first unless the text has a version line)."""
    monkeypatch.chdir(tmp_path)

    def write(text: str, name: str = "main.yaml") -> Path:
        body = textwrap.dedent(text).lstrip("\n")
        if "tosca_definitions_version" not in body:
            body = HEADER + body
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(body, encoding="utf-8")
        return path

    return write


@pytest.fixture
def cload(cpm: PluginManager, cwrite: Callable[..., Path]) -> Callable[..., Blueprint]:
    def load(text: str | Path, inputs: Mapping[str, Any] | None = None) -> Blueprint:
        path = text if isinstance(text, Path) else cwrite(text)
        return Orchestrator(pm=cpm).load(path, inputs)

    return load


@pytest.fixture
def cproblems(cload: Callable[..., Blueprint]) -> Callable[..., list[str]]:
    def problems(text: str | Path, inputs: Mapping[str, Any] | None = None) -> list[str]:
        with pytest.raises(BlueprintError) as info:
            cload(text, inputs)
        return [str(p) for p in info.value.problems]

    return problems
