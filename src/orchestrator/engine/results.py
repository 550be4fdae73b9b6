"""What an execution reports: its status, its failures, and what it could not finish."""

from __future__ import annotations

import attrs


@attrs.define(slots=True)
class Failure:
    instance: str
    operation: str
    plugin: str | None
    message: str
    traceback: str = ""

    def __str__(self) -> str:
        return f"{self.instance}: {self.operation} ({self.plugin or 'no plugin'}) failed: {self.message}"


@attrs.define(slots=True)
class ExecutionResult:
    workflow: str
    deployment: str
    execution: int | None
    status: str  # succeeded | failed | cancelled
    failures: list[Failure]
    duration: float
    operations: int  # hook calls that ran (attempts included)
    abandoned: list[str] = attrs.field(factory=list)  # hooks left running by a second stop request
    notes: list[str] = attrs.field(factory=list)  # state or lock trouble, said once
    # --ignore-failures: the failures of instances that are not gone (their resources may remain)
    left_behind: list[Failure] = attrs.field(factory=list)
    results: dict[str, object] = attrs.field(factory=dict)  # per instance, what a hook returned (drift, ...)
    # its end could not be written to the state: it still shows "started" with its lock held
    unended: bool = False

    @property
    def ok(self) -> bool:
        """Succeeded, and the state says so: an execution whose end was not recorded is not ok
        (its lock stays until a later run takes it over), whatever its operations did."""
        return self.status == "succeeded" and not self.unended
