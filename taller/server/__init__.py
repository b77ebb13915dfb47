"""The local websocket server behind ``taller serve``: the agent for scripts, editors and a web page.

One process, one port (default ``127.0.0.1:8765``):

* ``ws://host:port/`` (or ``/ws``): the JSON protocol of ``docs/protocol.md``. A client sends
  ``message`` / ``approve`` / ``reject`` / ``cancel`` / ``ping`` (and ``runs`` / ``threads`` /
  ``history`` / ``subscribe``, the thread messages ``rename`` / ``delete`` / ``search`` /
  ``regenerate`` / ``edit`` / ``branches`` / ``switch_branch`` / ``export`` / ``import``); the
  server streams the agent's events back, each tagged with the ``thread_id`` and ``request_id`` it
  belongs to.
* ``http://host:port/``: a single static chat page (``taller/static/``), plain JavaScript: a full
  client (thread list, search, branches, copy, export/import, runs).
* ``http://host:port/files?path=...``: image files tools wrote, only from ``outputs_dir`` and
  ``runs_dir`` and only with the token.

Security: loopback by default; a token (``$TALLER_HOME/server_token``, mode 0600, created on first
start, or the ``server_token`` setting) is required for the websocket and for ``/files``; the
``Origin`` header of a websocket handshake must be absent (scripts) or a loopback page on this
port (browsers), which stops other web sites and DNS rebinding; frames are capped at
``max_frame_bytes``; each connection has a token-bucket rate limit.

Concurrency: every agent request runs in its own worker thread (``Agent.arun``), so many clients
and many threads per client run at once; a thread runs one request at a time (a second message
on a busy thread gets an ``error`` with code ``thread_busy``). Each connection has its own send
queue and writer task, so a slow reader only delays itself. Background training runs report on
``taller.progress.bus``; the server forwards those ``progress`` events to every connection that
follows them (all, by default), so a client that reconnects sees the runs that are still going.

The modules, one concern each (bottom to top):

* :mod:`.protocol`: frames, ids, :class:`Limits`, error codes, dispatch by ``"type"``;
* :mod:`.http`: the page, ``/files`` and its path checks; :mod:`.auth`: token file, token and
  Origin checks, the rate limit; :mod:`.attachments`: decoding and checking uploaded images;
* :mod:`.connection`: one client's send queue and read loop; :mod:`.requests`: agent requests in
  flight and the pump; :mod:`.broadcast`: background progress; :mod:`.handlers`: the table of
  message types, with the thread list, branches, export and import in :mod:`.threads`;
  :mod:`.results`: the ``/files`` URLs of the images a tool result names (pure);
* :mod:`.app`: :class:`TallerServer`, which wires them; :mod:`.run`: :class:`BackgroundServer`
  and :func:`serve`.
"""

from taller.server.app import TallerServer
from taller.server.auth import load_or_create_token
from taller.server.protocol import PROTOCOL_VERSION, Limits, ProtocolError
from taller.server.run import BackgroundServer, serve

__all__ = ["PROTOCOL_VERSION", "BackgroundServer", "Limits", "ProtocolError", "TallerServer",
           "load_or_create_token", "serve"]
