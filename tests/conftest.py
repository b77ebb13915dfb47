"""Shared test set-up: every test gets its own TALLER_HOME, no network, and the fake LLM."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

# Keep torch from fighting over the 2 CI cores with itself.
os.environ.setdefault("OMP_NUM_THREADS", "2")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("ANONYMIZED_TELEMETRY", "False")

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


def shared_data_dir() -> Path | None:
    """The folder of real data sets (TALLER_DATA_DIR, else ../shared/data), or None."""
    env = os.environ.get("TALLER_DATA_DIR")
    if env and Path(env).is_dir():
        return Path(env)
    return SHARED_DATA if SHARED_DATA.is_dir() else None


@pytest.fixture(autouse=True)
def taller_home(tmp_path_factory, monkeypatch) -> Path:
    """A fresh data folder per test; offline; the fake backend; settings reloaded."""
    home = tmp_path_factory.mktemp("taller_home")
    monkeypatch.setenv("TALLER_HOME", str(home))
    monkeypatch.setenv("TALLER_OFFLINE", "1")
    monkeypatch.setenv("TALLER_BACKEND", "fake")
    monkeypatch.delenv("OLLAMA_HOST", raising=False)
    data = shared_data_dir()
    if data is not None:
        monkeypatch.setenv("TALLER_DATA_DIR", str(data))
    from taller.config import get_settings

    get_settings(reload=True)
    yield home
    from taller.llm import set_chat_model

    set_chat_model(None)
    from taller.config import reset_settings

    reset_settings()


@pytest.fixture(scope="session")
def real_data_dir() -> Path | None:
    """The real data sets folder or None (for session/module fixtures that skip themselves)."""
    return shared_data_dir()


@pytest.fixture(scope="session")
def spa_eng_data(real_data_dir) -> Path:
    """The data folder holding spa-eng.zip, for module fixtures that train on it; else skip."""
    if real_data_dir is None or not (real_data_dir / "spa-eng.zip").is_file():
        pytest.skip("spa-eng.zip not found: set TALLER_DATA_DIR or provide ../shared/data")
    return real_data_dir


@pytest.fixture
def data_dir() -> Path:
    """The real data sets; the test is skipped with a reason when they are absent."""
    data = shared_data_dir()
    if data is None:
        pytest.skip("real data sets not found: set TALLER_DATA_DIR or provide ../shared/data")
    return data


@pytest.fixture(autouse=True)
def _no_semantic_router(monkeypatch):
    """Routing in tests goes through the scripted fake model unless a test turns MiniLM on."""
    monkeypatch.setenv("TALLER_SEMANTIC_ROUTER", "0")
    from taller.config import get_settings

    get_settings(reload=True)
