"""Running a :class:`~taller.server.app.TallerServer`: in a background thread, or in the foreground.

:class:`BackgroundServer` puts the server on its own event loop in a daemon thread (tests,
benchmarks, embedding); :func:`serve` is ``taller serve``: it prints the URLs and the token file
and runs until Ctrl-C or SIGTERM.
"""

from __future__ import annotations

import asyncio
import signal
import threading
from typing import Any, Callable

from taller.server.app import TallerServer
from taller.server.auth import LOOPBACK_HOSTS


class BackgroundServer:
    """A :class:`TallerServer` on its own event loop in a daemon thread (tests, benchmarks, embedding).

    ``with BackgroundServer(agent=...) as server: server.url, server.token, server.page_url``.
    """

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("port", 0)
        self.server = TallerServer(**kwargs)
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="taller-server", daemon=True)

    def start(self) -> "BackgroundServer":
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self.server.start(), self._loop).result(timeout=30)
        return self

    def stop(self) -> None:
        if self._loop.is_running():
            asyncio.run_coroutine_threadsafe(self.server.stop(), self._loop).result(timeout=30)
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(timeout=10)

    def call(self, function: Callable[[], Any]) -> Any:
        """Run ``function`` on the server's loop and return its result (for inspecting state)."""
        async def wrapper() -> Any:
            return function()
        return asyncio.run_coroutine_threadsafe(wrapper(), self._loop).result(timeout=10)

    def __enter__(self) -> "BackgroundServer":
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.server, name)


def serve(host: str | None = None, port: int | None = None, token: str | None = None) -> None:
    """Run the server until Ctrl-C / SIGTERM (``taller serve``). Prints the URLs and the token file."""

    async def main() -> None:
        server = TallerServer(host=host, port=port, token=token)
        try:
            await server.start()
        except OSError as exc:  # port taken, address not on this machine, no permission
            raise SystemExit(f"taller serve: cannot listen on {server.host}:{server.requested_port}: "
                             f"{exc.strerror or exc} (try --port 0 for any free port)") from None
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            try:
                loop.add_signal_handler(signum, stop.set)
            except (NotImplementedError, RuntimeError):  # not on this platform / thread
                pass
        print(f"Taller server listening on {server.url}")
        print(f"Open the chat page: {server.page_url}")
        if server.token_file is not None:
            print(f"Token file: {server.token_file} (clients read it; keep it private)")
        else:
            print("Token: from the command line or the server_token setting")
        if server.host not in LOOPBACK_HOSTS:
            print(f"warning: bound to {server.host}, reachable from other machines; the token is the only guard")
        print("Ctrl-C stops the server.", flush=True)
        await stop.wait()
        print("stopping…", flush=True)
        await server.stop()

    try:
        asyncio.run(main())
    except KeyboardInterrupt:
        pass
