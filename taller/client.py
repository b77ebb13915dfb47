"""A small Python client for ``taller serve`` (used by ``taller ask --server ws://...``).

One-shot use::

    from taller.client import ask_sync
    final = ask_sync("ws://127.0.0.1:8765", None, "train the autoencoder for 2 epochs",
                     on_event=print, approve=True)

``token=None`` reads the local token (the ``server_token`` setting, else
``$TALLER_HOME/server_token``). The URL may also be the page URL printed by ``taller serve``
(``http://127.0.0.1:8765/#token=...``); its token is used then.

Several requests over one connection::

    async with await TallerClient.connect(url, token) as client:
        final = await client.ask("hola", thread_id="t1", on_event=print)
        async for event in client.stream("what runs are going?", thread_id="t2"):
            ...
        pong = await client.ping()

Every frame the client sends carries a fresh ``request_id``; a reader task routes the server's
events to the request they belong to, and events of no request (background ``progress``) to
:meth:`TallerClient.progress`.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from typing import Any, AsyncIterator, Callable
from urllib.parse import parse_qs, urlsplit, urlunsplit

from websockets.asyncio.client import ClientConnection, connect as ws_connect
from websockets.exceptions import ConnectionClosed, InvalidStatus, InvalidURI

DEFAULT_URL = "ws://127.0.0.1:8765/"
TERMINAL = {"final", "error", "interrupt"}
_REPLY_TYPES = {"pong", "runs", "threads", "history", "subscribed", "renamed", "deleted", "search_results",
                "branches", "branch_switched", "export", "imported"}

EventCallback = Callable[[dict[str, Any]], Any]
Approval = bool | Callable[[dict[str, Any]], bool] | None


class ClientError(RuntimeError):
    """The server could not be reached, refused the token/origin, or closed the connection."""


def normalize_url(url: str | None) -> tuple[str, str | None]:
    """``(websocket URL, token found in it or None)``; accepts ws://, http:// and bare host:port."""
    url = (url or DEFAULT_URL).strip()
    if "://" not in url:
        url = "ws://" + url
    parts = urlsplit(url)
    scheme = {"http": "ws", "https": "wss"}.get(parts.scheme, parts.scheme)
    if scheme not in ("ws", "wss"):
        raise ClientError(f"not a websocket URL: {url!r} (use ws://host:port)")
    token = None
    fragment = parse_qs(parts.fragment)
    if fragment.get("token"):
        token = fragment["token"][0]
    query = parse_qs(parts.query)
    if query.get("token"):
        token = query["token"][0]
    # The token travels in the Authorization header, not in the URL (URLs end up in logs).
    clean_query = "&".join(f"{k}={v}" for k, values in query.items() if k != "token" for v in values)
    return urlunsplit((scheme, parts.netloc, parts.path or "/", clean_query, "")), token


def default_token() -> str | None:
    from taller.paths import read_server_token

    return read_server_token()


class TallerClient:
    """One websocket connection to ``taller serve``, shared by any number of requests."""

    def __init__(self, websocket: ClientConnection) -> None:
        self.websocket = websocket
        self.hello: dict[str, Any] | None = None
        self._queues: dict[str, asyncio.Queue] = {}
        self._progress: asyncio.Queue = asyncio.Queue(maxsize=1000)
        self._closed_reason: str | None = None
        self._paused: dict[str, str] = {}  # thread_id -> request_id of its interrupt
        self._reader = asyncio.create_task(self._read())

    @classmethod
    async def connect(cls, url: str | None = None, token: str | None = None,
                      open_timeout: float = 10.0, max_size: int = 16 * 1024 * 1024) -> "TallerClient":
        ws_url, url_token = normalize_url(url)
        token = token or url_token or default_token()
        if not token:
            raise ClientError("no server token: pass --token, or run on the machine of `taller serve` "
                              "(it writes $TALLER_HOME/server_token)")
        try:
            websocket = await ws_connect(ws_url, additional_headers={"Authorization": f"Bearer {token}"},
                                         open_timeout=open_timeout, max_size=max_size, compression=None)
        except InvalidStatus as exc:
            status = exc.response.status_code
            body = bytes(exc.response.body or b"").decode("utf-8", "replace").strip()
            raise ClientError(f"the server refused the connection ({status}): {body}") from None
        except InvalidURI as exc:
            raise ClientError(f"bad server URL {ws_url!r}: {exc}") from None
        except (OSError, asyncio.TimeoutError) as exc:
            raise ClientError(f"cannot reach {ws_url}: {exc or type(exc).__name__} (is `taller serve` running?)") from None
        client = cls(websocket)
        return client

    async def __aenter__(self) -> "TallerClient":
        return self

    async def __aexit__(self, *exc: Any) -> None:
        await self.close()

    async def close(self) -> None:
        await self.websocket.close()
        self._reader.cancel()

    # --- plumbing ----------------------------------------------------------------------------
    async def _read(self) -> None:
        try:
            async for raw in self.websocket:
                try:
                    event = json.loads(raw)
                except (TypeError, ValueError):
                    continue
                if not isinstance(event, dict):
                    continue
                if event.get("type") == "hello":
                    self.hello = event
                    continue
                if event.get("type") == "interrupt" and event.get("thread_id"):
                    self._paused[event["thread_id"]] = event.get("request_id")
                queue = self._queues.get(event.get("request_id") or "")
                if queue is not None:
                    queue.put_nowait(event)
                elif event.get("request_id") is None:
                    if self._progress.full():
                        self._progress.get_nowait()  # keep the newest progress
                    self._progress.put_nowait(event)
        except ConnectionClosed as exc:
            self._closed_reason = f"connection closed ({exc.rcvd.code if exc.rcvd else 'no close frame'}"\
                                  f"{': ' + exc.rcvd.reason if exc.rcvd and exc.rcvd.reason else ''})"
        finally:
            self._closed_reason = self._closed_reason or "connection closed"
            for queue in self._queues.values():
                queue.put_nowait(None)

    async def send(self, frame: dict[str, Any]) -> str:
        """Send one frame (a ``request_id`` is added when missing); returns its request id."""
        frame = dict(frame)
        frame.setdefault("request_id", "c-" + uuid.uuid4().hex[:12])
        self._queues.setdefault(frame["request_id"], asyncio.Queue())
        try:
            await self.websocket.send(json.dumps(frame, ensure_ascii=False))
        except ConnectionClosed:
            raise ClientError(self._closed_reason or "connection closed") from None
        return frame["request_id"]

    async def events(self, request_id: str, until: set[str] = TERMINAL,
                     timeout: float | None = None) -> AsyncIterator[dict[str, Any]]:
        """Events of one request, up to and including the first whose type is in ``until``."""
        queue = self._queues.setdefault(request_id, asyncio.Queue())
        try:
            while True:
                event = await asyncio.wait_for(queue.get(), timeout)
                if event is None:
                    raise ClientError(self._closed_reason or "connection closed")
                yield event
                if event.get("type") in until or event.get("type") == "error":
                    return
        finally:
            if queue.empty():
                self._queues.pop(request_id, None)

    async def _call(self, frame: dict[str, Any], timeout: float | None = 30.0) -> dict[str, Any]:
        request_id = await self.send(frame)
        async for event in self.events(request_id, until=_REPLY_TYPES, timeout=timeout):
            last = event
        return last

    # --- requests ----------------------------------------------------------------------------
    async def stream(self, text: str, thread_id: str | None = None, attachments: list | None = None,
                     approve: Approval = None, request_id: str | None = None,
                     timeout: float | None = None) -> AsyncIterator[dict[str, Any]]:
        """Send a message and yield its events until ``final``/``error`` (or ``interrupt`` when
        ``approve`` is None; with ``approve`` set, the interrupt is answered and streaming goes on)."""
        frame: dict[str, Any] = {"type": "message", "text": text}
        if thread_id:
            frame["thread_id"] = thread_id
        if attachments:
            frame["attachments"] = attachments
        if request_id:
            frame["request_id"] = request_id
        request_id = await self.send(frame)
        while True:
            last = None
            async for event in self.events(request_id, timeout=timeout):
                last = event
                yield event
            if last is None or last.get("type") != "interrupt" or approve is None:
                return
            decision = approve(last) if callable(approve) else bool(approve)
            # The resumed run continues under the same request id (docs/protocol.md).
            self._queues.setdefault(request_id, asyncio.Queue())
            await self.send({"type": "approve" if decision else "reject", "thread_id": last["thread_id"],
                             "request_id": request_id})

    async def ask(self, text: str, thread_id: str | None = None, on_event: EventCallback | None = None,
                  attachments: list | None = None, approve: Approval = None,
                  timeout: float | None = None) -> dict[str, Any]:
        """Send a message; call ``on_event`` for each event; return the last one
        (``final``, ``error``, or ``interrupt`` when ``approve`` is None)."""
        last: dict[str, Any] = {}
        async for event in self.stream(text, thread_id, attachments, approve, timeout=timeout):
            last = event
            if on_event is not None:
                result = on_event(event)
                if asyncio.iscoroutine(result):
                    await result
        return last

    async def approve(self, thread_id: str, approve: bool = True, request_id: str | None = None,
                      on_event: EventCallback | None = None) -> dict[str, Any]:
        """Answer a pending interrupt of ``thread_id``; returns the resumed request's last event."""
        # Continue the interrupted request under its own id when this connection saw it.
        request_id = request_id or self._paused.pop(thread_id, None)
        frame = {"type": "approve" if approve else "reject", "thread_id": thread_id}
        if request_id:
            frame["request_id"] = request_id
        request_id = await self.send(frame)
        last: dict[str, Any] = {}
        async for event in self.events(request_id):
            last = event
            if on_event is not None:
                on_event(event)
        return last

    async def cancel(self, request_id: str | None = None, thread_id: str | None = None) -> None:
        """Ask the server to stop a running request (it then ends with ``final`` ``cancelled: true``)."""
        frame: dict[str, Any] = {"type": "cancel"}
        if thread_id:
            frame["thread_id"] = thread_id
        # The cancel frame names the request to stop; its own id would be a new one.
        payload = json.dumps({**frame, **({"request_id": request_id} if request_id else {})})
        await self.websocket.send(payload)

    async def ping(self) -> dict[str, Any]:
        return await self._call({"type": "ping"})

    async def runs(self) -> dict[str, Any]:
        return await self._call({"type": "runs"})

    async def threads(self) -> list[dict[str, Any]]:
        return (await self._call({"type": "threads"})).get("threads", [])

    async def history(self, thread_id: str) -> dict[str, Any]:
        return await self._call({"type": "history", "thread_id": thread_id})

    async def _reply(self, frame: dict[str, Any], kind: str) -> dict[str, Any]:
        """The reply of type ``kind`` to ``frame``; an ``error`` reply raises :class:`ClientError`."""
        reply = await self._call(frame)
        if reply.get("type") != kind:
            raise ClientError(f"{frame['type']}: {reply.get('code', 'error')}: {reply.get('message', reply)}")
        return reply

    async def rename(self, thread_id: str, title: str) -> dict[str, Any]:
        return await self._reply({"type": "rename", "thread_id": thread_id, "title": title}, "renamed")

    async def delete(self, thread_id: str) -> dict[str, Any]:
        return await self._reply({"type": "delete", "thread_id": thread_id}, "deleted")

    async def search(self, query: str, limit: int = 50) -> list[dict[str, Any]]:
        """Messages of every thread that match ``query``: ``{thread_id, title, message_index, role, snippet}``."""
        return (await self._reply({"type": "search", "query": query, "limit": limit}, "search_results"))["results"]

    async def branches(self, thread_id: str) -> list[dict[str, Any]]:
        return (await self._reply({"type": "branches", "thread_id": thread_id}, "branches"))["branches"]

    async def switch_branch(self, thread_id: str, branch_id: str) -> list[dict[str, Any]]:
        """Make ``branch_id`` current; returns the thread's branches after the switch."""
        frame = {"type": "switch_branch", "thread_id": thread_id, "branch_id": branch_id}
        return (await self._reply(frame, "branch_switched"))["branches"]

    async def export(self, thread_id: str, fmt: str = "md") -> dict[str, Any]:
        """``{format, filename, media_type, text}`` of the thread as md, json, py or ipynb."""
        return await self._reply({"type": "export", "thread_id": thread_id, "format": fmt}, "export")

    async def import_thread(self, data: dict[str, Any] | str) -> str:
        """A JSON export (object or text) as a new thread; returns its id."""
        return (await self._reply({"type": "import", "data": data}, "imported"))["thread_id"]

    async def regenerate(self, thread_id: str, timeout: float | None = None) -> dict[str, Any]:
        """Answer the thread's last message again; returns the request's last event."""
        return await self._last_event({"type": "regenerate", "thread_id": thread_id}, timeout)

    async def edit(self, thread_id: str, message_index: int, text: str,
                   timeout: float | None = None) -> dict[str, Any]:
        """Replace the user message at ``message_index`` and answer again; returns the last event."""
        frame = {"type": "edit", "thread_id": thread_id, "message_index": message_index, "text": text}
        return await self._last_event(frame, timeout)

    async def _last_event(self, frame: dict[str, Any], timeout: float | None) -> dict[str, Any]:
        request_id = await self.send(frame)
        last: dict[str, Any] = {}
        async for event in self.events(request_id, timeout=timeout):
            last = event
        return last

    async def progress(self, timeout: float | None = None) -> dict[str, Any]:
        """The next event that belongs to no request (background training progress)."""
        return await asyncio.wait_for(self._progress.get(), timeout)


async def ask(url: str | None, token: str | None, text: str, thread_id: str | None = None,
              on_event: EventCallback | None = None, approve: Approval = None,
              attachments: list | None = None, timeout: float | None = None) -> dict[str, Any]:
    """Connect, send one message, stream its events to ``on_event``, return the last event.

    The result is the ``final`` or ``error`` event, or the ``interrupt`` event when the agent asks
    for approval and ``approve`` is None (answer later with :meth:`TallerClient.approve`, or pass
    ``approve=True``/``False``/a callable to answer at once).
    """
    async with await TallerClient.connect(url, token) as client:
        return await client.ask(text, thread_id=thread_id, on_event=on_event, attachments=attachments,
                                approve=approve, timeout=timeout)


def ask_sync(url: str | None, token: str | None, text: str, thread_id: str | None = None,
             on_event: EventCallback | None = None, approve: Approval = None,
             attachments: list | None = None, timeout: float | None = None) -> dict[str, Any]:
    """:func:`ask` for synchronous code (runs its own event loop)."""
    return asyncio.run(ask(url, token, text, thread_id=thread_id, on_event=on_event, approve=approve,
                           attachments=attachments, timeout=timeout))
