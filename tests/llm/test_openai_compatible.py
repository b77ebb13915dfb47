"""The ``openai`` backend against a replayed server: what Taller sends and what it does with replies.

A tiny HTTP server in the test (bound to port 0 on loopback) answers each request with the next
response of a script and keeps every request it received. The successful replies, the streamed
events and the ``json_schema`` refusal are recorded from llama-cpp-python's server
(``recorded/*.json``, written by ``record_exchanges.py``); the failures no local server can be made
to give on demand (a refused key, vLLM's unknown model, a proxy's HTML page, an error mid-stream)
are written here in each server's documented format.
"""

from __future__ import annotations

import contextlib
import json
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Iterator

import pytest
from langchain_core.callbacks import BaseCallbackHandler
from langchain_core.messages import AIMessage, HumanMessage, SystemMessage

from taller.config import get_settings
from taller.errors import LLMUnavailableError, ModelReplyError
from taller.llm import describe, get_chat_model, invoke_json
from taller.llm.openai_compatible import (OpenAICompatibleChatModel, OpenAIServerError, forget_learned_modes,
                                          normalise_url)

RECORDED = Path(__file__).parent / "recorded"
ROUTER_SCHEMA = {"type": "object", "properties": {"tool": {"type": "string", "enum": ["train_model", "translate", "none"]}},
                 "required": ["tool"]}
ROUTER_MESSAGES = [SystemMessage(content="Pick the tool that answers the request."),
                   HumanMessage(content="train the autoencoder")]


def recorded(name: str) -> dict[str, Any]:
    """The response part of a recorded exchange."""
    return json.loads((RECORDED / f"{name}.json").read_text(encoding="utf-8"))["response"]


def written(status: int, body: Any, content_type: str = "application/json") -> dict[str, Any]:
    """A response in the recorded shape, for failures written by hand."""
    return {"status": status, "content_type": content_type,
            "body": body if isinstance(body, str) else json.dumps(body)}


def completion(content: str) -> dict[str, Any]:
    """A chat completion with ``content``, built on the recorded one (same fields, new text)."""
    response = recorded("json_object")
    body = json.loads(response["body"])
    body["choices"][0]["message"]["content"] = content
    return {**response, "body": json.dumps(body)}


@contextlib.contextmanager
def replay(*responses: dict[str, Any]) -> Iterator[tuple[str, list[dict[str, Any]]]]:
    """A loopback server answering with ``responses`` in order; yields its /v1 URL and the requests."""
    script = list(responses)
    requests: list[dict[str, Any]] = []

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def _answer(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length) if length else b""
            requests.append({"method": self.command, "path": self.path, "headers": dict(self.headers),
                             "json": json.loads(raw) if raw else None})
            response = script.pop(0) if script else written(500, {"error": {"message": "replay: script ran out"}})
            if callable(response):  # answers from the request: a whole agent turn
                script.insert(0, response)
                response = response(requests[-1])
            payload = response["body"].encode("utf-8")
            self.send_response(response["status"])
            self.send_header("Content-Type", response["content_type"])
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        do_GET = do_POST = _answer

        def log_message(self, *args: Any) -> None:  # keep the test output clean
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/v1", requests
    finally:
        server.shutdown()
        server.server_close()


def closed_port() -> int:
    """A loopback port nothing listens on (bound, then released)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture(autouse=True)
def _no_key_and_fresh_modes(monkeypatch):
    for name in ("TALLER_OPENAI_API_KEY", "OPENAI_API_KEY"):
        monkeypatch.delenv(name, raising=False)
    forget_learned_modes()
    yield
    forget_learned_modes()


def model_at(url: str, **fields: Any) -> OpenAICompatibleChatModel:
    return OpenAICompatibleChatModel(base_url=url, model="qwen-test", timeout_s=10, **fields)


# --- chat and streaming ---------------------------------------------------------------------------

def test_chat_sends_model_and_messages_and_reads_the_recorded_reply():
    with replay(recorded("chat")) as (url, requests):
        reply = model_at(url).invoke([SystemMessage(content="Be brief."), HumanMessage(content="Say hello in Spanish."),
                                      AIMessage(content="Hola."), HumanMessage(content="Again.")], max_tokens=8)
    assert reply.content == "Hola"
    assert reply.usage_metadata == {"input_tokens": 37, "output_tokens": 1, "total_tokens": 38}
    assert reply.response_metadata["finish_reason"] == "stop"
    (sent,) = requests
    assert sent["method"] == "POST" and sent["path"] == "/v1/chat/completions"
    assert sent["json"]["model"] == "qwen-test" and sent["json"]["max_tokens"] == 8
    assert sent["json"]["temperature"] == 0.0 and "stream" not in sent["json"] and "response_format" not in sent["json"]
    assert [m["role"] for m in sent["json"]["messages"]] == ["system", "user", "assistant", "user"]
    assert sent["json"]["messages"][1]["content"] == "Say hello in Spanish."
    assert "Authorization" not in sent["headers"]  # no key in the environment, none sent


def test_streaming_yields_the_recorded_events_in_order():
    tokens: list[str] = []

    class Collect(BaseCallbackHandler):
        def on_llm_new_token(self, token: str, **kwargs: Any) -> None:
            tokens.append(token)

    with replay(recorded("chat_stream"), recorded("chat_stream")) as (url, requests):
        model = model_at(url)
        pieces = [chunk.message.content for chunk in model._stream([HumanMessage(content="Count from 1 to 3.")])]
        text = "".join(chunk.content for chunk in model.stream("Count from 1 to 3.", config={"callbacks": [Collect()]}))
    assert pieces == ["1", "2", "3"]  # the role-only and the empty final delta give no token
    assert text == "123" and tokens[:3] == ["1", "2", "3"]
    assert all(request["json"]["stream"] is True for request in requests)


def test_an_error_event_in_the_stream_is_an_error_naming_the_url():
    events = ('data: {"choices": [{"index": 0, "delta": {"content": "Hel"}}]}\n\n'
              'data: {"error": {"message": "the KV cache is full", "code": 500}}\n\n')
    with replay(written(200, events, "text/event-stream")) as (url, _):
        chunks = []
        with pytest.raises(OpenAIServerError, match="KV cache is full") as caught:
            for chunk in model_at(url).stream("hi"):
                chunks.append(chunk.content)
    assert chunks == ["Hel"] and url in str(caught.value)


def test_a_stream_event_that_is_not_json_is_refused_without_quoting_it():
    with replay(written(200, "data: <b>oops</b>\n\n", "text/event-stream")) as (url, _):
        with pytest.raises(OpenAIServerError, match="not JSON") as caught:
            list(model_at(url).stream("hi"))
    assert "<b>" not in str(caught.value)


# --- schema-constrained replies -------------------------------------------------------------------

def test_invoke_json_asks_json_schema_then_steps_down_to_json_object_for_llama_cpp_python():
    with replay(recorded("json_schema_refused"), recorded("json_object")) as (url, requests):
        model = model_at(url)
        assert invoke_json(model, ROUTER_MESSAGES, ROUTER_SCHEMA, max_tokens=24) == {"tool": "train_model"}
    first, second = (request["json"] for request in requests)
    assert first["response_format"] == {"type": "json_schema",
                                        "json_schema": {"name": "taller_reply", "schema": ROUTER_SCHEMA}}
    assert first["messages"][0] == {"role": "system", "content": "Pick the tool that answers the request."}
    assert second["response_format"] == {"type": "json_object", "schema": ROUTER_SCHEMA}
    # A server that ignores "schema" still reads it in the (first, only) system message.
    assert second["messages"][0]["role"] == "system" and len(second["messages"]) == 2
    assert json.dumps(ROUTER_SCHEMA, separators=(",", ":")) in second["messages"][0]["content"]
    assert model.current_json_mode() == "json_object"

    # Learned per server and model: the next decision goes straight to json_object.
    with replay(recorded("json_object")) as (other_url, _):
        assert model_at(other_url).current_json_mode() == "json_schema"
    model_again = model_at(url)
    assert model_again.current_json_mode() == "json_object"


def test_a_server_that_takes_json_schema_gets_the_messages_unchanged():
    with replay(completion('{"tool": "translate"}')) as (url, requests):
        reply = invoke_json(model_at(url), ROUTER_MESSAGES, ROUTER_SCHEMA, max_tokens=24)
    assert reply == {"tool": "translate"}
    (sent,) = requests
    assert sent["json"]["response_format"]["type"] == "json_schema"
    assert sent["json"]["messages"] == [{"role": "system", "content": "Pick the tool that answers the request."},
                                        {"role": "user", "content": "train the autoencoder"}]
    assert sent["json"]["max_tokens"] == 24


def test_a_server_without_any_response_format_gets_the_schema_in_the_prompt():
    lm_studio_like = written(400, {"error": "'response_format.type' must be 'json_schema'"})
    refuses_schema = written(400, {"error": {"message": "response_format json_schema is not supported"}})
    with replay(refuses_schema, lm_studio_like, completion('Sure: {"tool": "none"}')) as (url, requests):
        model = model_at(url)
        assert model.invoke_json(ROUTER_MESSAGES, ROUTER_SCHEMA) == {"tool": "none"}
    assert [r["json"].get("response_format", {}).get("type") for r in requests] == ["json_schema", "json_object", None]
    assert "JSON schema" in requests[2]["json"]["messages"][0]["content"]
    assert model.current_json_mode() == "prompt"


def test_sampling_settings_reach_the_server():
    with replay(completion('{"tool": "translate"}')) as (url, requests):
        invoke_json(model_at(url), ROUTER_MESSAGES, ROUTER_SCHEMA, max_tokens=40, temperature=0.7, seed=3)
    sent = requests[0]["json"]
    assert (sent["temperature"], sent["seed"], sent["max_tokens"]) == (0.7, 3, 40)


def test_a_reply_outside_the_schema_is_a_model_reply_error():
    with replay(completion('{"tool": "delete_everything"}')) as (url, _):
        with pytest.raises(ModelReplyError, match="tool") as caught:
            invoke_json(model_at(url), ROUTER_MESSAGES, ROUTER_SCHEMA)
    assert isinstance(caught.value, ValueError)  # the router turns ValueErrors into "no tool"
    assert caught.value.reply == '{"tool": "delete_everything"}'


def test_a_prose_reply_is_a_model_reply_error():
    with replay(completion("I would train the autoencoder.")) as (url, _):
        with pytest.raises(ModelReplyError, match="JSON object"):
            invoke_json(model_at(url), ROUTER_MESSAGES, ROUTER_SCHEMA)


def test_a_fixed_json_mode_never_steps_down():
    with replay(recorded("json_schema_refused")) as (url, requests):
        with pytest.raises(OpenAIServerError, match="HTTP 500") as caught:
            model_at(url, json_mode="json_schema").invoke_json(ROUTER_MESSAGES, ROUTER_SCHEMA)
    assert len(requests) == 1 and url in str(caught.value)
    assert len(str(caught.value)) < 600  # the server's traceback is clipped


def test_an_error_unrelated_to_the_format_does_not_change_the_mode():
    too_long = written(400, {"object": "error", "message": "This model's maximum context length is 1024 tokens.",
                             "type": "BadRequestError", "code": 400})
    with replay(too_long) as (url, requests):
        model = model_at(url)
        with pytest.raises(OpenAIServerError, match="maximum context length"):
            model.invoke_json(ROUTER_MESSAGES, ROUTER_SCHEMA)
    assert len(requests) == 1 and model.current_json_mode() == "json_schema"


# --- failures: clear errors that name the URL -----------------------------------------------------

def test_a_server_error_names_the_url_and_the_reason():
    with replay(written(500, {"error": {"message": "CUDA out of memory", "type": "internal_server_error"}})) as (url, _):
        with pytest.raises(OpenAIServerError) as caught:
            model_at(url).invoke("hi")
    message = str(caught.value)
    assert f"{url}/chat/completions" in message and "HTTP 500" in message and "CUDA out of memory" in message
    assert caught.value.status == 500 and isinstance(caught.value, LLMUnavailableError)


def test_a_reply_that_is_not_json_names_the_url_not_the_page():
    page = "<html><body>502 Bad Gateway from the corporate proxy</body></html>"
    with replay(written(200, page, "text/html")) as (url, _):
        with pytest.raises(OpenAIServerError) as caught:
            model_at(url).invoke("hi")
    message = str(caught.value)
    assert url in message and "text/html" in message and "not JSON" in message and "/v1" in message
    assert "Bad Gateway" not in message


def test_an_html_error_page_is_described_not_quoted():
    page = "<html><head><title>502 Bad Gateway</title></head><body>nginx</body></html>"
    with replay(written(502, page, "text/html")) as (url, _):
        with pytest.raises(OpenAIServerError) as caught:
            model_at(url).invoke("hi")
    message = str(caught.value)
    assert "HTTP 502" in message and f"an HTML page of {len(page)} bytes" in message and "nginx" not in message


def test_json_without_choices_is_refused():
    with replay(written(200, {"result": "ok"})) as (url, _):
        with pytest.raises(OpenAIServerError, match="without choices"):
            model_at(url).invoke("hi")


def test_a_refused_key_says_so_and_never_shows_it(monkeypatch):
    monkeypatch.setenv("TALLER_OPENAI_API_KEY", "sk-test-secret-123")
    monkeypatch.setenv("TALLER_BACKEND", "openai")
    refused = written(401, {"error": {"message": "Incorrect API key provided: sk-tes*****123.",
                                      "type": "invalid_request_error", "code": "invalid_api_key"}})
    with replay(refused) as (url, requests):
        monkeypatch.setenv("TALLER_OPENAI_URL", url)
        monkeypatch.setenv("TALLER_OPENAI_MODEL", "qwen-test")
        model = get_chat_model(settings=get_settings(reload=True))
        assert "sk-test-secret-123" not in repr(model) and "sk-test-secret-123" not in model.model_dump_json()
        with pytest.raises(OpenAIServerError) as caught:
            model.invoke("hi")
    assert requests[0]["headers"]["Authorization"] == "Bearer sk-test-secret-123"
    message = str(caught.value)
    assert "refused the API key" in message and "TALLER_OPENAI_API_KEY" in message and url in message
    assert "sk-test-secret-123" not in message and caught.value.status == 401


def test_an_unknown_model_lists_what_the_server_serves():
    vllm_not_found = written(404, {"object": "error", "message": "The model `llama3` does not exist.",
                                   "type": "NotFoundError", "param": None, "code": 404})
    with replay(vllm_not_found, recorded("models")) as (url, requests):
        model = OpenAICompatibleChatModel(base_url=url, model="llama3", timeout_s=10)
        with pytest.raises(OpenAIServerError) as caught:
            model.invoke("hi")
    message = str(caught.value)
    assert "does not serve the model 'llama3'" in message and "qwen-test" in message and url in message
    assert [r["path"] for r in requests] == ["/v1/chat/completions", "/v1/models"]


def test_a_server_that_is_down_is_named_with_how_to_start_one():
    url = f"http://127.0.0.1:{closed_port()}/v1"
    with pytest.raises(OpenAIServerError) as caught:
        model_at(url).invoke("hi")
    message = str(caught.value)
    assert f"{url}/chat/completions does not answer" in message and "vllm serve" in message
    assert caught.value.status is None


# --- selection and settings -----------------------------------------------------------------------

def test_normalise_url():
    assert normalise_url("http://gpu:8000") == "http://gpu:8000/v1"
    assert normalise_url("gpu:8000/v1/") == "http://gpu:8000/v1"
    assert normalise_url("https://proxy.example/llm/api") == "https://proxy.example/llm/api"


def test_openai_backend_asks_the_server_for_its_model_when_none_is_set(monkeypatch):
    monkeypatch.setenv("TALLER_BACKEND", "openai")
    with replay(recorded("models"), recorded("chat")) as (url, requests):
        monkeypatch.setenv("TALLER_OPENAI_URL", url.removesuffix("/v1"))  # the /v1 is added
        model = get_chat_model(settings=get_settings(reload=True))
        assert describe(model) == {"backend": "openai", "model": "qwen-test"}
        assert model.invoke("Say hello in Spanish, one word.").content == "Hola"
    assert [r["path"] for r in requests] == ["/v1/models", "/v1/chat/completions"]
    assert requests[1]["json"]["model"] == "qwen-test"


def test_openai_backend_without_a_url_says_what_to_set(monkeypatch):
    monkeypatch.setenv("TALLER_BACKEND", "openai")
    with pytest.raises(LLMUnavailableError, match="openai_url"):
        get_chat_model(settings=get_settings(reload=True))


def test_an_unknown_json_mode_is_refused_naming_the_choices(monkeypatch):
    monkeypatch.setenv("TALLER_BACKEND", "openai")
    monkeypatch.setenv("TALLER_OPENAI_URL", "http://127.0.0.1:9/v1")
    monkeypatch.setenv("TALLER_OPENAI_JSON_MODE", "grammar")
    with pytest.raises(LLMUnavailableError, match="'grammar' is not one of auto, json_schema, json_object, prompt"):
        get_chat_model(settings=get_settings(reload=True))


def test_openai_backend_with_its_server_down_names_the_url(monkeypatch):
    url = f"http://127.0.0.1:{closed_port()}/v1"
    monkeypatch.setenv("TALLER_BACKEND", "openai")
    monkeypatch.setenv("TALLER_OPENAI_URL", url)
    with pytest.raises(LLMUnavailableError, match=f"{url}/models does not answer"):
        get_chat_model(settings=get_settings(reload=True))


def test_auto_uses_a_configured_server_and_moves_on_when_it_is_down(monkeypatch):
    monkeypatch.setenv("TALLER_BACKEND", "auto")
    monkeypatch.setenv("OLLAMA_HOST", f"http://127.0.0.1:{closed_port()}")
    monkeypatch.setenv("TALLER_OPENAI_MODEL", "qwen-test")
    with replay(recorded("models")) as (url, requests):
        monkeypatch.setenv("TALLER_OPENAI_URL", url)
        assert describe(get_chat_model(settings=get_settings(reload=True)))["backend"] == "openai"
    assert [r["path"] for r in requests] == ["/v1/models"]  # auto checks the server answers first
    monkeypatch.setenv("TALLER_OPENAI_URL", f"http://127.0.0.1:{closed_port()}/v1")
    # Down: auto goes on to Ollama (down too) and the embedded model (none in the test's home).
    with pytest.raises(LLMUnavailableError, match="no LLM available"):
        get_chat_model(settings=get_settings(reload=True))


def test_the_settings_hold_no_key(monkeypatch):
    monkeypatch.setenv("TALLER_OPENAI_API_KEY", "sk-test-secret-123")
    settings = get_settings(reload=True)
    assert "sk-test-secret-123" not in json.dumps(settings.as_dict(), default=str)
    assert {"openai_url", "openai_model", "openai_json_mode", "openai_timeout_s"} <= set(settings.as_dict())


def test_a_whole_agent_turn_through_the_backend(monkeypatch):
    """The graph on the openai backend: the router's constrained choice, then a streamed answer."""
    from taller.agent.session import Agent

    stream = recorded("chat_stream")
    hello = stream["body"].replace('"content": "1"', '"content": "¡Hola"').replace('"content": "2"', '"content": "!"')
    hello = hello.replace('"content": "3"', '"content": ""')

    def server(request: dict[str, Any]) -> dict[str, Any]:
        body = request["json"] or {}
        if request["path"].endswith("/models"):
            return recorded("models")
        if "response_format" in body:
            return completion('{"tool": "none"}')
        return {**stream, "body": hello} if body.get("stream") else completion("¡Hola!")

    monkeypatch.setenv("TALLER_BACKEND", "openai")
    with replay(server) as (url, requests):
        monkeypatch.setenv("TALLER_OPENAI_URL", url)
        get_settings(reload=True)
        events = list(Agent().run("Say hello in Spanish, one word."))
    final = events[-1]
    assert final["type"] == "final", events[-3:]
    assert (final["backend"], final["model"]) == ("openai", "qwen-test") and "Hola" in final["text"]
    constrained = [r["json"] for r in requests if r["json"] and "response_format" in r["json"]]
    assert constrained and constrained[0]["response_format"]["type"] == "json_schema"
    assert constrained[0]["response_format"]["json_schema"]["schema"]["properties"]["tool"]["enum"]
    assert requests[-1]["json"]["messages"][-1] == {"role": "user", "content": "Say hello in Spanish, one word."}
    assert [r["path"] for r in requests] == ["/v1/models", "/v1/chat/completions", "/v1/chat/completions"]
    assert requests[-1]["json"]["stream"] is True  # the answer is streamed token by token


# --- taller doctor --------------------------------------------------------------------------------

def test_doctor_reports_url_model_answer_and_constraint(monkeypatch):
    from taller.doctor import check_openai

    with replay(recorded("models"), recorded("chat"), completion('{"yes": true}')) as (url, requests):
        monkeypatch.setenv("TALLER_OPENAI_URL", url)
        row = check_openai(get_settings(reload=True))
    assert row["status"] == "ok", row
    assert url in row["detail"] and "model qwen-test" in row["detail"] and "answers" in row["detail"]
    assert "json_schema" in row["detail"] and "no API key" in row["detail"]
    assert requests[1]["json"]["max_tokens"] == 2


def test_doctor_says_why_the_server_does_not_answer(monkeypatch):
    from taller.doctor import check_openai

    url = f"http://127.0.0.1:{closed_port()}/v1"
    monkeypatch.setenv("TALLER_OPENAI_URL", url)
    monkeypatch.setenv("TALLER_BACKEND", "openai")
    row = check_openai(get_settings(reload=True))
    assert row["status"] == "missing" and url in row["detail"] and row["fix"]
    monkeypatch.delenv("TALLER_OPENAI_URL")
    row = check_openai(get_settings(reload=True))
    assert row["status"] == "missing" and "openai_url" in row["fix"]
    monkeypatch.setenv("TALLER_BACKEND", "fake")
    assert check_openai(get_settings(reload=True))["status"] == "ok"  # not configured, not needed


def test_doctor_reports_a_refused_key(monkeypatch):
    from taller.doctor import check_openai

    with replay(written(401, {"error": {"message": "invalid api key"}})) as (url, _):
        monkeypatch.setenv("TALLER_OPENAI_URL", url)
        row = check_openai(get_settings(reload=True))
    assert row["status"] == "warn" and "refused the API key" in row["detail"]
    assert "TALLER_OPENAI_API_KEY" in row["fix"]
