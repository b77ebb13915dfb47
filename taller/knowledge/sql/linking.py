"""Schema linking: which stored values a question names, and how the tables join.

A small model writes ``WHERE status = 'on leave'`` when the table stores ``'on_leave'``, and
``WHERE country = 'Brasil'`` for a Spanish question about ``'Brazil'``; it joins a student to a
course through a column that does not exist instead of the linking table that holds the
relation. Both are facts of the database, not of the model, so they are read from it and put in
the prompt:

- :func:`value_index` reads the distinct values of every short text column (bounded: columns
  with more distinct values than ``MAX_DISTINCT`` are skipped, values longer than
  ``MAX_VALUE_CHARS`` too), once per schema;
- :func:`mentioned_values` finds the stored values a question names, written as stored, with
  other case, accents, spaces for underscores, or one letter off ("Brasil" → ``'Brazil'``);
- :func:`join_paths` lists the foreign-key joins among the tables shown, and names the
  linking tables (a table whose foreign keys join two others).

All of it is plain data; :mod:`.generation` decides how it reads in the prompt.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from typing import Any

from taller.knowledge.sql.schema import Schema

# A column with at most this many distinct values is indexed ("status", "country", "title").
MAX_DISTINCT = 2000
# Values longer than this are prose, not names a question repeats.
MAX_VALUE_CHARS = 60
# The most values a prompt lists, so a vague question does not bring half the table.
MAX_MENTIONED = 8
# Rows scanned per column at most: a huge table's column is read on a prefix (its values are
# samples then, still useful).
MAX_SCAN_ROWS = 200_000


@dataclass(frozen=True)
class StoredValue:
    """One distinct value of ``table.column``, with its folded form for matching."""

    table: str
    column: str
    value: str
    folded: str


def fold(text: str) -> str:
    """Lower case, no accents, underscores and hyphens as spaces, single spaces."""
    text = unicodedata.normalize("NFKD", text)
    text = "".join(ch for ch in text if not unicodedata.combining(ch)).lower()
    return " ".join(re.sub(r"[_\-/]+", " ", text).split())


def value_index(db: Any, schema: Schema) -> list[StoredValue]:
    """The distinct short text values of the database (cached on ``schema``)."""
    if schema.stored_values is not None:
        return schema.stored_values
    from sqlalchemy import column as sa_column
    from sqlalchemy import select
    from sqlalchemy import table as sa_table
    from sqlalchemy.exc import SQLAlchemyError

    from taller.config import get_settings
    from taller.knowledge.sql.safety import readonly_connection

    values: list[StoredValue] = []
    timeout = min(get_settings().sql_timeout_s, 5.0)
    with readonly_connection(db.engine, timeout) as connection:
        for table in schema.tables:
            keys = {name for fk in table.foreign_keys for name in fk.columns}
            for column in table.columns:
                kind = column.type.upper()
                if column.primary_key or column.name in keys or not any(
                        word in kind for word in ("CHAR", "TEXT", "STRING", "CLOB", "ENUM")):
                    continue
                col = sa_column(column.name)
                source = select(col).select_from(sa_table(table.name)).limit(MAX_SCAN_ROWS).subquery()
                query = select(source.c[column.name]).where(source.c[column.name].is_not(None)) \
                    .distinct().limit(MAX_DISTINCT + 1)
                try:
                    found = connection.execute(query).scalars().all()
                except SQLAlchemyError:
                    continue
                if len(found) > MAX_DISTINCT:
                    continue  # names of people, free text: too many to be a category
                for value in found:
                    if isinstance(value, str) and 0 < len(value) <= MAX_VALUE_CHARS:
                        values.append(StoredValue(table.name, column.name, value, fold(value)))
    schema.stored_values = values
    return values


def categories(values: list[StoredValue], limit: int = 12, max_chars: int = 30) -> dict[tuple[str, str], list[str]]:
    """Columns with at most ``limit`` distinct values, with all of them: the prompt lists these
    whole ("one of 'active', 'on_leave', 'retired'"), so a value named in other words maps to one."""
    by_column: dict[tuple[str, str], list[str]] = {}
    for item in values:
        by_column.setdefault((item.table, item.column), []).append(item.value)
    return {key: sorted(found) for key, found in by_column.items()
            if len(found) <= limit and all(len(value) <= max_chars for value in found)}


def _one_letter_off(a: str, b: str) -> bool:
    """Same length ±1 and one edit apart (substitution, insertion or deletion)."""
    if abs(len(a) - len(b)) > 1 or a == b:
        return a == b
    if len(a) == len(b):
        return sum(x != y for x, y in zip(a, b)) == 1
    short, long = (a, b) if len(a) < len(b) else (b, a)
    return any(long[:i] + long[i + 1:] == short for i in range(len(long)))


def mentioned_values(question: str, values: list[StoredValue], tables: list[str] | None = None) -> list[StoredValue]:
    """Stored values the question names: the same words folded ("on leave" → ``'on_leave'``),
    or, for single words of five letters or more, one letter off ("Brasil" → ``'Brazil'``).
    Longer matches first; a value inside a longer matched one is left out."""
    words = fold(question).split()
    words = [re.sub(r"[^\w]", "", w) for w in words]
    words = [w for w in words if w]
    text = " " + " ".join(words) + " "
    allowed = {name.lower() for name in tables} if tables else None
    hits: list[StoredValue] = []
    for item in values:
        if allowed is not None and item.table.lower() not in allowed:
            continue
        folded = re.sub(r"[^\w ]", "", item.folded).strip()
        if len(folded) < 3 or folded.isdigit():
            continue
        if f" {folded} " in text:
            hits.append(item)
        elif " " not in folded and len(folded) >= 5 and any(
                w[0] == folded[0] and _one_letter_off(w, folded) for w in words if len(w) >= 5):
            hits.append(item)
    hits.sort(key=lambda item: -len(item.folded))
    kept: list[StoredValue] = []
    for item in hits:
        if any(item.folded in other.folded and item.folded != other.folded for other in kept):
            continue
        kept.append(item)
    return kept[:MAX_MENTIONED]


def join_paths(schema: Schema, tables: list[str]) -> list[str]:
    """The foreign-key joins among ``tables``, one line each, and which tables link two others."""
    shown = {name.lower() for name in tables}
    lines: list[str] = []
    for table in schema.tables:
        if table.name.lower() not in shown:
            continue
        targets = []
        for fk in table.foreign_keys:
            if fk.table.lower() not in shown:
                continue
            condition = " AND ".join(f"{table.name}.{c} = {fk.table}.{r}" for c, r in zip(fk.columns, fk.referred))
            lines.append(condition)
            targets.append(fk.table)
        others = sorted({t for t in targets if t.lower() != table.name.lower()})
        keys = {c for fk in table.foreign_keys for c in fk.columns}
        # A linking table is mostly keys (enrollments: student, offering, grade); a table with
        # two references among many columns of its own (students: major, advisor) is not one.
        if len(others) >= 2 and len(keys) >= 0.4 * len(table.columns):
            lines.append(f"{table.name} links {' and '.join(others)} (join through it)")
    return lines
