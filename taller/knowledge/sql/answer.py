"""The ``query_database`` answer: question → SQL → checked → run → rows and one sentence.

:func:`ask` ties the package together (connect, introspect, retrieve, generate, check, execute,
self-correct); :func:`summarise` and :func:`markdown_table` turn a result into words and a
preview without another LLM call, so the figures shown are the database's, never invented.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from taller.errors import ToolError
from taller.knowledge.sql.connection import SOURCE, connect
from taller.knowledge.sql.execution import Execution, database_error_text, execute_checked
from taller.knowledge.sql.generation import build_messages, generate_sql
from taller.knowledge.sql.memory import retrieve
from taller.knowledge.sql.safety import QueryTimeoutError, SQLSyntaxError, UnsafeSQLError, check_sql
from taller.knowledge.sql.schema import introspect
from taller.progress import emit

if TYPE_CHECKING:  # pragma: no cover
    from langchain_core.language_models import BaseChatModel

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


def _format_value(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:,.2f}".rstrip("0").rstrip(".") if value != int(value) else f"{int(value):,}"
    if isinstance(value, int) and not isinstance(value, bool):
        return f"{value:,}"
    return "NULL" if value is None else str(value)


def summarise(columns: list[str], execution: Execution) -> str:
    """One sentence that answers from the result (no LLM call: fast, and never invents a figure)."""
    rows = execution.rows
    if execution.row_count == 0:
        return "The query returned no rows."
    if execution.row_count == 1 and len(columns) == 1:
        return f"The answer is {_format_value(rows[0][0])} ({columns[0]})."
    if execution.row_count == 1:
        pairs = ", ".join(f"{c} = {_format_value(v)}" for c, v in zip(columns, rows[0]))
        return f"One row: {pairs}."
    first = ", ".join(f"{c} = {_format_value(v)}" for c, v in zip(columns[:4], rows[0][:4]))
    total = f"{execution.row_count:,}" if execution.complete else f"more than {execution.row_count:,}"
    text = f"The query returned {total} rows; the first is {first}."
    if execution.truncated:
        text += f" Showing the first {len(rows):,}"
        text += f"; all rows were saved to {execution.csv}." if execution.csv else "."
    return text


def ask(question: str, database: str | None = None, max_retries: int = MAX_RETRIES,
        model: BaseChatModel | None = None) -> dict[str, Any]:
    """Answer ``question`` with one safe read-only query; the tool result of ``query_database``.

    ``model`` writes the SQL; the ``query_database`` tool passes the agent's
    (:func:`taller.llm.get_chat_model`), which is also the default for library and CLI callers.

    Returns a dict with ``sql``, ``columns``, ``rows``, ``row_count``, ``truncated``, ``csv``,
    ``summary`` and ``table`` (Markdown preview). A refused query returns ``error``,
    ``refused: True`` with the reason and ``rule``, the :class:`~taller.knowledge.sql.safety.Rule`
    that refused it; a query that still fails after the retries returns ``error`` with the last
    database error.
    """
    from taller.llm import LLMUnavailableError, get_chat_model

    if not question or not question.strip():
        raise ToolError("the question is empty")
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
    attempts: list[dict[str, str]] = []
    base = {"question": question, "database": db.name, "dialect": db.dialect, "tables_used": context.tables}
    for attempt in range(max_retries + 1):
        emit({"source": SOURCE, "message": "writing the SQL" if attempt == 0 else f"correcting the SQL (retry {attempt})"})
        sql = generate_sql(model, messages)
        error: str | None = None
        try:
            checked = check_sql(sql, db.dialect)
        except UnsafeSQLError as exc:
            # A refusal is final: asking again would only invite another attempt at the same thing.
            message = f"Refused to run the query: {exc}."
            return {"error": message, "summary": message, "refused": True, "rule": exc.rule.value,
                    "sql": sql, "columns": [], "rows": [],
                    "attempts": attempts + [{"sql": sql, "error": str(exc)}], **base}
        except SQLSyntaxError as exc:
            error = str(exc)
        if error is None:
            emit({"source": SOURCE, "message": "running the query"})
            try:
                execution = execute_checked(db, checked)
            except QueryTimeoutError as exc:
                message = f"The query was stopped: {exc}. Try a narrower question."
                return {"error": message, "summary": message, "sql": checked.sql, "columns": [], "rows": [],
                        "attempts": attempts + [{"sql": checked.sql, "error": str(exc)}], **base}
            except Exception as exc:  # driver errors differ per database; all go back to the LLM
                error = database_error_text(exc)
            else:
                attempts.append({"sql": checked.sql, "error": ""})
                return {
                    "summary": summarise(execution.columns, execution),
                    "sql": checked.sql,
                    "columns": execution.columns,
                    "rows": execution.rows,
                    "row_count": execution.row_count,
                    "truncated": execution.truncated,
                    "csv": execution.csv,
                    "table": markdown_table(execution.columns, execution.rows),
                    "attempts": attempts,
                    "seconds": round(execution.seconds, 3),
                    **base,
                }
        attempts.append({"sql": sql, "error": error})
        # Self-correction: the failed SQL, the error and the schema go back to the model, as one
        # fresh request (small local models answered a follow-up turn with an empty query).
        messages = build_messages(question, db, context, failed=(sql, error))
    message = (f"Could not write a working query after {len(attempts)} attempts; "
               f"the last error was: {attempts[-1]['error']}")
    return {"error": message, "summary": message, "sql": attempts[-1]["sql"], "columns": [], "rows": [],
            "attempts": attempts, **base}


def run_sql(sql: str, database: str | None = None, row_limit: int | None = None) -> dict[str, Any]:
    """Run a given query through the same checks (for the benchmark, tests and power users)."""
    db = connect(database)
    checked = check_sql(sql, db.dialect)
    execution = execute_checked(db, checked, row_limit=row_limit)
    return {"summary": summarise(execution.columns, execution), "sql": checked.sql,
            "columns": execution.columns, "rows": execution.rows, "row_count": execution.row_count,
            "truncated": execution.truncated, "csv": execution.csv}
