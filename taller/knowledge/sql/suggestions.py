"""Two follow-up questions to offer after a database answer, built from the result and the schema.

No LLM call: an answer should not wait seconds for its suggestions, and a suggestion written
from the database's own facts cannot name a column or a value that does not exist. Each one is
phrased as a follow-up of the question just answered ("And …?" / "¿Y …?"), in the question's
language, so that sending it as the next message goes through the agent's follow-up rewrite
(which carries the database over) and becomes a standalone question the pipeline answers.

The kinds, most specific first:

1. **another value** — the question names a stored value ("… in Brazil"): the same question for
   another value of that column ("And for Canada?");
2. **a breakdown** — a category column of the tables the query read (2–30 distinct values that
   repeat), or the label of a small table they refer to, not already in the result
   ("And broken down by BillingCountry?", "And broken down by Genre.Name?");
3. **the top 5** — by a numeric column of the result when it has more than five rows, else by
   a numeric column of those tables that the question does not already name;
4. **a count** — the rows of a table next to the ones read, so there are two whenever the
   schema has anything to say.

``schema.stored_values`` (filled by :func:`.linking.value_index`, which retrieval runs before
every answer) is where the values and their counts come from; without it only kinds 3 and 4
remain.
"""

from __future__ import annotations

import logging
import re
from typing import Any

from taller.knowledge.language import detect_language
from taller.knowledge.sql.linking import StoredValue, fold, mentioned_values
from taller.knowledge.sql.schema import Column, Schema, Table

log = logging.getLogger(__name__)

COUNT = 2
TOP_N = 5
# A breakdown reads as a chart: enough groups to compare, few enough to see.
MIN_GROUPS, MAX_GROUPS = 2, 30
# A category repeats: a column whose values are nearly all different (phones, e-mails, names of
# people) is an identifier, not something to group by.
MAX_DISTINCT_SHARE = 0.8
# Text columns nobody groups by, whatever their counts say.
_NOT_A_CATEGORY = re.compile(r"(phone|fax|e-?mail|address|postal|zip|url|password|comment|description|note)", re.I)
_NUMERIC_TYPE = re.compile(r"(INT|NUMERIC|DECIMAL|REAL|FLOAT|DOUBLE|MONEY|NUMBER)", re.I)
_FRACTIONAL_TYPE = re.compile(r"(NUMERIC|DECIMAL|REAL|FLOAT|DOUBLE|MONEY)", re.I)

_TEMPLATES = {
    "en": {"value": "And for {value}?", "breakdown": "And broken down by {column}?",
           "top_result": "And the top 5 by {column}?", "top_table": "And the top 5 {table} by {column}?",
           "count": "And how many rows are in {table}?"},
    "es": {"value": "¿Y para {value}?", "breakdown": "¿Y desglosado por {column}?",
           "top_result": "¿Y los 5 primeros por {column}?", "top_table": "¿Y los 5 primeros de {table} por {column}?",
           "count": "¿Y cuántas filas hay en {table}?"},
}

# The language cue: Spanish marks and function words against English ones (the agent has a
# fuller detector, but the domain layer may not import the agent).
def language(question: str) -> str:
    """``"es"`` or ``"en"``: the language the question reads as (English when unsure)."""
    return detect_language(question)


def suggest(question: str, columns: list[str], rows: list[list[Any]], schema: Schema,
            tables: list[str]) -> list[str]:
    """Up to two follow-up questions (see the module docstring), deterministic for one input."""
    try:
        return _suggest(question, columns, rows, schema, tables)
    except Exception:  # a suggestion is an extra: a surprise in the schema must not cost the answer
        log.exception("no follow-up suggestions for %r", question)
        return []


def _suggest(question: str, columns: list[str], rows: list[list[Any]], schema: Schema,
             tables: list[str]) -> list[str]:
    templates = _TEMPLATES[language(question)]
    used = [table for name in tables if (table := schema.table(name)) is not None]
    if not used:
        return []
    stored = schema.stored_values or []
    distinct = _distinct(stored)  # (table, column) → its distinct values, read once
    folded_question = f" {' '.join(re.findall(r'[a-z0-9]+', fold(question)))} "
    in_result = {str(column).lower() for column in columns}
    found: list[str] = []

    def offer(text: str | None) -> None:
        if text and text not in found and len(found) < COUNT:
            found.append(text)

    offer(_another_value(question, stored, distinct, used, templates))
    offer(_breakdown(schema, used, distinct, in_result | {column for _, column in _shown(columns, rows, distinct)},
                     folded_question, templates))
    offer(_top(columns, rows, used, in_result, folded_question, templates))
    offer(_count(schema, used, templates))
    return found


def _named(name: str, folded_question: str) -> bool:
    """Whether the question already names ``name`` ("BillingCountry" → "billing country",
    "Genre" → "genres")."""
    spaced = fold(re.sub(r"(?<=[a-z])(?=[A-Z])", " ", name))
    words = " ".join(re.findall(r"[a-z0-9]+", spaced))
    if not words:
        return False
    forms = {words, words.replace(" ", ""), words + "s", words + "es"}
    if words.endswith("y"):
        forms.add(words[:-1] + "ies")
    return any(f" {form} " in folded_question for form in forms)


def _shown(columns: list[str], rows: list[list[Any]],
           distinct: dict[tuple[str, str], set[str]]) -> set[tuple[str, str]]:
    """The stored columns whose values a result column shows, whatever its alias ("country" for
    ``BillingCountry``): every text value of the result column is one of that column's."""
    shown: set[tuple[str, str]] = set()
    for index in range(len(columns)):
        values = {row[index] for row in rows
                  if isinstance(row, (list, tuple)) and len(row) > index and isinstance(row[index], str)}
        if values:
            shown |= {key for key, known in distinct.items() if values <= known}
    return shown


def _distinct(stored: list[StoredValue]) -> dict[tuple[str, str], set[str]]:
    by_column: dict[tuple[str, str], set[str]] = {}
    for item in stored:
        by_column.setdefault((item.table.lower(), item.column.lower()), set()).add(item.value)
    return by_column


def _another_value(question: str, stored: list[StoredValue], distinct: dict[tuple[str, str], set[str]],
                   used: list[Table], templates: dict[str, str]) -> str | None:
    """The same question for the stored value after the one it names, in sorted order."""
    if not stored:
        return None
    hits = mentioned_values(question, stored, [table.name for table in used])
    if not hits:
        return None
    hit = hits[0]  # the longest match: the value the question is most clearly about
    values = sorted(distinct.get((hit.table.lower(), hit.column.lower()), set()))
    others = [value for value in values if value != hit.value]
    if not others:
        return None
    after = [value for value in others if value > hit.value]
    return templates["value"].format(value=(after or others)[0])


def _is_category(table: Table, column: Column, count: int) -> bool:
    if column.primary_key or _NOT_A_CATEGORY.search(column.name) or not MIN_GROUPS <= count <= MAX_GROUPS:
        return False
    return table.row_count is None or count <= MAX_DISTINCT_SHARE * table.row_count


def _breakdown(schema: Schema, used: list[Table], distinct: dict[tuple[str, str], set[str]], in_result: set[str],
               folded_question: str, templates: dict[str, str]) -> str | None:
    """A category column of the tables read, else the label of a small table they refer to."""
    counts = {key: len(values) for key, values in distinct.items()}
    own: list[tuple[int, int, str]] = []
    for rank, table in enumerate(used):
        for column in table.columns:
            count = counts.get((table.name.lower(), column.name.lower()))
            if count is None or column.name.lower() in in_result or _named(column.name, folded_question):
                continue
            if _is_category(table, column, count):
                own.append((rank, count, column.name))
    if own:
        return templates["breakdown"].format(column=min(own)[2])
    # A small table that a read table refers to ("Track.GenreId → Genre"): group by its label.
    read = {table.name.lower() for table in used}
    for table in used:
        for fk in table.foreign_keys:
            target = schema.table(fk.table)
            if target is None or target.name.lower() in read or target.row_count is None:
                continue
            if not MIN_GROUPS <= target.row_count <= MAX_GROUPS or _named(target.name, folded_question):
                continue
            label = next((c for c in target.columns if not c.primary_key and not _NUMERIC_TYPE.search(c.type)
                          and not _NOT_A_CATEGORY.search(c.name)), None)
            # (A result column of the same name is another table's: this one was not read.)
            if label is not None:
                return templates["breakdown"].format(column=f"{target.name}.{label.name}")
    return None


def _identifier(name: str) -> bool:
    return bool(re.search(r"(^id$|_id$|[a-z]Id$|ID$)", name))


def _top(columns: list[str], rows: list[list[Any]], used: list[Table], in_result: set[str],
         folded_question: str, templates: dict[str, str]) -> str | None:
    """The top five: of the result by its number column, else of a read table by a numeric column."""
    if len(rows) > TOP_N and len(columns) >= 2:
        for index, name in enumerate(columns):
            values = [row[index] for row in rows if isinstance(row, (list, tuple)) and len(row) > index]
            numbers = [v for v in values if isinstance(v, (int, float)) and not isinstance(v, bool)]
            # Only a named column: "COUNT(*)" or "SUM(t.Total)" would make an odd question.
            if index > 0 and numbers and len(numbers) == len([v for v in values if v is not None]) \
                    and re.fullmatch(r"[A-Za-z_][\w ]*", str(name)) and not _identifier(str(name)):
                return templates["top_result"].format(column=name)
    candidates: list[tuple[int, int, int, str, str]] = []
    for rank, table in enumerate(used):
        keys = {name for fk in table.foreign_keys for name in fk.columns}
        for position, column in enumerate(table.columns):
            if (column.primary_key or column.name in keys or _identifier(column.name)
                    or not _NUMERIC_TYPE.search(column.type) or _named(column.name, folded_question)
                    or column.name.lower() in in_result):
                continue
            # Amounts (NUMERIC, REAL) before counts of things: "top by Total" before "by Quantity".
            fractional = 0 if _FRACTIONAL_TYPE.search(column.type) else 1
            candidates.append((rank, fractional, position, table.name, column.name))
    if not candidates:
        return None
    _, _, _, table_name, column_name = min(candidates)
    return templates["top_table"].format(table=table_name, column=column_name)


def _count(schema: Schema, used: list[Table], templates: dict[str, str]) -> str | None:
    """How many rows a table next to the read ones holds (one they refer to, else one that refers
    to them), else the first read table."""
    read = {table.name.lower() for table in used}
    for table in used:
        for fk in table.foreign_keys:
            target = schema.table(fk.table)
            if target is not None and target.name.lower() not in read:
                return templates["count"].format(table=target.name)
    for table in schema.tables:
        if table.name.lower() not in read and any(fk.table.lower() in read for fk in table.foreign_keys):
            return templates["count"].format(table=table.name)
    return templates["count"].format(table=used[0].name)
