"""A state store that keeps nothing: single hook calls in the plugin-testing harness, and
benchmarks of the engine alone. Writes succeed and are forgotten; reads find nothing."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any

from orchestrator.state.protocol import WritesOne
from orchestrator.state.records import (
    DeploymentRow,
    Event,
    InstanceRow,
    InstanceWrite,
    LockInfo,
    OperationOutcome,
)


class NullStore(WritesOne):
    location = "(no state)"
    writable = True
    recovered: str | None = None

    def close(self) -> None:
        pass

    def get_deployment(self, deployment: str) -> DeploymentRow | None:
        return None

    def plan_version(self, deployment: str, version: int) -> str | None:
        return None

    def deployment_ids(self) -> list[str]:
        return []

    def save_deployment(self, deployment: str, blueprint: str, inputs: dict[str, Any], plan: str,
                        structure: str, instances: Iterable[tuple[str, str]]) -> int:
        return 1

    def settle_plan(self, deployment: str, version: int, unchanged: Iterable[str], wanted: set[str]) -> None:
        pass

    def instance_versions(self, deployment: str) -> dict[str, int | None]:
        return {}

    def set_leftovers(self, deployment: str, leftovers: list[dict[str, Any]]) -> None:
        pass

    def delete_deployment(self, deployment: str) -> None:
        pass

    def instances(self, deployment: str, ids: Iterable[str] | None = None) -> dict[str, InstanceRow]:
        return {}

    def write(self, deployment: str, writes: list[InstanceWrite], events: list[tuple],
              execution: int | None = None) -> None:
        pass

    def merge_runtime(self, deployment: str, instance: str, changed: Mapping[str, Any], removed: Iterable[str],
                      execution: int | None = None, token: str | None = None) -> bool:
        return True

    def add_event(self, event: tuple) -> None:
        pass

    def add_events(self, events: list[tuple], execution: int | None = None) -> None:
        pass

    def events(self, deployment: str, after: int = 0, execution: int | None = None) -> list[Event]:
        return []

    def lock(self, deployment: str) -> LockInfo | None:
        return None

    def start_execution(self, deployment: str, workflow: str, lease: float | None = None,
                        prepare: Callable[[], None] | None = None, backup: bool = True,
                        request: str | None = None) -> int:
        if prepare is not None:
            prepare()
        return 0

    def renew_lease(self, execution: int, lease: float | None = None) -> bool:
        return True

    def unlock(self, deployment: str, force: bool = False) -> tuple[LockInfo | None, str | None]:
        return None, None

    def end_execution(self, execution: int, status: str, error: str | None = None) -> None:
        pass

    def last_request(self, deployment: str) -> tuple[str, str, str | None] | None:
        return None

    def last_execution(self, deployment: str) -> int | None:
        return None

    def executions(self, deployment: str) -> list[tuple]:
        return []

    def dispatch_operation(self, deployment: str, instance: str, key: str, token: str,
                           adopt: bool = False) -> OperationOutcome | None:
        return None

    def claim_operation(self, deployment: str, instance: str, key: str, token: str, worker: str,
                        lease: float) -> bool:
        return True

    def renew_claims(self, worker: str, lease: float) -> None:
        pass

    def finish_operation(self, deployment: str, instance: str, key: str, token: str, worker: str,
                         outcome: str) -> bool:
        return True

    def outcomes(self, deployment: str, tokens: Iterable[str]) -> dict[str, OperationOutcome]:
        return {}

    def forget_operation(self, deployment: str, instance: str, key: str) -> None:
        pass

    def withdraw_operation(self, deployment: str, instance: str, key: str, token: str) -> bool:
        return True

    def put_blob(self, deployment: str, digest: str, data: bytes) -> None:
        pass

    def blob(self, deployment: str, digest: str) -> bytes | None:
        return None
