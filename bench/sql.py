"""Execution accuracy of the NL→SQL pipeline on Chinook, per LLM backend, with latency.

    python bench/sql.py --backend embedded --model /path/to/model.gguf
    python bench/sql.py --backend ollama --model llama3.1
    python bench/sql.py --backend oracle          # the gold SQL through the whole pipeline
    python bench/sql.py --backend embedded --limit 10 --json out.json

The question set (:data:`QUESTIONS`, 36 questions, 20 in English and 16 in Spanish) was written
for Chinook with a gold query each. A question counts as correct when the pipeline's result
(``taller.knowledge.sql.ask``, with its retrieval, safety checks and self-correction retries)
equals the gold query's result as a multiset of rows, tolerating a different column order and
rounding to 2 decimals (execution accuracy, as in Spider). ``relaxed`` also accepts a result
that holds every gold column plus extra ones (e.g. a name *and* its total).

``oracle`` is not a model: a scripted backend that answers with the gold SQL. It checks that
every gold query passes the safety checks and measures the pipeline's own overhead (schema,
prompt, parse, read-only execution) without an LLM.

Latency is per question, wall clock, including the LLM calls of every retry. The database is
the default "sales" Chinook built from the fixture (or ``--database``).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

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


def relaxed_match(predicted: list[list[Any]], gold: list[list[Any]]) -> bool:
    """Every gold column appears (same values, same row count) among the predicted columns."""
    if len(predicted) != len(gold) or not gold:
        return same_result(predicted, gold)
    columns = [sorted(repr(_norm(row[i])) for row in predicted) for i in range(len(predicted[0]))] if predicted else []
    return all(sorted(repr(_norm(row[i])) for row in gold) in columns for i in range(len(gold[0])))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--backend", default="embedded", choices=["embedded", "ollama", "oracle", "auto"])
    parser.add_argument("--model", default=None, help="GGUF path (embedded) or Ollama tag")
    parser.add_argument("--database", default=None, help="configured name or URL (default: sales)")
    parser.add_argument("--limit", type=int, default=None, help="only the first N questions")
    parser.add_argument("--retries", type=int, default=2, help="self-correction retries per question")
    parser.add_argument("--json", type=Path, default=None, help="write per-question results here")
    parser.add_argument("--threads", type=int, default=2, help="CPU threads for the embedded model")
    args = parser.parse_args(argv)

    os.environ.setdefault("TALLER_HOME", tempfile.mkdtemp(prefix="taller-bench-sql-"))
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    if args.backend == "embedded":
        os.environ["TALLER_EMBEDDED_THREADS"] = str(args.threads)
        if args.model:
            os.environ["TALLER_EMBEDDED_MODEL_PATH"] = args.model

    from taller.llm import FakeChatModel, describe, get_chat_model
    from taller.config import get_settings
    from taller.knowledge import sql as sqlmod

    get_settings(reload=True)
    questions = QUESTIONS[: args.limit] if args.limit else QUESTIONS
    golds = [sqlmod.run_sql(gold, args.database, row_limit=100_000)["rows"] for _, _, gold in questions]

    if args.backend == "oracle":
        model = FakeChatModel(responses=[{"sql": gold} for _, _, gold in questions])
    else:
        model = get_chat_model(backend=args.backend, model=None if args.backend == "embedded" else args.model)
    info = describe(model)
    if args.backend == "oracle":
        info = {"backend": "oracle", "model": "gold SQL (no LLM)"}
    # The first LLM call loads the model: time it apart from the questions.
    load_started = time.perf_counter()
    if args.backend in ("embedded",):
        model._llama()  # type: ignore[attr-defined]
    load_s = time.perf_counter() - load_started

    records = []
    for (lang, question, gold_sql), gold in zip(questions, golds):
        started = time.perf_counter()
        try:
            out = sqlmod.ask(question, args.database, max_retries=args.retries, model=model)
        except Exception as exc:  # a benchmark records failures and goes on
            out = {"error": f"{type(exc).__name__}: {exc}", "rows": []}
        seconds = time.perf_counter() - started
        rows = out.get("rows") or []
        if out.get("truncated"):
            rows = sqlmod.run_sql(out["sql"], args.database, row_limit=100_000)["rows"]
        ok = "error" not in out and same_result(rows, gold)
        relaxed = "error" not in out and (ok or relaxed_match(rows, gold))
        records.append({"lang": lang, "question": question, "gold": gold_sql, "sql": out.get("sql"),
                        "correct": ok, "relaxed": relaxed, "error": out.get("error"),
                        "refused": bool(out.get("refused")), "attempts": len(out.get("attempts") or []),
                        "seconds": round(seconds, 3)})
        mark = "ok " if ok else ("~  " if relaxed else "NO ")
        tries = len(out.get("attempts") or [])
        print(f"{mark} {seconds:6.2f}s {tries} try [{lang}] {question}\n      {out.get('sql') or out.get('error')}",
              flush=True)
        if args.json:  # after every question, so a run cut short by its timeout still reports
            args.json.write_text(json.dumps({"partial": True, "questions": records}, indent=2, ensure_ascii=False))

    def accuracy(rows: list[dict], key: str = "correct") -> str:
        return f"{sum(r[key] for r in rows)}/{len(rows)} ({100 * sum(r[key] for r in rows) / max(1, len(rows)):.0f} %)"

    latencies = sorted(r["seconds"] for r in records)
    p95 = latencies[min(len(latencies) - 1, int(round(0.95 * (len(latencies) - 1))))]
    summary = {
        "backend": info["backend"], "model": info["model"], "questions": len(records),
        "accuracy": accuracy(records), "relaxed": accuracy(records, "relaxed"),
        "accuracy_en": accuracy([r for r in records if r["lang"] == "en"]),
        "accuracy_es": accuracy([r for r in records if r["lang"] == "es"]),
        "retried": sum(r["attempts"] > 1 for r in records),
        "refused": sum(r["refused"] for r in records),
        "p50_s": round(statistics.median(latencies), 3), "p95_s": round(p95, 3),
        "model_load_s": round(load_s, 2),
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}",
    }
    print(json.dumps(summary, indent=2, ensure_ascii=False))
    if args.json:
        args.json.write_text(json.dumps({"summary": summary, "questions": records}, indent=2, ensure_ascii=False))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
