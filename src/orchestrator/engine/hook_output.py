"""What a hook prints becomes log lines of its operation.

A plugin's ``print()`` would otherwise land in the middle of the command's own output:
between the JSON lines of ``--json``, through the live view, and past the masking of
secrets. While an execution runs, ``sys.stdout`` and ``sys.stderr`` are proxies: what a
thread writes while it runs a hook becomes ``log`` events of that operation (stdout at
info, stderr at warning), masked like ``ctx.logger``'s, one per line. Every other write
(the command's own output, a listener, a thread the plugin started) goes through to the
stream that was there before. Processes a hook starts write to the file descriptors
themselves: capture their output with ``subprocess`` to see it in the events.
"""

from __future__ import annotations

import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TextIO

Say = Callable[[str, str], None]  # (level, text): OperationLogger._say


class _Thread(threading.local):
    say: Say | None = None  # where this thread's writes go while it runs a hook
    pending: dict[str, str] | None = None  # a line begun, per level, not yet ended


_local = _Thread()
_lock = threading.Lock()
_users = 0
_installed: tuple[HookStream, HookStream] | None = None


class HookStream:
    """``sys.stdout`` / ``sys.stderr`` while executions run (see the module)."""

    def __init__(self, original: TextIO, level: str) -> None:
        self.original = original
        self.level = level

    def write(self, text: str) -> int:
        say = _local.say
        if say is None:
            return self.original.write(text)
        pending = _local.pending
        if pending is None:
            pending = _local.pending = {}
        *lines, rest = (pending.pop(self.level, "") + text).split("\n")
        if rest:
            pending[self.level] = rest
        for line in lines:
            say(self.level, line)
        return len(text)

    def writelines(self, lines: Any) -> None:
        for line in lines:
            self.write(line)

    def flush(self) -> None:
        if _local.say is None:
            self.original.flush()

    def close(self) -> None:
        if _local.say is None:  # a hook closing "its" stdout closes nothing
            self.original.close()

    def isatty(self) -> bool:
        return False if _local.say is not None else self.original.isatty()

    def __getattr__(self, name: str) -> Any:  # fileno, encoding, buffer...: the real stream's
        return getattr(self.original, name)


def running(say: Say) -> object:
    """This thread now runs a hook whose output goes to ``say``; hand the token to ``done``."""
    local = _local
    token = local.say, local.pending
    local.say, local.pending = say, None
    return token


def done(token: object) -> None:
    """The hook returned: a last line without its newline is said too."""
    local = _local
    say, pending = local.say, local.pending
    local.say, local.pending = token  # type: ignore[misc]
    if pending and say is not None:
        for level, rest in pending.items():
            say(level, rest)


def pause() -> Say | None:
    """Writes from this thread go to the real streams until ``resume`` (a listener printing an
    event that a hook's ``ctx.instance.update()`` published must not become a log line)."""
    say = _local.say
    if say is not None:
        _local.say = None
    return say


def resume(say: Say | None) -> None:
    if say is not None:
        _local.say = say


@contextmanager
def captured() -> Iterator[None]:
    """Proxies in ``sys.stdout`` and ``sys.stderr`` while the block runs (shared by the
    executions of one process; what was there before comes back after the last one)."""
    global _users, _installed
    with _lock:
        if _users == 0 and sys.stdout is not None and sys.stderr is not None:
            _installed = HookStream(sys.stdout, "info"), HookStream(sys.stderr, "warning")
            sys.stdout, sys.stderr = _installed  # type: ignore[assignment]
        _users += 1
    try:
        yield
    finally:
        with _lock:
            _users -= 1
            if _users == 0 and _installed is not None:
                out, err = _installed
                if sys.stdout is out:  # else someone replaced it meanwhile: theirs stays
                    sys.stdout = out.original
                if sys.stderr is err:
                    sys.stderr = err.original
                _installed = None
