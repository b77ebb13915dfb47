"""The ``query_database`` answer: question → SQL → checked → run → rows and one sentence.

:func:`ask` ties the package together (connect, introspect, retrieve, generate, check, execute,
self-correct); :func:`summarise` and :func:`markdown_table` turn a result into words and a
preview without another LLM call, so the figures shown are the database's, never invented.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from taller.errors import ToolError
from taller.knowledge.sql.charts import chart_spec
from taller.knowledge.sql.connection import SOURCE, Database, connect
from taller.knowledge.sql.execution import Execution, database_error_text, execute_checked
from taller.knowledge.sql.generation import build_messages, generate_sql, repair_facts
from taller.knowledge.sql.memory import retrieve
from taller.knowledge.sql.review import group_by_key, review_values, unasked_limit
from taller.knowledge.sql.safety import CheckedSQL, QueryTimeoutError, SQLSyntaxError, UnsafeSQLError, check_sql
from taller.knowledge.sql.schema import introspect
from taller.knowledge.sql.suggestions import suggest
from taller.progress import emit

if TYPE_CHECKING:  # pragma: no cover
    from langchain_core.language_models import BaseChatModel

log = logging.getLogger(__name__)

MAX_RETRIES = 2
PREVIEW_ROWS = 10


def markdown_table(columns: list[str], rows: list[list[Any]], limit: int = PREVIEW_ROWS) -> str:
    """A small Markdown table of the first ``limit`` rows, for chat interfaces."""
    def cell(value: Any) -> str:
        text = "" if value is None else str(value)
        text = text.replace("|", "\\|").replace("\n", " ")
        return text if len(text) <= 60 else text[:57] + "..."

    lines = ["| " + " | ".join(cell(c) for c in columns) + " |",
             "|" + "|".join("---" for _ in columns) + "|"]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows[:limit]]
    return "\n".join(lines)


# Characters of one value that the summary sentence quotes (the rows carry more of it).
SUMMARY_VALUE_CHARS = 200


def _format_value(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:,.2f}".rstrip("0").rstrip(".") if value != int(value) else f"{int(value):,}"
    if isinstance(value, int) and not isinstance(value, bool):
        return f"{value:,}"
    if value is None:
        return "NULL"
    text = str(value)
    return text if len(text) <= SUMMARY_VALUE_CHARS else text[:SUMMARY_VALUE_CHARS] + "…"


def summarise(columns: list[str], execution: Execution) -> str:
    """One sentence that answers from the result (no LLM call: fast, and never invents a figure)."""
    rows = execution.rows
    cut = f" Not all of it is shown: {execution.cut}" if execution.cut else ""
    if execution.row_count == 0:
        return "The query returned no rows."
    if execution.row_count == 1 and len(columns) == 1:
        return f"The answer is {_format_value(rows[0][0])} ({columns[0]}).{cut}"
    if execution.row_count == 1:
        pairs = ", ".join(f"{c} = {_format_value(v)}" for c, v in zip(columns, rows[0]))
        return f"One row: {pairs}.{cut}"
    first = ", ".join(f"{c} = {_format_value(v)}" for c, v in zip(columns[:4], rows[0][:4]))
    total = f"{execution.row_count:,}" if execution.complete else f"more than {execution.row_count:,}"
    text = f"The query returned {total} rows; the first is {first}."
    if execution.truncated:
        text += f" Showing the first {len(rows):,}"
        saved = "all rows were" if execution.complete else "the first rows were"
        text += f"; {saved} saved to {execution.csv}." if execution.csv else "."
    return text + cut


# Sampling temperature of the candidates after the first (greedy) one.
SAMPLE_TEMPERATURE = 0.7


@dataclass
class Candidate:
    """One written query and what running it gave: rows, or the error that stopped it."""

    sql: str
    checked: CheckedSQL | None = None
    execution: Execution | None = None
    error: str | None = None
    timed_out: bool = False
    # What the review found wrong in a query that ran (:func:`.review.misplaced_values`).
    doubts: list[str] = field(default_factory=list)
    # The same query with its misplaced values put where they are stored, when that is certain.
    in_place: str | None = None

    @property
    def ran(self) -> bool:
        return self.execution is not None

    @property
    def sound(self) -> bool:
        """It ran, and the review found nothing wrong with it."""
        return self.execution is not None and not self.doubts

    def signature(self) -> tuple:
        """The result as a multiset of rows (values rounded, column order free), for voting."""
        assert self.execution is not None
        rows = sorted(tuple(sorted(repr(round(v, 4) if isinstance(v, float) else v) for v in row))
                      for row in self.execution.rows)
        return (self.execution.row_count, self.execution.complete, tuple(rows))


def _try(db: Database, sql: str, timeout_s: float, schema: Any = None) -> Candidate:
    """Check and run one candidate read-only (the one path every query takes), then review what
    it compared (with ``schema``); refusals raise."""
    candidate = Candidate(sql=sql)
    try:
        candidate.checked = check_sql(sql, db.dialect)
    except SQLSyntaxError as exc:
        candidate.error = str(exc)
        return candidate
    try:
        candidate.execution = execute_checked(db, candidate.checked, export=False, timeout_s=timeout_s)
    except QueryTimeoutError as exc:
        candidate.error, candidate.timed_out = str(exc), True
    except Exception as exc:  # driver errors differ per database; all go back to the LLM
        candidate.error = database_error_text(exc)
    if candidate.ran and schema is not None:
        candidate.doubts, candidate.in_place = review_values(db, candidate.checked.sql, schema)
    return candidate


def _relocate(db: Database, tried: list[Candidate], timeout_s: float, schema: Any) -> None:
    """After a doubtful candidate, the same query with its values put where they are stored
    (:func:`.review.values_in_place`), when that is certain: a candidate no model had to write."""
    moved = tried[-1].in_place
    if moved and not any(moved.strip() == other.sql.strip() for other in tried):
        try:
            tried.append(_try(db, moved, timeout_s, schema))
        except UnsafeSQLError:  # built from a checked query by code: cannot happen, but never run it
            pass


def vote(candidates: list[Candidate]) -> Candidate | None:
    """The candidate whose result most candidates agree on; an empty result counts half (a
    misspelled filter returns nothing, and two misspellings agree), a doubtful one (a value
    compared with a column that does not hold it) a quarter; ties go to the earliest (the
    greedy query first)."""
    groups: dict[tuple, list[int]] = {}
    for index, candidate in enumerate(candidates):
        if candidate.ran:
            groups.setdefault(candidate.signature(), []).append(index)
    if not groups:
        return None

    def weight(signature: tuple) -> float:
        return sum((0.5 if signature[0] == 0 else 1.0) * (0.25 if candidates[index].doubts else 1.0)
                   for index in groups[signature])

    best = max(groups, key=lambda signature: (weight(signature), -groups[signature][0]))
    return candidates[groups[best][0]]


def ask(question: str, database: str | None = None, max_retries: int = MAX_RETRIES,
        model: BaseChatModel | None = None, candidates: int | None = None,
        sample_always: bool | None = None) -> dict[str, Any]:
    """Answer ``question`` with one safe read-only query; the tool result of ``query_database``.

    ``model`` writes the SQL; the ``query_database`` tool passes the agent's
    (:func:`taller.llm.get_chat_model`), which is also the default for library and CLI callers.

    Up to ``candidates`` queries (setting ``sql_candidates``) are written: the greedy one, then
    samples, each checked and run read-only with a short timeout; writing stops as soon as two
    agree, and the result most agree on wins. Samples are drawn only when the greedy query fails
    or returns no rows, unless ``sample_always`` (setting ``sql_sample_always``). When none runs, a repair request shows the model
    what its query lacked (:func:`.generation.repair_facts`), at most ``max_retries`` times, and
    a repair that repeats a failed query is replaced by a sample.

    Returns a dict with ``sql``, ``columns``, ``rows``, ``row_count``, ``truncated``, ``csv``,
    ``cut`` (what was cut from a huge result, see :mod:`.execution`; None when nothing), ``summary``, ``table`` (Markdown preview), ``chart`` (a declarative spec or None),
    ``suggestions`` (two follow-up questions), ``agreement`` ("2/3": how many candidates gave
    the chosen result) and ``attempts`` (every query written, with its error). A refused query returns ``error``,
    ``refused: True`` with the reason and ``rule``, the :class:`~taller.knowledge.sql.safety.Rule`
    that refused it; a query that still fails after the retries returns ``error`` with the last
    database error.
    """
    from taller.config import get_settings
    from taller.llm import LLMUnavailableError, get_chat_model

    if not question or not question.strip():
        raise ToolError("the question is empty")
    settings = get_settings()
    wanted = max(1, settings.sql_candidates if candidates is None else candidates)
    sample_always = settings.sql_sample_always if sample_always is None else sample_always
    db = connect(database)
    schema = introspect(db)
    emit({"source": SOURCE, "message": "retrieving the relevant schema"})
    context = retrieve(db, question, schema)
    if model is None:
        try:
            model = get_chat_model()
        except LLMUnavailableError as exc:
            raise ToolError(str(exc)) from None
    messages = build_messages(question, db, context)
    base = {"question": question, "database": db.name, "dialect": db.dialect, "tables_used": context.tables}
    timeout_s = min(settings.sql_timeout_s, settings.sql_candidate_timeout_s)
    tried: list[Candidate] = []

    def refusal(sql: str, exc: UnsafeSQLError) -> dict[str, Any]:
        # A refusal is final: asking again would only invite another attempt at the same thing.
        message = f"Refused to run the query: {exc}."
        return {"error": message, "summary": message, "refused": True, "rule": exc.rule.value,
                "sql": sql, "columns": [], "rows": [], "attempts": _attempts(tried) + [{"sql": sql, "error": str(exc)}],
                **base}

    # 1. Candidates: the greedy query, then samples until two results agree.
    for index in range(wanted):
        emit({"source": SOURCE, "message": "writing the SQL" if index == 0 else f"writing another query to compare ({index + 1}/{wanted})"})
        try:
            sql = generate_sql(model, messages, temperature=0.0 if index == 0 else SAMPLE_TEMPERATURE, seed=index or None)
        except Exception as exc:  # a sample the model could not give: vote among what there is
            if index == 0:
                raise
            log.info("no further SQL candidate: %s", exc)
            break
        sql = _reviewed(sql, question, db, schema)
        if any(sql.strip() == other.sql.strip() for other in tried):
            tried.append(next(other for other in tried if other.sql.strip() == sql.strip()))
        else:
            try:
                # The greedy query gets the full statement timeout; samples a short one, so a
                # slow wrong guess cannot double the wait.
                tried.append(_try(db, sql, settings.sql_timeout_s if index == 0 else timeout_s, schema))
            except UnsafeSQLError as exc:
                if index == 0:
                    return refusal(sql, exc)
                continue  # a sampled write is dropped; the greedy query decides about refusing
            _relocate(db, tried, timeout_s, schema)
        ran = [candidate for candidate in tried if candidate.sound]
        if len(ran) >= 2 and len({candidate.signature() for candidate in ran}) < len(ran):
            break  # two agree: more samples would not change the vote
        if (index == 0 and not sample_always
                and any(c.sound and c.execution is not None and c.execution.row_count > 0 for c in tried)):
            break  # the greedy query (or its values put in place) ran and found rows: samples are for the doubtful cases
    # 2. Repairs: none ran cleanly, so the model is shown what the last query lacked (or what
    # it compared wrongly).
    retries = 0
    while not any(candidate.sound for candidate in tried) and retries < max_retries and not tried[0].timed_out:
        # (A query the database had to stop is not rewritten: the question asks too much.)
        retries += 1
        last = tried[-1]
        if last.ran:
            error = "the query ran, but a value it compares is not in that column"
            facts = "\n".join(last.doubts)
        else:
            error = last.error or ""
            facts = repair_facts(last.sql, error, schema, db.sqlglot_dialect)
        messages = build_messages(question, db, context, failed=(last.sql, error), facts=facts)
        emit({"source": SOURCE, "message": f"correcting the SQL (retry {retries})"})
        sql = _reviewed(generate_sql(model, messages), question, db, schema)
        if any(sql.strip() == other.sql.strip() for other in tried):
            # The same request would get the same answer: draw a different one instead.
            sql = _reviewed(generate_sql(model, messages, temperature=SAMPLE_TEMPERATURE, seed=100 + retries),
                            question, db, schema)
        try:
            tried.append(_try(db, sql, timeout_s, schema))
        except UnsafeSQLError as exc:
            return refusal(sql, exc)
        _relocate(db, tried, timeout_s, schema)
    chosen = vote(tried)
    if chosen is None and tried[0].timed_out:
        message = f"The query was stopped: {tried[0].error}. Try a narrower question."
        return {"error": message, "summary": message, "sql": tried[0].sql, "columns": [], "rows": [],
                "attempts": _attempts(tried), **base}
    if chosen is None:
        message = (f"Could not write a working query after {len(tried)} attempts; "
                   f"the last error was: {tried[-1].error}")
        return {"error": message, "summary": message, "sql": tried[-1].sql, "columns": [], "rows": [],
                "attempts": _attempts(tried), **base}
    emit({"source": SOURCE, "message": "running the query"})
    execution = chosen.execution
    assert execution is not None and chosen.checked is not None
    if not execution.complete or execution.truncated:
        # The vote ran it with a short timeout and no export: run the winner for real.
        try:
            execution = execute_checked(db, chosen.checked)
        except QueryTimeoutError as exc:
            message = f"The query was stopped: {exc}. Try a narrower question."
            return {"error": message, "summary": message, "sql": chosen.checked.sql, "columns": [], "rows": [],
                    "attempts": _attempts(tried), **base}
    agreeing = sum(1 for candidate in tried if candidate.ran and candidate.signature() == chosen.signature())
    return {
        "summary": summarise(execution.columns, execution),
        "sql": chosen.checked.sql,
        "columns": execution.columns,
        "rows": execution.rows,
        "row_count": execution.row_count,
        "truncated": execution.truncated,
        "csv": execution.csv,
        "cut": execution.cut,
        "table": markdown_table(execution.columns, execution.rows),
        "attempts": _attempts(tried),
        "agreement": f"{agreeing}/{len(tried)}",
        "seconds": round(execution.seconds, 3),
        "chart": chart_spec(execution.columns, execution.rows),
        "suggestions": suggest(question, execution.columns, execution.rows, schema,
                               list(chosen.checked.tables) or context.tables),
        **base,
    }


def _reviewed(sql: str, question: str, db: Any, schema: Any) -> str:
    """A written query after the review's rewrites that need no lookup: no ``LIMIT`` the question
    does not state, and rows grouped by their key as well as their name (:mod:`.review`)."""
    return group_by_key(unasked_limit(sql, question, db.sqlglot_dialect), schema, db.sqlglot_dialect)


def _attempts(tried: list[Candidate]) -> list[dict[str, str]]:
    return [{"sql": candidate.checked.sql if candidate.checked else candidate.sql, "error": candidate.error or ""}
            for candidate in tried]


def run_sql(sql: str, database: str | None = None, row_limit: int | None = None) -> dict[str, Any]:
    """Run a given query through the same checks (for the benchmark, tests and power users)."""
    db = connect(database)
    checked = check_sql(sql, db.dialect)
    execution = execute_checked(db, checked, row_limit=row_limit)
    return {"summary": summarise(execution.columns, execution), "sql": checked.sql,
            "columns": execution.columns, "rows": execution.rows, "row_count": execution.row_count,
            "truncated": execution.truncated, "csv": execution.csv, "cut": execution.cut}
