"""Writing the SQL: the prompt, the model call with a JSON schema, and reading the query back.

The model is a parameter: :func:`generate_sql` asks whichever chat model it is given.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

from taller.errors import ModelReplyError
from taller.knowledge.sql.connection import Database
from taller.knowledge.sql.memory import Context
from taller.knowledge.sql.schema import Schema

if TYPE_CHECKING:  # pragma: no cover
    from langchain_core.language_models import BaseChatModel

# How common wordings read as SQL. General, not about any one database: each line is a kind of
# question small models get wrong on databases they have never seen (superlatives over dates,
# "both", "different", "including those with none", "never", self-references).
READING_HINTS = (
    "How questions read as SQL:\n"
    "- youngest, newest, most recent = the latest date (ORDER BY the date DESC); oldest, earliest, "
    "longest-serving = the earliest date (ORDER BY the date ASC).\n"
    "- both A and B (one thing related to A and also to B): INTERSECT of two queries, or GROUP BY the "
    "thing HAVING COUNT(DISTINCT ...) = 2; never IN ('A', 'B'), which means either.\n"
    "- how many different / distinct ...: COUNT(DISTINCT column).\n"
    "- each X including those with none: LEFT JOIN, conditions on the joined table inside ON, and "
    "COUNT(joined_table.column).\n"
    "- never, no, without: NOT EXISTS, NOT IN (subquery) or LEFT JOIN ... WHERE ... IS NULL.\n"
    "- a row that refers to another row of the same table (a manager, a prerequisite): join the table "
    "to itself with two aliases.\n"
    "- counting what a linking table records (enrollments, assignments, orders): count rows of that "
    "table, not a capacity or total column of another one.\n"
    "- Alias each table by its own name's initials (Genre AS g), never T1, T2: the alias says "
    "which table's column it is.\n"
    "- \"which X\" with a count or total per X: GROUP BY X's id column, and select X's name.\n"
    "- Return the columns the question asks about (names or titles rather than ids), and no filter "
    "the question does not state."
)

SQL_SCHEMA = {
    "type": "object",
    "properties": {"sql": {"type": "string", "description": "one read-only SQL query"}},
    "required": ["sql"],
}


def build_messages(question: str, db: Database, context: Context,
                   failed: tuple[str, str] | None = None, facts: str = "") -> list[Any]:
    """The prompt: rules as the system message; schema, docs, examples and question as the user's.

    ``failed`` is ``(sql, error)`` of the previous attempt, for a self-correction request, and
    ``facts`` what that attempt lacked (:func:`repair_facts`).
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
        'question asks for a number of items. Reply with JSON: {"sql": "<the query>"}.\n'
        + READING_HINTS
    )
    parts = [f"Database schema:\n{context.schema_text}"]
    if context.joins:
        parts.append("Joins (foreign keys):\n" + "\n".join(f"- {line}" for line in context.joins))
    if context.values:
        parts.append("Values in the question, as stored:\n" + "\n".join(f"- {line}" for line in context.values))
    if context.documentation:
        parts.append("Documentation:\n" + "\n".join(f"- {d}" for d in context.documentation))
    if context.examples:
        parts.append("Examples of correct queries:\n" + "\n".join(
            f"Question: {q}\nSQL: {s}" for q, s in context.examples))
    if failed is not None:
        shown = failed[0].strip() or "(an empty reply)"
        parts.append(f"A previous attempt for this question failed.\nSQL: {shown}\nError: {failed[1]}\n"
                     + (f"{facts}\n" if facts else "")
                     + "Write a corrected query that uses only the tables and columns of the schema above.")
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


def generate_sql(model: BaseChatModel, messages: list[Any], temperature: float = 0.0, seed: int | None = None) -> str:
    """One query from ``model``: its JSON ``sql`` field, or the SQL in a reply that is not JSON.
    With ``temperature`` > 0, a sample (the pipeline votes among several)."""
    from taller.llm import invoke_json

    try:
        reply = invoke_json(model, messages, SQL_SCHEMA, temperature=temperature, seed=seed)
    except ModelReplyError as exc:  # not JSON: keep what the model said so the retry can show it
        return extract_sql(exc.reply)
    return extract_sql(reply)


# --- repair: what a failed query lacked -----------------------------------------------------------

_MISSING_COLUMN = re.compile(r"(?:no such column:\s*|column\s+\"?)([\w.]+)\"?(?:\s+does not exist)?", re.I)
_MISSING_TABLE = re.compile(r"(?:no such table:\s*|relation\s+\"?)([\w.]+)", re.I)


def _tables_in(sql: str, dialect: str) -> list[str]:
    import sqlglot
    from sqlglot import exp

    try:
        tree = sqlglot.parse_one(sql, read=dialect)
    except Exception:  # an unparsable query names no table we can trust
        return []
    return list(dict.fromkeys(table.name for table in tree.find_all(exp.Table) if table.name))


def join_path(schema: Schema, start: str, goal: str) -> list[str]:
    """The foreign-key joins from ``start`` to ``goal`` (shortest), as ``a.x = b.y`` lines."""
    edges: dict[str, list[tuple[str, str]]] = {}
    for table in schema.tables:
        for fk in table.foreign_keys:
            condition = " AND ".join(f"{table.name}.{c} = {fk.table}.{r}" for c, r in zip(fk.columns, fk.referred))
            edges.setdefault(table.name.lower(), []).append((fk.table, condition))
            edges.setdefault(fk.table.lower(), []).append((table.name, condition))
    paths: dict[str, list[str]] = {start.lower(): []}
    queue = [start]
    while queue:
        current = queue.pop(0)
        if current.lower() == goal.lower():
            return paths[current.lower()]
        for neighbour, condition in edges.get(current.lower(), []):
            if neighbour.lower() not in paths:
                paths[neighbour.lower()] = paths[current.lower()] + [condition]
                queue.append(neighbour)
    return []


def repair_facts(sql: str, error: str, schema: Schema, dialect: str) -> str:
    """What the failed ``sql`` lacked, read from the schema: the real columns of the tables it
    named, the tables that do have the column it invented and how to join them, or the list of
    tables. (Sending the error and the same schema again got the same query back.)"""
    facts: list[str] = []
    named = [schema.table(name) for name in _tables_in(sql, dialect)]
    named = [table for table in named if table is not None]
    column = _MISSING_COLUMN.search(error)
    table_error = _MISSING_TABLE.search(error)
    if column:
        wanted = column.group(1).split(".")[-1].lower()
        for table in named:
            facts.append(f"Table {table.name} has only these columns: {', '.join(c.name for c in table.columns)}.")
        holders = [t for t in schema.tables if any(c.name.lower() == wanted for c in t.columns)]
        if not holders:  # a name that sounds right: columns that contain it or that it contains
            holders = [t for t in schema.tables
                       if any(wanted in c.name.lower() or c.name.lower() in wanted for c in t.columns if len(c.name) > 2)]
        for holder in holders[:3]:
            if any(holder.name == table.name for table in named):
                continue
            similar = [c.name for c in holder.columns if wanted in c.name.lower() or c.name.lower() in wanted]
            line = f"{', '.join(similar) or wanted} is a column of {holder.name}"
            path = join_path(schema, named[0].name, holder.name) if named else []
            if path:
                line += "; join it with " + " and ".join(path)
            facts.append(line + ".")
    elif table_error:
        facts.append("The tables are: " + ", ".join(t.name for t in schema.tables) + ".")
    elif "ambiguous" in error.lower():
        facts.append("Write every column as table.column (or alias.column).")
    return "\n".join(facts)
