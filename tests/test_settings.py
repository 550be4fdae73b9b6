"""Seconds read from the environment: leases, claims and the plugin timeout share one rule."""

from __future__ import annotations

import pytest

from orchestrator.remote.worker import DEFAULT_CLAIM_LEASE, claim_lease
from orchestrator.settings import positive_seconds
from orchestrator.state.leases import DEFAULT_LEASE, lease_seconds


@pytest.mark.parametrize(("text", "expected"), [
    ("2.5", 2.5), ("60", 60.0), ("", 7.0), ("soon", 7.0), ("0", 7.0), ("-1", 7.0),
    ("inf", 7.0), ("nan", 7.0),
])
def test_only_a_positive_finite_number_replaces_the_default(text: str, expected: float) -> None:
    assert positive_seconds("X", 7.0, {"X": text}) == expected


def test_the_leases_read_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ORCHESTRATOR_LOCK_LEASE", "0.6")
    monkeypatch.setenv("ORCHESTRATOR_CLAIM_LEASE", "never")
    assert lease_seconds() == 0.6
    assert claim_lease() == DEFAULT_CLAIM_LEASE
    monkeypatch.delenv("ORCHESTRATOR_LOCK_LEASE")
    assert lease_seconds() == DEFAULT_LEASE
