"""The Celery application the CLI sends operations through and workers consume.

JSON only (no pickle: nothing a broker client sends can run code on a worker, and
workers may run as root). Late acknowledgement with a prefetch of one: a message is
acknowledged once its operation finished, so a worker killed mid-operation leaves it
to be delivered again. Results do not go through Celery: a worker writes the outcome
to the state store, where the CLI reads all of them with one query (waiting on one
Celery result per operation costs milliseconds of CPU each).
"""

from __future__ import annotations

import os
import re
from typing import Any

from orchestrator.errors import ExecutorUsageError

TASK = "orchestrator.run_operation"
DEFAULT_QUEUE = "orchestrator"
VISIBILITY_TIMEOUT = 3600.0  # Redis: an unacknowledged message is delivered again after this long


def broker_url(value: str | None) -> str:
    url = value or os.environ.get("ORCHESTRATOR_BROKER")
    if not url:
        raise ExecutorUsageError("Celery workers need a broker: --broker URL or ORCHESTRATOR_BROKER "
                         "(e.g. redis://127.0.0.1:6379/0 or amqp://user:password@host//)")
    return url


def make_app(broker: str) -> Any:
    try:
        from celery import Celery
    except ImportError:
        raise ExecutorUsageError("--executor celery needs Celery: pip install 'orchestrator[celery]'") from None
    app = Celery("orchestrator", broker=broker, set_as_current=False)
    app.conf.update(
        task_serializer="json", accept_content=["json"], result_serializer="json",
        task_ignore_result=True, result_backend=None,
        task_acks_late=True, worker_prefetch_multiplier=1,
        task_default_queue=DEFAULT_QUEUE,
        broker_transport_options={"visibility_timeout": VISIBILITY_TIMEOUT},
        broker_connection_retry_on_startup=True,
        broker_connection_timeout=5,
        worker_hijack_root_logger=False,
        worker_send_task_events=False,
        task_send_sent_event=False,
    )

    @app.task(name=TASK, ignore_result=True, acks_late=True)
    def run_operation(request: dict[str, Any]) -> None:
        from orchestrator.remote.worker import current_worker

        current_worker().run(request)

    return app


def display_broker(url: str) -> str:
    """The broker URL fit to print (without its password)."""
    return re.sub(r"(://[^:/@]*:)[^@/]*@", r"\1***@", url)
