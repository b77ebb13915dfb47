"""The chat's everyday actions, driven by keys alone at 80×24 (Pilot, a scripted fake model).

Copy (OSC 52 and the file fallback), regenerate, edit and rerun, switching branches, searching
every thread and jumping to the message, exporting, suggested next steps (buttons and ``/1``…),
and the help screen listing every binding of every part of the chat. Each test builds a real
:class:`Agent` (SQLite checkpoints under the test's TALLER_HOME) around a ``FakeChatModel``
whose script is, per turn, the routing decision and then the answer.
"""

from __future__ import annotations

import importlib
import inspect
import json
import pkgutil

from textual.dom import DOMNode
from textual.widgets import Input

import taller.ui
from taller.agent.session import Agent
from taller.llm import FakeChatModel
from taller.tools import get_tool
from taller.tui import HELP_SECTIONS, TallerApp, help_text
from taller.ui.cards import ToolCard
from taller.ui.help import binding_text, key_display, own_bindings
from taller.ui.screens import CopyScreen, ExportScreen, HelpScreen
from taller.ui.search import SearchScreen
from taller.ui.widgets import AssistantMessage, EditBar, ErrorMessage, Notice, SuggestionsBar, UserMessage

SIZE = (80, 24)
CHAT = {"tool": "none", "args": {}}  # the routing decision of a plain chat turn


def make_app(responses: list, thread_id: str = "thread-1", agent: Agent | None = None):
    agent = agent or Agent(chat_model=FakeChatModel(responses=list(responses)))
    app = TallerApp(agent=agent, thread_id=thread_id, show_timings=False, device_label="CPU", images="none")
    return app, agent


async def settle(pilot) -> None:
    """Wait until no worker runs (a turn's end starts the worker that reads its branches)."""
    for _ in range(50):
        await pilot.app.workers.wait_for_complete()
        await pilot.pause()
        await pilot.pause()
        if not any(worker.is_running for worker in pilot.app.workers):
            return


async def send(pilot, text: str) -> None:
    pilot.app.prompt.value = text
    await pilot.press("enter")
    await settle(pilot)


def texts(app, kind) -> list[str]:
    return [widget.text.strip() for widget in app.query(kind)]


def notes_of(app) -> list[str]:
    """Every notification message the app showed (recorded by wrapping notify)."""
    shown: list[str] = []
    original = app.notify

    def recording(message, **options):
        shown.append(message)
        return original(message, **options)

    app.notify = recording
    return shown


# --- copy ------------------------------------------------------------------------------------------

CODE_ANSWER = "Use this:\n\n```python\nprint('hola')\n```\n"


async def test_copy_a_code_block_through_osc52(monkeypatch, taller_home):
    monkeypatch.setenv("TALLER_TUI_CLIPBOARD", "auto")
    monkeypatch.setenv("TERM", "xterm-kitty")  # a terminal that takes OSC 52 writes
    app, agent = make_app([CHAT, CODE_ANSWER])
    async with app.run_test(size=SIZE) as pilot:
        written: list[str] = []
        app._driver.write = written.append  # what would reach the terminal
        notes = notes_of(app)
        await send(pilot, "how do I print in python?")
        await pilot.press("ctrl+y")
        await pilot.pause()
        assert isinstance(app.screen, CopyScreen)
        assert [c.label for c in app.screen.choices] == ["The whole answer (Markdown)",
                                                         "python code block 1: print('hola')"]
        await pilot.press("2")
        await pilot.pause()
        assert not isinstance(app.screen, CopyScreen)
        assert app.clipboard == "print('hola')\n"
        import base64

        assert f"\x1b]52;c;{base64.b64encode(app.clipboard.encode()).decode()}\a" in written
        assert not (taller_home / "clipboard.txt").exists()
        assert any("terminal clipboard" in note for note in notes)


async def test_copy_a_tool_cards_sql_and_table_to_the_file_fallback(monkeypatch, taller_home):
    monkeypatch.delenv("TALLER_TUI_CLIPBOARD", raising=False)
    for name in ("TERM_PROGRAM", "LC_TERMINAL", "KITTY_WINDOW_ID", "WEZTERM_PANE", "WT_SESSION",
                 "ALACRITTY_WINDOW_ID", "GHOSTTY_RESOURCES_DIR", "TMUX", "STY"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("TERM", "xterm-256color")  # GNOME Terminal and the like: no OSC 52
    sql = "SELECT Name, Total FROM t ORDER BY 2 DESC"
    monkeypatch.setattr(get_tool("query_database"), "func", lambda question, database=None: {
        "summary": "Two artists.", "sql": sql, "columns": ["Name", "Total"], "rows": [["Iron Maiden", 138.6], ["U2", 105.9]]})
    app, agent = make_app([{"tool": "query_database", "args": {"question": "top artists"}}, "Iron Maiden."])
    async with app.run_test(size=SIZE) as pilot:
        notes = notes_of(app)
        await send(pilot, "top artists?")
        # Alt+↑ from the prompt selects the answer, once more the tool card above it.
        await pilot.press("alt+up", "alt+up")
        assert isinstance(app.selected(), ToolCard)
        await pilot.press("ctrl+y")
        await pilot.pause()
        labels = [choice.label for choice in app.screen.choices]
        assert labels[:3] == ["SQL query", "Result table as TSV (2 rows)", "Result table as Markdown"]
        await pilot.press("enter")  # the first entry is highlighted
        await pilot.pause()
        clip = taller_home / "clipboard.txt"
        assert clip.read_text(encoding="utf-8") == sql + "\n"
        assert any(str(clip) in note for note in notes)
        await pilot.press("ctrl+y")
        await pilot.pause()
        await pilot.press("down", "enter")
        await pilot.pause()
        assert clip.read_text(encoding="utf-8") == "Name\tTotal\nIron Maiden\t138.6\nU2\t105.9\n"
        assert app.clipboard == ""  # nothing went to the terminal


# --- regenerate, branches, edit -------------------------------------------------------------------

async def test_regenerate_keeps_both_answers_and_alt_arrows_switch_between_them():
    app, agent = make_app([CHAT, "First answer.", CHAT, "Second answer."])
    async with app.run_test(size=SIZE) as pilot:
        await send(pilot, "what is a VAE?")
        await pilot.press("ctrl+r")
        await settle(pilot)
        assert texts(app, UserMessage) == ["what is a VAE?"]
        assert texts(app, AssistantMessage) == ["Second answer."]
        assert len(agent.branches("thread-1")) == 2
        user = app.query_one(UserMessage)
        assert user.branch == "◀ 2/2 ▶" and "◀ 2/2 ▶" in str(user.render())
        await pilot.press("alt+left")
        await settle(pilot)
        assert texts(app, AssistantMessage) == ["First answer."]
        assert app.query_one(UserMessage).branch == "◀ 1/2 ▶"
        assert [e["content"] for e in agent.history("thread-1") if e["role"] == "assistant"] == ["First answer."]
        await pilot.press("alt+right")
        await settle(pilot)
        assert texts(app, AssistantMessage) == ["Second answer."]
        # The switched-to branch is where the next message goes.
        assert [b["current"] for b in agent.branches("thread-1")] == [False, True]


async def test_edit_an_earlier_message_and_rerun_from_it():
    app, agent = make_app([CHAT, "Answer A.", CHAT, "Answer B.", CHAT, "Answer to the edit."])
    async with app.run_test(size=SIZE) as pilot:
        await send(pilot, "first question")
        await send(pilot, "second question")
        assert [w.index for w in app.query(UserMessage)] == [0, 2]  # their places in the history
        # Select the first message from the keyboard (answer B, question 2, answer A, question 1).
        await pilot.press("alt+up", "alt+up", "alt+up", "alt+up")
        assert app.selected() is app.query(UserMessage).first()
        await pilot.press("enter")
        await pilot.pause()
        assert app.prompt.value == "first question" and app.prompt.has_focus
        assert app.query_one(EditBar).display and "Editing your message 1" in str(app.query_one(EditBar).render())
        await pilot.press(*", edited")  # typed at the end: the text is not replaced by the first key
        assert app.prompt.value == "first question, edited"
        await pilot.press("enter")
        await settle(pilot)
        assert texts(app, UserMessage) == ["first question, edited"]
        assert texts(app, AssistantMessage) == ["Answer to the edit."]
        assert not app.query_one(EditBar).display
        assert [(e["role"], e["content"]) for e in agent.history("thread-1")] == [
            ("user", "first question, edited"), ("assistant", "Answer to the edit.")]
        assert app.query_one(UserMessage).branch == "◀ 2/2 ▶"
        await pilot.press("alt+left")  # back to the branch with both original turns
        await settle(pilot)
        assert texts(app, UserMessage) == ["first question", "second question"]
        assert texts(app, AssistantMessage) == ["Answer A.", "Answer B."]


async def test_a_regeneration_refused_shows_the_saved_thread_again(monkeypatch):
    from taller.agent.session import thread_lock_path
    from taller.config import get_settings
    from taller.locks import FileLock

    monkeypatch.setenv("TALLER_THREAD_WAIT_S", "0")
    get_settings(reload=True)
    app, agent = make_app([CHAT, "The only answer."])
    async with app.run_test(size=SIZE) as pilot:
        await send(pilot, "hello")
        other = FileLock(thread_lock_path(agent.settings, "thread-1"))
        assert other.acquire(note="another process")
        try:
            await pilot.press("ctrl+r")
            await settle(pilot)
        finally:
            other.release()
        # The old answer, removed when the regeneration started, is back; the reason is below it.
        assert texts(app, AssistantMessage) == ["The only answer."]
        [error] = list(app.query(ErrorMessage))
        assert "regenerating failed" in str(error.render()) and "busy" in str(error.render())
        assert len(agent.branches("thread-1")) == 1


async def test_f2_edits_the_last_message_and_esc_stops_editing():
    app, agent = make_app([CHAT, "Answer A."])
    async with app.run_test(size=SIZE) as pilot:
        await send(pilot, "only question")
        await pilot.press("f2")
        assert app.prompt.value == "only question" and app.query_one(EditBar).display
        await pilot.press("escape")
        await pilot.pause()
        assert not app.query_one(EditBar).display and app.prompt.value == ""
        assert len(agent.history("thread-1")) == 2  # nothing was rerun
        assert len(agent.branches("thread-1")) == 1
        # Esc also leaves a selected message for the prompt; Alt+↓ past the last one does too.
        await pilot.press("alt+up")
        assert isinstance(app.selected(), AssistantMessage)
        await pilot.press("escape")
        assert app.prompt.has_focus and app.selected() is None
        await pilot.press("alt+up", "alt+up", "alt+down")
        assert isinstance(app.selected(), AssistantMessage)
        await pilot.press("alt+down")
        assert app.prompt.has_focus


# --- search -----------------------------------------------------------------------------------------

async def test_search_every_thread_and_jump_to_the_message():
    fake = FakeChatModel(responses=[CHAT, "Autoencoders squeeze data through a bottleneck.",
                                    CHAT, "Translation uses attention.", CHAT, "Hello!"])
    agent = Agent(chat_model=fake)
    list(agent.run("tell me about autoencoders", thread_id="thread-a"))
    list(agent.run("how does translation work?", thread_id="thread-b"))
    list(agent.run("hi", thread_id="thread-b"))
    app, _ = make_app([], thread_id="thread-b", agent=agent)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await pilot.press("ctrl+f")
        await pilot.pause()
        assert isinstance(app.screen, SearchScreen)
        await pilot.press(*"bottleneck")
        await pilot.pause(0.3)  # past the typing pause
        await settle(pilot)
        hits = app.screen.hits
        assert [(h.thread_id, h.message_index, h.role) for h in hits] == [("thread-a", 1, "assistant")]
        await pilot.press("enter")  # from the query to the matches
        await pilot.press("enter")  # open the highlighted match
        await settle(pilot)
        assert app.thread_id == "thread-a"
        found = app.selected()
        assert isinstance(found, AssistantMessage) and found.index == 1 and found.has_class("found")
        assert "bottleneck" in found.text


async def test_search_says_when_nothing_matches_and_takes_any_text():
    app, agent = make_app([CHAT, "Plain answer."])
    async with app.run_test(size=SIZE) as pilot:
        await send(pilot, "hello there")
        await send(pilot, '/search "unbalanced AND * NOT')
        assert isinstance(app.screen, SearchScreen)
        await settle(pilot)
        assert app.screen.hits == []
        assert "no match" in str(app.screen.query_one("#search-note").render())
        await pilot.press("escape")
        assert not isinstance(app.screen, SearchScreen)


# --- export ----------------------------------------------------------------------------------------

async def test_export_the_thread_from_the_dialog_and_the_command(taller_home):
    app, agent = make_app([CHAT, "A VAE samples from a learned distribution."])
    async with app.run_test(size=SIZE) as pilot:
        await send(pilot, "what is a VAE?")
        await pilot.press("ctrl+s")
        await pilot.pause()
        assert isinstance(app.screen, ExportScreen)
        await pilot.press("m")
        await settle(pilot)
        [markdown] = list((taller_home / "exports").glob("*.md"))
        assert "what is a VAE?" in markdown.read_text(encoding="utf-8")
        assert app.exports == [markdown]
        assert any(markdown.name in str(n.render()) for n in app.query(Notice))
        await send(pilot, "/export json")
        [exported] = list((taller_home / "exports").glob("*.json"))
        data = json.loads(exported.read_text(encoding="utf-8"))
        assert data["format"] == "taller-thread"
        assert [m.get("content") for m in data["messages"] if m.get("role") == "user"] == ["what is a VAE?"]
        await send(pilot, "/export pdf")
        assert any("Usage: /export" in str(n.render()) for n in app.query(Notice))


# --- suggested next steps ----------------------------------------------------------------------------

async def test_suggested_next_steps_fill_the_prompt_by_button_and_by_slash_number(monkeypatch):
    follow_ups = ["Which genres sell most?", "And the top 5 invoices?"]
    calls = []
    monkeypatch.setattr(get_tool("query_database"), "func", lambda question, database=None: calls.append(question) or {
        "summary": "3 rows.", "question": question, "sql": "SELECT 1", "columns": ["a"], "rows": [[1]],
        "suggestions": follow_ups})
    app, agent = make_app([{"tool": "query_database", "args": {"question": "best countries"}}, "The USA.",
                           {"tool": "query_database", "args": {"question": follow_ups[0]}}, "Rock."])
    async with app.run_test(size=SIZE) as pilot:
        await send(pilot, "best countries?")
        assert [s["text"] for s in app.suggestions] == follow_ups
        assert app.query_one(SuggestionsBar)
        await send(pilot, "/2")
        assert app.prompt.value == follow_ups[1] and app.prompt.has_focus
        assert calls == ["best countries"]  # nothing ran without Enter
        await send(pilot, "/3")  # only two: the prompt is kept, a notice says so
        assert any("/1 … /2" in str(n.render()) for n in app.query(Notice))
        await send(pilot, "/1")
        assert app.prompt.value == follow_ups[0]
        await pilot.press("enter")
        await settle(pilot)
        assert calls == ["best countries", follow_ups[0]]
        assert texts(app, UserMessage) == ["best countries?", follow_ups[0]]
        # Tab reaches the buttons: focus the first and press Enter.
        app.query(SuggestionsBar).last().query("Button").first().focus()
        await pilot.press("enter")
        await pilot.pause()
        assert app.prompt.value == follow_ups[0]


# --- help --------------------------------------------------------------------------------------------

def chat_classes_with_bindings() -> list[type]:
    """Every class of the chat (taller.tui and taller.ui.*) that declares its own BINDINGS."""
    modules = [importlib.import_module("taller.tui")]
    modules += [importlib.import_module(f"taller.ui.{info.name}") for info in pkgutil.iter_modules(taller.ui.__path__)]
    found = []
    for module in modules:
        for _, cls in inspect.getmembers(module, inspect.isclass):
            if cls.__module__ == module.__name__ and issubclass(cls, DOMNode) and own_bindings(cls):
                found.append(cls)
    return found


async def test_help_lists_every_binding_of_every_part_of_the_chat():
    classes = chat_classes_with_bindings()
    assert len(classes) >= 10
    listed = {cls for _, cls, _ in HELP_SECTIONS}
    assert set(classes) <= listed, f"add to HELP_SECTIONS: {set(classes) - listed}"
    app, agent = make_app([])
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("f1")
        await pilot.pause()
        assert isinstance(app.screen, HelpScreen)
        shown = app.screen.markdown
        assert shown == help_text()
        rows = [line for line in shown.splitlines() if line.startswith("| ")]
        for cls in listed:
            for binding in own_bindings(cls):
                keys = [key_display(key) for key in binding.key.split(",")]
                text = binding_text(binding).replace("|", "\\|")
                assert any(all(key in row for key in keys) and text in row for row in rows), (cls.__name__, binding.key)
        await pilot.press("escape")
        assert not isinstance(app.screen, HelpScreen)


async def test_actions_with_nothing_to_act_on_say_so():
    app, agent = make_app([])
    async with app.run_test(size=SIZE) as pilot:
        notes = notes_of(app)
        for key in ("ctrl+y", "ctrl+r", "f2", "alt+left", "ctrl+s"):
            await pilot.press(key)
            await pilot.pause()
        assert notes == ["Nothing to copy yet.", "Nothing to regenerate yet: send a message first.",
                         "No message of yours to edit yet.",
                         "This thread has no other branch: regenerate (Ctrl+R) or edit (F2) makes one.",
                         "This thread is empty: nothing to export yet."]
        assert isinstance(app.focused, Input)
