"""LLM backends (base layer): the chat models Taller talks to, and the embedded-model installer.

* :mod:`taller.llm.chat` — :func:`get_chat_model` (Ollama, the embedded GGUF model, the scripted
  fake), :func:`invoke_json` for schema-constrained replies, :func:`complete` for plain text;
* :mod:`taller.llm.openai_compatible` — the ``openai`` backend: any OpenAI-compatible server
  (vLLM, llama.cpp, LM Studio, Ollama's ``/v1``) over plain HTTP;
* :mod:`taller.llm.install` — the pinned GGUF packages, their assembly and checksum.

The names of :mod:`taller.llm.chat` are re-exported here lazily (PEP 562), so ``import
taller.llm.install`` — used by ``taller model list`` — does not load LangChain.
"""

from __future__ import annotations

from typing import Any

_CHAT_NAMES = {
    "BACKENDS", "EmbeddedChatModel", "FakeChatModel", "LLMUnavailableError", "ModelReplyError",
    "complete", "describe", "embedded_model_path", "get_chat_model", "invoke_json", "ollama_has",
    "ollama_status", "parse_json_object", "set_chat_model", "text_of", "use_chat_model",
}

__all__ = sorted(_CHAT_NAMES)


def __getattr__(name: str) -> Any:
    if name in _CHAT_NAMES:
        from taller.llm import chat

        return getattr(chat, name)
    raise AttributeError(f"module 'taller.llm' has no attribute {name!r}")
