"""The checks: each runs the subject through the real engine and counts what exists.

A check returns the detail of a pass, or raises ``Failed`` (saying what leaked) or
``Skipped`` (why it does not apply). The table at the end is the suite.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import attrs

from orchestrator.errors import NonRecoverableError

from .session import MAX_SAVE_POINTS, Failed, Operation, Session, Skipped, count, phrase, summary
from .subject import Env, value_of

_EMPTY = (None, "", [], {})
CREATE = Operation("create", "create")


@attrs.define(frozen=True)
class Check:
    id: str
    title: str
    run: Callable[[Session], str]  # returns the detail of a pass; raises Failed / Skipped
    short: str  # deployment ids read cf-<short>-<token>, e.g. cf-crash2-3f9a1c


# ---------------------------------------------------------------- helpers


def _lost(before: dict[str, Any], after: dict[str, Any]) -> list[str]:
    return [f"{k} (was {v!r}, now {after.get(k)!r})" for k, v in before.items()
            if v not in _EMPTY and after.get(k) in _EMPTY and not k.startswith("_")]


def _crash_points(s: Session, op: Operation, prefix: str) -> Iterator[tuple[Env, str, str, list[str]]]:
    """Crash inside ``op`` at each point in turn, one deployment per point.

    Points: before each ``update()`` the operation makes is written, then after it
    returned. An uninstall operation is crashed in the uninstall of a fresh install.
    Yields (env, point, label, resources after the crash).
    """
    for at in range(1, MAX_SAVE_POINTS + 2):
        env = s.env(f"{prefix}{at}")
        fault = {**op.faults(), "crash_at_save": at if at <= MAX_SAVE_POINTS else None, "crash_after": True}
        if op.install:
            workflow, result = "install", s.install(env, **fault)
        else:
            s.installed(env, "set-up: install")
            workflow, result = "uninstall", s.uninstall(env, **fault)
        where = s.faults.fired
        if where is None:
            raise Failed(f"{op.label} was never called ({workflow} {result.status}: {summary(result)})")
        label = f"crash before {op.label}'s {where}" if where.startswith("save") else f"crash after {op.label} returned"
        row = s.row(env)
        if result.ok or row.ops.get(op.key) != "started":
            raise Failed(f"set-up: the {label} was not recorded as a crash ({workflow} {result.status}, "
                         f"{op.label} {row.ops.get(op.key)!r})")
        yield env, where, label, s.resources(env)
        if where == "after":
            return


def _points(points: list[str]) -> str:
    return f"{len(points)} crash point{'s' if len(points) != 1 else ''} ({', '.join(points)})"


def _resume_install(s: Session, env: Env, label: str, crashed: list[str]) -> None:
    resumed = s.install(env)  # a fresh orchestrator, as after a restart
    if not resumed.ok:
        raise Failed(f"{label}: the resumed install failed: {summary(resumed)}")
    found = s.resources(env)
    if len(found) != s.subject.expected:
        raise Failed(f"{label}: the resumed install left {phrase(found)} (after the crash: {phrase(crashed)})")
    s.check_running(env, f"{label}: after the resumed install")
    s.uninstalled(env, f"{label}: uninstall")


def _resume_uninstall(s: Session, env: Env, label: str, crashed: list[str]) -> None:
    resumed = s.uninstall(env)
    if not resumed.ok:
        raise Failed(f"{label}: the resumed uninstall failed: {summary(resumed)}")
    s.verify_clean(env, f"{label}: the resumed uninstall", f" (after the crash: {phrase(crashed)})")


# ---------------------------------------------------------------- the checks


def check_create_twice(s: Session) -> str:
    env = s.env()
    s.installed(env)
    first = s.exactly(env, "install")
    before = s.row(env).runtime
    s.rerun(env, CREATE)  # the engine forgets that create succeeded; runtime stays
    s.installed(env, "install running create again")
    again = s.resources(env)
    if len(again) != s.subject.expected:
        raise Failed(f"create ran twice and left {phrase(again)}")
    if again != first:
        raise Failed(f"create ran again and replaced {', '.join(first)} with {', '.join(again)}")
    lost = _lost(before, s.row(env).runtime)
    if lost:
        raise Failed(f"create ran again and lost runtime properties: {', '.join(lost)}")
    s.uninstalled(env)
    return count(again)


def check_operations_twice(s: Session) -> str:
    """Every operation but create and delete run again after it succeeded (runtime kept)."""
    ops = [op for op in s.operations() if op.name not in ("create", "delete")]
    if not ops:
        raise Skipped("the type implements no operation besides create and delete")
    done: list[str] = []
    installs = [op for op in ops if op.install]
    if installs:
        env = s.env()
        s.installed(env)
        first = s.exactly(env, "install")
        for op in installs:
            before = s.row(env).runtime
            s.rerun(env, op)
            s.installed(env, f"install running {op.label} again")
            again = s.resources(env)
            if len(again) != s.subject.expected:
                raise Failed(f"{op.label} ran twice and left {phrase(again)}")
            if again != first:
                raise Failed(f"{op.label} ran again and replaced {', '.join(first)} with {', '.join(again)}")
            s.check_running(env, f"{op.label} ran twice")
            lost = _lost(before, s.row(env).runtime)
            if lost:
                raise Failed(f"{op.label} ran again and lost runtime properties: {', '.join(lost)}")
            done.append(op.label)
        s.uninstalled(env)
    every = s.operations()
    for op in (op for op in ops if not op.install):
        later = [o for o in every[every.index(op) + 1:] if not o.install]
        if not later:
            continue  # its success is recorded with the instance's end: "crash after it returned" covers it
        env = s.env(f"{op.name[:4]}")
        s.installed(env, "set-up: install")
        halted = s.uninstall(env, **later[0].faults(), crash_before=True)
        if s.faults.fired != "before":
            raise Failed(f"set-up: uninstall did not reach {later[0].label} ({summary(halted)})")
        s.rerun(env, op)
        again = s.uninstall(env)
        if not again.ok:
            raise Failed(f"uninstall running {op.label} again failed: {summary(again)}")
        s.verify_clean(env, f"uninstall running {op.label} again")
        done.append(op.label)
    if not done:
        raise Skipped("no operation besides create and delete can run twice in a row")
    return f"no duplicate after each of {', '.join(done)} ran twice"


def check_crash_in_create(s: Session) -> str:
    points = []
    for env, where, label, crashed in _crash_points(s, CREATE, ""):
        _resume_install(s, env, label, crashed)
        points.append("after create" if where == "after" else where)
    return f"1 resource after each of {_points(points)}"


def check_crash_in_operations(s: Session) -> str:
    """A crash at each point of every other operation (relationship hooks included), then resume."""
    ops = [op for op in s.operations() if op.name != "create"]
    if not ops:
        raise Skipped("the type implements no operation besides create")
    done = []
    for op in ops:
        points = []
        for env, where, label, crashed in _crash_points(s, op, op.name[:4]):
            if op.install:
                _resume_install(s, env, label, crashed)
            else:
                _resume_uninstall(s, env, label, crashed)
            points.append(where)
        done.append(f"{op.label}: {', '.join(points)}")
    return f"resumed after every crash point ({'; '.join(done)})"


def check_crash_then_uninstall(s: Session) -> str:
    """A crash at each point of each install operation, then uninstall instead: nothing is left."""
    installs = [op for op in s.operations() if op.install]
    done = []
    for op in installs:
        points = []
        for env, where, label, crashed in _crash_points(s, op, "" if op.name == "create" else op.name[:4]):
            result = s.uninstall(env)  # the user gives up on the install
            if not result.ok:
                raise Failed(f"{label}, then uninstall: it failed: {summary(result)}")
            s.verify_clean(env, f"{label}, then uninstall: it", f" (after the crash: {phrase(crashed)})")
            points.append(f"after {op.label}" if where == "after" else where)
        done.append((op.label, points))
    if len(done) == 1:
        return f"nothing left after each of {_points(done[0][1])}"
    return "nothing left after each crash point (" + "; ".join(f"{label}: {', '.join(p)}" for label, p in done) + ")"


def check_stop_stops(s: Session) -> str:
    if not s.implements("stop"):
        raise Skipped("the type has no stop operation")
    if s.subject.running is None:
        raise Skipped("no running probe (Subject.running)")
    env = s.env()
    s.installed(env)
    running = s.running(env) or []
    if s.implements("start") and len(running) != s.subject.expected:
        raise Failed(f"after install the running probe shows {phrase(running)} (expected {s.subject.expected})")
    halted = s.uninstall(env, operation="stop", crash_after=True)
    if s.faults.fired != "after":
        raise Failed(f"stop did not return: {summary(halted)}")
    still = s.running(env) or []
    if still:
        raise Failed(f"stop returned but the running probe still shows {phrase(still)}")
    s.uninstalled(env, "uninstall resumed after stop")
    return f"{count(running)} running after install, none once stop returned"


def _retry(s: Session, before: bool) -> str:
    env = s.env()
    result = s.install(env, retry_before=before, retry_after=not before)
    faults = s.faults
    if faults.fired is None:
        raise Failed(f"create was never called (install {result.status}: {summary(result)})")
    where = "before create" if before else "after create"
    if not result.ok:
        raise Failed(f"install after a transient error {where} failed: {summary(result)}")
    found = s.resources(env)
    if len(found) != s.subject.expected:
        raise Failed(f"create retried after a transient error {where} and left {phrase(found)}")
    s.check_running(env, f"after a transient error {where}")
    s.uninstalled(env)
    return f"{count(found)} after {len(faults.attempts)} attempts"


def check_retry_before_create(s: Session) -> str:
    return _retry(s, before=True)


def check_retry_after_create(s: Session) -> str:
    return _retry(s, before=False)


def check_adopt_external(s: Session) -> str:
    subject = s.subject
    if subject.adopt is None:
        raise Skipped("no adoption factory (use_external_resource not supported)")
    env = s.env()
    rid = subject.adopt(env)
    listed = s.resources(env)
    if not any(rid == i or i.endswith(f":{rid}") for i in listed):
        raise Failed(f"set-up: the adopted resource {rid} is not listed by list_resources for "
                     f"{env.deployment} (tag or label it for env.deployment); listed: {phrase(listed)}")
    properties = {**(value_of(subject.properties, env) or {}), **subject.external_properties(rid)}
    s.installed(env, "install adopting an external resource", properties=properties)
    after = s.resources(env)
    if after != listed:
        raise Failed(f"install with use_external_resource changed what exists: {phrase(listed)} "
                     f"before, {phrase(after)} after")
    result = s.uninstall(env)
    if not result.ok:
        raise Failed(f"uninstall of an adopted resource failed: {summary(result)}")
    left = s.resources(env)
    if left != listed:
        raise Failed(f"uninstall did not leave the adopted resource alone: {phrase(listed)} before, "
                     f"{phrase(left)} after")
    if subject.delete is not None:
        subject.delete(env, rid)
    return f"adopted {rid}, left in place by uninstall"


def check_full_cycle(s: Session) -> str:
    env = s.env()
    s.installed(env)
    found = s.exactly(env, "install")
    s.uninstalled(env)
    s.uninstalled(env, "a second uninstall")
    return f"install {count(found)}, uninstall none, uninstall twice ok"


def check_deleted_behind_back(s: Session) -> str:
    env = s.env()
    s.installed(env)
    found = s.exactly(env, "install")
    how = s.delete_out_of_band(env, found)
    still = s.resources(env)
    if still:
        raise Failed(f"set-up: after the out-of-band delete ({how}) list_resources still shows {phrase(still)}")
    s.uninstalled(env, "uninstall after the resource was deleted out of band")
    return f"uninstall ok ({how})"


def check_bad_properties(s: Session) -> str:
    subject = s.subject
    env = s.env()
    invalid = value_of(subject.invalid_properties, env)
    if invalid is None:
        raise Skipped("no invalid_properties given")
    try:
        result = s.install(env, properties=invalid)
    except Failed as exc:
        raise Failed(f"set-up: invalid_properties were rejected before create ran ({exc}); choose "
                     f"values that pass the type's schema but make create fail") from None
    if result.ok:
        raise Failed("install with invalid_properties succeeded")
    errors = [e for e in s.faults.attempts if e is not None]
    if not errors:
        raise Failed(f"install failed, but not in the subject's create: {summary(result)}")
    error = errors[-1]
    message = str(error).strip()
    if not isinstance(error, NonRecoverableError):
        raise Failed(f"create raised {type(error).__name__}, not NonRecoverableError "
                     f"({len(errors)} attempts): {message or '(no message)'}")
    if not message:
        raise Failed("create raised NonRecoverableError without a message")
    mine = [f for f in result.failures if f.instance == env.instance and f.operation == "create"]
    if not mine or not all(str(f).strip() for f in result.failures):
        raise Failed(f"the workflow's failure summary does not name the failed create: {summary(result)}")
    with s.session() as orch:
        executions = orch.store.executions(env.deployment)
    if not executions or executions[-1][2] != "failed" or not (executions[-1][5] or "").strip():
        raise Failed(f"the failed execution was recorded without an error summary: {executions[-1:]}")
    s.uninstalled(env, "uninstall after the failed create")
    short = message if len(message) <= 70 else message[:67] + "..."
    return f"NonRecoverableError: {short}; nothing left"


CHECKS: tuple[Check, ...] = (
    Check("create_twice", "create twice", check_create_twice, "twice"),
    Check("operations_twice", "operations twice", check_operations_twice, "otw"),
    Check("crash_in_create", "crash in create", check_crash_in_create, "crash"),
    Check("crash_in_operations", "crash in operations", check_crash_in_operations, "cop"),
    Check("crash_then_uninstall", "crash, uninstall", check_crash_then_uninstall, "cun"),
    Check("stop_stops", "stop stops", check_stop_stops, "stop"),
    Check("retry_before_create", "retry before create", check_retry_before_create, "rtb"),
    Check("retry_after_create", "retry after create", check_retry_after_create, "rta"),
    Check("adopt_external", "adopt external", check_adopt_external, "adopt"),
    Check("full_cycle", "full cycle", check_full_cycle, "cycle"),
    Check("deleted_behind_back", "deleted behind back", check_deleted_behind_back, "gone"),
    Check("bad_properties", "bad properties", check_bad_properties, "bad"),
)
CHECK_IDS = tuple(c.id for c in CHECKS)
