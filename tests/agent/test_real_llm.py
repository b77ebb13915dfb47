"""Smoke test on a real local model: runs when the embedded model is installed, else is skipped.

It uses the user's installed model (``taller model install`` puts it in the default data folder)
or ``TALLER_EMBEDDED_MODEL_PATH``; ``llama-cpp-python`` must be importable.
"""

from __future__ import annotations

import importlib.util

import pytest

from tests.real_model import installed_model


MODEL = installed_model()
pytestmark = [
    pytest.mark.real_llm,
    pytest.mark.skipif(importlib.util.find_spec("llama_cpp") is None,
                       reason="llama-cpp-python is not installed (pip install 'taller[embedded]')"),
    pytest.mark.skipif(MODEL is None, reason="no embedded GGUF model installed (run `taller model install`)"),
]


def test_embedded_model_routes_and_answers(monkeypatch):
    from taller.agent.session import Agent
    from taller.config import get_settings

    monkeypatch.setenv("TALLER_BACKEND", "embedded")
    monkeypatch.setenv("TALLER_EMBEDDED_MODEL_PATH", str(MODEL))
    monkeypatch.setenv("TALLER_EMBEDDED_CONTEXT", "2048")
    get_settings(reload=True)
    agent = Agent()
    # Constrained output: whatever the small model thinks, the plan is a valid call of a real tool.
    plan = agent.plan("train the autoencoder for 2 epochs")
    assert plan == {"tool": "train_model", "args": {"model": "autoencoder", "epochs": 2}}
    events = list(agent.run("Say hello in Spanish, one word."))
    assert events[-1]["type"] == "final" and events[-1]["backend"] == "embedded"
    assert events[-1]["text"].strip()
