"""Plugin conformance: prove a node type's hooks are idempotent, resumable and clean.

The disasters users meet most are a create that runs twice (after a crash or a retry)
and leaks a second VM or container, and an uninstall that leaves something behind.
This suite runs one node type through the **real engine and the plugin's real hooks**
(installs and uninstalls with a temporary state file, a fresh deployment id per run)
and counts what exists in the target system after each step:

==================== ==================================================================
check                what it proves
==================== ==================================================================
create twice         create run again with the runtime properties the first one saved
                     finds its resource: still exactly one, same id, nothing forgotten
crash in create      the process "dies" inside create (at each ``ctx.instance.update()``
                     before it is written, and after create returned but before the
                     engine recorded success); a fresh orchestrator resumes ``install``:
                     exactly one resource, install completes
crash, uninstall     the same crashes, then the user uninstalls instead: delete finds
                     what create made with only what create saved; nothing is left
retry before create  a transient error before the hook ran: retried, one resource
retry after create   a transient error after the hook's side effect: one resource
adopt external       ``use_external_resource``: install adopts, uninstall leaves it
full cycle           install lists one resource; uninstall leaves nothing; a second
                     uninstall is harmless
deleted behind back  the resource vanishes out of band; uninstall still succeeds
bad properties       a failing create raises ``NonRecoverableError`` with a message, the
                     workflow fails with a summary, and nothing is left after uninstall
==================== ==================================================================

A plugin's test module turns it on with a few lines::

    from orchestrator.conformance import Subject, conformance_tests
    from my_plugin import plugin, testing

    TestConformance = conformance_tests(
        Subject("my.Widget", properties={"size": 1},
                list_resources=lambda env: testing.widgets(env.deployment),
                invalid_properties={"size": -1}),
        plugins=[plugin],
    )

Each check of each subject is its own test item (``test_crash_in_create[my.Widget]``),
failures say what leaked, and a report (``PASS my.Widget  create twice  1 resource``) is
printed at the end of the session. ``run_checks`` does the same without pytest.

Crashes are simulated in-process: a type-less hook wrapper lets the real create run and
then raises ``SimulatedCrash`` (a ``BaseException``, so nothing catches it as an
error), which leaves exactly what a killed process leaves: the operation ``started`` in
the state file, with only the runtime properties the hook persisted itself.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import attrs
import yaml

from orchestrator import NonRecoverableError, RecoverableError, hookimpl
from orchestrator.deployments import Orchestrator
from orchestrator.dsl.problems import BlueprintError
from orchestrator.engine.context import InstanceRecord
from orchestrator.engine.dispatch import Dispatcher
from orchestrator.engine.factory import ContextFactory
from orchestrator.engine.options import Options
from orchestrator.engine.results import ExecutionResult
from orchestrator.errors import OrchestratorError
from orchestrator.plugins import PluginManager, get_plugin_manager
from orchestrator.secrets import Secrets
from orchestrator.state import StateStore

PASS, FAIL, SKIP = "PASS", "FAIL", "SKIP"

FAST = Options(concurrency=4, retries=3, retry_interval=0.01, max_backoff=0.05)
"""Workflow options of every run: quick retries, so a transient error costs milliseconds."""

MAX_SAVE_POINTS = 10  # crash points tried inside one create (ctx.instance.update() calls)


class SimulatedCrash(BaseException):
    """The process "dies" here: nothing after this point runs or is recorded."""


class _CrashableStore(StateStore):
    """The state as a process that dies at a simulated crash leaves it: once the crash fired,
    no instance write lands (the execution's own end is still recorded, so the next run
    needs no lock takeover)."""

    def __init__(self, path: Path, faults: _Faults) -> None:
        super().__init__(path)
        self.faults = faults

    def record(self, *args: Any, **kwargs: Any) -> None:
        if not self.faults.dead:
            super().record(*args, **kwargs)

    def save_runtime(self, *args: Any, **kwargs: Any) -> None:
        if not self.faults.dead:
            super().save_runtime(*args, **kwargs)


class Failed(Exception):
    """A check failed; the message says what happened (and what leaked)."""


class Skipped(Exception):
    """A check does not apply to the subject."""


# ---------------------------------------------------------------- what a plugin supplies


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


def _value(value: Value, env: Env) -> Any:
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
    list_resources: Callable[[Env], Iterable[str] | Mapping[str, Iterable[str]]] = attrs.field(kw_only=False)
    """What exists in the target system for ``env.deployment`` (ids, e.g. found by tag or
    label); a mapping of kind -> ids is flattened to ``kind:id``. Counts the subject's own
    resources: every check expects ``expected`` of them after install."""

    properties: Value = attrs.field(factory=dict)
    """Valid properties of the subject node."""

    invalid_properties: Value = None
    """Properties that pass the type's schema but make create fail (``bad properties``)."""

    adopt: Callable[[Env], str] | None = None
    """Create a resource out of band, visible to ``list_resources`` for ``env.deployment``
    (tag or label it), and return the id to pass as ``resource_id``."""

    external_properties: Callable[[str], Mapping[str, Any]] = _default_external
    """The properties that adopt a resource id (default: Cloudify's convention)."""

    delete: Callable[[Env, str], None] | None = None
    """Delete one listed resource out of band. Default: run the plugin's own ``delete``
    hook outside any workflow (the state keeps saying the resource exists)."""

    list_leftovers: Callable[[Env], Iterable[str] | Mapping[str, Iterable[str]]] | None = None
    """Everything the deployment may leave behind (the subject's resources and those of
    helper nodes); must be empty after uninstall. Default: ``list_resources``."""

    relationships: Value = ()
    """The subject node's relationships, as in a blueprint: ``[{type, target}]``."""

    blueprint: Value = None
    """More blueprint (YAML text or a mapping): helper ``node_templates`` the
    relationships target, ``node_types``, ``imports``..."""

    files: Value = attrs.field(factory=dict)
    """Files written beside the blueprint (``{relative path: text}``), e.g. templates."""

    setup: Callable[[Env], None] | None = None
    """Runs before each deployment of a check (e.g. make sure an image is absent)."""

    cleanup: Callable[[Env], None] | None = None
    """Runs after each deployment of a check that was not verified empty after uninstall:
    sweep what a failure leaked, or the adopted resource."""

    expected: int = 1
    """How many resources one node instance makes (as ``list_resources`` counts them)."""

    plugins: Sequence[object] | None = None
    """Plugins to load (default: the suite's)."""

    fixtures: Sequence[str] = ()
    """pytest fixtures to set up before each check (e.g. ``aws_env``)."""

    skip: Mapping[str, str] = attrs.field(factory=dict)
    """Checks to skip, with the reason: ``{"adopt_external": "no such property"}``."""

    name: str | None = None
    """Report name (default: the type), to test one type with several configurations."""

    node: str = "subject"
    """The subject's node template name."""

    @property
    def label(self) -> str:
        return self.name or self.type


# ---------------------------------------------------------------- results


@attrs.define
class CheckResult:
    subject: str
    check: str
    title: str
    status: str  # PASS | FAIL | SKIP
    detail: str
    seconds: float

    @property
    def ok(self) -> bool:
        return self.status != FAIL

    def line(self, width: int = 0) -> str:
        return f"{self.status} {self.subject:<{width}}  {self.title:<19}  {self.detail}  [{self.seconds:.2f}s]"


def format_report(results: Sequence[CheckResult]) -> str:
    """One line per check and subject, then totals."""
    if not results:
        return "no conformance checks ran"
    width = max(len(r.subject) for r in results)
    lines = [r.line(width) for r in results]
    counts = {s: sum(1 for r in results if r.status == s) for s in (PASS, FAIL, SKIP)}
    total = sum(r.seconds for r in results)
    lines.append(f"{counts[PASS]} passed, {counts[FAIL]} failed, {counts[SKIP]} skipped in {total:.1f}s")
    return "\n".join(lines)


def _phrase(ids: Sequence[str]) -> str:
    """``no resource`` / ``1 resource: a`` / ``2 resources: a, b``."""
    if not ids:
        return "no resource"
    return f"{len(ids)} resource{'s' if len(ids) > 1 else ''}: {', '.join(ids)}"


def _summary(result: ExecutionResult) -> str:
    return "; ".join(str(f) for f in result.failures) or result.status


# ---------------------------------------------------------------- the fault injector


class _SaveTrap:
    """Stands in for ``ctx.instance`` during create: counts (and may crash at) each save."""

    def __init__(self, inner: Any, faults: _Faults) -> None:
        object.__setattr__(self, "_inner", inner)
        object.__setattr__(self, "_faults", faults)

    def update(self) -> None:
        faults = self._faults
        faults.saves += 1
        if faults.crash_at_save == faults.saves and faults.fired is None:
            faults.fired = f"save #{faults.saves}"
            faults.dead = True
            raise SimulatedCrash(f"simulated crash in create, before save #{faults.saves} was written")
        self._inner.update()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    def __setattr__(self, name: str, value: Any) -> None:  # e.g. runtime_properties = {...}
        setattr(self._inner, name, value)


class _Faults:
    """A type-less plugin: its create wrapper sees the subject's creates and injects faults.

    Disarmed it passes every call through untouched; ``arm`` makes it watch one node.
    """

    def __init__(self) -> None:
        self.__name__ = "orchestrator.conformance.faults"
        self.arm(None)

    def arm(self, node: str | None, *, crash_at_save: int | None = None, crash_after: bool = False,
            retry_before: bool = False, retry_after: bool = False) -> _Faults:
        self.node = node  # the subject's node template (None: disarmed)
        self.crash_at_save = crash_at_save  # crash when create calls update() the n-th time
        self.crash_after = crash_after  # crash once create returned (before success is recorded)
        self.retry_before = retry_before  # RecoverableError before the real create runs
        self.retry_after = retry_after  # RecoverableError after the real create returned
        self.fired: str | None = None  # which fault happened
        self.dead = False  # a simulated crash fired: the "process" records nothing more
        self.saves = 0  # update() calls of the current create
        self.attempts: list[BaseException | None] = []  # outcome of each subject create
        return self

    def disarm(self) -> None:
        self.node = None

    @hookimpl(wrapper=True)
    def create(self, ctx: Any) -> Iterator[None]:
        if self.node is None or ctx.type != "node-instance" or ctx.node.id != self.node:
            return (yield)
        if self.retry_before and self.fired is None:
            self.fired = "before create"
            self.attempts.append(None)
            raise RecoverableError("conformance: injected transient error before create", retry_after=0)
        self.saves = 0
        inner = ctx._instance
        ctx._instance = _SaveTrap(inner, self)
        try:
            result = yield
        except BaseException as exc:
            self.attempts.append(exc)
            raise
        finally:
            ctx._instance = inner
        self.attempts.append(None)
        if self.fired is None and (self.crash_after or self.crash_at_save is not None):
            self.fired = "after create"
            self.dead = True
            raise SimulatedCrash("simulated crash after create returned, before the engine recorded it")
        if self.retry_after and self.fired is None:
            self.fired = "after create"
            raise RecoverableError("conformance: injected transient error after create", retry_after=0)
        return result


_MANAGERS: dict[tuple[Any, ...], tuple[PluginManager, _Faults, list[object]]] = {}


def _manager(plugins: Sequence[object], entry_points: bool) -> tuple[PluginManager, _Faults]:
    """The plugins plus a fault injector, built once per plugin set (types load in ~0.1s)."""
    key = (tuple(id(p) for p in plugins), entry_points)
    hit = _MANAGERS.get(key)
    if hit is None:
        faults = _Faults()
        pm = get_plugin_manager([*plugins, faults], entry_points=entry_points, env={})
        errors = [e for e in pm.load_errors if e.fatal]
        if errors:
            raise Failed("set-up: plugins failed to load: " + "; ".join(map(str, errors)))
        hit = _MANAGERS[key] = (pm, faults, list(plugins))  # the list keeps the ids valid
    return hit[0], hit[1]


# ---------------------------------------------------------------- one check's machinery


@attrs.define(frozen=True)
class Check:
    id: str
    title: str
    run: Callable[[_Run], str]  # returns the detail of a pass; raises Failed / Skipped


class _Run:
    """One check of one subject: deployments, orchestrators, listing and clean-up."""

    def __init__(self, check: Check, subject: Subject, plugins: Sequence[object], entry_points: bool,
                 tmp_path: Path, fixtures: Fixtures, options: Options) -> None:
        self.check = check
        self.subject = subject
        self.plugins = list(subject.plugins if subject.plugins is not None else plugins)
        self.entry_points = entry_points
        self.tmp_path = tmp_path
        self.fixtures = fixtures
        self.options = options
        self.token = uuid.uuid4().hex[:6]
        self._envs: list[Env] = []
        self.pm, self.faults = _manager(self.plugins, entry_points)
        self.faults.disarm()

    # -- deployments -----------------------------------------------------------------

    def env(self, suffix: str = "") -> Env:
        """A new deployment (set up by the subject's ``setup``)."""
        deployment = f"cf-{_SHORT[self.check.id]}{suffix}-{self.token}"
        env = Env(self.check.id, deployment, self.tmp_path, self.subject.node, self.fixtures)
        self._envs.append(env)
        if self.subject.setup is not None:
            self.subject.setup(env)
        return env

    def close(self) -> None:
        errors = []
        for env in self._envs:
            if self.subject.cleanup is not None and not env.clean:
                try:
                    self.subject.cleanup(env)
                except Exception as exc:
                    errors.append(f"cleanup of {env.deployment}: {type(exc).__name__}: {exc}")
        self.faults.disarm()
        if errors:
            raise Failed("; ".join(errors))

    # -- blueprint and orchestrators ---------------------------------------------------

    def blueprint(self, env: Env, properties: Mapping[str, Any]) -> Path:
        subject = self.subject
        extra = _value(subject.blueprint, env)
        doc = dict(yaml.safe_load(extra) or {}) if isinstance(extra, str) else dict(extra or {})
        node: dict[str, Any] = {"type": subject.type, "properties": dict(properties)}
        relationships = _value(subject.relationships, env)
        if relationships:
            node["relationships"] = [dict(r) for r in relationships]
        doc["node_templates"] = {subject.node: node, **dict(doc.get("node_templates") or {})}
        for name, text in dict(_value(subject.files, env) or {}).items():
            path = self.tmp_path / name
            path.parent.mkdir(parents=True, exist_ok=True)
            if isinstance(text, bytes):
                path.write_bytes(text)
            else:
                path.write_text(text, encoding="utf-8")
        path = self.tmp_path / f"{env.deployment}.yaml"
        path.write_text(json.dumps(doc, indent=1, default=str), encoding="utf-8")  # JSON is YAML
        return path

    def orchestrator(self) -> Orchestrator:
        """A fresh orchestrator on the check's state file, as a restarted process builds it."""
        path = self.tmp_path / "state.db"
        return Orchestrator(pm=self.pm, state_path=path, store=_CrashableStore(path, self.faults))

    @contextmanager
    def session(self) -> Iterator[Orchestrator]:
        orch = self.orchestrator()
        try:
            yield orch
        finally:
            orch.close()

    def install(self, env: Env, properties: Mapping[str, Any] | None = None, **faults: Any) -> ExecutionResult:
        """Install with the fault injector armed with ``faults`` (watching only), then disarmed.

        ``run.faults`` tells afterwards what fired and how each create attempt ended.
        """
        props = _value(self.subject.properties, env) if properties is None else properties
        path = self.blueprint(env, props or {})
        self.faults.arm(env.node, **faults)
        try:
            with self.session() as orch:
                return orch.install(path, None, env.deployment, self.options)
        except (OrchestratorError, BlueprintError) as exc:
            raise Failed(f"install could not start: {exc}") from None
        finally:
            self.faults.node = None  # stop watching; keep what was seen

    def uninstall(self, env: Env) -> ExecutionResult:
        with self.session() as orch:
            return orch.uninstall(env.deployment, self.options)

    def installed(self, env: Env, what: str = "install", **kwargs: Any) -> ExecutionResult:
        """Install; the workflow must succeed."""
        result = self.install(env, **kwargs)
        if not result.ok:
            raise Failed(f"{what} failed: {_summary(result)}")
        return result

    def uninstalled(self, env: Env, what: str = "uninstall") -> None:
        """Uninstall; it must succeed and leave nothing behind."""
        result = self.uninstall(env)
        if not result.ok:
            raise Failed(f"{what} failed: {_summary(result)}")
        self.verify_clean(env, what)

    def verify_clean(self, env: Env, what: str, note: str = "") -> None:
        left = self.leftovers(env)
        if left:
            raise Failed(f"{what} left {_phrase(left)}{note}")
        env.clean = True

    def row(self, env: Env) -> Any:
        with self.session() as orch:
            return orch.store.instances(env.deployment)[env.instance]

    # -- the target system -------------------------------------------------------------

    def resources(self, env: Env) -> list[str]:
        return _ids(self.subject.list_resources(env))

    def leftovers(self, env: Env) -> list[str]:
        lister = self.subject.list_leftovers or self.subject.list_resources
        return _ids(lister(env))

    def exactly(self, env: Env, when: str) -> list[str]:
        """The subject's resources, which must number ``expected``."""
        ids = self.resources(env)
        if len(ids) != self.subject.expected:
            if not ids:
                raise Failed(f"{when}: list_resources shows no resource (expected "
                             f"{self.subject.expected}; is the lister looking for '{env.deployment}'?)")
            raise Failed(f"{when} left {_phrase(ids)} (expected {self.subject.expected})")
        return ids

    def delete_out_of_band(self, env: Env, ids: Sequence[str]) -> str:
        """Make the subject's resources vanish behind the engine's back; how it was done."""
        if self.subject.delete is not None:
            for rid in ids:
                self.subject.delete(env, rid)
            return "deleted with the subject's deleter"
        with self.session() as orch:
            _, plan, rows = orch.status(env.deployment)
            records = {i: InstanceRecord(i, r.node, r.state, dict(r.ops), dict(r.runtime))
                       for i, r in rows.items()}
            contexts = ContextFactory(plan, records, Secrets(), env.deployment, lambda rec: None)
            inst = plan.instances[env.instance]
            node = plan.nodes[inst.node]
            caller = Dispatcher(orch.pm).caller(node.owner, "delete")
            if caller is None:
                raise Skipped("the type has no delete hook and the subject no deleter")
            ctx = contexts.operation(inst, "delete", 0, None, node.owner)
            caller(ctx=ctx)  # the state file never hears of it
        return "deleted by the plugin's delete hook, out of band"


def _ids(listed: Iterable[str] | Mapping[str, Iterable[str]]) -> list[str]:
    if isinstance(listed, Mapping):
        return sorted(f"{kind}:{rid}" for kind, ids in listed.items() for rid in ids)
    return sorted(str(rid) for rid in listed)


_EMPTY = (None, "", [], {})


# ---------------------------------------------------------------- the checks


def check_create_twice(run: _Run) -> str:
    env = run.env()
    run.installed(env)
    first = run.exactly(env, "install")
    before = run.row(env).runtime
    with run.session() as orch:  # the engine forgets that create succeeded; runtime stays
        row = orch.store.instances(env.deployment)[env.instance]
        orch.store.record(env.deployment, env.instance, "creating", json.dumps({**row.ops, "create": "started"}),
                          None, [])
    run.installed(env, "install running create again")
    again = run.resources(env)
    if len(again) != run.subject.expected:
        raise Failed(f"create ran twice and left {_phrase(again)}")
    if again != first:
        raise Failed(f"create ran again and replaced {', '.join(first)} with {', '.join(again)}")
    after = run.row(env).runtime
    lost = [f"{k} (was {v!r}, now {after.get(k)!r})" for k, v in before.items()
            if v not in _EMPTY and after.get(k) in _EMPTY]
    if lost:
        raise Failed(f"create ran again and lost runtime properties: {', '.join(lost)}")
    run.uninstalled(env)
    return _phrase(again).split(":")[0]


def _crashes(run: _Run) -> Iterator[tuple[Env, str, str, list[str]]]:
    """Crash inside create at each point in turn, one deployment per point.

    Points: before each ``ctx.instance.update()`` create makes is written, then after
    create returned. Yields (env, point, label, resources after the crash).
    """
    for at in range(1, MAX_SAVE_POINTS + 2):
        env = run.env(str(at))
        result = run.install(env, crash_at_save=at if at <= MAX_SAVE_POINTS else None, crash_after=True)
        where = run.faults.fired
        if where is None:
            raise Failed(f"create was never called (install {result.status}: {_summary(result)})")
        label = f"crash before create's {where}" if where.startswith("save") else "crash after create returned"
        row = run.row(env)
        if result.ok or row.ops.get("create") != "started":
            raise Failed(f"set-up: the {label} was not recorded as a crash (install {result.status}, "
                         f"create {row.ops.get('create')!r})")
        yield env, where, label, run.resources(env)
        if where == "after create":
            return


def _points(points: Sequence[str]) -> str:
    return f"{len(points)} crash point{'s' if len(points) > 1 else ''} ({', '.join(points)})"


def check_crash_in_create(run: _Run) -> str:
    points = []
    for env, where, label, crashed in _crashes(run):
        resumed = run.install(env)  # a fresh orchestrator, as after a restart
        if not resumed.ok:
            raise Failed(f"{label}: the resumed install failed: {_summary(resumed)}")
        ids = run.resources(env)
        if len(ids) != run.subject.expected:
            raise Failed(f"{label}: the resumed create left {_phrase(ids)} (after the crash: {_phrase(crashed)})")
        run.uninstalled(env, f"{label}: uninstall")
        points.append(where)
    return f"1 resource after each of {_points(points)}"


def check_crash_then_uninstall(run: _Run) -> str:
    points = []
    for env, where, label, crashed in _crashes(run):
        result = run.uninstall(env)  # the user gives up on the install
        if not result.ok:
            raise Failed(f"{label}, then uninstall: it failed: {_summary(result)}")
        run.verify_clean(env, f"{label}, then uninstall: it", f" (after the crash: {_phrase(crashed)})")
        points.append(where)
    return f"nothing left after each of {_points(points)}"


def _retry(run: _Run, before: bool) -> str:
    env = run.env()
    result = run.install(env, retry_before=before, retry_after=not before)
    faults = run.faults
    if faults.fired is None:
        raise Failed(f"create was never called (install {result.status}: {_summary(result)})")
    if not result.ok:
        raise Failed(f"install after a transient error {faults.fired} failed: {_summary(result)}")
    ids = run.resources(env)
    if len(ids) != run.subject.expected:
        raise Failed(f"create retried after a transient error {faults.fired} and left {_phrase(ids)}")
    run.uninstalled(env)
    return f"{_phrase(ids).split(':')[0]} after {len(faults.attempts)} attempts"


def check_retry_before_create(run: _Run) -> str:
    return _retry(run, before=True)


def check_retry_after_create(run: _Run) -> str:
    return _retry(run, before=False)


def check_adopt_external(run: _Run) -> str:
    subject = run.subject
    if subject.adopt is None:
        raise Skipped("no adoption factory (use_external_resource not supported)")
    env = run.env()
    rid = subject.adopt(env)
    listed = run.resources(env)
    if not any(rid == i or i.endswith(f":{rid}") for i in listed):
        raise Failed(f"set-up: the adopted resource {rid} is not listed by list_resources for "
                     f"{env.deployment} (tag or label it for env.deployment); listed: {_phrase(listed)}")
    properties = {**(_value(subject.properties, env) or {}), **subject.external_properties(rid)}
    run.installed(env, "install adopting an external resource", properties=properties)
    after = run.resources(env)
    if after != listed:
        raise Failed(f"install with use_external_resource changed what exists: {_phrase(listed)} "
                     f"before, {_phrase(after)} after")
    result = run.uninstall(env)
    if not result.ok:
        raise Failed(f"uninstall of an adopted resource failed: {_summary(result)}")
    left = run.resources(env)
    if left != listed:
        raise Failed(f"uninstall did not leave the adopted resource alone: {_phrase(listed)} before, "
                     f"{_phrase(left)} after")
    if subject.delete is not None:
        subject.delete(env, rid)
    return f"adopted {rid}, left in place by uninstall"


def check_full_cycle(run: _Run) -> str:
    env = run.env()
    run.installed(env)
    ids = run.exactly(env, "install")
    run.uninstalled(env)
    run.uninstalled(env, "a second uninstall")
    return f"install {_phrase(ids).split(':')[0]}, uninstall none, uninstall twice ok"


def check_deleted_behind_back(run: _Run) -> str:
    env = run.env()
    run.installed(env)
    ids = run.exactly(env, "install")
    how = run.delete_out_of_band(env, ids)
    still = run.resources(env)
    if still:
        raise Failed(f"set-up: after the out-of-band delete ({how}) list_resources still shows {_phrase(still)}")
    run.uninstalled(env, "uninstall after the resource was deleted out of band")
    return f"uninstall ok ({how})"


def check_bad_properties(run: _Run) -> str:
    subject = run.subject
    env = run.env()
    invalid = _value(subject.invalid_properties, env)
    if invalid is None:
        raise Skipped("no invalid_properties given")
    try:
        result = run.install(env, properties=invalid)
    except Failed as exc:
        raise Failed(f"set-up: invalid_properties were rejected before create ran ({exc}); choose "
                     f"values that pass the type's schema but make create fail") from None
    if result.ok:
        raise Failed("install with invalid_properties succeeded")
    errors = [e for e in run.faults.attempts if e is not None]
    if not errors:
        raise Failed(f"install failed, but not in the subject's create: {_summary(result)}")
    error = errors[-1]
    message = str(error).strip()
    if not isinstance(error, NonRecoverableError):
        raise Failed(f"create raised {type(error).__name__}, not NonRecoverableError "
                     f"({len(errors)} attempts): {message or '(no message)'}")
    if not message:
        raise Failed("create raised NonRecoverableError without a message")
    mine = [f for f in result.failures if f.instance == env.instance and f.operation == "create"]
    if not mine or not all(str(f).strip() for f in result.failures):
        raise Failed(f"the workflow's failure summary does not name the failed create: {_summary(result)}")
    with run.session() as orch:
        executions = orch.store.executions(env.deployment)
    if not executions or executions[-1][2] != "failed" or not (executions[-1][5] or "").strip():
        raise Failed(f"the failed execution was recorded without an error summary: {executions[-1:]}")
    run.uninstalled(env, "uninstall after the failed create")
    short = message if len(message) <= 70 else message[:67] + "..."
    return f"NonRecoverableError: {short}; nothing left"


CHECKS: tuple[Check, ...] = (
    Check("create_twice", "create twice", check_create_twice),
    Check("crash_in_create", "crash in create", check_crash_in_create),
    Check("crash_then_uninstall", "crash, uninstall", check_crash_then_uninstall),
    Check("retry_before_create", "retry before create", check_retry_before_create),
    Check("retry_after_create", "retry after create", check_retry_after_create),
    Check("adopt_external", "adopt external", check_adopt_external),
    Check("full_cycle", "full cycle", check_full_cycle),
    Check("deleted_behind_back", "deleted behind back", check_deleted_behind_back),
    Check("bad_properties", "bad properties", check_bad_properties),
)
CHECK_IDS = tuple(c.id for c in CHECKS)
_SHORT = {  # deployment ids read cf-<check>-<token>, e.g. cf-crash2-3f9a1c
    "create_twice": "twice", "crash_in_create": "crash", "crash_then_uninstall": "cun",
    "retry_before_create": "rtb", "retry_after_create": "rta", "adopt_external": "adopt",
    "full_cycle": "cycle", "deleted_behind_back": "gone", "bad_properties": "bad",
}


def _select(checks: Iterable[str] | None) -> list[Check]:
    if checks is None:
        return list(CHECKS)
    by_id = {c.id: c for c in CHECKS}
    unknown = [c for c in checks if c not in by_id]
    if unknown:
        raise ValueError(f"unknown conformance checks: {', '.join(unknown)} (known: {', '.join(CHECK_IDS)})")
    return [by_id[c] for c in checks]


# ---------------------------------------------------------------- running


def run_check(check: str | Check, subject: Subject, *, plugins: Sequence[object] = (), entry_points: bool = False,
              tmp_path: Path, fixtures: Fixtures | Mapping[str, Any] | None = None,
              options: Options | None = None) -> CheckResult:
    """Run one check on one subject; never raises for a failing plugin."""
    check = check if isinstance(check, Check) else _select([check])[0]
    if not isinstance(fixtures, Fixtures):
        fixtures = Fixtures(fixtures)
    started = time.perf_counter()
    tmp_path.mkdir(parents=True, exist_ok=True)
    run: _Run | None = None
    status, detail = PASS, ""
    try:
        if check.id in subject.skip:
            raise Skipped(subject.skip[check.id])
        run = _Run(check, subject, plugins, entry_points, tmp_path, fixtures, options or FAST)
        detail = check.run(run)
    except Skipped as exc:
        status, detail = SKIP, str(exc)
    except Failed as exc:
        status, detail = FAIL, str(exc)
    except Exception as exc:  # a lister, deleter or factory that broke: say where
        status, detail = FAIL, f"{type(exc).__name__}: {exc}"
    finally:
        try:
            if run is not None:
                run.close()
        except Failed as exc:
            if status != FAIL:
                status, detail = FAIL, str(exc)
    return CheckResult(subject.label, check.id, check.title, status, detail, time.perf_counter() - started)


def run_checks(*subjects: Subject, plugins: Sequence[object] = (), entry_points: bool = False,
               tmp_path: Path | str | None = None, fixtures: Mapping[str, Any] | None = None,
               options: Options | None = None, checks: Iterable[str] | None = None) -> list[CheckResult]:
    """Every selected check on every subject, without pytest; ``print(format_report(...))``."""
    import tempfile

    base = Path(tmp_path) if tmp_path is not None else Path(tempfile.mkdtemp(prefix="conformance-"))
    results = []
    for subject in subjects:
        for n, check in enumerate(_select(checks)):
            where = base / f"{_slug(subject.label)}-{n}-{check.id}"
            results.append(run_check(check, subject, plugins=plugins, entry_points=entry_points,
                                     tmp_path=where, fixtures=fixtures, options=options))
    return results


def _slug(text: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "-" for c in text)


# ---------------------------------------------------------------- pytest


_REPORT = "orchestrator-conformance-report"


class _Report:
    """Collects results; prints the report in pytest's terminal summary."""

    def __init__(self) -> None:
        self.results: list[CheckResult] = []

    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        if self.results:
            subjects = list(dict.fromkeys(r.subject for r in self.results))
            ordered = sorted(self.results, key=lambda r: (subjects.index(r.subject), CHECK_IDS.index(r.check)))
            terminalreporter.section("plugin conformance")
            terminalreporter.write_line(format_report(ordered))


def _reporter(config: Any) -> _Report:
    report = config.pluginmanager.get_plugin(_REPORT)
    if report is None:
        report = _Report()
        config.pluginmanager.register(report, _REPORT)
    return report


def conformance_tests(*subjects: Subject, plugins: Sequence[object] = (), entry_points: bool = False,
                      fixtures: Sequence[str] = (), options: Options | None = None,
                      checks: Iterable[str] | None = None, name: str = "TestConformance") -> type:
    """A pytest test class: one test per check, parametrized by subject.

    Assign it to a ``Test*`` name in a test module::

        TestAwsConformance = conformance_tests(Subject(...), Subject(...), plugins=PLUGINS,
                                               fixtures=["aws_env"])

    ``fixtures`` are set up before every check (the subject's own are added); any other
    fixture is reachable from a subject's callables as ``env.fixtures.NAME``.
    """
    import pytest

    if not subjects:
        raise ValueError("conformance_tests needs at least one Subject")
    labels = [s.label for s in subjects]
    duplicates = sorted({n for n in labels if labels.count(n) > 1})
    if duplicates:
        raise ValueError(f"subjects need distinct names (name=...): {', '.join(duplicates)}")
    namespace: dict[str, Any] = {
        "__doc__": f"Plugin conformance of {', '.join(labels)} (orchestrator.conformance).",
    }
    for check in _select(checks):
        test = _make_test(check, plugins, entry_points, fixtures, options, pytest)
        namespace[test.__name__] = pytest.mark.parametrize("subject", subjects, ids=labels)(test)
    return type(name, (), namespace)


def _make_test(check: Check, plugins: Sequence[object], entry_points: bool, fixtures: Sequence[str],
               options: Options | None, pytest: Any) -> Callable[..., None]:
    def test(self: Any, subject: Subject, request: Any) -> None:
        for fixture in (*fixtures, *subject.fixtures):
            request.getfixturevalue(fixture)
        result = run_check(check, subject, plugins=plugins, entry_points=entry_points,
                           tmp_path=request.getfixturevalue("tmp_path"),
                           fixtures=Fixtures(getter=request.getfixturevalue), options=options)
        _reporter(request.config).results.append(result)
        if result.status == SKIP:
            pytest.skip(f"{subject.label}: {result.detail}")
        if result.status == FAIL:
            pytest.fail(f"{subject.label} {check.title}: {result.detail}", pytrace=False)

    test.__name__ = f"test_{check.id}"
    test.__qualname__ = test.__name__
    test.__doc__ = f"Conformance check '{check.title}'."
    return test
