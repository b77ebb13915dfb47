"""Writing the SQL: the prompt, the model call with a JSON schema, and reading the query back.

The model is a parameter: :func:`generate_sql` asks whichever chat model it is given.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

from taller.errors import ModelReplyError
from taller.knowledge.sql.connection import Database
from taller.knowledge.sql.memory import Context

if TYPE_CHECKING:  # pragma: no cover
    from langchain_core.language_models import BaseChatModel

SQL_SCHEMA = {
    "type": "object",
    "properties": {"sql": {"type": "string", "description": "one read-only SQL query"}},
    "required": ["sql"],
}


def build_messages(question: str, db: Database, context: Context,
                   failed: tuple[str, str] | None = None) -> list[Any]:
    """The prompt: rules as the system message; schema, docs, examples and question as the user's.

    ``failed`` is ``(sql, error)`` of the previous attempt, for a self-correction request.
    """
    from langchain_core.messages import HumanMessage, SystemMessage

    dialect = {"postgresql": "PostgreSQL", "sqlite": "SQLite", "mysql": "MySQL"}.get(db.dialect, db.dialect)
    system = (
        f"You write one {dialect} SQL query that answers the user's question about the database "
        "described below.\n"
        "Rules: write a single SELECT query (WITH and UNION are fine); never INSERT, UPDATE, DELETE, "
        "CREATE, DROP, ALTER, PRAGMA or ATTACH. Use only the tables and columns listed. Questions may "
        "be in Spanish or English; values in the data are stored as shown in the examples "
        "(e.g. country names in English). Give readable column aliases. Use LIMIT only when the "
        'question asks for a number of items. Reply with JSON: {"sql": "<the query>"}.'
    )
    parts = [f"Database schema:\n{context.schema_text}"]
    if context.documentation:
        parts.append("Documentation:\n" + "\n".join(f"- {d}" for d in context.documentation))
    if context.examples:
        parts.append("Examples of correct queries:\n" + "\n".join(
            f"Question: {q}\nSQL: {s}" for q, s in context.examples))
    if failed is not None:
        shown = failed[0].strip() or "(an empty reply)"
        parts.append(f"A previous attempt for this question failed.\nSQL: {shown}\nError: {failed[1]}\n"
                     "Write a corrected query that uses only the tables and columns of the schema above.")
    parts.append(f"Question: {question}")
    return [SystemMessage(content=system), HumanMessage(content="\n\n".join(parts))]


def extract_sql(reply: Any) -> str:
    """The SQL of a model reply: the JSON ``sql`` field, else a fenced or bare query."""
    if isinstance(reply, dict):
        value = reply.get("sql") or reply.get("query") or ""
        return str(value).strip()
    text = str(reply).strip()
    fence = re.search(r"```(?:sql)?\s*(.*?)```", text, re.S | re.I)
    if fence:
        return fence.group(1).strip()
    start = re.search(r"\b(WITH|SELECT)\b", text, re.I)
    return text[start.start():].strip() if start else text


def generate_sql(model: BaseChatModel, messages: list[Any]) -> str:
    """One query from ``model``: its JSON ``sql`` field, or the SQL in a reply that is not JSON."""
    from taller.llm import invoke_json

    try:
        reply = invoke_json(model, messages, SQL_SCHEMA)
    except ModelReplyError as exc:  # not JSON: keep what the model said so the retry can show it
        return extract_sql(exc.reply)
    return extract_sql(reply)
