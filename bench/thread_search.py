"""Benchmark of the search across threads (SQLite FTS5): latency over thousands of messages.

    python bench/thread_search.py                       # 5,000 messages, 300 queries
    python bench/thread_search.py --messages 20000 --json results.json

Builds a fresh ``TALLER_HOME`` in a temporary folder and fills it through the agent's own write
path (:func:`taller.agent.export.import_thread`: real LangGraph checkpoints, one per turn, and
the index rows the agent keeps), ``--messages`` messages in threads of 20: user questions,
answers and tool calls (``query_database`` with its SQL, ``train_model``) written from a fixed
vocabulary of deep-learning and SQL words with a seeded generator, English and Spanish. Then it
times :meth:`Agent.search` (the call the TUI, the web page and ``taller search`` make) for
``--queries`` queries: one word, two words, a word being typed (a prefix), a SQL keyword, an
accented word, a word that is nowhere, and text full of FTS5 syntax (quotes, ``*``, ``AND``).

Reported: the time to build and index, and per kind of query and overall p50/p95/max in
milliseconds with the mean number of hits (limit 50, as the UIs ask).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

WORDS_EN = ("dropout", "autoencoder", "gradient", "learning", "rate", "epoch", "batch", "normalisation", "attention",
            "encoder", "decoder", "loss", "validation", "overfitting", "convolution", "kernel", "pooling", "layer",
            "embedding", "token", "sequence", "recurrent", "memory", "forecast", "reconstruction", "sample", "latent",
            "variational", "generator", "discriminator", "customers", "invoices", "genres", "tracks", "albums")
WORDS_ES = ("época", "pérdida", "función", "validación", "atención", "codificador", "muestras", "capas", "aprendizaje",
            "clientes", "facturas", "géneros", "canciones", "red", "neuronal", "convolución", "reconstrucción")
FILLER = ("the", "a", "of", "with", "and", "how", "does", "what", "is", "in", "for", "my", "this", "el", "la", "de", "con")
SQL_TABLES = ("Customer", "Invoice", "InvoiceLine", "Track", "Genre", "Album", "Artist", "Employee")


def sentence(rng: random.Random, words: int) -> str:
    vocabulary = WORDS_ES if rng.random() < 0.3 else WORDS_EN
    return " ".join(rng.choice(vocabulary) if rng.random() < 0.45 else rng.choice(FILLER) for _ in range(words))


def thread_messages(rng: random.Random, count: int) -> list[dict]:
    messages: list[dict] = []
    while len(messages) < count:
        messages.append({"role": "user", "content": sentence(rng, rng.randint(4, 14)) + "?"})
        if rng.random() < 0.25 and len(messages) < count - 1:
            table = rng.choice(SQL_TABLES)
            messages.append({"role": "tool", "name": "query_database", "args": {"question": messages[-1]["content"]},
                             "result": {"summary": f"{rng.randint(1, 500)} rows", "sql":
                                        f"SELECT {table}Id, COUNT(*) FROM {table} GROUP BY {table}Id ORDER BY 2 DESC LIMIT 5"}})
        elif rng.random() < 0.1 and len(messages) < count - 1:
            messages.append({"role": "tool", "name": "train_model", "args": {"model": "autoencoder", "epochs": 3},
                             "result": {"summary": "Started training autoencoder", "run_id": f"ae-{rng.randint(1, 99)}"}})
        if len(messages) < count:
            messages.append({"role": "assistant", "content": sentence(rng, rng.randint(10, 60)) + "."})
    return messages[:count]


QUERIES = {
    "one word": ["dropout", "autoencoder", "gradient", "attention", "kernel", "latent"],
    "two words": ["learning rate", "batch normalisation", "encoder decoder", "validation loss"],
    "prefix": ["autoenc", "normali", "convol", "discrim"],
    "SQL": ["GROUP BY", "InvoiceLine", "query_database", "ORDER BY 2 DESC"],
    "accented": ["época", "epoca", "función", "validación"],
    "nowhere": ["transformerxl", "zzzz"],
    "FTS5 syntax": ['"dropout', "dropout*", "AND OR NOT", "NEAR(kernel", "col:loss", "'; DROP TABLE x; --"],
}


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(share * (len(ordered) - 1))))]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=5000)
    parser.add_argument("--per-thread", type=int, default=20)
    parser.add_argument("--queries", type=int, default=300)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--json", help="also write the figures to this file")
    parser.add_argument("--keep", action="store_true", help="keep the temporary TALLER_HOME (printed) to look at")
    args = parser.parse_args()

    home = tempfile.mkdtemp(prefix="taller-search-bench-")
    os.environ["TALLER_HOME"] = home
    os.environ.setdefault("TALLER_BACKEND", "fake")
    from taller.agent.export import import_thread
    from taller.agent.session import Agent

    rng = random.Random(args.seed)
    agent = Agent()
    started = time.perf_counter()
    written = 0
    threads = 0
    while written < args.messages:
        count = min(args.per_thread, args.messages - written)
        messages = thread_messages(rng, count)
        import_thread(agent, {"format": "taller-thread", "version": 1, "title": messages[0]["content"][:60],
                              "messages": messages})
        written += len(messages)
        threads += 1
    build_s = time.perf_counter() - started
    rows = agent.thread_store.connection.execute("SELECT count(*) FROM taller_search").fetchone()[0]
    database_mb = Path(agent.settings.checkpoint_db).stat().st_size / 1e6

    kinds = list(QUERIES)
    timings: dict[str, list[float]] = {kind: [] for kind in kinds}
    hit_counts: dict[str, list[int]] = {kind: [] for kind in kinds}
    for kind in kinds:  # warm the page cache once, as an open UI would be
        agent.search(QUERIES[kind][0])
    for index in range(args.queries):
        kind = kinds[index % len(kinds)]
        query = QUERIES[kind][(index // len(kinds)) % len(QUERIES[kind])]
        start = time.perf_counter()
        hits = agent.search(query, limit=50)
        timings[kind].append((time.perf_counter() - start) * 1000)
        hit_counts[kind].append(len(hits))
    agent.close()

    everything = [value for values in timings.values() for value in values]
    report = {
        "date": time.strftime("%Y-%m-%d"), "machine": f"{platform.machine()} {os.cpu_count()} cores, {platform.platform()}",
        "python": platform.python_version(), "messages": written, "threads": threads, "index_rows": rows,
        "database_mb": round(database_mb, 1), "build_s": round(build_s, 1),
        "overall": {"p50_ms": round(statistics.median(everything), 2), "p95_ms": round(percentile(everything, 0.95), 2),
                    "max_ms": round(max(everything), 2), "queries": len(everything)},
        "kinds": {kind: {"p50_ms": round(statistics.median(values), 2), "p95_ms": round(percentile(values, 0.95), 2),
                         "max_ms": round(max(values), 2), "mean_hits": round(statistics.mean(hit_counts[kind]), 1)}
                  for kind, values in timings.items() if values},
    }
    print(f"{written} messages in {threads} threads ({rows} index rows, {database_mb:.1f} MB), built and indexed in {build_s:.1f} s")
    print(f"{'query kind':<12} {'p50 ms':>8} {'p95 ms':>8} {'max ms':>8} {'hits':>6}")
    for kind, figures in report["kinds"].items():
        print(f"{kind:<12} {figures['p50_ms']:>8.2f} {figures['p95_ms']:>8.2f} {figures['max_ms']:>8.2f} {figures['mean_hits']:>6.1f}")
    overall = report["overall"]
    print(f"{'all':<12} {overall['p50_ms']:>8.2f} {overall['p95_ms']:>8.2f} {overall['max_ms']:>8.2f}")
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    if args.keep:
        print(f"TALLER_HOME kept: {home}")
    else:
        shutil.rmtree(home, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
