"""LLM backends behind one function, :func:`get_chat_model`, that returns a LangChain chat model.

* ``ollama``   — ``langchain_ollama.ChatOllama`` on ``OLLAMA_HOST`` (default model ``llama3.1``).
* ``embedded`` — :class:`EmbeddedChatModel`, a GGUF model run in-process by ``llama-cpp-python``.
* ``fake``     — :class:`FakeChatModel`, a scripted model for tests (no LLM at all).
* ``openai``   — any OpenAI-compatible server at ``openai_url`` (vLLM, llama.cpp, LM Studio,
  Ollama's ``/v1``): :mod:`taller.llm.openai_compatible`.
* ``auto``     — the OpenAI-compatible server when ``openai_url`` is set and it answers, else
  Ollama when the server answers, else the embedded model.

Small local models need their output constrained to pick a tool reliably, so every backend
also answers :func:`invoke_json` — a reply forced to match a JSON schema (Ollama's ``format``,
llama.cpp's JSON-schema grammar, a scripted dict for the fake model). The embedded model decodes
greedily without the grammar first and keeps that reply when the grammar would have written it
too (:func:`grammar_reply`): the same reply, without the grammar's cost on every token.

Tools that need the LLM (video answers, SQL generation) get their model from
:func:`get_chat_model` and pass it to the domain library, so a test that installs a fake model
with :func:`use_chat_model` drives the whole stack.
"""

from __future__ import annotations

import atexit
import contextlib
import json
import os
import re
import threading
from pathlib import Path
from typing import Any, Iterator, Sequence

from langchain_core.callbacks import CallbackManagerForLLMRun
from langchain_core.language_models.chat_models import BaseChatModel
from langchain_core.messages import AIMessage, AIMessageChunk, BaseMessage
from langchain_core.outputs import ChatGeneration, ChatGenerationChunk, ChatResult
from pydantic import ConfigDict, Field, PrivateAttr

from taller.config import Settings, get_settings
from taller.errors import LLMUnavailableError, ModelReplyError
# llama.cpp's chat API takes OpenAI-format messages: one conversion for both backends.
from taller.llm.openai_compatible import to_openai_messages

BACKENDS = ("auto", "ollama", "embedded", "fake", "openai")


# --- fake ---------------------------------------------------------------------------------------

class FakeChatModel(BaseChatModel):
    """A scripted chat model: each call takes the next response from ``responses``.

    A response is a string (a text answer, streamed word by word), a dict (the JSON answer of a
    schema-constrained call), an ``AIMessage``, or a callable that receives the messages and
    returns one of those. When the script runs out, ``default`` answers (or an error is raised
    when ``default`` is None), so a test sees exactly how many calls were made.
    """

    model_config = ConfigDict(arbitrary_types_allowed=True)

    responses: list[Any] = Field(default_factory=list)
    default: Any = None
    model_name: str = "fake"
    # Seconds to wait between streamed tokens (lets tests cancel mid-stream).
    token_delay: float = 0.0
    _calls: list[list[BaseMessage]] = PrivateAttr(default_factory=list)
    _lock: threading.Lock = PrivateAttr(default_factory=threading.Lock)

    @property
    def _llm_type(self) -> str:
        return "taller-fake"

    @property
    def calls(self) -> list[list[BaseMessage]]:
        """Every list of messages the model was called with, in order."""
        return self._calls

    def _next(self, messages: list[BaseMessage]) -> Any:
        with self._lock:
            self._calls.append(list(messages))
            if self.responses:
                response = self.responses.pop(0)
            elif self.default is not None:
                response = self.default
            else:
                raise RuntimeError("FakeChatModel: the script has no response left")
        if callable(response) and not isinstance(response, BaseMessage):
            response = response(list(messages))
        return response

    @staticmethod
    def _as_message(response: Any) -> AIMessage:
        if isinstance(response, AIMessage):
            return response
        if isinstance(response, dict):
            return AIMessage(content=json.dumps(response))
        return AIMessage(content=str(response))

    def _generate(self, messages: list[BaseMessage], stop: list[str] | None = None,
                  run_manager: CallbackManagerForLLMRun | None = None, **kwargs: Any) -> ChatResult:
        return ChatResult(generations=[ChatGeneration(message=self._as_message(self._next(messages)))])

    def _stream(self, messages: list[BaseMessage], stop: list[str] | None = None,
                run_manager: CallbackManagerForLLMRun | None = None, **kwargs: Any) -> Iterator[ChatGenerationChunk]:
        import time

        message = self._as_message(self._next(messages))
        text = message.content if isinstance(message.content, str) else json.dumps(message.content)
        for piece in re.findall(r"\S+\s*|\s+", text) or [""]:
            if self.token_delay:
                time.sleep(self.token_delay)
            chunk = ChatGenerationChunk(message=AIMessageChunk(content=piece))
            if run_manager:
                run_manager.on_llm_new_token(piece, chunk=chunk)
            yield chunk

    def invoke_json(self, messages: Sequence[BaseMessage], schema: dict, max_tokens: int = 256,
                    temperature: float = 0.0, seed: int | None = None) -> dict:
        response = self._next(list(messages))
        if isinstance(response, dict):
            return response
        return parse_json_object(self._as_message(response).content)


# --- embedded (llama.cpp) -------------------------------------------------------------------------

_llama_cache: dict[tuple, Any] = {}
_llama_lock = threading.Lock()


def _load_llama(path: str, n_ctx: int, n_threads: int) -> Any:
    """Load a GGUF model once per process; loading takes seconds and hundreds of MB."""
    key = (path, n_ctx, n_threads)
    with _llama_lock:
        if key not in _llama_cache:
            try:
                from llama_cpp import Llama
            except ImportError as exc:
                raise LLMUnavailableError(
                    "the embedded backend needs llama-cpp-python: pip install 'taller[embedded]' "
                    "(it compiles llama.cpp, about 15 minutes on 2 cores)"
                ) from exc
            model = Llama(model_path=path, n_ctx=n_ctx, n_threads=n_threads or None, verbose=False, seed=0)
            try:
                # Keep the evaluated state of recent prompts: the router's system prompt is the
                # same on every call, so its prefill (most of the latency on a CPU) is paid once.
                from llama_cpp import LlamaRAMCache

                model.set_cache(LlamaRAMCache(capacity_bytes=256 << 20))
            except ImportError:  # older llama-cpp-python: prefix reuse of the last prompt only
                pass
            if not _llama_cache:
                atexit.register(close_embedded_models)
            _llama_cache[key] = model
        return _llama_cache[key]


def close_embedded_models() -> None:
    """Free the loaded GGUF models. Runs at exit, while llama-cpp-python can still free them:
    left to the interpreter's teardown, ``Llama.__del__`` finds its library half unloaded and
    prints a TypeError on every exit."""
    with _llama_lock:
        models = list(_llama_cache.values())
        _llama_cache.clear()
    for model in models:
        try:
            model.close()
        except Exception:  # an older llama-cpp-python without close(): the teardown frees it
            pass




class EmbeddedChatModel(BaseChatModel):
    """A GGUF instruct model run in-process by llama-cpp-python (no server, no network)."""

    model_path: str
    n_ctx: int = 4096
    n_threads: int = 0
    temperature: float = 0.0
    max_tokens: int = 512

    @property
    def _llm_type(self) -> str:
        return "taller-llama-cpp"

    @property
    def model_name(self) -> str:
        return Path(self.model_path).name

    def _llama(self) -> Any:
        return _load_llama(self.model_path, self.n_ctx, self.n_threads or (os.cpu_count() or 2))

    def _generate(self, messages: list[BaseMessage], stop: list[str] | None = None,
                  run_manager: CallbackManagerForLLMRun | None = None, **kwargs: Any) -> ChatResult:
        out = self._llama().create_chat_completion(
            messages=to_openai_messages(messages), temperature=self.temperature,
            max_tokens=kwargs.get("max_tokens", self.max_tokens), stop=stop)
        text = out["choices"][0]["message"]["content"] or ""
        return ChatResult(generations=[ChatGeneration(message=AIMessage(content=text))])

    def _stream(self, messages: list[BaseMessage], stop: list[str] | None = None,
                run_manager: CallbackManagerForLLMRun | None = None, **kwargs: Any) -> Iterator[ChatGenerationChunk]:
        for part in self._llama().create_chat_completion(
                messages=to_openai_messages(messages), temperature=self.temperature,
                max_tokens=kwargs.get("max_tokens", self.max_tokens), stop=stop, stream=True):
            piece = part["choices"][0]["delta"].get("content") or ""
            if not piece:
                continue
            chunk = ChatGenerationChunk(message=AIMessageChunk(content=piece))
            if run_manager:
                run_manager.on_llm_new_token(piece, chunk=chunk)
            yield chunk

    def invoke_json(self, messages: Sequence[BaseMessage], schema: dict, max_tokens: int = 256,
                    temperature: float = 0.0, seed: int | None = None) -> dict:
        # llama.cpp compiles the JSON schema into a grammar: the reply cannot leave the schema.
        # A repeated prompt reuses the evaluated prefix, so a second sample costs only its tokens.
        llama, chat = self._llama(), to_openai_messages(messages)
        if not temperature and seed is None:
            # Greedy decoding under a grammar picks the most likely token the grammar allows, so a
            # free reply the grammar would have accepted token by token is the very reply the
            # grammar gives. Checking the grammar on every token of a 150k-token vocabulary costs
            # about a quarter of the decoding time on a CPU: decode freely first, and constrain
            # only when the free reply left the schema (its prompt is cached by then).
            text, finish = self._free_json(llama, chat, max_tokens)
            if finish == "stop" and (value := grammar_reply(text, schema)) is not None:
                return value
            if finish == "length" and grammar_prefix(text, schema):
                # Cut off by max_tokens, every token one the grammar allows: the grammar would
                # have been cut off at the same place. Same text, same outcome (callers salvage it).
                return parse_json_object(text)
        extra = {"seed": seed} if seed is not None else {}
        out = llama.create_chat_completion(
            messages=chat, temperature=temperature, max_tokens=max_tokens,
            response_format={"type": "json_object", "schema": schema}, **extra)
        return parse_json_object(out["choices"][0]["message"]["content"] or "")

    @staticmethod
    def _free_json(llama: Any, chat: list[dict], max_tokens: int) -> tuple[str, str | None]:
        """The greedy reply decoded without the grammar and why it ended ("stop", "length"), or
        None as soon as it leaves the grammar's form (a code fence, a line break): a reply that
        needs the grammar wastes a token or two, not the whole reply."""
        pieces: list[str] = []
        finish = None
        stream = llama.create_chat_completion(messages=chat, temperature=0.0, max_tokens=max_tokens, stream=True)
        try:
            for part in stream:
                choice = part["choices"][0]
                pieces.append(choice["delta"].get("content") or "")
                finish = choice.get("finish_reason") or finish
                text = "".join(pieces)
                if (text and not text.startswith("{")) or "\n" in text:
                    return text, None
        finally:
            stream.close()
        return "".join(pieces), finish


def grammar_reply(text: str, schema: dict) -> dict | None:
    """``text`` parsed, when it is a reply llama.cpp's grammar for ``schema`` lets through as
    written; None when in doubt (the caller then decodes under the grammar).

    The grammar (``llama_cpp.llama_grammar``) writes one JSON object on one line, at most one
    space between tokens, its keys in the schema's order (the required ones first) and no key the
    schema lacks. A reply is taken when it is exactly ``json.dumps`` of its value in one of the two
    usual spacings, its keys come in that order and it validates against the schema."""
    text = text.strip()
    if "\x7f" in text:  # the grammar's strings refuse DEL, which json.dumps leaves as it is
        return None
    try:
        value = json.loads(text)
    except json.JSONDecodeError:
        return None
    if not isinstance(value, dict):
        return None
    spellings = (json.dumps(value, ensure_ascii=False), json.dumps(value, ensure_ascii=False, separators=(",", ":")))
    if text not in spellings or not _in_grammar_order(value, schema):
        return None
    import jsonschema

    try:
        jsonschema.validate(value, schema)
    except (jsonschema.ValidationError, jsonschema.SchemaError):
        return None
    return value


# Endings that close a reply cut off inside a string, a number, a list or an object.
_CLOSINGS = ('"}', "}", '"]}', "]}", '"}}', "}}", '"]}}', "]}}")


def grammar_prefix(text: str, schema: dict) -> bool:
    """Whether ``text`` is the start of a reply :func:`grammar_reply` takes: closed by one of a
    few endings it becomes one (then every token of it was one the grammar allows)."""
    return text.startswith("{") and any(grammar_reply(text + ending, schema) is not None for ending in _CLOSINGS)


def _in_grammar_order(value: Any, schema: Any) -> bool:
    """Whether every object in ``value`` has only its schema's keys, in the grammar's order."""
    if isinstance(value, list):
        items = schema.get("items") if isinstance(schema, dict) else None
        return all(_in_grammar_order(item, items) for item in value) if items is not None else \
            not any(isinstance(item, (dict, list)) for item in value)
    if not isinstance(value, dict):
        return True
    if not isinstance(schema, dict) or "properties" not in schema or schema.get("additionalProperties"):
        return False  # a "$ref", "anyOf" or open object: not worth second-guessing the grammar
    properties = list(schema["properties"])
    required = [name for name in properties if name in set(schema.get("required", []))]
    optional = [name for name in properties if name not in required]
    keys = list(value)
    if keys[:len(required)] != required:
        return False
    rest = keys[len(required):]
    if rest != [name for name in optional if name in rest]:
        return False
    return all(_in_grammar_order(value[name], schema["properties"][name]) for name in keys)


# --- selection ------------------------------------------------------------------------------------

_override: BaseChatModel | None = None
_override_lock = threading.Lock()


def set_chat_model(model: BaseChatModel | None) -> None:
    """Install a process-wide chat model (tests, benchmarks); None removes it."""
    global _override
    with _override_lock:
        _override = model


@contextlib.contextmanager
def use_chat_model(model: BaseChatModel) -> Iterator[BaseChatModel]:
    """Within the block, :func:`get_chat_model` returns ``model``."""
    global _override
    with _override_lock:
        previous, _override = _override, model
    try:
        yield model
    finally:
        with _override_lock:
            _override = previous


def ollama_status(host: str, timeout: float = 0.8) -> dict[str, Any]:
    """``{"reachable": bool, "models": [...], "error": str|None}`` for an Ollama server."""
    import httpx

    try:
        response = httpx.get(host.rstrip("/") + "/api/tags", timeout=timeout)
        response.raise_for_status()
        names = [m.get("name", "") for m in response.json().get("models", [])]
        return {"reachable": True, "models": names, "error": None}
    except Exception as exc:
        return {"reachable": False, "models": [], "error": f"{type(exc).__name__}: {exc}"}


def ollama_has(models: list[str], wanted: str) -> bool:
    """Whether ``wanted`` (``llama3.1`` means ``llama3.1:latest``) is among Ollama's ``models``."""
    base = wanted if ":" in wanted else wanted + ":latest"
    return any(name == wanted or name == base for name in models)


def embedded_model_path(settings: Settings | None = None) -> Path | None:
    """The GGUF file the embedded backend would use, or None when there is none."""
    from taller.llm.install import installed_model_path

    settings = settings or get_settings()
    if settings.embedded_model_path:
        path = Path(settings.embedded_model_path).expanduser()
        return path if path.is_file() else None
    return installed_model_path(settings)


def _fake_from_env() -> FakeChatModel:
    """``TALLER_FAKE_SCRIPT`` (a JSON list of responses) scripts the fake backend from outside;
    ``TALLER_FAKE_TOKEN_DELAY`` (seconds between streamed tokens) makes it answer slowly."""
    script = os.environ.get("TALLER_FAKE_SCRIPT")
    responses: list[Any] = []
    if script:
        text = Path(script).read_text(encoding="utf-8") if Path(script).is_file() else script
        responses = json.loads(text)
    delay = float(os.environ.get("TALLER_FAKE_TOKEN_DELAY") or 0)
    return FakeChatModel(responses=responses, default="(fake model: no scripted answer left)", token_delay=delay)


def get_chat_model(backend: str | None = None, model: str | None = None,
                   settings: Settings | None = None) -> BaseChatModel:
    """Return the chat model for ``backend`` (default: the configured one).

    Raises :class:`LLMUnavailableError` with instructions when nothing can answer.
    """
    with _override_lock:
        if _override is not None:
            return _override
    settings = settings or get_settings()
    backend = (backend or settings.backend or "auto").lower()
    if backend not in BACKENDS:
        raise LLMUnavailableError(f"unknown backend {backend!r}; choose one of {', '.join(BACKENDS)}")
    if backend == "fake":
        return _fake_from_env()
    if backend == "openai" or (backend == "auto" and settings.openai_url):
        from taller.llm.openai_compatible import openai_chat_model

        try:
            return openai_chat_model(settings, None if model and model.endswith(".gguf") else model,
                                     probe_timeout=0.8 if backend == "auto" else None)
        except LLMUnavailableError as exc:
            if backend == "openai":
                raise
            # "auto" goes on to Ollama and the embedded model, as it does when Ollama is down.
            import logging

            logging.getLogger(__name__).warning("openai_url is set but unusable, trying the others: %s", exc)
    if backend in ("ollama", "auto"):
        status = ollama_status(settings.ollama_host)
        wanted = model or settings.ollama_model
        if status["reachable"] and (backend == "ollama" or ollama_has(status["models"], wanted)):
            from langchain_ollama import ChatOllama

            return ChatOllama(base_url=settings.ollama_host, model=wanted,
                              temperature=settings.temperature)
        if backend == "ollama":
            raise LLMUnavailableError(
                f"Ollama does not answer at {settings.ollama_host} ({status['error']}). Start it "
                f"with `ollama serve` and `ollama pull {wanted}`, or set OLLAMA_HOST.")
    path = Path(model).expanduser() if model and model.endswith(".gguf") else embedded_model_path(settings)
    if path is None or not path.is_file():
        raise LLMUnavailableError(
            "no LLM available: Ollama does not answer at "
            f"{settings.ollama_host} and no embedded model is installed. Either start Ollama "
            "(`ollama serve; ollama pull llama3.1`) or run `taller model install` to install the "
            "embedded model, or set TALLER_EMBEDDED_MODEL_PATH to any GGUF file.")
    return EmbeddedChatModel(model_path=str(path), n_ctx=settings.embedded_context,
                             n_threads=settings.embedded_threads, temperature=settings.temperature)


def describe(model: BaseChatModel) -> dict[str, str]:
    """Backend and model name, for status bars and ``final`` events."""
    if isinstance(model, FakeChatModel):
        return {"backend": "fake", "model": model.model_name}
    if isinstance(model, EmbeddedChatModel):
        return {"backend": "embedded", "model": model.model_name}
    if type(model).__name__ == "OpenAICompatibleChatModel":
        return {"backend": "openai", "model": model.model_name}
    name = getattr(model, "model", None) or getattr(model, "model_name", None) or type(model).__name__
    kind = "ollama" if type(model).__name__ == "ChatOllama" else type(model).__name__
    return {"backend": kind, "model": str(name)}


def parse_json_object(text: str) -> dict:
    """The first JSON object in ``text`` (models sometimes wrap it in prose or code fences)."""
    text = text.strip()
    if "\x7f" in text:  # the grammar's strings refuse DEL, which json.dumps leaves as it is
        return None
    try:
        value = json.loads(text)
        if isinstance(value, dict):
            return value
    except json.JSONDecodeError:
        pass
    match = re.search(r"\{.*\}", text, re.S)
    if match:
        try:
            value = json.loads(match.group(0))
            if isinstance(value, dict):
                return value
        except json.JSONDecodeError:
            pass
    raise ModelReplyError("the model did not return a JSON object", text)


def invoke_json(model: BaseChatModel, messages: Sequence[BaseMessage], schema: dict, max_tokens: int = 256,
                temperature: float = 0.0, seed: int | None = None) -> dict:
    """Ask ``model`` for a reply that matches the JSON ``schema`` and return it parsed.

    ``temperature`` above 0 (with a ``seed``) draws a sample instead of the most likely reply:
    the SQL pipeline votes among several."""
    own = getattr(model, "invoke_json", None)
    if callable(own):
        if temperature or seed is not None:
            return own(messages, schema, max_tokens=max_tokens, temperature=temperature, seed=seed)
        return own(messages, schema, max_tokens=max_tokens)
    if type(model).__name__ == "ChatOllama":
        # Ollama's structured outputs: `format` takes a JSON schema and constrains decoding.
        options: dict[str, Any] = {"temperature": temperature, "num_predict": max_tokens}
        if seed is not None:
            options["seed"] = seed
        reply = model.bind(format=schema, options=options).invoke(list(messages))
        return parse_json_object(str(reply.content))
    if temperature and "temperature" in type(model).model_fields:
        # OpenAI-compatible chat models take the sampling settings as fields.
        update: dict[str, Any] = {"temperature": temperature}
        if seed is not None and "seed" in type(model).model_fields:
            update["seed"] = seed
        model = model.model_copy(update=update)
    structured = model.with_structured_output(schema, method="json_schema")
    out = structured.invoke(list(messages))
    return out if isinstance(out, dict) else dict(out)


def text_of(message: BaseMessage | str) -> str:
    """Plain text of a model reply (content may be a list of parts)."""
    if isinstance(message, str):
        return message
    content = message.content
    if isinstance(content, str):
        return content
    return "".join(part.get("text", "") if isinstance(part, dict) else str(part) for part in content)


def complete(prompt: str | Sequence[BaseMessage], system: str | None = None,
             model: BaseChatModel | None = None) -> str:
    """One plain-text completion with ``model`` (default: :func:`get_chat_model`)."""
    from langchain_core.messages import HumanMessage, SystemMessage

    model = model or get_chat_model()
    if isinstance(prompt, str):
        messages: list[BaseMessage] = [HumanMessage(content=prompt)]
    else:
        messages = list(prompt)
    if system:
        messages.insert(0, SystemMessage(content=system))
    return text_of(model.invoke(messages)).strip()


