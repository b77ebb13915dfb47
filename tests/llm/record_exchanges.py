"""Record the OpenAI-format exchanges that tests/llm/test_openai_compatible.py replays.

Run against a live llama-cpp-python server (the one the real-server test starts):

    python -m llama_cpp.server --model MODEL.gguf --port 18391 --n_ctx 1024 --n_threads 2 --model_alias qwen-test
    python tests/llm/record_exchanges.py http://127.0.0.1:18391/v1

Each exchange is saved as ``recorded/<name>.json``: the request sent and the response's status,
content type and body exactly as the server returned them (a streamed body is the raw
server-sent events). The replies depend on the model; the tests check what Taller does with
them, so re-recording with another model only needs the expectations on their text updated.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import httpx

HERE = Path(__file__).parent / "recorded"
ROUTER_SCHEMA = {"type": "object", "properties": {"tool": {"type": "string", "enum": ["train_model", "translate", "none"]}},
                 "required": ["tool"]}
ROUTER_MESSAGES = [{"role": "system", "content": "Pick the tool that answers the request."},
                   {"role": "user", "content": "train the autoencoder"}]
EXCHANGES = {
    "models": ("GET", "/models", None),
    "chat": ("POST", "/chat/completions", {
        "model": "qwen-test", "messages": [{"role": "user", "content": "Say hello in Spanish, one word."}],
        "max_tokens": 8, "temperature": 0.0}),
    "chat_stream": ("POST", "/chat/completions", {
        "model": "qwen-test", "messages": [{"role": "user", "content": "Count from 1 to 3, digits only."}],
        "max_tokens": 12, "temperature": 0.0, "stream": True}),
    "json_schema_refused": ("POST", "/chat/completions", {
        "model": "qwen-test", "messages": ROUTER_MESSAGES, "max_tokens": 24, "temperature": 0.0,
        "response_format": {"type": "json_schema", "json_schema": {"name": "taller_reply", "schema": ROUTER_SCHEMA}}}),
    "json_object": ("POST", "/chat/completions", {
        "model": "qwen-test", "messages": ROUTER_MESSAGES, "max_tokens": 24, "temperature": 0.0,
        "response_format": {"type": "json_object", "schema": ROUTER_SCHEMA}}),
}


def main(url: str) -> None:
    HERE.mkdir(exist_ok=True)
    for name, (method, path, body) in EXCHANGES.items():
        response = httpx.request(method, url.rstrip("/") + path, json=body, timeout=120)
        record = {"recorded_from": "llama-cpp-python server (python -m llama_cpp.server), qwen2.5-coder-1.5b Q4_K_M",
                  "request": {"method": method, "path": path, "json": body},
                  "response": {"status": response.status_code,
                               "content_type": response.headers.get("content-type", ""),
                               "body": response.text}}
        (HERE / f"{name}.json").write_text(json.dumps(record, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
        print(f"{name}: HTTP {response.status_code}, {len(response.content)} bytes")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "http://127.0.0.1:18391/v1")
