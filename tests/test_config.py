"""Settings: defaults, config.toml, TALLER_* variables, their priority and their errors."""

from __future__ import annotations

import pytest

from taller.config import ConfigError, get_settings, load_settings, save_setting


def test_defaults_and_home(taller_home):
    settings = load_settings()
    assert settings.home == taller_home
    assert settings.ollama_model == "llama3.1"
    assert settings.runs_dir == taller_home / "runs"
    assert settings.sources["home"] == "TALLER_HOME"


def test_toml_then_environment_priority(taller_home, monkeypatch):
    (taller_home / "config.toml").write_text('ollama_model = "llama3.2"\nauto_approve = true\n'
                                             'video_languages = ["en"]\n[databases]\nshop = "sqlite:///x.db"\n')
    settings = load_settings()
    assert settings.ollama_model == "llama3.2" and settings.sources["ollama_model"] == "config.toml"
    assert settings.auto_approve is True
    assert settings.video_languages == ["en"]
    assert settings.databases == {"shop": "sqlite:///x.db"}
    monkeypatch.setenv("TALLER_OLLAMA_MODEL", "qwen2.5:7b")
    monkeypatch.setenv("TALLER_AUTO_APPROVE", "no")
    settings = load_settings()
    assert settings.ollama_model == "qwen2.5:7b" and settings.sources["ollama_model"] == "TALLER_OLLAMA_MODEL"
    assert settings.auto_approve is False


def test_ollama_host_variable_without_scheme(monkeypatch):
    monkeypatch.setenv("OLLAMA_HOST", "gpu-box:11434")
    assert load_settings().ollama_host == "http://gpu-box:11434"


@pytest.mark.parametrize("name,value", [("TALLER_SERVER_PORT", "eighty"), ("TALLER_AUTO_APPROVE", "maybe"),
                                        ("TALLER_DATABASES", "{not json")])
def test_bad_environment_values_are_named(monkeypatch, name, value):
    monkeypatch.setenv(name, value)
    with pytest.raises(ConfigError, match=name.removeprefix("TALLER_").lower()):
        load_settings()


def test_unknown_or_broken_toml(taller_home):
    (taller_home / "config.toml").write_text("no_such_setting = 1\n")
    with pytest.raises(ConfigError, match="unknown setting 'no_such_setting'"):
        load_settings()
    (taller_home / "config.toml").write_text("ollama_model = \n")
    with pytest.raises(ConfigError, match="config.toml"):
        load_settings()


def test_save_setting_round_trip(taller_home):
    path = save_setting("max_tool_steps", "5")
    assert path == taller_home / "config.toml"
    assert get_settings().max_tool_steps == 5
    with pytest.raises(ConfigError):
        save_setting("home", "/elsewhere")


def test_secret_token_is_masked(monkeypatch):
    monkeypatch.setenv("TALLER_SERVER_TOKEN", "supersecret-token")
    assert load_settings().as_dict()["server_token"] == "supe…"
