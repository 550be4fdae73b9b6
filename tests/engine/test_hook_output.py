"""What a hook prints: its thread's writes become its log lines, everything else goes through."""

from __future__ import annotations

import io
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager

from orchestrator.engine import hook_output


@contextmanager
def streams() -> Iterator[tuple[io.StringIO, io.StringIO]]:
    """Streams of the test's own (set in the test itself: pytest sets its capture as the call begins)."""
    saved = sys.stdout, sys.stderr
    sys.stdout, sys.stderr = out, err = io.StringIO(), io.StringIO()
    try:
        yield out, err
    finally:
        sys.stdout, sys.stderr = saved


def test_a_hooks_lines_are_said_and_other_threads_write_through():
    with streams() as (out, err):
        _a_hook_and_others_write(out, err)


def _a_hook_and_others_write(out: io.StringIO, err: io.StringIO) -> None:
    said: list[tuple[str, str]] = []
    with hook_output.captured():
        token = hook_output.running(lambda level, text: said.append((level, text)))
        print("one", "line")
        sys.stdout.write("half ")
        print("careful", file=sys.stderr)
        sys.stdout.write("and the rest\ntail")
        other = threading.Thread(target=print, args=("from a thread the plugin started",))
        other.start()
        other.join()
        assert not sys.stdout.isatty()
        hook_output.done(token)
        print("the command's own output")
    assert said == [("info", "one line"), ("warning", "careful"), ("info", "half and the rest"), ("info", "tail")]
    assert out.getvalue() == "from a thread the plugin started\nthe command's own output\n"
    assert err.getvalue() == ""
    assert sys.stdout is out and sys.stderr is err, "the streams that were there come back"


def test_a_listener_writing_from_a_hooks_thread_writes_through():
    with streams() as (out, _):
        _a_listener_writes(out)


def _a_listener_writes(out: io.StringIO) -> None:
    said: list[tuple[str, str]] = []
    with hook_output.captured():
        token = hook_output.running(lambda level, text: said.append((level, text)))
        paused = hook_output.pause()
        print("an event shown")
        hook_output.resume(paused)
        print("the hook again")
        hook_output.done(token)
    assert out.getvalue() == "an event shown\n"
    assert said == [("info", "the hook again")]


def test_captures_nest_and_a_stream_replaced_meanwhile_stays():
    with streams() as (out, _):
        _nested(out)


def _nested(out: io.StringIO) -> None:
    with hook_output.captured():
        proxy = sys.stdout
        with hook_output.captured():
            assert sys.stdout is proxy
        assert sys.stdout is proxy, "still in use by the outer execution"
        assert proxy.fileno is not None and proxy.original is out
        mine = io.StringIO()
        sys.stdout = mine
    assert sys.stdout is mine
