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
- :func:`group_by_key` — ``GROUP BY playlist.name`` merges two playlists called "Music"; the
  rows' key is grouped too when other tables of the query refer to them.

The pipeline (:mod:`.answer`) treats a query with misplaced values as doubtful: it runs the same
query with the values put where they are stored when that is certain (:func:`values_in_place`),
draws other candidates, repairs with these facts, and picks it only when nothing better runs.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
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


def _comparisons(tree: Any) -> list[tuple[Any, Any, Any, bool]]:
    """(comparison node, column, string literal node, is_like) for ``col = 'x'``, ``'x' = col``,
    ``col IN ('x', …)`` and ``col LIKE 'x'``, in query order."""
    from sqlglot import exp

    found: list[tuple[Any, Any, Any, bool]] = []
    for node in tree.walk():
        node = node[0] if isinstance(node, tuple) else node
        if isinstance(node, (exp.EQ, exp.Like, exp.ILike)):
            left, right = node.this, node.expression
            if isinstance(right, exp.Column) and isinstance(left, exp.Literal):
                left, right = right, left
            if isinstance(left, exp.Column) and isinstance(right, exp.Literal) and right.is_string:
                found.append((node, left, right, not isinstance(node, exp.EQ)))
        elif isinstance(node, exp.In) and isinstance(node.this, exp.Column):
            for item in node.expressions:
                if isinstance(item, exp.Literal) and item.is_string:
                    found.append((node, node.this, item, False))
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


@dataclass
class Misplaced:
    """A string the query compares with ``table.column`` that the column does not hold, and the
    columns that do hold it (``places``: stored values, as spelled there)."""

    comparison: Any
    literal: Any
    table: str
    column: str
    value: str
    like: bool
    places: list[Any]


def _misplaced(db: Database, tree: Any, schema: Schema) -> list[Misplaced]:
    from taller.knowledge.sql.linking import fold, value_index

    aliases = _aliases(tree, schema)
    tree_tables = [name for name in dict.fromkeys(aliases.values()) if name]
    stored: dict[str, list[Any]] | None = None
    found: list[Misplaced] = []
    seen: set[tuple[str, str, str]] = set()
    for comparison, column, literal, like in _comparisons(tree)[:MAX_CHECKED_LITERALS]:
        value = literal.this
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
        places = list(stored.get(wanted, []))
        if like and not places:
            places = [item for key, items in stored.items() if wanted in key for item in items]
        if places:
            found.append(Misplaced(comparison, literal, table, real, value, like, places))
    return found


def _facts(items: list[Misplaced], schema: Schema) -> list[str]:
    from taller.knowledge.sql.generation import join_path

    facts: list[str] = []
    for item in items:
        shown = f"{item.table}.{item.column}"
        lines: list[str] = []
        for place in item.places:
            where = f"{place.table}.{place.column}"
            if len(lines) >= MAX_PLACES or any(where in line for line in lines):
                continue
            if where.lower() == shown.lower():
                lines.append(f"{shown} stores it as '{place.value}'")
                continue
            path = join_path(schema, item.table, place.table) if place.table.lower() != item.table.lower() else []
            line = f"'{place.value}' is a value of {where}"
            if path:
                line += " (join " + " and ".join(path) + ")"
            lines.append(line)
        comparison = "LIKE" if item.like else "="
        facts.append(f"{shown} {comparison} '{item.value}' matches no row: {shown} does not hold that value; "
                     + "; ".join(lines) + ".")
    return facts


def review_values(db: Database, sql: str, schema: Schema) -> tuple[list[str], str | None]:
    """Both results of one look at ``sql``'s string comparisons: the facts of
    :func:`misplaced_values` and the query of :func:`values_in_place` (None when nothing moves)."""
    tree = _parse(sql, db.sqlglot_dialect)
    if tree is None:
        return [], None
    items = _misplaced(db, tree, schema)
    if not items:
        return [], None
    facts = _facts(items, schema)
    return facts, (tree.sql(dialect=db.sqlglot_dialect) if _put_in_place(items, schema) else None)


def misplaced_values(db: Database, sql: str, schema: Schema) -> list[str]:
    """Facts about the string literals of ``sql`` that the column they are compared with does not
    hold but another column does (see the module docstring); empty when there are none."""
    return review_values(db, sql, schema)[0]


def values_in_place(db: Database, sql: str, schema: Schema) -> str | None:
    """``sql`` with each misplaced value put where it is stored, when that is certain; else None.

    Two cases are certain, and both are facts of the database:

    - the column stores the value spelled otherwise, once (``status = 'on leave'`` →
      ``status = 'on_leave'``);
    - the column is a foreign key to a table that stores the value in one column: the code is
      looked up by the name (``students.major = 'Biology'`` → ``students.major IN (SELECT
      departments.dept_no FROM departments WHERE departments.dept_name = 'Biology')``).

    Small models shown these facts in a repair prompt often write the same query again; this
    candidate needs no model, and it goes through the same checks and vote as any other.
    """
    return review_values(db, sql, schema)[1]


def _put_in_place(items: list[Misplaced], schema: Schema) -> bool:
    """Edit the parsed query of ``items`` in place (see :func:`values_in_place`); whether any moved."""
    from sqlglot import exp

    changed = False
    for item in items:
        if item.like:
            continue
        same = {place.value for place in item.places
                if (place.table.lower(), place.column.lower()) == (item.table.lower(), item.column.lower())}
        if len(same) == 1:
            item.literal.replace(exp.Literal.string(same.pop()))
            changed = True
            continue
        table = schema.table(item.table)
        key = next((fk for fk in table.foreign_keys if len(fk.columns) == 1 and fk.columns[0].lower() == item.column.lower()),
                   None) if table is not None else None
        if key is None or not isinstance(item.comparison, exp.EQ):
            continue
        holders = {(place.table, place.column, place.value) for place in item.places if place.table.lower() == key.table.lower()}
        if len(holders) != 1:
            continue
        holder_table, holder_column, stored_value = holders.pop()
        lookup = (exp.select(exp.column(key.referred[0], table=holder_table))
                  .from_(exp.to_table(holder_table))
                  .where(exp.EQ(this=exp.column(holder_column, table=holder_table), expression=exp.Literal.string(stored_value))))
        column_node = item.comparison.this if isinstance(item.comparison.this, exp.Column) else item.comparison.expression
        item.comparison.replace(exp.In(this=column_node.copy(), query=exp.Subquery(this=lookup)))
        changed = True
    return changed


# A column that names a row of its table (the label a person reads), not a category of it.
_LABEL = re.compile(r"(^|_)(name|title|label|nombre|titulo)$|(first|last|full)_?name$", re.I)


def group_by_key(sql: str, schema: Schema, dialect: str) -> str:
    """``sql`` grouping by a row's key as well as its name, when it groups by the name of rows
    that other tables of the query refer to.

    "Which playlists have more than 1000 songs?" written ``GROUP BY Playlist.Name`` merges two
    playlists called "Music" into one group of twice the size; grouping by
    ``Playlist.PlaylistId`` too keeps each playlist apart. Only the outermost query changes, only
    for a name-like column (name, title, label, first/last name) of a table with a one-column
    primary key that a foreign key of another table in the query points to (so the rows counted
    come from that other table), and only when the key is not grouped already. Where names are
    unique the result is the same."""
    from sqlglot import exp

    tree = _parse(sql, dialect)
    if tree is None or not isinstance(tree, exp.Select):
        return sql
    group = tree.args.get("group")
    if not isinstance(group, exp.Group) or not group.expressions:
        return sql
    aliases = _aliases(tree, schema)
    tree_tables = [name for name in dict.fromkeys(aliases.values()) if name]
    # Tables some other table of the query points to (tree_tables are all schema tables).
    referred = {fk.table.lower() for name in tree_tables for fk in schema.table(name).foreign_keys
                if fk.table.lower() != name.lower()}
    grouped = {(_column_table(e, aliases, tree_tables, schema) or "").lower() + "." + e.name.lower()
               for e in group.expressions if isinstance(e, exp.Column)}
    added = []
    for expression in list(group.expressions):
        if not isinstance(expression, exp.Column) or not _LABEL.search(expression.name):
            continue
        table_name = _column_table(expression, aliases, tree_tables, schema)
        table = schema.table(table_name) if table_name else None
        if table is None or table.name.lower() not in referred:
            continue
        keys = [c.name for c in table.columns if c.primary_key]
        if len(keys) != 1 or f"{table.name.lower()}.{keys[0].lower()}" in grouped:
            continue
        qualifier = expression.table or None
        if qualifier is None and len(tree_tables) > 1:
            qualifier = next((alias for alias, real in aliases.items() if real == table.name and alias != table.name.lower()),
                             table.name)
        added.append(exp.column(keys[0], table=qualifier))
        grouped.add(f"{table.name.lower()}.{keys[0].lower()}")
    if not added:
        return sql
    group.set("expressions", list(group.expressions) + added)
    return tree.sql(dialect=dialect)
