"""Fixtures of the AWS plugin tests: a moto server over HTTP, a boto3 client, fast nodes.

The moto server and ``aws_env`` come from ``testenv.fixtures`` (registered here unless
``tests/conftest.py`` already did). Hook-level tests all run under the harness's fixed
deployment id ``test``, so each node gets a unique id: tag lookups never see another
test's resources, and nothing needs a (slow) moto reset.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

import boto3
import pytest
from aws_helpers import FAST


@pytest.fixture
def ec2(aws_env: Any) -> Any:
    """A plain boto3 EC2 client on the moto server (what the tests check with)."""
    return boto3.client("ec2", region_name="us-east-1")


@pytest.fixture
def aws_orch(orch: Any, aws_env: Any) -> Any:
    """The ``orch`` harness with every AWS plugin module in use."""
    from plugins_aws.testing import PLUGINS

    orch.use(*PLUGINS)
    return orch


@pytest.fixture
def node(aws_orch: Any) -> Callable[..., Any]:
    """``node(type, prefix="n", runtime=None, relationships=(), **properties)``: a fast node
    with a unique id."""

    def make(node_type: str, prefix: str = "n", runtime: dict[str, Any] | None = None,
             relationships: Any = (), **properties: Any) -> Any:
        props = {**FAST, **properties}
        return aws_orch.node(node_type, props, runtime, id=f"{prefix}{uuid.uuid4().hex[:8]}",
                             relationships=relationships)

    return make


@pytest.fixture
def deployment() -> str:
    """A fresh deployment id for whole-blueprint tests."""
    return f"d{uuid.uuid4().hex[:10]}"
