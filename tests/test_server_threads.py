"""The server's thread messages (issue 17): list, rename, delete, search, history with indexes and
image URLs, regenerate, edit, branches, switch, export, import, and runs with their history.

Each runs against a real :class:`~taller.agent.session.Agent` on a scripted fake chat model behind
a server on port 0; every bad input gets a clear ``error`` frame and the connection keeps serving.
"""

from __future__ import annotations

import itertools
import json

import pytest

from taller.config import get_settings
from taller.llm import FakeChatModel
from taller.server import Limits
from taller.tools import get_tool


from test_server import EchoModel, collect, make_server, open_client, png_bytes, recv_json  # noqa: F401 (fixture)


def numbered_answers() -> FakeChatModel:
    """No tool for any request; answers "answer 1", "answer 2", … so every rerun differs."""
    counter = itertools.count(1)
    return EchoModel(default=lambda messages: f"answer {next(counter)}")


async def ask(websocket, frame: dict, reply_type: str | None = None) -> dict:
    """Send ``frame`` and return the reply that carries its ``request_id`` (its last event)."""
    await websocket.send(json.dumps(frame))
    events = await collect(websocket, frame["request_id"], until=(reply_type or "final", "error", "interrupt"))
    return events[-1]


async def say(websocket, thread_id: str, text: str, request_id: str) -> dict:
    return await ask(websocket, {"type": "message", "text": text, "thread_id": thread_id, "request_id": request_id})


async def history(websocket, thread_id: str) -> dict:
    return await ask(websocket, {"type": "history", "thread_id": thread_id, "request_id": "h-" + thread_id},
                     "history")


async def expect_error(websocket, frame: dict, code: str) -> dict:
    reply = await ask(websocket, frame, "never")
    assert reply["type"] == "error" and reply["code"] == code, (frame, reply)
    assert reply["message"]
    return reply


async def still_serving(websocket) -> None:
    await websocket.send(json.dumps({"type": "ping", "request_id": "alive"}))
    pong = await recv_json(websocket)
    assert pong["type"] == "pong" and pong["request_id"] == "alive"


# --- the thread list -----------------------------------------------------------------------------

async def test_threads_rename_and_delete(make_server):
    server = make_server(numbered_answers())
    websocket = await open_client(server)
    await say(websocket, "t-one", "first thread", "m1")
    await say(websocket, "t-two", "second thread", "m2")
    listed = await ask(websocket, {"type": "threads", "request_id": "l1"}, "threads")
    assert {t["thread_id"]: t["title"] for t in listed["threads"]} == {"t-one": "first thread",
                                                                       "t-two": "second thread"}

    renamed = await ask(websocket, {"type": "rename", "thread_id": "t-one", "title": "  My   plans ",
                                    "request_id": "r1"}, "renamed")
    assert renamed == {"type": "renamed", "thread_id": "t-one", "title": "My plans", "request_id": "r1"}
    listed = await ask(websocket, {"type": "threads", "request_id": "l2"}, "threads")
    assert {t["thread_id"]: t["title"] for t in listed["threads"]}["t-one"] == "My plans"

    deleted = await ask(websocket, {"type": "delete", "thread_id": "t-two", "request_id": "d1"}, "deleted")
    assert deleted["type"] == "deleted" and deleted["thread_id"] == "t-two"
    listed = await ask(websocket, {"type": "threads", "request_id": "l3"}, "threads")
    assert [t["thread_id"] for t in listed["threads"]] == ["t-one"]
    assert (await history(websocket, "t-two"))["messages"] == []

    await expect_error(websocket, {"type": "rename", "thread_id": "t-nobody", "title": "x", "request_id": "e1"},
                       "unknown_thread")
    await expect_error(websocket, {"type": "rename", "thread_id": "t-one", "title": "   ", "request_id": "e2"},
                       "missing_field")
    await expect_error(websocket, {"type": "rename", "thread_id": "t-one", "title": "x" * 121, "request_id": "e3"},
                       "too_large")
    await expect_error(websocket, {"type": "delete", "thread_id": "t-two", "request_id": "e4"}, "unknown_thread")
    await expect_error(websocket, {"type": "delete", "request_id": "e5"}, "missing_field")
    await expect_error(websocket, {"type": "delete", "thread_id": "../etc", "request_id": "e6"}, "bad_field")
    await still_serving(websocket)
    await websocket.close()


async def test_a_thread_answering_now_is_not_deleted(make_server):
    server = make_server(EchoModel(default=lambda messages: " ".join(f"w{i}" for i in range(80)), token_delay=0.02))
    websocket = await open_client(server)
    await say(websocket, "t-busy", "hello", "m0")
    await websocket.send(json.dumps({"type": "message", "text": "talk", "thread_id": "t-busy", "request_id": "long"}))
    assert (await recv_json(websocket))["type"] == "token"
    await expect_error(websocket, {"type": "delete", "thread_id": "t-busy", "request_id": "d"}, "thread_busy")
    assert (await collect(websocket, "long"))[-1]["type"] == "final"
    assert len((await history(websocket, "t-busy"))["messages"]) == 4, "the thread was kept whole"
    await websocket.close()


async def test_search_finds_messages_across_threads(make_server):
    server = make_server(numbered_answers())
    websocket = await open_client(server)
    await say(websocket, "t-zebra", "tell me about the striped zebra", "m1")
    await say(websocket, "t-other", "something else entirely", "m2")
    found = await ask(websocket, {"type": "search", "query": "zebra", "request_id": "s1"}, "search_results")
    assert found["query"] == "zebra" and found["results"]
    hit = found["results"][0]
    assert hit["thread_id"] == "t-zebra" and hit["role"] == "user" and hit["message_index"] == 0
    assert "zebra" in hit["snippet"].lower()
    assert all(result["thread_id"] != "t-other" for result in found["results"])
    # Query syntax of the search engine in user text is just text.
    for query in ('"zebra', "zeb*", "zebra AND", "NEAR(", "ñandú ü"):
        reply = await ask(websocket, {"type": "search", "query": query, "request_id": "s-q"}, "search_results")
        assert reply["type"] == "search_results", query
    await expect_error(websocket, {"type": "search", "request_id": "e1"}, "missing_field")
    await expect_error(websocket, {"type": "search", "query": "x" * 501, "request_id": "e2"}, "too_large")
    await expect_error(websocket, {"type": "search", "query": "zebra", "limit": 0, "request_id": "e3"}, "bad_field")
    await expect_error(websocket, {"type": "search", "query": "zebra", "limit": "5", "request_id": "e4"}, "bad_field")
    await still_serving(websocket)
    await websocket.close()


# --- history, regenerate, edit, branches ---------------------------------------------------------

async def test_history_numbers_messages_and_links_result_images(make_server, monkeypatch):
    outputs = get_settings().outputs_dir
    outputs.mkdir(parents=True, exist_ok=True)
    picture = outputs / "samples.png"
    picture.write_bytes(png_bytes())
    monkeypatch.setattr(get_tool("list_models"), "func", lambda **kwargs: {
        "summary": "One model.", "runs": [{"run_id": "vae-1", "state": "finished"}],
        "images": [str(picture), "/etc/not-served.png"]})
    server = make_server(FakeChatModel(responses=[{"tool": "list_models", "args": {}}, "Here it is."]))
    websocket = await open_client(server)
    await say(websocket, "t-h", "show my models", "m1")
    reply = await history(websocket, "t-h")
    messages = reply["messages"]
    assert [m["index"] for m in messages] == list(range(len(messages)))
    assert [m["role"] for m in messages] == ["user", "tool", "assistant"]
    tool = messages[1]
    assert tool["name"] == "list_models" and tool["result"]["runs"] == [{"run_id": "vae-1", "state": "finished"}]
    assert list(tool["image_urls"]) == [str(picture)], "only images /files serves get a URL"
    assert tool["image_urls"][str(picture)].startswith("/files?path=")
    assert len(reply["branches"]) == 1 and reply["branches"][0]["current"] is True
    await websocket.close()


async def test_regenerate_keeps_both_answers_and_switch_goes_back(make_server):
    server = make_server(numbered_answers())
    websocket = await open_client(server)
    assert (await say(websocket, "t-r", "hello", "m1"))["text"] == "answer 1"
    again = await ask(websocket, {"type": "regenerate", "thread_id": "t-r", "request_id": "g1"})
    assert again["type"] == "final" and again["text"] == "answer 2" and again["request_id"] == "g1"
    shown = await history(websocket, "t-r")
    assert [(m["role"], m["content"]) for m in shown["messages"]] == [("user", "hello"), ("assistant", "answer 2")]

    branches = (await ask(websocket, {"type": "branches", "thread_id": "t-r", "request_id": "b1"}, "branches"))["branches"]
    assert len(branches) == 2 and [b["current"] for b in branches] == [False, True]
    switched = await ask(websocket, {"type": "switch_branch", "thread_id": "t-r", "branch_id": branches[0]["branch_id"],
                                     "request_id": "s1"}, "branch_switched")
    assert switched["branch_id"] == branches[0]["branch_id"]
    assert [b["current"] for b in switched["branches"]] == [True, False]
    shown = await history(websocket, "t-r")
    assert [m["content"] for m in shown["messages"]] == ["hello", "answer 1"]

    await expect_error(websocket, {"type": "switch_branch", "thread_id": "t-r", "branch_id": "no-such-branch",
                                   "request_id": "e1"}, "unknown_branch")
    await expect_error(websocket, {"type": "switch_branch", "thread_id": "t-r", "branch_id": "x" * 201,
                                   "request_id": "e2"}, "bad_field")
    await expect_error(websocket, {"type": "switch_branch", "thread_id": "t-r", "request_id": "e3"}, "missing_field")
    await expect_error(websocket, {"type": "switch_branch", "thread_id": "t-none", "branch_id": "b",
                                   "request_id": "e4"}, "unknown_thread")
    await expect_error(websocket, {"type": "regenerate", "thread_id": "t-none", "request_id": "e5"}, "unknown_thread")
    await expect_error(websocket, {"type": "branches", "thread_id": "t-none", "request_id": "e6"}, "unknown_thread")
    await still_serving(websocket)
    await websocket.close()


async def test_edit_reruns_from_a_user_message(make_server):
    server = make_server(numbered_answers())
    websocket = await open_client(server)
    await say(websocket, "t-e", "one", "m1")
    await say(websocket, "t-e", "two", "m2")
    edited = await ask(websocket, {"type": "edit", "thread_id": "t-e", "message_index": 2, "text": "deux",
                                   "request_id": "x1"})
    assert edited["type"] == "final" and edited["text"] == "answer 3"
    shown = await history(websocket, "t-e")
    assert [m["content"] for m in shown["messages"]] == ["one", "answer 1", "deux", "answer 3"]
    assert [b["fork_index"] for b in shown["branches"] if not b["current"]] == [2]

    first = await ask(websocket, {"type": "edit", "thread_id": "t-e", "message_index": 0, "text": "uno",
                                  "request_id": "x2"})
    assert first["text"] == "answer 4"
    assert [m["content"] for m in (await history(websocket, "t-e"))["messages"]] == ["uno", "answer 4"]

    # An index that is not a user message: the request ends with the agent's error.
    wrong = await ask(websocket, {"type": "edit", "thread_id": "t-e", "message_index": 1, "text": "x",
                                  "request_id": "x3"})
    assert wrong["type"] == "error" and "not a user message" in wrong["message"]
    for index in (-1, "0", True, None):
        await expect_error(websocket, {"type": "edit", "thread_id": "t-e", "message_index": index, "text": "x",
                                       "request_id": "e1"}, "bad_field")
    await expect_error(websocket, {"type": "edit", "thread_id": "t-e", "message_index": 0, "request_id": "e2"},
                       "missing_field")
    await expect_error(websocket, {"type": "edit", "thread_id": "t-e", "message_index": 0, "text": "y" * 20001,
                                   "request_id": "e3"}, "too_large")
    await expect_error(websocket, {"type": "edit", "thread_id": "t-gone", "message_index": 0, "text": "x",
                                   "request_id": "e4"}, "unknown_thread")
    await still_serving(websocket)
    await websocket.close()


# --- export and import ---------------------------------------------------------------------------

async def test_export_every_format_and_import_the_json_back(make_server):
    server = make_server(numbered_answers())
    websocket = await open_client(server)
    await say(websocket, "t-x", "Plans for the week", "m1")
    await ask(websocket, {"type": "rename", "thread_id": "t-x", "title": "Week: plans!", "request_id": "n"}, "renamed")
    exports = {}
    for fmt in ("md", "json", "py", "ipynb"):
        reply = await ask(websocket, {"type": "export", "thread_id": "t-x", "format": fmt, "request_id": "x-" + fmt},
                          "export")
        assert reply["type"] == "export" and reply["format"] == fmt and reply["thread_id"] == "t-x"
        assert reply["filename"] == f"week-plans-t-x.{fmt}"
        assert isinstance(reply["text"], str) and reply["text"]
        exports[fmt] = reply["text"]
    assert "Plans for the week" in exports["md"] and "answer 1" in exports["md"]
    compile(exports["py"], "export.py", "exec")
    assert json.loads(exports["ipynb"])["cells"]

    imported = await ask(websocket, {"type": "import", "data": exports["json"], "request_id": "i1"}, "imported")
    assert imported["type"] == "imported" and imported["thread_id"] != "t-x"
    copy = await history(websocket, imported["thread_id"])
    assert [(m["role"], m["content"]) for m in copy["messages"]] == [("user", "Plans for the week"),
                                                                   ("assistant", "answer 1")]
    # An object works as well as its text.
    again = await ask(websocket, {"type": "import", "data": json.loads(exports["json"]), "request_id": "i2"}, "imported")
    assert again["type"] == "imported" and again["thread_id"] not in ("t-x", imported["thread_id"])

    await expect_error(websocket, {"type": "export", "thread_id": "t-x", "format": "pdf", "request_id": "e1"},
                       "bad_field")
    await expect_error(websocket, {"type": "export", "thread_id": "t-none", "format": "md", "request_id": "e2"},
                       "unknown_thread")
    await expect_error(websocket, {"type": "import", "request_id": "e3"}, "missing_field")
    await expect_error(websocket, {"type": "import", "data": "{not json", "request_id": "e4"}, "bad_import")
    await expect_error(websocket, {"type": "import", "data": [1, 2], "request_id": "e5"}, "bad_import")
    bad = await expect_error(websocket, {"type": "import", "data": {"format": "taller-thread", "version": 99,
                                                                    "messages": "SECRET-CONTENT"},
                                         "request_id": "e6"}, "bad_import")
    assert "SECRET-CONTENT" not in bad["message"], "errors never echo the contents"
    assert bad["message"].startswith("not imported: the import:")
    await still_serving(websocket)
    await websocket.close()


async def test_an_oversized_import_or_export_is_refused_clearly(make_server):
    server = make_server(numbered_answers(), limits=Limits(max_import_bytes=2_000, max_send_bytes=6_000))
    websocket = await open_client(server)
    await say(websocket, "t-big", "word " * 2_000, "m1")
    reply = await expect_error(websocket, {"type": "import", "data": "x" * 3_000, "request_id": "big"}, "too_large")
    assert "3,000 bytes" in reply["message"] and "2,000" in reply["message"]
    reply = await expect_error(websocket, {"type": "export", "thread_id": "t-big", "format": "md", "request_id": "x"},
                               "too_large")
    assert "taller export t-big" in reply["message"]
    await still_serving(websocket)
    await websocket.close()


# --- runs with their history ---------------------------------------------------------------------

async def test_runs_reply_carries_each_runs_metrics_history(make_server):
    run_dir = get_settings().runs_dir / "autoencoder" / "autoencoder-20261129-1"
    run_dir.mkdir(parents=True)
    (run_dir / "status.json").write_text(json.dumps({
        "run_id": run_dir.name, "model": "autoencoder", "state": "finished", "epoch": 3, "epochs": 3,
        "metrics": {"train_mse": 0.02, "val_mse": 0.03}}))
    lines = [json.dumps({"epoch": e, "train_mse": 0.1 / e, "val_mse": 0.12 / e, "time": 1e9, "note": "x"})
             for e in (1, 2, 3)]
    (run_dir / "metrics.jsonl").write_text("\n".join(lines[:2] + ["{cut by a cra"] + lines[2:]) + "\n")
    server = make_server(numbered_answers())
    websocket = await open_client(server)
    reply = await ask(websocket, {"type": "runs", "request_id": "runs"}, "runs")
    run = next(r for r in reply["runs"] if r["run_id"] == run_dir.name)
    assert run["state"] == "finished" and run["epochs"] == 3
    assert [record["epoch"] for record in run["history"]] == [1, 2, 3]
    assert run["history"][2] == {"epoch": 3, "train_mse": 0.1 / 3, "val_mse": 0.12 / 3}, "numbers only, no time"
    await websocket.close()


# --- the Python client ---------------------------------------------------------------------------

async def test_python_client_covers_the_thread_messages(make_server):
    from taller.client import ClientError, TallerClient

    server = make_server(numbered_answers())
    async with await TallerClient.connect(server.url, server.token) as client:
        assert (await client.ask("a question about otters", thread_id="t-c"))["text"] == "answer 1"
        assert (await client.search("otters"))[0]["thread_id"] == "t-c"
        assert (await client.rename("t-c", "Otters"))["title"] == "Otters"
        assert (await client.regenerate("t-c"))["text"] == "answer 2"
        assert (await client.edit("t-c", 0, "and beavers?"))["text"] == "answer 3"
        branches = await client.branches("t-c")
        assert len(branches) == 3 and branches[-1]["current"]
        after = await client.switch_branch("t-c", branches[0]["branch_id"])
        assert [b["current"] for b in after] == [True, False, False]
        exported = await client.export("t-c", "json")
        assert exported["filename"] == "otters-t-c.json"
        copy = await client.import_thread(exported["text"])
        assert [m["content"] for m in (await client.history(copy))["messages"]] == ["a question about otters",
                                                                                    "answer 1"]
        assert (await client.delete(copy))["thread_id"] == copy
        with pytest.raises(ClientError, match="unknown_thread"):
            await client.delete(copy)
