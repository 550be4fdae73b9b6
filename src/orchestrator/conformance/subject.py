"""What a plugin tells the conformance suite about one node type: ``Subject`` and its ``Env``."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import attrs

from orchestrator.engine.options import Options


class Fixtures:
    """Attribute access to pytest fixtures (``env.fixtures.docker_engine``), resolved lazily."""

    def __init__(self, values: Mapping[str, Any] | None = None,
                 getter: Callable[[str], Any] | None = None) -> None:
        self._values = dict(values or {})
        self._getter = getter

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):
            raise AttributeError(name)
        if name not in self._values:
            if self._getter is None:
                raise AttributeError(f"no fixture '{name}' (pass fixtures={{'{name}': ...}} to run_checks)")
            self._values[name] = self._getter(name)
        return self._values[name]

    def __getitem__(self, name: str) -> Any:
        return getattr(self, name)


@attrs.define(eq=False)
class Env:
    """What a subject's callables get: one deployment of one check."""

    check: str  # the check's id, e.g. "crash_in_create"
    deployment: str  # unique per run; what the lister looks for
    tmp_path: Path  # a private directory of the check (the blueprint is written here)
    node: str  # the subject's node template name
    fixtures: Fixtures
    clean: bool = False  # verified empty after an uninstall (then ``cleanup`` is not needed)

    @property
    def instance(self) -> str:
        """The subject's node instance id (the engine names it ``<node>_0``)."""
        return f"{self.node}_0"


Value = Any  # a value, or a callable taking an Env and returning the value
Listing = Iterable[str] | Mapping[str, Iterable[str]]


def value_of(value: Value, env: Env) -> Any:
    return value(env) if callable(value) else value


def _default_external(resource_id: str) -> dict[str, Any]:
    return {"use_external_resource": True, "resource_id": resource_id}


@attrs.define(eq=False, kw_only=True)
class Subject:
    """One node type under test, with what the checks need to know about it.

    Any field marked *Value* takes the value itself or a callable ``(env) -> value``
    (for values that depend on the deployment, a temporary directory or fixtures).
    """

    type: str = attrs.field(kw_only=False)
    list_resources: Callable[[Env], Listing] = attrs.field(kw_only=False)
    """What exists in the target system for ``env.deployment`` (ids, e.g. found by tag or
    label, the way your ``delete`` finds them); a mapping of kind -> ids is flattened to
    ``kind:id``. Counts the subject's own resources: every check expects ``expected`` of
    them after install."""

    properties: Value = attrs.field(factory=dict)
    """Valid properties of the subject node."""

    invalid_properties: Value = None
    """The bad-property factory: properties that pass the type's schema (and
    ``validate_node``) but make create fail (``bad properties``)."""

    adopt: Callable[[Env], str] | None = None
    """The adoption factory: create a resource out of band, visible to ``list_resources``
    for ``env.deployment`` (tag or label it), and return the id to pass as
    ``resource_id`` (``adopt external``)."""

    external_properties: Callable[[str], Mapping[str, Any]] = _default_external
    """The properties that adopt a resource id (default: ``use_external_resource: true``
    and ``resource_id``, Cloudify's convention; the type must declare both)."""

    running: Callable[[Env], Listing] | None = None
    """The probe of ``stop stops``: what of ``env.deployment`` is running now (a process, a
    started VM or container). Also checked after every resumed install: exactly
    ``expected`` running, so a second copy started by a repeated ``start`` is caught."""

    delete: Callable[[Env, str], None] | None = None
    """Delete one listed resource out of band. Default: run the plugin's own ``delete``
    hook outside any workflow (the state keeps saying the resource exists)."""

    list_leftovers: Callable[[Env], Listing] | None = None
    """Everything the deployment may leave behind (the subject's resources and those of
    helper nodes); must be empty after uninstall. Default: ``list_resources``."""

    relationships: Value = ()
    """The subject node's relationships, as in a blueprint: ``[{type, target}]``. Their
    hooks are checked like the node's own operations."""

    blueprint: Value = None
    """More blueprint (YAML text or a mapping): helper ``node_templates`` the
    relationships target, ``node_types``, ``imports``..."""

    files: Value = attrs.field(factory=dict)
    """Files written beside the blueprint (``{relative path: text or bytes}``), e.g. templates."""

    setup: Callable[[Env], None] | None = None
    """Runs before each deployment of a check (e.g. make sure an image is absent)."""

    cleanup: Callable[[Env], None] | None = None
    """Runs after each deployment of a check that was not verified empty after uninstall:
    sweep what a failure leaked, or the adopted resource."""

    expected: int = 1
    """How many resources one node instance makes (as ``list_resources`` counts them)."""

    checks: Iterable[str] | None = None
    """Run only these checks on this subject (default: every check the suite runs)."""

    skip: Mapping[str, str] = attrs.field(factory=dict)
    """Checks to skip, with the reason: ``{"adopt_external": "no such property"}``."""

    options: Options | None = None
    """Workflow options of this subject's runs (default: the suite's: 3 retries, 10 ms
    backoff). More retries for a type whose operations wait long."""

    plugins: Sequence[object] | None = None
    """Plugins to load (default: the suite's)."""

    fixtures: Sequence[str] = ()
    """pytest fixtures to set up before each check (e.g. ``aws_env``)."""

    name: str | None = None
    """Report name (default: the type), to test one type with several configurations."""

    node: str = "subject"
    """The subject's node template name."""

    @property
    def label(self) -> str:
        return self.name or self.type
