"""The websocket server (`taller serve`) on port 0 with a scripted fake chat model.

Covers the protocol's event sequences (tool call with an image, interrupt → approve/reject,
cancel), concurrency (busy threads, 50 clients at once, abrupt disconnects), every kind of bad
input, the token/Origin checks, the HTTP routes (page, static files, /files) and the progress bus.
"""

from __future__ import annotations

import asyncio
import base64
import io
import json
import os
import stat
import threading
import time
import urllib.error
import urllib.request

import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from taller.llm import FakeChatModel
from taller.agent.session import Agent
from taller.config import get_settings
from taller.server import BackgroundServer, Limits, load_or_create_token
from taller.server.connection import Connection
from taller.paths import read_server_token as read_token
from taller.tools import get_tool


class EchoModel(FakeChatModel):
    """Routes every request to no tool and answers with the request's words (for many clients)."""

    def invoke_json(self, messages, schema, **kwargs):
        return {"tool": "none", "args": {}}


def echo_answer(messages) -> str:
    return "echo: " + messages[-1].content


def png_bytes(size: int = 8) -> bytes:
    from PIL import Image

    buffer = io.BytesIO()
    Image.new("RGB", (size, size), (200, 30, 30)).save(buffer, format="PNG")
    return buffer.getvalue()


@pytest.fixture
def make_server():
    """Start servers with a given fake model (and limits); stop them after the test."""
    started: list[BackgroundServer] = []

    def make(model: FakeChatModel, **kwargs) -> BackgroundServer:
        agent = Agent(chat_model=model)
        server = BackgroundServer(agent=agent, **kwargs).start()
        started.append(server)
        return server

    yield make
    for server in started:
        server.stop()
        server.agent.close()


def headers(server) -> dict[str, str]:
    return {"Authorization": f"Bearer {server.token}"}


async def recv_json(websocket, timeout: float = 20.0) -> dict:
    return json.loads(await asyncio.wait_for(websocket.recv(), timeout))


async def open_client(server, **kwargs):
    """A raw websocket connection past the hello frame."""
    websocket = await connect(server.url, additional_headers=headers(server), **kwargs)
    hello = await recv_json(websocket)
    assert hello["type"] == "hello" and hello["protocol"] == 1
    return websocket


async def collect(websocket, request_id: str, until=("final", "error", "interrupt")) -> list[dict]:
    events = []
    while True:
        event = await recv_json(websocket)
        if event.get("request_id") != request_id:
            continue
        events.append(event)
        if event["type"] in until:
            return events


# --- token ---------------------------------------------------------------------------------------

def test_token_file_is_created_private_and_reused():
    settings = get_settings()
    token, path = load_or_create_token(settings)
    assert path == settings.home / "server_token"
    assert len(token) >= 32
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    os.chmod(path, 0o644)
    again, _ = load_or_create_token(settings)
    assert again == token
    assert stat.S_IMODE(path.stat().st_mode) == 0o600, "a token readable by others is tightened"
    assert read_token(settings) == token


def test_token_from_config_wins(monkeypatch):
    monkeypatch.setenv("TALLER_SERVER_TOKEN", "configured-token-123")
    settings = get_settings(reload=True)
    assert load_or_create_token(settings) == ("configured-token-123", None)
    assert not (settings.home / "server_token").exists()


# --- event sequences -----------------------------------------------------------------------------

async def test_tool_call_streams_the_full_event_sequence(make_server, monkeypatch):
    outputs = get_settings().outputs_dir
    outputs.mkdir(parents=True, exist_ok=True)
    picture = outputs / "grid.png"
    picture.write_bytes(png_bytes())

    def fake_list_models(**kwargs):
        return {"summary": "Two runs.", "runs": ["a", "b"], "images": [str(picture)]}

    monkeypatch.setattr(get_tool("list_models"), "func", fake_list_models)
    server = make_server(FakeChatModel(responses=[{"tool": "list_models", "args": {}}, "You have two runs."]))
    websocket = await open_client(server)
    await websocket.send(json.dumps({"type": "message", "text": "what models do I have?",
                                     "thread_id": "t-tools", "request_id": "req-1"}))
    events = await collect(websocket, "req-1")
    kinds = [event["type"] for event in events]
    assert kinds[:3] == ["tool_start", "tool_end", "image"]
    assert kinds[-1] == "final" and set(kinds[3:-1]) == {"token"}
    assert all(event["thread_id"] == "t-tools" and event["request_id"] == "req-1" for event in events)
    start, end, image = events[0], events[1], events[2]
    assert start["tool"] == "list_models" and start["call_id"] == end["call_id"] == image["call_id"]
    assert end["ok"] is True and end["result"]["runs"] == ["a", "b"]
    assert "".join(e["text"] for e in events if e["type"] == "token") == "You have two runs."
    assert events[-1]["tool"] == "list_models" and events[-1]["cancelled"] is False
    await websocket.close()

    # The image event carries a /files URL that serves the PNG with the token, and only with it.
    assert image["url"].startswith("/files?path=")
    base = f"http://127.0.0.1:{server.port}"
    with urllib.request.urlopen(urllib.request.Request(base + image["url"], headers=headers(server))) as response:
        assert response.headers["Content-Type"] == "image/png"
        assert response.read() == picture.read_bytes()
    with pytest.raises(urllib.error.HTTPError) as denied:
        urllib.request.urlopen(base + image["url"])
    denied.value.close()
    assert denied.value.code == 401


def test_files_route_refuses_paths_outside_outputs_and_runs(make_server, tmp_path):
    server = make_server(EchoModel(default=echo_answer))
    outside = tmp_path / "secret.png"
    outside.write_bytes(png_bytes())
    outputs = get_settings().outputs_dir
    (outputs / "notes.txt").write_text("not an image")
    (outputs / "link.png").symlink_to(outside)
    base = f"http://127.0.0.1:{server.port}/files?token={server.token}&path="
    for path, code in ((outside, 403), (outputs / "notes.txt", 403), (outputs / "link.png", 403),
                       (outputs / ".." / ".." / "etc" / "passwd", 403), (outputs / "missing.png", 404)):
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(base + urllib.request.quote(str(path), safe=""))
        refused.value.close()
        assert refused.value.code == code, path


async def test_interrupt_round_trip_keeps_the_request_id(make_server, monkeypatch):
    calls = []

    def fake_train(**kwargs):
        calls.append(kwargs)
        return {"summary": "Started run autoencoder-1.", "run_id": "autoencoder-1"}

    monkeypatch.setattr(get_tool("train_model"), "func", fake_train)
    model = FakeChatModel(responses=[
        {"tool": "train_model", "args": {"model": "autoencoder", "epochs": 1}}, "Training started.",
        {"request": "train a vae"},  # "now a vae" is a follow-up: first rewritten to stand alone
        {"tool": "train_model", "args": {"model": "vae", "epochs": 2}},
    ])
    server = make_server(model)
    websocket = await open_client(server)
    await websocket.send(json.dumps({"type": "message", "text": "train the autoencoder", "thread_id": "t-int",
                                     "request_id": "train-1"}))
    first = await collect(websocket, "train-1")
    assert [e["type"] for e in first] == ["interrupt"]
    assert first[0]["tool"] == "train_model" and first[0]["args"] == {"model": "autoencoder", "epochs": 1}
    assert calls == [], "nothing runs before approval"

    # approve without a request_id: the paused request continues under its own id.
    await websocket.send(json.dumps({"type": "approve", "thread_id": "t-int"}))
    second = await collect(websocket, "train-1")
    assert [e["type"] for e in second][:2] == ["tool_start", "tool_end"] and second[-1]["type"] == "final"
    assert calls == [{"model": "autoencoder", "epochs": 1}]
    assert second[-1]["result"]["run_id"] == "autoencoder-1"

    # A second costly request, rejected with an explicit request id.
    await websocket.send(json.dumps({"type": "message", "text": "now a vae", "thread_id": "t-int", "request_id": "train-2"}))
    assert (await collect(websocket, "train-2"))[-1]["type"] == "interrupt"
    await websocket.send(json.dumps({"type": "reject", "thread_id": "t-int", "request_id": "train-2"}))
    rejected = await collect(websocket, "train-2")
    assert rejected[-1]["type"] == "final" and "did not run" in rejected[-1]["text"]
    assert len(calls) == 1

    # Nothing left to approve: a clear error, no crash.
    await websocket.send(json.dumps({"type": "approve", "thread_id": "t-int", "request_id": "late"}))
    late = await collect(websocket, "late")
    assert late[-1]["type"] == "error" and "nothing is waiting" in late[-1]["message"]
    await websocket.close()


async def test_cancel_stops_a_streaming_answer(make_server):
    words = " ".join(f"word{i}" for i in range(200))
    server = make_server(FakeChatModel(responses=[{"tool": "none", "args": {}}, words], token_delay=0.02))
    websocket = await open_client(server)
    await websocket.send(json.dumps({"type": "message", "text": "talk a lot", "thread_id": "t-c", "request_id": "long"}))
    first = await recv_json(websocket)
    assert first["type"] == "token"
    await websocket.send(json.dumps({"type": "cancel", "request_id": "long"}))
    rest = await collect(websocket, "long")
    assert rest[-1]["type"] == "final" and rest[-1]["cancelled"] is True
    assert 1 + len(rest) - 1 < 200, "the stream stopped early"
    # Cancelling again: nothing is running any more.
    await websocket.send(json.dumps({"type": "cancel", "request_id": "long"}))
    error = await recv_json(websocket)
    assert error["type"] == "error" and error["code"] == "not_running"
    await websocket.close()


async def test_second_message_on_a_busy_thread_gets_thread_busy(make_server):
    server = make_server(EchoModel(default=echo_answer, token_delay=0.02))
    websocket = await open_client(server)
    # 80 words at 20 ms: the first request is still streaming when the next frames arrive,
    # even on a loaded machine.
    long_text = " ".join(f"w{i}" for i in range(80))
    await websocket.send(json.dumps({"type": "message", "text": long_text, "thread_id": "t-b",
                                     "request_id": "a"}))
    await websocket.send(json.dumps({"type": "message", "text": "again", "thread_id": "t-b", "request_id": "b"}))
    # Another thread on the same connection runs at the same time.
    await websocket.send(json.dumps({"type": "message", "text": "other", "thread_id": "t-other", "request_id": "c"}))
    seen: dict[str, list[dict]] = {"a": [], "b": [], "c": []}
    while not (seen["a"] and seen["a"][-1]["type"] == "final" and seen["c"] and seen["c"][-1]["type"] == "final"):
        event = await recv_json(websocket)
        seen[event["request_id"]].append(event)
    assert [e["type"] for e in seen["b"]] == ["error"] and seen["b"][0]["code"] == "thread_busy"
    assert seen["a"][-1]["text"] == "echo: " + long_text
    assert seen["c"][-1]["text"] == "echo: other"
    # Once the first request ended, the thread takes messages again.
    await websocket.send(json.dumps({"type": "message", "text": "later", "thread_id": "t-b", "request_id": "d"}))
    assert (await collect(websocket, "d"))[-1]["text"] == "echo: later"
    await websocket.close()


async def test_fifty_concurrent_clients(make_server):
    server = make_server(EchoModel(default=echo_answer))

    async def one(index: int) -> dict:
        async with connect(server.url, additional_headers=headers(server)) as websocket:
            await recv_json(websocket)
            # Two requests each: the second one writes the thread's checkpoints while other
            # clients' runs write theirs on the same SQLite connection.
            finals = []
            for number in range(2):
                await websocket.send(json.dumps({"type": "message", "text": f"client {index}", "thread_id": f"t-{index}",
                                                 "request_id": f"r-{index}-{number}"}))
                finals.append((await collect(websocket, f"r-{index}-{number}"))[-1])
            assert finals[0]["text"] == finals[1]["text"], finals
            return finals[-1]

    finals = await asyncio.wait_for(asyncio.gather(*(one(i) for i in range(50))), 120)
    assert [final["type"] for final in finals] == ["final"] * 50
    assert [final["text"] for final in finals] == [f"echo: client {i}" for i in range(50)]
    assert [final["thread_id"] for final in finals] == [f"t-{i}" for i in range(50)]


# --- bad input -----------------------------------------------------------------------------------

async def test_bad_frames_get_clear_errors_and_the_connection_survives(make_server):
    server = make_server(EchoModel(default=echo_answer))
    websocket = await open_client(server)
    cases = [
        ("{not json", "bad_json"),
        ("[1, 2, 3]", "bad_json"),
        (json.dumps({"text": "no type"}), "missing_field"),
        (json.dumps({"type": "dance"}), "unknown_type"),
        (json.dumps({"type": "message", "thread_id": "t"}), "missing_field"),
        (json.dumps({"type": "message", "text": "   "}), "missing_field"),
        (json.dumps({"type": "message", "text": "hi", "thread_id": "../../etc"}), "bad_field"),
        (json.dumps({"type": "message", "text": "hi", "request_id": 42}), "bad_field"),
        (json.dumps({"type": "approve"}), "missing_field"),
        (json.dumps({"type": "history"}), "missing_field"),
        (json.dumps({"type": "subscribe", "progress": "yes"}), "bad_field"),
        (json.dumps({"type": "message", "text": "x" * 20001}), "too_large"),
        (json.dumps({"type": "message", "text": "hi", "attachments": "nope"}), "bad_attachment"),
        (json.dumps({"type": "cancel", "thread_id": "idle"}), "not_running"),
        (b"\x00\x01binary", "binary_not_supported"),
    ]
    for frame, code in cases:
        await websocket.send(frame)
        reply = await recv_json(websocket)
        assert reply["type"] == "error" and reply["code"] == code, (frame, reply)
        assert reply["message"]
    await websocket.send(json.dumps({"type": "ping", "request_id": "still-here"}))
    pong = await recv_json(websocket)
    assert pong["type"] == "pong" and pong["request_id"] == "still-here"
    await websocket.close()


async def test_attachments_are_checked_and_saved(make_server):
    model = EchoModel(default=echo_answer)
    server = make_server(model)
    websocket = await open_client(server)
    image = base64.b64encode(png_bytes()).decode()
    await websocket.send(json.dumps({"type": "message", "text": "what is this?", "thread_id": "t-a", "request_id": "img",
                                     "attachments": [{"name": "cat.png", "data": "data:image/png;base64," + image}]}))
    final = (await collect(websocket, "img"))[-1]
    assert final["type"] == "final"
    uploads = list((get_settings().outputs_dir / "uploads").iterdir())
    assert len(uploads) == 1 and uploads[0].read_bytes() == png_bytes()
    assert stat.S_IMODE(uploads[0].stat().st_mode) == 0o600
    assert f"(attached file: {uploads[0]})" in final["text"], "the agent sees the saved path"

    bad = [
        [{"data": "!!!not base64!!!"}],
        [{"data": base64.b64encode(b"MZ\x90\x00 an executable").decode()}],
        [{"data": base64.b64encode(b"\x89PNG\r\n\x1a\n" + b"truncated").decode()}],
        ["/etc/passwd"],
        [str(get_settings().home / "missing.png")],
        [{"data": image}] * 5,
    ]
    for index, attachments in enumerate(bad):
        await websocket.send(json.dumps({"type": "message", "text": "look", "thread_id": "t-a",
                                         "request_id": f"bad-{index}", "attachments": attachments}))
        reply = await recv_json(websocket)
        assert reply["type"] == "error" and reply["code"] == "bad_attachment" and reply["request_id"] == f"bad-{index}"
    assert len(list((get_settings().outputs_dir / "uploads").iterdir())) == 1
    await websocket.close()


def test_attachment_decoding_trusts_the_bytes_and_writes_nothing(tmp_path):
    from PIL import Image

    from taller.server.attachments import Upload, decode_attachment, save_upload
    from taller.server.protocol import ProtocolError

    for image_format, suffix in (("PNG", ".png"), ("JPEG", ".jpg"), ("GIF", ".gif"), ("BMP", ".bmp"),
                                 ("WEBP", ".webp")):
        buffer = io.BytesIO()
        Image.new("RGB", (8, 8), (10, 200, 10)).save(buffer, format=image_format)
        blob = buffer.getvalue()
        # The name and media type the client claims are ignored; the magic bytes decide.
        item = {"name": "notes.txt", "media_type": "text/plain", "data": base64.b64encode(blob).decode()}
        decoded = decode_attachment(item, max_upload_bytes=1024 * 1024)
        assert decoded == Upload(blob, suffix), image_format
    assert not (get_settings().outputs_dir / "uploads").exists(), "decoding alone writes no file"
    saved = save_upload(decoded, tmp_path / "uploads")
    assert saved.suffix == ".webp" and saved.read_bytes() == decoded.blob
    assert stat.S_IMODE(saved.stat().st_mode) == 0o600
    with pytest.raises(ProtocolError, match="larger than 0 MB") as refused:
        decode_attachment({"data": base64.b64encode(png_bytes(64)).decode()}, max_upload_bytes=16)
    assert refused.value.code == "bad_attachment"


def test_every_message_type_has_a_handler_and_a_documented_row():
    from pathlib import Path

    from taller.server.handlers import HANDLERS
    from taller.server.protocol import ProtocolError, handler_for

    protocol_doc = (Path(__file__).resolve().parents[1] / "docs" / "protocol.md").read_text(encoding="utf-8")
    client_table = protocol_doc.split("### Client → server", 1)[1].split("###", 1)[0]
    for kind, handler in HANDLERS.items():
        assert handler_for(HANDLERS, {"type": kind}) is handler
        assert f"`{kind}`" in client_table, f"{kind} is missing from docs/protocol.md"
    with pytest.raises(ProtocolError, match="expected one of approve, branches, cancel, delete, edit, export, history, import, message, ping") as refused:
        handler_for(HANDLERS, {"type": "dance"})
    assert refused.value.code == "unknown_type"


async def test_oversized_frame_closes_cleanly_and_others_keep_working(make_server):
    server = make_server(EchoModel(default=echo_answer), limits=Limits(max_frame_bytes=4096))
    bystander = await open_client(server)
    websocket = await open_client(server)
    await websocket.send(json.dumps({"type": "message", "text": "x" * 10000}))
    with pytest.raises(ConnectionClosed) as closed:
        await recv_json(websocket)
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 1009
    await bystander.send(json.dumps({"type": "message", "text": "still there?", "request_id": "b"}))
    assert (await collect(bystander, "b"))[-1]["text"] == "echo: still there?"
    await bystander.close()


async def test_rate_limit_per_connection(make_server):
    server = make_server(EchoModel(default=echo_answer), limits=Limits(rate_per_s=0.01, rate_burst=3))
    websocket = await open_client(server)
    for index in range(6):
        await websocket.send(json.dumps({"type": "ping", "request_id": f"p{index}"}))
    replies = [await recv_json(websocket) for _ in range(6)]
    assert [r["type"] for r in replies[:3]] == ["pong"] * 3
    assert {r["code"] for r in replies[3:]} == {"rate_limited"}
    # Another connection has its own bucket.
    other = await open_client(server)
    await other.send(json.dumps({"type": "ping"}))
    assert (await recv_json(other))["type"] == "pong"
    await websocket.close()
    await other.close()


async def test_abrupt_disconnect_mid_stream_frees_the_thread(make_server):
    def answer(messages):
        return " ".join(["word"] * 300) if messages[-1].content == "go" else "short answer"

    server = make_server(EchoModel(default=answer, token_delay=0.01))
    websocket = await open_client(server)
    await websocket.send(json.dumps({"type": "message", "text": "go", "thread_id": "t-drop", "request_id": "x"}))
    assert (await recv_json(websocket))["type"] == "token"
    websocket.transport.abort()  # no close frame: the TCP connection just dies
    deadline = time.monotonic() + 20
    while server.call(server.stats)["busy_threads"] and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    assert server.call(server.stats) == {"connections": 0, "busy_threads": 0, "paused_threads": 0}
    # The thread is usable again from a new connection.
    again = await open_client(server)
    await again.send(json.dumps({"type": "message", "text": "hello", "thread_id": "t-drop", "request_id": "y"}))
    events = await collect(again, "y")
    assert events[-1]["type"] == "final" and not events[-1]["cancelled"]
    await again.close()


async def test_slow_reader_is_dropped_without_blocking():
    class FakeWebSocket:
        closed_with = None

        async def close(self, code, reason):
            self.closed_with = (code, reason)

    websocket = FakeWebSocket()
    connection = Connection(websocket, Limits(send_queue=10))
    for index in range(5):
        connection.send({"type": "progress", "step": index}, droppable=True)
    assert connection.queue.qsize() == 5 and connection.dropped == 0
    connection.send({"type": "progress"}, droppable=True)
    assert connection.dropped == 1, "progress is skipped once the queue is half full"
    for index in range(5):
        connection.send({"type": "token", "text": str(index)})
    assert connection.queue.qsize() == 10 and not connection.closed
    connection.send({"type": "token", "text": "overflow"})
    await asyncio.sleep(0)
    assert connection.closed and websocket.closed_with[0] == 1008
    connection.send({"type": "token"})
    assert connection.queue.qsize() == 10


# --- security at the handshake -------------------------------------------------------------------

async def test_token_is_required_and_checked(make_server):
    server = make_server(EchoModel(default=echo_answer))
    for extra in ({}, {"additional_headers": {"Authorization": "Bearer wrong"}},
                  {"additional_headers": {"Authorization": f"Basic {server.token}"}}):
        with pytest.raises(InvalidStatus) as refused:
            await connect(server.url, **extra)
        assert refused.value.response.status_code == 401
    # The three accepted ways: Authorization header (above helpers), query parameter, subprotocol.
    async with connect(f"{server.url}?token={server.token}") as websocket:
        assert (await recv_json(websocket))["type"] == "hello"
    async with connect(server.url, subprotocols=["taller", f"taller.token.{server.token}"]) as websocket:
        assert websocket.subprotocol == "taller", "the token is never echoed back"
        assert (await recv_json(websocket))["type"] == "hello"


async def test_origin_is_checked(make_server):
    server = make_server(EchoModel(default=echo_answer))
    for origin in ("http://evil.example", f"http://evil.example:{server.port}", "http://127.0.0.1:1",
                   "null", f"file://127.0.0.1:{server.port}"):
        with pytest.raises(InvalidStatus) as refused:
            await connect(server.url, origin=origin, additional_headers=headers(server))
        assert refused.value.response.status_code == 403, origin
    for origin in (f"http://127.0.0.1:{server.port}", f"http://localhost:{server.port}"):
        async with connect(server.url, origin=origin, additional_headers=headers(server)) as websocket:
            assert (await recv_json(websocket))["type"] == "hello"


def test_page_and_static_routes(make_server):
    server = make_server(EchoModel(default=echo_answer))
    base = f"http://127.0.0.1:{server.port}"
    with urllib.request.urlopen(base + "/") as response:
        body = response.read().decode()
        assert "<title>Taller</title>" in body and "/static/app.js" in body
        assert "script-src 'self'" in response.headers["Content-Security-Policy"]
        assert server.token not in body
    with urllib.request.urlopen(base + "/static/app.js") as response:
        assert response.headers["Content-Type"].startswith("text/javascript")
    for path in ("/static/../server.py", "/static/%2e%2e/server.py", "/nothing", "/ws-not"):
        with pytest.raises(urllib.error.HTTPError) as missing:
            urllib.request.urlopen(base + path)
        missing.value.close()
        assert missing.value.code == 404, path
    assert server.page_url == f"http://127.0.0.1:{server.port}/#token={server.token}"


# --- background progress -------------------------------------------------------------------------

async def test_progress_of_background_runs_reaches_every_client(make_server):
    from taller.progress import bus

    server = make_server(EchoModel(default=echo_answer))
    first = await open_client(server)
    quiet = await open_client(server)
    await quiet.send(json.dumps({"type": "subscribe", "progress": False, "request_id": "s"}))
    assert (await recv_json(quiet))["type"] == "subscribed"

    def training() -> None:  # a training thread publishing outside any request
        for epoch in (1, 2):
            bus.publish({"type": "progress", "source": "train_model", "run_id": "vae-7", "epoch": epoch, "epochs": 2})

    worker = threading.Thread(target=training)
    worker.start()
    worker.join()
    events = [await recv_json(first), await recv_json(first)]
    assert [e["epoch"] for e in events] == [1, 2]
    assert all(e["type"] == "progress" and e["request_id"] is None and e["run_id"] == "vae-7" for e in events)
    await quiet.send(json.dumps({"type": "ping", "request_id": "q"}))
    assert (await recv_json(quiet))["type"] == "pong", "an unsubscribed client got no progress"

    # A client that connects later asks for the runs and sees the latest progress of each.
    await first.close()
    later = await open_client(server)
    await later.send(json.dumps({"type": "runs", "request_id": "runs"}))
    runs = await recv_json(later)
    assert runs["type"] == "runs" and runs["request_id"] == "runs" and isinstance(runs["runs"], list)
    assert [p["epoch"] for p in runs["latest_progress"] if p["run_id"] == "vae-7"] == [2]
    await later.close()
    await quiet.close()


async def test_threads_and_history(make_server):
    server = make_server(EchoModel(default=echo_answer))
    websocket = await open_client(server)
    await websocket.send(json.dumps({"type": "message", "text": "remember me", "thread_id": "t-h", "request_id": "m"}))
    await collect(websocket, "m")
    await websocket.send(json.dumps({"type": "threads", "request_id": "th"}))
    threads = await recv_json(websocket)
    assert [t["thread_id"] for t in threads["threads"]] == ["t-h"]
    await websocket.send(json.dumps({"type": "history", "thread_id": "t-h", "request_id": "hi"}))
    history = await recv_json(websocket)
    assert [m["role"] for m in history["messages"]] == ["user", "assistant"]
    assert history["messages"][1]["content"] == "echo: remember me"
    assert history["pending_interrupt"] is None and history["busy"] is False
    await websocket.close()


async def test_a_thumbs_up_stores_the_example_and_retrieval_then_finds_it(make_server, tmp_path, data_dir,
                                                                          monkeypatch):
    """``remember`` (the page's 👍) stores a confirmed question → SQL; a refused one stores nothing."""
    import shutil
    import sqlite3

    from taller.knowledge.sql import connect as connect_database
    from taller.knowledge.sql.memory import retrieve

    path = tmp_path / "chinook.sqlite"
    shutil.copyfile(data_dir / "Chinook_Sqlite.sqlite", path)
    monkeypatch.setenv("TALLER_DATABASES", f'{{"ref": "sqlite:///{path}"}}')
    get_settings(reload=True)
    question = "How many customers are there in each country?"
    sql = "SELECT Country, COUNT(*) AS customers FROM Customer GROUP BY Country ORDER BY customers DESC"
    similar = "Number of customers per country?"
    assert retrieve(connect_database("ref"), similar).examples == []  # nothing before the thumbs-up

    server = make_server(EchoModel(default=echo_answer))
    websocket = await open_client(server)
    await websocket.send(json.dumps({"type": "remember", "question": question, "sql": sql, "database": "ref",
                                     "thread_id": "t-sql", "request_id": "k-1"}))
    reply = await recv_json(websocket, timeout=120)  # the first example loads the embedding model
    assert reply["type"] == "remembered", reply
    assert reply["request_id"] == "k-1" and reply["thread_id"] == "t-sql" and reply["database"] == "ref"
    assert "Remembered" in reply["summary"]
    assert retrieve(connect_database("ref"), similar).examples == [(question, reply["sql"])]

    # Refused or failing SQL is answered with an error that says why, and nothing is stored.
    for index, (bad_sql, reason) in enumerate([("DELETE FROM Customer", "DELETE"),
                                               ("SELECT * FROM Customers", "no such table")]):
        await websocket.send(json.dumps({"type": "remember", "question": f"bad {index}", "sql": bad_sql,
                                         "database": "ref", "request_id": f"bad-{index}"}))
        refused = await recv_json(websocket, timeout=60)
        assert refused["type"] == "error" and refused["code"] == "not_remembered", refused
        assert refused["request_id"] == f"bad-{index}" and reason in refused["message"]
    for frame, code in [({"type": "remember", "question": "q"}, "missing_field"),
                        ({"type": "remember", "sql": "SELECT 1", "question": " "}, "missing_field"),
                        ({"type": "remember", "question": "q", "sql": "SELECT 1", "database": 7}, "bad_field"),
                        ({"type": "remember", "question": "q", "sql": "x" * 20001}, "too_large")]:
        await websocket.send(json.dumps(frame))
        reply = await recv_json(websocket)
        assert reply["type"] == "error" and reply["code"] == code, (frame, reply)
    for index in range(2):
        # A stored "bad N" would be its own nearest example (distance 0): it is not there.
        assert all(q != f"bad {index}" for q, _ in retrieve(connect_database("ref"), f"bad {index}").examples)
    connection = sqlite3.connect(path)
    try:
        assert connection.execute("SELECT COUNT(*) FROM Customer").fetchone() == (59,)
    finally:
        connection.close()
    await websocket.close()


async def test_reconnecting_client_finds_and_answers_a_pending_interrupt(make_server, monkeypatch):
    monkeypatch.setattr(get_tool("train_model"), "func", lambda **kwargs: {"summary": "started", "run_id": "ae-9"})
    model = FakeChatModel(responses=[
        {"tool": "train_model", "args": {"model": "autoencoder", "epochs": 3}}, "Started.",
        {"tool": "train_model", "args": {"model": "vae", "epochs": 1}},
        {"tool": "none", "args": {}}, "Something else then.",
    ])
    server = make_server(model)
    websocket = await open_client(server)
    await websocket.send(json.dumps({"type": "message", "text": "train", "thread_id": "t-re", "request_id": "q1"}))
    assert (await collect(websocket, "q1"))[-1]["type"] == "interrupt"
    websocket.transport.abort()

    again = await open_client(server)
    await again.send(json.dumps({"type": "history", "thread_id": "t-re", "request_id": "h"}))
    history = await recv_json(again)
    assert history["pending_interrupt"]["tool"] == "train_model"
    assert history["pending_interrupt"]["args"] == {"model": "autoencoder", "epochs": 3}
    # This client never saw q1; the resumed run's events carry the id it sends.
    await again.send(json.dumps({"type": "approve", "thread_id": "t-re", "request_id": "q1-resumed"}))
    resumed = await collect(again, "q1-resumed")
    assert resumed[-1]["type"] == "final" and resumed[-1]["result"]["run_id"] == "ae-9"

    # A new message on a thread paused at an interrupt drops the question and is answered.
    await again.send(json.dumps({"type": "message", "text": "train a vae", "thread_id": "t-re", "request_id": "q2"}))
    assert (await collect(again, "q2"))[-1]["type"] == "interrupt"
    await again.send(json.dumps({"type": "message", "text": "let us do something else", "thread_id": "t-re", "request_id": "q3"}))
    final = (await collect(again, "q3"))[-1]
    assert final["type"] == "final" and final["text"] == "Something else then."
    await again.send(json.dumps({"type": "approve", "thread_id": "t-re", "request_id": "q4"}))
    assert (await collect(again, "q4"))[-1]["type"] == "error"
    await again.close()


def test_serve_on_a_taken_port_says_so():
    import socket

    from taller.server import serve

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(SystemExit, match=f"cannot listen on 127.0.0.1:{port}.*--port 0"):
            serve(port=port)
