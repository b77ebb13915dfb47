"""Hostile SQL never executes: the parser refuses it, and the read-only connection would too."""

from __future__ import annotations

import hashlib
import shutil
import sqlite3

import pytest

from taller.llm import FakeChatModel, use_chat_model
from taller.config import get_settings
from taller.knowledge import sql as sqlmod
from taller.knowledge.sql.safety import (
    MAX_SQL_CHARS,
    CheckedSQL,
    QueryTimeoutError,
    Rule,
    SQLSyntaxError,
    UnsafeSQLError,
    check_sql,
)

# name → (statement, the rule that must refuse it)
HOSTILE = {
    "delete": ("DELETE FROM Invoice", Rule.WRITE),
    "update": ("UPDATE Track SET UnitPrice = 0", Rule.WRITE),
    "insert": ("INSERT INTO Genre (GenreId, Name) VALUES (99, 'x')", Rule.WRITE),
    # sqlglot does not model SQLite's REPLACE: it parses as a Command, refused as no query.
    "replace": ("REPLACE INTO Genre VALUES (1, 'x')", Rule.NOT_A_QUERY),
    "drop": ("DROP TABLE Album", Rule.SCHEMA_CHANGE),
    "create": ("CREATE TABLE stolen AS SELECT * FROM Customer", Rule.SCHEMA_CHANGE),
    "alter": ("ALTER TABLE Album ADD COLUMN x INTEGER", Rule.SCHEMA_CHANGE),
    "select_into": ("SELECT * INTO stolen FROM Customer", Rule.SCHEMA_CHANGE),
    "multi": ("SELECT 1; DROP TABLE Album", Rule.MULTIPLE_STATEMENTS),
    "multi_comment": ("SELECT * FROM Album; -- harmless\nDELETE FROM Album", Rule.MULTIPLE_STATEMENTS),
    "cte_delete": ("WITH gone AS (DELETE FROM Album RETURNING *) SELECT * FROM gone", Rule.WRITE),
    "cte_then_delete": ("WITH a AS (SELECT 1) DELETE FROM Album", Rule.WRITE),
    "attach": ("ATTACH DATABASE '/tmp/evil.sqlite' AS evil", Rule.OTHER_DATABASE),
    "detach": ("DETACH DATABASE main", Rule.OTHER_DATABASE),
    "pragma_write": ("PRAGMA writable_schema = ON", Rule.SETTINGS),
    "pragma_read": ("PRAGMA table_info(Album)", Rule.SETTINGS),
    "vacuum_into": ("VACUUM INTO '/tmp/copy.sqlite'", Rule.NOT_A_QUERY),
    "transaction": ("BEGIN TRANSACTION", Rule.TRANSACTION),
    "load_extension": ("SELECT load_extension('/tmp/evil.so')", Rule.FORBIDDEN_FUNCTION),
    "nul": ("SELECT * FROM Album\x00; DROP TABLE Album", Rule.NUL_CHARACTER),
    "bare_value": ("Album", Rule.NOT_A_QUERY),
    "deep_nesting": ("SELECT " + "(" * 3000 + "1" + ")" * 3000, Rule.TOO_DEEP),
    "very_long": ("SELECT * FROM Album WHERE " + " OR ".join(f"AlbumId = {i}" for i in range(4000)),
                  Rule.TOO_LONG),
}


@pytest.mark.parametrize("name", sorted(HOSTILE))
def test_hostile_sql_is_refused_by_the_parser_under_its_rule(name):
    statement, rule = HOSTILE[name]
    with pytest.raises(UnsafeSQLError) as info:
        check_sql(statement, "sqlite")
    assert info.value.rule is rule, str(info.value)


@pytest.mark.parametrize("statement, dialect, rule", [
    ("SELECT pg_sleep(30)", "postgresql", Rule.FORBIDDEN_FUNCTION),
    ("SELECT lo_get(16384)", "postgresql", Rule.FORBIDDEN_FUNCTION),
    ("SELECT current_setting('data_directory')", "postgresql", Rule.FORBIDDEN_FUNCTION),
    ("SELECT name FROM pg_ls_waldir()", "postgresql", Rule.FORBIDDEN_FUNCTION),
    ("COPY album TO '/tmp/x'", "postgresql", Rule.WRITE),
    ("TRUNCATE TABLE album", "postgresql", Rule.WRITE),
    ("SELECT * FROM album FOR UPDATE", "postgresql", Rule.TRANSACTION),
    ("COMMIT", "postgresql", Rule.TRANSACTION),
    ("SET search_path = evil", "postgresql", Rule.SETTINGS),
    ("GRANT SELECT ON album TO public", "postgresql", Rule.SCHEMA_CHANGE),
    ("SELECT SLEEP(10)", "mysql", Rule.FORBIDDEN_FUNCTION),
    ("USE other", "mysql", Rule.SETTINGS),
])
def test_other_dialects_are_refused_under_the_right_rule(statement, dialect, rule):
    with pytest.raises(UnsafeSQLError) as info:
        check_sql(statement, dialect)
    assert info.value.rule is rule, str(info.value)


def test_refusals_explain_why():
    with pytest.raises(UnsafeSQLError, match="DELETE"):
        check_sql(HOSTILE["cte_delete"][0])
    with pytest.raises(UnsafeSQLError, match="2 statements"):
        check_sql(HOSTILE["multi"][0])
    with pytest.raises(UnsafeSQLError, match=f"{MAX_SQL_CHARS:,}"):
        check_sql(HOSTILE["very_long"][0])
    with pytest.raises(UnsafeSQLError, match="pg_read_file"):
        check_sql("SELECT pg_read_file('/etc/passwd')", "postgresql")


@pytest.mark.parametrize("query", [
    "SELECT COUNT(*) FROM Invoice;",
    "select Name from Artist where Name like '%AC%'",
    "WITH totals AS (SELECT CustomerId, SUM(Total) AS s FROM Invoice GROUP BY 1) SELECT * FROM totals",
    "SELECT Name FROM Genre UNION SELECT Name FROM MediaType",
    "SELECT * FROM [Album] a JOIN Artist USING (ArtistId) -- trailing comment; DELETE FROM x",
])
def test_read_queries_are_accepted_and_normalised(query):
    checked = check_sql(query, "sqlite")
    assert checked.sql.upper().startswith(("SELECT", "WITH"))
    assert "DELETE" not in checked.sql.upper()  # comments are dropped from what runs
    assert ";" not in checked.sql


def test_syntax_errors_are_not_refusals():
    with pytest.raises(SQLSyntaxError):
        check_sql("SELECT FROM WHERE", "sqlite")


@pytest.fixture
def chinook_copy(tmp_path, data_dir, monkeypatch):
    """A temp copy of the official Chinook, configured as database 'ref'."""
    path = tmp_path / "chinook-copy.sqlite"
    shutil.copyfile(data_dir / "Chinook_Sqlite.sqlite", path)
    monkeypatch.setenv("TALLER_DATABASES", f'{{"ref": "sqlite:///{path}"}}')
    get_settings(reload=True)
    return path


def _sha256(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_hostile_sql_from_the_llm_never_touches_the_file(chinook_copy):
    before = _sha256(chinook_copy)
    for name, (text, rule) in HOSTILE.items():
        model = FakeChatModel(responses=[{"sql": text}])
        with use_chat_model(model):
            out = sqlmod.ask(f"please run {name}", "ref")
        assert out.get("refused") is True and out["rule"] == rule.value, name
        assert "error" in out and out["rows"] == []
        assert len(model.calls) == 1, name  # a refusal is final: no retry asks for more
    assert _sha256(chinook_copy) == before
    assert not (chinook_copy.parent / "evil.sqlite").exists()


@pytest.mark.parametrize("statement", [
    "DELETE FROM Invoice", "DROP TABLE Album", "CREATE TABLE t (x)", "PRAGMA user_version = 7",
    "ATTACH DATABASE ':memory:' AS other",
])
def test_read_only_connection_refuses_writes_that_skip_the_parser(chinook_copy, statement):
    # Second layer: even SQL that never went through check_sql cannot write on this connection.
    before = _sha256(chinook_copy)
    db = sqlmod.connect("ref")
    unchecked = CheckedSQL(sql=statement, original=statement, kind="forced", tables=())
    with pytest.raises(sqlite3.DatabaseError, match="(?i)not authorized|readonly|read-only|query_only"):
        sqlmod.execute_checked(db, unchecked)
    assert _sha256(chinook_copy) == before
    connection = sqlite3.connect(chinook_copy)
    assert connection.execute("SELECT COUNT(*) FROM Invoice").fetchone()[0] == 412
    connection.close()


def test_statement_timeout_interrupts_a_runaway_query(chinook_copy):
    db = sqlmod.connect("ref")
    endless = check_sql("WITH RECURSIVE n(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM n) "
                        "SELECT COUNT(*) FROM n", "sqlite")
    with pytest.raises(QueryTimeoutError, match="stopped"):
        sqlmod.execute_checked(db, endless, timeout_s=0.3)
    # The connection is usable afterwards: the handler is removed with the query.
    assert sqlmod.execute_checked(db, check_sql("SELECT COUNT(*) FROM Album")).rows == [[347]]


def test_timeout_from_the_llm_query_is_reported_not_retried(chinook_copy, monkeypatch):
    monkeypatch.setenv("TALLER_SQL_TIMEOUT_S", "0.3")
    get_settings(reload=True)
    endless = "WITH RECURSIVE n(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM n) SELECT COUNT(*) FROM n"
    model = FakeChatModel(responses=[{"sql": endless}])
    with use_chat_model(model):
        out = sqlmod.ask("count forever", "ref")
    assert "stopped" in out["error"] and len(model.calls) == 1
