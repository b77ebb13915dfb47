"""The ``openai`` backend: any server that speaks OpenAI's chat-completions API.

vLLM (``vllm serve MODEL``), llama.cpp's ``llama-server``, llama-cpp-python's
``python -m llama_cpp.server``, LM Studio and Ollama's ``/v1`` all answer ``POST
{openai_url}/chat/completions`` and ``GET {openai_url}/models``. This is what a team serving one
model to many users runs, so Taller talks to it with plain HTTP (httpx, already a dependency) and
no client library: every request and every error is under Taller's control.

Schema-constrained replies (:meth:`OpenAICompatibleChatModel.invoke_json`) differ by server, so
the ``openai_json_mode`` setting picks how they are asked for, and ``auto`` (the default) learns
it per server and model:

``json_schema``  ``response_format: {"type": "json_schema", "json_schema": {"name", "schema"}}`` —
                 OpenAI, vLLM, llama-server, Ollama's /v1 and LM Studio constrain decoding to it.
``json_object``  ``{"type": "json_object", "schema": ...}`` — llama-cpp-python's server refuses
                 ``json_schema`` but compiles this ``schema`` into a grammar; servers that ignore
                 ``schema`` still return one JSON object, and the schema is also in the prompt.
``prompt``       no ``response_format``: the schema is in the prompt only.

``auto`` starts with ``json_schema`` and steps down when the server refuses the request *because
of* ``response_format`` (its error names it); whatever the mode, the reply is parsed and checked
against the schema, so a server that ignored the constraint gives a :class:`ModelReplyError`,
never a wrong dict.

The API key comes from ``TALLER_OPENAI_API_KEY`` or ``OPENAI_API_KEY`` in the environment and is
never written to a file or printed. Errors name the URL and the reason (server down, model not
served, key refused, HTTP error, a reply that is not JSON), never the key or a whole reply.
"""

from __future__ import annotations

import json
import logging
import os
import re
import threading
from typing import Any, Iterator, Sequence
from urllib.parse import urlsplit

from langchain_core.callbacks import CallbackManagerForLLMRun
from langchain_core.language_models.chat_models import BaseChatModel
from langchain_core.messages import AIMessage, AIMessageChunk, BaseMessage
from langchain_core.outputs import ChatGeneration, ChatGenerationChunk, ChatResult
from pydantic import ConfigDict, Field, PrivateAttr, SecretStr

from taller.config import Settings, get_settings
from taller.errors import LLMUnavailableError, ModelReplyError

log = logging.getLogger(__name__)

KEY_VARIABLES = ("TALLER_OPENAI_API_KEY", "OPENAI_API_KEY")
JSON_MODES = ("auto", "json_schema", "json_object", "prompt")
# The order ``auto`` steps down in when a server refuses a response_format.
_WEAKER = {"json_schema": "json_object", "json_object": "prompt"}
# Words in an error that show the server refused the response_format itself (a context too long
# or a bad temperature must not make Taller give up constrained decoding for good).
_FORMAT_WORDS = ("response_format", "json_schema", "json_object", "schema")
# The most of a server's error message an exception carries (servers put tracebacks there).
_MESSAGE_CHARS = 240

# (url, model) -> the json mode that server accepted; shared by every model object in the process.
_learned_modes: dict[tuple[str, str], str] = {}
_learned_lock = threading.Lock()


class OpenAIServerError(LLMUnavailableError):
    """The OpenAI-compatible server did not answer, refused the request or answered nonsense.

    ``url`` is the endpoint, ``status`` the HTTP status (None when there was no answer at all).
    """

    def __init__(self, message: str, url: str, status: int | None = None) -> None:
        super().__init__(message)
        self.url = url
        self.status = status


class _FormatRefused(Exception):
    """The server refused the request's ``response_format`` (internal: ``auto`` steps down)."""

    def __init__(self, error: OpenAIServerError) -> None:
        super().__init__(str(error))
        self.error = error


def normalise_url(url: str) -> str:
    """``http://host:8000`` and ``http://host:8000/v1/`` both mean ``http://host:8000/v1``.

    Every supported server serves the API under ``/v1``; a URL with another path is kept as given
    (a proxy that mounts it elsewhere).
    """
    url = url.strip().rstrip("/")
    if "://" not in url:
        url = "http://" + url
    if urlsplit(url).path in ("", "/"):
        url += "/v1"
    return url


def api_key_from_environment(environ: dict[str, str] | None = None) -> tuple[str | None, str | None]:
    """``(key, variable it came from)``, or ``(None, None)``: the key is read, never stored."""
    environ = os.environ if environ is None else environ
    for name in KEY_VARIABLES:
        if environ.get(name):
            return environ[name], name
    return None, None


def _headers(api_key: str | None) -> dict[str, str]:
    headers = {"Content-Type": "application/json", "Accept": "application/json"}
    if api_key:
        headers["Authorization"] = f"Bearer {api_key}"
    return headers


def _clip(text: str, limit: int = _MESSAGE_CHARS) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[:limit] + "…"


def _error_message(body: bytes) -> str:
    """The reason a server gave: OpenAI's ``{"error": {"message"}}``, FastAPI's ``{"detail"}``,
    Ollama's ``{"error": "..."}``, or the start of a plain-text body."""
    try:
        data = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        text = body.decode("utf-8", "replace").strip()
        if text.startswith("<"):  # a proxy's or web server's HTML page: its size, not its markup
            return f"an HTML page of {len(body)} bytes instead of the API's JSON"
        return _clip(text)
    if isinstance(data, dict):
        error = data.get("error", data.get("detail", data.get("message")))
        if isinstance(error, dict):
            error = error.get("message") or error.get("msg") or json.dumps(error)
        if error is not None:
            return _clip(error if isinstance(error, str) else json.dumps(error))
    return _clip(json.dumps(data))


def _http_error(url: str, status: int, body: bytes, model: str | None, api_key: str | None) -> OpenAIServerError:
    """One clear error for an HTTP failure: what went wrong at which URL and how to fix it."""
    reason = _error_message(body)
    if status in (401, 403):
        key_note = ("the key from " + " or ".join(KEY_VARIABLES) if api_key
                    else f"no key was sent (set {KEY_VARIABLES[0]} or {KEY_VARIABLES[1]})")
        return OpenAIServerError(f"the server at {url} refused the API key (HTTP {status}): {key_note}. "
                                 f"Server said: {reason}", url, status)
    if status == 404 and model is not None:
        base = url.rsplit("/chat/completions", 1)[0]
        served = list_models(base, api_key).get("models") or []
        listing = ", ".join(served[:10]) + (" …" if len(served) > 10 else "") if served else "none listed"
        return OpenAIServerError(f"the server at {base} does not serve the model {model!r} (HTTP 404: {reason}); "
                                 f"it serves: {listing}. Set openai_model to one of them.", url, status)
    if status == 429:
        return OpenAIServerError(f"the server at {url} is rate-limiting Taller (HTTP 429): {reason}", url, status)
    return OpenAIServerError(f"the server at {url} answered HTTP {status}: {reason}", url, status)


def _unreachable(url: str, exc: Exception) -> OpenAIServerError:
    import httpx

    if isinstance(exc, httpx.TimeoutException):
        what = "did not answer in time"
    else:
        what = "does not answer"
    return OpenAIServerError(
        f"the OpenAI-compatible server at {url} {what} ({type(exc).__name__}). Start it (vLLM: "
        "`vllm serve MODEL`; llama.cpp: `llama-server -m FILE`; Ollama: `ollama serve`) or set "
        "openai_url to where it runs.", url, None)


def list_models(url: str, api_key: str | None = None, timeout: float = 3.0) -> dict[str, Any]:
    """``{"reachable", "models", "status", "error"}`` from ``GET {url}/models``; never raises."""
    import httpx

    endpoint = normalise_url(url) + "/models"
    try:
        response = httpx.get(endpoint, headers=_headers(api_key), timeout=timeout)
    except httpx.HTTPError as exc:
        return {"reachable": False, "models": [], "status": None, "error": str(_unreachable(endpoint, exc))}
    if response.status_code >= 400:
        error = _http_error(endpoint, response.status_code, response.content, None, api_key)
        return {"reachable": True, "models": [], "status": response.status_code, "error": str(error)}
    try:
        data = response.json()
        names = [str(item["id"]) for item in data.get("data", []) if isinstance(item, dict) and "id" in item]
    except (ValueError, AttributeError, TypeError):
        kind = response.headers.get("content-type", "unknown content type")
        return {"reachable": True, "models": [], "status": response.status_code,
                "error": f"{endpoint} did not answer with OpenAI's model list ({kind})"}
    return {"reachable": True, "models": names, "status": response.status_code, "error": None}


def serves(models: Sequence[str], wanted: str) -> bool:
    """Whether ``wanted`` is among ``models`` (Ollama lists ``llama3.1:latest`` for ``llama3.1``)."""
    return wanted in models or (":" not in wanted and f"{wanted}:latest" in models)


def to_openai_messages(messages: Sequence[BaseMessage]) -> list[dict[str, str]]:
    """LangChain messages as OpenAI chat messages (tool results become user turns: the agent
    writes its answers from a tool's summary, and some servers' templates reject a ``tool`` role
    without a matching call)."""
    roles = {"human": "user", "ai": "assistant", "system": "system", "tool": "user"}
    out = []
    for message in messages:
        content = message.content if isinstance(message.content, str) else json.dumps(message.content)
        out.append({"role": roles.get(message.type, "user"), "content": content})
    return out


def _with_schema_instruction(messages: list[dict[str, str]], schema: dict) -> list[dict[str, str]]:
    """Put the schema in the system prompt, for servers that do not constrain decoding to it.

    It joins the first system message (several chat templates refuse a system message anywhere
    but first) or becomes one."""
    note = ("Answer with one JSON object only, no prose, that matches this JSON schema:\n"
            + json.dumps(schema, ensure_ascii=False, separators=(",", ":")))
    out = [dict(m) for m in messages]
    if out and out[0]["role"] == "system":
        out[0]["content"] = out[0]["content"].rstrip() + "\n\n" + note
    else:
        out.insert(0, {"role": "system", "content": note})
    return out


def _schema_name(schema: dict) -> str:
    """OpenAI requires ``json_schema.name`` (letters, digits, ``_`` and ``-``, 64 at most)."""
    name = re.sub(r"[^A-Za-z0-9_-]+", "_", str(schema.get("title") or "taller_reply")).strip("_")
    return (name or "taller_reply")[:64]


def response_format(mode: str, schema: dict) -> dict[str, Any] | None:
    """The ``response_format`` a request in ``mode`` carries (None: the prompt only)."""
    if mode == "json_schema":
        return {"type": "json_schema", "json_schema": {"name": _schema_name(schema), "schema": schema}}
    if mode == "json_object":
        return {"type": "json_object", "schema": schema}
    return None


def check_against_schema(value: dict, schema: dict, text: str) -> dict:
    """``value`` when it matches ``schema``; else a :class:`ModelReplyError` naming the first
    mismatch (a server that ignored the constraint must not pass an invented tool or argument)."""
    import jsonschema

    try:
        jsonschema.validate(value, schema)
    except jsonschema.ValidationError as exc:
        where = "/".join(str(part) for part in exc.absolute_path) or "the reply"
        raise ModelReplyError(f"the reply does not match the schema at {where}: {_clip(exc.message, 160)}", text) from None
    except jsonschema.SchemaError as exc:  # Taller's own schema is wrong: say so, do not blame the model
        raise ValueError(f"invalid JSON schema for a constrained reply: {_clip(exc.message, 160)}") from None
    return value


class OpenAICompatibleChatModel(BaseChatModel):
    """A chat model served by any OpenAI-compatible server (vLLM, llama.cpp, LM Studio, Ollama)."""

    model_config = ConfigDict(arbitrary_types_allowed=True)

    base_url: str
    model: str
    api_key: SecretStr | None = Field(default=None, repr=False, exclude=True)
    temperature: float = 0.0
    max_tokens: int = 512
    timeout_s: float = 120.0
    json_mode: str = "auto"
    _client: Any = PrivateAttr(default=None)
    _client_lock: threading.Lock = PrivateAttr(default_factory=threading.Lock)

    @property
    def _llm_type(self) -> str:
        return "taller-openai-compatible"

    @property
    def model_name(self) -> str:
        return self.model

    @property
    def _identifying_params(self) -> dict[str, Any]:
        return {"base_url": self.base_url, "model": self.model, "temperature": self.temperature}

    # --- HTTP -------------------------------------------------------------------------------
    def _http(self) -> Any:
        import httpx

        with self._client_lock:
            if self._client is None:
                # A short connect timeout tells "server down" at once; the read timeout is long
                # because a busy server queues requests before the first token.
                self._client = httpx.Client(timeout=httpx.Timeout(self.timeout_s, connect=5.0))
            return self._client

    def _key(self) -> str | None:
        return self.api_key.get_secret_value() if self.api_key is not None else None

    def _payload(self, messages: list[dict[str, str]], max_tokens: int, temperature: float,
                 stop: list[str] | None = None, seed: int | None = None, stream: bool = False,
                 format_: dict[str, Any] | None = None) -> dict[str, Any]:
        payload: dict[str, Any] = {"model": self.model, "messages": messages, "max_tokens": max_tokens,
                                   "temperature": temperature}
        if stop:
            payload["stop"] = stop
        if seed is not None:
            payload["seed"] = seed
        if stream:
            payload["stream"] = True
        if format_ is not None:
            payload["response_format"] = format_
        return payload

    def _refusal(self, endpoint: str, status: int, body: bytes, payload: dict[str, Any]) -> Exception:
        error = _http_error(endpoint, status, body, self.model, self._key())
        refused_format = ("response_format" in payload and status in (400, 422, 500, 501)
                          and any(word in str(error).lower() for word in _FORMAT_WORDS))
        return _FormatRefused(error) if refused_format else error

    def _post(self, payload: dict[str, Any]) -> dict[str, Any]:
        import httpx

        endpoint = self.base_url + "/chat/completions"
        try:
            response = self._http().post(endpoint, json=payload, headers=_headers(self._key()))
        except httpx.HTTPError as exc:
            raise _unreachable(endpoint, exc) from None
        if response.status_code >= 400:
            raise self._refusal(endpoint, response.status_code, response.content, payload)
        try:
            data = response.json()
        except ValueError:
            kind = response.headers.get("content-type", "no content type")
            raise OpenAIServerError(f"the server at {endpoint} answered HTTP {response.status_code} with "
                                    f"{len(response.content)} bytes of {kind} that are not JSON; is openai_url "
                                    "the API's address (it usually ends in /v1)?", endpoint, response.status_code) from None
        choices = data.get("choices") if isinstance(data, dict) else None
        if not choices or not isinstance(choices[0], dict):
            if isinstance(data, dict) and data.get("error"):
                raise OpenAIServerError(f"the server at {endpoint} answered an error: "
                                        f"{_error_message(response.content)}", endpoint, response.status_code)
            raise OpenAIServerError(f"the server at {endpoint} answered JSON without choices; is it an "
                                    "OpenAI-compatible chat-completions API?", endpoint, response.status_code)
        return data

    def _stream_events(self, payload: dict[str, Any]) -> Iterator[dict[str, Any]]:
        """The parsed ``data:`` events of a streamed completion (server-sent events)."""
        import httpx

        endpoint = self.base_url + "/chat/completions"
        try:
            with self._http().stream("POST", endpoint, json=payload, headers=_headers(self._key())) as response:
                if response.status_code >= 400:
                    raise self._refusal(endpoint, response.status_code, response.read(), payload)
                for line in response.iter_lines():
                    line = line.strip()
                    if not line or line.startswith(":") or not line.startswith("data:"):
                        continue  # blank separators, comments (keep-alives), event names
                    data = line[5:].strip()
                    if data == "[DONE]":
                        return
                    try:
                        event = json.loads(data)
                    except ValueError:
                        raise OpenAIServerError(f"the server at {endpoint} streamed an event that is not JSON "
                                                f"({len(data)} characters)", endpoint, response.status_code) from None
                    if isinstance(event, dict) and event.get("error"):
                        # vLLM and llama-server report a failure mid-stream as an event.
                        raise OpenAIServerError(f"the server at {endpoint} stopped the stream with an error: "
                                                f"{_error_message(data.encode())}", endpoint, response.status_code)
                    if isinstance(event, dict):
                        yield event
        except httpx.HTTPError as exc:
            raise _unreachable(endpoint, exc) from None

    # --- LangChain chat model ---------------------------------------------------------------
    def _generate(self, messages: list[BaseMessage], stop: list[str] | None = None,
                  run_manager: CallbackManagerForLLMRun | None = None, **kwargs: Any) -> ChatResult:
        payload = self._payload(to_openai_messages(messages), kwargs.get("max_tokens", self.max_tokens),
                                kwargs.get("temperature", self.temperature), stop, kwargs.get("seed"))
        data = self._post(payload)
        choice = data["choices"][0]
        text = (choice.get("message") or {}).get("content") or ""
        usage = data.get("usage") or {}
        counted: dict[str, Any] = {}
        if isinstance(usage.get("prompt_tokens"), int) and isinstance(usage.get("completion_tokens"), int):
            counted["usage_metadata"] = {
                "input_tokens": usage["prompt_tokens"], "output_tokens": usage["completion_tokens"],
                "total_tokens": usage["prompt_tokens"] + usage["completion_tokens"]}
        message = AIMessage(content=text, response_metadata={
            "model_name": data.get("model", self.model), "finish_reason": choice.get("finish_reason")}, **counted)
        return ChatResult(generations=[ChatGeneration(message=message)])

    def _stream(self, messages: list[BaseMessage], stop: list[str] | None = None,
                run_manager: CallbackManagerForLLMRun | None = None, **kwargs: Any) -> Iterator[ChatGenerationChunk]:
        payload = self._payload(to_openai_messages(messages), kwargs.get("max_tokens", self.max_tokens),
                                kwargs.get("temperature", self.temperature), stop, kwargs.get("seed"), stream=True)
        for event in self._stream_events(payload):
            for choice in event.get("choices") or []:
                delta = choice.get("delta") or {}
                piece = delta.get("content") or ""
                if not piece:
                    continue
                chunk = ChatGenerationChunk(message=AIMessageChunk(content=piece))
                if run_manager:
                    run_manager.on_llm_new_token(piece, chunk=chunk)
                yield chunk

    # --- schema-constrained replies ---------------------------------------------------------
    def current_json_mode(self) -> str:
        """The mode the next constrained request uses (``auto`` resolved by what was learned)."""
        if self.json_mode != "auto":
            return self.json_mode
        with _learned_lock:
            return _learned_modes.get((self.base_url, self.model), "json_schema")

    def invoke_json(self, messages: Sequence[BaseMessage], schema: dict, max_tokens: int = 256,
                    temperature: float = 0.0, seed: int | None = None) -> dict:
        """A reply constrained to ``schema`` where the server can, checked against it always."""
        if self.json_mode not in JSON_MODES:
            raise ValueError(f"openai_json_mode {self.json_mode!r} is not one of {', '.join(JSON_MODES)}")
        plain = to_openai_messages(messages)
        mode = self.current_json_mode()
        while True:
            chat = plain if mode == "json_schema" else _with_schema_instruction(plain, schema)
            payload = self._payload(chat, max_tokens, temperature, seed=seed, format_=response_format(mode, schema))
            try:
                data = self._post(payload)
                break
            except _FormatRefused as refused:
                weaker = _WEAKER.get(mode) if self.json_mode == "auto" else None
                if weaker is None:
                    raise refused.error from None
                log.info("%s refused response_format %s; asking with %s from now on", self.base_url, mode, weaker)
                with _learned_lock:
                    _learned_modes[(self.base_url, self.model)] = weaker
                mode = weaker
        text = (data["choices"][0].get("message") or {}).get("content") or ""
        from taller.llm.chat import parse_json_object

        return check_against_schema(parse_json_object(text), schema, text)


def forget_learned_modes() -> None:
    """Forget which response_format each server accepted (tests; a server that was upgraded)."""
    with _learned_lock:
        _learned_modes.clear()


def openai_chat_model(settings: Settings | None = None, model: str | None = None,
                      probe_timeout: float | None = None) -> OpenAICompatibleChatModel:
    """The configured server's chat model; raises :class:`LLMUnavailableError` saying what to set.

    Without ``openai_model`` the server's first listed model is used (llama.cpp and vLLM serve
    one), which also checks that the server answers before the first question. ``probe_timeout``
    asks the server's model list even when the model is named, and gives up after that many
    seconds (``auto`` uses it to move on quickly to the other backends).
    """
    settings = settings or get_settings()
    if not settings.openai_url:
        raise LLMUnavailableError(
            "the openai backend needs the server's address: set openai_url (for example "
            "`taller config --set openai_url=http://127.0.0.1:8000/v1`, or TALLER_OPENAI_URL)")
    if settings.openai_json_mode not in JSON_MODES:
        raise LLMUnavailableError(f"openai_json_mode {settings.openai_json_mode!r} is not one of {', '.join(JSON_MODES)}")
    url = normalise_url(settings.openai_url)
    key, _ = api_key_from_environment()
    name = model or settings.openai_model
    if not name or probe_timeout is not None:
        status = list_models(url, key, timeout=probe_timeout or 3.0)
        if status["error"]:
            raise LLMUnavailableError(status["error"] if name else f"{status['error']} (openai_model is not set, "
                                      "so Taller asked the server which model it serves)")
        if not name and not status["models"]:
            raise LLMUnavailableError(f"the server at {url} lists no model; set openai_model")
        name = name or status["models"][0]
    return OpenAICompatibleChatModel(
        base_url=url, model=name, api_key=SecretStr(key) if key else None, temperature=settings.temperature,
        timeout_s=settings.openai_timeout_s, json_mode=settings.openai_json_mode)
