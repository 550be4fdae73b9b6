"""What the engine and the commands need from a state store, whatever holds it.

Two stores implement it: ``SqliteStore`` (a file, the default) and ``PostgresStore`` (a
``postgresql://`` URL, for teams and workers on several hosts); ``NullStore`` records
nothing (the plugin-testing harness's single hook calls). All SQL stays in the store
modules. Every method raises ``StateError`` (never a driver's exception) with a sentence
a user can act on; writes that carry an ``execution`` land only while that execution
holds the deployment's lock (else ``LockLostError``): the fencing that makes a taken-over
lock safe.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any, Protocol

from orchestrator.state.records import (
    DeploymentRow,
    Event,
    InstanceRow,
    InstanceWrite,
    LockInfo,
    OperationOutcome,
)

BLOB_DAYS = 7 * 86400.0  # seconds: a blob (a plan, the blueprint's files) unused this long goes


class StateStore(Protocol):
    location: str  # what to name in messages (a path, or a URL without its password)
    writable: bool  # False: opened for reading only; nothing is ever written
    recovered: str | None  # what --state-recover did, if anything

    def close(self) -> None: ...

    # -- deployments ---------------------------------------------------------------
    def get_deployment(self, deployment: str) -> DeploymentRow | None: ...
    def plan_version(self, deployment: str, version: int) -> str | None: ...
    def deployment_ids(self) -> list[str]: ...
    def save_deployment(self, deployment: str, blueprint: str, inputs: dict[str, Any], plan: str,
                        structure: str, instances: Iterable[tuple[str, str]]) -> int: ...
    def settle_plan(self, deployment: str, version: int, unchanged: Iterable[str], wanted: set[str]) -> None: ...
    def instance_versions(self, deployment: str) -> dict[str, int | None]: ...
    def set_leftovers(self, deployment: str, leftovers: list[dict[str, Any]]) -> None: ...
    def delete_deployment(self, deployment: str) -> None: ...

    # -- instances -----------------------------------------------------------------
    def instances(self, deployment: str, ids: Iterable[str] | None = None) -> dict[str, InstanceRow]: ...
    def write(self, deployment: str, writes: list[InstanceWrite], events: list[tuple],
              execution: int | None = None) -> None:
        """One atomic write of several instances and events (the engine's journal); each write's
        ``forget`` names operations whose worker dispatch (``dispatch_operation``) it settles and
        deletes with it. With ``execution``, all or nothing while it holds the deployment's lock."""

    def record(self, deployment: str, instance: str, state: str, ops_json: str, runtime_json: str | None,
               events: list[tuple], execution: int | None = None, error: str | None = None,
               secret_keys: list[str] | None = None, version: int | None = None,
               forget: Iterable[str] = ()) -> None:
        """``write`` of one instance."""

    def merge_runtime(self, deployment: str, instance: str, changed: Mapping[str, Any], removed: Iterable[str],
                      execution: int | None = None, token: str | None = None) -> bool:
        """Apply key-by-key changes atomically (a worker's ``ctx.instance.update()``): two workers
        changing different keys of one instance never lose each other's work. With ``token``,
        only while that dispatch is current (False otherwise: the operation was superseded)."""

    # -- events --------------------------------------------------------------------
    def add_event(self, event: tuple) -> None: ...
    def add_events(self, events: list[tuple], execution: int | None = None) -> None: ...
    def events(self, deployment: str, after: int = 0, execution: int | None = None) -> list[Event]: ...

    # -- executions and locks ------------------------------------------------------
    def lock(self, deployment: str) -> LockInfo | None: ...
    def start_execution(self, deployment: str, workflow: str, lease: float | None = None,
                        prepare: Callable[[], None] | None = None, backup: bool = True,
                        request: str | None = None) -> int: ...
    def renew_lease(self, execution: int, lease: float | None = None) -> bool: ...
    def unlock(self, deployment: str, force: bool = False) -> tuple[LockInfo | None, str | None]: ...
    def end_execution(self, execution: int, status: str, error: str | None = None) -> None: ...
    def last_request(self, deployment: str) -> tuple[str, str, str | None] | None: ...
    def last_execution(self, deployment: str) -> int | None: ...
    def executions(self, deployment: str) -> list[tuple]: ...

    # -- operations run by workers (--executor celery) -----------------------------
    def dispatch_operation(self, deployment: str, instance: str, key: str, token: str,
                           adopt: bool = False) -> OperationOutcome | None:
        """Note that operation ``key`` of ``instance`` is sent to a worker as ``token``.

        With ``adopt`` (a resumed execution's first try of an operation left started), what
        an earlier dispatch left is returned instead of replaced when it is a success or a
        live claim: a worker's finished result is kept, a running one is waited for."""

    def claim_operation(self, deployment: str, instance: str, key: str, token: str, worker: str,
                        lease: float) -> bool:
        """A worker takes the operation before running it; False: it is finished, taken by a
        live worker, or superseded (a redelivered message is then dropped)."""

    def renew_claims(self, worker: str, lease: float) -> None: ...
    def finish_operation(self, deployment: str, instance: str, key: str, token: str, worker: str,
                         outcome: str) -> bool:
        """Record a worker's outcome (JSON) once; False when it was superseded meanwhile."""

    def outcomes(self, deployment: str, tokens: Iterable[str]) -> dict[str, OperationOutcome]:
        """The dispatches among ``tokens`` (claimed or finished): one query for many waits."""

    def forget_operation(self, deployment: str, instance: str, key: str) -> None: ...
    def withdraw_operation(self, deployment: str, instance: str, key: str, token: str) -> bool:
        """Take back a dispatch no live worker holds (a stop request): True if it was unclaimed
        or its worker stopped renewing the claim, and now no worker will run it."""

    # -- what workers on other hosts read: plans and the blueprint's files -------------
    def put_blob(self, deployment: str, digest: str, data: bytes) -> None:
        """Keep ``data`` under its ``digest`` (content-addressed: storing it again only marks it
        used); blobs of the deployment unused for a week go, all of them with the deployment."""

    def blob(self, deployment: str, digest: str) -> bytes | None: ...


class WritesOne:
    """``record``, ``write`` of one instance: what every store shares (mixed into each)."""

    def write(self, deployment: str, writes: list[InstanceWrite], events: list[tuple],
              execution: int | None = None) -> None:
        raise NotImplementedError

    def record(self, deployment: str, instance: str, state: str, ops_json: str, runtime_json: str | None,
               events: list[tuple], execution: int | None = None, error: str | None = None,
               secret_keys: list[str] | None = None, version: int | None = None,
               forget: Iterable[str] = ()) -> None:
        self.write(deployment, [InstanceWrite(instance, state, ops_json, runtime_json, error, secret_keys, version,
                                              tuple(forget))], events, execution)
