"""The schema of Taller's own tables in ``chat.sqlite``, as an ordered list of migrations.

A database records how far it has been migrated in ``PRAGMA user_version`` (an integer in the
file's header, 0 in a new file), as oterm's ``store/`` does; the version is the number of
migrations applied. :func:`apply_migrations` runs on every open: it applies the missing ones in
order, each together with its version bump inside one ``BEGIN IMMEDIATE`` transaction (SQLite
rolls DDL back too), so a failure leaves the file at the previous version and two processes
opening a new file at once do not both migrate it. A database whose version is higher than the
list is long was written by a newer Taller; it is refused with :class:`SchemaVersionError`
rather than read with a schema this code does not know.

Adding a change to the schema is one entry at the end of this file, never an edit of an entry
that has shipped. The thread search a later issue asks for (SQLite FTS5) would be::

    @migration
    def thread_search(connection: sqlite3.Connection) -> None:
        # full-text index of every thread's messages
        connection.execute(
            "CREATE VIRTUAL TABLE thread_messages USING fts5(thread_id UNINDEXED, role, content)")

and every existing ``chat.sqlite`` gains the table the next time any interface opens it. The
migration bodies use ``connection.execute``, one statement a call: ``executescript`` would
commit the surrounding transaction.

The checkpoint tables (``checkpoints``, ``writes``) in the same file belong to LangGraph's
``SqliteSaver``, which creates and upgrades them itself; no migration here touches them.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

from taller.errors import TallerError


class SchemaVersionError(TallerError, RuntimeError):
    """The database's schema version is newer than any this code knows."""


@dataclass(frozen=True)
class Migration:
    """One step of the schema: ``apply`` takes the database from ``version - 1`` to ``version``."""

    version: int
    name: str
    apply: Callable[[sqlite3.Connection], None]


MIGRATIONS: list[Migration] = []


def migration(apply: Callable[[sqlite3.Connection], None]) -> Callable[[sqlite3.Connection], None]:
    """Append ``apply`` to :data:`MIGRATIONS` as the next version (the order in this file is the order)."""
    MIGRATIONS.append(Migration(version=len(MIGRATIONS) + 1, name=apply.__name__, apply=apply))
    return apply


def schema_version(connection: sqlite3.Connection) -> int:
    """The version recorded in the database (0 for a file no migration has touched)."""
    return int(connection.execute("PRAGMA user_version").fetchone()[0])


def latest_version(migrations: Sequence[Migration] = MIGRATIONS) -> int:
    return len(migrations)


def apply_migrations(connection: sqlite3.Connection, path: Path | str,
                     migrations: Sequence[Migration] = MIGRATIONS) -> list[str]:
    """Bring the database at ``path`` (open as ``connection``) to the latest version.

    Returns the names of the migrations applied (empty when it was up to date, so a second call
    is a no-op). Raises :class:`SchemaVersionError`, naming the file, for a newer database.
    """
    latest = latest_version(migrations)
    if _check_version(schema_version(connection), latest, path) == latest:
        return []  # the common case: no write lock taken, nothing written
    applied = []
    # IMMEDIATE takes the write lock now, so the version read below cannot change under us:
    # another process that migrated first leaves nothing to do here.
    connection.execute("BEGIN IMMEDIATE")
    try:
        current = _check_version(schema_version(connection), latest, path)
        for step in migrations[current:]:
            step.apply(connection)
            # PRAGMA takes no parameters; the version is an int from this list, never user text.
            connection.execute(f"PRAGMA user_version = {int(step.version)}")
            applied.append(step.name)
        connection.commit()
    except BaseException:
        connection.rollback()
        raise
    return applied


def _check_version(version: int, latest: int, path: Path | str) -> int:
    if version > latest:
        raise SchemaVersionError(
            f"{path}: the thread database is at schema version {version}, newer than the {latest} "
            "this Taller knows; upgrade Taller, or point TALLER_HOME at another folder")
    return version


# --- the migrations, oldest first; append only --------------------------------------------------

@migration
def thread_titles(connection: sqlite3.Connection) -> None:
    """The thread list: one row a conversation, with its title and times (seconds since the epoch).

    This is the table Taller created with raw SQL before it had migrations, word for word, so a
    ``chat.sqlite`` from then (version 0, table present) passes through unchanged.
    """
    connection.execute(
        "CREATE TABLE IF NOT EXISTS taller_threads (thread_id TEXT PRIMARY KEY, title TEXT, "
        "created REAL, updated REAL)")


@migration
def thread_heads(connection: sqlite3.Connection) -> None:
    """The current branch of each thread: the checkpoint its next turn continues from.

    LangGraph keeps every checkpoint with its parent, so a regenerated answer or an edited
    message forks the thread into branches; this row says which leaf the thread shows now (a
    thread without a row follows its newest checkpoint, as before branches existed).
    """
    connection.execute(
        "CREATE TABLE IF NOT EXISTS taller_thread_heads (thread_id TEXT PRIMARY KEY, "
        "checkpoint_id TEXT NOT NULL, updated REAL)")


@migration
def thread_search(connection: sqlite3.Connection) -> None:
    """Full-text search over the messages of every thread's current branch (SQLite FTS5).

    ``taller_search`` holds one row per message of the current branch (user and assistant text,
    a tool call's name, arguments, SQL and summary); ``taller_search_state`` records which
    checkpoint each thread was indexed at, so a thread written before this migration (or by a
    process that stopped before indexing) is indexed when the agent next opens the file.
    Accents are folded (``remove_diacritics 2``) so "época" and "epoca" find each other.
    """
    connection.execute(
        "CREATE VIRTUAL TABLE IF NOT EXISTS taller_search USING fts5(content, thread_id UNINDEXED, "
        "message_index UNINDEXED, role UNINDEXED, tokenize = 'unicode61 remove_diacritics 2')")
    connection.execute(
        "CREATE TABLE IF NOT EXISTS taller_search_state (thread_id TEXT PRIMARY KEY, checkpoint_id TEXT)")
