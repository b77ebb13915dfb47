"""The server never sends a frame larger than ``Limits.max_send_bytes`` (issue 16, point 3)."""

from __future__ import annotations

import asyncio
import json

from taller.server.connection import Connection
from taller.server.protocol import Limits, frame_text, hello_frame


def _size(text: str) -> int:
    return len(text.encode("utf-8"))


def test_a_small_event_is_sent_as_it_is():
    event = {"type": "final", "text": "hola ñandú", "result": {"rows": [[1, "a"]]}}
    assert json.loads(frame_text(event, 4096)) == event


def test_a_huge_text_is_cut_and_the_frame_says_so():
    event = {"type": "tool_end", "tool": "query_database", "call_id": "c1", "request_id": "r1",
             "result": {"summary": "ok", "rows": [["x" * 6_000_000, 1]]}}
    text = frame_text(event, 4 * 1024 * 1024)
    assert _size(text) <= 4 * 1024 * 1024
    frame = json.loads(text)
    assert frame["type"] == "tool_end" and frame["request_id"] == "r1" and frame["result"]["summary"] == "ok"
    assert "6,000,000 characters" in frame["result"]["rows"][0][0]
    assert "cut" in frame and "bytes" in frame["cut"]


def test_long_lists_and_non_ascii_text_are_bounded_too():
    event = {"type": "history", "thread_id": "t", "messages": [{"role": "user", "content": "é" * 5_000}] * 3_000}
    text = frame_text(event, 1_000_000)
    assert _size(text) <= 1_000_000
    frame = json.loads(text)
    assert frame["thread_id"] == "t" and 0 < len(frame["messages"]) < 3_000 and frame["cut"]


def test_what_cannot_be_cut_to_fit_is_left_out_with_a_note():
    event = {"type": "final", "request_id": "r9", "result": {f"k{i}": i for i in range(200_000)}}
    text = frame_text(event, 10_000)
    frame = json.loads(text)
    assert _size(text) <= 10_000 and frame["request_id"] == "r9" and "left out" in frame["cut"]


def test_the_limit_is_announced_in_hello():
    assert hello_frame("c", Limits())["limits"]["max_send_bytes"] == 4 * 1024 * 1024


async def test_the_writer_sends_bounded_frames():
    class RecordingWebSocket:
        def __init__(self):
            self.sent: list[str] = []

        async def send(self, text):
            self.sent.append(text)

    websocket = RecordingWebSocket()
    connection = Connection(websocket, Limits(max_send_bytes=100_000))
    writer = asyncio.create_task(connection.writer())
    connection.send({"type": "final", "text": "y" * 1_000_000, "request_id": "r"})
    connection.send({"type": "pong", "request_id": "p"})
    connection.queue.put_nowait(None)
    await asyncio.wait_for(writer, 5)
    assert [json.loads(text)["type"] for text in websocket.sent] == ["final", "pong"]
    assert all(_size(text) <= 100_000 for text in websocket.sent)
    assert "1,000,000 characters" in json.loads(websocket.sent[0])["text"]
