"""Video answers with the real model: does the answer state the fact, cite its moment, decline well?

    python bench/video_answers.py                         # tuning half, embedded model
    python bench/video_answers.py --split heldout         # the held-out half (report it, never tune on it)
    python bench/video_answers.py --split all --json /tmp/va.json
    python bench/video_answers.py --summaries             # also check the summaries' timestamps

Data: ``bench/data/video_questions.jsonl`` (149 questions written blind, see
``bench/data/videos/README.md``) over four public-domain transcripts built by
``bench/data/videos/build_transcripts.py``: three State of the Union addresses from before 2000 and
a chapter pair of *Don Quijote* in Spanish; about half the questions are in the other language.

Each transcript is added as a ``.vtt`` file to a fresh ``TALLER_HOME`` and every question is asked
in-process with ``taller.knowledge.videos.ask(question, video=<that file>)`` as the ``ask_video``
tool would, one after the other, timed. Scoring:

* **states the fact**: every fact group of the item has one of its strings in the answer (lower
  case, accents and punctuation ignored, thousands separators dropped, numbers said in words
  read as digits, English and Spanish: "ninety-nine" is 99);
* **right moment**: the answer's first citation starts between 30 s before and 10 s after the
  moment the item's quote is said (a viewer who lands there hears it at once);
* **declined**: an unanswerable item answered with ``answered: false``; an answerable one declined
  counts as a miss of both measures above.

Latency is the wall time of ``ask`` (embedding, search, the model), model already loaded. With
``--summaries`` transcripts are summarised and every section's timestamp is checked: the
60-second window that starts there must be among the windows most similar to the section's
summary (MiniLM cosine at least 0.8 of the best window's) — "the time points at text that says
what the section says". Its tuning half is three addresses that have no questions
(``SUMMARY_TUNING`` in ``build_transcripts.py``), its held-out half the four transcripts of the
questions; ``--split`` picks the half, as for the questions. Without a model installed the run
prints why and exits 0 (``--require`` makes it fail instead).
"""

from __future__ import annotations

import argparse
import atexit
import json
import os
import platform
import re
import shutil
import statistics
import sys
import tempfile
import time
import unicodedata
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench" / "data" / "videos"))

QUESTIONS = ROOT / "bench" / "data" / "video_questions.jsonl"
EARLY, LATE = 30.0, 10.0  # seconds a citation may start before / after the gold moment

_NUMBER_WORDS = {
    "one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7, "eight": 8, "nine": 9,
    "ten": 10, "eleven": 11, "twelve": 12, "thirteen": 13, "fourteen": 14, "fifteen": 15, "sixteen": 16,
    "seventeen": 17, "eighteen": 18, "nineteen": 19, "twenty": 20, "thirty": 30, "forty": 40, "fifty": 50,
    "sixty": 60, "seventy": 70, "eighty": 80, "ninety": 90,
    "uno": 1, "una": 1, "dos": 2, "tres": 3, "cuatro": 4, "cinco": 5, "seis": 6, "siete": 7, "ocho": 8,
    "nueve": 9, "diez": 10, "once": 11, "doce": 12, "trece": 13, "catorce": 14, "quince": 15,
    "dieciseis": 16, "diecisiete": 17, "dieciocho": 18, "diecinueve": 19, "veinte": 20, "treinta": 30,
    "cuarenta": 40, "cincuenta": 50, "sesenta": 60, "setenta": 70, "ochenta": 80, "noventa": 90,
}


def normalize(text: str) -> str:
    """Words and numbers of ``text`` as one space-separated string, for fact matching."""
    text = unicodedata.normalize("NFKD", text.lower())
    text = "".join(ch for ch in text if not unicodedata.combining(ch))
    text = re.sub(r"(?<=\d)[,.](?=\d{3}\b)", "", text)  # 1,200 and 1.200 → 1200
    text = re.sub(r"(?<=\d)[,.](?=\d{3}\b)", "", text)  # 1,200,000 needs a second pass
    words = re.findall(r"\d+(?:\.\d+)?|[a-z]+", text)
    return " ".join(str(_NUMBER_WORDS.get(word, word)) for word in words)


def said(answer: str) -> str:
    """The answer, normalised, plus every number it states in words as digits ("ninety-nine"
    → 99, "ciento treinta millones" → 130000000), for :func:`states_fact`."""
    from taller.knowledge.language import numbers_in

    return f" {normalize(answer)} {' '.join(sorted(numbers_in(answer)))} "


def states_fact(answer: str, facts: list[list[str]]) -> bool:
    text = said(answer)
    return all(any(f" {normalize(option)} " in text for option in group) for group in facts)


def right_moment(citations: list[dict[str, Any]], gold: float) -> bool:
    return bool(citations) and gold - EARLY <= float(citations[0]["start"]) <= gold + LATE


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


def load_questions(split: str) -> list[dict[str, Any]]:
    items = [json.loads(line) for line in QUESTIONS.read_text(encoding="utf-8").splitlines() if line.strip()]
    return [item for item in items if split == "all" or item["split"] == split]


def score(records: list[dict[str, Any]]) -> dict[str, Any]:
    answerable = [r for r in records if r["answerable"]]
    unanswerable = [r for r in records if not r["answerable"]]
    latencies = [r["seconds"] for r in records]

    def share(items: list[dict[str, Any]], key: str) -> float | None:
        return round(100.0 * sum(bool(r[key]) for r in items) / len(items), 1) if items else None

    out = {"questions": len(records), "answerable": len(answerable), "unanswerable": len(unanswerable),
           "states_fact_pct": share(answerable, "states_fact"),
           "right_moment_pct": share(answerable, "right_moment"),
           "declined_unanswerable_pct": share(unanswerable, "declined"),
           "false_declines": sum(not r["answered"] for r in answerable),
           "moment_in_excerpts_pct": share(answerable, "in_excerpts"),
           "p50_s": round(statistics.median(latencies), 2) if latencies else None,
           "p95_s": round(_percentile(latencies, 0.95), 2) if latencies else None,
           "methods": {m: sum(r["method"] == m for r in records) for m in sorted({r["method"] for r in records})}}
    for language in ("en", "es"):
        part = [r for r in answerable if r["lang"] == language]
        out[f"states_fact_{language}_pct"] = share(part, "states_fact")
        out[f"right_moment_{language}_pct"] = share(part, "right_moment")
    for transcript in sorted({r["transcript"] for r in records}):
        part = [r for r in answerable if r["transcript"] == transcript]
        out[f"states_fact[{transcript}]"] = share(part, "states_fact")
    return out


def check_summaries(keys: dict[str, str]) -> dict[str, Any]:
    """Summarise every transcript; does each section's time point at text that says its summary?"""
    import numpy as np

    from build_transcripts import transcript_cues
    from taller.embeddings import embed
    from taller.knowledge import videos

    checked = passed = 0
    details = []
    for name, key in keys.items():
        started = time.perf_counter()
        summary = videos.summarize(key)
        seconds = time.perf_counter() - started
        cues = transcript_cues(name)
        windows = []
        for start in range(0, int(cues[-1].end) + 1, 15):
            text = " ".join(c.text for c in cues if start <= c.start < start + 60)
            if text:
                windows.append((float(start), text))
        window_vectors = embed([text for _, text in windows])
        for section in summary["sections"]:
            vector = embed([section["summary"]])[0]
            similarities = window_vectors @ vector
            when = float(section.get("moment", section["start"]))
            cited = min(range(len(windows)), key=lambda i: abs(windows[i][0] - when))
            ok = bool(similarities[cited] >= 0.8 * float(np.max(similarities)))
            checked += 1
            passed += ok
            details.append({"transcript": name, "time": section["time"], "ok": ok,
                            "similarity": round(float(similarities[cited]), 3),
                            "best": round(float(np.max(similarities)), 3)})
        details.append({"transcript": name, "seconds": round(seconds, 1), "sections": len(summary["sections"])})
    return {"sections": checked, "pointing_right": passed,
            "pct": round(100.0 * passed / checked, 1) if checked else None, "details": details}


def retrieval_only(questions: list[dict[str, Any]], keys: dict[str, str], folder: Path, model: Any,
                   answering: Any) -> int:
    """Is each answerable item's moment among the excerpts the model would read? By language pair."""
    from build_transcripts import TRANSCRIPTS, moment

    from taller.knowledge import videos
    from taller.knowledge.language import detect_language

    collection = videos.get_video_collection()
    cells: dict[str, list[int]] = {}
    evidence: dict[bool, list[float]] = {True: [], False: []}
    for item in questions:
        question, key = item["question"], keys[item["transcript"]]
        spoken = TRANSCRIPTS[item["transcript"]][0]
        query = question
        if detect_language(question) != spoken and answering.TRANSLATE_QUESTIONS:
            query = answering.translate_question(question, spoken, model)
        words_first = spoken != "en" and answering.reads_only_english()
        hits = answering._retrieve(query, collection, key, answering.TOP_K, True,
                                   words_first=words_first)[:answering.EXCERPTS]
        best = max((hit.extra.get("evidence", hit.score) for hit in hits), default=-1.0)
        evidence[item["answerable"]].append(round(best, 3))
        if not item["answerable"]:
            continue
        gold = moment(item["transcript"], item["quote"], folder)
        found = any(hit.start - 5 <= gold <= hit.end for hit in hits)
        cell = f"{item['lang']} question, {spoken} video"
        cells.setdefault(cell, []).append(found)
    for cell, found in sorted(cells.items()):
        print(f"{cell}: {sum(found)}/{len(found)} = {100.0 * sum(found) / len(found):.1f} % moment in excerpts")
    for answerable, values in evidence.items():
        print(f"best evidence, {'answerable' if answerable else 'unanswerable'}: {sorted(values)}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--split", choices=("tuning", "heldout", "all"), default="tuning")
    parser.add_argument("--transcript", action="append", help="only these transcripts (keys); repeatable")
    parser.add_argument("--every", type=int, default=1, help="only every Nth question (a spread sample)")
    parser.add_argument("--threads", type=int, default=2, help="llama.cpp threads (2 = the CI machine)")
    parser.add_argument("--model", help="a GGUF file instead of the installed embedded model")
    parser.add_argument("--json", help="write the records and the summary here")
    parser.add_argument("--summaries", action="store_true", help="also check the summaries' timestamps")
    parser.add_argument("--show-heldout", action="store_true",
                        help="print held-out misses too (by default only their ids: do not tune on them)")
    parser.add_argument("--no-translate", action="store_true",
                        help="search with the question as asked, even in the other language than the video")
    parser.add_argument("--retrieval-only", action="store_true",
                        help="no answer: only whether the moment is among the excerpts the model would read")
    parser.add_argument("--stem-prefix", type=int, default=None,
                        help="match words of a transcript MiniLM does not read by this many first letters "
                             "(0: whole words; default: the answering code's STEM_PREFIX)")
    parser.add_argument("--require", action="store_true", help="fail (exit 2) when no model is installed")
    args = parser.parse_args(argv)

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    if args.model:
        os.environ["TALLER_EMBEDDED_MODEL_PATH"] = args.model
    elif "TALLER_EMBEDDED_MODEL_PATH" not in os.environ and "TALLER_HOME" not in os.environ:
        # The run gets a temporary home below; the installed model lives in the user's one.
        from taller.config import load_settings
        from taller.llm import embedded_model_path

        installed = embedded_model_path(load_settings())
        if installed is None:
            print("no embedded model installed (taller models install): nothing to measure")
            return 2 if args.require else 0
        os.environ["TALLER_EMBEDDED_MODEL_PATH"] = str(installed)
    home = tempfile.mkdtemp(prefix="taller-bench-video-")
    atexit.register(shutil.rmtree, home, True)  # the index and the transcripts go with the run
    os.environ["TALLER_HOME"] = home
    os.environ["TALLER_BACKEND"] = "embedded"
    os.environ["TALLER_EMBEDDED_THREADS"] = str(args.threads)

    from build_transcripts import SUMMARY_TUNING, build, moment

    from taller.knowledge import videos
    from taller.llm import get_chat_model

    questions = load_questions(args.split)
    if args.transcript:
        questions = [q for q in questions if q["transcript"] in args.transcript]
    questions = questions[::max(1, args.every)]
    folder = Path(home) / "transcripts"
    folder.mkdir()
    paths = build(folder)
    keys = {}
    for name, path in paths.items():
        if args.transcript and name not in args.transcript:
            continue
        keys[name] = videos.add_video(str(path))["video"]
    model = get_chat_model()
    model.invoke("Hello")  # load the weights before the clock starts
    from taller.knowledge.videos import answer as answering

    if args.no_translate:
        answering.TRANSLATE_QUESTIONS = False
    if args.stem_prefix is not None:
        answering.STEM_PREFIX = args.stem_prefix
    if args.retrieval_only:
        return retrieval_only(questions, keys, folder, model, answering)

    records = []
    for number, item in enumerate(questions, 1):
        started = time.perf_counter()
        try:
            out = videos.ask(item["question"], video=keys[item["transcript"]], model=model)
            error = None
        except Exception as exc:  # a crash is a miss, and the run goes on
            out, error = {"answered": False, "summary": "", "citations": []}, f"{type(exc).__name__}: {exc}"
        seconds = time.perf_counter() - started
        answer = out.get("answer") or ""
        record = {"id": item["id"], "split": item["split"], "lang": item["lang"], "best_score": out.get("best_score"),
                  "transcript": item["transcript"], "answerable": item["answerable"],
                  "answered": bool(out.get("answered")), "method": out.get("method") or "declined",
                  "seconds": round(seconds, 2), "parts": out.get("seconds"), "error": error}
        if item["answerable"]:
            gold = moment(item["transcript"], item["quote"], folder)
            record.update({"states_fact": bool(out.get("answered")) and states_fact(answer, item["facts"]),
                           "right_moment": bool(out.get("answered")) and right_moment(out.get("citations") or [], gold),
                           "gold": gold, "cited": (out.get("citations") or [{}])[0].get("start"),
                           # Retrieval, apart from the model: was the moment in what the model read?
                           "in_excerpts": any(begin - 5 <= gold <= end for begin, end in out.get("excerpts") or []),
                           "gold_rank": next((rank for rank, (begin, end) in enumerate(out.get("excerpts") or [], 1)
                                              if begin - 5 <= gold <= end), None)})
        else:
            record["declined"] = not out.get("answered")
        record["summary"] = (out.get("summary") or "")[:400]
        records.append(record)
        ok = (record.get("states_fact") and record.get("right_moment")) if item["answerable"] else record["declined"]
        shown = item["split"] != "heldout" or args.show_heldout
        line = f"[{number}/{len(questions)}] {'ok  ' if ok else 'MISS'} {item['id']:16s} {seconds:5.1f}s {record['method']:10s}"
        if not ok and shown:
            line += f"\n      Q: {item['question']}\n      A: {record['summary'][:300]}"
            if item["answerable"]:
                line += f"\n      facts {item['facts']}  gold {gold:.0f}s  cited {record['cited']}"
        print(line, flush=True)

    summary = score(records)
    summary.update({"split": args.split, "machine": f"{platform.machine()} {os.cpu_count()} cores",
                    "threads": args.threads, "model": Path(os.environ["TALLER_EMBEDDED_MODEL_PATH"]).name,
                    "date": time.strftime("%Y-%m-%d")})
    if args.summaries:
        # Tuning: three addresses with no questions; held out: the four transcripts of the questions.
        checked = {}
        if args.split in ("tuning", "all"):
            for name, path in build(folder, list(SUMMARY_TUNING)).items():
                checked[name] = videos.add_video(str(path))["video"]
        if args.split in ("heldout", "all"):
            checked.update(keys)
        summary["summaries"] = check_summaries(checked)
    print(json.dumps({k: v for k, v in summary.items() if k != "summaries"}, indent=1))
    if args.summaries:
        print(json.dumps({k: v for k, v in summary["summaries"].items() if k != "details"}, indent=1))
    if args.json:
        Path(args.json).write_text(json.dumps({"summary": summary, "records": records}, indent=1), encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
