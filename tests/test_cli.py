"""The ``taller`` command line, run as a user runs it (subprocesses) and in-process for speed."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import pytest

from taller import cli
from taller.tools import get_tool


def run_cli(*args, env_extra=None, timeout=60):
    env = {**os.environ, **(env_extra or {})}
    return subprocess.run([sys.executable, "-m", "taller", *args], capture_output=True, text=True, env=env, timeout=timeout)


def test_help_is_fast_and_imports_nothing_heavy():
    started = time.monotonic()
    out = run_cli("--help")
    assert out.returncode == 0 and "ask" in out.stdout and "doctor" in out.stdout
    code = ("import sys, taller.cli; taller.cli.build_parser(); "
            "print(sorted(m for m in ('torch','langgraph','langchain_core','chromadb','textual') if m in sys.modules))")
    heavy = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert heavy.stdout.strip() == "[]"
    assert time.monotonic() - started < 30  # generous: a loaded CI box; the real figure is in the README


def test_ask_plan_prints_the_tool_call_as_json(tmp_path):
    script = tmp_path / "script.json"
    script.write_text(json.dumps([{"tool": "train_model", "args": {"model": "autoencoder", "epochs": 3}}]))
    out = run_cli("ask", "--plan", "--backend", "fake", "train the autoencoder for 3 epochs",
                  env_extra={"TALLER_FAKE_SCRIPT": str(script)})
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout) == {"tool": "train_model", "args": {"model": "autoencoder", "epochs": 3}}


def test_ask_plan_no_tool(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("TALLER_FAKE_SCRIPT", json.dumps([{"tool": "none"}]))
    assert cli.main(["ask", "--plan", "--backend", "fake", "hello"]) == 0
    assert json.loads(capsys.readouterr().out) == {"tool": None, "args": {}}


def test_ask_streams_the_answer(capsys, monkeypatch):
    monkeypatch.setenv("TALLER_FAKE_SCRIPT", json.dumps([{"tool": "none"}, "Hola, soy Taller."]))
    assert cli.main(["ask", "--backend", "fake", "hola"]) == 0
    assert capsys.readouterr().out.strip() == "Hola, soy Taller."


def test_ask_names_a_thread_database_it_cannot_use(capsys, monkeypatch, taller_home):
    """A chat.sqlite from a newer Taller gives one clear line naming the file, no traceback."""
    import sqlite3

    from taller.config import get_settings

    database = get_settings().checkpoint_db
    database.parent.mkdir(parents=True, exist_ok=True)
    with sqlite3.connect(database) as connection:
        connection.execute("PRAGMA user_version = 999")
    monkeypatch.setenv("TALLER_FAKE_SCRIPT", json.dumps([{"tool": "none"}, "hola"]))
    assert cli.main(["ask", "--backend", "fake", "hola"]) == 1
    err = capsys.readouterr().err
    assert str(database) in err and "999" in err and "Traceback" not in err


def test_ask_without_terminal_does_not_approve_training(capsys, monkeypatch):
    ran = []
    monkeypatch.setattr(get_tool("train_model"), "func", lambda model, epochs=None: ran.append(model) or {"summary": "x"})
    monkeypatch.setattr(sys, "stdin", open(os.devnull))
    monkeypatch.setenv("TALLER_FAKE_SCRIPT", json.dumps([{"tool": "train_model", "args": {"model": "vae"}}]))
    cli.main(["ask", "--backend", "fake", "train the vae"])
    assert ran == [] and "use --yes" in capsys.readouterr().err


def test_tool_runs_one_tool_and_prints_json(capsys, monkeypatch):
    monkeypatch.setattr(get_tool("describe_database"), "func", lambda database=None: {"summary": f"db {database}", "tables": 3})
    assert cli.main(["tool", "describe_database", "--args", '{"database": "sqlite:///x.db"}']) == 0
    assert json.loads(capsys.readouterr().out) == {"summary": "db sqlite:///x.db", "tables": 3}


@pytest.mark.parametrize("args,message", [(["tool", "nope"], "unknown tool 'nope'"),
                                          (["tool", "translate", "--args", "{bad"], "not valid JSON")])
def test_tool_bad_input(capsys, args, message):
    assert cli.main(args) == 2
    assert message in capsys.readouterr().err


def test_tool_schema_error_exits_non_zero(capsys):
    assert cli.main(["tool", "train_model", "--args", '{"model": "autoencoder", "epochs": 0}']) == 1
    assert "epochs" in json.loads(capsys.readouterr().out)["error"]


def test_config_and_doctor(capsys, taller_home):
    assert cli.main(["config", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["home"] == str(taller_home)
    assert cli.main(["config", "--set", "ollama_model=llama3.2"]) == 0
    capsys.readouterr()
    assert cli.main(["config"]) == 0
    assert "config.toml" in capsys.readouterr().out
    assert cli.main(["doctor", "--json"]) == 0
    rows = {row["name"]: row for row in json.loads(capsys.readouterr().out)}
    assert rows["data folder"]["status"] == "ok"
    assert rows["ollama"]["status"] == "warn" and rows["ollama"]["fix"]
    assert rows["embedded LLM"]["fix"].startswith("taller model install")


def test_database_answers_show_the_sql_and_table(capsys, monkeypatch):
    monkeypatch.setattr(get_tool("query_database"), "func", lambda question, database=None: {
        "summary": "5 customers live in Brazil.", "sql": "SELECT COUNT(*) FROM Customer WHERE Country = 'Brazil'",
        "columns": ["COUNT(*)"], "rows": [[5]], "table": "| COUNT(*) |\n|---|\n| 5 |"})
    monkeypatch.setenv("TALLER_FAKE_SCRIPT", json.dumps([{"tool": "query_database", "args": {"question": "customers in Brazil?"}},
                                                         "There are 5."]))
    assert cli.main(["ask", "--backend", "fake", "customers in Brazil?"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("There are 5.")
    assert "```sql\nSELECT COUNT(*) FROM Customer WHERE Country = 'Brazil'\n```" in out and "| 5 |" in out


def test_ask_json_shows_the_rewritten_follow_up_in_tool_start(tmp_path, taller_home):
    """`taller ask --thread T --json`: a follow-up's tool_start carries its standalone form."""
    first = tmp_path / "first.json"
    first.write_text(json.dumps([{"tool": "list_models"}, "You have no models yet."]))
    second = tmp_path / "second.json"
    second.write_text(json.dumps([{"request": "list my trained models again"}, {"tool": "list_models"}, "Still none."]))
    env = {"TALLER_HOME": str(taller_home)}
    out = run_cli("ask", "--backend", "fake", "--thread", "T", "--json", "list my models",
                  env_extra={**env, "TALLER_FAKE_SCRIPT": str(first)})
    assert out.returncode == 0, out.stderr
    out = run_cli("ask", "--backend", "fake", "--thread", "T", "--json", "and again?",
                  env_extra={**env, "TALLER_FAKE_SCRIPT": str(second)})
    assert out.returncode == 0, out.stderr
    events = [json.loads(line) for line in out.stdout.splitlines() if line.strip()]
    start = next(event for event in events if event["type"] == "tool_start")
    assert start["tool"] == "list_models" and start["request"] == "list my trained models again"


def test_ensure_llm_with_an_unreachable_openai_server_fails_fast_and_names_it(capsys, monkeypatch):
    """`taller model ensure` on the openai backend checks the server and never builds llama.cpp."""
    import socket

    from taller.config import get_settings

    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    monkeypatch.setenv("TALLER_BACKEND", "openai")
    monkeypatch.setenv("TALLER_OPENAI_URL", f"http://127.0.0.1:{port}/v1")
    get_settings(reload=True)
    try:
        started = time.monotonic()
        assert cli._ensure_llm() == 1
        assert time.monotonic() - started < 10
        assert f"127.0.0.1:{port}" in capsys.readouterr().err
    finally:
        monkeypatch.undo()
        get_settings(reload=True)


def test_train_lesson_runs_the_lesson_and_refuses_a_model_without_one(capsys, monkeypatch):
    from taller.trainers import vae

    seen = []
    monkeypatch.setattr(vae, "train", lambda config, cancel_event=None: seen.append(config) or {"lesson": "β", "claim_held": True})
    assert cli.main(["train", "vae", "--lesson", "--dry-run"]) == 0
    assert seen[0].lesson is True and seen[0].dry_run is True
    assert '"claim_held": true' in capsys.readouterr().out
    assert cli.main(["train", "pix2pix", "--lesson"]) == 2
    assert "pix2pix has no lesson; lessons: dense_classifier, autoencoder, rnn" in capsys.readouterr().err
