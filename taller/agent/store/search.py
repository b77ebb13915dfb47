"""Search across every thread: an SQLite FTS5 index of the messages of each thread's current branch.

The index lives in ``chat.sqlite`` beside the thread list (migration ``thread_search``): one row
per message, with the thread, the message's ``index`` in :meth:`Agent.history
<taller.agent.session.Agent.history>` and its role, so a hit can jump to the message. The agent
rewrites a thread's rows after every turn, branch switch and import, and removes them with the
thread (:meth:`ThreadStore.delete <taller.agent.store.threads.ThreadStore.delete>`); it records
the checkpoint it indexed in ``taller_search_state`` so threads written before the index existed
are indexed when it next opens the file (:func:`stale_threads`).

Queries are user text, never FTS5 syntax: every word is quoted as a phrase (``"`` doubled) and
matched as a prefix, and the words must all occur (``AND`` is a word like any other), so no input
can raise an FTS5 syntax error. Hits are ranked by BM25 (FTS5's ``rank``), then the most
recently used thread; the snippet is the hit's words around the first one the query names.
"""

from __future__ import annotations

import re
import sqlite3
import unicodedata
from typing import Any, Iterable

from taller.agent.store.threads import ThreadStore

MAX_LIMIT = 200  # the most hits one search returns, whatever the caller asks
MAX_INDEXED_CHARS = 20_000  # of one message (a long tool result is cut, the start is what people search)
MAX_QUERY_WORDS = 16  # more words than this make no better search, only a slower one
SNIPPET_WORDS = 16

_WORD = re.compile(r"\w", re.UNICODE)


def match_expression(query: str) -> str | None:
    """The FTS5 expression for ``query``: each whitespace-separated word quoted, as a prefix.

    ``None`` when the query has no word at all (``"*"``, ``"--"``): there is nothing to match.
    """
    words = [word for word in str(query).split() if _WORD.search(word)][:MAX_QUERY_WORDS]
    if not words:
        return None
    return " ".join('"' + word.replace('"', '""') + '"*' for word in words)


def replace_thread(store: ThreadStore, thread_id: str, checkpoint_id: str | None,
                   entries: Iterable[tuple[int, str, str]]) -> None:
    """Index ``thread_id`` as ``(message_index, role, text)`` rows, replacing what it had."""
    rows = [(text[:MAX_INDEXED_CHARS], thread_id, index, role) for index, role, text in entries if text and text.strip()]
    with store.lock:
        try:
            store.connection.execute("DELETE FROM taller_search WHERE thread_id = ?", (thread_id,))
            store.connection.executemany(
                "INSERT INTO taller_search (content, thread_id, message_index, role) VALUES (?, ?, ?, ?)", rows)
            store.connection.execute(
                "INSERT INTO taller_search_state (thread_id, checkpoint_id) VALUES (?, ?) "
                "ON CONFLICT(thread_id) DO UPDATE SET checkpoint_id = excluded.checkpoint_id",
                (thread_id, checkpoint_id or ""))
            store.connection.commit()
        except BaseException:
            if store.connection.in_transaction:
                store.connection.rollback()
            raise


def stale_threads(store: ThreadStore) -> list[str]:
    """Threads whose index does not match their current branch (never indexed, or left behind).

    The current branch is the recorded head, else the newest checkpoint (LangGraph's
    ``checkpoints`` table, read only).
    """
    with store.lock:
        rows = store.connection.execute(
            "SELECT t.thread_id FROM taller_threads t "
            "LEFT JOIN taller_search_state s ON s.thread_id = t.thread_id "
            "LEFT JOIN taller_thread_heads h ON h.thread_id = t.thread_id "
            "WHERE s.thread_id IS NULL OR s.checkpoint_id IS NOT coalesce(h.checkpoint_id, "
            "(SELECT max(c.checkpoint_id) FROM checkpoints c WHERE c.thread_id = t.thread_id "
            "AND c.checkpoint_ns = ''), '')").fetchall()
    return [row[0] for row in rows]


def search(store: ThreadStore, query: str, limit: int = 50) -> list[dict[str, Any]]:
    """Hits for ``query``, best first: ``{"thread_id", "title", "message_index", "role", "snippet"}``.

    FTS5 ranks on its own (``ORDER BY rank LIMIT``, its fast path: a join or a second sort key
    in the same query made SQLite score and sort every match, 4× slower at 20,000 messages);
    titles, the recency tie-break and the snippets are added for the few hits kept.
    """
    expression = match_expression(query)
    limit = max(0, min(int(limit), MAX_LIMIT))
    if expression is None or limit == 0:
        return []
    with store.lock:
        try:
            rows = store.connection.execute(
                "SELECT thread_id, message_index, role, content, rank FROM taller_search "
                "WHERE taller_search MATCH ? ORDER BY rank LIMIT ?", (expression, limit)).fetchall()
        except sqlite3.OperationalError as exc:  # the quoting above should make this unreachable
            raise ValueError(f"the thread search could not run: {exc}") from None
        threads = sorted({row[0] for row in rows})
        marks = ",".join("?" * len(threads))
        known = {thread_id: (title, updated) for thread_id, title, updated in store.connection.execute(
            f"SELECT thread_id, title, updated FROM taller_threads WHERE thread_id IN ({marks})", threads)} if threads else {}
    words = [_fold(word.strip('"*')) for word in str(query).split() if _WORD.search(word)]
    ordered = sorted(rows, key=lambda row: (row[4], -(known.get(row[0], ("", 0.0))[1] or 0.0), int(row[1])))
    return [{"thread_id": thread_id, "title": known.get(thread_id, ("", 0.0))[0] or "", "message_index": int(index),
             "role": role, "snippet": snippet(content, words)} for thread_id, index, role, content, _ in ordered]


def _fold(text: str) -> str:
    """Lower case without accents, as the index's tokenizer compares words."""
    decomposed = unicodedata.normalize("NFKD", text.lower())
    return "".join(ch for ch in decomposed if not unicodedata.combining(ch))


def snippet(content: str, words: list[str], size: int = SNIPPET_WORDS) -> str:
    """About ``size`` words of ``content`` around the first word that starts with a query word."""
    tokens = str(content).split()
    folded = [_fold(token) for token in tokens]
    # "query_database" is two words to the index, and either starts a match.
    wanted = [part for word in words for part in re.sub(r"\W+", " ", word).split()]
    first = next((position for position, token in enumerate(folded)
                  if any(re.sub(r"^\W+", "", token).startswith(word) for word in wanted)), 0)
    start = max(0, min(first - size // 3, len(tokens) - size))
    text = " ".join(tokens[start:start + size])
    return ("…" if start > 0 else "") + text + ("…" if start + size < len(tokens) else "")
