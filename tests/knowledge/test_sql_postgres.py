"""PostgreSQL for real: the Chinook data loaded into a server, questions and hostile SQL through
Taller's own path (``ask`` → check → read-only run), and the three layers that keep it read-only.

The server is CI's (``TALLER_TEST_POSTGRES_URL``, started by ``.ci/run``) or one the tests start
(``tests/services.py``); the URL must allow creating a schema and a role. Each module run loads
the official Chinook (``Chinook_Sqlite.sqlite`` from the data folder, copied table by table through
SQLAlchemy, with the snake_case names of Chinook's own PostgreSQL script: ``invoice_line``,
``customer_id``) into a fresh schema, and Taller connects as a fresh role that may only SELECT
there, as a deployment should: the read-only transaction stops writes, and the role stops what a
read-only transaction allows (server files, other schemas, the password catalog).
"""

from __future__ import annotations

import re
import resource
import sqlite3
import time
import uuid
from pathlib import Path

import pytest

from taller.config import get_settings
from taller.llm import FakeChatModel, use_chat_model
from taller.knowledge import sql as sqlmod
from taller.knowledge.sql.safety import CheckedSQL, QueryTimeoutError, Rule, check_sql
from test_sql_safety import HOSTILE

TABLES = ("album", "artist", "customer", "employee", "genre", "invoice", "invoice_line", "media_type",
          "playlist", "playlist_track", "track")


def snake(name: str) -> str:
    """Chinook's SQLite names → its PostgreSQL names (``InvoiceLineId`` → ``invoice_line_id``)."""
    return re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "_", name).lower()


def load_chinook(engine, schema: str, sqlite_path: Path) -> dict[str, int]:
    """Copy every table of the SQLite Chinook into ``schema``; the row count of each table."""
    from sqlalchemy import Column, ForeignKey, MetaData, Table, create_engine, select

    source = create_engine(f"sqlite:///file:{sqlite_path}?mode=ro&uri=true")
    reflected = MetaData()
    reflected.reflect(source)
    target = MetaData(schema=schema)
    for table in reflected.sorted_tables:
        columns = []
        for column in table.columns:
            references = [ForeignKey(f"{schema}.{snake(fk.column.table.name)}.{snake(fk.column.name)}")
                          for fk in column.foreign_keys]
            columns.append(Column(snake(column.name), column.type.as_generic(), *references,
                                  primary_key=column.primary_key, nullable=column.nullable))
        Table(snake(table.name), target, *columns)
    counts = {}
    with engine.begin() as connection:
        target.create_all(connection)
        with source.connect() as reading:
            for table in reflected.sorted_tables:
                rows = [{snake(key): value for key, value in row._mapping.items()}
                        for row in reading.execute(select(table))]
                connection.execute(target.tables[f"{schema}.{snake(table.name)}"].insert(), rows)
                counts[snake(table.name)] = len(rows)
    source.dispose()
    return counts


@pytest.fixture(scope="module")
def chinook_pg(postgres_server, real_data_dir):
    """(admin engine, schema, reader URL, row counts): Chinook in a fresh schema, a SELECT-only role."""
    try:
        import psycopg  # noqa: F401
    except ModuleNotFoundError:  # a server is there, so the driver must be too: fail, not skip
        pytest.fail("psycopg is not installed; the test extra installs it (pip install -e '.[test]')")
    from sqlalchemy import create_engine, make_url

    url = make_url(postgres_server)
    if url.drivername == "postgresql":
        url = url.set(drivername="postgresql+psycopg")
    suffix = uuid.uuid4().hex[:10]
    schema, role, password = f"chinook_{suffix}", f"taller_reader_{suffix}", uuid.uuid4().hex
    admin = create_engine(url)
    started = time.perf_counter()
    with admin.begin() as connection:
        connection.exec_driver_sql(f"CREATE SCHEMA {schema}")
    counts = load_chinook(admin, schema, real_data_dir / "Chinook_Sqlite.sqlite")
    with admin.begin() as connection:
        connection.exec_driver_sql(f"CREATE ROLE {role} LOGIN PASSWORD '{password}'")
        connection.exec_driver_sql(f"GRANT USAGE ON SCHEMA {schema} TO {role}")
        connection.exec_driver_sql(f"GRANT SELECT ON ALL TABLES IN SCHEMA {schema} TO {role}")
    print(f"\nChinook loaded into PostgreSQL in {time.perf_counter() - started:.1f} s")
    # The reader sees only the Chinook schema first (search_path), like a dedicated database.
    reader = url.set(username=role, password=password).update_query_dict(
        {"options": f"-csearch_path={schema}"}).render_as_string(hide_password=False)
    yield admin, schema, reader, counts
    from taller.knowledge.sql import connection as connections

    for key, handle in list(connections._engines.items()):
        if handle.dialect == "postgresql":
            handle.engine.dispose()
            connections._engines.pop(key, None)
    with admin.begin() as connection:
        connection.exec_driver_sql(f"SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = '{role}'")
        connection.exec_driver_sql(f"DROP SCHEMA {schema} CASCADE")
        connection.exec_driver_sql(f"DROP OWNED BY {role}")
        connection.exec_driver_sql(f"DROP ROLE {role}")
    admin.dispose()


@pytest.fixture
def pg(chinook_pg, monkeypatch):
    """The database "pg" configured as the reader, for one test."""
    admin, schema, reader, counts = chinook_pg
    monkeypatch.setenv("TALLER_DATABASES", '{"pg": "%s"}' % reader)
    get_settings(reload=True)
    return chinook_pg


def counts_now(admin, schema) -> dict[str, int]:
    with admin.connect() as connection:
        return {table: connection.exec_driver_sql(f"SELECT COUNT(*) FROM {schema}.{table}").scalar_one()
                for table in TABLES}


def sqlite_rows(path: Path, query: str) -> list[list]:
    connection = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        return [list(row) for row in connection.execute(query)]
    finally:
        connection.close()


def test_chinook_is_loaded_whole_and_described(pg, real_data_dir):
    admin, schema, _, counts = pg
    reference = real_data_dir / "Chinook_Sqlite.sqlite"
    assert set(counts) == set(TABLES)
    for table, count in counts.items():
        original = "".join(part.capitalize() for part in table.split("_"))
        assert count == sqlite_rows(reference, f"SELECT COUNT(*) FROM [{original}]")[0][0] > 0, table
    assert sum(counts.values()) == 15_607
    described = sqlmod.describe("pg")
    assert described["dialect"] == "postgresql"
    assert {t["name"] for t in described["tables"]} == set(TABLES)
    assert "invoice_line (2,240 rows)" in described["summary"]


# (question, the PostgreSQL query the model writes, the same question on the official SQLite file)
QUESTIONS = [
    ("Top 5 customers by total sales",
     "SELECT c.first_name || ' ' || c.last_name AS customer, ROUND(SUM(i.total), 2) AS sales "
     "FROM customer c JOIN invoice i ON i.customer_id = c.customer_id "
     "GROUP BY c.customer_id, c.first_name, c.last_name ORDER BY sales DESC, customer LIMIT 5",
     "SELECT c.FirstName || ' ' || c.LastName AS customer, ROUND(SUM(i.Total), 2) AS sales "
     "FROM Customer c JOIN Invoice i ON i.CustomerId = c.CustomerId "
     "GROUP BY c.CustomerId ORDER BY sales DESC, customer LIMIT 5"),
    ("Sales per year",
     "SELECT CAST(EXTRACT(YEAR FROM invoice_date) AS INTEGER) AS year, ROUND(SUM(total), 2) AS sales "
     "FROM invoice GROUP BY 1 ORDER BY 1",
     "SELECT CAST(strftime('%Y', InvoiceDate) AS INTEGER), ROUND(SUM(Total), 2) FROM Invoice GROUP BY 1 ORDER BY 1"),
    ("How many tracks does each rock genre have?",
     "SELECT g.name, COUNT(*) AS tracks FROM track t JOIN genre g ON g.genre_id = t.genre_id "
     "WHERE g.name LIKE '%Rock%' GROUP BY g.name ORDER BY tracks DESC, g.name",
     "SELECT g.Name, COUNT(*) FROM Track t JOIN Genre g ON g.GenreId = t.GenreId "
     "WHERE g.Name LIKE '%Rock%' GROUP BY g.Name ORDER BY 2 DESC, 1"),
    ("Who does each employee report to?",
     "SELECT e.last_name, m.last_name AS manager FROM employee e "
     "LEFT JOIN employee m ON m.employee_id = e.reports_to ORDER BY e.employee_id",
     "SELECT e.LastName, m.LastName FROM Employee e LEFT JOIN Employee m ON m.EmployeeId = e.ReportsTo "
     "ORDER BY e.EmployeeId"),
    ("The three longest playlists",
     "SELECT p.name, COUNT(*) AS tracks FROM playlist p JOIN playlist_track pt ON pt.playlist_id = p.playlist_id "
     "GROUP BY p.playlist_id, p.name ORDER BY tracks DESC, p.playlist_id LIMIT 3",
     "SELECT p.Name, COUNT(*) FROM Playlist p JOIN PlaylistTrack pt ON pt.PlaylistId = p.PlaylistId "
     "GROUP BY p.PlaylistId ORDER BY 2 DESC, p.PlaylistId LIMIT 3"),
]


@pytest.mark.parametrize("question, postgres_sql, sqlite_sql", QUESTIONS, ids=[q[0] for q in QUESTIONS])
def test_questions_get_the_answers_of_the_official_chinook(pg, real_data_dir, question, postgres_sql, sqlite_sql):
    def reply(messages):
        assert "PostgreSQL" in str(messages[0].content)
        assert "invoice_line" in "\n".join(str(m.content) for m in messages)
        return {"sql": postgres_sql}

    model = FakeChatModel(responses=[reply])
    with use_chat_model(model):
        out = sqlmod.ask(question, "pg")
    assert "error" not in out, out.get("error")
    expected = sqlite_rows(real_data_dir / "Chinook_Sqlite.sqlite", sqlite_sql)
    assert out["rows"] == expected and len(expected) > 0
    assert len(model.calls) == 1


def test_the_tool_answers_and_a_postgres_error_is_corrected(pg):
    from taller.tools import run_tool

    def retry(messages):
        assert "does not exist" in str(messages[-1].content)  # PostgreSQL's own error, sent back
        return {"sql": "SELECT COUNT(*) FROM invoice_line"}

    model = FakeChatModel(responses=[{"sql": "SELECT COUNT(*) FROM invoice_lines"}, retry])
    with use_chat_model(model):
        out = run_tool("query_database", {"question": "How many invoice lines are there?", "database": "pg"})
    assert out["rows"] == [[2240]] and len(model.calls) == 2


# The SQLite cases of test_sql_safety that PostgreSQL's grammar cannot parse: a syntax error,
# sent back to the model, never run; every other case is refused under the same rule.
NOT_POSTGRES = {"attach", "detach", "pragma_write", "replace"}
POSTGRES_HOSTILE = [
    ("COPY invoice TO '/tmp/stolen.csv'", Rule.WRITE),
    ("COPY (SELECT * FROM customer) TO PROGRAM 'cat > /tmp/stolen.csv'", Rule.WRITE),
    ("TRUNCATE TABLE invoice_line", Rule.WRITE),
    ("MERGE INTO album a USING artist b ON a.artist_id = b.artist_id WHEN MATCHED THEN DELETE", Rule.WRITE),
    ("INSERT INTO genre SELECT * FROM genre ON CONFLICT DO NOTHING", Rule.WRITE),
    ("SELECT pg_sleep(30)", Rule.FORBIDDEN_FUNCTION),
    ("SELECT pg_catalog.pg_sleep(30)", Rule.FORBIDDEN_FUNCTION),
    ("SELECT pg_read_file('/etc/passwd')", Rule.FORBIDDEN_FUNCTION),
    ("SELECT lo_import('/etc/passwd')", Rule.FORBIDDEN_FUNCTION),
    ("SELECT set_config('default_transaction_read_only', 'off', false)", Rule.FORBIDDEN_FUNCTION),
    ("SELECT pg_terminate_backend(pid) FROM pg_stat_activity", Rule.FORBIDDEN_FUNCTION),
    ("SELECT * FROM album FOR UPDATE", Rule.TRANSACTION),
    ("COMMIT", Rule.TRANSACTION),
    ("SET default_transaction_read_only = off", Rule.SETTINGS),
    ("GRANT SELECT ON customer TO public", Rule.SCHEMA_CHANGE),
    ("CREATE TEMP TABLE copied AS SELECT * FROM customer", Rule.SCHEMA_CHANGE),
    ("DO $$BEGIN DELETE FROM invoice_line; END$$", Rule.NOT_A_QUERY),
    ("EXPLAIN ANALYZE DELETE FROM invoice_line", Rule.NOT_A_QUERY),
    ("LOCK TABLE invoice", Rule.NOT_A_QUERY),
    ("VACUUM", Rule.NOT_A_QUERY),
]


def test_hostile_sql_is_refused_before_it_reaches_postgres(pg):
    admin, schema, _, counts = pg
    cases = [(text, rule) for name, (text, rule) in HOSTILE.items() if name not in NOT_POSTGRES]
    for text, rule in cases + POSTGRES_HOSTILE:
        model = FakeChatModel(responses=[{"sql": text}])
        with use_chat_model(model):
            out = sqlmod.ask("do harm", "pg")
        assert out.get("refused") is True and out["rule"] == rule.value, text
        assert out["rows"] == [] and len(model.calls) == 1, text
    for name in sorted(NOT_POSTGRES):
        text = HOSTILE[name][0]
        model = FakeChatModel(default=lambda messages, text=text: {"sql": text})
        with use_chat_model(model):
            out = sqlmod.ask("do harm", "pg")
        assert "error" in out and not out.get("rows"), name
        assert "parse" in out["error"] or "syntax" in out["error"].lower(), (name, out["error"])
    assert counts_now(admin, schema) == counts
    assert not Path("/tmp/stolen.csv").exists()


# Statements that skip the parser (as a parser bug would let through) and what stops each:
# the read-only transaction, or the role's missing privileges where a read-only transaction
# allows the statement (reading or writing server files, catalogs of passwords, other schemas).
UNCHECKED = [
    ("DELETE FROM invoice_line", "read-only transaction"),
    ("UPDATE track SET unit_price = 0", "read-only transaction"),
    ("INSERT INTO genre VALUES (99, 'x')", "read-only transaction"),
    ("CREATE TABLE stolen (x int)", "read-only transaction"),
    ("CREATE TEMP TABLE stolen AS SELECT * FROM customer", "read-only transaction"),
    ("DROP TABLE album", "read-only transaction"),
    ("TRUNCATE invoice_line", "read-only transaction"),
    ("COPY (SELECT * FROM customer) TO '{file}'", "pg_write_server_files|permission denied"),
    ("SELECT lo_import('/etc/passwd')", "permission denied|pg_read_server_files"),
    ("SELECT pg_read_file('/etc/passwd')", "permission denied"),
    ("SELECT * FROM pg_authid", "permission denied"),
    ("SELECT current_setting('data_directory')", "pg_read_all_settings|permission denied"),
    ("SELECT * FROM pg_ls_waldir()", "permission denied"),
]


def test_what_skips_the_parser_is_refused_by_the_server(pg, tmp_path):
    admin, schema, _, counts = pg
    db = sqlmod.connect("pg")
    target = Path("/tmp") / f"taller-stolen-{uuid.uuid4().hex}.csv"
    for statement, refusal in UNCHECKED:
        statement = statement.format(file=target)
        unchecked = CheckedSQL(sql=statement, original=statement, kind="forced", tables=())
        with pytest.raises(Exception, match=refusal):
            sqlmod.execute_checked(db, unchecked)
    assert counts_now(admin, schema) == counts
    assert not target.exists()
    # The connection is still good after all those errors.
    assert sqlmod.execute_checked(db, check_sql("SELECT COUNT(*) FROM album", "postgresql")).rows == [[347]]


def test_runaway_queries_stop_at_the_timeout(pg):
    db = sqlmod.connect("pg")
    for query in ["SELECT COUNT(*) FROM generate_series(1, 2000000000) AS n",
                  "SELECT COUNT(*) FROM track a CROSS JOIN track b CROSS JOIN track c"]:
        started = time.perf_counter()
        with pytest.raises(QueryTimeoutError, match="stopped"):
            sqlmod.execute_checked(db, check_sql(query, "postgresql"), timeout_s=0.5)
        assert time.perf_counter() - started < 5, query
    sleeping = CheckedSQL(sql="SELECT pg_sleep(30)", original="", kind="forced", tables=())
    with pytest.raises(QueryTimeoutError):
        sqlmod.execute_checked(db, sleeping, timeout_s=0.5)
    assert sqlmod.execute_checked(db, check_sql("SELECT COUNT(*) FROM artist", "postgresql")).rows == [[275]]


def test_a_set_returning_bomb_is_streamed_not_held(pg):
    """20 million rows (psycopg's execute would hold them all: ~1.4 GB) stream one at a time: the
    answer keeps the row limit, the CSV stops at its limit, the query is cancelled, memory stays flat."""
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024
    started = time.perf_counter()
    bomb = "SELECT n, md5(n::text) AS digest FROM generate_series(1, 20000000) AS n"
    with use_chat_model(FakeChatModel(responses=[{"sql": bomb}])):
        out = sqlmod.ask("all the numbers", "pg")
    seconds = time.perf_counter() - started
    grown = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024 - before
    assert "error" not in out, out.get("error")
    assert len(out["rows"]) == get_settings().sql_row_limit and out["truncated"]
    assert out["row_count"] == sqlmod.EXPORT_MAX_ROWS and "CSV stops" in out["cut"]
    assert sum(1 for _ in open(out["csv"], encoding="utf-8")) == sqlmod.EXPORT_MAX_ROWS + 1
    assert grown < 300, f"the process grew by {grown} MB"
    assert seconds < 30, seconds
    # Empty results still say their columns (a stream learns them from the first row).
    empty = sqlmod.execute_checked(sqlmod.connect("pg"), check_sql(
        "SELECT name, composer FROM track WHERE milliseconds < 0", "postgresql"))
    assert empty.columns == ["name", "composer"] and empty.rows == []
