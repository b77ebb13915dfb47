"""Search across threads: text, tool names and SQL, ranked; any user text; kept in step with the threads."""

from __future__ import annotations

import sqlite3

import pytest

from taller.agent.session import Agent
from taller.agent.store import search as thread_search
from taller.config import get_settings
from taller.llm import FakeChatModel
from taller.tools import get_tool

NO_TOOL = {"tool": "none"}


def chat(*answers: str) -> list:
    responses = []
    for answer in answers:
        responses += [NO_TOOL, answer]
    return responses


def hits(agent: Agent, query: str) -> list[tuple[str, int, str]]:
    return [(hit["thread_id"], hit["message_index"], hit["role"]) for hit in agent.search(query)]


@pytest.fixture
def agent(monkeypatch):
    monkeypatch.setattr(get_tool("query_database"), "func", lambda question, database=None: {
        "summary": "Rock has 1297 tracks.", "sql": "SELECT Name FROM Genre ORDER BY Name",
        "columns": ["Name"], "rows": [["Rock"]]})
    model = FakeChatModel(responses=[
        *chat("Dropout randomly zeroes activations during training."),
        *chat("La época es una pasada completa por los datos."),
        {"tool": "query_database", "args": {"question": "list the genres"}}, "Rock is first.",
        *chat("Batch normalisation rescales activations; dropout is a different regulariser, and dropout "
              "with batch normalisation needs care: dropout after batch normalisation shifts the variance."),
    ])
    agent = Agent(chat_model=model)
    for text, thread_id in (("what is dropout?", "t-dropout"), ("¿qué es una época?", "t-epoca"),
                            ("list the genres", "t-sql"), ("batch norm vs dropout", "t-both")):
        assert list(agent.run(text, thread_id))[-1]["type"] == "final"
    yield agent
    agent.close()


def test_finds_message_text_tool_names_and_sql(agent):
    assert ("t-dropout", 1, "assistant") in hits(agent, "zeroes activations")
    assert hits(agent, "query_database") == [("t-sql", 1, "tool")]
    assert hits(agent, "ORDER BY Name") == [("t-sql", 1, "tool")]
    found = agent.search("genres")[0]
    assert found["title"] == "list the genres" and "genres" in found["snippet"]


def test_ranks_by_bm25(agent):
    # The same word once: the short answer before the long one.
    assert [thread_id for thread_id, _, _ in hits(agent, "activations")] == ["t-dropout", "t-both"]
    # Every word must occur: only the thread that has them all.
    assert [thread_id for thread_id, _, _ in hits(agent, "dropout batch variance")] == ["t-both"]
    # Messages of one length: the one that says it more often first.
    store = agent.thread_store
    store.touch("t-rank", "ranking")
    thread_search.replace_thread(store, "t-rank", None, [
        (0, "user", "pooling layers and convolution kernels stride over images"),
        (1, "assistant", "pooling pooling layers pooling kernels stride over the images"),
    ])
    assert hits(agent, "pooling")[:2] == [("t-rank", 1, "assistant"), ("t-rank", 0, "user")]


def test_accents_unicode_and_prefixes(agent):
    assert ("t-epoca", 0, "user") in hits(agent, "época")
    assert ("t-epoca", 0, "user") in hits(agent, "epoca")  # accents folded
    assert ("t-dropout", 1, "assistant") in hits(agent, "activ")  # a word being typed


@pytest.mark.parametrize("query", ['"', '"dropout', "dropout*", "*", "AND", "dropout AND", "OR NOT",
                                   "NEAR(dropout", "col:dropout", "(", "^dropout", "-", "💥", "'; DROP TABLE x; --"])
def test_any_user_text_is_safe(agent, query):
    result = agent.search(query)
    assert isinstance(result, list)
    if query in ('"dropout', "dropout*", "^dropout"):  # the word itself, whatever marks surround it
        assert any(hit["thread_id"] == "t-dropout" for hit in result)


def test_empty_queries_and_limits(agent):
    assert agent.search("") == [] and agent.search("   ") == [] and agent.search("*") == []
    assert len(agent.search("dropout", limit=1)) == 1
    assert len(agent.search("dropout", limit=10_000)) <= thread_search.MAX_LIMIT


def test_follows_new_turns_branch_switches_and_deletes(agent):
    agent._chat_model = FakeChatModel(responses=chat("Tokenizers split text into pieces.", "Word pieces, in short."))
    assert hits(agent, "tokenizers") == []
    list(agent.run("what do tokenizers do?", "t-dropout"))
    assert ("t-dropout", 3, "assistant") in hits(agent, "tokenizers")
    list(agent.regenerate("t-dropout"))
    assert not any(thread_id == "t-dropout" and index == 3 for thread_id, index, _ in hits(agent, "tokenizers split"))
    assert ("t-dropout", 3, "assistant") in hits(agent, "word pieces")
    first = agent.branches("t-dropout")[0]["branch_id"]
    agent.switch_branch("t-dropout", first)
    assert ("t-dropout", 3, "assistant") in hits(agent, "tokenizers split")
    assert hits(agent, "word pieces") == []
    agent.delete_thread("t-dropout")
    assert all(thread_id != "t-dropout" for thread_id, _, _ in hits(agent, "dropout"))


def test_threads_written_before_the_index_are_indexed_on_open(agent):
    path = get_settings().checkpoint_db
    agent.close()
    # As a database from before the search: no index rows, no record of what was indexed.
    connection = sqlite3.connect(str(path))
    connection.execute("DELETE FROM taller_search")
    connection.execute("DELETE FROM taller_search_state")
    connection.commit()
    connection.close()
    reopened = Agent(chat_model=FakeChatModel())
    assert ("t-dropout", 1, "assistant") in hits(reopened, "zeroes")
    assert hits(reopened, "ORDER BY Name") == [("t-sql", 1, "tool")]
    assert thread_search.stale_threads(reopened.thread_store) == []
    reopened.close()


def test_match_expression_quotes_every_word():
    assert thread_search.match_expression('say "hi" AND bye*') == '"say"* """hi"""* "AND"* "bye*"*'
    assert thread_search.match_expression("* -- ()") is None
