"""Branches of a thread: regenerate and edit keep the earlier continuation, switch_branch goes back.

A scripted fake model answers; each chat turn takes two responses (the router's choice, then
the answer), so the texts below say which call produced which message.
"""

from __future__ import annotations

import pytest

from taller.agent.session import Agent, BranchError
from taller.llm import FakeChatModel

NO_TOOL = {"tool": "none"}


def chat(*answers: str) -> FakeChatModel:
    """A model that answers each turn without a tool, with ``answers`` in order."""
    responses = []
    for answer in answers:
        responses += [NO_TOOL, answer]
    return FakeChatModel(responses=responses)


def texts(agent: Agent, thread_id: str) -> list[tuple[str, str]]:
    return [(entry["role"], entry["content"]) for entry in agent.history(thread_id)]


def final(events) -> dict:
    events = list(events)
    assert events[-1]["type"] == "final", events[-1]
    return events[-1]


def test_regenerate_keeps_both_answers_and_switch_goes_back():
    agent = Agent(chat_model=chat("Hello!", "Dropout zeroes units.", "Dropout drops activations at random."))
    final(agent.run("hi", "t"))
    final(agent.run("what is dropout?", "t"))
    assert len(agent.branches("t")) == 1
    again = final(agent.regenerate("t"))
    assert again["text"] == "Dropout drops activations at random."
    assert texts(agent, "t") == [("user", "hi"), ("assistant", "Hello!"), ("user", "what is dropout?"),
                                 ("assistant", "Dropout drops activations at random.")]
    branches = agent.branches("t")
    assert [branch["current"] for branch in branches] == [False, True]  # oldest first, the new one current
    assert [branch["fork_index"] for branch in branches] == [2, 2]  # both leave the thread at message 2
    assert all(branch["messages"] == 4 and branch["last_user"] == "what is dropout?" for branch in branches)
    assert branches[0]["updated"] <= branches[1]["updated"]
    agent.switch_branch("t", branches[0]["branch_id"])
    assert texts(agent, "t")[-1] == ("assistant", "Dropout zeroes units.")
    assert [branch["current"] for branch in agent.branches("t")] == [True, False]


def test_run_continues_the_current_branch_not_the_newest_checkpoint():
    model = chat("one", "two", "two again", "three")
    agent = Agent(chat_model=model)
    final(agent.run("first", "t"))
    final(agent.run("second", "t"))
    final(agent.regenerate("t"))
    old = agent.branches("t")[0]
    agent.switch_branch("t", old["branch_id"])
    final(agent.run("third", "t"))  # continues the old branch ("two"), not the regenerated one
    assert texts(agent, "t") == [("user", "first"), ("assistant", "one"), ("user", "second"),
                                 ("assistant", "two"), ("user", "third"), ("assistant", "three")]
    # The chat answer was given the current branch's turns, not the other branch's.
    seen = " ".join(str(message.content) for message in model.calls[-1])
    assert "two" in seen and "two again" not in seen
    branches = agent.branches("t")
    assert len(branches) == 2 and branches[0]["current"] and branches[0]["messages"] == 6


def test_edit_a_middle_message_and_the_first_one():
    agent = Agent(chat_model=chat("A1", "A2", "A3", "B2", "C1"))
    for text in ("m1", "m2", "m3"):
        final(agent.run(text, "t"))
    history = agent.history("t")
    assert [entry["index"] for entry in history] == list(range(6))
    final(agent.edit("t", 2, "m2 edited"))
    assert texts(agent, "t") == [("user", "m1"), ("assistant", "A1"), ("user", "m2 edited"), ("assistant", "B2")]
    final(agent.edit("t", 0, "m1 edited"))
    assert texts(agent, "t") == [("user", "m1 edited"), ("assistant", "C1")]
    branches = agent.branches("t")
    assert len(branches) == 3 and branches[-1]["current"]
    # Each branch leaves at its nearest fork: the first message (C) or the second user message (original, B).
    assert sorted(branch["fork_index"] for branch in branches) == [0, 2, 2]
    # The original three turns are all still there.
    original = next(branch for branch in branches if branch["messages"] == 6)
    agent.switch_branch("t", original["branch_id"])
    assert [content for role, content in texts(agent, "t") if role == "user"] == ["m1", "m2", "m3"]


def test_edit_refuses_an_assistant_message_and_bad_indexes():
    agent = Agent(chat_model=chat("A1"))
    final(agent.run("m1", "t"))
    for index in (1, 7, -1):
        events = list(agent.edit("t", index, "new"))
        assert events[-1]["type"] == "error" and "not a user message" in events[-1]["message"]
    assert list(agent.edit("t", 0, "   "))[-1]["message"] == "empty message"
    assert list(agent.regenerate("empty-thread"))[-1]["type"] == "error"
    assert texts(agent, "t") == [("user", "m1"), ("assistant", "A1")]  # nothing changed


def test_unknown_branch_is_refused_naming_it():
    agent = Agent(chat_model=chat("A1"))
    final(agent.run("m1", "t"))
    with pytest.raises(BranchError, match="no branch 'not-a-branch'"):
        agent.switch_branch("t", "not-a-branch")


def test_branches_survive_reopening_the_agent():
    first = Agent(chat_model=chat("one", "two", "two again"))
    final(first.run("first", "t"))
    final(first.run("second", "t"))
    final(first.regenerate("t"))
    old = first.branches("t")[0]["branch_id"]
    first.switch_branch("t", old)
    first.close()
    # Another process's view of the same TALLER_HOME: the same branches, the same current one.
    second = Agent(chat_model=chat("three"))
    branches = second.branches("t")
    assert [branch["branch_id"] for branch in branches][0] == old and branches[0]["current"]
    assert texts(second, "t")[-1] == ("assistant", "two")
    final(second.run("third", "t"))
    assert texts(second, "t")[-2:] == [("user", "third"), ("assistant", "three")]
    assert texts(second, "t")[3] == ("assistant", "two")


def test_regenerate_a_tool_turn_and_an_interrupted_one(monkeypatch):
    from taller.tools import get_tool

    monkeypatch.setattr(get_tool("describe_database"), "func", lambda database=None: {"summary": "11 tables"})
    monkeypatch.setattr(get_tool("train_model"), "func", lambda model, epochs=None: {"summary": "started", "run_id": "r"})
    model = FakeChatModel(responses=[{"tool": "describe_database", "args": {}}, "It has 11 tables.",
                                     {"tool": "describe_database", "args": {}}, "Eleven tables.",
                                     {"tool": "train_model", "args": {"model": "vae"}}, "Training started."])
    agent = Agent(chat_model=model)
    final(agent.run("describe the database", "t"))
    assert final(agent.regenerate("t"))["text"] == "Eleven tables."
    history = agent.history("t")
    assert [entry["role"] for entry in history] == ["user", "tool", "assistant"]
    assert history[1]["name"] == "describe_database" and history[1]["result"] == {"summary": "11 tables"}
    assert history[1]["args"] == {}
    # A turn waiting for confirmation is on the current branch; resume continues it.
    assert list(agent.run("train the vae", "t"))[-1]["type"] == "interrupt"
    assert agent.pending_interrupt("t")["tool"] == "train_model"
    assert final(agent.resume("t", approve=True))["text"] == "Training started."
    assert texts(agent, "t")[-1] == ("assistant", "Training started.")
    assert agent.pending_interrupt("t") is None


def test_delete_thread_forgets_its_branches():
    agent = Agent(chat_model=chat("one", "one again"))
    final(agent.run("first", "t"))
    final(agent.regenerate("t"))
    agent.delete_thread("t")
    assert agent.branches("t") == [] and agent.history("t") == [] and agent.threads() == []
    assert agent.thread_store.head("t") is None


def test_another_process_sees_the_same_branches_and_current_one():
    import json
    import os
    import subprocess
    import sys

    agent = Agent(chat_model=chat("one", "two", "two again"))
    final(agent.run("first", "t"))
    final(agent.run("second", "t"))
    final(agent.regenerate("t"))
    agent.switch_branch("t", agent.branches("t")[0]["branch_id"])
    expected = agent.branches("t")
    agent.close()
    code = ("import json; from taller.agent.session import Agent; agent = Agent(); "
            "print(json.dumps({'branches': agent.branches('t'), 'history': agent.history('t')}))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                          env={**os.environ, "TALLER_BACKEND": "fake"})
    assert done.returncode == 0, done.stderr[-2000:]
    seen = json.loads(done.stdout.strip().splitlines()[-1])
    assert seen["branches"] == expected
    assert [entry["content"] for entry in seen["history"]] == ["first", "one", "second", "two"]
