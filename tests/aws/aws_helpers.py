"""Helpers shared by the AWS plugin tests (a module of its own so test files can import it)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import botocore.client
import botocore.exceptions
import pytest

AMI = "ami-12c6146b"  # in moto's catalogue; tests never depend on what it contains
FAST = {"poll_interval": 0.01, "wait_timeout": 2.0}  # node properties for quick waits


@contextmanager
def aws_answers(monkeypatch: pytest.MonkeyPatch, operation: str, code: str, times: int = 1,
                status: int = 400) -> Iterator[list[int]]:
    """Make the next ``times`` calls of ``operation`` fail with AWS error ``code``.

    For answers moto never gives (``DependencyViolation`` on a group, throttling): the
    request is refused client-side, exactly as botocore would raise AWS's answer.
    """
    real = botocore.client.BaseClient._make_api_call
    seen = [0]

    def fake(self: Any, operation_name: str, api_params: Any) -> Any:
        if operation_name == operation and seen[0] < times:
            seen[0] += 1
            raise botocore.exceptions.ClientError(
                {"Error": {"Code": code, "Message": f"injected {code}"},
                 "ResponseMetadata": {"HTTPStatusCode": status}}, operation_name)
        return real(self, operation_name, api_params)

    with monkeypatch.context() as m:
        m.setattr(botocore.client.BaseClient, "_make_api_call", fake)
        yield seen


def ingress(ec2: Any, group_id: str) -> list[dict[str, Any]]:
    (group,) = ec2.describe_security_groups(GroupIds=[group_id])["SecurityGroups"]
    return group["IpPermissions"]


def group_exists(ec2: Any, group_id: str) -> bool:
    try:
        ec2.describe_security_groups(GroupIds=[group_id])
    except botocore.exceptions.ClientError:
        return False
    return True


class KillingProxy:
    """An HTTP proxy in front of the moto server that kills a process mid-install.

    When AWS (moto) has *answered* the ``nth`` request whose action is ``action``, the
    victim is killed with SIGKILL before the answer is relayed: the exact window where a
    resource exists but its id was never saved.
    """

    def __init__(self, upstream: str, action: str = "RunInstances", nth: int = 2) -> None:
        import http.server
        import threading
        import urllib.parse

        self.upstream = urllib.parse.urlsplit(upstream)
        self.marker = f"Action={action}&".encode()
        self.nth = nth
        self.hits = 0
        self.victim: Any = None
        self.killed = threading.Event()
        self._lock = threading.Lock()
        proxy = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def do_POST(self) -> None:  # EC2's query protocol: every call is a POST
                proxy._relay(self)

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def _relay(self, handler: Any) -> None:
        import http.client
        import os
        import signal

        body = handler.rfile.read(int(handler.headers.get("Content-Length") or 0))
        headers = {k: v for k, v in handler.headers.items()
                   if k.lower() not in ("connection", "keep-alive", "transfer-encoding")}
        conn = http.client.HTTPConnection(self.upstream.hostname, self.upstream.port, timeout=30)
        try:
            conn.request("POST", handler.path, body, headers)
            answer = conn.getresponse()
            data = answer.read()
        finally:
            conn.close()
        with self._lock:
            if self.marker in body + b"&":
                self.hits += 1
                if self.hits == self.nth and self.victim is not None:
                    os.kill(self.victim.pid, signal.SIGKILL)
                    self.victim.wait()
                    self.killed.set()
                    handler.close_connection = True
                    return
        handler.send_response(answer.status)
        for key, value in answer.getheaders():
            if key.lower() not in ("connection", "content-length", "transfer-encoding", "server", "date"):
                handler.send_header(key, value)
        handler.send_header("Content-Length", str(len(data)))
        handler.end_headers()
        handler.wfile.write(data)

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
