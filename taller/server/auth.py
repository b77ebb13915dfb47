"""Who may talk to the server: the token file, the token a client offers, the page's Origin, a rate limit.

* The token lives in ``$TALLER_HOME/server_token`` (mode 0600, created on first start) unless the
  ``server_token`` setting gives one; clients read it with :func:`taller.paths.read_server_token`.
* A client offers it as ``?token=``, ``Authorization: Bearer``, or (browsers, which cannot set
  headers on a WebSocket) the subprotocol ``taller.token.<TOKEN>``; it is compared in constant time.
* The ``Origin`` header of a websocket handshake must be absent (scripts) or a loopback page on this
  port (browsers), which stops other web sites and DNS rebinding.
* Each connection has a token bucket: ``rate_per_s`` frames per second, bursts of ``rate_burst``.
"""

from __future__ import annotations

import hmac
import logging
import os
import secrets
import time
from pathlib import Path
from urllib.parse import urlsplit

from websockets.http11 import Request, Response

from taller.config import Settings, get_settings
from taller.paths import server_token_path
from taller.server.http import plain_response

log = logging.getLogger(__name__)

TOKEN_SUBPROTOCOL_PREFIX = "taller.token."
LOOPBACK_HOSTS = {"127.0.0.1", "localhost", "::1", "[::1]"}
WEBSOCKET_PATHS = ("/", "/ws")


def load_or_create_token(settings: Settings | None = None) -> tuple[str, Path | None]:
    """The server token and the file it lives in (None when it comes from the config).

    The file is created with mode 0600 on first use; an existing file readable by others is
    tightened to 0600, because anyone holding the token can drive the agent.
    """
    settings = settings or get_settings()
    if settings.server_token:
        return settings.server_token, None
    path = server_token_path(settings)
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.is_file():
        if path.stat().st_mode & 0o077:
            os.chmod(path, 0o600)
        token = path.read_text(encoding="utf-8").strip()
        if token:
            return token, path
        path.unlink()
    token = secrets.token_hex(24)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(token + "\n")
    return token, path


def token_ok(request: Request, query: dict[str, list[str]], token: str) -> bool:
    """Whether the request carries ``token`` in the query, a Bearer header or a token subprotocol."""
    offered: list[str] = list(query.get("token", []))
    for value in request.headers.get_all("Authorization"):
        scheme, _, credential = value.partition(" ")
        if scheme.lower() == "bearer":
            offered.append(credential.strip())
    for value in request.headers.get_all("Sec-WebSocket-Protocol"):
        for item in value.split(","):
            item = item.strip()
            if item.startswith(TOKEN_SUBPROTOCOL_PREFIX):
                offered.append(item[len(TOKEN_SUBPROTOCOL_PREFIX):])
    expected = token.encode("utf-8")
    return any(hmac.compare_digest(candidate.encode("utf-8"), expected) for candidate in offered)


def origin_allowed(origin: str | None, host: str, port: int | None) -> bool:
    """No Origin (a script) or a page served from a loopback name (or our ``host``) on our ``port``."""
    if origin is None:
        return True
    try:
        parts = urlsplit(origin)
        origin_port = parts.port or {"http": 80, "https": 443}.get(parts.scheme)
    except ValueError:
        return False
    if parts.scheme not in ("http", "https") or origin_port != port:
        return False
    hostname = (parts.hostname or "").lower()
    allowed = set(LOOPBACK_HOSTS)
    if host not in ("0.0.0.0", "::", ""):
        allowed.add(host.lower().strip("[]"))
    return hostname in allowed


def refuse_handshake(path: str, request: Request, query: dict[str, list[str]], token: str, host: str,
                     port: int | None) -> Response | None:
    """The HTTP answer that stops a websocket handshake (wrong path, Origin or token), or None to go on."""
    if path not in WEBSOCKET_PATHS:
        return plain_response(404, "no websocket endpoint here; connect to / or /ws\n")
    origins = request.headers.get_all("Origin")
    if len(origins) > 1 or not origin_allowed(origins[0] if origins else None, host, port):
        log.warning("refused websocket from origin %r", origins)
        return plain_response(403, "origin not allowed: open the page served by this server\n")
    if not token_ok(request, query, token):
        return plain_response(401, "missing or wrong token: see `taller serve` output "
                                   "(?token=, Authorization: Bearer, or the taller.token.* subprotocol)\n")
    return None


class TokenBucket:
    """``rate`` frames per second on average, up to ``burst`` at once."""

    def __init__(self, rate: float, burst: int) -> None:
        self.rate, self.burst = rate, float(burst)
        self.tokens = float(burst)
        self.stamp = time.monotonic()

    def take(self) -> bool:
        now = time.monotonic()
        self.tokens = min(self.burst, self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now
        if self.tokens >= 1.0:
            self.tokens -= 1.0
            return True
        return False
