"""A persistent full-text (BM25) index of the chunks of each Chroma collection: SQLite FTS5.

Hybrid retrieval (:func:`taller.knowledge.retrieval.search`) needs the BM25 score of a
question against every chunk. Building that in memory on the first question after each change
took 35 s at 100k chunks; this index lives on disk instead, in one SQLite file,
``$TALLER_HOME/videos/fulltext.sqlite``, and is written by the same code paths that write the
Chroma collection (``add`` after each upsert, ``delete`` after each delete), so an added video
costs only its own rows.

* One FTS5 table per Chroma collection name (``fts_<slug>_<hash>``: columns ``id``, ``video``
  UNINDEXED and ``text``; tokenizer ``unicode61 remove_diacritics 2``), plus a plain table
  ``<that>_ids`` (``rowid``, ``id`` UNIQUE, ``video`` indexed) to find a chunk's row by id or
  video, and a ``collections`` table holding each collection's row count.
* ``text`` is :func:`taller.knowledge.retrieval.tokenize` of the chunk (folded words without
  stop words), the words the old in-memory BM25 scored: the same document lengths, and stop
  words (never asked for) take no room in the index.
* Kept in step: :func:`sync` compares the row count with ``collection.count()`` (one lookup)
  on every hybrid search; a table that is missing (an index made before this module, a deleted
  file, a collection filled by another program or another machine through a Chroma server) or
  whose count differs is reconciled once from Chroma, page by page: the missing chunks are
  added and rows Chroma no longer holds are deleted.
* Several processes (TUI and server) may add and search at once: WAL journal, a 30 s busy
  timeout, and each write in one ``BEGIN IMMEDIATE`` transaction.
* Scores are ``-bm25()`` (FTS5's Okapi BM25, k1 = 1.2, b = 0.75; higher is better). The query
  is the question's words, each quoted and OR-ed, so nothing a user types is read as FTS5
  syntax.
"""

from __future__ import annotations

import hashlib
import math
import os
import re
import sqlite3
import threading
from pathlib import Path
from typing import Any, Iterable, Sequence

# Chunks read from Chroma per page when reconciling; one get() of ~100k chunks fails in Chroma's
# SQLite layer ("too many SQL variables").
PAGE = 5000
# Ids per SQL statement (well under SQLite's variable limit).
_SQL_BATCH = 500
# FTS5's bm25() constants: a term can add at most idf * (K1 + 1) to a chunk's score.
_K1 = 1.2
_TOKENIZER = "unicode61 remove_diacritics 2"

_local = threading.local()


def index_path() -> Path:
    """The index file of the current settings (under ``TALLER_HOME``, like all state)."""
    from taller.config import get_settings

    return get_settings().home / "videos" / "fulltext.sqlite"


def _table(collection_name: str) -> str:
    slug = re.sub(r"[^a-z0-9]+", "_", collection_name.lower()).strip("_")[:40]
    digest = hashlib.sha1(collection_name.encode("utf-8")).hexdigest()[:8]
    return f"fts_{slug}_{digest}"


def _connect(path: Path) -> sqlite3.Connection:
    path.parent.mkdir(parents=True, exist_ok=True)
    connection = sqlite3.connect(str(path), timeout=30.0, isolation_level=None, check_same_thread=False)
    connection.execute("PRAGMA journal_mode=WAL")
    connection.execute("PRAGMA synchronous=NORMAL")  # WAL: a crash loses at most the last commits
    connection.execute("CREATE TABLE IF NOT EXISTS collections (name TEXT PRIMARY KEY, "
                       "tbl TEXT NOT NULL, rows INTEGER NOT NULL DEFAULT 0)")
    return connection


def _connection() -> sqlite3.Connection:
    """This thread's connection to the current index file, reopened after a fork, a change of
    ``TALLER_HOME`` or the file being deleted."""
    path = index_path()
    try:
        inode = os.stat(path).st_ino
    except FileNotFoundError:
        inode = None
    state = getattr(_local, "state", None)
    if state is not None:
        pid, old_path, old_inode, connection = state
        if pid == os.getpid() and old_path == path and old_inode == inode and inode is not None:
            return connection
        if pid == os.getpid():
            connection.close()
    connection = _connect(path)
    _local.state = (os.getpid(), path, os.stat(path).st_ino, connection)
    return connection


def close() -> None:
    """Close this thread's connection (the next call opens the file again, as a new process would)."""
    state = getattr(_local, "state", None)
    if state is not None and state[0] == os.getpid():
        state[3].close()
    _local.state = None


class _Write:
    """``BEGIN IMMEDIATE`` … ``COMMIT`` (rolled back on error): one writer at a time, others wait."""

    def __init__(self, connection: sqlite3.Connection) -> None:
        self.connection = connection

    def __enter__(self) -> sqlite3.Connection:
        self.connection.execute("BEGIN IMMEDIATE")
        return self.connection

    def __exit__(self, kind, value, traceback) -> None:
        if kind is None:
            self.connection.execute("COMMIT")
            return
        try:
            self.connection.execute("ROLLBACK")
        except sqlite3.Error:
            pass  # SQLite rolled back already (e.g. a full disk): the first error is the one to see


def _exists(connection: sqlite3.Connection, collection_name: str) -> bool:
    return connection.execute("SELECT 1 FROM collections WHERE name = ?", (collection_name,)).fetchone() is not None


def _create(connection: sqlite3.Connection, collection_name: str) -> str:
    """The collection's tables, created when missing (inside a write transaction)."""
    table = _table(collection_name)
    if not _exists(connection, collection_name):
        connection.execute(f'CREATE TABLE IF NOT EXISTS "{table}_ids" (rowid INTEGER PRIMARY KEY, '
                           f'id TEXT NOT NULL UNIQUE, video TEXT NOT NULL)')
        connection.execute(f'CREATE INDEX IF NOT EXISTS "{table}_video" ON "{table}_ids" (video)')
        connection.execute(f'CREATE VIRTUAL TABLE IF NOT EXISTS "{table}" USING fts5(id UNINDEXED, '
                           f"video UNINDEXED, text, tokenize='{_TOKENIZER}')")
        # Document frequency of each word: lets search() skip scoring chunks that only hold
        # common words (see _top_pruned).
        connection.execute(f'CREATE VIRTUAL TABLE IF NOT EXISTS "{table}_vocab" USING fts5vocab("{table}", row)')
        connection.execute("INSERT OR REPLACE INTO collections (name, tbl, rows) VALUES (?, ?, "
                           f'(SELECT count(*) FROM "{table}_ids"))', (collection_name, table))
    return table


def _batches(items: Sequence[Any], size: int = _SQL_BATCH) -> Iterable[Sequence[Any]]:
    for begin in range(0, len(items), size):
        yield items[begin:begin + size]


def _delete_rows(connection: sqlite3.Connection, table: str, rowids: list[int]) -> None:
    connection.executemany(f'DELETE FROM "{table}" WHERE rowid = ?', ((r,) for r in rowids))
    connection.executemany(f'DELETE FROM "{table}_ids" WHERE rowid = ?', ((r,) for r in rowids))


def _rowids(connection: sqlite3.Connection, table: str, ids: Sequence[str]) -> list[int]:
    found: list[int] = []
    for batch in _batches(list(ids)):
        marks = ",".join("?" * len(batch))
        found.extend(r for (r,) in connection.execute(f'SELECT rowid FROM "{table}_ids" WHERE id IN ({marks})', batch))
    return found


def _recount(connection: sqlite3.Connection, collection_name: str, table: str) -> None:
    connection.execute(f'UPDATE collections SET rows = (SELECT count(*) FROM "{table}_ids") WHERE name = ?',
                       (collection_name,))


def add(collection_name: str, ids: Sequence[str], documents: Sequence[str | None],
        metadatas: Sequence[dict | None] | None = None) -> None:
    """Index chunks (upsert: rows with the same ids are replaced), in one transaction."""
    from taller.knowledge.retrieval import tokenize

    if not ids:
        return
    metadatas = metadatas or [None] * len(ids)
    # Tokenize before taking the write lock: other writers wait less.
    rows = [(chunk_id, str((metadata or {}).get("video", "")), " ".join(tokenize(document or "")))
            for chunk_id, document, metadata in zip(ids, documents, metadatas)]
    rows = list({row[0]: row for row in rows}.values())  # one row per id: the last one wins
    with _Write(_connection()) as connection:
        table = _create(connection, collection_name)
        _delete_rows(connection, table, _rowids(connection, table, [row[0] for row in rows]))
        first = connection.execute(f'SELECT coalesce(max(rowid), 0) + 1 FROM "{table}_ids"').fetchone()[0]
        numbered = [(first + i, *row) for i, row in enumerate(rows)]
        connection.executemany(f'INSERT INTO "{table}_ids" (rowid, id, video) VALUES (?, ?, ?)',
                               (row[:3] for row in numbered))
        connection.executemany(f'INSERT INTO "{table}" (rowid, id, video, text) VALUES (?, ?, ?, ?)', numbered)
        _recount(connection, collection_name, table)


def delete(collection_name: str, ids: Sequence[str] | None = None, video: str | None = None) -> None:
    """Remove the rows of ``ids``, or of every chunk of ``video``."""
    if ids is None and video is None:
        raise ValueError("fulltext.delete needs ids or a video")
    connection = _connection()
    if not _exists(connection, collection_name):
        return
    with _Write(connection):
        table = _table(collection_name)
        rowids = _rowids(connection, table, ids or [])
        if video is not None:
            rowids += [r for (r,) in connection.execute(f'SELECT rowid FROM "{table}_ids" WHERE video = ?', (video,))]
        _delete_rows(connection, table, rowids)
        _recount(connection, collection_name, table)


def drop(collection_name: str) -> None:
    """Forget a collection's index (its tables are dropped)."""
    with _Write(_connection()) as connection:
        table = _table(collection_name)
        for name, kind in ((f"{table}_vocab", "TABLE"), (table, "TABLE"), (f"{table}_ids", "TABLE")):
            connection.execute(f'DROP {kind} IF EXISTS "{name}"')
        connection.execute("DELETE FROM collections WHERE name = ?", (collection_name,))


def count(collection_name: str) -> int | None:
    """Rows indexed for the collection; None when it has no table yet."""
    row = _connection().execute("SELECT rows FROM collections WHERE name = ?", (collection_name,)).fetchone()
    return None if row is None else int(row[0])


def indexed_ids(collection_name: str) -> list[str]:
    """Every chunk id indexed for the collection."""
    connection = _connection()
    if not _exists(connection, collection_name):
        return []
    return [i for (i,) in connection.execute(f'SELECT id FROM "{_table(collection_name)}_ids"')]


def sync(collection: Any, total: int | None = None) -> bool:
    """Bring the collection's index in step with Chroma when its row count differs from
    ``collection.count()`` (``total``, when the caller has it) or it has no table; True when
    it had to. Normally a no-op: the library's write paths keep both in step."""
    total = collection.count() if total is None else total
    if count(collection.name) == total:
        return False
    backfill(collection)
    return True


def backfill(collection: Any) -> None:
    """Reconcile the collection's index with Chroma: add the chunks it lacks (read page by
    page), delete the rows Chroma no longer holds. The whole collection when the index has
    no table for it."""
    name = collection.name
    with _Write(_connection()) as connection:
        _create(connection, name)  # an empty collection gets its (empty) table: counted in step
    chroma_ids: list[str] = []
    while True:  # ids only: cheap even at 100k chunks
        page = collection.get(include=[], limit=PAGE, offset=len(chroma_ids))
        chroma_ids.extend(page["ids"])
        if len(page["ids"]) < PAGE:
            break
    indexed = set(indexed_ids(name))
    missing = [i for i in dict.fromkeys(chroma_ids) if i not in indexed]
    for batch in _batches(missing, min(PAGE, 1000)):
        found = collection.get(ids=list(batch), include=["documents", "metadatas"])
        add(name, found["ids"], found["documents"] or [None] * len(found["ids"]), found["metadatas"])
    extra = list(indexed - set(chroma_ids))
    for batch in _batches(extra, min(PAGE, 1000)):
        # Another process may have added these to Chroma since its ids were read: keep those.
        still = set(collection.get(ids=list(batch), include=[])["ids"])
        gone = [i for i in batch if i not in still]
        if gone:
            delete(name, ids=gone)


def match_query(terms: Sequence[str], prefix: int = 0) -> str:
    """An FTS5 query matching any of ``terms``: each one quoted (a phrase), so words such as
    NEAR, AND, ``*``, ``-``, ``:`` or parentheses in a question are never FTS5 syntax.

    With ``prefix`` > 0 a longer term matches every word that starts with its first ``prefix``
    letters (``"march"*`` finds *marcha*, *marcharse*, *marchó*): stemming by truncation, for a
    language without a stemmer in SQLite; ``*`` after the closing quote is FTS5's prefix query."""
    def one(term: str) -> str:
        if prefix and len(term) > prefix:
            return '"' + term[:prefix].replace('"', '""') + '"*'
        return '"' + term.replace('"', '""') + '"'

    return " OR ".join(one(term) for term in terms)


def _terms(query: str) -> list[str]:
    from taller.knowledge.retrieval import tokenize

    return tokenize(query)


def search(collection_name: str, query: str, n: int, video: str | None = None,
           prefix: int = 0) -> list[tuple[str, float]]:
    """The ``n`` chunks with the highest BM25 score for ``query``, best first, as ``(id, score)``
    with ``score = -bm25()`` (> 0); only chunks holding at least one word of the query (not a
    stop word), and only the chunks of ``video`` when given. ``prefix``: see :func:`match_query`."""
    terms = _terms(query)
    connection = _connection()
    if not terms or n <= 0 or not _exists(connection, collection_name):
        return []
    table = _table(collection_name)
    if video is not None:
        rows = connection.execute(
            f'SELECT id, -bm25("{table}") FROM "{table}" WHERE "{table}" MATCH ? AND '
            f'+rowid IN (SELECT rowid FROM "{table}_ids" WHERE video = ?) '
            f'ORDER BY bm25("{table}"), rowid LIMIT ?', (match_query(terms, prefix), video, n)).fetchall()
        return [(i, float(s)) for i, s in rows]
    if prefix:  # prefix terms have no vocabulary row to bound their scores: no pruning
        return [(i, s) for i, s, _ in _top(connection, table, match_query(terms, prefix), n)]
    return [(i, s) for i, s, _ in _top_pruned(connection, collection_name, table, terms, n)]


def _top(connection: sqlite3.Connection, table: str, expression: str, n: int) -> list[tuple[str, float, int]]:
    """``(id, score, rowid)`` of the ``n`` best matches of an FTS5 expression (ties: by rowid)."""
    rows = connection.execute(f'SELECT id, -bm25("{table}"), rowid FROM "{table}" WHERE "{table}" MATCH ? '
                              f'ORDER BY bm25("{table}"), rowid LIMIT ?', (expression, n)).fetchall()
    return [(i, float(s), r) for i, s, r in rows]


def _top_pruned(connection: sqlite3.Connection, collection_name: str, table: str, terms: list[str],
                n: int) -> list[tuple[str, float, int]]:
    """The exact top ``n``, scoring fewer chunks when it can (max-score pruning).

    FTS5 computes bm25() for every chunk holding any query word: up to ~70,000 of 100,000 for a
    question with "government" or "year" (~1 µs each). A word found in ``df`` of ``N`` chunks
    adds at most ``idf * (k1 + 1)`` to a score (``idf = ln((N - df + 0.5) / (df + 0.5))``,
    FTS5's formula). So: split the words into rare ones ``R`` and common ones ``C``; score only
    the chunks that hold a rare word (``R AND C`` and ``R NOT C``: every phrase of the question
    is in each expression, so the scores are exactly those of the whole query); when the n-th
    best of those beats the most a chunk with only common words could score, that is the
    answer. Otherwise, score the whole query.
    """
    unique = list(dict.fromkeys(terms))
    marks = ",".join("?" * len(unique))
    frequency = dict(connection.execute(f'SELECT term, doc FROM "{table}_vocab" WHERE term IN ({marks})', unique))
    total = count(collection_name) or 0
    # Rare: the rarest words while they hold at most half the postings of the known words (at
    # least one word), and every word the vocabulary does not hold as one token (found nowhere,
    # or a phrase such as "foo_bar"): its bound is unknown.
    known = sorted((t for t in unique if t in frequency), key=lambda t: frequency[t])
    rare = [t for t in unique if t not in frequency]
    mass, covered = sum(frequency[t] for t in known), 0
    while known and (not rare or (covered + frequency[known[0]]) * 2 <= mass):
        covered += frequency[known[0]]
        rare.append(known.pop(0))
    common = known
    if not rare or not common:
        return _top(connection, table, match_query(terms), n)

    def bound(term: str) -> float:
        df = frequency[term]
        idf = math.log((total - df + 0.5) / (df + 0.5)) if total else 0.0
        return (idf if idf > 0 else 1e-6) * (_K1 + 1.0)

    # Keep repeated words repeated, as in the whole query (each occurrence is scored).
    rare_terms = [t for t in terms if t in rare]
    common_terms = [t for t in terms if t in common]
    ceiling = sum(bound(t) for t in common_terms)
    left, right = match_query(rare_terms), match_query(common_terms)
    found = (_top(connection, table, f"({left}) AND ({right})", n)
             + _top(connection, table, f"({left}) NOT ({right})", n))
    found.sort(key=lambda item: (-item[1], item[2]))  # the order of the whole query
    if len(found) >= n and found[n - 1][1] > ceiling:
        return found[:n]
    return _top(connection, table, match_query(terms), n)


def scores(collection_name: str, query: str, chunk_ids: Sequence[str], prefix: int = 0) -> dict[str, float]:
    """BM25 scores (``-bm25()``) of the given chunks for ``query``; chunks without any query word
    are left out (their score is 0). ``prefix``: see :func:`match_query`."""
    terms = _terms(query)
    connection = _connection()
    if not terms or not chunk_ids or not _exists(connection, collection_name):
        return {}
    table = _table(collection_name)
    out: dict[str, float] = {}
    for batch in _batches(list(chunk_ids)):
        marks = ",".join("?" * len(batch))
        # "+rowid": filter each matching row rather than run the MATCH once per id.
        rows = connection.execute(
            f'SELECT id, -bm25("{table}") FROM "{table}" WHERE "{table}" MATCH ? AND '
            f'+rowid IN (SELECT rowid FROM "{table}_ids" WHERE id IN ({marks}))',
            (match_query(terms, prefix), *batch)).fetchall()
        out.update((i, float(s)) for i, s in rows)
    return out
