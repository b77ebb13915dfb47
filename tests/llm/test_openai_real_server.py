"""The ``openai`` backend against a real server process: llama-cpp-python's ``llama_cpp.server``.

The test starts the server on loopback with the embedded GGUF model (the one ``taller model
install`` puts in the default data folder, or ``TALLER_EMBEDDED_MODEL_PATH``), small context and
two threads, then asks through Taller's backend for a streamed chat answer and a router decision
(the schema-constrained tool choice, which this server takes as ``json_object`` + ``schema`` after
refusing ``json_schema``). Skipped, with the reason, where
llama-cpp-python, its server extra or the model is missing (as in CI).
"""

from __future__ import annotations

import importlib.util
import os
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Iterator

import pytest


def _model_file() -> Path | None:
    """The GGUF the embedded backend would use for this user (not the test's temporary home)."""
    env = os.environ.get("TALLER_EMBEDDED_MODEL_PATH")
    if env:
        return Path(env) if Path(env).is_file() else None
    from taller.config import Settings
    from taller.llm.install import installed_model_path

    # Read when the module is collected, before the fixture points TALLER_HOME at a temporary
    # folder: the user's own data folder (TALLER_HOME when set, else the default).
    return installed_model_path(Settings())


def _missing_server_modules() -> list[str]:
    return [name for name in ("llama_cpp", "fastapi", "uvicorn", "sse_starlette", "starlette_context", "pydantic_settings")
            if importlib.util.find_spec(name) is None]


MODEL = _model_file()
MISSING = _missing_server_modules()
pytestmark = [
    pytest.mark.slow,
    pytest.mark.real_llm,
    pytest.mark.skipif(bool(MISSING), reason=f"llama_cpp.server cannot start: {', '.join(MISSING)} not installed "
                                              "(pip install 'taller[embedded]', which includes llama-cpp-python[server])"),
    pytest.mark.skipif(MODEL is None, reason="no embedded GGUF model installed (run `taller model install`)"),
]
ALIAS = "taller-test-model"
START_TIMEOUT_S = 180


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture(scope="module")
def server_url(tmp_path_factory) -> Iterator[str]:
    """A llama-cpp-python server on loopback, stopped after the module's tests."""
    import httpx

    port = _free_port()
    log_path = tmp_path_factory.mktemp("llama_server") / "server.log"
    command = [sys.executable, "-m", "llama_cpp.server", "--model", str(MODEL), "--model_alias", ALIAS,
               "--host", "127.0.0.1", "--port", str(port), "--n_ctx", "1024", "--n_threads", "2"]
    with open(log_path, "wb") as log:
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}/v1"
    try:
        deadline = time.monotonic() + START_TIMEOUT_S
        while True:
            if process.poll() is not None:
                pytest.fail(f"llama_cpp.server exited with {process.returncode}; its log: {log_path}")
            try:
                if httpx.get(url + "/models", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"llama_cpp.server did not answer at {url} within {START_TIMEOUT_S} s; its log: {log_path}")
            time.sleep(0.5)
        yield url
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@pytest.fixture
def openai_backend(server_url, monkeypatch):
    """Taller's settings pointing at the server; the model name comes from the server's list."""
    from taller.config import get_settings
    from taller.llm.openai_compatible import forget_learned_modes

    monkeypatch.setenv("TALLER_BACKEND", "openai")
    monkeypatch.setenv("TALLER_OPENAI_URL", server_url)
    monkeypatch.delenv("TALLER_OPENAI_MODEL", raising=False)
    forget_learned_modes()
    return get_settings(reload=True)


def test_chat_streams_from_the_real_server(openai_backend):
    from taller.llm import describe, get_chat_model

    model = get_chat_model()
    assert describe(model) == {"backend": "openai", "model": ALIAS}
    pieces = [chunk.content for chunk in model.stream("Say hello in Spanish, one word.", max_tokens=8)]
    assert len([p for p in pieces if p]) >= 1 and "".join(pieces).strip()
    reply = model.invoke("What is 2 + 3? Answer with the number only.", max_tokens=4)
    assert "5" in reply.content and reply.usage_metadata["output_tokens"] >= 1


def test_router_decision_through_the_real_server(openai_backend):
    from langchain_core.messages import HumanMessage, SystemMessage

    from taller.agent.router import choice_schema
    from taller.llm import get_chat_model, invoke_json

    model = get_chat_model()
    # The router's first decision: the schema is an enum of candidate tools, so the reply can only
    # name one of them. (The router's whole prompt, a catalog of every tool, takes minutes to
    # evaluate on two busy cores; this short one checks the same constrained path.)
    schema = choice_schema(["train_model", "translate", "none"])
    messages = [SystemMessage(content="Choose the tool for the request: train_model trains a model, "
                                      "translate translates English to Spanish, none for anything else."),
                HumanMessage(content="train the autoencoder for 2 epochs")]
    choice = invoke_json(model, messages, schema, max_tokens=16)
    assert choice == {"tool": "train_model"}
    # This server refuses json_schema (HTTP 500 naming response_format): the backend stepped down
    # to json_object + schema, which llama.cpp compiles into a grammar.
    assert model.current_json_mode() == "json_object"
    again = invoke_json(model, [messages[0], HumanMessage(content="translate 'I like cats'")], schema, max_tokens=16)
    assert again == {"tool": "translate"}
