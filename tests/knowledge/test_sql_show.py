"""Showing a database answer: the chart spec built from the rows, and the suggested follow-ups.

``chart_spec`` is checked on the shapes that must not get a chart as much as on those that must;
``suggest`` on the real Chinook schema (a temp copy), where every suggestion must name a column,
table or value that exists, in the question's language.
"""

from __future__ import annotations

import math
import re
import shutil

import pytest

from taller.config import get_settings
from taller.knowledge import sql as sqlmod
from taller.knowledge.sql import linking
from taller.knowledge.sql.charts import MAX_POINTS, chart_spec
from taller.knowledge.sql.connection import connect
from taller.knowledge.sql.safety import check_sql
from taller.knowledge.sql.schema import introspect
from taller.knowledge.sql.suggestions import language, suggest
from taller.llm import FakeChatModel, use_chat_model

# --- chart_spec ----------------------------------------------------------------------------------


def test_label_and_number_is_a_bar_in_the_result_order():
    rows = [["USA", 523.06], ["Canada", 303.96], ["France", 195.1]]
    assert chart_spec(["BillingCountry", "spent"], rows) == {
        "type": "bar", "x": "BillingCountry", "y": "spent", "points": rows}


def test_dates_months_and_years_make_a_line_sorted_by_time():
    months = chart_spec(["month", "sales"], [["2021-03", 3.0], ["2021-01", 1.0], ["2021-02", 2.5]])
    assert months["type"] == "line" and [p[0] for p in months["points"]] == ["2021-01", "2021-02", "2021-03"]
    days = chart_spec(["InvoiceDate", "Total"], [["2021-01-02 00:00:00", 1.98], ["2021-01-01 00:00:00", 3.96]])
    assert days["type"] == "line" and days["points"][0] == ["2021-01-01 00:00:00", 3.96]
    years = chart_spec(["year", "n"], [[2011, 5], [2009, 7], [2010, 6]])
    assert years == {"type": "line", "x": "year", "y": "n", "points": [[2009, 7], [2010, 6], [2011, 5]]}


def test_four_digit_ids_are_not_years():
    ids = [[1001 + i, float(i)] for i in range(5)]
    assert chart_spec(["CustomerId", "spent"], ids)["type"] == "bar"
    # The same numbers in a column named for years, or in the range of years, are a timeline.
    assert chart_spec(["release_year", "spent"], ids)["type"] == "line"
    assert chart_spec(["CustomerId", "spent"], [[1999, 1.0], [2000, 2.0]])["type"] == "line"


@pytest.mark.parametrize("columns, rows", [
    (["n"], [[42]]),                                              # one value
    (["n"], [[1], [2], [3]]),                                     # one column
    (["Country", "n"], [["USA", 13]]),                            # one row
    (["Country", "City", "n"], [["USA", "Boston", 1], ["USA", "Reno", 2]]),  # many columns
    (["FirstName", "LastName"], [["Ana", "Ruiz"], ["Bo", "Li"]]),  # no number
    (["Name", "active"], [["Ana", True], ["Bo", False]]),         # yes/no is not a quantity
    (["Milliseconds", "Bytes"], [[1.5, 10], [2.5, 20]]),          # two measures: no label
    (["Country", "n"], [[f"c{i}", i] for i in range(31)]),        # too many bars to read
    (["Country", "n"], [["USA", None], ["Chile", None], ["Peru", 3]]),  # one drawable point
    (["day", "n"], [["2021-01-01", 1], ["2021-01-01", 2]]),       # two values for one date
])
def test_results_without_a_chart(columns, rows):
    assert chart_spec(columns, rows) is None


def test_nulls_and_non_numbers_are_left_out_of_the_picture():
    spec = chart_spec(["Company", "n"], [[None, 4], ["Apple", None], ["Google", 2], ["Nasa", math.nan]])
    assert spec == {"type": "bar", "x": "Company", "y": "n", "points": [["NULL", 4], ["Google", 2]]}


def test_a_long_series_is_thinned_to_the_bound_keeping_its_ends():
    rows = [[f"{2000 + i // 12}-{i % 12 + 1:02d}", float(i)] for i in range(240)]
    spec = chart_spec(["month", "sales"], list(reversed(rows)))
    assert spec["type"] == "line" and len(spec["points"]) == MAX_POINTS
    assert spec["points"][0] == rows[0] and spec["points"][-1] == rows[-1]
    assert [p[1] for p in spec["points"]] == sorted(p[1] for p in spec["points"])
    # Thirty bars are a chart; a bar chart is never thinned (31 rows are None, above).
    assert len(chart_spec(["c", "n"], [[f"c{i}", i] for i in range(30)])["points"]) == 30


# --- suggest ---------------------------------------------------------------------------------------


@pytest.fixture
def chinook(tmp_path, data_dir, monkeypatch):
    """The real Chinook (a temp copy) as database 'ref', with its schema and stored values read."""
    path = tmp_path / "chinook.sqlite"
    shutil.copyfile(data_dir / "Chinook_Sqlite.sqlite", path)
    monkeypatch.setenv("TALLER_DATABASES", f'{{"ref": "sqlite:///{path}"}}')
    get_settings(reload=True)
    db = connect("ref")
    schema = introspect(db, refresh=True)
    linking.value_index(db, schema)
    return db, schema


def _suggest(chinook, question: str, sql: str) -> list[str]:
    db, schema = chinook
    result = sqlmod.run_sql(sql, "ref")
    return suggest(question, result["columns"], result["rows"], schema, list(check_sql(sql, "sqlite").tables))


def _names_real_things(text: str, schema) -> bool:
    """Every column, Table.column or table a suggestion names exists in the schema."""
    match = re.search(r"(?:by|por|en) ([\w.]+)\?$", text)
    if match is None:
        return True  # a value suggestion: checked by the tests that expect one
    name = match.group(1)
    if "." in name:
        table, column = name.split(".")
        return any(c.name == column for c in schema.table(table).columns)
    return any(c.name == name for t in schema.tables for c in t.columns) or schema.table(name) is not None


def test_a_named_value_suggests_the_same_question_for_another_stored_value(chinook):
    found = _suggest(chinook, "How many customers are in Brazil?",
                     "SELECT COUNT(*) FROM Customer WHERE Country = 'Brazil'")
    assert len(found) == 2 and found[0] == "And for Canada?"  # the next country after Brazil
    assert all(_names_real_things(text, chinook[1]) for text in found)


def test_spanish_questions_get_spanish_suggestions(chinook):
    # "Brasil" is not stored; linking finds 'Brazil' one letter off, and the swap names a stored value.
    found = _suggest(chinook, "¿Cuántos clientes hay en Brasil?",
                     "SELECT COUNT(*) FROM Customer WHERE Country = 'Brazil'")
    assert found[0] == "¿Y para Canada?"
    assert all(text.startswith("¿Y ") and text.endswith("?") for text in found)
    assert language("¿Cuántos clientes hay en Brasil?") == "es" and language("Clientes por pais") == "es"
    assert language("How many customers are in Brazil?") == "en" and language("Sales per country") == "en"


def test_a_breakdown_names_a_category_not_already_in_the_result(chinook):
    found = _suggest(chinook, "Which 5 countries spent the most?",
                     "SELECT BillingCountry, SUM(Total) AS spent FROM Invoice GROUP BY BillingCountry "
                     "ORDER BY spent DESC LIMIT 5")
    assert found == ["And broken down by BillingState?", "And the top 5 Invoice by Total?"]
    assert all(_names_real_things(text, chinook[1]) for text in found)


def test_identifiers_are_no_categories(chinook):
    # Employee's phones, e-mails and addresses have few distinct values (8 rows), all different.
    found = _suggest(chinook, "List the employees", "SELECT FirstName, LastName, Title FROM Employee")
    assert found[0] == "And broken down by City?"
    assert not any(re.search(r"Phone|Fax|Email|Address|PostalCode|LastName", text) for text in found)


def test_a_small_referenced_table_gives_the_breakdown_and_the_result_the_top(chinook):
    found = _suggest(chinook, "How many tracks are there?", "SELECT COUNT(*) FROM Track")
    # Track's own text columns are too varied; the genre-sized tables it refers to are not.
    assert found == ["And broken down by MediaType.Name?", "And the top 5 Track by UnitPrice?"]
    by_country = _suggest(chinook, "Sales per country",
                          "SELECT BillingCountry, SUM(Total) AS total FROM Invoice GROUP BY BillingCountry")
    assert "And the top 5 by total?" in by_country  # 24 rows: the top five of the result itself
    unnamed = _suggest(chinook, "Tracks per genre",
                       "SELECT g.Name, COUNT(*) FROM Track t JOIN Genre g ON t.GenreId = g.GenreId GROUP BY g.Name")
    assert not any("COUNT(*)" in text for text in unnamed) and len(unnamed) == 2


def test_a_column_the_question_names_is_not_suggested_again(chinook):
    found = _suggest(chinook, "What is the total of all invoices?", "SELECT SUM(Total) FROM Invoice")
    assert not any(text.endswith("by Total?") for text in found)
    assert len(found) == 2 and all(_names_real_things(text, chinook[1]) for text in found)


def test_without_stored_values_or_known_tables(chinook):
    db, schema = chinook
    bare = type(schema)(tables=schema.tables)  # no value index: no values, no categories
    found = suggest("How many customers are in Brazil?", ["n"], [[5]], bare, ["Customer"])
    # Only what the schema alone tells: the support reps' table (8 rows) that Customer refers to.
    assert found == ["And broken down by Employee.LastName?", "And how many rows are in Employee?"]
    assert suggest("How many?", ["n"], [[5]], schema, ["no_such_table"]) == []
    first = suggest("Which 5 countries spent the most?", ["c", "n"], [["USA", 1]], schema, ["Invoice"])
    assert first == suggest("Which 5 countries spent the most?", ["c", "n"], [["USA", 1]], schema, ["Invoice"])


# --- through ask() ---------------------------------------------------------------------------------


def test_the_answer_carries_its_chart_and_suggestions(chinook):
    sql = ("SELECT BillingCountry AS country, ROUND(SUM(Total), 2) AS sales FROM Invoice "
           "GROUP BY BillingCountry ORDER BY sales DESC LIMIT 5")
    with use_chat_model(FakeChatModel(responses=[{"sql": sql}])):
        out = sqlmod.ask("Which 5 countries buy the most?", "ref")
    assert out["chart"] == {"type": "bar", "x": "country", "y": "sales", "points": out["rows"]}
    assert out["suggestions"] == ["And broken down by BillingState?", "And the top 5 Invoice by Total?"]
    with use_chat_model(FakeChatModel(responses=[{"sql": "SELECT COUNT(*) AS n FROM Invoice"}])):
        one = sqlmod.ask("¿Cuántas facturas hay?", "ref")
    assert one["chart"] is None and len(one["suggestions"]) == 2
    assert all(text.startswith("¿Y ") for text in one["suggestions"])
