"""Reviewing a query that runs: what it may still have wrong that the database will not say.

A query that runs is not a query that answers. Two mistakes of small models are facts of the
question and the database, so code finds them without another model call:

- :func:`unasked_limit` — a ``LIMIT 10`` nobody asked for ("which countries spent the most?")
  cuts the answer. The outermost ``LIMIT n`` with ``n > 1`` is kept only when the question states
  ``n`` (digits or number words, English or Spanish, read by :mod:`taller.text`); ``LIMIT 1``
  stays (it is how a superlative is written: "which course has the most students?").
- :func:`misplaced_values` — ``WHERE students.major = 'Biology'`` when ``major`` holds department
  codes and ``'Biology'`` is a department *name*: the query runs and counts nothing. Each string
  literal the query compares with a column is looked up in that column (one bounded read-only
  query each, through the same checked path as every query); when the column does not hold it
  and another column does (as stored, or written differently: case, accents, ``on leave`` /
  ``on_leave``), the facts say where it is stored and how to join there. A value stored nowhere
  is not a mistake of the query (the answer may be "none").

The pipeline (:mod:`.answer`) treats a query with misplaced values as doubtful: it draws other
candidates, repairs with these facts, and picks it only when nothing better runs.
"""

from __future__ import annotations

import logging
from typing import Any

from taller.knowledge.sql.connection import Database
from taller.knowledge.sql.schema import Schema

log = logging.getLogger(__name__)

# Comparisons checked per query at most (each costs one small read-only query).
MAX_CHECKED_LITERALS = 6
# Seconds one lookup may take (an unindexed column of a huge table is not worth waiting for).
LOOKUP_TIMEOUT_S = 1.0
# Places a misplaced value is reported in at most.
MAX_PLACES = 3


def _parse(sql: str, dialect: str) -> Any:
    import sqlglot

    logger = logging.getLogger("sqlglot")
    previous = logger.level
    logger.setLevel(logging.ERROR)
    try:
        return sqlglot.parse_one(sql, read=dialect)
    except Exception:  # a query sqlglot cannot read is left as it is
        return None
    finally:
        logger.setLevel(previous)


def unasked_limit(sql: str, question: str, dialect: str) -> str:
    """``sql`` without its outermost ``LIMIT n`` when ``n > 1`` and the question never says ``n``."""
    from sqlglot import exp

    from taller.text import number_mentions

    tree = _parse(sql, dialect)
    if tree is None:
        return sql
    limit = tree.args.get("limit")
    if not isinstance(limit, exp.Limit) or tree.args.get("offset") is not None:
        return sql
    amount = limit.expression
    if not isinstance(amount, exp.Literal) or amount.is_string:
        return sql
    try:
        count = int(amount.this)
    except ValueError:
        return sql
    if count <= 1 or any(abs(value - count) < 1e-9 for value in number_mentions(question)):
        return sql
    tree.set("limit", None)
    return tree.sql(dialect=dialect)


def _aliases(tree: Any, schema: Schema) -> dict[str, str | None]:
    """Alias or name (lower case) → the schema table it stands for; None when it is ambiguous
    (one alias used for two tables in different subqueries) or not a table (a CTE)."""
    from sqlglot import exp

    found: dict[str, str | None] = {}
    for node in tree.find_all(exp.Table):
        table = schema.table(node.name) if node.name else None
        real = table.name if table is not None else None
        for key in {node.alias_or_name.lower(), node.name.lower()}:
            if key in found and found[key] != real:
                found[key] = None
            else:
                found.setdefault(key, real)
    return found


def _column_table(column: Any, aliases: dict[str, str | None], tree_tables: list[str], schema: Schema) -> str | None:
    """The table a column reference of the query belongs to, when that is certain."""
    name = column.name.lower()
    if column.table:
        return aliases.get(column.table.lower())
    holders = []
    for table_name in tree_tables:
        table = schema.table(table_name)
        if table is not None and any(c.name.lower() == name for c in table.columns):
            holders.append(table.name)
    return holders[0] if len(set(holders)) == 1 else None


def _comparisons(tree: Any) -> list[tuple[Any, str, bool]]:
    """(column, string literal, is_like) for ``col = 'x'``, ``'x' = col``, ``col IN ('x', …)``
    and ``col LIKE 'x'``, in query order."""
    from sqlglot import exp

    found: list[tuple[Any, str, bool]] = []
    for node in tree.walk():
        node = node[0] if isinstance(node, tuple) else node
        if isinstance(node, (exp.EQ, exp.Like, exp.ILike)):
            left, right = node.this, node.expression
            if isinstance(right, exp.Column) and isinstance(left, exp.Literal):
                left, right = right, left
            if isinstance(left, exp.Column) and isinstance(right, exp.Literal) and right.is_string:
                found.append((left, right.this, not isinstance(node, exp.EQ)))
        elif isinstance(node, exp.In) and isinstance(node.this, exp.Column):
            for item in node.expressions:
                if isinstance(item, exp.Literal) and item.is_string:
                    found.append((node.this, item.this, False))
    return found


def _holds(db: Database, table: str, column: str, value: str, like: bool) -> bool | None:
    """Whether ``table.column`` holds ``value`` (or a match of the LIKE pattern); None when the
    lookup could not tell (timeout, error)."""
    from sqlglot import exp

    from taller.knowledge.sql.execution import execute_checked
    from taller.knowledge.sql.safety import check_sql

    target = exp.column(column, table=table, quoted=True)
    literal = exp.Literal.string(value)
    condition = exp.Like(this=target, expression=literal) if like else exp.EQ(this=target, expression=literal)
    query = exp.select("1").from_(exp.to_table(table, quoted=True)).where(condition).limit(1)
    try:
        checked = check_sql(query.sql(dialect=db.sqlglot_dialect), db.dialect)
        execution = execute_checked(db, checked, row_limit=1, export=False, timeout_s=LOOKUP_TIMEOUT_S)
    except Exception as exc:  # a lookup that fails says nothing about the query
        log.debug("value lookup in %s.%s failed: %s", table, column, exc)
        return None
    return execution.row_count > 0


def misplaced_values(db: Database, sql: str, schema: Schema) -> list[str]:
    """Facts about the string literals of ``sql`` that the column they are compared with does not
    hold but another column does (see the module docstring); empty when there are none."""
    from taller.knowledge.sql.generation import join_path
    from taller.knowledge.sql.linking import fold, value_index

    tree = _parse(sql, db.sqlglot_dialect)
    if tree is None:
        return []
    aliases = _aliases(tree, schema)
    tree_tables = [name for name in dict.fromkeys(aliases.values()) if name]
    stored: dict[str, list[Any]] | None = None
    facts: list[str] = []
    seen: set[tuple[str, str, str]] = set()
    for column, value, like in _comparisons(tree)[:MAX_CHECKED_LITERALS]:
        table = _column_table(column, aliases, tree_tables, schema)
        if table is None or not value.strip():
            continue
        real = next((c.name for c in schema.table(table).columns if c.name.lower() == column.name.lower()), None)
        if real is None or (table, real, value) in seen:
            continue
        seen.add((table, real, value))
        if _holds(db, table, real, value, like) is not False:
            continue
        if stored is None:
            stored = {}
            for item in value_index(db, schema):
                stored.setdefault(item.folded, []).append(item)
        wanted = fold(value.replace("%", " ").replace("_", " ") if like else value)
        if len(wanted) < 2:
            continue
        places = stored.get(wanted, [])
        if like and not places:
            places = [item for key, items in stored.items() if wanted in key for item in items]
        if not places:
            continue
        shown = f"{table}.{real}"
        lines = []
        for item in places:
            where = f"{item.table}.{item.column}"
            if len(lines) >= MAX_PLACES or any(where in line for line in lines):
                continue
            if where.lower() == shown.lower():
                lines.append(f"{shown} stores it as '{item.value}'")
                continue
            path = join_path(schema, table, item.table) if item.table.lower() != table.lower() else []
            line = f"'{item.value}' is a value of {where}"
            if path:
                line += " (join " + " and ".join(path) + ")"
            lines.append(line)
        if lines:
            comparison = "LIKE" if like else "="
            facts.append(f"{shown} {comparison} '{value}' matches no row: {shown} does not hold that value; "
                         + "; ".join(lines) + ".")
    return facts
