"""The Python client (`taller.client`, behind `taller ask --server`) against a real server on port 0."""

from __future__ import annotations

import asyncio
import socket

import pytest

from taller.llm import FakeChatModel
from taller.agent.session import Agent
from taller.client import ClientError, TallerClient, ask, ask_sync, normalize_url
from taller.server import BackgroundServer
from taller.tools import get_tool


class EchoModel(FakeChatModel):
    def invoke_json(self, messages, schema, **kwargs):
        return {"tool": "none", "args": {}}


@pytest.fixture
def server_for():
    started = []

    def make(model: FakeChatModel, **kwargs) -> BackgroundServer:
        server = BackgroundServer(agent=Agent(chat_model=model), **kwargs).start()
        started.append(server)
        return server

    yield make
    for server in started:
        server.stop()
        server.agent.close()


def test_normalize_url():
    assert normalize_url(None) == ("ws://127.0.0.1:8765/", None)
    assert normalize_url("127.0.0.1:9000") == ("ws://127.0.0.1:9000/", None)
    assert normalize_url("http://127.0.0.1:9000/#token=abc") == ("ws://127.0.0.1:9000/", "abc")
    assert normalize_url("ws://localhost:1/ws?token=xyz") == ("ws://localhost:1/ws", "xyz")
    assert normalize_url("https://host/") == ("wss://host/", None)
    with pytest.raises(ClientError, match="not a websocket URL"):
        normalize_url("ftp://host/")


def test_ask_sync_streams_events_and_reads_the_local_token(server_for):
    server = server_for(EchoModel(default=lambda messages: "echo: " + messages[-1].content))
    seen = []
    # token=None: the client reads $TALLER_HOME/server_token, which the server created.
    final = ask_sync(server.url, None, "hola", thread_id="t-1", on_event=seen.append)
    assert final["type"] == "final" and final["text"] == "echo: hola" and final["thread_id"] == "t-1"
    assert [e["type"] for e in seen][-1] == "final" and "token" in {e["type"] for e in seen}
    assert len({e["request_id"] for e in seen}) == 1


def test_ask_with_approval_answers_the_interrupt(server_for, monkeypatch):
    monkeypatch.setattr(get_tool("train_model"), "func", lambda **kwargs: {"summary": "started", "run_id": "rnn-1"})
    script = [{"tool": "train_model", "args": {"model": "rnn", "epochs": 1}}, "Started.",
              {"tool": "train_model", "args": {"model": "rnn", "epochs": 1}}]
    server = server_for(FakeChatModel(responses=script))
    seen = []
    final = ask_sync(server.page_url, None, "train the rnn", thread_id="t-2", on_event=seen.append,
                     approve=lambda event: event["tool"] == "train_model")
    kinds = [e["type"] for e in seen]
    assert kinds[0] == "interrupt" and "tool_start" in kinds and final["type"] == "final"
    assert final["result"]["run_id"] == "rnn-1"
    assert len({e["request_id"] for e in seen}) == 1, "the approved run continues the same request"

    # Without approve, ask returns the interrupt; approve() on a new connection resumes it.
    paused = ask_sync(server.url, server.token, "train it again", thread_id="t-3")
    assert paused["type"] == "interrupt"

    async def later() -> dict:
        async with await TallerClient.connect(server.url, server.token) as client:
            return await client.approve("t-3", False)

    assert asyncio.run(later())["text"] == "OK, I did not run it."


async def test_one_connection_many_requests_and_cancel(server_for):
    words = " ".join(["word"] * 300)

    def answer(messages):
        return words if messages[-1].content == "long" else "short"

    server = server_for(EchoModel(default=answer, token_delay=0.01))
    async with await TallerClient.connect(server.url, server.token) as client:
        assert client.hello is None or client.hello["type"] == "hello"
        pong = await client.ping()
        assert pong["type"] == "pong"

        async def long_request() -> dict:
            last = {}
            async for event in client.stream("long", thread_id="t-long", request_id="long-1"):
                if event["type"] == "token" and event["text"].strip() == "word" and not last:
                    await client.cancel(request_id="long-1")
                last = event
            return last

        cancelled, short = await asyncio.gather(long_request(), client.ask("short please", thread_id="t-short"))
        assert cancelled["type"] == "final" and cancelled["cancelled"] is True
        assert short["text"] == "short" and short["cancelled"] is False
        threads = await client.threads()
        assert {t["thread_id"] for t in threads} == {"t-long", "t-short"}
        history = await client.history("t-short")
        assert history["messages"][-1]["content"] == "short"


def test_clear_errors_for_wrong_token_and_no_server(server_for):
    server = server_for(EchoModel(default="x"))
    with pytest.raises(ClientError, match="refused the connection \\(401\\)"):
        ask_sync(server.url, "wrong-token", "hi")
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        free_port = probe.getsockname()[1]
    with pytest.raises(ClientError, match="cannot reach"):
        ask_sync(f"ws://127.0.0.1:{free_port}", "any", "hi")


def test_no_token_anywhere_is_a_clear_error():
    with pytest.raises(ClientError, match="no server token"):
        asyncio.run(ask("ws://127.0.0.1:9", None, "hi"))
