"""Suggested next steps: in the final event after a tool result, in the request's language, never run."""

from __future__ import annotations

from taller.agent.session import Agent
from taller.agent.suggestions import MAX_SUGGESTIONS, suggest_next
from taller.llm import FakeChatModel
from taller.tools import get_tool
from taller.tools.registry import TOOLS


def texts(suggestions):
    return [item["text"] for item in suggestions]


def test_after_a_training_english_and_spanish():
    english = suggest_next("train_model", {"model": "vae"}, {"run_id": "vae-1", "model": "vae", "summary": "started"}, "en")
    assert texts(english) == ["how is the training going", "generate 16 samples with the vae", "show training runs"]
    assert english[1]["label"] == "Show samples"
    spanish = suggest_next("train_model", {"model": "autoencoder"}, {"model": "autoencoder", "summary": "ok"}, "es")
    assert texts(spanish) == ["¿cómo va el entrenamiento?", "reconstruye dígitos con el autoencoder",
                              "muestra los entrenamientos"]
    # A model that generates nothing: no samples to offer.
    assert "generate" not in " ".join(texts(suggest_next("train_model", {"model": "rnn"}, {"model": "rnn"}, "en")))


def test_after_sql_the_pipelines_two_questions():
    result = {"summary": "3 rows", "sql": "SELECT 1", "suggestions": ["And for Canada?", "And broken down by Genre.Name?"]}
    assert suggest_next("query_database", {"question": "customers in Brazil"}, result, "en") == [
        {"label": "And for Canada?", "text": "And for Canada?"},
        {"label": "And broken down by Genre.Name?", "text": "And broken down by Genre.Name?"}]


def test_errors_offers_and_registry_templates():
    assert suggest_next("query_database", {}, {"error": "no such table"}, "en") == []
    offer = {"summary": "no model", "offer": {"tool": "train_model", "args": {"model": "birnn"}}, "trained": False}
    assert texts(suggest_next("punctuate", {"text": "hola"}, offer, "es")) == ["entrena el birnn"]
    translated = suggest_next("translate", {"text": "I like cats"}, {"summary": "Me gustan los gatos", "source": "I like cats"}, "en")
    assert texts(translated) == ["translate 'I like cats' with greedy decoding"]
    more = suggest_next("generate_images", {"model": "vae", "count": None}, {"count": 8, "summary": "ok"}, "en")
    assert texts(more) == ["generate 8 more samples with the vae"]
    # A template whose field the call did not have is left out, not sent with a hole in it.
    assert suggest_next("translate", {}, {"summary": "x"}, "en") == []
    # Too long to repeat as a message: not offered.
    long_text = {"summary": "ok", "source": "word " * 200}
    assert suggest_next("translate", {"text": "word " * 200}, long_text, "en") == []
    tables = {"tables": [{"name": "Genre", "row_count": 25}, {"name": "Track", "row_count": 3503}]}
    assert texts(suggest_next("describe_database", {}, tables, "en")) == ["how many rows are in Track?"]


def test_every_registry_template_formats_and_is_short():
    for name, spec in TOOLS.items():
        for language, steps in spec.next_steps.items():
            assert language in ("en", "es"), name
            assert len(steps) <= MAX_SUGGESTIONS
            for label, template in steps:
                assert label.strip() and template.strip(), name


def test_the_final_event_carries_them_and_nothing_runs(monkeypatch):
    calls = []
    monkeypatch.setattr(get_tool("describe_database"), "func", lambda database=None: calls.append(database) or {
        "summary": "2 tables", "tables": [{"name": "Genre", "row_count": 25}, {"name": "Track", "row_count": 3503}]})
    model = FakeChatModel(responses=[{"tool": "describe_database", "args": {}}, "Two tables.",
                                     {"tool": "none"}, "Hola."])
    agent = Agent(chat_model=model)
    final = list(agent.run("¿qué tablas tiene la base de datos?", "t"))[-1]
    assert final["suggestions"] == [{"label": "Filas de Track", "text": "¿cuántas filas hay en Track?"}]
    assert calls == [None]  # the tool ran once; the suggestion did not run anything
    chat_final = list(agent.run("hola", "t"))[-1]
    assert chat_final["suggestions"] == []  # no tool, no suggestions
