"""The thread store: migrations on open, old databases kept, newer ones refused, the thread table's methods."""

from __future__ import annotations

import sqlite3
import threading

import pytest

from taller.agent.session import Agent
from taller.agent.store import MIGRATIONS, SchemaVersionError, ThreadStore, ThreadStoreError, apply_migrations, schema_version
from taller.agent.store.migrations import Migration
from taller.config import get_settings
from taller.llm import FakeChatModel

# What Agent.__init__ ran before the store existed, word for word: the schema of every
# chat.sqlite written until now (with no PRAGMA user_version, so at version 0).
OLD_SCHEMA = ("CREATE TABLE IF NOT EXISTS taller_threads (thread_id TEXT PRIMARY KEY, title TEXT, "
              "created REAL, updated REAL)")
OLD_THREADS = [("older", "train the vae", 1000.0, 1500.0), ("newer", "describe the database", 1200.0, 2000.0)]


def make_old_database(path):
    connection = sqlite3.connect(str(path))
    connection.execute("PRAGMA journal_mode=WAL")
    connection.execute(OLD_SCHEMA)
    connection.executemany("INSERT INTO taller_threads VALUES (?, ?, ?, ?)", OLD_THREADS)
    connection.commit()
    connection.close()


def table_sql(path) -> dict[str, str]:
    connection = sqlite3.connect(str(path))
    try:
        return dict(connection.execute("SELECT name, sql FROM sqlite_master WHERE type = 'table'").fetchall())
    finally:
        connection.close()


def version_of(path) -> int:
    connection = sqlite3.connect(str(path))
    try:
        return schema_version(connection)
    finally:
        connection.close()


def test_migrations_are_numbered_in_order():
    assert [m.version for m in MIGRATIONS] == list(range(1, len(MIGRATIONS) + 1))
    assert len({m.name for m in MIGRATIONS}) == len(MIGRATIONS)


def test_a_fresh_database_gets_the_latest_version_and_todays_schema(tmp_path):
    fresh, old = tmp_path / "fresh.sqlite", tmp_path / "old.sqlite"
    ThreadStore.open(fresh).close()
    make_old_database(old)
    assert version_of(fresh) == len(MIGRATIONS)
    # Migration 1 is exactly the schema Taller wrote before it had migrations.
    assert table_sql(fresh)["taller_threads"] == table_sql(old)["taller_threads"]


def test_an_old_database_is_upgraded_and_keeps_its_threads(tmp_path):
    path = tmp_path / "chat.sqlite"
    make_old_database(path)
    before = table_sql(path)
    assert version_of(path) == 0
    store = ThreadStore.open(path)
    assert [(t["thread_id"], t["title"], t["created"], t["updated"]) for t in store.threads()] == \
        [OLD_THREADS[1], OLD_THREADS[0]]  # most recently used first
    assert store.title("older") == "train the vae"
    store.close()
    assert version_of(path) == len(MIGRATIONS)
    assert table_sql(path)["taller_threads"] == before["taller_threads"]


def test_the_agent_lists_and_continues_threads_of_an_old_database():
    path = get_settings().checkpoint_db
    path.parent.mkdir(parents=True, exist_ok=True)
    make_old_database(path)
    agent = Agent(chat_model=FakeChatModel(responses=[{"tool": "none"}, "Hello again."]))
    assert [t["thread_id"] for t in agent.threads()] == ["newer", "older"]
    events = list(agent.run("hello", "older"))
    assert events[-1]["type"] == "final" and events[-1]["text"] == "Hello again."
    threads = agent.threads()
    assert threads[0]["thread_id"] == "older" and threads[0]["title"] == "train the vae"  # title kept
    agent.close()


def test_a_newer_database_is_refused_naming_the_file(tmp_path):
    path = tmp_path / "from-the-future.sqlite"
    connection = sqlite3.connect(str(path))
    connection.execute(f"PRAGMA user_version = {len(MIGRATIONS) + 5}")
    connection.commit()
    connection.close()
    with pytest.raises(SchemaVersionError) as caught:
        ThreadStore.open(path)
    message = str(caught.value)
    assert str(path) in message and f"version {len(MIGRATIONS) + 5}" in message and "newer" in message
    # Refused before anything was written.
    assert version_of(path) == len(MIGRATIONS) + 5 and "taller_threads" not in table_sql(path)


def test_applying_the_migrations_twice_is_a_no_op(tmp_path):
    path = tmp_path / "chat.sqlite"
    connection = sqlite3.connect(str(path))
    assert apply_migrations(connection, path) == [m.name for m in MIGRATIONS]
    connection.execute("INSERT INTO taller_threads VALUES ('kept', 'a title', 1.0, 2.0)")
    connection.commit()
    schema = table_sql(path)
    assert apply_migrations(connection, path) == []
    connection.close()
    store = ThreadStore.open(path)  # a third time, through the store
    assert [t["thread_id"] for t in store.threads()] == ["kept"]
    store.close()
    assert table_sql(path) == schema and version_of(path) == len(MIGRATIONS)


def thread_search(connection):
    connection.execute("CREATE VIRTUAL TABLE thread_messages USING fts5(thread_id UNINDEXED, role, content)")


def test_appending_one_migration_upgrades_an_existing_database(tmp_path):
    """The FTS5 search of the migrations module's docstring, added as one more entry."""
    path = tmp_path / "chat.sqlite"
    store = ThreadStore.open(path)
    store.touch("t1", "hello")
    store.close()
    extended = [*MIGRATIONS, Migration(len(MIGRATIONS) + 1, "thread_search", thread_search)]
    store = ThreadStore.open(path, extended)
    with store.lock:
        store.connection.execute("INSERT INTO thread_messages VALUES ('t1', 'user', 'train the autoencoder')")
        found = store.connection.execute(
            "SELECT thread_id FROM thread_messages WHERE thread_messages MATCH 'autoencoder'").fetchall()
    assert found == [("t1",)] and [t["thread_id"] for t in store.threads()] == ["t1"]
    store.close()
    assert version_of(path) == len(MIGRATIONS) + 1
    ThreadStore.open(path, extended).close()  # already there: no second CREATE (which would fail)
    with pytest.raises(SchemaVersionError):
        ThreadStore.open(path)  # the code without the new entry refuses the upgraded file


def test_a_failing_migration_leaves_the_database_as_it_was(tmp_path):
    path = tmp_path / "chat.sqlite"
    ThreadStore.open(path).close()

    def half_done(connection):
        connection.execute("CREATE TABLE half_done (x INTEGER)")
        raise RuntimeError("migration failed halfway")

    with pytest.raises(RuntimeError, match="halfway"):
        ThreadStore.open(path, [*MIGRATIONS, Migration(len(MIGRATIONS) + 1, "half_done", half_done)])
    assert version_of(path) == len(MIGRATIONS) and "half_done" not in table_sql(path)


def test_many_openers_of_a_new_file_migrate_it_once(tmp_path):
    """Separate connections contend for the file's lock the way separate processes do."""
    path = tmp_path / "chat.sqlite"
    calls, errors = [], []

    def counted(connection):
        calls.append(1)
        MIGRATIONS[0].apply(connection)

    migrations = [Migration(1, "thread_titles", counted)]

    def open_once():
        try:
            ThreadStore.open(path, migrations).close()
        except Exception as exc:  # collected: an assertion in a thread would be lost
            errors.append(exc)

    workers = [threading.Thread(target=open_once) for _ in range(6)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    assert errors == [] and len(calls) == 1 and version_of(path) == 1


def test_the_connection_uses_wal_and_waits_for_other_writers(tmp_path):
    store = ThreadStore.open(tmp_path / "chat.sqlite")
    assert store.connection.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert store.connection.execute("PRAGMA busy_timeout").fetchone()[0] >= 5000
    store.close()


def test_a_file_that_is_not_a_database_is_refused_naming_it(tmp_path):
    path = tmp_path / "chat.sqlite"
    path.write_bytes(b"this is not an SQLite file at all, just some text " * 40)
    with pytest.raises(ThreadStoreError) as caught:
        ThreadStore.open(path)
    assert str(path) in str(caught.value) and "not a database" in str(caught.value)


def test_touch_rename_title_delete(tmp_path, monkeypatch):
    clock = iter([100.0, 200.0, 300.0])
    monkeypatch.setattr("taller.agent.store.threads.time.time", lambda: next(clock))
    store = ThreadStore.open(tmp_path / "chat.sqlite")
    store.touch("a", "  train   the\nvae " + "x" * 100)
    store.touch("b", "describe the database")
    store.touch("a", "a second message")  # used again: moves to the top, keeps its title
    threads = store.threads()
    assert [t["thread_id"] for t in threads] == ["a", "b"]
    assert threads[0]["title"] == ("train the vae " + "x" * 100)[:60]
    assert (threads[0]["created"], threads[0]["updated"]) == (100.0, 300.0)
    store.rename("b", "  " + "Database " * 30)
    assert store.title("b") == ("Database " * 30)[:120]
    assert store.title("missing") is None
    store.delete("a")
    assert [t["thread_id"] for t in store.threads()] == ["b"] and store.title("a") is None
    store.close()
