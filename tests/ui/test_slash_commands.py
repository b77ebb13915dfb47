"""The slash-command interpreter (taller/ui/commands.py) without Textual: a recording host.

The point of most of these: a slash command that runs a costly tool asks through the agent's own
rule (``taller.tools.COSTLY_TOOLS`` unless ``auto_approve``, worded by ``confirmation_text``),
so ``/train`` and "train the vae" ask the same question, or both run at once.
"""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from textual.content import Content

from taller import tools
from taller.llm import FakeChatModel
from taller.ui import commands
from taller.ui.commands import COMMANDS, CommandLine, help_table, parse, run_command


class RecordingHost:
    """A CommandHost that writes down what the commands asked of it."""

    def __init__(self, auto_approve: bool = False, running: bool = False) -> None:
        self.settings = SimpleNamespace(auto_approve=auto_approve)
        self.running = running
        self.calls: list[tuple] = []
        self.pending_answer = None

    def __getattr__(self, name: str):
        # Every host method without a special role below just records its call.
        if name.startswith("_"):
            raise AttributeError(name)
        return lambda *args: self.calls.append((name, *args))

    def notice(self, markup: str) -> None:
        self.calls.append(("notice", Content.from_markup(markup).plain))  # as the screen shows it

    def confirm_tool(self, tool, args, message, on_answer) -> None:
        self.calls.append(("confirm_tool", tool, args, message))
        self.pending_answer = on_answer


def test_parse_splits_like_a_shell():
    assert parse("/train vae 2") == CommandLine("train", ("vae", "2"))
    assert parse('/Rename "My first VAE"') == CommandLine("rename", ("My first VAE",))
    assert parse("/rename it's done") == CommandLine("rename", ("it's", "done"))  # unbalanced quote
    assert parse("/") is None and parse("/   ") is None


@pytest.mark.parametrize("approve", [True, False])
def test_train_asks_first_with_the_agents_question(approve):
    from taller.agent.graph import confirmation_text

    host = RecordingHost(auto_approve=False)
    run_command(host, "/train vae 2")
    expected_question = confirmation_text("train_model", {"model": "vae", "epochs": 2})
    assert host.calls == [("confirm_tool", "train_model", {"model": "vae", "epochs": 2}, expected_question)]
    assert "Train vae for 2 epochs?" in expected_question  # the real wording, not an empty string
    host.pending_answer(approve)
    if approve:
        assert host.calls[-1] == ("run_tool_card", "train_model", {"model": "vae", "epochs": 2})
    else:
        assert host.calls[-1] == ("notice", "OK, not training.")
        assert not any(call[0] == "run_tool_card" for call in host.calls)


def test_train_runs_at_once_with_auto_approve():
    host = RecordingHost(auto_approve=True)
    run_command(host, "/train autoencoder epochs=3")
    assert host.calls == [("run_tool_card", "train_model", {"model": "autoencoder", "epochs": 3})]


def test_the_rule_is_the_tool_registrys_costly_set(monkeypatch):
    # Make listing models costly and training free: the commands follow the registry, not a
    # rule of their own about /train.
    monkeypatch.setattr(tools, "COSTLY_TOOLS", frozenset({"list_models"}))
    host = RecordingHost(auto_approve=False)
    run_command(host, "/models")
    run_command(host, "/train vae")
    assert host.calls[0][:3] == ("confirm_tool", "list_models", {})
    assert host.calls[1] == ("run_tool_card", "train_model", {"model": "vae"})


def test_slash_train_asks_exactly_what_the_agent_asks():
    from taller.agent.session import Agent

    agent = Agent(chat_model=FakeChatModel(responses=[{"tool": "train_model", "args": {"model": "vae", "epochs": 2}}]))
    try:
        events = list(agent.run("train the vae for 2 epochs", thread_id="same-question"))
    finally:
        agent.close()
    interrupt = events[-1]
    assert interrupt["type"] == "interrupt"
    host = RecordingHost(auto_approve=agent.settings.auto_approve)
    run_command(host, "/train vae 2")
    assert host.calls == [("confirm_tool", interrupt["tool"], interrupt["args"], interrupt["message"])]


def test_train_usage_and_bad_epochs_run_nothing():
    from taller.trainers import TRAINERS

    host = RecordingHost()
    run_command(host, "/train")
    run_command(host, "/train vae lots")
    [usage, bad] = host.calls
    assert usage == ("notice", "Usage: /train MODEL [EPOCHS], models: " + ", ".join(TRAINERS))
    assert bad == ("notice", "Epochs must be a whole number, got lots.")


def test_cancel_stops_the_answer_or_a_run():
    idle, busy = RecordingHost(running=False), RecordingHost(running=True)
    run_command(idle, "/cancel")
    run_command(busy, "/cancel")
    run_command(idle, "/cancel vae-20261122")
    assert idle.calls == [("notice", "Usage: /cancel RUN_ID (see /runs)."), ("cancel_run", "vae-20261122")]
    assert busy.calls == [("action_cancel",)]


def test_thread_attach_and_window_commands_reach_the_host():
    host = RecordingHost()
    for line in ["/rename My VAE notes", "/rename", "/delete", "/new", "/threads", "/runs",
                 "/attach ~/cat 1.png", "/attach", "/clear", "/help", "/", "/exit", "/QUIT"]:
        run_command(host, line)
    assert host.calls == [
        ("rename_current_thread", "My VAE notes"), ("rename_current_thread", None), ("delete_current_thread",),
        ("action_new_thread",), ("show_threads",), ("action_runs",), ("attach", "~/cat 1.png"),
        ("action_attach",), ("action_clear",), ("action_help",), ("action_help",), ("exit",), ("exit",),
    ]


def test_unknown_command_is_named_literally():
    host = RecordingHost()
    run_command(host, "/[b]frob")
    assert host.calls == [("notice", "Unknown command /[b]frob. Try /help.")]


def test_help_lists_every_command_the_interpreter_knows():
    from taller.tui import help_text

    table = help_table()
    rows = [line for line in table.splitlines() if line.startswith("| `/")]
    named = {row.split("`/")[1].split()[0].rstrip("`") for row in rows}
    assert named == {command.name for command in COMMANDS.values()}
    assert len(rows) == len(set(COMMANDS.values()))
    assert table in help_text()  # the help screen shows this very table
    assert commands.COMMANDS["exit"] is commands.COMMANDS["quit"]


def test_lesson_asks_only_when_the_lesson_would_train(tmp_path):
    from dataclasses import dataclass

    from taller.trainers import lessons

    host = RecordingHost(auto_approve=False)
    run_command(host, "/lesson vae")
    assert host.calls[0][:3] == ("confirm_tool", "show_lesson", {"model": "vae"})  # nothing ran yet

    @dataclass
    class Settings:
        lesson: bool = True
        dry_run: bool = False
        seed: int = 0
        device: str = "cpu"

    def teach(config, notebook, device):
        return lessons.Lesson(title="β", claim="KL falls", held=True, figures={}, reading={"en": "It fell.", "es": "Bajó."})

    lessons.run_lesson("vae", Settings(), teach)
    host = RecordingHost(auto_approve=False)
    run_command(host, "/lesson vae")
    assert host.calls[0][:3] == ("run_tool_card", "show_lesson", {"model": "vae"})  # a finished one is just shown
    run_command(host, "/lesson pix2pix")
    assert host.calls[-1][0] == "notice" and "Usage: /lesson MODEL" in host.calls[-1][1]
