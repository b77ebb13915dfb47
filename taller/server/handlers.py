"""What the server does for each client message type: the table :data:`HANDLERS`.

A handler is ``async def handler(server, connection, frame)``: ``frame`` is a checked JSON object
(:func:`taller.server.protocol.parse_frame`), ``server`` the :class:`~taller.server.app.TallerServer`
(agent, settings, limits, requests, progress). A handler answers with ``connection.send(...)`` or
starts an agent request with ``server.requests.begin(...)``, whose events the pump streams back;
it raises :class:`~taller.server.protocol.ProtocolError` for a frame it cannot act on. A new
message type is a new function here (or, for the thread list, branches, export and import, in
:mod:`taller.server.threads`) and a new entry in :data:`HANDLERS` (and a row in
``docs/protocol.md``).
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, Awaitable, Callable

from taller.server.attachments import attachment_paths
from taller.server.connection import Connection
from taller.server.protocol import ProtocolError, new_request_id, optional_id
from taller.server.results import image_urls
from taller.server.threads import (on_branches, on_delete, on_edit, on_export, on_import, on_regenerate, on_rename,
                                   on_search, on_switch_branch)

if TYPE_CHECKING:
    from taller.server.app import TallerServer

log = logging.getLogger(__name__)

# The runs reply carries each run's per-epoch metrics for the newest runs only, the last epochs of
# each, from a metrics file of bounded size (a run folder is the user's, it could hold anything).
HISTORY_RUNS = 50
HISTORY_EPOCHS = 200
MAX_METRICS_BYTES = 8 * 1024 * 1024

MessageHandler = Callable[["TallerServer", Connection, dict[str, Any]], Awaitable[None]]


async def on_message(server: TallerServer, connection: Connection, frame: dict) -> None:
    """A user message: a new request on its thread (a new thread when none is given)."""
    from taller.agent.session import new_thread_id

    text = frame.get("text")
    if not isinstance(text, str) or not text.strip():
        raise ProtocolError("missing_field", "a message needs a non-empty \"text\" string")
    limits = server.limits
    if len(text) > limits.max_text_chars:
        raise ProtocolError("too_large", f"text has {len(text)} characters; the limit is {limits.max_text_chars}")
    thread_id = optional_id(frame, "thread_id") or new_thread_id()
    request_id = optional_id(frame, "request_id") or new_request_id()
    requests = server.requests
    requests.check_capacity(connection, thread_id, request_id)
    attachments = await attachment_paths(frame.get("attachments"), limits, server.settings.outputs_dir / "uploads")
    # Re-check: saving uploads awaited, another frame may have taken the thread meanwhile.
    requests.check_capacity(connection, thread_id, request_id)
    # A new message on a thread waiting for approval supersedes that question.
    requests.paused.pop(thread_id, None)
    agent = server.agent
    requests.begin(connection, thread_id, request_id,
                   lambda cancel: agent.arun(text, thread_id=thread_id, cancel_event=cancel,
                                             attachments=attachments or None))


async def on_approve(server: TallerServer, connection: Connection, frame: dict) -> None:
    await resume(server, connection, frame, True)


async def on_reject(server: TallerServer, connection: Connection, frame: dict) -> None:
    await resume(server, connection, frame, False)


async def resume(server: TallerServer, connection: Connection, frame: dict, approve: bool) -> None:
    """Answer the thread's pending interrupt; the resumed run is a request like a message's."""
    thread_id = optional_id(frame, "thread_id")
    if not thread_id:
        raise ProtocolError("missing_field", f"{frame['type']} needs the \"thread_id\" of the interrupt")
    requests = server.requests
    # The resumed run's events carry the frame's request_id: clients send the interrupted
    # request's id to continue it; without one, the server continues the paused request's id.
    request_id = optional_id(frame, "request_id") or requests.paused.get(thread_id) or new_request_id()
    requests.check_capacity(connection, thread_id, request_id)
    requests.paused.pop(thread_id, None)
    agent = server.agent
    requests.begin(connection, thread_id, request_id,
                   lambda cancel: agent.aresume(thread_id, approve, cancel_event=cancel))


async def on_cancel(server: TallerServer, connection: Connection, frame: dict) -> None:
    """Stop a running request, or answer "no" to one waiting for approval."""
    request_id = optional_id(frame, "request_id")
    thread_id = optional_id(frame, "thread_id")
    request = server.requests.running(connection, thread_id, request_id)
    if request is not None:
        request.cancel_event.set()  # the request ends with final {cancelled: true}
        return
    paused_thread = server.requests.paused_thread(thread_id, request_id)
    if paused_thread:
        # Cancelling a request that waits for approval answers it with "no".
        await resume(server, connection, {"type": "reject", "thread_id": paused_thread}, False)
        return
    raise ProtocolError("not_running", "nothing to cancel: no running request with that request_id/thread_id")


async def on_ping(server: TallerServer, connection: Connection, frame: dict) -> None:
    connection.send({"type": "pong", "time": time.time(), "request_id": frame.get("request_id"),
                     "thread_id": frame.get("thread_id")})


async def on_subscribe(server: TallerServer, connection: Connection, frame: dict) -> None:
    """Follow (default) or ignore background progress events on this connection."""
    follow = frame.get("progress", True)
    if not isinstance(follow, bool):
        raise ProtocolError("bad_field", "\"progress\" must be true or false")
    connection.follow_progress = follow
    connection.send({"type": "subscribed", "progress": follow, "request_id": frame.get("request_id"),
                     "thread_id": None})


async def on_runs(server: TallerServer, connection: Connection, frame: dict) -> None:
    """Every training run on disk or running, and the last progress event of each run seen."""
    problems: list[dict[str, str]] = []

    def collect() -> list[dict]:
        runs_dir = server.settings.runs_dir
        # Every run (active ones included) has a folder; with none, skip importing the
        # trainers (they pull in torch, seconds of start-up).
        if not runs_dir.is_dir() or not any(runs_dir.iterdir()):
            return []
        try:
            from taller.trainers import runs

            listed = runs.list_all(problems=problems)
        except Exception as exc:  # the run registry is optional for the protocol
            log.warning("cannot list runs: %s", exc)
            return []
        for row in listed[:HISTORY_RUNS]:
            row["history"] = metrics_history(row.get("path"))
        return listed

    listed = await asyncio.to_thread(collect)
    connection.send({"type": "runs", "runs": listed, "bad_runs": problems,
                     "latest_progress": list(server.progress.latest.values()),
                     "request_id": frame.get("request_id"), "thread_id": None})


def metrics_history(run_folder: str | None) -> list[dict[str, float]]:
    """The last :data:`HISTORY_EPOCHS` lines of a run's ``metrics.jsonl``, numbers only (the
    runs panel draws the loss curve from them); empty when the file is missing or unreadable."""
    if not run_folder:
        return []
    path = Path(run_folder) / "metrics.jsonl"
    try:
        if not path.is_file() or path.stat().st_size > MAX_METRICS_BYTES:
            return []
        lines = path.read_text(encoding="utf-8", errors="replace").splitlines()[-HISTORY_EPOCHS:]
    except OSError:
        return []
    history = []
    for line in lines:
        try:
            record = json.loads(line)
        except ValueError:
            continue  # a line cut by a crash mid-write
        if isinstance(record, dict):
            history.append({key: value for key, value in record.items()
                            if isinstance(value, (int, float)) and not isinstance(value, bool) and key != "time"})
    return history


async def on_threads(server: TallerServer, connection: Connection, frame: dict) -> None:
    threads = await asyncio.to_thread(server.agent.threads)
    connection.send({"type": "threads", "threads": threads, "request_id": frame.get("request_id"),
                     "thread_id": None})


async def on_history(server: TallerServer, connection: Connection, frame: dict) -> None:
    """A thread's messages (its current branch), its branches, its pending interrupt and whether
    it is answering now. Tool entries carry ``image_urls`` for the images their result names."""
    thread_id = optional_id(frame, "thread_id")
    if not thread_id:
        raise ProtocolError("missing_field", "history needs a \"thread_id\"")
    agent = server.agent

    def read() -> tuple[list[dict], Any, list[dict]]:
        messages = [dict(message) for message in agent.history(thread_id)]
        for message in messages:
            if message.get("role") == "tool" and message.get("result") is not None:
                message["image_urls"] = image_urls(message["result"], server.http.file_url)
        # A thread nobody has written to yet (a new page's thread) has no branches to list.
        known = agent.thread_store.title(thread_id) is not None
        branches = agent.branches(thread_id) if known and hasattr(agent, "branches") else []
        return messages, agent.pending_interrupt(thread_id), branches

    messages, pending, branches = await asyncio.to_thread(read)
    connection.send({"type": "history", "thread_id": thread_id, "messages": messages, "pending_interrupt": pending,
                     "branches": branches, "busy": thread_id in server.requests.busy,
                     "request_id": frame.get("request_id")})


async def on_remember(server: TallerServer, connection: Connection, frame: dict) -> None:
    """A thumbs-up on a ``query_database`` answer: store its question and SQL as a confirmed
    example, which retrieval then shows the model for similar questions.

    Only this frame stores one: an answer nobody confirmed is never remembered. The SQL goes
    through the same read-only checks as any query (and must run) before it is kept.
    """
    question, sql, database = frame.get("question"), frame.get("sql"), frame.get("database")
    thread_id = optional_id(frame, "thread_id")
    for name, value in (("question", question), ("sql", sql)):
        if not isinstance(value, str) or not value.strip():
            raise ProtocolError("missing_field", f"remember needs a non-empty \"{name}\" string")
        if len(value) > server.limits.max_text_chars:
            raise ProtocolError("too_large", f"\"{name}\" has {len(value)} characters; "
                                             f"the limit is {server.limits.max_text_chars}")
    if database is not None and (not isinstance(database, str) or len(database) > 2000):
        raise ProtocolError("bad_field", "\"database\" must be a database name or URL")

    def store() -> dict[str, Any]:
        from taller.knowledge.sql import remember_example

        return remember_example(question, sql, database or None)

    try:
        # Off the event loop: the first example loads the embedding model.
        stored = await asyncio.to_thread(store)
    except Exception as exc:  # unsafe or failing SQL, an unknown database: say why, store nothing
        raise ProtocolError("not_remembered", f"not remembered: {exc}") from None
    connection.send({"type": "remembered", "summary": stored["summary"], "id": stored["id"], "sql": stored["sql"],
                     "database": stored["database"], "request_id": frame.get("request_id"),
                     "thread_id": thread_id})


HANDLERS: dict[str, MessageHandler] = {
    "message": on_message, "approve": on_approve, "reject": on_reject, "cancel": on_cancel,
    "ping": on_ping, "subscribe": on_subscribe, "runs": on_runs, "threads": on_threads,
    "history": on_history, "remember": on_remember,
    "rename": on_rename, "delete": on_delete, "search": on_search, "branches": on_branches,
    "switch_branch": on_switch_branch, "regenerate": on_regenerate, "edit": on_edit, "export": on_export,
    "import": on_import,
}
