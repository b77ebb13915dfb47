"""Huge SQL results are bounded in bytes (issue 16, point 3): cells, rows, CSV exports, and a
statement that fails or times out during an export leaves no file.

Sizes stay around 50 MB so the suite is fast; the 200-400 MB statements of the issue are refused
by SQLite itself on Taller's connections (its length limit), which these tests check too.
"""

from __future__ import annotations

import csv
import json
import sqlite3

import pytest
from bounded import within

from taller.config import get_settings
from taller.knowledge import sql as sqlmod
from taller.knowledge.sql import execution
from taller.knowledge.sql.execution import MAX_CELL_CHARS, MAX_RESULT_CHARS, ResultTooLargeError
from taller.llm import FakeChatModel, use_chat_model
from taller.tools import run_tool

FIFTY_MB = 50_000_000
RECURSIVE = "WITH RECURSIVE c(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM c{stop}) "


@pytest.fixture
def tiny_db(tmp_path, monkeypatch):
    """A one-table SQLite file, configured as database 'tiny'."""
    path = tmp_path / "tiny.sqlite"
    connection = sqlite3.connect(path)
    connection.execute("CREATE TABLE t (x INTEGER)")
    connection.execute("INSERT INTO t VALUES (1)")
    connection.commit()
    connection.close()
    monkeypatch.setenv("TALLER_DATABASES", json.dumps({"tiny": f"sqlite:///{path}"}))
    get_settings(reload=True)
    return path


_timed = within


def _outputs():
    folder = get_settings().outputs_dir / "sql"
    return sorted(p.name for p in folder.iterdir()) if folder.is_dir() else []


def test_a_huge_cell_is_cut_and_says_how_long_it_was(tiny_db):
    out, seconds = _timed(sqlmod.run_sql, f"SELECT printf('%.*c', {FIFTY_MB}, 'x') AS big, 7 AS small", "tiny")
    cell = out["rows"][0][0]
    assert cell.startswith("x" * MAX_CELL_CHARS) and len(cell) < MAX_CELL_CHARS + 100
    assert f"{FIFTY_MB:,} characters" in cell, "the cut cell says how long it was"
    assert out["rows"][0][1] == 7
    assert out["cut"] and f"{FIFTY_MB:,}" in out["cut"] and "cut" in out["cut"]
    assert "Not all of it is shown" in out["summary"] and len(out["summary"]) < 1_000
    assert len(json.dumps(out)) < 10_000 and seconds < 30


def test_a_hex_blob_of_fifty_mb_is_cut_too(tiny_db):
    out, _ = _timed(sqlmod.run_sql, f"SELECT hex(zeroblob({FIFTY_MB // 2}))", "tiny")
    assert len(json.dumps(out)) < 10_000 and f"{FIFTY_MB:,}" in out["cut"]


@pytest.mark.parametrize("sql", ["SELECT hex(zeroblob(200000000))", "SELECT zeroblob(300000000)"])
def test_sqlite_refuses_to_build_values_of_hundreds_of_mb(tiny_db, sql):
    # SQLite's length limit on Taller's connections: the value is never built.
    with pytest.raises(ResultTooLargeError, match="larger than 64 MB"):
        _timed(sqlmod.run_sql, sql, "tiny", limit_s=30)


def test_printf_past_the_limit_gives_null_quickly(tiny_db):
    out, seconds = _timed(sqlmod.run_sql, "SELECT printf('%.*c', 300000000, 'x')", "tiny", limit_s=30)
    assert out["rows"] == [[None]] and seconds < 20


def test_the_whole_result_is_bounded_in_bytes(tiny_db):
    # 200 rows of 10 cells of 2,000 characters would be 4 MB: the rows stop at about 1 MB.
    cells = ", ".join(f"printf('%.*c', 1999, '{i}')" for i in range(10))
    sql = RECURSIVE.format(stop=" WHERE n < 5000") + f"SELECT n, {cells} FROM c"
    out, _ = _timed(sqlmod.run_sql, sql, "tiny")
    kept = sum(len(v) if isinstance(v, str) else 8 for row in out["rows"] for v in row)
    assert kept <= MAX_RESULT_CHARS and 0 < len(out["rows"]) < 200
    assert out["truncated"] and out["row_count"] == 5000
    assert "rows are shown" in out["cut"] and f"{len(out['rows']):,}" in out["cut"]
    assert len(json.dumps(out)) < 1.2 * MAX_RESULT_CHARS
    # The rows not shown went to the CSV, every one of them.
    with open(out["csv"], newline="", encoding="utf-8") as handle:
        lines = list(csv.reader(handle))
    assert len(lines) == 5001 and lines[-1][0] == "5000"


def test_the_tool_and_the_cli_return_a_bounded_answer_quickly(tiny_db, capsys):
    sql = f"SELECT printf('%.*c', {FIFTY_MB}, 'x') AS big"
    with use_chat_model(FakeChatModel(responses=[], default={"sql": sql})):
        out, seconds = _timed(run_tool, "query_database", {"question": "show the big value", "database": "tiny"})
        assert "error" not in out and out["cut"] and len(json.dumps(out)) < 20_000 and seconds < 40
        code, _ = _timed(sqlmod.main, ["--database", "tiny", "ask", "show the big value"])
    printed = capsys.readouterr().out
    assert code == 0 and len(printed) < 20_000 and f"{FIFTY_MB:,}" in printed


def test_cells_of_the_csv_and_its_size_are_bounded(tiny_db, monkeypatch):
    monkeypatch.setattr(execution, "EXPORT_MAX_BYTES", 200_000)
    sql = RECURSIVE.format(stop=" WHERE n < 100000") + "SELECT n, printf('%.*c', 40000, 'z') FROM c"
    out, _ = _timed(sqlmod.run_sql, sql, "tiny", row_limit=3)
    assert out["csv"] is not None and "the CSV stops after" in out["cut"]
    assert "of the CSV are cut at 32,767 characters" in out["cut"]
    with open(out["csv"], newline="", encoding="utf-8") as handle:
        lines = list(csv.reader(handle))
    assert len(lines) < 20 and all(len(line[1]) < 33_000 for line in lines[1:])
    assert "40,000 characters in all" in lines[1][1], "a cut CSV cell says how long it was"


def test_an_export_that_times_out_leaves_no_file(tiny_db, monkeypatch):
    monkeypatch.setattr(execution, "EXPORT_MAX_ROWS", 10**12)
    monkeypatch.setattr(execution, "EXPORT_MAX_BYTES", 10**15)
    sql = RECURSIVE.format(stop="") + "SELECT n, printf('%.*c', 200, 'y') FROM c"
    db = sqlmod.connect("tiny")
    checked = sqlmod.check_sql(sql)
    with pytest.raises(sqlmod.QueryTimeoutError):
        _timed(execution.execute_checked, db, checked, row_limit=5, timeout_s=1.0)
    assert _outputs() == [], "a statement stopped during its export leaves no partial file"


def test_an_export_that_fails_leaves_no_file(tiny_db):
    # Rows stream into the export, then the statement fails (a value past SQLite's limit).
    sql = (RECURSIVE.format(stop=" WHERE n < 3000")
           + "SELECT n, CASE WHEN n = 2999 THEN hex(zeroblob(100000000)) ELSE 'ok' END FROM c")
    with pytest.raises(ResultTooLargeError):
        _timed(sqlmod.run_sql, sql, "tiny", row_limit=5)
    assert _outputs() == []


def test_a_good_export_is_renamed_into_place(tiny_db):
    sql = RECURSIVE.format(stop=" WHERE n < 500") + "SELECT n FROM c"
    out = sqlmod.run_sql(sql, "tiny", row_limit=10)
    assert out["csv"] and _outputs() == [out["csv"].rsplit("/", 1)[-1]] and out["cut"] is None
