"""The thread messages of the protocol: rename, delete, search, branches, export, import, regenerate, edit.

Each is an ``async def handler(server, connection, frame)`` like those of
:mod:`taller.server.handlers`, whose table :data:`~taller.server.handlers.HANDLERS` lists them.
They call the agent's thread API (:class:`taller.agent.session.Agent` and
:mod:`taller.agent.export`) off the event loop and answer with one reply frame carrying the
asking frame's ``request_id``; ``regenerate`` and ``edit`` start an agent request whose events
stream like a ``message``'s. A frame naming a thread the agent does not know is refused with
``unknown_thread``, an unknown branch with ``unknown_branch``, a bad import with ``bad_import``:
the connection keeps serving.
"""

from __future__ import annotations

import asyncio
import json
import re
from typing import TYPE_CHECKING, Any

from taller.errors import TallerError
from taller.server.connection import Connection
from taller.server.protocol import ProtocolError, new_request_id, optional_id

if TYPE_CHECKING:
    from taller.server.app import TallerServer

EXPORT_FORMATS = {"md": ("text/markdown", "md"), "json": ("application/json", "json"),
                  "py": ("text/x-python", "py"), "ipynb": ("application/x-ipynb+json", "ipynb")}
MAX_TITLE_CHARS = 120        # what the thread store keeps of a title
MAX_QUERY_CHARS = 500        # a search box, not a document
MAX_SEARCH_RESULTS = 200
MAX_BRANCH_ID_CHARS = 200


def reply(connection: Connection, frame: dict, kind: str, **fields: Any) -> None:
    """Send the answer to ``frame``: its ``request_id`` and ``thread_id`` unless ``fields`` set them."""
    connection.send({"type": kind, "request_id": frame.get("request_id"),
                     "thread_id": frame.get("thread_id") if isinstance(frame.get("thread_id"), str) else None,
                     **fields})


def required_thread(frame: dict) -> str:
    thread_id = optional_id(frame, "thread_id")
    if not thread_id:
        raise ProtocolError("missing_field", f"{frame['type']} needs a \"thread_id\"")
    return thread_id


async def known_thread(server: TallerServer, frame: dict) -> str:
    """The frame's thread id, checked against the thread list (``unknown_thread`` otherwise)."""
    thread_id = required_thread(frame)
    title = await asyncio.to_thread(server.agent.thread_store.title, thread_id)
    if title is None:
        raise ProtocolError("unknown_thread", f"there is no thread {thread_id}")
    return thread_id


def idle_thread(server: TallerServer, thread_id: str) -> None:
    """Refuse to change a thread that is answering now (its request would write over the change)."""
    running = server.requests.busy.get(thread_id)
    if running is not None:
        raise ProtocolError("thread_busy", f"thread {thread_id} is answering request {running.request_id}; "
                                           "wait for its final event or cancel it")


async def agent_call(function, *arguments):
    """``function(*arguments)`` in a worker thread; the agent's refusals become protocol errors:
    a thread another request or process is answering (``thread_busy``), an unknown branch
    (``unknown_branch``)."""
    from taller.agent.session import BranchError, ThreadBusyError

    try:
        return await asyncio.to_thread(function, *arguments)
    except ThreadBusyError as exc:
        raise ProtocolError("thread_busy", str(exc)) from None
    except BranchError as exc:
        raise ProtocolError("unknown_branch", str(exc)) from None


def clean_text(frame: dict, name: str, limit: int) -> str:
    value = frame.get(name)
    if not isinstance(value, str) or not value.strip():
        raise ProtocolError("missing_field", f"{frame['type']} needs a non-empty \"{name}\" string")
    if len(value) > limit:
        raise ProtocolError("too_large", f"\"{name}\" has {len(value)} characters; the limit is {limit}")
    return value


# --- the thread list -------------------------------------------------------------------------------

async def on_rename(server: TallerServer, connection: Connection, frame: dict) -> None:
    """Give a thread a new title; answered with ``renamed`` ``{title}``."""
    title = " ".join(clean_text(frame, "title", MAX_TITLE_CHARS).split())
    thread_id = await known_thread(server, frame)
    await asyncio.to_thread(server.agent.rename_thread, thread_id, title)
    reply(connection, frame, "renamed", thread_id=thread_id, title=title)


async def on_delete(server: TallerServer, connection: Connection, frame: dict) -> None:
    """Delete a thread (its messages, branches and search entries); answered with ``deleted``."""
    thread_id = await known_thread(server, frame)
    idle_thread(server, thread_id)
    server.requests.paused.pop(thread_id, None)
    await agent_call(server.agent.delete_thread, thread_id)
    reply(connection, frame, "deleted", thread_id=thread_id)


async def on_search(server: TallerServer, connection: Connection, frame: dict) -> None:
    """Search every thread's messages; answered with ``search_results`` ``{query, results}``."""
    query = clean_text(frame, "query", MAX_QUERY_CHARS)
    limit = frame.get("limit", 50)
    if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= MAX_SEARCH_RESULTS:
        raise ProtocolError("bad_field", f"\"limit\" must be a whole number from 1 to {MAX_SEARCH_RESULTS}")
    results = await asyncio.to_thread(server.agent.search, query, limit)
    reply(connection, frame, "search_results", query=query, results=list(results)[:limit])


# --- branches -------------------------------------------------------------------------------------

async def on_branches(server: TallerServer, connection: Connection, frame: dict) -> None:
    """A thread's branches, oldest first; answered with ``branches`` ``{branches}``."""
    thread_id = await known_thread(server, frame)
    branches = await asyncio.to_thread(server.agent.branches, thread_id)
    reply(connection, frame, "branches", thread_id=thread_id, branches=branches)


async def on_switch_branch(server: TallerServer, connection: Connection, frame: dict) -> None:
    """Make another branch current; answered with ``branch_switched`` ``{branch_id, branches}``."""
    branch_id = frame.get("branch_id")
    if not isinstance(branch_id, str) or not branch_id:
        raise ProtocolError("missing_field", "switch_branch needs a \"branch_id\" (from the branches reply)")
    if len(branch_id) > MAX_BRANCH_ID_CHARS:
        raise ProtocolError("bad_field", f"\"branch_id\" is longer than {MAX_BRANCH_ID_CHARS} characters")
    thread_id = await known_thread(server, frame)
    idle_thread(server, thread_id)
    agent = server.agent

    def switch() -> list[dict]:
        agent.switch_branch(thread_id, branch_id)
        return agent.branches(thread_id)

    branches = await agent_call(switch)
    # The thread now continues another branch: a question it was waiting on belongs to the old one.
    server.requests.paused.pop(thread_id, None)
    reply(connection, frame, "branch_switched", thread_id=thread_id, branch_id=branch_id, branches=branches)


async def on_regenerate(server: TallerServer, connection: Connection, frame: dict) -> None:
    """Answer the thread's last user message again; the old answer stays as another branch."""
    thread_id = await known_thread(server, frame)
    agent = server.agent
    _answer_again(server, connection, frame, thread_id,
                  lambda cancel: agent.regenerate(thread_id, cancel_event=cancel))


async def on_edit(server: TallerServer, connection: Connection, frame: dict) -> None:
    """Replace the user message at ``message_index`` with ``text`` and answer again from there."""
    text = clean_text(frame, "text", server.limits.max_text_chars)
    index = frame.get("message_index")
    if isinstance(index, bool) or not isinstance(index, int) or index < 0:
        raise ProtocolError("bad_field", "\"message_index\" must be the index (0 or more) of a user message "
                                         "in the thread's history")
    thread_id = await known_thread(server, frame)
    agent = server.agent
    _answer_again(server, connection, frame, thread_id,
                  lambda cancel: agent.edit(thread_id, index, text, cancel_event=cancel))


def _answer_again(server: TallerServer, connection: Connection, frame: dict, thread_id: str, events) -> None:
    """Start a regenerate or edit request: ``events(cancel_event)`` gives the agent's events.

    A question the thread was waiting on belongs to the answer being replaced, so it is dropped.
    """
    request_id = optional_id(frame, "request_id") or new_request_id()
    requests = server.requests
    requests.check_capacity(connection, thread_id, request_id)
    requests.paused.pop(thread_id, None)
    requests.begin(connection, thread_id, request_id,
                   lambda cancel: stream_in_thread(lambda: events(cancel), cancel))


def stream_in_thread(make_iterator, cancel_event):
    """The agent's blocking event iterator as an async one (the agent's own thread bridge)."""
    from taller.agent.session import _in_thread

    return _in_thread(make_iterator, cancel_event)


# --- export and import ----------------------------------------------------------------------------

def export_filename(title: str | None, thread_id: str, extension: str) -> str:
    """``<title words>-<thread id>.<ext>``: safe in any file system, recognisable in a downloads folder."""
    words = re.sub(r"[^A-Za-z0-9]+", "-", title or "").strip("-").lower()[:40].strip("-")
    return f"{words or 'thread'}-{thread_id}.{extension}"


async def on_export(server: TallerServer, connection: Connection, frame: dict) -> None:
    """A thread as Markdown, JSON, a Python script or a notebook; answered with ``export``
    ``{format, filename, media_type, text}`` (the page offers it as a download)."""
    fmt = frame.get("format")
    if fmt not in EXPORT_FORMATS:
        raise ProtocolError("bad_field", f"\"format\" must be one of {', '.join(EXPORT_FORMATS)}")
    thread_id = await known_thread(server, frame)
    agent = server.agent

    def build() -> tuple[str, str | None]:
        from taller.agent.export import export_thread

        exported = export_thread(agent, thread_id, fmt)
        if isinstance(exported, bytes):
            exported = exported.decode("utf-8")
        elif not isinstance(exported, str):
            exported = json.dumps(exported, ensure_ascii=False, indent=1)
        return exported, agent.thread_store.title(thread_id)

    text, title = await asyncio.to_thread(build)
    media_type, extension = EXPORT_FORMATS[fmt]
    # The reply must fit one frame whole: an export cut to fit would be a broken file.
    limit = server.limits.max_send_bytes - 4096
    size = len(text.encode("utf-8"))
    if size > limit:
        raise ProtocolError("too_large", f"the {fmt} export of thread {thread_id} is {size:,} bytes, more than "
                                         f"the {limit:,} a frame carries; use `taller export {thread_id} "
                                         f"--format {fmt}` instead")
    reply(connection, frame, "export", thread_id=thread_id, format=fmt, filename=export_filename(title, thread_id,
                                                                                                 extension),
          media_type=media_type, text=text)


async def on_import(server: TallerServer, connection: Connection, frame: dict) -> None:
    """A thread exported as JSON becomes a new thread; answered with ``imported`` ``{thread_id, title}``."""
    data = frame.get("data")
    if data is None:
        raise ProtocolError("missing_field", "import needs \"data\": a thread exported as JSON (object or text)")
    limit = server.limits.max_import_bytes
    text = data if isinstance(data, str) else json.dumps(data, ensure_ascii=False)
    size = len(text.encode("utf-8"))
    if size > limit:
        raise ProtocolError("too_large", f"the import is {size:,} bytes; the limit is {limit:,}")
    if isinstance(data, str):
        try:
            data = json.loads(data)
        except (ValueError, RecursionError) as exc:
            raise ProtocolError("bad_import", f"the import is not JSON: {str(exc)[:120]}") from None
    if not isinstance(data, dict):
        raise ProtocolError("bad_import", "the import must be a JSON object (a thread exported as JSON)")
    agent = server.agent

    def load() -> tuple[str, str | None]:
        from taller.agent.export import import_thread, validate

        validate(data, "the import")  # its errors name the import and what is wrong, never its contents
        thread_id = import_thread(agent, data)
        return thread_id, agent.thread_store.title(thread_id)

    try:
        thread_id, title = await asyncio.to_thread(load)
    except (TallerError, ValueError, KeyError, TypeError) as exc:
        raise ProtocolError("bad_import", f"not imported: {str(exc)[:300]}") from None
    reply(connection, frame, "imported", thread_id=thread_id, title=title)
