"""The query_database and describe_database tools through the registry, as the agent calls them."""

from __future__ import annotations

import shutil

import pytest

from taller.llm import FakeChatModel, use_chat_model
from taller.config import get_settings
from taller.tools import run_tool, validate_args
from taller.tools.base import ToolError, to_json


@pytest.fixture
def ref(tmp_path, data_dir, monkeypatch):
    path = tmp_path / "chinook.sqlite"
    shutil.copyfile(data_dir / "Chinook_Sqlite.sqlite", path)
    monkeypatch.setenv("TALLER_DATABASES", f'{{"ref": "sqlite:///{path}"}}')
    get_settings(reload=True)
    return path


def test_query_database_returns_sql_columns_rows_and_summary(ref):
    with use_chat_model(FakeChatModel(responses=[{"sql": "SELECT Name FROM Genre WHERE GenreId = 1"}])):
        out = run_tool("query_database", {"question": "What is genre 1?", "database": "ref"})
    assert out["sql"] == "SELECT Name FROM Genre WHERE GenreId = 1"
    assert out["columns"] == ["Name"] and out["rows"] == [["Rock"]]
    assert "Rock" in out["summary"]
    to_json(out)  # the result must be JSON-able as is


def test_query_database_refusal_is_an_error_result_with_the_reason(ref):
    with use_chat_model(FakeChatModel(responses=[{"sql": "DROP TABLE Genre"}])):
        out = run_tool("query_database", {"question": "drop genres", "database": "ref"})
    assert out["refused"] is True and "DROP" in out["error"] and out["sql"] == "DROP TABLE Genre"


def test_describe_database_by_name_and_by_url(ref):
    by_name = run_tool("describe_database", {"database": "ref"})
    by_url = run_tool("describe_database", {"database": f"sqlite:///{ref}"})
    assert len(by_name["tables"]) == len(by_url["tables"]) == 11
    assert "Track (3,503 rows)" in by_name["summary"]


def test_bad_arguments_and_databases_give_clear_errors():
    with pytest.raises(ToolError, match="question"):
        validate_args("query_database", {"question": ""})
    out = run_tool("describe_database", {"database": "warehouse"})
    assert "unknown database 'warehouse'" in out["error"]
    out = run_tool("describe_database", {"database": "sqlite:////etc/shadow"})
    assert "error" in out and "Traceback" not in out["error"]
    out = run_tool("query_database", {"question": "x", "database": "notadialect://host/db"})
    assert "no driver" in out["error"] or "not installed" in out["error"]
