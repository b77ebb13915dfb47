"""ChromaDB access for every knowledge module.

By default a ``PersistentClient`` under ``$TALLER_HOME/chroma``; setting ``chroma_url``
(``http://host:8000``) switches to ``HttpClient`` with no other change. Collections are created
with cosine distance and embedded by :mod:`taller.embeddings` (the caller passes
embeddings explicitly, so Chroma never downloads its own default model).

A server is shared by whoever points at it: ``chroma_url`` may name a tenant and a database of
that server, ``http://host:8000/?database=team_a`` (``&tenant=...``; defaults Chroma's
``default_tenant`` / ``default_database``), and a database that does not exist yet is created.
An unreachable server is a :class:`ChromaUnavailableError` naming the URL (a tool answers it as
an error; nothing hangs: connecting gives up after :data:`CONNECT_TIMEOUT_S`).
"""

from __future__ import annotations

import socket
import threading
from typing import Any
from urllib.parse import parse_qs, urlparse

from taller.config import get_settings
from taller.errors import ToolError
from taller.paths import clip

# Seconds to wait for the server's TCP connection (a host that drops packets would otherwise
# hang a tool call: Chroma's HTTP client has no timeout of its own) ...
CONNECT_TIMEOUT_S = 5.0
# ... and for one answer (adding a long transcript is one request of a few MB).
REQUEST_TIMEOUT_S = 120.0

_clients: dict[str, Any] = {}
_lock = threading.Lock()


class ChromaUnavailableError(ToolError):
    """The Chroma server of ``chroma_url`` cannot be reached or refused the request."""


def server_address(url: str) -> dict[str, Any]:
    """``chroma_url`` → ``{host, port, ssl, tenant, database}`` for ``chromadb.HttpClient``."""
    parsed = urlparse(url)
    if parsed.scheme not in ("http", "https") or not parsed.hostname:
        raise ChromaUnavailableError(f"chroma_url {clip(url)!r} is not an http(s)://host:port URL")
    query = parse_qs(parsed.query)
    try:
        port = parsed.port or (443 if parsed.scheme == "https" else 8000)
    except ValueError:
        raise ChromaUnavailableError(f"chroma_url {clip(url)!r} has an invalid port") from None
    return {"host": parsed.hostname, "port": port, "ssl": parsed.scheme == "https",
            "tenant": query.get("tenant", ["default_tenant"])[0],
            "database": query.get("database", ["default_database"])[0]}


def _failure(url: str, exc: BaseException, what: str = "") -> ChromaUnavailableError:
    """The error for ``exc`` from the server at ``url``: unreachable, or what it refused."""
    import httpx

    # Chroma re-raises some errors bare (ValueError('')): the reason is in the chain.
    cause: BaseException | None = exc
    while cause is not None and not str(cause).strip():
        cause = cause.__cause__ or cause.__context__
    reason = str(cause).strip().splitlines()[0] if cause is not None else type(exc).__name__
    connecting = (isinstance(exc, (httpx.TransportError, OSError))
                  or "could not connect" in reason.lower())
    if connecting:
        return ChromaUnavailableError(
            f"cannot reach the Chroma server at {clip(url)} (setting chroma_url): {clip(reason, 200)}. "
            "Start it (chroma run --path DIR --host HOST --port PORT) or unset chroma_url to use "
            "the embedded store")
    return ChromaUnavailableError(f"the Chroma server at {clip(url)} refused {what or 'the request'}: "
                                  f"{clip(reason, 200)} (is it a Chroma 1.x server?)")


def _http_client(url: str, settings_class: Any) -> Any:
    import chromadb

    address = server_address(url)
    # Refuse fast when nothing listens (or the host drops packets) instead of waiting on HTTP.
    try:
        socket.create_connection((address["host"], address["port"]), timeout=CONNECT_TIMEOUT_S).close()
    except OSError as exc:
        raise _failure(url, exc) from None
    tenant, database = address["tenant"], address["database"]
    settings = settings_class(anonymized_telemetry=False, allow_reset=False)
    try:
        if database != "default_database" or tenant != "default_tenant":
            admin = chromadb.AdminClient(settings_class(
                anonymized_telemetry=False, chroma_api_impl="chromadb.api.fastapi.FastAPI",
                chroma_server_host=address["host"], chroma_server_http_port=address["port"],
                chroma_server_ssl_enabled=address["ssl"]))
            try:
                admin.get_database(database, tenant=tenant)
            except Exception:  # not found: a new database for this deployment
                admin.create_database(database, tenant=tenant)
        client = chromadb.HttpClient(host=address["host"], port=address["port"], ssl=address["ssl"],
                                     tenant=tenant, database=database, settings=settings)
    except Exception as exc:  # ValueError "Could not connect", httpx errors, an unknown tenant
        raise _failure(url, exc, f"tenant {tenant!r} / database {database!r}") from None
    # Chroma's httpx session waits forever; give it a deadline (where this version keeps one).
    session = getattr(getattr(client, "_server", None), "_session", None)
    if session is not None and hasattr(session, "timeout"):
        import httpx

        session.timeout = httpx.Timeout(REQUEST_TIMEOUT_S, connect=CONNECT_TIMEOUT_S)
    return client


def get_client() -> Any:
    """The process-wide Chroma client for the current settings."""
    import chromadb
    from chromadb.config import Settings as ChromaSettings

    settings = get_settings()
    key = settings.chroma_url or str(settings.chroma_dir)
    with _lock:
        if key not in _clients:
            if settings.chroma_url:
                _clients[key] = _http_client(settings.chroma_url, ChromaSettings)
            else:
                settings.chroma_dir.mkdir(parents=True, exist_ok=True)
                _clients[key] = chromadb.PersistentClient(
                    path=str(settings.chroma_dir),
                    settings=ChromaSettings(anonymized_telemetry=False, allow_reset=False))
        return _clients[key]


def get_collection(name: str, metadata: dict | None = None) -> Any:
    """Get or create a collection (cosine space); embeddings are supplied by the caller."""
    meta = {"hnsw:space": "cosine"}
    meta.update(metadata or {})
    client = get_client()
    url = get_settings().chroma_url
    if not url:
        return client.get_or_create_collection(name=name, metadata=meta, embedding_function=None)
    try:
        return client.get_or_create_collection(name=name, metadata=meta, embedding_function=None)
    except Exception as exc:  # the server went away after the client was made, timed out, refused
        raise _failure(url, exc, f"collection {name!r}") from None


def server_status() -> str:
    """One line on the configured Chroma server (for ``taller doctor``): its version, database
    and collections; raises :class:`ChromaUnavailableError` naming the URL when it cannot answer."""
    url = get_settings().chroma_url
    if not url:
        raise ChromaUnavailableError("chroma_url is not set: Taller uses the embedded store")
    client = get_client()
    try:
        version = client.get_version()
        collections = len(client.list_collections())
    except Exception as exc:
        raise _failure(url, exc) from None
    address = server_address(url)
    return (f"Chroma {version} at {clip(url)}, database {address['database']!r}: "
            f"{collections} collection{'s' if collections != 1 else ''}")
