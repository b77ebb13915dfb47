"""Self-check of the text-to-SQL benchmark data: builds the databases, runs every gold query, prints counts.

Builds ``university``, ``hr`` and ``library`` twice into temporary folders with ``build_databases.py``
(the two builds must be byte-identical, or the gold answers would not be fixed), loads
``bench/data/sql_questions.jsonl`` and fails (exit status 1) when:

* a line is not valid JSON, lacks a field, repeats an id, names an unknown database, language, split or
  ``kind`` label;
* the split does not alternate ``tuning`` / ``heldout`` in file order within each (db, lang) group, each
  group starting with the split the groups before it left behind (tuning on a tie);
* a gold query errors, returns no rows, or returns only NULLs (``SELECT AVG(x) ... WHERE`` nothing matched
  gives one row of NULL, which is an empty answer in disguise);
* a ``LIMIT`` is used at the top level without an ``ORDER BY``, since the rows kept would then depend
  on an order nobody asked for, or inside a subquery, where the tie check below cannot see it;
* a top-level ``ORDER BY`` leaves a tie that shows in the answer. The query is run twice more with the
  output columns appended to the ``ORDER BY`` as tie-breakers, once ascending and once descending.
  Rows with equal sort keys then come out in opposite orders, so if the two answers differ, the gold
  depends on how SQLite breaks a tie. For a ``superlative`` with ``LIMIT k`` this is the boundary
  check: rows k and k+1 of the query without its LIMIT do not tie on the sort values (or tie between
  rows that read the same). For an ordered list it means the order asked for is total;
* a ``superlative`` written without a LIMIT (``WHERE x = (SELECT MAX(x) ...)``) returns more than one
  row, i.e. a tie at the top, unless the question is marked ``no-limit-trap`` (asks for all of them);
* a ``no-limit-trap`` gold (a plural answer) has a top-level LIMIT or returns fewer than two rows.

    .venv/bin/python bench/data/sql/check_questions.py [--show]

``--show`` also prints each question with the first rows of its answer, for reading them side by side.
"""

from __future__ import annotations

import collections
import json
import re
import sqlite3
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import build_databases  # noqa: E402

QUESTIONS = HERE.parent / "sql_questions.jsonl"
DATABASES = ("university", "hr", "library")
LANGS = ("en", "es")
SPLITS = ("tuning", "heldout")
KINDS = {"simple", "filter", "aggregate", "group", "having", "join", "linking-table", "self-join",
         "set-intersect", "set-except", "nested", "superlative", "order", "date", "distinct", "null",
         "value-in-words", "no-limit-trap", "count-distinct"}
FIELDS = ("id", "db", "split", "lang", "kind", "question", "sql")

problems: list[str] = []


def complain(where: str, message: str) -> None:
    problems.append(f"{where}: {message}")


def top_level_keywords(sql: str) -> list[tuple[str, int]]:
    """Positions of ORDER BY and LIMIT outside parentheses and string literals, so that a subquery's
    own ORDER BY ... LIMIT is not mistaken for the outer query's."""
    found = []
    depth = 0
    quote = None
    upper = sql.upper()
    i = 0
    while i < len(sql):
        ch = sql[i]
        if quote:
            if ch == quote:
                quote = None
        elif ch in ("'", '"'):
            quote = ch
        elif ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        elif depth == 0 and (i == 0 or not (sql[i - 1].isalnum() or sql[i - 1] == "_")):
            for word in ("ORDER BY", "LIMIT"):
                end = i + len(word)
                if upper.startswith(word, i) and (end == len(sql) or not (sql[end].isalnum() or sql[end] == "_")):
                    found.append((word, i))
        i += 1
    return found


def with_tie_breakers(sql: str, columns: int, direction: str) -> str | None:
    """The query with ``, 1 dir, 2 dir, ...`` appended to its top-level ORDER BY; None without one."""
    keywords = top_level_keywords(sql.rstrip().rstrip(";"))
    orders = [pos for word, pos in keywords if word == "ORDER BY"]
    if not orders:
        return None
    body = sql.rstrip().rstrip(";")
    limits = [pos for word, pos in keywords if word == "LIMIT" and pos > orders[-1]]
    cut = limits[0] if limits else len(body)
    extra = ", ".join(f"{n} {direction}" for n in range(1, columns + 1))
    return f"{body[:cut].rstrip()}, {extra} {body[cut:]}".rstrip()


def check_query(item: dict, connection: sqlite3.Connection) -> list[tuple]:
    where = item["id"]
    kinds = set(item["kind"].split("+"))
    sql = item["sql"]
    try:
        cursor = connection.execute(sql)
        rows = cursor.fetchall()
    except sqlite3.Error as exc:
        complain(where, f"gold query fails: {exc}")
        return []
    if not rows or all(value is None for row in rows for value in row):
        complain(where, "gold query returns no rows (or only NULL)")
        return rows
    keywords = top_level_keywords(sql)
    has_order = any(word == "ORDER BY" for word, _ in keywords)
    has_limit = any(word == "LIMIT" for word, _ in keywords)
    if has_limit and not has_order:
        complain(where, "LIMIT without ORDER BY: the rows kept depend on an unstated order")
    if len(re.findall(r"\bLIMIT\b", sql, flags=re.IGNORECASE)) > sum(word == "LIMIT" for word, _ in keywords):
        complain(where, "LIMIT inside a subquery: the tie check below only covers the outer query")
    if has_order:
        columns = len(cursor.description)
        answers = []
        for direction in ("ASC", "DESC"):
            variant = with_tie_breakers(sql, columns, direction)
            try:
                answers.append(connection.execute(variant).fetchall())
            except sqlite3.Error as exc:
                complain(where, f"tie-breaker variant fails ({exc}): {variant}")
                return rows
        if answers[0] != answers[1]:
            complain(where, "a tie in the ORDER BY changes the answer (tie at the boundary or in the order)")
    if "superlative" in kinds and not has_limit and len(rows) > 1 and "no-limit-trap" not in kinds:
        complain(where, f"superlative without LIMIT returns {len(rows)} rows: a tie at the top")
    if "no-limit-trap" in kinds:
        if has_limit:
            complain(where, "no-limit-trap question but the gold has a LIMIT")
        if len(rows) < 2:
            complain(where, "no-limit-trap question but the answer has fewer than two rows")
    return rows


def load() -> list[dict]:
    items = []
    for number, line in enumerate(QUESTIONS.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            items.append(json.loads(line))
        except json.JSONDecodeError as exc:
            complain(f"line {number}", f"not valid JSON ({exc.msg})")
    return items


def validate(items: list[dict]) -> None:
    seen = set()
    for item in items:
        where = item.get("id", "?")
        missing = [field for field in FIELDS if not item.get(field)]
        if missing:
            complain(where, f"missing {missing}")
            continue
        if where in seen:
            complain(where, "duplicate id")
        seen.add(where)
        if item["db"] not in DATABASES:
            complain(where, f"unknown db {item['db']!r}")
        if item["lang"] not in LANGS:
            complain(where, f"unknown lang {item['lang']!r}")
        if item["split"] not in SPLITS:
            complain(where, f"unknown split {item['split']!r}")
        unknown = set(item["kind"].split("+")) - KINDS
        if unknown:
            complain(where, f"unknown kind labels {sorted(unknown)}")
    # The split alternates within each (db, lang) group in file order. A group starts with the split
    # that is behind in the totals of the groups before it (tuning on a tie), so odd-sized groups even
    # out and the two halves differ by at most one question.
    groups: dict[tuple, list[dict]] = {}
    for item in items:
        groups.setdefault((item.get("db"), item.get("lang")), []).append(item)
    totals = collections.Counter()
    for group, members in groups.items():
        first = 1 if totals["heldout"] < totals["tuning"] else 0
        for index, item in enumerate(members):
            expected = SPLITS[(index + first) % 2]
            totals[expected] += 1
            if item.get("split") != expected:
                complain(item.get("id", "?"), f"split should be {expected} (alternating within {group})")


# Difficulty tiers for the mix report: a question is "harder" if it carries any of these labels, else
# "join/group" if it joins or groups, else "simple/filter".
HARDER = {"set-intersect", "set-except", "nested", "having", "linking-table", "self-join", "superlative"}


def tier(kind: str) -> str:
    labels = set(kind.split("+"))
    if labels & HARDER:
        return "harder"
    if labels & {"join", "group"}:
        return "join/group"
    return "simple/filter"


def print_counts(items: list[dict]) -> None:
    def table(title: str, counter: collections.Counter) -> None:
        print(f"\n{title}")
        for key, value in sorted(counter.items(), key=lambda kv: (-kv[1], str(kv[0]))):
            print(f"  {key!s:<28} {value}")

    print(f"{len(items)} questions")
    table("per db", collections.Counter(i["db"] for i in items))
    table("per lang", collections.Counter(i["lang"] for i in items))
    table("per split", collections.Counter(i["split"] for i in items))
    table("per db/lang/split", collections.Counter(f"{i['db']}/{i['lang']}/{i['split']}" for i in items))
    table("per difficulty tier", collections.Counter(tier(i["kind"]) for i in items))
    table("per difficulty tier and split", collections.Counter(f"{tier(i['kind'])}/{i['split']}" for i in items))
    table("per kind label (a question counts once for each of its labels)",
          collections.Counter(label for i in items for label in i["kind"].split("+")))
    table("per kind label and split", collections.Counter(
        f"{label}/{i['split']}" for i in items for label in i["kind"].split("+")))


def main(argv: list[str]) -> int:
    show = "--show" in argv
    items = load()
    validate(items)
    with tempfile.TemporaryDirectory() as first, tempfile.TemporaryDirectory() as second:
        paths = build_databases.build_all(Path(first))
        again = build_databases.build_all(Path(second))
        for name in DATABASES:
            if paths[name].read_bytes() != again[name].read_bytes():
                complain(name, "two builds differ: the builder is not deterministic")
        connections = {name: sqlite3.connect(paths[name]) for name in DATABASES}
        for item in items:
            if item.get("db") not in connections or not item.get("sql"):
                continue
            rows = check_query(item, connections[item["db"]])
            if show:
                print(f"\n{item['id']} [{item['kind']}] {item['question']}")
                for row in rows[:6]:
                    print("   ", row)
                if len(rows) > 6:
                    print(f"    ... {len(rows)} rows")
        for connection in connections.values():
            connection.close()
    print_counts(items)
    if problems:
        print(f"\n{len(problems)} problem(s):")
        for problem in problems:
            print("  " + problem)
        return 1
    print("\nall gold queries run, return rows and have no tie at a boundary")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
