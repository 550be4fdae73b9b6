"""How a workflow shows progress: a live view on a terminal, plain lines otherwise, JSON lines."""

from __future__ import annotations

import signal

import pytest
from engine_helpers import journal_lines, run_in_terminal

pytestmark = pytest.mark.integration

BLUEPRINT = """
node_templates:
  vm: {type: journal.Host, instances: 2, properties: {sleep: 0.3}}
  app:
    type: journal.Node
    properties: {sleep: 0.3, fail: {start: 1}, retry_after: 0.3}
    relationships: [{type: orchestrator.relationships.contained_in, target: vm}]
"""


def test_live_view_on_a_terminal(cli, tmp_path):
    (tmp_path / "bp.yaml").write_text(BLUEPRINT)
    code, screen = run_in_terminal(cli, tmp_path, "install", "bp.yaml", "--state", "s.db")
    assert code == 0, screen
    assert "\x1b[" in screen  # the live view redraws with terminal escape codes
    for text in ("wave 1", "wave 2", "vm_0", "app_1", "journal.Host", "2/2 done", "✓"):
        assert text in screen, text
    assert "↻" in screen or "retrying" in screen  # app's start failed once, retried
    assert "install of deployment 'bp' succeeded" in screen
    assert "operation_started" not in screen and "create started" not in screen  # no event spam


def test_plain_lines_when_not_a_terminal(cli, tmp_path):
    (tmp_path / "bp.yaml").write_text(BLUEPRINT)
    result = cli("install", "bp.yaml", "--state", "s.db")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert "\x1b[" not in result.stdout
    assert any(line.endswith("app_0.start [journal] start will be retried in 0.3s (retry 1 of 5): "
                             "start failed on purpose (1/1)") for line in lines), lines
    assert sum(" create succeeded" in line for line in lines) == 4
    assert lines[-1].startswith("install of deployment 'bp' succeeded in")


def test_live_view_says_a_stop_request_and_ends_cancelled(cli, tmp_path):
    (tmp_path / "bp.yaml").write_text("node_templates: {n: {type: journal.Node, instances: 2, "
                                      "properties: {sleep: 1.0}}}")
    sent = []

    def stop_once_both_run(proc) -> None:
        if not sent and journal_lines(tmp_path).count("create n_0") + journal_lines(tmp_path).count("create n_1") == 2:
            proc.send_signal(signal.SIGTERM)
            sent.append(True)

    code, screen = run_in_terminal(cli, tmp_path, "install", "bp.yaml", "--state", "s.db",
                                   on_tick=stop_once_both_run, columns=120)
    assert sent and code == 1, screen
    assert "SIGTERM: no new operations will start; waiting for 2 running operations" in screen
    assert "stopping" in screen and "was cancelled" in screen and "Traceback" not in screen
