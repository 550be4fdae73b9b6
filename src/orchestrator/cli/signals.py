"""SIGINT and SIGTERM during a workflow: requests to stop, never an exception mid-write.

Python turns SIGINT into ``KeyboardInterrupt`` wherever the main thread happens to be,
which can leave a run without its "cancelled" record; SIGTERM's default kills the
process outright, leaving the lock behind. While a workflow runs, both only count a
stop request that the engine acts on.

Python runs a signal's handler once for however many deliveries happened since it last
looked, so two quick Ctrl+C would count as one. The C-level handler also writes one
byte per delivery to the wakeup file descriptor: the handler counts those.
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading
from collections.abc import Iterator
from typing import Any

from orchestrator.engine.interrupt import Interrupt

NAMES = {signal.SIGINT: "Ctrl+C (SIGINT)", signal.SIGTERM: "SIGTERM"}


@contextlib.contextmanager
def stop_requests(interrupt: Interrupt) -> Iterator[Interrupt]:
    """Route SIGINT/SIGTERM to ``interrupt`` inside the block (main thread only; else a no-op)."""
    if threading.current_thread() is not threading.main_thread():
        yield interrupt
        return
    read_end, write_end = os.pipe()
    os.set_blocking(read_end, False)
    os.set_blocking(write_end, False)

    def handler(signum: int, _frame: Any) -> None:
        try:
            delivered = os.read(read_end, 64) or bytes([signum])
        except BlockingIOError:
            delivered = bytes([signum])
        for number in delivered:
            interrupt.request(NAMES.get(signal.Signals(number), f"signal {number}"))

    previous_fd = signal.set_wakeup_fd(write_end, warn_on_full_buffer=False)
    previous = {sig: signal.signal(sig, handler) for sig in NAMES}
    try:
        yield interrupt
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)
        signal.set_wakeup_fd(previous_fd)
        os.close(read_end)
        os.close(write_end)
