"""Schema linking, repairs and execution-guided voting, with a scripted model on small databases."""

from __future__ import annotations

import sqlite3

import pytest

from taller.config import get_settings
from taller.knowledge import sql as sqlmod
from taller.knowledge.sql import answer, linking
from taller.knowledge.sql.connection import connect
from taller.knowledge.sql.generation import repair_facts
from taller.knowledge.sql.schema import introspect
from taller.llm import FakeChatModel, use_chat_model

STAFF = """
CREATE TABLE dept (dept_id INTEGER PRIMARY KEY, dept_name TEXT);
CREATE TABLE staff (emp_id INTEGER PRIMARY KEY, full_name TEXT, status TEXT, country TEXT,
                    dept_id INTEGER REFERENCES dept(dept_id));
CREATE TABLE project (proj_code TEXT PRIMARY KEY, title TEXT);
CREATE TABLE assignment (emp_id INTEGER REFERENCES staff(emp_id), proj_code TEXT REFERENCES project(proj_code),
                         hours INTEGER, PRIMARY KEY (emp_id, proj_code));
INSERT INTO dept VALUES (1, 'Engineering'), (2, 'Finance');
INSERT INTO staff VALUES (1, 'Ana Ruiz', 'active', 'Brazil', 1), (2, 'Bo Li', 'on_leave', 'Chile', 1),
                         (3, 'Cy Dee', 'retired', 'Brazil', 2), (4, 'Di Fox', 'on_leave', 'Spain', 2);
INSERT INTO project VALUES ('P1', 'Apollo'), ('P2', 'Borealis');
INSERT INTO assignment VALUES (1, 'P1', 10), (2, 'P1', 5), (2, 'P2', 7), (4, 'P2', 3);
"""


@pytest.fixture
def staff(tmp_path, monkeypatch):
    """A small HR database, configured as 'staff'."""
    path = tmp_path / "staff.db"
    connection = sqlite3.connect(path)
    connection.executescript(STAFF)
    connection.commit()
    connection.close()
    monkeypatch.setenv("TALLER_DATABASES", f'{{"staff": "sqlite:///{path}"}}')
    get_settings(reload=True)
    return path


def _index():
    db = connect("staff")
    schema = introspect(db, refresh=True)
    return db, schema, linking.value_index(db, schema)


def test_values_named_in_other_words_are_found_as_stored(staff):
    _, _, values = _index()
    found = linking.mentioned_values("¿Quién está on leave en Brasil?", values)
    assert {(v.column, v.value) for v in found} == {("status", "on_leave"), ("country", "Brazil")}
    # A word that is no stored value brings nothing; ids and keys are not indexed.
    assert linking.mentioned_values("how many people work here?", values) == []
    assert all(v.column not in ("emp_id", "dept_id", "proj_code") for v in values)


def test_categories_and_join_paths_reach_the_prompt(staff):
    db, schema, values = _index()
    categories = linking.categories(values)
    assert categories[("staff", "status")] == ["active", "on_leave", "retired"]
    joins = linking.join_paths(schema, [t.name for t in schema.tables])
    assert "assignment.emp_id = staff.emp_id" in joins
    assert "assignment links project and staff (join through it)" in joins
    # staff refers to dept only: not a linking table.
    assert not any(line.startswith("staff links") for line in joins)
    model = FakeChatModel(responses=[{"sql": "SELECT full_name FROM staff WHERE status = 'on_leave'"}])
    with use_chat_model(model):
        out = sqlmod.ask("who is on leave?", "staff")
    assert sorted(row[0] for row in out["rows"]) == ["Bo Li", "Di Fox"]
    prompt = model.calls[0][-1].content
    assert "status TEXT,  -- one of 'active', 'on_leave', 'retired'" in prompt
    assert "- staff.status = 'on_leave'" in prompt and "assignment links project and staff" in prompt


def test_a_repair_names_the_real_columns_and_the_join_path(staff):
    db, schema, _ = _index()
    facts = repair_facts("SELECT s.full_name FROM staff s WHERE s.title = 'Apollo'", "no such column: s.title",
                         schema, "sqlite")
    assert "Table staff has only these columns: emp_id, full_name, status, country, dept_id." in facts
    assert ("title is a column of project; join it with assignment.emp_id = staff.emp_id and "
            "assignment.proj_code = project.proj_code.") in facts
    assert "The tables are: assignment, dept, project, staff." in repair_facts("SELECT * FROM people", "no such table: people",
                                                                                schema, "sqlite")


def test_voting_picks_the_result_most_candidates_agree_on(staff):
    wrong = {"sql": "SELECT COUNT(*) FROM staff WHERE status = 'on leave'"}    # the greedy guess: 0
    right = {"sql": "SELECT COUNT(*) FROM staff WHERE status = 'on_leave'"}    # two samples: 2
    right_too = {"sql": "SELECT COUNT(emp_id) FROM staff WHERE status IN ('on_leave')"}
    model = FakeChatModel(responses=[wrong, right, right_too])
    with use_chat_model(model):
        out = sqlmod.ask("how many are on leave?", "staff", candidates=3, sample_always=True)
    assert out["rows"] == [[2]] and out["agreement"] == "2/3"
    assert len(out["attempts"]) == 3


def test_voting_stops_when_two_agree_and_drops_failing_or_unsafe_samples(staff):
    # Greedy and first sample agree: no third query is written.
    same = {"sql": "SELECT COUNT(*) FROM dept"}
    model = FakeChatModel(responses=[same, {"sql": "SELECT COUNT(dept_id) FROM dept"}, {"sql": "SELECT 99"}])
    with use_chat_model(model):
        out = sqlmod.ask("how many departments?", "staff", candidates=3, sample_always=True)
    assert out["rows"] == [[2]] and len(model.calls) == 2
    # A greedy query that fails and an unsafe sample are dropped; the sample that runs answers,
    # with no repair request.
    model = FakeChatModel(responses=[{"sql": "SELECT nope FROM dept"}, {"sql": "DELETE FROM dept"},
                                     {"sql": "SELECT dept_name FROM dept ORDER BY dept_name"}])
    with use_chat_model(model):
        out = sqlmod.ask("list the departments", "staff", candidates=3)
    assert out["rows"] == [["Engineering"], ["Finance"]] and len(model.calls) == 3
    # The greedy query decides about refusing: an unsafe one is refused, not outvoted.
    model = FakeChatModel(responses=[{"sql": "DROP TABLE dept"}])
    with use_chat_model(model):
        out = sqlmod.ask("drop it", "staff", candidates=3)
    assert out["refused"] is True and len(model.calls) == 1
    assert sqlite3.connect(staff).execute("SELECT COUNT(*) FROM dept").fetchone() == (2,)


def test_every_candidate_runs_through_the_checked_read_only_path(staff, monkeypatch):
    checked, executed = [], []
    real_check, real_execute = answer.check_sql, answer.execute_checked
    monkeypatch.setattr(answer, "check_sql", lambda sql, dialect: checked.append(sql) or real_check(sql, dialect))

    def spy(db, query, *args, **kwargs):
        executed.append(query.sql)
        return real_execute(db, query, *args, **kwargs)

    monkeypatch.setattr(answer, "execute_checked", spy)
    model = FakeChatModel(responses=[{"sql": "SELECT COUNT(*) FROM staff"}, {"sql": "SELECT COUNT(*) FROM dept"},
                                     {"sql": "SELECT COUNT(*) FROM project"}])
    with use_chat_model(model):
        sqlmod.ask("how many?", "staff", candidates=3, sample_always=True)
    assert len(checked) == 3 and len(executed) == 3  # each one checked before it ran


def test_vote_weighs_empty_results_half():
    from taller.knowledge.sql.execution import Execution

    def candidate(rows):
        return answer.Candidate(sql="x", execution=Execution(columns=["c"], rows=rows, row_count=len(rows),
                                                             truncated=False, csv=None, seconds=0.0, complete=True))

    empty_a, empty_b, one = candidate([]), candidate([]), candidate([[1]])
    assert answer.vote([empty_a, empty_b, one]) is empty_a       # 2 × 0.5 = 1 vs 1: the earlier wins
    assert answer.vote([one, empty_a, empty_b]) is one
    assert answer.vote([answer.Candidate(sql="y", error="boom")]) is None


def test_by_default_samples_are_drawn_only_when_the_greedy_query_is_doubtful(staff):
    # The greedy query runs and finds rows: no sample (each costs seconds on a CPU).
    model = FakeChatModel(responses=[{"sql": "SELECT COUNT(*) FROM dept"}, {"sql": "SELECT 99"}])
    with use_chat_model(model):
        out = sqlmod.ask("how many departments?", "staff", candidates=3)
    assert out["rows"] == [[2]] and len(model.calls) == 1
    # It finds nothing (a value stored nowhere, so code cannot put it in place): samples are
    # drawn and voted on.
    model = FakeChatModel(responses=[{"sql": "SELECT full_name FROM staff WHERE status = 'absent'"},
                                     {"sql": "SELECT full_name FROM staff WHERE status = 'on_leave'"},
                                     {"sql": "SELECT full_name FROM staff WHERE status = 'on_leave' ORDER BY 1"}])
    with use_chat_model(model):
        out = sqlmod.ask("who is on leave?", "staff", candidates=3)
    assert sorted(row[0] for row in out["rows"]) == ["Bo Li", "Di Fox"] and len(model.calls) == 3
