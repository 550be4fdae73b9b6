"""Moving the SQLite write-ahead log into the database file from a thread of its own.

SQLite's automatic checkpoint runs inside whichever commit crosses its threshold: that
commit copies about a thousand pages and syncs both files, so during an execution one
state write in a few hundred takes milliseconds, and the writes of a fast workflow
spend a third of their wall time there. A ``Checkpointer`` does the same passive
checkpoints on its own connection while the engine keeps writing (SQLite's WAL lets a
checkpoint run beside a writer, and the sqlite3 module lets go of the GIL meanwhile).
Durability does not change: a commit is in the log before it returns either way, and a
checkpoint that is killed halfway is redone from the log by the next opener.

One thing only the writer can do: start the log file over. SQLite rewinds the log when a
write transaction begins with every frame already copied, which under a stream of
commits never happens to a checkpoint that finished on another connection (new frames
arrived meanwhile), so the log would grow for as long as the stream lasts. After each
background checkpoint the writer is told (``restart_due``) and runs one more passive
checkpoint itself, before its next transaction: it copies only the frames written since,
and the transaction then starts the log over.

The writer's own automatic checkpoint stays as a backstop at a larger threshold, for a
checkpointer that cannot keep up (or an error it keeps meeting, e.g. a full disk).
"""

from __future__ import annotations

import sqlite3
import threading

BACKSTOP_PAGES = 16384  # the writer's own threshold while a checkpointer runs (64 MB of 4 KB pages)
EVERY_COMMITS = 200  # commits between two checkpoints (about 700 pages of engine writes)
POLL = 0.05  # seconds between looks at the commit count


class Checkpointer:
    """A daemon thread that checkpoints ``uri`` every ``EVERY_COMMITS`` commits it is told of."""

    def __init__(self, uri: str) -> None:
        self._db = sqlite3.connect(uri, uri=True, timeout=0, isolation_level=None, check_same_thread=False)
        self._db.execute("PRAGMA synchronous=NORMAL")  # a checkpoint syncs the files it copies between
        self.commits = 0  # incremented by the writer (under its lock); read here without one
        self.restart_due = False  # set here after a checkpoint; the writer clears it (``finish``)
        self._done = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="state-checkpoint", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(POLL):
            commits = self.commits
            if commits - self._done >= EVERY_COMMITS:
                self._done = commits
                try:
                    self._db.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
                except sqlite3.Error:
                    continue  # busy or out of space: the next round (or the writer's backstop) does it
                self.restart_due = True

    def finish(self, writer: sqlite3.Connection) -> None:
        """On the writer's connection, outside a transaction: copy what the last background
        checkpoint left, so that the next transaction starts the log over."""
        self.restart_due = False
        try:
            writer.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
        except sqlite3.Error:
            pass  # the next background round tries again

    def close(self) -> None:
        """Stop the thread and close its connection (before the writer's, which then checkpoints
        what is left as the last connection of this process)."""
        self._stop.set()
        self._thread.join()
        self._db.close()
