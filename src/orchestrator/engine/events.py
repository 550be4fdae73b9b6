"""Deployment events: stored in the state, streamed to listeners, secrets masked."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable

from orchestrator.state import Event, StateStore

MASK = "******"


class Masker:
    """Replaces every known secret value in text before it is stored or shown."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        self._secrets: list[str] = []
        self._lock = threading.Lock()
        self.add(secrets)

    def add(self, secrets: Iterable[str]) -> None:
        with self._lock:
            merged = set(self._secrets) | {s for s in secrets if isinstance(s, str) and len(s) >= 3}
            self._secrets = sorted(merged, key=len, reverse=True)

    def __call__(self, text: str) -> str:
        for secret in self._secrets:
            if secret in text:
                text = text.replace(secret, MASK)
        return text

    def __bool__(self) -> bool:
        return bool(self._secrets)


Listener = Callable[[Event], None]


class EventSink:
    """Where the engine and ``ctx.logger`` report; thread-safe."""

    def __init__(self, store: StateStore | None, deployment: str, execution: int | None,
                 masker: Masker | None = None) -> None:
        self.store = store
        self.deployment = deployment
        self.execution = execution
        self.masker = masker or Masker()
        self.listeners: list[Listener] = []

    def make(self, type: str, message: str, instance: str | None = None, operation: str | None = None,
             plugin: str | None = None, level: str = "info") -> Event:
        return Event(time.time(), self.deployment, self.execution, instance, operation, plugin, type, level,
                     self.masker(message) if self.masker else message)

    @staticmethod
    def row(event: Event) -> tuple:
        return (event.ts, event.deployment, event.execution, event.instance, event.operation, event.plugin,
                event.type, event.level, event.message)

    def emit(self, event: Event) -> None:
        if self.store is not None:
            self.store.add_event(self.row(event))
        self.publish(event)

    def publish(self, event: Event) -> None:
        for listener in self.listeners:
            listener(event)
