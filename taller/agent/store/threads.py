"""The thread list in ``$TALLER_HOME/chat.sqlite``: which conversations exist, their titles and times.

The messages themselves are LangGraph checkpoints in the same file (``SqliteSaver``); this table
is what the thread pickers of the TUI, the web page and ``taller threads`` show. One
:class:`ThreadStore` owns the file's connection: the agent hands it to the checkpointer and makes
the checkpointer use :attr:`ThreadStore.lock`, because one connection must not interleave two
transactions ("cannot start a transaction within a transaction") when the server runs several
requests at once.

Several processes open the same file (the TUI, the server, ``taller ask``), so the connection
runs in WAL mode (readers do not block the writer) and waits up to :data:`BUSY_TIMEOUT_S` for
another process's write lock instead of failing at once.

Where a per-thread lock across processes will go (two processes running turns on one thread
lose one of them today; a later issue fixes it): a migration appended to
:mod:`taller.agent.store.migrations` that creates a ``thread_locks`` table (thread id, owner
process, time taken), and a context-manager method here that claims the row in a
``BEGIN IMMEDIATE`` transaction and releases it, which :meth:`Agent.run` and
:meth:`Agent.resume` wrap around their turn. The store already owns the connection, the busy
timeout and the schema version that change needs.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from pathlib import Path
from typing import Any, Sequence

from taller.agent.store.migrations import MIGRATIONS, Migration, apply_migrations
from taller.errors import TallerError

BUSY_TIMEOUT_S = 10.0  # how long to wait for another process's write lock on the file
TITLE_FROM_MESSAGE_CHARS = 60  # a new thread is titled with the start of its first message
TITLE_MAX_CHARS = 120  # the longest title a rename keeps


class ThreadStoreError(TallerError, RuntimeError):
    """The thread database cannot be opened (not SQLite, unreadable, locked too long)."""


class ThreadStore:
    """Taller's thread table on one SQLite connection; every method is safe across threads."""

    def __init__(self, connection: sqlite3.Connection, path: Path | str) -> None:
        self.connection = connection
        self.path = Path(path)
        self.lock = threading.Lock()

    @classmethod
    def open(cls, path: Path | str, migrations: Sequence[Migration] = MIGRATIONS) -> ThreadStore:
        """Open (creating if needed) the database at ``path`` and migrate it to the latest schema.

        Raises :class:`~taller.agent.store.migrations.SchemaVersionError` for a database written
        by a newer Taller and :class:`ThreadStoreError` for a file SQLite cannot use; both name
        the file.
        """
        # check_same_thread=False: the server and the TUI call from worker threads; self.lock
        # serialises them. timeout sets SQLite's busy timeout for waits on other processes.
        deadline = time.monotonic() + BUSY_TIMEOUT_S
        while True:
            connection = sqlite3.connect(str(path), timeout=BUSY_TIMEOUT_S, check_same_thread=False)
            try:
                connection.execute("PRAGMA journal_mode=WAL")
                apply_migrations(connection, path, migrations)
            except sqlite3.DatabaseError as exc:
                connection.close()
                # SQLite answers "locked" at once, without its busy wait, while another process
                # switches a new file to WAL or recovers its log: try again, for as long.
                if (isinstance(exc, sqlite3.OperationalError) and "locked" in str(exc)
                        and time.monotonic() < deadline):
                    time.sleep(0.05)
                    continue
                raise ThreadStoreError(f"{path}: cannot open the thread database: {exc}") from exc
            except BaseException:
                connection.close()
                raise
            return cls(connection, path)

    def threads(self) -> list[dict[str, Any]]:
        """Saved conversations, most recently used first."""
        with self.lock:
            rows = self.connection.execute(
                "SELECT thread_id, title, created, updated FROM taller_threads ORDER BY updated DESC").fetchall()
        return [{"thread_id": row[0], "title": row[1], "created": row[2], "updated": row[3]} for row in rows]

    def title(self, thread_id: str) -> str | None:
        """The thread's title, or None for a thread the store does not know."""
        with self.lock:
            row = self.connection.execute(
                "SELECT title FROM taller_threads WHERE thread_id = ?", (thread_id,)).fetchone()
        return row[0] if row else None

    def touch(self, thread_id: str, message: str) -> None:
        """Record a turn on ``thread_id``: create it titled after ``message``, or mark it used now.

        An existing thread keeps its title (the user may have renamed it).
        """
        now = time.time()
        title = " ".join(message.split())[:TITLE_FROM_MESSAGE_CHARS]
        self._write("INSERT INTO taller_threads (thread_id, title, created, updated) VALUES (?, ?, ?, ?) "
                    "ON CONFLICT(thread_id) DO UPDATE SET updated = excluded.updated",
                    (thread_id, title, now, now))

    def rename(self, thread_id: str, title: str) -> None:
        self._write("UPDATE taller_threads SET title = ? WHERE thread_id = ?",
                    (title.strip()[:TITLE_MAX_CHARS], thread_id))

    def delete(self, thread_id: str) -> None:
        """Forget the thread's row, its current branch and its search rows (its checkpoints are
        the checkpointer's to delete)."""
        with self.lock:
            try:
                for table in ("taller_threads", "taller_thread_heads", "taller_search", "taller_search_state"):
                    # The table names are this list's, never user text.
                    self.connection.execute(f"DELETE FROM {table} WHERE thread_id = ?", (thread_id,))
                self.connection.commit()
            except BaseException:
                if self.connection.in_transaction:
                    self.connection.rollback()
                raise

    def head(self, thread_id: str) -> str | None:
        """The checkpoint the thread's current branch ends at, or None when none was recorded."""
        with self.lock:
            row = self.connection.execute(
                "SELECT checkpoint_id FROM taller_thread_heads WHERE thread_id = ?", (thread_id,)).fetchone()
        return row[0] if row else None

    def set_head(self, thread_id: str, checkpoint_id: str) -> None:
        """Make the branch ending at ``checkpoint_id`` the thread's current one."""
        self._write("INSERT INTO taller_thread_heads (thread_id, checkpoint_id, updated) VALUES (?, ?, ?) "
                    "ON CONFLICT(thread_id) DO UPDATE SET checkpoint_id = excluded.checkpoint_id, "
                    "updated = excluded.updated", (thread_id, checkpoint_id, time.time()))

    def close(self) -> None:
        with self.lock:
            self.connection.close()

    def _write(self, statement: str, parameters: tuple[Any, ...]) -> None:
        with self.lock:
            try:
                self.connection.execute(statement, parameters)
                self.connection.commit()
            except BaseException:
                if self.connection.in_transaction:  # a failed write must not leave BEGIN open
                    self.connection.rollback()
                raise
