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

import real_data  # noqa: E402  (tests/real_data.py; after the settings above, it imports taller)


@pytest.fixture(autouse=True)
def taller_home(tmp_path_factory, monkeypatch) -> Path:
    """A fresh data folder per test; offline; the fake backend; settings reloaded."""
    home = tmp_path_factory.mktemp("taller_home")
    monkeypatch.setenv("TALLER_HOME", str(home))
    monkeypatch.setenv("TALLER_OFFLINE", "1")
    monkeypatch.setenv("TALLER_BACKEND", "fake")
    # A scripted model gives the same query however it is asked: one SQL candidate per question,
    # unless a test of the voting asks for more.
    monkeypatch.setenv("TALLER_SQL_CANDIDATES", "1")
    monkeypatch.delenv("OLLAMA_HOST", raising=False)
    data = real_data.data_folder()
    if data.is_dir():  # tests that need it check it with the fixtures below
        monkeypatch.setenv("TALLER_DATA_DIR", str(data))
    from taller.config import get_settings

    get_settings(reload=True)
    yield home
    from taller.llm import set_chat_model

    set_chat_model(None)
    from taller.config import reset_settings

    reset_settings()


@pytest.fixture(scope="session")
def real_data_dir() -> Path:
    """The real data sets folder, for session and module fixtures; fails when any set is missing."""
    return real_data.require()


@pytest.fixture(scope="session")
def spa_eng_data() -> Path:
    """The data folder holding spa-eng.zip, for module fixtures that train on it; fails without it."""
    return real_data.require(("spa-eng",))


@pytest.fixture
def data_dir() -> Path:
    """The real data sets; the test fails, naming each missing file, when they are absent."""
    return real_data.require()


@pytest.fixture(autouse=True)
def _no_semantic_router(monkeypatch):
    """Routing in tests goes through the scripted fake model unless a test turns MiniLM on."""
    monkeypatch.setenv("TALLER_SEMANTIC_ROUTER", "0")
    from taller.config import get_settings

    get_settings(reload=True)


# --- servers (PostgreSQL, Chroma): from CI's environment, else started here, else skipped ----

@pytest.fixture(scope="session")
def postgres_server():
    """The URL of a PostgreSQL server the tests may create schemas and roles in (see services)."""
    import services

    server = services.start("postgres")
    if server.url is None:
        pytest.skip(server.reason)
    yield server.url
    server.stop()


@pytest.fixture(scope="session")
def chroma_server():
    """The URL of a Chroma server (``chroma run``) the tests may create databases in."""
    import services

    server = services.start("chroma")
    if server.url is None:
        pytest.skip(server.reason)
    yield server.url
    server.stop()
