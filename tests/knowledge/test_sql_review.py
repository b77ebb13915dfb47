"""The review of queries that run: an unasked LIMIT is dropped, a value compared with a column
that does not hold it is caught and repaired with where it is stored (scripted model)."""

from __future__ import annotations

from taller.knowledge import sql as sqlmod
from taller.knowledge.sql.connection import connect
from taller.knowledge.sql.review import misplaced_values, unasked_limit, values_in_place
from taller.knowledge.sql.schema import introspect
from taller.llm import FakeChatModel, use_chat_model

from tests.knowledge.test_sql_linking import staff  # noqa: F401  (the fixture)

TOP = "SELECT country, COUNT(*) AS n FROM staff GROUP BY country ORDER BY n DESC LIMIT {n}"


def test_a_limit_the_question_does_not_state_is_dropped():
    assert "LIMIT" not in unasked_limit(TOP.format(n=10), "which countries have the most staff?", "sqlite")
    assert "LIMIT" not in unasked_limit(TOP.format(n=10), "¿De qué países hay más empleados?", "sqlite")
    # Stated in digits or in words (English or Spanish), or LIMIT 1 for a superlative: kept.
    for question, n in [("the top 3 countries by staff", 3), ("the five countries with most staff", 5),
                        ("los diez países con más empleados", 10), ("which country has the most staff?", 1)]:
        assert unasked_limit(TOP.format(n=n), question, "sqlite").endswith(f"LIMIT {n}")
    # A LIMIT inside a subquery, or with an OFFSET (a page), is not the answer's size: kept.
    nested = "SELECT * FROM (SELECT country FROM staff LIMIT 10) AS t"
    assert unasked_limit(nested, "list countries", "sqlite") == nested
    paged = "SELECT country FROM staff LIMIT 10 OFFSET 10"
    assert unasked_limit(paged, "list countries", "sqlite") == paged
    assert unasked_limit("not sql at all (", "x", "sqlite") == "not sql at all ("


def _db():
    db = connect("staff")
    return db, introspect(db, refresh=True)


def test_a_value_compared_with_the_wrong_column_is_found_with_where_it_is_stored(staff):  # noqa: F811
    db, schema = _db()
    facts = misplaced_values(db, "SELECT COUNT(*) FROM staff AS s WHERE s.dept_id = 'Finance'", schema)
    assert facts == ["staff.dept_id = 'Finance' matches no row: staff.dept_id does not hold that value; "
                     "'Finance' is a value of dept.dept_name (join staff.dept_id = dept.dept_id)."]
    # Written differently from how the column stores it: the stored spelling is given.
    facts = misplaced_values(db, "SELECT full_name FROM staff WHERE status IN ('active', 'on leave')", schema)
    assert facts == ["staff.status = 'on leave' matches no row: staff.status does not hold that value; "
                     "staff.status stores it as 'on_leave'."]
    # Right columns, a LIKE that matches, or a value stored nowhere (the answer may be "none"): nothing.
    for sql in ["SELECT COUNT(*) FROM staff JOIN dept ON staff.dept_id = dept.dept_id WHERE dept.dept_name = 'Finance'",
                "SELECT full_name FROM staff WHERE country LIKE 'Bra%'",
                "SELECT COUNT(*) FROM staff WHERE country = 'Narnia'"]:
        assert misplaced_values(db, sql, schema) == [], sql


def test_values_are_put_where_they_are_stored_when_that_is_certain(staff):  # noqa: F811
    db, schema = _db()
    # A foreign key compared with the name of what it refers to: the code is looked up by name.
    moved = values_in_place(db, "SELECT COUNT(*) FROM staff AS s WHERE s.dept_id = 'Finance'", schema)
    assert moved == ("SELECT COUNT(*) FROM staff AS s WHERE s.dept_id IN "
                     "(SELECT dept.dept_id FROM dept WHERE dept.dept_name = 'Finance')")
    # The column's own spelling of the value.
    assert values_in_place(db, "SELECT full_name FROM staff WHERE status IN ('active', 'on leave')", schema) == \
        "SELECT full_name FROM staff WHERE status IN ('active', 'on_leave')"
    # Not certain (no foreign key leads there), or nothing misplaced: no candidate.
    assert values_in_place(db, "SELECT title FROM project WHERE title = 'Finance'", schema) is None
    assert values_in_place(db, "SELECT COUNT(*) FROM staff WHERE country = 'Narnia'", schema) is None


def test_the_pipeline_answers_a_misplaced_value_and_drops_an_unasked_limit(staff):  # noqa: F811
    # The greedy query compares a key with a name: the values-in-place candidate answers, and no
    # model call is needed for it.
    wrong = {"sql": "SELECT COUNT(*) FROM staff WHERE dept_id = 'Finance'"}
    model = FakeChatModel(responses=[], default=wrong)
    with use_chat_model(model):
        out = sqlmod.ask("how many people work in Finance?", "staff", candidates=3)
    assert out["rows"] == [[2]] and "IN (SELECT" in out["sql"] and len(model.calls) == 1
    # When the value cannot be put in place by code, the repair is shown where it is stored.
    misplaced = {"sql": "SELECT COUNT(*) FROM project WHERE title = 'Finance'"}
    right = {"sql": "SELECT COUNT(*) FROM dept WHERE dept_name = 'Finance'"}
    model = FakeChatModel(responses=[misplaced, right])
    with use_chat_model(model):
        out = sqlmod.ask("how many departments are called Finance?", "staff", candidates=1)
    assert out["rows"] == [[1]] and len(model.calls) == 2
    assert "'Finance' is a value of dept.dept_name" in model.calls[1][-1].content
    # When nothing better comes, the doubtful query's result is still given (not an error).
    model = FakeChatModel(responses=[], default=misplaced)
    with use_chat_model(model):
        out = sqlmod.ask("how many departments are called Finance?", "staff", candidates=1)
    assert "error" not in out and out["rows"] == [[0]]
    # The LIMIT nobody asked for is gone from what ran.
    model = FakeChatModel(responses=[{"sql": TOP.format(n=2)}])
    with use_chat_model(model):
        out = sqlmod.ask("which countries have the most staff?", "staff")
    assert "LIMIT" not in out["sql"] and out["row_count"] == 3


def test_the_reading_hints_are_one_fixed_system_prompt_about_no_database(staff):  # noqa: F811
    """The hints on how wordings read as SQL ("both", "different", "never", self-joins) are part
    of the system message, which must not vary with the question or the database: llama.cpp then
    reuses its evaluated prefix (the hints cost nothing after the first question). And they are
    general: no table or column of any database appears in them."""
    from taller.knowledge.sql.generation import READING_HINTS, build_messages
    from taller.knowledge.sql.memory import retrieve

    db, schema = _db()
    first = build_messages("How many staff are in Finance?", db, retrieve(db, "How many staff are in Finance?", schema))
    second = build_messages("¿Qué empleados nunca han pedido una baja?", db,
                            retrieve(db, "¿Qué empleados nunca han pedido una baja?", schema),
                            failed=("SELECT 1", "no such column: x"))
    assert first[0].content == second[0].content
    assert READING_HINTS in first[0].content and READING_HINTS not in first[1].content
    hints = READING_HINTS.lower()
    for table in schema.tables:
        assert f" {table.name.lower()} " not in hints and f"{table.name.lower()}." not in hints


def test_rows_grouped_by_name_keep_their_key_when_other_tables_refer_to_them(tmp_path):
    """Two playlists called "Music": grouping by the name alone merges them into one group of
    twice the size; the rewrite groups by the playlist's key too. A category column (country), a
    table grouped over its own rows, or a key grouped already are left as written."""
    import sqlite3

    from taller.knowledge.sql.review import group_by_key

    path = tmp_path / "music.sqlite"
    with sqlite3.connect(path) as connection:
        connection.executescript("""
            CREATE TABLE playlist (playlist_id INTEGER PRIMARY KEY, name TEXT, country TEXT);
            CREATE TABLE entry (entry_id INTEGER PRIMARY KEY,
                                playlist_id INTEGER REFERENCES playlist(playlist_id), track TEXT);
            INSERT INTO playlist VALUES (1, 'Music', 'ES'), (2, 'Music', 'ES'), (3, 'Jazz', 'FR');
        """)
        connection.executemany("INSERT INTO entry (playlist_id, track) VALUES (?, ?)",
                               [(1, f"t{i}") for i in range(3)] + [(2, f"u{i}") for i in range(2)] + [(3, "j")])
    db = connect(f"sqlite:///{path}")
    schema = introspect(db, refresh=True)
    dialect = db.sqlglot_dialect
    asked = ("SELECT p.name, COUNT(*) AS songs FROM playlist AS p JOIN entry AS e ON e.playlist_id = p.playlist_id "
             "GROUP BY p.name HAVING COUNT(*) > 1")
    rewritten = group_by_key(asked, schema, dialect)
    assert rewritten.endswith("GROUP BY p.name, p.playlist_id HAVING COUNT(*) > 1")
    with sqlite3.connect(path) as connection:
        assert connection.execute(asked).fetchall() == [("Music", 5)]
        assert sorted(connection.execute(rewritten).fetchall()) == [("Music", 2), ("Music", 3)]
    for kept in ["SELECT p.country, COUNT(*) FROM playlist AS p JOIN entry AS e ON e.playlist_id = p.playlist_id "
                 "GROUP BY p.country",
                 "SELECT name, COUNT(*) FROM playlist GROUP BY name",
                 "SELECT p.name FROM playlist AS p JOIN entry AS e ON e.playlist_id = p.playlist_id "
                 "GROUP BY p.playlist_id, p.name",
                 "not sql ("]:
        assert group_by_key(kept, schema, dialect) == kept
