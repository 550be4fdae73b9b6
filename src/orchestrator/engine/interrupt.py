"""Asking a running workflow to stop, from a signal handler or another thread.

The first request stops new operations and lets the running ones finish; the second
abandons them (they stay recorded as in progress, so a resume runs them again).
``request()`` only assigns two attributes, so a signal handler may call it at any
point without deadlocking on a lock the interrupted code holds; the engine polls.
"""

from __future__ import annotations


class Interrupt:
    __slots__ = ("count", "reason")

    def __init__(self) -> None:
        self.count = 0
        self.reason = ""

    def request(self, reason: str) -> None:
        self.reason = reason
        self.count += 1
