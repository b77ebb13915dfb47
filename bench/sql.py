"""Execution accuracy of the NL→SQL pipeline, per LLM backend, with latency: Chinook or the unseen set.

    python bench/sql.py --backend embedded --model /path/to/model.gguf
    python bench/sql.py --backend ollama --model llama3.1
    python bench/sql.py --backend oracle          # the gold SQL through the whole pipeline
    python bench/sql.py --backend embedded --limit 10 --json out.json
    python bench/sql.py --set unseen --split tuning --json tuning.json   # three unseen databases
    python bench/sql.py --set unseen --split tuning --db hr              # one of them
    python bench/sql.py --backend oracle --set unseen                    # every gold through the checks
    python bench/sql.py --set unseen --split tuning --json tuning.json --resume   # finish a cut run

Two question sets (``--set``):

* ``chinook`` (the default): :data:`QUESTIONS`, 36 questions (20 in English, 16 in Spanish) written
  for Chinook with a gold query each, asked of the default "sales" database built from the fixture
  (or ``--database``). Small models have memorised Chinook, so this set flatters them.
* ``unseen``: ``bench/data/sql_questions.jsonl``, 196 questions (English and Spanish, each with a
  gold query, a ``kind`` label and a ``split``) over three invented SQLite databases, ``university``,
  ``hr`` and ``library``, that no model has seen (see ``bench/data/sql/README.md``). The databases are
  built into a temporary folder by ``bench/data/sql/build_databases.py`` on every run and registered
  for Taller through the ``databases`` setting (``TALLER_DATABASES``, a JSON name → SQLAlchemy URL
  map). The golds are run with the standard library's ``sqlite3``, outside the pipeline, so a gold
  the pipeline refuses shows up as a miss (with its rule) instead of stopping the run.
  ``--split tuning|heldout|all`` picks a half (default all) and ``--db NAME`` one database.

  **Tune on tuning only.** Rules, prompts, examples and documentation may be changed by looking at
  the ``tuning`` half only. The ``heldout`` half is run and its summary reported, but its questions,
  answers and misses are never read while tuning: the per-question lines of held-out questions are
  not printed unless ``--show-heldout`` is given (only once the tuning is over). ``--json`` still
  writes every record, so keep that file closed while tuning.

A question counts as correct (``accuracy``, strict) when the pipeline's result
(``taller.knowledge.sql.ask``, with its retrieval, safety checks and self-correction retries)
equals the gold query's result as a multiset of rows, tolerating a different column order and
rounding to 2 decimals (execution accuracy, as in Spider; row order is not checked). ``relaxed``
also accepts a result that holds every gold column plus extra ones (e.g. a name *and* its total),
numbers within 0.01 relative or 0.005 absolute of the gold (an unrounded average rounded to one
decimal), and a person's first and last name (gold columns named ``first…`` then ``last…`` or
``surname``) returned as one column joined by a space, in either order. The two figures are kept
apart. On ``unseen`` the summary gives both overall, per database, per language and per kind label
(a question counts once for each of its ``+``-joined labels), how many questions never ran (every
attempt errored or was refused), how many were retried, and the latency percentiles.

``oracle`` is not a model: a scripted backend that answers with the gold SQL. It checks that
every gold query passes the safety checks and measures the pipeline's own overhead (schema,
prompt, parse, read-only execution) without an LLM. Its summary lists every question the
pipeline did not answer with the gold's rows, with the error and the safety rule that refused it.

Latency is per question, wall clock, including the LLM calls of every retry. Without ``--model``
the embedded backend uses the installed model of the user's Taller home (``taller model install``),
while the run itself gets a fresh temporary ``TALLER_HOME``, so no remembered example or
documentation of the user's leaks into the prompt.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import sqlite3
import statistics
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
UNSEEN_QUESTIONS = ROOT / "bench" / "data" / "sql_questions.jsonl"
UNSEEN_BUILDER = ROOT / "bench" / "data" / "sql"  # build_databases.py
UNSEEN_DATABASES = ("university", "hr", "library")

# (language, question, gold SQL)
QUESTIONS: list[tuple[str, str, str]] = [
    ("en", "How many customers are there?", "SELECT COUNT(*) FROM Customer"),
    ("es", "¿Cuántos artistas hay en la base de datos?", "SELECT COUNT(*) FROM Artist"),
    ("en", "List the names of all genres.", "SELECT Name FROM Genre"),
    ("es", "¿Qué tipos de medio hay disponibles?", "SELECT Name FROM MediaType"),
    ("en", "Which country has the most customers?",
     "SELECT Country FROM Customer GROUP BY Country ORDER BY COUNT(*) DESC LIMIT 1"),
    ("es", "¿Cuántos clientes hay en Brasil?", "SELECT COUNT(*) FROM Customer WHERE Country = 'Brazil'"),
    ("en", "What is the total revenue of all invoices?", "SELECT SUM(Total) FROM Invoice"),
    ("es", "¿Cuál fue el total facturado en el año 2023?",
     "SELECT SUM(Total) FROM Invoice WHERE strftime('%Y', InvoiceDate) = '2023'"),
    ("en", "How many tracks belong to the Rock genre?",
     "SELECT COUNT(*) FROM Track t JOIN Genre g ON t.GenreId = g.GenreId WHERE g.Name = 'Rock'"),
    ("es", "¿Cuántas canciones tiene el álbum 'Let There Be Rock'?",
     "SELECT COUNT(*) FROM Track t JOIN Album a ON t.AlbumId = a.AlbumId WHERE a.Title = 'Let There Be Rock'"),
    ("en", "Which artist has the most albums?",
     "SELECT ar.Name FROM Artist ar JOIN Album al ON al.ArtistId = ar.ArtistId "
     "GROUP BY ar.ArtistId ORDER BY COUNT(*) DESC LIMIT 1"),
    ("en", "List the titles of the albums by AC/DC.",
     "SELECT al.Title FROM Album al JOIN Artist ar ON al.ArtistId = ar.ArtistId WHERE ar.Name = 'AC/DC'"),
    ("es", "¿Cómo se llama el empleado cuyo cargo es 'General Manager'?",
     "SELECT FirstName, LastName FROM Employee WHERE Title = 'General Manager'"),
    ("en", "How many employees does the company have?", "SELECT COUNT(*) FROM Employee"),
    ("en", "What are the top 5 billing countries by total invoice amount?",
     "SELECT BillingCountry, SUM(Total) FROM Invoice GROUP BY BillingCountry ORDER BY SUM(Total) DESC LIMIT 5"),
    ("es", "¿Cuáles son los 3 países con más dinero facturado?",
     "SELECT BillingCountry, SUM(Total) FROM Invoice GROUP BY BillingCountry ORDER BY SUM(Total) DESC LIMIT 3"),
    ("en", "What is the average invoice total?", "SELECT AVG(Total) FROM Invoice"),
    ("es", "¿Cuántas facturas se emitieron cada año?",
     "SELECT strftime('%Y', InvoiceDate), COUNT(*) FROM Invoice GROUP BY 1"),
    ("en", "How many invoices are there for each billing country?",
     "SELECT BillingCountry, COUNT(*) FROM Invoice GROUP BY BillingCountry"),
    ("es", "¿Qué cliente ha gastado más dinero en total? Dame su nombre y apellido.",
     "SELECT c.FirstName, c.LastName FROM Customer c JOIN Invoice i ON i.CustomerId = c.CustomerId "
     "GROUP BY c.CustomerId ORDER BY SUM(i.Total) DESC LIMIT 1"),
    ("en", "Which sales support agent has the most customers? Give first and last name.",
     "SELECT e.FirstName, e.LastName FROM Employee e JOIN Customer c ON c.SupportRepId = e.EmployeeId "
     "GROUP BY e.EmployeeId ORDER BY COUNT(*) DESC LIMIT 1"),
    ("es", "¿Qué listas de reproducción tienen más de 1000 canciones?",
     "SELECT p.Name FROM Playlist p JOIN PlaylistTrack pt ON pt.PlaylistId = p.PlaylistId "
     "GROUP BY p.PlaylistId HAVING COUNT(*) > 1000"),
    ("en", "What is the name of the longest track?", "SELECT Name FROM Track ORDER BY Milliseconds DESC LIMIT 1"),
    ("es", "¿Cuántos álbumes tiene Iron Maiden?",
     "SELECT COUNT(*) FROM Album al JOIN Artist ar ON al.ArtistId = ar.ArtistId WHERE ar.Name = 'Iron Maiden'"),
    ("en", "How many tracks have no composer?", "SELECT COUNT(*) FROM Track WHERE Composer IS NULL"),
    ("es", "¿Cuál es el género con más canciones?",
     "SELECT g.Name FROM Genre g JOIN Track t ON t.GenreId = g.GenreId GROUP BY g.GenreId ORDER BY COUNT(*) DESC LIMIT 1"),
    ("en", "Which genre brings in the most revenue from invoice lines?",
     "SELECT g.Name FROM InvoiceLine il JOIN Track t ON il.TrackId = t.TrackId JOIN Genre g ON t.GenreId = g.GenreId "
     "GROUP BY g.GenreId ORDER BY SUM(il.UnitPrice * il.Quantity) DESC LIMIT 1"),
    ("en", "How many customers does each support representative have? Show the employee id and the count.",
     "SELECT SupportRepId, COUNT(*) FROM Customer GROUP BY SupportRepId"),
    ("es", "¿En qué ciudad vive el cliente con el correo 'luisg@embraer.com.br'?",
     "SELECT City FROM Customer WHERE Email = 'luisg@embraer.com.br'"),
    ("en", "How many tracks cost more than 0.99?", "SELECT COUNT(*) FROM Track WHERE UnitPrice > 0.99"),
    ("es", "¿Cuántas pistas son del tipo de medio 'Protected AAC audio file'?",
     "SELECT COUNT(*) FROM Track t JOIN MediaType m ON t.MediaTypeId = m.MediaTypeId "
     "WHERE m.Name = 'Protected AAC audio file'"),
    ("en", "List the first and last names of the customers from Canada.",
     "SELECT FirstName, LastName FROM Customer WHERE Country = 'Canada'"),
    ("es", "¿Qué artistas tienen la palabra 'Orchestra' en su nombre?",
     "SELECT Name FROM Artist WHERE Name LIKE '%Orchestra%'"),
    ("es", "¿Cuántas facturas tienen un total mayor de 15?", "SELECT COUNT(*) FROM Invoice WHERE Total > 15"),
    ("en", "How many distinct composers are there?", "SELECT COUNT(DISTINCT Composer) FROM Track"),
    ("en", "How many invoice lines does invoice number 5 have?",
     "SELECT COUNT(*) FROM InvoiceLine WHERE InvoiceId = 5"),
]



def _norm(value: Any) -> Any:
    if isinstance(value, float):
        return round(value, 2)
    if isinstance(value, (int, str)) or value is None:
        return value
    return str(value)


def _rows(rows: list[list[Any]]) -> Counter:
    return Counter(tuple(_norm(v) for v in row) for row in rows)


def _rows_any_column_order(rows: list[list[Any]]) -> Counter:
    return Counter(tuple(sorted((repr(_norm(v)) for v in row))) for row in rows)


def same_result(predicted: list[list[Any]], gold: list[list[Any]]) -> bool:
    """Execution match: same multiset of rows, column order free, floats to 2 decimals."""
    return _rows(predicted) == _rows(gold) or _rows_any_column_order(predicted) == _rows_any_column_order(gold)


# Numbers closer than this count as equal in the relaxed match (either bound suffices).
REL_TOLERANCE = 0.01
ABS_TOLERANCE = 0.005


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _close(a: Any, b: Any) -> bool:
    """Equal, or two numbers (one a float) within the relative or the absolute tolerance."""
    if _is_number(a) and _is_number(b):
        if isinstance(a, float) or isinstance(b, float):
            gap = abs(a - b)
            return gap <= ABS_TOLERANCE or gap <= REL_TOLERANCE * max(abs(a), abs(b))
        return a == b
    return _norm(a) == _norm(b)


def _sort_key(value: Any) -> tuple:
    if value is None:
        return (0, 0.0, "")
    if _is_number(value):
        return (1, float(value), "")
    return (2, 0.0, str(_norm(value)))


def _same_column(predicted: list[Any], gold: list[Any]) -> bool:
    """The same multiset of values, numbers within the tolerance (both sorted, then paired)."""
    return len(predicted) == len(gold) and all(
        _close(p, g) for p, g in zip(sorted(predicted, key=_sort_key), sorted(gold, key=_sort_key)))


def _gold_columns_present(predicted: list[list[Any]], gold: list[list[Any]]) -> bool:
    """Every gold column appears (same values, same row count) among the predicted columns."""
    if len(predicted) != len(gold) or not gold:
        return same_result(predicted, gold)
    if not predicted[0]:
        return False
    columns = [[row[i] for row in predicted] for i in range(len(predicted[0]))]
    return all(any(_same_column(column, [row[j] for row in gold]) for column in columns)
               for j in range(len(gold[0])))


def _joined_names(gold: list[list[Any]], gold_columns: list[str] | None) -> list[list[list[Any]]]:
    """The gold with each (first name, last name) column pair joined into one column, both orders."""
    variants: list[list[list[Any]]] = []
    names = [str(c).rsplit(".", 1)[-1].lower() for c in gold_columns or []]
    for i in range(len(names) - 1):
        if "first" in names[i] and ("last" in names[i + 1] or "surname" in names[i + 1]):
            for a, b in ((i, i + 1), (i + 1, i)):
                variants.append([[*row[:i], f"{row[a]} {row[b]}", *row[i + 2:]] for row in gold])
    return variants


def relaxed_match(predicted: list[list[Any]], gold: list[list[Any]],
                  gold_columns: list[str] | None = None) -> bool:
    """Every gold column appears (same values, same row count) among the predicted columns, numbers
    within 0.01 relative or 0.005 absolute; a first and last name pair of gold columns (named by
    ``gold_columns``) may come back as one column, the two joined by a space in either order."""
    if _gold_columns_present(predicted, gold):
        return True
    return any(_gold_columns_present(predicted, variant) for variant in _joined_names(gold, gold_columns))


# ------------------------------------------------------------------------------------------------
# Question sets
# ------------------------------------------------------------------------------------------------

def load_unseen(split: str = "all", db: str | None = None) -> list[dict[str, Any]]:
    """The unseen set's questions (``sql_questions.jsonl``), optionally one half and one database."""
    items = [json.loads(line) for line in UNSEEN_QUESTIONS.read_text(encoding="utf-8").splitlines() if line.strip()]
    return [q for q in items if split in ("all", q["split"]) and db in (None, q["db"])]


def build_unseen(out_dir: Path) -> dict[str, Path]:
    """Build ``university``, ``hr`` and ``library`` into ``out_dir`` with the set's own builder."""
    sys.path.insert(0, str(UNSEEN_BUILDER))
    try:
        import build_databases
    finally:
        sys.path.remove(str(UNSEEN_BUILDER))
    return build_databases.build_all(out_dir)


def sqlite_gold(path: Path, sql: str) -> tuple[list[str], list[list[Any]]]:
    """Run a gold query with the standard library, read-only, outside Taller's pipeline."""
    connection = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        cursor = connection.execute(sql)
        rows = [list(row) for row in cursor.fetchall()]
        return [d[0] for d in cursor.description], rows
    finally:
        connection.close()


def _percentile(sorted_values: list[float], q: float) -> float:
    return sorted_values[min(len(sorted_values) - 1, int(round(q * (len(sorted_values) - 1))))]


def _accuracy(rows: list[dict], key: str = "correct") -> str:
    return f"{sum(r[key] for r in rows)}/{len(rows)} ({100 * sum(r[key] for r in rows) / max(1, len(rows)):.0f} %)"


def _breakdown(records: list[dict], label_of: Any) -> dict[str, dict[str, str]]:
    """Strict and relaxed accuracy per label; ``label_of(record)`` gives a record's labels."""
    groups: dict[str, list[dict]] = {}
    for record in records:
        for label in label_of(record):
            groups.setdefault(label, []).append(record)
    return {label: {"accuracy": _accuracy(rows), "relaxed": _accuracy(rows, "relaxed")}
            for label, rows in sorted(groups.items(), key=lambda kv: (-len(kv[1]), kv[0]))}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--backend", default="embedded", choices=["embedded", "ollama", "oracle", "auto"])
    parser.add_argument("--model", default=None, help="GGUF path (embedded) or Ollama tag")
    parser.add_argument("--set", dest="question_set", default="chinook", choices=["chinook", "unseen"],
                        help="chinook (36 questions) or unseen (196 questions over three new databases)")
    parser.add_argument("--split", default="all", choices=["all", "tuning", "heldout"],
                        help="unseen only: which half (tune on tuning only)")
    parser.add_argument("--db", default=None, choices=list(UNSEEN_DATABASES), help="unseen only: one database")
    parser.add_argument("--show-heldout", action="store_true",
                        help="print the per-question lines of held-out questions (only when the tuning is over)")
    parser.add_argument("--database", default=None, help="chinook only: configured name or URL (default: sales)")
    parser.add_argument("--limit", type=int, default=None, help="only the first N questions")
    parser.add_argument("--retries", type=int, default=2, help="self-correction retries per question")
    parser.add_argument("--json", type=Path, default=None, help="write per-question results here")
    parser.add_argument("--threads", type=int, default=2, help="CPU threads for the embedded model")
    parser.add_argument("--resume", action="store_true",
                        help="with --json: keep the records already in that file (a run cut short) and "
                             "ask only the other questions; latency percentiles then mix both runs")
    parser.add_argument("--candidates", type=int, default=None,
                        help="SQL candidates per question (setting sql_candidates; 1 = no voting)")
    parser.add_argument("--every", type=int, default=1, help="only every Nth question (a spread sample)")
    args = parser.parse_args(argv)
    unseen = args.question_set == "unseen"
    if unseen and args.database:
        parser.error("--database is for --set chinook; the unseen set builds its own databases")
    if not unseen and (args.split != "all" or args.db or args.show_heldout):
        parser.error("--split, --db and --show-heldout are for --set unseen")

    if (args.backend in ("embedded", "auto") and not args.model
            and "TALLER_EMBEDDED_MODEL_PATH" not in os.environ and "TALLER_HOME" not in os.environ):
        # The run gets a temporary home below; the installed model lives in the user's one.
        from taller.config import load_settings
        from taller.llm import embedded_model_path

        installed = embedded_model_path(load_settings())
        if installed is not None:
            os.environ["TALLER_EMBEDDED_MODEL_PATH"] = str(installed)
    os.environ.setdefault("TALLER_HOME", tempfile.mkdtemp(prefix="taller-bench-sql-"))
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    if args.backend == "embedded":
        os.environ["TALLER_EMBEDDED_THREADS"] = str(args.threads)
    if args.candidates:
        os.environ["TALLER_SQL_CANDIDATES"] = str(args.candidates)
        if args.model:
            os.environ["TALLER_EMBEDDED_MODEL_PATH"] = args.model

    # Each question: id, db (a database name for ask), lang, question, gold SQL, split, kind.
    if unseen:
        db_dir = Path(tempfile.mkdtemp(prefix="taller-bench-sql-dbs-"))
        paths = build_unseen(db_dir)
        configured = json.loads(os.environ.get("TALLER_DATABASES") or "{}")
        configured.update({name: f"sqlite:///{path}" for name, path in paths.items()})
        os.environ["TALLER_DATABASES"] = json.dumps(configured)
        questions = load_unseen(args.split, args.db)
    else:
        questions = [{"id": None, "db": args.database, "lang": lang, "question": question, "sql": gold,
                      "split": None, "kind": None} for lang, question, gold in QUESTIONS]
    if args.every > 1:
        questions = questions[:: args.every]
    if args.limit:
        questions = questions[: args.limit]

    from taller.llm import FakeChatModel, describe, get_chat_model
    from taller.config import get_settings
    from taller.knowledge import sql as sqlmod

    get_settings(reload=True)
    golds: list[tuple[list[str], list[list[Any]]]] = []
    for q in questions:
        if unseen:
            golds.append(sqlite_gold(paths[q["db"]], q["sql"]))
        else:
            result = sqlmod.run_sql(q["sql"], q["db"], row_limit=100_000)
            golds.append((result["columns"], result["rows"]))

    if args.backend == "oracle":
        model = None  # one scripted model per question, below
        info = {"backend": "oracle", "model": "gold SQL (no LLM)"}
    else:
        model = get_chat_model(backend=args.backend, model=None if args.backend == "embedded" else args.model)
        info = describe(model)
    # The first LLM call loads the model: time it apart from the questions.
    load_started = time.perf_counter()
    if args.backend in ("embedded",):
        model._llama()  # type: ignore[attr-defined]
    load_s = time.perf_counter() - load_started

    done: dict[Any, dict] = {}
    if args.resume and args.json and args.json.is_file():
        earlier = json.loads(args.json.read_text(encoding="utf-8")).get("questions", [])
        done = {r.get("id") if unseen else r["question"]: r for r in earlier if ("id" in r) == unseen}
    hidden = resumed = 0
    records = []
    for q, (gold_columns, gold) in zip(questions, golds):
        if (q["id"] if unseen else q["question"]) in done:
            records.append(done[q["id"] if unseen else q["question"]])
            resumed += 1
            continue
        asker = model
        if args.backend == "oracle":
            # The gold for every attempt, so a retry cannot shift the script onto the next question.
            asker = FakeChatModel(responses=[{"sql": q["sql"]}] * (args.retries + 1))
        started = time.perf_counter()
        try:
            out = sqlmod.ask(q["question"], q["db"], max_retries=args.retries, model=asker)
        except Exception as exc:  # a benchmark records failures and goes on
            out = {"error": f"{type(exc).__name__}: {exc}", "rows": []}
        seconds = time.perf_counter() - started
        rows = out.get("rows") or []
        if out.get("truncated"):
            rows = sqlmod.run_sql(out["sql"], q["db"], row_limit=100_000)["rows"]
        ok = "error" not in out and same_result(rows, gold)
        relaxed = "error" not in out and (ok or relaxed_match(rows, gold, gold_columns))
        tries = len(out.get("attempts") or [])
        record = {"lang": q["lang"], "question": q["question"], "gold": q["sql"], "sql": out.get("sql"),
                  "correct": ok, "relaxed": relaxed, "error": out.get("error"),
                  "refused": bool(out.get("refused")), "attempts": tries, "seconds": round(seconds, 3),
                  "tried": [attempt.get("sql") for attempt in out.get("attempts") or []]}
        if unseen:
            record = {"id": q["id"], "db": q["db"], "split": q["split"], "kind": q["kind"], **record,
                      "rule": out.get("rule"), "never_ran": "error" in out}
        records.append(record)
        if q["split"] == "heldout" and not args.show_heldout:
            hidden += 1
        else:
            mark = "ok " if ok else ("~  " if relaxed else "NO ")
            where = f"{q['id']} " if unseen else ""
            print(f"{mark} {seconds:6.2f}s {tries} try [{where}{q['lang']}] {q['question']}\n"
                  f"      {out.get('sql') or out.get('error')}", flush=True)
        if args.json:  # after every question, so a run cut short by its timeout still reports
            args.json.write_text(json.dumps({"partial": True, "questions": records}, indent=2, ensure_ascii=False))
    if resumed:
        print(f"{resumed} records kept from {args.json} (--resume), not asked again", flush=True)
    if hidden:
        print(f"{hidden} held-out questions run, their lines not shown (--show-heldout to see them)", flush=True)

    latencies = sorted(r["seconds"] for r in records)
    machine = f"{platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}"
    if unseen:
        summary = {
            "set": "unseen", "split": args.split, "db": args.db or "all",
            "backend": info["backend"], "model": info["model"], "questions": len(records),
            "accuracy": _accuracy(records), "relaxed": _accuracy(records, "relaxed"),
            "per_db": _breakdown(records, lambda r: [r["db"]]),
            "per_lang": _breakdown(records, lambda r: [r["lang"]]),
            "per_kind": _breakdown(records, lambda r: r["kind"].split("+")),
            "never_ran": sum(r["never_ran"] for r in records),
            "refused": sum(r["refused"] for r in records),
            "retried": sum(r["attempts"] > 1 for r in records),
            "p50_s": round(statistics.median(latencies), 3) if latencies else None,
            "p95_s": round(_percentile(latencies, 0.95), 3) if latencies else None,
            "retries": args.retries, "model_load_s": round(load_s, 2), "machine": machine,
        }
        if args.backend == "oracle":
            # Not a model's misses: the pipeline's own refusals and errors on the golds.
            summary["not_correct"] = [{"id": r["id"], "split": r["split"], "rule": r["rule"], "error": r["error"]}
                                      for r in records if not r["correct"]]
    else:
        summary = {
            "backend": info["backend"], "model": info["model"], "questions": len(records),
            "accuracy": _accuracy(records), "relaxed": _accuracy(records, "relaxed"),
            "accuracy_en": _accuracy([r for r in records if r["lang"] == "en"]),
            "accuracy_es": _accuracy([r for r in records if r["lang"] == "es"]),
            "retried": sum(r["attempts"] > 1 for r in records),
            "refused": sum(r["refused"] for r in records),
            "p50_s": round(statistics.median(latencies), 3), "p95_s": round(_percentile(latencies, 0.95), 3),
            "model_load_s": round(load_s, 2),
            "machine": machine,
        }
    print(json.dumps(summary, indent=2, ensure_ascii=False))
    if args.json:
        args.json.write_text(json.dumps({"summary": summary, "questions": records}, indent=2, ensure_ascii=False))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
