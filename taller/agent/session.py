"""The agent as every interface uses it: one request in, a stream of JSON-able events out.

The CLI, the Textual UI and the websocket server all drive :class:`Agent`, so they show the same
things in the same order. Events (``docs/protocol.md`` documents them for the server):

``token``      ``{"text"}``                          a piece of the streamed answer
``tool_start`` ``{"tool", "args", "call_id"}``       a tool is about to run
``tool_end``   ``{"tool", "call_id", "result", "ok"}`` its JSON result
``progress``   ``{"source", "epoch", "loss", ...}``  progress from a running tool
``image``      ``{"path", "caption", "tool"}``       an image a tool wrote
``interrupt``  ``{"tool", "args", "message"}``       waiting for approve/reject
``final``      ``{"text", "tool", "backend", "model", "cancelled"}`` the request is done
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
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import os
import threading
import time
import traceback
import uuid
from pathlib import Path
from typing import Any, AsyncIterator, Iterator

from langchain_core.language_models.chat_models import BaseChatModel
from langchain_core.messages import HumanMessage

from taller.agent import router
from taller.agent.graph import build_graph
from taller.agent.store import ThreadStore
from taller.llm import LLMUnavailableError, describe, get_chat_model, text_of
from taller.config import Settings, get_settings
from taller.locks import FileLock, holder_of

log = logging.getLogger(__name__)
MAX_MESSAGE_CHARS = 20000
RECURSION_LIMIT = 25


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
        if not isinstance(text, str) or not text.strip():
            yield {"type": "error", "thread_id": thread_id, "message": "empty message"}
            return
        if len(text) > MAX_MESSAGE_CHARS:
            yield {"type": "error", "thread_id": thread_id,
                   "message": f"message too long ({len(text)} characters; the limit is {MAX_MESSAGE_CHARS})"}
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
            state = {"messages": [HumanMessage(content=text)], "request": text, "plan": None, "results": [],
                     "stop_reason": None}
            yield from self._stream(state, thread_id, cancel_event)
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
            yield from self._stream(Command(resume={"approve": bool(approve)}), thread_id, cancel_event)
        finally:
            lock.release()

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

    def _stream(self, graph_input: Any, thread_id: str, cancel_event: threading.Event | None) -> Iterator[dict[str, Any]]:
        config = self._config(thread_id, cancel_event)
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
        values = self.graph.get_state({"configurable": {"thread_id": thread_id}}).values
        last_ai = next((m for m in reversed(values.get("messages", [])) if m.type == "ai" and text_of(m).strip()), None)
        results = values.get("results") or []
        info = describe(self._chat_model) if self._chat_model is not None else {"backend": "none", "model": ""}
        yield {
            "type": "final", "thread_id": thread_id, "text": text_of(last_ai) if last_ai else "",
            "tool": results[-1]["tool"] if results else None,
            "result": results[-1]["result"] if results else None,
            "cancelled": cancelled, "elapsed_s": round(time.monotonic() - started, 3), **info,
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
        state = self.graph.get_state({"configurable": {"thread_id": thread_id}})
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
        self.checkpointer.delete_thread(thread_id)
        self.thread_store.delete(thread_id)

    def history(self, thread_id: str) -> list[dict[str, Any]]:
        """The thread's messages as ``{"role", "content"}`` (tool calls as role "tool")."""
        values = self.graph.get_state({"configurable": {"thread_id": thread_id}}).values
        out = []
        for message in values.get("messages", []):
            if message.type == "human":
                out.append({"role": "user", "content": text_of(message)})
            elif message.type == "ai" and text_of(message).strip():
                out.append({"role": "assistant", "content": text_of(message)})
            elif message.type == "tool":
                out.append({"role": "tool", "name": getattr(message, "name", None), "content": text_of(message)})
        return out

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
