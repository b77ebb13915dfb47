"""The Textual chat driven by Pilot on a scripted fake chat model (no LLM, no terminal).

Each test builds a real :class:`Agent` (SQLite checkpoints under the test's TALLER_HOME) around a
``FakeChatModel`` whose script is: the routing decision (a dict), then the streamed answer.
Tools whose bodies belong to other modules are replaced by small fakes so these tests only
depend on the agent contract.
"""

from __future__ import annotations

import threading

import pytest

from taller.llm import FakeChatModel
from taller.agent.session import Agent
from taller.progress import bus
from taller.tools import get_tool
from taller.tui import TallerApp
from taller.ui.cards import ToolCard
from taller.ui.screens import ConfirmScreen, FilePickerScreen, HelpScreen
from taller.ui.threads import ThreadItem, ThreadList
from taller.ui.widgets import (
    AssistantMessage,
    ErrorMessage,
    ImageBlock,
    Notice,
    RunProgress,
    UserMessage,
)

SIZE = (80, 24)


def make_app(responses: list, token_delay: float = 0.0, thread_id: str | None = "thread-1", **options):
    fake = FakeChatModel(responses=list(responses), token_delay=token_delay)
    agent = Agent(chat_model=fake)
    options.setdefault("device_label", "CPU")
    app = TallerApp(agent=agent, thread_id=thread_id, show_timings=False,
                    images=options.pop("images", "unicode"), **options)
    return app, agent, fake


async def settle(pilot) -> None:
    """Let every worker finish and the screen catch up."""
    await pilot.app.workers.wait_for_complete()
    await pilot.pause()
    await pilot.pause()


async def send(pilot, text: str) -> None:
    pilot.app.prompt.value = text
    await pilot.press("enter")
    await settle(pilot)


def fake_tool(monkeypatch, name: str, function) -> list[dict]:
    """Replace a tool's body; returns the list of argument dicts it was called with."""
    calls: list[dict] = []

    def body(**kwargs):
        calls.append(kwargs)
        return function(**kwargs)

    monkeypatch.setattr(get_tool(name), "func", body)
    return calls


def static_text(widget) -> str:
    return str(widget.render())


async def test_message_streams_markdown_answer(monkeypatch):
    appended: list[str] = []
    original = AssistantMessage.append

    async def counting_append(self, fragment):
        appended.append(fragment)
        await original(self, fragment)

    monkeypatch.setattr(AssistantMessage, "append", counting_append)
    answer = "A **variational autoencoder** learns a distribution, then samples from it."
    app, agent, fake = make_app([{"tool": "none", "args": {}}, answer])
    async with app.run_test(size=SIZE) as pilot:
        await send(pilot, "what is a VAE?")
        users = list(app.query(UserMessage))
        assert [static_text(u) for u in users] == ["what is a VAE?"]
        [message] = list(app.query(AssistantMessage))
        assert message.text.strip() == answer
        assert message.markdown.source.strip() == answer
        assert len(appended) > 3, "the answer should arrive token by token"
        assert app.status_bar.backend == "fake"
        assert not app.running
        assert app.prompt.value == ""


async def test_tool_card_shows_arguments_status_and_result(monkeypatch):
    fake_tool(monkeypatch, "list_models", lambda: {
        "summary": "2 runs.", "runs": [{"run_id": "vae-1", "model": "vae", "state": "finished"},
                                       {"run_id": "rnn-2", "model": "rnn", "state": "running"}]})
    app, agent, fake = make_app([{"tool": "list_models", "args": {}}, "You have two runs."])
    async with app.run_test(size=SIZE) as pilot:
        await send(pilot, "list my models")
        [card] = list(app.query(ToolCard))
        assert card.tool == "list_models" and card.ok is True
        assert card.title.startswith("✓ list_models")
        assert "2 runs." in static_text(card.query_one(".tool-summary"))
        table = card.query_one(".tool-table")
        assert table.row_count == 2  # a list of records renders as a table
        # Cards collapse and expand with the keyboard.
        card.query_one("CollapsibleTitle").focus()
        await pilot.press("enter")
        assert card.collapsed
        await pilot.press("enter")
        assert not card.collapsed


async def test_sql_table_and_video_timestamps(monkeypatch):
    fake_tool(monkeypatch, "query_database", lambda question, database=None: {
        "summary": "Top artists.", "sql": "SELECT Name, Total FROM t", "columns": ["Name", "Total"],
        "rows": [["Iron Maiden", 138.6], ["U2", 105.93], ["Metallica", 90.09]], "row_count": 3})
    fake_tool(monkeypatch, "ask_video", lambda question, video=None: {
        "summary": "It is explained twice.", "citations": [
            {"video_id": "dQw4w9WgXcQ", "title": "Autoencoders", "start": 754.0, "text": "the bottleneck"},
            {"url": "https://www.youtube.com/watch?v=abcdefghijk", "start": 65, "title": "VAE"}]})
    app, agent, fake = make_app([
        {"tool": "query_database", "args": {"question": "top artists"}}, "Iron Maiden leads.",
        {"tool": "ask_video", "args": {"question": "where is the bottleneck?"}}, "At 12:34.",
    ])
    async with app.run_test(size=SIZE) as pilot:
        await send(pilot, "which artists sell most?")
        await send(pilot, "where is the bottleneck explained?")
        sql_card, video_card = list(app.query(ToolCard))
        table = sql_card.query_one(".tool-table")
        assert [str(c.label) for c in table.columns.values()] == ["Name", "Total"]
        assert table.row_count == 3
        assert [str(cell) for cell in table.get_row_at(0)] == ["Iron Maiden", "138.6"]
        links = video_card.query_one(".citations").render()
        text = str(links)
        assert "Autoencoders 12:34" in text and "VAE 1:05" in text
        urls = [str(span.style) for span in links.spans if "link" in str(span.style)]
        assert any("watch?v=dQw4w9WgXcQ&t=754s" in u for u in urls)
        assert any("watch?v=abcdefghijk&t=65s" in u for u in urls)


@pytest.mark.parametrize("approve", [True, False])
async def test_confirmation_modal_before_training(monkeypatch, approve):
    calls = fake_tool(monkeypatch, "train_model", lambda model, epochs=None: {
        "summary": f"Started training {model} (run {model}-test).", "run_id": f"{model}-test"})
    app, agent, fake = make_app([{"tool": "train_model", "args": {"model": "autoencoder", "epochs": 1}},
                                 "Training started."])
    async with app.run_test(size=SIZE) as pilot:
        await send(pilot, "train the autoencoder for 1 epoch")
        assert isinstance(app.screen, ConfirmScreen)
        assert "autoencoder" in app.screen.message
        assert list(app.query(ToolCard)) == []  # nothing ran before the answer
        await pilot.press("y" if approve else "n")
        await settle(pilot)
        assert not isinstance(app.screen, ConfirmScreen)
        cards = list(app.query(ToolCard))
        answer = list(app.query(AssistantMessage))[-1].text
        if approve:
            assert calls == [{"model": "autoencoder", "epochs": 1}]
            assert [c.tool for c in cards] == ["train_model"] and cards[0].ok
            assert answer.strip() == "Training started."
        else:
            assert calls == [] and cards == []
            assert "did not run" in answer
        assert agent.pending_interrupt("thread-1") is None


async def test_training_progress_from_the_bus_and_cancel_button(monkeypatch):
    cancelled: list[str] = []
    from taller.trainers import runs

    monkeypatch.setattr(runs, "cancel", lambda run_id: cancelled.append(run_id) or True)
    app, agent, fake = make_app([])
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        assert not app.runs_panel.display
        events = [{"type": "progress", "source": "train_model", "run_id": "vae-20261122", "model": "vae",
                   "epoch": epoch, "epochs": 4, "step": 10, "total": 10, "loss": loss, "metric": 0.5 / epoch,
                   "metric_name": "val_loss", "eta_s": 30.0 * (4 - epoch)}
                  for epoch, loss in [(1, 0.9), (2, 0.6)]]
        # Published from a training thread, as real runs do.
        for event in events:
            worker = threading.Thread(target=bus.publish, args=(event,))
            worker.start()
            worker.join()
        await pilot.pause()
        await pilot.pause()
        assert app.runs_panel.display
        [row] = list(app.query(RunProgress))
        label = static_text(row.query_one(".run-label"))
        assert "epoch 2/4" in label and "loss 0.6000" in label and "val_loss 0.2500" in label
        assert "ETA 1:00" in label
        assert row.losses == [0.9, 0.6]
        assert row.query_one("ProgressBar").progress == pytest.approx(50.0)
        assert list(row.query_one("Sparkline").data) == [0.9, 0.6]
        # The user keeps chatting while the run goes on: the prompt is free.
        assert not app.running and app.prompt.has_focus
        row.query_one("Button").press()
        await pilot.pause()
        assert cancelled == ["vae-20261122"]
        bus.publish({"type": "progress", "run_id": "vae-20261122", "model": "vae", "state": "cancelled",
                     "message": "cancelled; last checkpoint kept"})
        await pilot.pause()
        assert row.state == "cancelled" and "cancelled" in static_text(row.query_one(".run-label"))


async def test_tool_images_are_shown_inline_with_their_path(monkeypatch, taller_home):
    from PIL import Image

    from taller.config import get_settings

    def generate(model, count=None, image_path=None):
        folder = get_settings().outputs_dir
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"{model}-samples.png"
        image = Image.new("RGB", (64, 32))
        for x in range(64):
            for y in range(32):
                image.putpixel((x, y), (4 * x, 8 * y, 128))
        image.save(path)
        return {"summary": f"{count} samples from the {model}.", "images": [str(path)]}

    fake_tool(monkeypatch, "generate_images", generate)
    app, agent, fake = make_app([{"tool": "generate_images", "args": {"model": "vae", "count": 4}},
                                 "Here are four samples."])
    async with app.run_test(size=SIZE) as pilot:
        await send(pilot, "sample 4 images from the vae")
        [block] = list(app.query(ImageBlock))
        assert block.path == str(taller_home / "outputs" / "vae-samples.png")
        assert block.problem is None
        picture = block.query_one(".inline-image")
        assert isinstance(picture, app.image_renderer)
        assert picture.image.size == (64, 32)
        assert "vae-samples.png" in static_text(block.query_one(".image-path"))


async def test_unreadable_image_falls_back_to_the_path(tmp_path):
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"not a png at all")
    app, agent, fake = make_app([])
    async with app.run_test(size=SIZE) as pilot:
        block = ImageBlock(str(broken), renderer=app.image_renderer)
        await app.log_view.mount(block)
        await pilot.pause()
        assert block.problem and "cannot show the image inline" in block.problem
        assert not block.query(".inline-image")
        assert "broken.png" in static_text(block.query_one(".image-path"))


async def test_thread_switch_and_resume_after_restart(monkeypatch):
    fake = FakeChatModel(responses=[{"tool": "none", "args": {}}, "Answer about autoencoders.",
                                    {"tool": "none", "args": {}}, "Answer about translation."])
    first = Agent(chat_model=fake)
    list(first.run("tell me about autoencoders", thread_id="thread-a"))
    list(first.run("how does translation work?", thread_id="thread-b"))
    first.close()

    # A new Agent on the same TALLER_HOME: the app reopens the most recent thread.
    agent = Agent(chat_model=FakeChatModel(responses=[]))
    app = TallerApp(agent=agent, show_timings=False, device_label="CPU", show_threads=True)
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        assert app.thread_id == "thread-b"
        assert "how does translation work?" in static_text(app.query_one(UserMessage))
        items = list(app.query(ThreadItem))
        assert [i.thread_id for i in items] == ["thread-b", "thread-a"]
        # Switch with the keyboard: focus the list, move down, Enter.
        app.query_one(ThreadList).focus()
        await pilot.press("down", "enter")
        await settle(pilot)
        assert app.thread_id == "thread-a"
        assert [static_text(u) for u in app.query(UserMessage)] == ["tell me about autoencoders"]
        assert list(app.query(AssistantMessage))[0].text == "Answer about autoencoders."
        # Rename with r, delete with d.
        app.query_one(ThreadList).focus()
        await pilot.press("r")
        await pilot.pause()
        app.screen.query_one("Input").value = "Autoencoders"
        await pilot.press("enter")
        await settle(pilot)
        assert {t["thread_id"]: t["title"] for t in agent.threads()}["thread-a"] == "Autoencoders"
        app.query_one(ThreadList).focus()
        await pilot.press("d")
        await pilot.pause()
        assert isinstance(app.screen, ConfirmScreen)
        await pilot.press("y")
        await settle(pilot)
        assert [t["thread_id"] for t in agent.threads()] == ["thread-b"]
        assert app.thread_id not in ("thread-a", "thread-b")  # a fresh chat replaced the deleted one


async def test_escape_cancels_a_streaming_answer():
    words = " ".join(f"word{i}" for i in range(200))
    app, agent, fake = make_app([{"tool": "none", "args": {}}, words], token_delay=0.02)
    async with app.run_test(size=SIZE) as pilot:
        app.prompt.value = "say many words"
        await pilot.press("enter")
        for _ in range(200):  # wait until the answer is visibly streaming
            await pilot.pause(0.02)
            shown = list(app.query(AssistantMessage))
            if shown and len(shown[0].text.split()) >= 3:
                break
        assert app.running
        await pilot.press("escape")
        await settle(pilot)
        assert not app.running
        [message] = list(app.query(AssistantMessage))
        assert 3 <= len(message.text.split()) < 200
        assert any("Cancelled" in static_text(n) for n in app.query(Notice))


async def test_no_llm_still_opens_and_shows_the_error(monkeypatch):
    from taller.config import get_settings

    monkeypatch.setenv("TALLER_OLLAMA_HOST", "http://127.0.0.1:9")
    get_settings(reload=True)
    agent = Agent(backend="ollama")
    app = TallerApp(agent=agent, thread_id="t", show_timings=False, device_label="CPU")
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        assert app.status_bar.backend == "unavailable"
        await send(pilot, "hello")
        errors = [static_text(e) for e in app.query(ErrorMessage)]
        assert any("Ollama does not answer" in e for e in errors)
        assert not app.running  # the app keeps serving


async def test_agent_loads_in_a_worker_when_not_given():
    from taller.llm import use_chat_model

    with use_chat_model(FakeChatModel(responses=[{"tool": "none", "args": {}}, "Hi there."])):
        app = TallerApp(thread_id="t", show_timings=False, device_label="CPU")
        async with app.run_test(size=SIZE) as pilot:
            await settle(pilot)
            assert app.agent is not None
            await send(pilot, "hello")
            assert list(app.query(AssistantMessage))[0].text.strip() == "Hi there."


async def test_slash_commands(monkeypatch):
    trained = fake_tool(monkeypatch, "train_model", lambda model, epochs=None: {
        "summary": f"Started {model}.", "run_id": f"{model}-x"})
    fake_tool(monkeypatch, "list_models", lambda: {"summary": "No runs yet.", "runs": []})
    app, agent, fake = make_app([])
    async with app.run_test(size=SIZE) as pilot:
        await send(pilot, "/help")
        assert isinstance(app.screen, HelpScreen)
        await pilot.press("escape")
        await send(pilot, "/models")
        [card] = list(app.query(ToolCard))
        assert card.tool == "list_models" and "No runs yet." in static_text(card.query_one(".tool-summary"))
        await send(pilot, "/train vae 2")
        assert isinstance(app.screen, ConfirmScreen)
        await pilot.press("y")
        await settle(pilot)
        assert trained == [{"model": "vae", "epochs": 2}]
        await send(pilot, "/train vae lots")
        assert any("whole number" in static_text(n) for n in app.query(Notice))
        await send(pilot, "/frobnicate")
        assert any("Unknown command /frobnicate" in static_text(n) for n in app.query(Notice))
        await send(pilot, "/clear")
        assert list(app.log_view.children) == []
        assert fake.calls == []  # none of this needed the LLM


async def test_attach_an_image_with_the_picker(tmp_path):
    from PIL import Image

    photo = tmp_path / "cat.png"
    Image.new("RGB", (8, 8), (200, 100, 50)).save(photo)
    app, agent, fake = make_app([{"tool": "none", "args": {}}, "Nice cat."])
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("ctrl+o")
        await pilot.pause()
        assert isinstance(app.screen, FilePickerScreen)
        app.screen.query_one("#picker-path").value = str(photo)
        app.screen.query_one("#picker-path").focus()
        await pilot.press("enter")
        await pilot.pause()
        assert not isinstance(app.screen, FilePickerScreen)
        assert app.query_one("#attachments").display
        await send(pilot, "is this a cat?")
        routed = fake.calls[0][-1].content
        assert f"(attached file: {photo})" in routed
        assert not app.query_one("#attachments").display


async def test_keys_are_refused_politely_while_an_answer_runs():
    app, agent, fake = make_app([{"tool": "none", "args": {}}, " ".join(["slow"] * 300)], token_delay=0.02)
    async with app.run_test(size=SIZE) as pilot:
        assert app.send("first")
        await pilot.pause(0.05)
        assert app.running
        app.prompt.value = "second"
        assert not app.send("second")
        assert app.prompt.value == "second"  # kept, not lost
        app.action_new_thread()
        assert app.thread_id == "thread-1"
        await pilot.press("escape")
        await settle(pilot)
        assert [static_text(u) for u in app.query(UserMessage)] == ["first"]


async def test_runs_window_lists_runs_and_cancels_the_selected_one(monkeypatch):
    from taller.trainers import runs
    from taller.ui.screens import RunsScreen

    listed = [{"run_id": "vae-2", "model": "vae", "state": "running", "epoch": 1, "epochs": 5,
               "metrics": {"val_loss": 0.25}},
              {"run_id": "rnn-1", "model": "rnn", "state": "finished", "epoch": 3, "epochs": 3, "metrics": {}}]
    cancelled: list[str] = []
    monkeypatch.setattr(runs, "list_all", lambda model=None, problems=None: listed)
    monkeypatch.setattr(runs, "cancel", lambda run_id: cancelled.append(run_id) or True)
    app, agent, fake = make_app([])
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("ctrl+t")
        await settle(pilot)
        assert isinstance(app.screen, RunsScreen)
        table = app.screen.query_one("#runs-table")
        assert table.row_count == 2
        assert [str(cell) for cell in table.get_row_at(0)][:4] == ["vae-2", "vae", "running", "1/5"]
        await pilot.press("c")
        assert cancelled == ["vae-2"]
        await pilot.press("escape")
        assert not isinstance(app.screen, RunsScreen)


def test_markup_escaping_keeps_any_text_literal():
    from textual.content import Content

    from taller.ui.formatting import escape, file_link

    for text in ['["Iron Maiden", 138.6]', "[b]not bold[/b]", "C:\\path\\[x]", "ends with \\", "[link=x]y[/link]"]:
        plain = Content.from_markup(f"[dim]>[/dim]{escape(text)}[b]<[/b]").plain
        # A trailing backslash gets one space after it so it cannot escape the next tag.
        assert plain == (f">{text} <" if text.endswith("\\") else f">{text}<")
    link = Content.from_markup(file_link("/tmp/a b [1].png"))
    assert link.plain == "/tmp/a b [1].png"
    assert any("file:///tmp/a%20b%20%5B1%5D.png" in str(span.style) for span in link.spans)


async def test_a_pending_confirmation_is_asked_again_after_a_restart(monkeypatch):
    calls = fake_tool(monkeypatch, "train_model", lambda model, epochs=None: {"summary": f"Started {model}."})
    fake = FakeChatModel(responses=[{"tool": "train_model", "args": {"model": "vae", "epochs": 2}}, "Started."])
    first = Agent(chat_model=fake)
    events = list(first.run("train the vae for 2 epochs", thread_id="waiting"))
    assert events[-1]["type"] == "interrupt"
    first.close()

    agent = Agent(chat_model=fake)
    app = TallerApp(agent=agent, thread_id="waiting", show_timings=False, device_label="CPU")
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        assert isinstance(app.screen, ConfirmScreen)
        await pilot.press("y")
        await settle(pilot)
        assert calls == [{"model": "vae", "epochs": 2}]
        assert agent.pending_interrupt("waiting") is None


async def test_status_bar_probes_the_device_in_a_worker():
    app, agent, fake = make_app([], device_label=None)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        import torch

        expected = "GPU" if torch.cuda.is_available() else "CPU"
        assert app.status_bar.device.startswith(expected)
        assert "data:" in static_text(app.status_bar)
