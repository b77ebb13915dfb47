"""The agent as every interface uses it: one request in, a stream of JSON-able events out.

The CLI, the Textual UI and the websocket server all drive :class:`Agent`, so they show the same
things in the same order. Events (``docs/protocol.md`` documents them for the server):

``token``      ``{"text"}``                          a piece of the streamed answer
``tool_start`` ``{"tool", "args", "call_id"}``       a tool is about to run
``tool_end``   ``{"tool", "call_id", "result", "ok"}`` its JSON result
``progress``   ``{"source", "epoch", "loss", ...}``  progress from a running tool
``image``      ``{"path", "caption", "tool"}``       an image a tool wrote
``interrupt``  ``{"tool", "args", "message"}``       waiting for approve/reject
``final``      ``{"text", "tool", "backend", "model", "cancelled", "suggestions"}`` the request is done
``error``      ``{"message"}``                       the request failed (the agent keeps serving)

Every event also carries ``thread_id``. Exactly one ``final``, ``interrupt`` or ``error``
ends each call of :meth:`Agent.run` / :meth:`Agent.resume`.

Conversation state is checkpointed per thread in ``$TALLER_HOME/chat.sqlite``
(``langgraph-checkpoint-sqlite``), so a thread resumes after a restart; the thread list (titles,
times) lives in the same file, kept by :class:`taller.agent.store.ThreadStore` with a schema
version and migrations.

A thread answers one request at a time across processes too: :meth:`Agent.run` and
:meth:`Agent.resume` hold the thread's lock (``$TALLER_HOME/locks/thread-<hash>.lock``, see
:mod:`taller.locks`) from before they read the thread's checkpoint until after they wrote the
answer. Without it, two processes on one thread (two ``taller ask --thread T``, the TUI and the
server) would both start from the same checkpoint and the later write would drop the other's
turn. A request that finds the thread busy says so in a ``progress`` event, waits up to the
``thread_wait_s`` setting (30 s), then ends with an ``error`` (code ``thread_busy``) naming the
other process: never a lost turn.

**Branches.** LangGraph keeps every checkpoint with its parent, so :meth:`Agent.regenerate` (the
last user message again) and :meth:`Agent.edit` (an earlier user message, new text) run from the
checkpoint before that message and the thread becomes a tree; the older continuation stays as
another branch (:meth:`Agent.branches`, :meth:`Agent.switch_branch`). The current branch of each
thread (its *head*) is a row of Taller's ``taller_thread_heads`` table, so every process follows
the same one; :meth:`Agent.run`, :meth:`Agent.history`, exports and the search all use it.

**Search.** :meth:`Agent.search` answers from an FTS5 index of every thread's current branch
(:mod:`taller.agent.store.search`), rewritten after each turn, switch, import and delete.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import os
import threading
import time
import traceback
import uuid
from contextlib import contextmanager
from pathlib import Path
from typing import Any, AsyncIterator, Iterator

from langchain_core.language_models.chat_models import BaseChatModel
from langchain_core.messages import HumanMessage

from taller.agent import router
from taller.agent.graph import build_graph
from taller.agent.store import ThreadStore
from taller.agent.store import search as thread_search
from taller.agent.store.tree import CheckpointTree, checkpoint_tree
from taller.llm import LLMUnavailableError, describe, get_chat_model, text_of
from taller.config import Settings, get_settings
from taller.errors import TallerError
from taller.locks import FileLock, holder_of

log = logging.getLogger(__name__)
MAX_MESSAGE_CHARS = 20000
RECURSION_LIMIT = 25
# Checkpoints written by something other than a graph step: where a user message enters a
# thread (a new input, or a turn written by an import), so the places a branch can fork from.
_TURN_SOURCES = ("input", "update", "fork")


class ThreadBusyError(TallerError, RuntimeError):
    """Another request holds the thread (its message names the thread and the other process)."""


class BranchError(TallerError, ValueError):
    """An unknown branch id, or a message index that is not a user message of the thread."""


class Agent:
    """A LangGraph agent with a SQLite checkpointer and thread store, streaming events per request."""

    def __init__(self, settings: Settings | None = None, chat_model: BaseChatModel | None = None,
                 backend: str | None = None, model: str | None = None) -> None:
        from langgraph.checkpoint.sqlite import SqliteSaver

        self.settings = settings or get_settings()
        self.settings.ensure_dirs()
        self._chat_model = chat_model
        self._backend, self._model_name = backend, model
        self._model_lock = threading.Lock()
        self.thread_store = ThreadStore.open(self.settings.checkpoint_db)
        self.checkpointer = SqliteSaver(self.thread_store.connection)
        # One connection, one lock: concurrent runs (the server) must not interleave the saver's
        # transactions with the thread table's ("cannot start a transaction within a transaction").
        self.checkpointer.lock = self.thread_store.lock
        self.graph = build_graph(self.chat_model, self.settings, self.checkpointer)
        with self.checkpointer.cursor():  # creates LangGraph's tables now: the branch and search queries read them
            pass
        self._index_stale_threads()

    # --- model -------------------------------------------------------------------------------
    def chat_model(self) -> BaseChatModel:
        """The chat model, resolved on first use (so routing-only work never loads an LLM)."""
        with self._model_lock:
            if self._chat_model is None:
                self._chat_model = get_chat_model(self._backend, self._model_name, self.settings)
            return self._chat_model

    def backend_info(self) -> dict[str, str]:
        """Which backend and model answer (resolving the model if needed)."""
        try:
            return describe(self.chat_model())
        except LLMUnavailableError as exc:
            return {"backend": "unavailable", "model": "", "error": str(exc)}

    # --- planning ----------------------------------------------------------------------------
    def plan(self, text: str) -> dict[str, Any]:
        """The tool call the agent would make for ``text``, without running it."""
        decision = router.plan(text, self.chat_model, use_semantic=self.settings.semantic_router)
        out = {"tool": decision.get("tool"), "args": decision.get("args", {}) if decision.get("tool") else {}}
        if decision.get("error"):
            out["error"] = decision["error"]
        return out

    # --- running -----------------------------------------------------------------------------
    def _config(self, thread_id: str, cancel_event: threading.Event | None) -> dict[str, Any]:
        return {"configurable": {"thread_id": thread_id, "cancel_event": cancel_event},
                "recursion_limit": RECURSION_LIMIT}

    def run(self, text: str, thread_id: str | None = None, cancel_event: threading.Event | None = None,
            attachments: list[str] | None = None) -> Iterator[dict[str, Any]]:
        """Handle one user message; yields events, ending with ``final``, ``interrupt`` or ``error``."""
        thread_id = thread_id or new_thread_id()
        problem = _message_problem(text)
        if problem:
            yield {"type": "error", "thread_id": thread_id, "message": problem}
            return
        if attachments:
            # Attached files are named in the request so the router's rules and the LLM see them.
            text = text.rstrip() + "\n" + "\n".join(f"(attached file: {path})" for path in attachments)
        lock = yield from self._take_thread(thread_id, cancel_event)
        if isinstance(lock, dict):
            yield lock
            return
        try:
            self.thread_store.touch(thread_id, text)
            yield from self._stream(_turn_input(text), thread_id, cancel_event, start=self._head(thread_id))
        finally:
            lock.release()

    def resume(self, thread_id: str, approve: bool, cancel_event: threading.Event | None = None) -> Iterator[dict[str, Any]]:
        """Answer a pending confirmation (``interrupt``) of ``thread_id``."""
        from langgraph.types import Command

        lock = yield from self._take_thread(thread_id, cancel_event)
        if isinstance(lock, dict):
            yield lock
            return
        try:
            if self.pending_interrupt(thread_id) is None:
                yield {"type": "error", "thread_id": thread_id, "message": "nothing is waiting for approval in this thread"}
                return
            yield from self._stream(Command(resume={"approve": bool(approve)}), thread_id, cancel_event,
                                    start=self._head(thread_id))
        finally:
            lock.release()

    # --- branches: regenerate, edit, switch ---------------------------------------------------
    def regenerate(self, thread_id: str, cancel_event: threading.Event | None = None) -> Iterator[dict[str, Any]]:
        """Answer the current branch's last user message again, from the checkpoint before it.

        The earlier answer stays as another branch (:meth:`branches`). Events as :meth:`run`.
        """
        lock = yield from self._take_thread(thread_id, cancel_event)
        if isinstance(lock, dict):
            yield lock
            return
        try:
            messages = self._branch_messages(thread_id)
            users = [message for message in messages if message.type == "human"]
            if not users:
                yield {"type": "error", "thread_id": thread_id, "message": f"thread {thread_id} has no message to answer again"}
                return
            try:
                fork = self._fork_point(thread_id, users[-1].id)
            except BranchError as exc:
                yield {"type": "error", "thread_id": thread_id, "message": str(exc)}
                return
            self.thread_store.touch(thread_id, text_of(users[-1]))
            yield from self._stream(_turn_input(text_of(users[-1])), thread_id, cancel_event, start=fork)
        finally:
            lock.release()

    def edit(self, thread_id: str, message_index: int, text: str,
             cancel_event: threading.Event | None = None) -> Iterator[dict[str, Any]]:
        """Replace the user message at ``message_index`` (its ``index`` in :meth:`history`) with
        ``text`` and answer from there; what followed it stays as another branch."""
        problem = _message_problem(text)
        if problem:
            yield {"type": "error", "thread_id": thread_id, "message": problem}
            return
        lock = yield from self._take_thread(thread_id, cancel_event)
        if isinstance(lock, dict):
            yield lock
            return
        try:
            messages = self._branch_messages(thread_id)
            entries = _entries(messages)
            entry = entries[message_index] if isinstance(message_index, int) and 0 <= message_index < len(entries) else None
            if entry is None or entry["role"] != "user":
                yield {"type": "error", "thread_id": thread_id, "code": "bad_index",
                       "message": f"message {message_index} of thread {thread_id} is not a user message "
                                  f"(the thread has {len(entries)} messages)"}
                return
            try:
                fork = self._fork_point(thread_id, entry["_id"])
            except BranchError as exc:
                yield {"type": "error", "thread_id": thread_id, "message": str(exc)}
                return
            self.thread_store.touch(thread_id, text)
            yield from self._stream(_turn_input(text), thread_id, cancel_event, start=fork)
        finally:
            lock.release()

    def branches(self, thread_id: str) -> list[dict[str, Any]]:
        """One entry per branch (leaf of the checkpoint tree), oldest branch first.

        ``{"branch_id", "current", "updated", "messages", "last_user", "fork_index"}``: the id to
        pass to :meth:`switch_branch` (the branch's last checkpoint, so it changes when the branch
        grows), whether the thread shows it, its last change (seconds since the epoch), how many
        :meth:`history` entries it has, its last user message, and the ``index`` of its first
        message of its own (0 for a thread that never forked).
        """
        tree = checkpoint_tree(self.thread_store, thread_id)
        if not tree.parents:
            return []
        head = self._head(thread_id, tree)
        out = []
        for leaf in sorted(tree.leaves(), key=tree.branch_start):
            snapshot = self.graph.get_state(_state_config(thread_id, leaf))
            entries = _entries(snapshot.values.get("messages", []))
            fork = tree.fork_point(leaf)
            fork_index = len(_entries(self.graph.get_state(_state_config(thread_id, fork)).values.get("messages", []))) \
                if fork is not None else 0
            last_user = next((entry["content"] for entry in reversed(entries) if entry["role"] == "user"), "")
            out.append({"branch_id": leaf, "current": leaf == head, "updated": _timestamp(snapshot.created_at),
                        "messages": len(entries), "last_user": last_user[:200], "fork_index": fork_index})
        return out

    def switch_branch(self, thread_id: str, branch_id: str) -> None:
        """Make ``branch_id`` (from :meth:`branches`) the thread's current branch."""
        with self._holding_thread(thread_id):
            tree = checkpoint_tree(self.thread_store, thread_id)
            if not isinstance(branch_id, str) or branch_id not in tree.leaves():
                raise BranchError(f"thread {thread_id} has no branch {str(branch_id)[:80]!r}")
            self.thread_store.set_head(thread_id, branch_id)
            self._index_thread(thread_id)

    def _fork_point(self, thread_id: str, message_id: str | None) -> str:
        """The checkpoint of the current branch just before ``message_id`` entered it.

        Walks the turn checkpoints (inputs, imported turns) from the head back: the newest one
        that does not hold the message is where the thread was when the message was sent.
        """
        tree = checkpoint_tree(self.thread_store, thread_id)
        head = self._head(thread_id, tree)
        for checkpoint in tree.chain(head) if head else ():
            if tree.sources.get(checkpoint) not in _TURN_SOURCES:
                continue
            messages = self.graph.get_state(_state_config(thread_id, checkpoint)).values.get("messages", [])
            if all(message.id != message_id for message in messages):
                return checkpoint
        raise BranchError(f"thread {thread_id} has no checkpoint before that message to answer it again from")

    # --- one request per thread, across processes ---------------------------------------------
    def _take_thread(self, thread_id: str, cancel_event: threading.Event | None):
        """Hold ``thread_id``'s lock: returns the held lock, or the ``error`` event that refuses
        the request. While it waits for another process it yields one ``progress`` event."""
        path = thread_lock_path(self.settings, thread_id)
        lock = FileLock(path)
        note = f"thread {thread_id}"
        try:
            if lock.acquire(note=note):
                return lock
        except OSError as exc:  # no lock file possible (a read-only data folder): answer unguarded
            log.warning("cannot lock thread %s (%s); answering without the cross-process guard", thread_id, exc)
            return lock
        wait = max(0.0, float(self.settings.thread_wait_s))
        if wait > 0:
            yield {"type": "progress", "thread_id": thread_id, "source": "thread",
                   "message": f"thread {thread_id} is busy in {_holder_words(path)}; waiting up to {wait:g} s"}
            stop = (lambda: cancel_event.is_set()) if cancel_event is not None else None
            if lock.acquire(wait_s=wait, note=note, stop=stop):
                return lock
        return {"type": "error", "thread_id": thread_id, "code": "thread_busy",
                "message": f"thread {thread_id} is busy in {_holder_words(path)}; nothing was added to it: "
                           "try again when it has answered"}

    @contextmanager
    def _holding_thread(self, thread_id: str, wait: bool = True):
        """:meth:`_take_thread` for methods that do not stream: raises :class:`ThreadBusyError`."""
        steps = self._take_thread(thread_id, None) if wait else self._try_thread(thread_id)
        try:
            while True:
                next(steps)  # the "waiting" progress event: nobody to show it to
        except StopIteration as done:
            lock = done.value
        if isinstance(lock, dict):
            raise ThreadBusyError(lock["message"])
        try:
            yield
        finally:
            lock.release()

    def _try_thread(self, thread_id: str):
        """Take the thread's lock without waiting (a generator like :meth:`_take_thread`)."""
        path = thread_lock_path(self.settings, thread_id)
        lock = FileLock(path)
        try:
            if lock.acquire(note=f"thread {thread_id}"):
                return lock
        except OSError as exc:
            log.warning("cannot lock thread %s (%s); going on without the cross-process guard", thread_id, exc)
            return lock
        return {"type": "error", "thread_id": thread_id, "code": "thread_busy",
                "message": f"thread {thread_id} is busy in {_holder_words(path)}; try again when it has answered"}
        yield  # a generator, like _take_thread

    # --- the current branch ---------------------------------------------------------------------
    def _head(self, thread_id: str, tree: CheckpointTree | None = None) -> str | None:
        """The checkpoint the thread's current branch ends at (the newest one when none was chosen)."""
        tree = tree if tree is not None else checkpoint_tree(self.thread_store, thread_id)
        head = self.thread_store.head(thread_id)
        return head if head in tree.parents else tree.newest()

    def _snapshot(self, thread_id: str):
        head = self._head(thread_id)
        return self.graph.get_state(_state_config(thread_id, head))

    def _branch_messages(self, thread_id: str) -> list:
        return list(self._snapshot(thread_id).values.get("messages", []))

    def _advance(self, thread_id: str, start: str | None) -> None:
        """After a turn from ``start``: its newest checkpoint becomes the head; the search follows.

        Checkpoint ids sort by time and the thread lock is held, so a checkpoint newer than
        ``start`` was written by this turn; none (it failed before writing) leaves the head.
        """
        newest = checkpoint_tree(self.thread_store, thread_id).newest()
        if newest is not None and (start is None or newest > start):
            self.thread_store.set_head(thread_id, newest)
        self._index_thread(thread_id)

    def _index_thread(self, thread_id: str) -> None:
        tree = checkpoint_tree(self.thread_store, thread_id)
        head = self._head(thread_id, tree)
        messages = self.graph.get_state(_state_config(thread_id, head)).values.get("messages", []) if head else []
        thread_search.replace_thread(self.thread_store, thread_id, head,
                                     ((entry["index"], entry["role"], _search_text(entry)) for entry in _entries(messages)))

    def _index_stale_threads(self) -> None:
        """Index the threads written before the search existed (or by a process that stopped first)."""
        for thread_id in thread_search.stale_threads(self.thread_store):
            try:
                self._index_thread(thread_id)
            except Exception:  # one unreadable thread must not keep the agent from starting
                log.exception("cannot index thread %s for search", thread_id)

    def _stream(self, graph_input: Any, thread_id: str, cancel_event: threading.Event | None,
                start: str | None = None) -> Iterator[dict[str, Any]]:
        """Run the graph from ``start`` (the current head, or an earlier checkpoint to fork from;
        None for a new thread), then make the turn's last checkpoint the head."""
        config = self._config(thread_id, cancel_event)
        if start is not None:
            config["configurable"].update(checkpoint_ns="", checkpoint_id=start)
        try:
            yield from self._stream_from(graph_input, thread_id, cancel_event, config)
        finally:
            try:
                self._advance(thread_id, start)
            except Exception:  # the turn is saved; a stale head or index is repaired on the next open
                log.exception("cannot record the new head of thread %s", thread_id)

    def _stream_from(self, graph_input: Any, thread_id: str, cancel_event: threading.Event | None,
                     config: dict[str, Any]) -> Iterator[dict[str, Any]]:
        started = time.monotonic()
        try:
            for mode, payload in self.graph.stream(graph_input, config, stream_mode=["custom", "updates"]):
                if cancel_event is not None and cancel_event.is_set():
                    break
                if mode == "custom" and isinstance(payload, dict):
                    yield {**payload, "thread_id": thread_id}
                elif mode == "updates" and isinstance(payload, dict) and "__interrupt__" in payload:
                    value = payload["__interrupt__"][0].value
                    yield {"type": "interrupt", "thread_id": thread_id, **value}
                    return
        except LLMUnavailableError as exc:
            yield {"type": "error", "thread_id": thread_id, "message": str(exc)}
            return
        except Exception as exc:  # the agent keeps serving; the user gets the reason
            log.error("agent run failed:\n%s", traceback.format_exc())
            yield {"type": "error", "thread_id": thread_id, "message": f"{type(exc).__name__}: {exc}"}
            return
        cancelled = bool(cancel_event is not None and cancel_event.is_set())
        # The thread lock is held: the newest checkpoint is the one this turn just wrote.
        values = self.graph.get_state({"configurable": {"thread_id": thread_id}}).values
        last_ai = next((m for m in reversed(values.get("messages", [])) if m.type == "ai" and text_of(m).strip()), None)
        last_user = next((m for m in reversed(values.get("messages", [])) if m.type == "human"), None)
        results = values.get("results") or []
        info = describe(self._chat_model) if self._chat_model is not None else {"backend": "none", "model": ""}
        next_steps = []
        if results and not cancelled:
            from taller.agent.grounding import detect_language
            from taller.agent.suggestions import suggest_next

            language = detect_language(text_of(last_user) if last_user is not None else values.get("request") or "")
            next_steps = suggest_next(results[-1]["tool"], results[-1].get("args") or {}, results[-1]["result"], language)
        yield {
            "type": "final", "thread_id": thread_id, "text": text_of(last_ai) if last_ai else "",
            "tool": results[-1]["tool"] if results else None,
            "result": results[-1]["result"] if results else None,
            "cancelled": cancelled, "elapsed_s": round(time.monotonic() - started, 3),
            "suggestions": next_steps, **info,
        }

    async def arun(self, text: str, thread_id: str | None = None, cancel_event: threading.Event | None = None,
                   attachments: list[str] | None = None) -> AsyncIterator[dict[str, Any]]:
        """:meth:`run` for asyncio code: the graph runs in a worker thread, events come back in order."""
        async for event in _in_thread(lambda: self.run(text, thread_id, cancel_event, attachments), cancel_event):
            yield event

    async def aresume(self, thread_id: str, approve: bool,
                      cancel_event: threading.Event | None = None) -> AsyncIterator[dict[str, Any]]:
        async for event in _in_thread(lambda: self.resume(thread_id, approve, cancel_event), cancel_event):
            yield event

    # --- threads -----------------------------------------------------------------------------
    def pending_interrupt(self, thread_id: str) -> dict[str, Any] | None:
        state = self._snapshot(thread_id)
        for task in state.tasks or ():
            for item in task.interrupts or ():
                return dict(item.value)
        return None

    def threads(self) -> list[dict[str, Any]]:
        """Saved conversations, most recent first."""
        return self.thread_store.threads()

    def rename_thread(self, thread_id: str, title: str) -> None:
        self.thread_store.rename(thread_id, title)

    def delete_thread(self, thread_id: str) -> None:
        """Delete the thread, every branch, its head and its search rows.

        A thread answering a request (in any process) is not deleted: :class:`ThreadBusyError`.
        """
        with self._holding_thread(thread_id, wait=False):
            self.checkpointer.delete_thread(thread_id)
            self.thread_store.delete(thread_id)

    def history(self, thread_id: str) -> list[dict[str, Any]]:
        """The current branch's messages, each with its ``index`` (what :meth:`edit` takes).

        ``{"role": "user"|"assistant", "content", "index"}``; a tool call is ``{"role": "tool",
        "name", "args", "result", "content", "index"}`` with ``result`` the parsed JSON (a dict
        when it parses) and ``content`` its JSON text.
        """
        entries = _entries(self._branch_messages(thread_id))
        for entry in entries:
            entry.pop("_id", None)
        return entries

    def search(self, query: str, limit: int = 50) -> list[dict[str, Any]]:
        """Messages of every thread's current branch that contain the words of ``query``, best first:
        ``{"thread_id", "title", "message_index", "role", "snippet"}`` (see :mod:`taller.agent.store.search`)."""
        return thread_search.search(self.thread_store, query, limit)

    def write_thread(self, turns: list[list[Any]], title: str | None = None) -> str:
        """A new thread holding ``turns`` (each a list of LangChain messages, a user message first),
        written as one checkpoint per turn so it can be continued, edited and regenerated.

        Returns the new thread's id (used by :func:`taller.agent.export.import_thread`).
        """
        thread_id = new_thread_id()
        with self._holding_thread(thread_id):
            config = {"configurable": {"thread_id": thread_id}}
            # An empty first checkpoint: the first message can be edited (forked from here) too.
            config = self.graph.update_state(config, {"messages": [], "results": [], "plan": None}, as_node="answer")
            for turn in turns:
                request = next((text_of(message) for message in turn if message.type == "human"), "")
                config = self.graph.update_state(config, {"messages": list(turn), "request": request, "results": [],
                                                          "plan": None, "stop_reason": None}, as_node="answer")
            first = next((text_of(message) for turn in turns for message in turn if message.type == "human"), "")
            self.thread_store.touch(thread_id, first or "imported thread")
            if title:
                self.thread_store.rename(thread_id, title)
            self.thread_store.set_head(thread_id, config["configurable"]["checkpoint_id"])
            self._index_thread(thread_id)
        return thread_id

    def close(self) -> None:
        self.thread_store.close()


def thread_lock_path(settings: Settings, thread_id: str) -> Path:
    """The lock file of ``thread_id`` (named by a hash: thread ids come from clients)."""
    digest = hashlib.sha256(thread_id.encode("utf-8", "surrogatepass")).hexdigest()[:32]
    return settings.home / "locks" / f"thread-{digest}.lock"


def _holder_words(path) -> str:
    """"another process (pid 4242)", from what the lock file says about its holder."""
    pid = (holder_of(path) or {}).get("pid")
    if pid == os.getpid():
        return "another request of this process"
    return f"another process (pid {pid})" if pid else "another process"


def new_thread_id() -> str:
    return uuid.uuid4().hex[:16]


def _message_problem(text: Any) -> str | None:
    """Why ``text`` cannot be sent (empty, too long), or None."""
    if not isinstance(text, str) or not text.strip():
        return "empty message"
    if len(text) > MAX_MESSAGE_CHARS:
        return f"message too long ({len(text)} characters; the limit is {MAX_MESSAGE_CHARS})"
    return None


def _turn_input(text: str) -> dict[str, Any]:
    """The graph input of one user message (the per-request fields reset)."""
    return {"messages": [HumanMessage(content=text)], "request": text, "plan": None, "results": [], "stop_reason": None}


def _state_config(thread_id: str, checkpoint_id: str | None) -> dict[str, Any]:
    configurable: dict[str, Any] = {"thread_id": thread_id}
    if checkpoint_id:
        configurable.update(checkpoint_ns="", checkpoint_id=checkpoint_id)
    return {"configurable": configurable}


def _timestamp(created_at: str | None) -> float:
    """A checkpoint's ISO time as seconds since the epoch (0.0 when it has none)."""
    from datetime import datetime

    try:
        return datetime.fromisoformat(str(created_at)).timestamp()
    except ValueError:
        return 0.0


def _entries(messages: list) -> list[dict[str, Any]]:
    """The messages as history entries, numbered; ``_id`` keeps each entry's message id."""
    calls: dict[str, dict[str, Any]] = {}
    out: list[dict[str, Any]] = []
    for message in messages:
        if message.type == "human":
            out.append({"role": "user", "content": text_of(message), "_id": message.id})
        elif message.type == "ai":
            for call in getattr(message, "tool_calls", None) or ():
                calls[call.get("id") or ""] = call
            if text_of(message).strip():
                out.append({"role": "assistant", "content": text_of(message), "_id": message.id})
        elif message.type == "tool":
            content = text_of(message)
            call = calls.get(getattr(message, "tool_call_id", "") or "", {})
            try:
                result: Any = json.loads(content)
            except ValueError:
                result = content
            out.append({"role": "tool", "name": getattr(message, "name", None) or call.get("name"),
                        "args": call.get("args") or {}, "result": result, "content": content, "_id": message.id})
    for index, entry in enumerate(out):
        entry["index"] = index
    return out


def _search_text(entry: dict[str, Any]) -> str:
    """What the search index holds for one history entry: a tool call's name, arguments, SQL and summary."""
    if entry["role"] != "tool":
        return entry["content"]
    result = entry["result"] if isinstance(entry["result"], dict) else {}
    parts = [str(entry.get("name") or ""), json.dumps(entry.get("args") or {}, ensure_ascii=False),
             str(result.get("sql") or ""), str(result.get("summary") or result.get("error") or "")]
    return "\n".join(part for part in parts if part)


_DONE = object()


async def _in_thread(make_iterator, cancel_event: threading.Event | None) -> AsyncIterator[dict[str, Any]]:
    """Run a blocking event iterator in a thread and hand its events to asyncio in order."""
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue = asyncio.Queue()

    def pump() -> None:
        try:
            for event in make_iterator():
                loop.call_soon_threadsafe(queue.put_nowait, event)
        except BaseException as exc:  # never lose the reason
            loop.call_soon_threadsafe(queue.put_nowait, {"type": "error", "message": f"{type(exc).__name__}: {exc}"})
        finally:
            loop.call_soon_threadsafe(queue.put_nowait, _DONE)

    worker = threading.Thread(target=pump, name="taller-agent-run", daemon=True)
    worker.start()
    try:
        while True:
            event = await queue.get()
            if event is _DONE:
                break
            yield event
    finally:
        if cancel_event is not None and worker.is_alive():
            cancel_event.set()
