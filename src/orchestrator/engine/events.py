"""Deployment events: stored in the state, streamed to listeners, secrets masked."""

from __future__ import annotations

import json
import re
import threading
import time
import traceback
from collections.abc import Callable, Iterable
from typing import Any

from orchestrator.engine import hook_output
from orchestrator.engine.journal import Journal
from orchestrator.secrets import MASK, printed_forms
from orchestrator.state import Event, StateStore

__all__ = ["MASK", "Event", "EventSink", "Listener", "Masker"]  # MASK lives in secrets; imported from here too


class Masker:
    """Replaces every known secret value in text before it is stored or shown.

    A secret is masked in every form it takes when printed (``secrets.printed_forms``:
    raw, ``repr``, JSON, each line of a multi-line value), so a plugin logging
    ``f"{password!r}"`` or a JSON dump leaks nothing. The forms are compiled into one
    regular expression, longest first, when secrets are added; masking a text is then
    one ``sub`` (nothing at all when there are no secrets), cheap enough for every event.
    Values shorter than ``MIN_MASKABLE`` cannot be masked and are ignored.
    """

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        self._forms: set[str] = set()
        self.sources: list[str] = []  # the secrets as given (what a worker needs to mask the same)
        self._pattern: re.Pattern[str] | None = None
        self._lock = threading.Lock()
        self.add(secrets)

    def add(self, secrets: Iterable[str]) -> None:
        with self._lock:
            forms = set(self._forms)
            for secret in secrets:
                if isinstance(secret, str):
                    forms |= printed_forms(secret)
                    self.sources.append(secret)
            if forms == self._forms:
                return
            self._forms = forms
            ordered = sorted(forms, key=lambda f: (-len(f), f))
            self._pattern = re.compile("|".join(map(re.escape, ordered)))

    def __call__(self, text: str) -> str:
        pattern = self._pattern
        return text if pattern is None else pattern.sub(MASK, text)

    def __bool__(self) -> bool:
        return self._pattern is not None

    def contains(self, text: str) -> bool:
        """Whether ``text`` holds a known secret in any printed form."""
        pattern = self._pattern
        return pattern is not None and pattern.search(text) is not None

    def secret_keys(self, runtime: dict[str, Any]) -> list[str]:
        """The runtime properties whose values hold a known secret (a plugin copied one)."""
        if self._pattern is None:
            return []
        return sorted(k for k, v in runtime.items()
                      if self.contains(v if isinstance(v, str) else json.dumps(v, ensure_ascii=False, default=str)))


Listener = Callable[[Event], None]

TEXT_LIMIT = 64 * 1024
"""Characters of a message kept in an event, a failure or an instance's error: a plugin that
raises (or logs) 20 MB must not put it in every row and summary."""
TRACEBACK_LIMIT = 256 * 1024


def exception_text(exc: BaseException) -> str:
    """``str(exc)``, even of a plugin's exception whose ``__str__`` fails (it is still its failure)."""
    try:
        return str(exc)
    except Exception as error:
        return f"(its message could not be read: {type(error).__name__})"


def traceback_text(exc: BaseException, mask: Callable[[str], str]) -> str:
    """The traceback of ``exc``, masked, then clipped to its last ``TRACEBACK_LIMIT`` characters."""
    return clipped(mask("".join(traceback.format_exception(exc))), TRACEBACK_LIMIT, tail=True)


def clipped(text: str, limit: int = TEXT_LIMIT, *, tail: bool = False) -> str:
    """``text``, or its first (``tail``: last) ``limit`` characters and how long it was. Clip what
    is already masked: a secret cut in two would no longer match its mask."""
    if len(text) <= limit:
        return text
    if tail:
        return f"({len(text):,} characters; the last {limit:,}) ...{text[-limit:]}"
    return f"{text[:limit]}... ({len(text):,} characters; the first {limit:,})"


class EventSink:
    """Where the engine and ``ctx.logger`` report; thread-safe. Events are written through the
    execution's ``journal`` (with whatever instance writes it holds), then published."""

    def __init__(self, store: StateStore, deployment: str, execution: int | None,
                 masker: Masker | None = None) -> None:
        self.store = store
        self.deployment = deployment
        self.execution = execution
        self.masker = masker or Masker()
        self.listeners: list[Listener] = []
        self.dropped: list[str] = []  # why a listener was dropped
        self.journal = Journal(store, deployment, execution, self.publish)

    def make(self, type: str, message: str, instance: str | None = None, operation: str | None = None,
             plugin: str | None = None, level: str = "info") -> Event:
        return Event(time.time(), self.deployment, self.execution, instance, operation, plugin, type, level,
                     clipped(self.masker(message)))

    def emit(self, event: Event) -> None:
        self.journal.commit(None, (event,))

    def publish(self, *events: Event) -> None:
        """Tell every listener, in order; one that raises is dropped (and said in ``dropped``):
        showing a run must never stop it, or leave its state half written."""
        if not self.listeners:
            return
        hook = hook_output.pause()  # a listener's print is the command's output, even in a hook's thread
        try:
            for event in events:
                for listener in list(self.listeners):
                    try:
                        listener(event)
                    except Exception as exc:
                        self.listeners.remove(listener)
                        self.dropped.append(f"stopped showing events: {type(exc).__name__}: {exc}")
        finally:
            hook_output.resume(hook)
