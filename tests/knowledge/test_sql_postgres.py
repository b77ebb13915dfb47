"""PostgreSQL: the same pipeline on a real server, in a read-only transaction with a timeout.

Runs when ``TALLER_TEST_POSTGRES_URL`` names a server the test may create a schema in, e.g.
``postgresql+psycopg://postgres@127.0.0.1:5432/postgres`` (CI can start Debian's PostgreSQL).
"""

from __future__ import annotations

import os
import uuid

import pytest

from taller.llm import FakeChatModel, use_chat_model
from taller.config import get_settings

URL = os.environ.get("TALLER_TEST_POSTGRES_URL")
pytestmark = pytest.mark.skipif(not URL, reason="set TALLER_TEST_POSTGRES_URL to a PostgreSQL server to run")


@pytest.fixture
def pg(monkeypatch):
    pytest.importorskip("psycopg", reason="the postgres extra is not installed: pip install 'taller[postgres]'")
    from sqlalchemy import create_engine, make_url

    url = make_url(URL)
    if url.drivername == "postgresql":
        url = url.set(drivername="postgresql+psycopg")
    schema = f"taller_test_{uuid.uuid4().hex[:10]}"
    admin = create_engine(url)
    with admin.begin() as connection:
        connection.exec_driver_sql(f"CREATE SCHEMA {schema}")
        connection.exec_driver_sql(f"CREATE TABLE {schema}.artist (artist_id integer PRIMARY KEY, name text NOT NULL)")
        connection.exec_driver_sql(
            f"CREATE TABLE {schema}.album (album_id integer PRIMARY KEY, title text NOT NULL, "
            f"artist_id integer NOT NULL REFERENCES {schema}.artist(artist_id))")
        connection.exec_driver_sql(
            f"INSERT INTO {schema}.artist VALUES (1, 'AC/DC'), (2, 'Accept'), (3, 'Aerosmith')")
        connection.exec_driver_sql(
            f"INSERT INTO {schema}.album VALUES (1, 'For Those About To Rock', 1), (2, 'Balls to the Wall', 2), "
            f"(3, 'Restless and Wild', 2), (4, 'Let There Be Rock', 1), (5, 'Big Ones', 3)")
    # The tested URL sees only the test schema (search_path), like a dedicated database would.
    scoped = url.update_query_dict({"options": f"-csearch_path={schema}"})
    monkeypatch.setenv("TALLER_DATABASES", '{"pg": "%s"}' % scoped.render_as_string(hide_password=False))
    get_settings(reload=True)
    yield admin, schema
    from taller.knowledge.sql import connection

    for handle in list(connection._engines.values()):
        if handle.dialect == "postgresql":
            handle.engine.dispose()
    with admin.begin() as connection:
        connection.exec_driver_sql(f"DROP SCHEMA {schema} CASCADE")
    admin.dispose()


def _count(admin, schema):
    with admin.connect() as connection:
        return connection.exec_driver_sql(f"SELECT COUNT(*) FROM {schema}.album").scalar_one()


def test_postgres_question_hostile_sql_and_read_only_transaction(pg):

    from taller.knowledge import sql as sqlmod
    from taller.knowledge.sql.safety import CheckedSQL, QueryTimeoutError, Rule, check_sql

    admin, schema = pg
    described = sqlmod.describe("pg")
    assert {t["name"] for t in described["tables"]} == {"artist", "album"}
    assert described["dialect"] == "postgresql"

    query = ("SELECT ar.name, COUNT(*) AS albums FROM album al JOIN artist ar USING (artist_id) "
             "WHERE ar.name LIKE 'A%' GROUP BY ar.name ORDER BY albums DESC, ar.name")

    def reply(messages):
        assert "PostgreSQL" in str(messages[0].content) and "CREATE TABLE album" in str(messages[1].content)
        return {"sql": query}

    with use_chat_model(FakeChatModel(responses=[reply])):
        out = sqlmod.ask("Albums per artist whose name starts with A?", "pg")
    assert out["rows"] == [["AC/DC", 2], ["Accept", 2], ["Aerosmith", 1]]

    # Broken SQL → the PostgreSQL error goes back to the LLM.
    def retry(messages):
        assert "does not exist" in str(messages[-1].content)
        return {"sql": "SELECT COUNT(*) FROM album"}

    with use_chat_model(FakeChatModel(responses=[{"sql": "SELECT COUNT(*) FROM albums"}, retry])):
        assert sqlmod.ask("how many albums", "pg")["rows"] == [[5]]

    for hostile, rule in [("DELETE FROM album", Rule.WRITE),
                          ("WITH gone AS (DELETE FROM album RETURNING *) SELECT * FROM gone", Rule.WRITE),
                          ("SELECT 1; DROP TABLE album", Rule.MULTIPLE_STATEMENTS),
                          ("SELECT pg_sleep(30)", Rule.FORBIDDEN_FUNCTION),
                          ("COPY album TO '/tmp/x'", Rule.WRITE)]:
        with use_chat_model(FakeChatModel(responses=[{"sql": hostile}])):
            out = sqlmod.ask("do harm", "pg")
        assert out.get("refused") is True and out["rule"] == rule.value, hostile

    db = sqlmod.connect("pg")
    for statement in ["DELETE FROM album", "CREATE TABLE stolen (x int)"]:
        with pytest.raises(Exception, match="read-only transaction"):
            sqlmod.execute_checked(db, CheckedSQL(sql=statement, original=statement, kind="forced", tables=()))
    assert _count(admin, schema) == 5

    slow = check_sql("SELECT COUNT(*) FROM generate_series(1, 2000000000) a", "postgresql")
    with pytest.raises(QueryTimeoutError):
        sqlmod.execute_checked(db, slow, timeout_s=0.3)
