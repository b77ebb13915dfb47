"""The embedded model's constrained replies: decoded freely first, under the grammar only when needed.

A scripted stand-in for ``llama_cpp.Llama`` records every completion asked for, so these tests
see whether the grammar was used, and what came back, without a model. The last test compares
both ways of decoding on the real model when it is installed.
"""

from __future__ import annotations

import importlib.util
import json

import pytest
from langchain_core.messages import HumanMessage, SystemMessage

from taller.errors import ModelReplyError
from taller.llm.chat import EmbeddedChatModel, grammar_prefix, grammar_reply
from tests.real_model import installed_model

TOOL_SCHEMA = {"type": "object", "properties": {"tool": {"type": "string", "enum": ["translate", "none"]}},
               "required": ["tool"]}
ARGS_SCHEMA = {"type": "object", "required": ["text"],
               "properties": {"text": {"type": "string"}, "beam_size": {"type": "integer", "minimum": 1},
                              "values": {"type": "array", "items": {"type": "number"}}}}
MESSAGES = [SystemMessage(content="Pick a tool."), HumanMessage(content="translate 'hello'")]


class ScriptedLlama:
    """Answers ``create_chat_completion`` like llama-cpp-python: a free reply (streamed, in
    pieces) and the reply under the grammar, and records the calls."""

    def __init__(self, free: list[str], finish: str = "stop", constrained: str = "") -> None:
        self.free, self.finish, self.constrained = free, finish, constrained
        self.calls: list[dict] = []
        self.streamed = 0

    def create_chat_completion(self, **kwargs):
        self.calls.append(kwargs)
        if kwargs.get("stream"):
            return self._stream()
        return {"choices": [{"message": {"content": self.constrained}, "finish_reason": "stop"}]}

    def _stream(self):
        yield {"choices": [{"delta": {"role": "assistant"}, "finish_reason": None}]}
        for number, piece in enumerate(self.free, 1):
            self.streamed += 1
            last = number == len(self.free)
            yield {"choices": [{"delta": {"content": piece}, "finish_reason": self.finish if last else None}]}


def model_with(monkeypatch, llama: ScriptedLlama) -> EmbeddedChatModel:
    model = EmbeddedChatModel(model_path="unused.gguf")
    monkeypatch.setattr(EmbeddedChatModel, "_llama", lambda self: llama)
    return model


def grammar_calls(llama: ScriptedLlama) -> list[dict]:
    return [call for call in llama.calls if "response_format" in call]


# --- which free replies the grammar would have written ---------------------------------------

@pytest.mark.parametrize("text", [
    '{"tool": "translate"}',
    '{"tool":"translate"}',
    '{"text": "I don\'t know", "beam_size": 3}',
    '{"text": "año", "values": [1, 2.5, 3]}',
])
def test_a_one_line_reply_in_schema_order_is_taken(text):
    schema = TOOL_SCHEMA if "tool" in text else ARGS_SCHEMA
    assert grammar_reply(text, schema) == json.loads(text)


@pytest.mark.parametrize("text, why", [
    ('```json\n{"tool": "translate"}\n```', "a code fence"),
    ('{\n  "tool": "translate"\n}', "pretty-printed over lines"),
    ('{"tool": "train_model"}', "a value outside the enum"),
    ('{"beam_size": 3, "text": "hi"}', "the required key after an optional one"),
    ('{"text": "hi", "values": [1], "beam_size": 3}', "optional keys out of the schema's order"),
    ('{"text": "hi", "model": "vae"}', "a key the schema lacks"),
    ('{"text": "hi", "beam_size": 0}', "below the minimum"),
    ('{"text": "caf\\u00e9"}', "an escape the grammar would not have chosen to write"),
    ('{"text":  "hi"}', "two spaces where the grammar allows one"),
    ('{"text": "hi"} thanks', "words after the object"),
])
def test_a_reply_the_grammar_may_not_have_written_is_left_to_the_grammar(text, why):
    assert grammar_reply(text, ARGS_SCHEMA if "tool" not in text else TOOL_SCHEMA) is None, why


def test_an_object_the_schema_does_not_spell_out_is_left_to_the_grammar():
    schema = {"type": "object", "properties": {"filters": {"anyOf": [{"type": "object"}, {"type": "null"}]}}}
    assert grammar_reply('{"filters": {"country": "France"}}', schema) is None
    assert grammar_reply('{"filters": null}', schema) == {"filters": None}


def test_a_reply_cut_inside_a_string_is_a_prefix_of_one_the_grammar_takes():
    assert grammar_prefix('{"text": "I was say', ARGS_SCHEMA)
    assert grammar_prefix('{"text": "hi", "values": [1, 2', ARGS_SCHEMA)
    assert not grammar_prefix('{"text": "hi", "mod', ARGS_SCHEMA)  # a key the schema lacks
    assert not grammar_prefix('{"text": "I said \\', ARGS_SCHEMA)  # cut inside an escape
    assert not grammar_prefix('Sure! {"text": "hi', ARGS_SCHEMA)


# --- the model decodes freely first ------------------------------------------------------------

def test_a_free_reply_in_the_grammar_is_returned_without_decoding_again(monkeypatch):
    llama = ScriptedLlama(free=['{"', 'tool', '": "', 'translate', '"}'])
    assert model_with(monkeypatch, llama).invoke_json(MESSAGES, TOOL_SCHEMA, max_tokens=20) == {"tool": "translate"}
    assert len(llama.calls) == 1 and not grammar_calls(llama)
    assert llama.calls[0]["temperature"] == 0.0 and llama.calls[0]["max_tokens"] == 20


def test_a_fenced_reply_stops_at_its_first_piece_and_the_grammar_decodes(monkeypatch):
    llama = ScriptedLlama(free=["```", "json", "\n{", '"tool": "none"}', "\n```"], constrained='{"tool": "none"}')
    assert model_with(monkeypatch, llama).invoke_json(MESSAGES, TOOL_SCHEMA) == {"tool": "none"}
    assert llama.streamed == 1  # the free decoding was abandoned after "```", not run to its end
    (call,) = grammar_calls(llama)
    assert call["response_format"] == {"type": "json_object", "schema": TOOL_SCHEMA}


def test_a_free_reply_outside_the_schema_gets_the_grammars_reply(monkeypatch):
    llama = ScriptedLlama(free=['{"tool": "train_model"}'], constrained='{"tool": "translate"}')
    assert model_with(monkeypatch, llama).invoke_json(MESSAGES, TOOL_SCHEMA) == {"tool": "translate"}
    assert len(grammar_calls(llama)) == 1


def test_a_reply_cut_by_the_token_limit_fails_as_the_grammars_would(monkeypatch):
    cut = '{"text": "It was the best of times, it was'
    llama = ScriptedLlama(free=[cut[:20], cut[20:]], finish="length")
    with pytest.raises(ModelReplyError) as error:
        model_with(monkeypatch, llama).invoke_json(MESSAGES, ARGS_SCHEMA, max_tokens=12)
    assert error.value.reply == cut  # what callers salvage: the same text the grammar would have cut
    assert not grammar_calls(llama)


def test_a_sampled_reply_goes_straight_to_the_grammar(monkeypatch):
    llama = ScriptedLlama(free=['{"tool": "none"}'], constrained='{"tool": "translate"}')
    reply = model_with(monkeypatch, llama).invoke_json(MESSAGES, TOOL_SCHEMA, temperature=0.7, seed=3)
    assert reply == {"tool": "translate"}
    assert len(llama.calls) == 1 and llama.calls[0]["seed"] == 3 and llama.calls[0]["temperature"] == 0.7


# --- the real model: both ways give the same reply -------------------------------------------------

@pytest.mark.real_llm
@pytest.mark.skipif(importlib.util.find_spec("llama_cpp") is None, reason="llama-cpp-python is not installed")
@pytest.mark.skipif(installed_model() is None, reason="no embedded GGUF model installed (run `taller model install`)")
def test_free_first_decoding_gives_the_grammars_reply_on_the_real_model():
    from taller.agent.followup import REWRITE_SCHEMA, REWRITE_SYSTEM

    model = EmbeddedChatModel(model_path=str(installed_model()), n_ctx=2048, n_threads=2)
    cases = [  # one reply the model writes on one line, one it fences and spreads over lines
        (REWRITE_SYSTEM, REWRITE_SCHEMA, "Previous request: translate 'good morning'\nTool used for it: "
         "translate({\"text\": \"good morning\"})\nLast message: and 'see you tomorrow'?\nStandalone:"),
        ("Fill the arguments from the request. Reply with JSON.", ARGS_SCHEMA,
         "translate \"I don't like it\" with a beam of 3"),
    ]
    for system, schema, user in cases:
        free = model.invoke_json([SystemMessage(content=system), HumanMessage(content=user)], schema, max_tokens=60)
        constrained = model._llama().create_chat_completion(
            messages=[{"role": "system", "content": system}, {"role": "user", "content": user}],
            temperature=0.0, max_tokens=60, response_format={"type": "json_object", "schema": schema})
        assert free == json.loads(constrained["choices"][0]["message"]["content"])


def test_loaded_models_are_closed_before_the_interpreter_tears_down(monkeypatch):
    """Left to the teardown, llama-cpp-python's __del__ finds its library gone and prints a
    TypeError at every exit; the exit hook closes the models while it is still there."""
    from taller.llm import chat

    closed = []

    class Loaded:
        def close(self):
            closed.append(self)

    model = Loaded()
    monkeypatch.setattr(chat, "_llama_cache", {("m.gguf", 4096, 2): model})
    chat.close_embedded_models()
    assert closed == [model] and chat._llama_cache == {}
