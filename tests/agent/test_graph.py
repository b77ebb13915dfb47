"""The agent graph driven by a scripted fake model: tool path, chat, interrupt, persistence, guards."""

from __future__ import annotations

import threading

import pytest

from taller.llm import FakeChatModel
from taller.agent.session import Agent
from taller.config import get_settings
from taller.progress import emit
from taller.tools import get_tool


def kinds(events):
    return [e["type"] for e in events]


@pytest.fixture
def fake_tool(monkeypatch):
    """Replace a tool's body (the contract stays: name, schema, docstring)."""

    def install(name, func):
        monkeypatch.setattr(get_tool(name), "func", func)

    return install


def test_tool_call_whole_path(fake_tool, tmp_path):
    image = tmp_path / "digits.png"
    image.write_bytes(b"\x89PNG\r\n")
    calls = []

    def generate(model, count=None, image_path=None):
        calls.append((model, count, image_path))
        emit({"type": "progress", "source": "generate_images", "step": 1, "total": 1, "message": "sampling"})
        return {"summary": f"wrote {count} samples", "images": [str(image)]}

    fake_tool("generate_images", generate)
    model = FakeChatModel(responses=[{"tool": "generate_images", "args": {"model": "vae", "count": 4}},
                                     "Here are 4 new digits."])
    events = list(Agent(chat_model=model).run("generate 4 digits with the vae", "t1"))
    assert kinds(events) == ["tool_start", "progress", "tool_end", "image", "token", "token", "token", "token", "token", "final"]
    assert calls == [("vae", 4, None)]
    start, end, final = events[0], events[2], events[-1]
    assert start["tool"] == "generate_images" and start["args"] == {"model": "vae", "count": 4}
    assert end["call_id"] == start["call_id"] and end["ok"] and end["result"]["images"] == [str(image)]
    assert events[3]["path"] == str(image)
    assert final["text"] == "Here are 4 new digits." and final["tool"] == "generate_images"
    assert final["backend"] == "fake" and all(e["thread_id"] == "t1" for e in events)
    # The answer prompt saw the tool's result, not just the request.
    assert "wrote 4 samples" in model.calls[-1][0].content


def test_no_tool_answer_streams_tokens():
    model = FakeChatModel(responses=[{"tool": "none"}, "Dropout randomly zeroes activations."])
    events = list(Agent(chat_model=model).run("what is dropout?"))
    assert kinds(events)[-1] == "final" and "tool_start" not in kinds(events)
    assert "".join(e["text"] for e in events if e["type"] == "token") == "Dropout randomly zeroes activations."


def test_tool_error_is_answered_from_the_tool_message(fake_tool):
    def broken(image_path):
        from taller.tools.base import ToolError

        raise ToolError(f"{image_path} is not an image")

    fake_tool("classify_pet", broken)
    model = FakeChatModel(responses=[{"tool": "classify_pet", "args": {"image_path": "notes.txt"}}])
    events = list(Agent(chat_model=model).run("is notes.txt a cat?"))
    final = events[-1]
    assert final["type"] == "final" and "notes.txt is not an image" in final["text"]
    assert len(model.calls) == 1  # no LLM paraphrase of an error


def test_interrupt_then_approve_runs_the_costly_tool(fake_tool):
    started = []
    fake_tool("train_model", lambda model, epochs=None: started.append((model, epochs)) or {"summary": "run ae-1 started", "run_id": "ae-1"})
    model = FakeChatModel(responses=[{"tool": "train_model", "args": {"model": "autoencoder", "epochs": 2}}, "Training started (ae-1)."])
    agent = Agent(chat_model=model)
    events = list(agent.run("train the autoencoder for 2 epochs", "t2"))
    assert kinds(events) == ["interrupt"]
    assert events[0]["tool"] == "train_model" and "autoencoder" in events[0]["message"] and started == []
    assert agent.pending_interrupt("t2")["args"] == {"model": "autoencoder", "epochs": 2}
    resumed = list(agent.resume("t2", approve=True))
    assert started == [("autoencoder", 2)]
    assert resumed[-1]["type"] == "final" and resumed[-1]["text"] == "Training started (ae-1)."
    assert agent.pending_interrupt("t2") is None


def test_interrupt_then_reject_runs_nothing(fake_tool):
    started = []
    fake_tool("train_model", lambda model, epochs=None: started.append(model) or {"summary": "started"})
    model = FakeChatModel(responses=[{"tool": "train_model", "args": {"model": "vae"}}])
    agent = Agent(chat_model=model)
    assert kinds(agent.run("train the vae", "t3")) == ["interrupt"]
    resumed = list(agent.resume("t3", approve=False))
    assert started == [] and resumed[-1]["type"] == "final" and "did not run" in resumed[-1]["text"]
    assert list(agent.resume("t3", approve=True))[-1]["type"] == "error"  # nothing pending any more


def test_auto_approve_setting_skips_the_confirmation(fake_tool, monkeypatch):
    monkeypatch.setenv("TALLER_AUTO_APPROVE", "1")
    get_settings(reload=True)
    fake_tool("train_model", lambda model, epochs=None: {"summary": "started"})
    model = FakeChatModel(responses=[{"tool": "train_model", "args": {"model": "rnn"}}, "ok"])
    events = list(Agent(chat_model=model).run("train the rnn"))
    assert "interrupt" not in kinds(events) and events[-1]["tool"] == "train_model"


def test_thread_survives_a_restart(fake_tool):
    fake_tool("describe_database", lambda database=None: {"summary": "11 tables"})
    first = Agent(chat_model=FakeChatModel(responses=[{"tool": "describe_database", "args": {}}, "It has 11 tables."]))
    list(first.run("describe the database", "persist"))
    first.close()
    model = FakeChatModel(responses=[{"tool": "none"}, "You asked about the database."])
    second = Agent(chat_model=model)
    assert [t["thread_id"] for t in second.threads()] == ["persist"]
    history = second.history("persist")
    assert history[0] == {"role": "user", "content": "describe the database", "index": 0}
    assert history[-1]["content"] == "It has 11 tables."
    list(second.run("what did I ask?", "persist"))
    # The chat answer was given the earlier turns of the thread.
    assert any("describe the database" in getattr(m, "content", "") for m in model.calls[-1])


def test_pending_interrupt_survives_a_restart(fake_tool):
    fake_tool("train_model", lambda model, epochs=None: {"summary": f"{model} started"})
    agent = Agent(chat_model=FakeChatModel(responses=[{"tool": "train_model", "args": {"model": "vae"}}]))
    list(agent.run("train the vae", "later"))
    agent.close()
    again = Agent(chat_model=FakeChatModel(responses=["Started."]))
    assert again.pending_interrupt("later")["tool"] == "train_model"
    assert list(again.resume("later", True))[-1]["tool"] == "train_model"


def test_repeated_identical_call_is_stopped(fake_tool, monkeypatch):
    monkeypatch.setenv("TALLER_MULTI_STEP", "1")
    monkeypatch.setenv("TALLER_MAX_TOOL_STEPS", "5")
    get_settings(reload=True)
    calls = []
    fake_tool("describe_database", lambda database=None: calls.append(database) or {"summary": "11 tables"})
    same = {"tool": "describe_database", "args": {}}
    model = FakeChatModel(responses=[same, same, "The database has 11 tables."])
    events = list(Agent(chat_model=model).run("describe the database"))
    assert calls == [None]  # the second identical call never ran
    assert events[-1]["text"] == "The database has 11 tables."


def test_multi_step_stops_at_the_step_limit(fake_tool, monkeypatch):
    monkeypatch.setenv("TALLER_MULTI_STEP", "1")
    monkeypatch.setenv("TALLER_MAX_TOOL_STEPS", "2")
    get_settings(reload=True)
    asked = []
    fake_tool("query_database", lambda question, database=None: asked.append(question) or {"summary": "ok"})
    model = FakeChatModel(responses=[{"tool": "query_database", "args": {"question": f"q{i}"}} for i in range(5)] + ["done"])
    events = list(Agent(chat_model=model).run("several questions"))
    assert asked == ["q0", "q1"] and events[-1]["type"] == "final"


def test_cancel_stops_the_stream():
    cancel = threading.Event()
    model = FakeChatModel(responses=[{"tool": "none"}, "one two three four five six seven eight nine ten"], token_delay=0.01)
    seen = []
    for event in Agent(chat_model=model).run("count", cancel_event=cancel):
        seen.append(event)
        if event["type"] == "token" and len(seen) == 2:
            cancel.set()
    tokens = [e for e in seen if e["type"] == "token"]
    assert len(tokens) < 10
    assert seen[-1]["type"] == "final" and seen[-1]["cancelled"] is True


def test_bad_requests_and_unavailable_llm(monkeypatch):
    agent = Agent(chat_model=FakeChatModel())
    assert list(agent.run("   "))[-1]["message"] == "empty message"
    assert "too long" in list(agent.run("x" * 30000))[-1]["message"]
    monkeypatch.setenv("TALLER_BACKEND", "ollama")
    monkeypatch.setenv("OLLAMA_HOST", "http://127.0.0.1:9")
    get_settings(reload=True)
    events = list(Agent().run("hello"))
    assert events[-1]["type"] == "error" and "Ollama does not answer" in events[-1]["message"]


def test_plan_does_not_run_the_tool(fake_tool):
    ran = []
    fake_tool("train_model", lambda model, epochs=None: ran.append(model) or {"summary": "x"})
    agent = Agent(chat_model=FakeChatModel(responses=[{"tool": "train_model", "args": {"model": "autoencoder", "epochs": 3}},
                                                      {"tool": "none"}]))
    assert agent.plan("train the autoencoder for 3 epochs") == {"tool": "train_model", "args": {"model": "autoencoder", "epochs": 3}}
    assert agent.plan("hello") == {"tool": None, "args": {}}
    assert ran == []


def test_router_asks_only_for_missing_required_arguments():
    # First decision names the tool only (as a constrained small model does); the second fills `text`.
    model = FakeChatModel(responses=[{"tool": "translate"}, {"text": "the cat sleeps"}])
    agent = Agent(chat_model=model)
    assert agent.plan("how would a Spaniard say the cat sleeps") == {"tool": "translate", "args": {"text": "the cat sleeps"}}
    assert len(model.calls) == 2
    # Rules read the argument off the request: one LLM call only, and no invented beam size.
    model = FakeChatModel(responses=[{"tool": "translate"}])
    assert Agent(chat_model=model).plan("translate 'good night'") == {"tool": "translate", "args": {"text": "good night"}}
    assert len(model.calls) == 1


def test_invalid_llm_arguments_get_one_retry_then_a_clear_error():
    model = FakeChatModel(responses=[{"tool": "train_model", "args": {"model": "resnet"}}, {"model": "gpt"}, {"model": "bert"}])
    plan = Agent(chat_model=model).plan("train something")
    assert plan["tool"] == "train_model" and "bad arguments" in plan["error"]


def test_template_answer_style_uses_the_tool_summary_without_the_llm(fake_tool, monkeypatch):
    monkeypatch.setenv("TALLER_ANSWER_STYLE", "template")
    get_settings(reload=True)
    fake_tool("describe_database", lambda database=None: {"summary": "sales has 11 tables."})
    model = FakeChatModel(responses=[{"tool": "describe_database", "args": {}}])
    final = list(Agent(chat_model=model).run("describe the db"))[-1]
    assert final["text"] == "sales has 11 tables." and len(model.calls) == 1


# --- answers in the user's language -----------------------------------------------------------

def test_spanish_training_request_is_confirmed_and_rejected_in_spanish(monkeypatch):
    monkeypatch.setattr(get_tool("train_model"), "func", lambda **kwargs: {"summary": "started"})
    model = FakeChatModel(responses=[{"tool": "train_model", "args": {"model": "autoencoder", "epochs": 1}}])
    agent = Agent(chat_model=model)
    events = list(agent.run("entrena el autoencoder durante 1 época", "t-es"))
    assert events[-1]["type"] == "interrupt"
    assert events[-1]["message"].startswith("¿Entrenar autoencoder durante 1 época?")
    answer = list(agent.resume("t-es", approve=False))
    assert answer[-1]["text"] == "De acuerdo, no lo he ejecutado."


def test_english_request_is_confirmed_in_english(monkeypatch):
    model = FakeChatModel(responses=[{"tool": "train_model", "args": {"model": "vae"}}])
    events = list(Agent(chat_model=model).run("train the vae please", "t-en"))
    assert events[-1]["message"].startswith("Train vae for its default number of epochs?")


def test_template_summary_is_translated_only_when_every_number_survives(monkeypatch):
    from taller.agent.graph import in_spanish

    summary = "The database has 11 tables; the largest is Track with 3503 rows (see out/tracks.csv)."
    good = {"spanish": "La base de datos tiene 11 tablas; la mayor es Track con 3503 filas (ver out/tracks.csv)."}
    lost_number = {"spanish": "La base de datos tiene once tablas; la mayor es Track (ver out/tracks.csv)."}
    lost_file = {"spanish": "La base de datos tiene 11 tablas; la mayor es Track con 3503 filas."}
    assert in_spanish(FakeChatModel(responses=[good]), summary) == good["spanish"]
    assert in_spanish(FakeChatModel(responses=[lost_number]), summary) == summary
    assert in_spanish(FakeChatModel(responses=[lost_file]), summary) == summary
    assert in_spanish(FakeChatModel(responses=["not json"]), summary) == summary
