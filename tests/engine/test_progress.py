"""How a workflow shows progress: a live view on a terminal, plain lines otherwise, JSON lines."""

from __future__ import annotations

import os
import pty
import select
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

BLUEPRINT = """
node_templates:
  vm: {type: journal.Host, instances: 2, properties: {sleep: 0.3}}
  app:
    type: journal.Node
    properties: {sleep: 0.3, fail: {start: 1}, retry_after: 0.3}
    relationships: [{type: orchestrator.relationships.contained_in, target: vm}]
"""


def run_in_terminal(cli, tmp_path: Path, *args: str) -> tuple[int, str]:
    """Run the CLI attached to a pseudo-terminal (isatty() is true) and collect the screen bytes."""
    main, child = pty.openpty()
    env = dict(cli.env, TERM="xterm-256color", COLUMNS="100", LINES="30")
    proc = subprocess.Popen([sys.executable, "-m", "orchestrator", *args], cwd=tmp_path, env=env,
                            stdin=child, stdout=child, stderr=child, close_fds=True)
    os.close(child)
    chunks, deadline = [], time.monotonic() + 60
    while time.monotonic() < deadline:
        ready, _, _ = select.select([main], [], [], 0.1)
        if ready:
            try:
                data = os.read(main, 65536)
            except OSError:
                break
            if not data:
                break
            chunks.append(data)
        elif proc.poll() is not None:
            break
    proc.wait(timeout=10)
    os.close(main)
    return proc.returncode, b"".join(chunks).decode("utf-8", "replace")


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
    import signal

    (tmp_path / "bp.yaml").write_text("node_templates: {n: {type: journal.Node, instances: 2, "
                                      "properties: {sleep: 1.0}}}")
    main, child = pty.openpty()
    env = dict(cli.env, TERM="xterm-256color", COLUMNS="120", LINES="30")
    proc = subprocess.Popen([sys.executable, "-m", "orchestrator", "install", "bp.yaml", "--state", "s.db"],
                            cwd=tmp_path, env=env, stdin=child, stdout=child, stderr=child, close_fds=True)
    os.close(child)
    journal = tmp_path / "journal.log"
    chunks, deadline, sent = [], time.monotonic() + 60, False
    while time.monotonic() < deadline:
        if not sent and journal.exists() and journal.read_text().count("create ") >= 2:
            proc.send_signal(signal.SIGTERM)
            sent = True
        ready, _, _ = select.select([main], [], [], 0.05)
        if ready:
            try:
                data = os.read(main, 65536)
            except OSError:
                break
            if not data:
                break
            chunks.append(data)
        elif proc.poll() is not None:
            break
    proc.wait(timeout=10)
    os.close(main)
    screen = b"".join(chunks).decode("utf-8", "replace")
    assert sent and proc.returncode == 1, screen
    assert "SIGTERM: no new operations will start; waiting for 2 running operations" in screen
    assert "stopping" in screen and "was cancelled" in screen and "Traceback" not in screen
