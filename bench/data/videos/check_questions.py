"""Self-check of the video-answer benchmark data (``bench/data/video_questions.jsonl``).

    python bench/data/videos/check_questions.py

Prints the counts per transcript, language and split, then
``video questions OK: N answerable, M unanswerable`` and exits 0, or lists every problem and
exits 1. What it checks:

* every line is a JSON object with the fields and value types of the schema; ids are unique;
  ``transcript`` is one of the four transcripts; ``kind`` and the ``source`` labels are known ones,
  ``long`` is set exactly when the question has more than 25 words, and exactly one of
  ``video-word`` / ``no-video-word`` is set;
* an answerable question has at least one fact group (non-empty strings) and a ``quote`` of 8–25
  words found exactly once in its transcript (normalised words: lowercase, no accents, no
  punctuation); the quote is also found at the same moment in the ``.vtt`` that
  ``build_transcripts.py`` writes (so the written file and the text agree);
* an unanswerable question has ``quote`` null and ``facts`` [];
* each transcript × language × answerable cell is split tuning/held-out within ±2;
* totals: at least 22 answerable questions per English transcript and 16 for the Spanish one, at
  least 66 in all; at least 16 unanswerable in all, at least 3 per transcript in both languages;
  each transcript has 35–65 % of its questions in Spanish; every third of each transcript (by
  word position) holds at least 4 answerable quotes.
"""

from __future__ import annotations

import json
import sys
import tempfile
from collections import Counter, defaultdict
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import build_transcripts as bt  # noqa: E402

DATA = HERE.parent / "video_questions.jsonl"
FIELDS = {"id": str, "transcript": str, "lang": str, "question": str, "answerable": bool,
          "facts": list, "quote": (str, type(None)), "split": str, "kind": str, "source": str}
KINDS = {"number", "name", "reason", "proposal", "opinion", "date", "list"}
LABELS = {"paraphrase", "question", "imperative", "long", "typo", "informal", "video-word",
          "no-video-word"}
MIN_ANSWERABLE = {"en": 22, "es": 16}


def load(path: Path, problems: list[str]) -> list[dict]:
    rows = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            problems.append(f"line {number}: not JSON ({exc.msg})")
            continue
        if not isinstance(row, dict):
            problems.append(f"line {number}: not a JSON object")
            continue
        row["_line"] = number
        rows.append(row)
    return rows


def check_row(row: dict, words: dict[str, list[str]], problems: list[str]) -> None:
    where = f"line {row['_line']} ({row.get('id')})"
    for name, kind in FIELDS.items():
        if name not in row:
            problems.append(f"{where}: missing field {name!r}")
            return
        if not isinstance(row[name], kind):
            problems.append(f"{where}: {name!r} has the wrong type")
            return
    if row["transcript"] not in bt.TRANSCRIPTS:
        problems.append(f"{where}: unknown transcript {row['transcript']!r}")
        return
    if row["lang"] not in ("en", "es"):
        problems.append(f"{where}: lang must be 'en' or 'es'")
    if row["split"] not in ("tuning", "heldout"):
        problems.append(f"{where}: split must be 'tuning' or 'heldout'")
    if row["kind"] not in KINDS:
        problems.append(f"{where}: unknown kind {row['kind']!r}")
    labels = row["source"].split("+")
    unknown = set(labels) - LABELS
    if unknown:
        problems.append(f"{where}: unknown source labels {sorted(unknown)}")
    if ("long" in labels) != (len(row["question"].split()) > 25):
        problems.append(f"{where}: 'long' must be set exactly when the question has over 25 words")
    if ("video-word" in labels) == ("no-video-word" in labels):
        problems.append(f"{where}: exactly one of video-word / no-video-word must be set")
    if not row["question"].strip():
        problems.append(f"{where}: empty question")

    if not row["answerable"]:
        if row["quote"] is not None or row["facts"] != []:
            problems.append(f"{where}: an unanswerable question has quote null and facts []")
        return
    facts = row["facts"]
    if not facts or not all(isinstance(group, list) and group and
                            all(isinstance(f, str) and f.strip() for f in group) for group in facts):
        problems.append(f"{where}: facts must be a non-empty list of non-empty lists of strings")
    quote = row["quote"]
    if not isinstance(quote, str):
        problems.append(f"{where}: an answerable question needs a quote")
        return
    quote_words = bt.normalize_words(quote)
    if not 8 <= len(quote_words) <= 25:
        problems.append(f"{where}: quote has {len(quote_words)} words (8-25 wanted)")
    found = bt.occurrences(words[row["transcript"]], quote_words)
    if len(found) != 1:
        problems.append(f"{where}: quote found {len(found)} times in {row['transcript']} (once wanted)")
        return
    row["_position"] = found[0] / len(words[row["transcript"]])


def main() -> int:
    problems: list[str] = []
    rows = load(DATA, problems)
    texts = {key: bt.transcript_text(key) for key in bt.TRANSCRIPTS}
    words = {key: bt.normalize_words(text) for key, text in texts.items()}
    for row in rows:
        check_row(row, words, problems)
    ids = Counter(row.get("id") for row in rows)
    problems += [f"duplicate id {i!r}" for i, n in ids.items() if n > 1]

    good = [row for row in rows if all(isinstance(row.get(f), k) for f, k in FIELDS.items())
            and row["transcript"] in bt.TRANSCRIPTS]
    # The .vtt files put each quote at the same moment as the cues built from the text.
    with tempfile.TemporaryDirectory() as tmp:
        bt.build(tmp)
        for row in good:
            if row["answerable"] and "_position" in row:
                from_text = bt.moment(row["transcript"], row["quote"])
                from_file = bt.moment(Path(tmp) / f"{row['transcript']}.vtt", row["quote"])
                if abs(from_text - from_file) > 0.01:
                    problems.append(f"{row['id']}: quote at {from_text}s in the text, {from_file}s in the .vtt")

    cells: dict[tuple, Counter] = defaultdict(Counter)
    for row in good:
        cells[(row["transcript"], row["lang"], row["answerable"])][row["split"]] += 1
    print(f"{'transcript':24} {'lang':4} {'kind':12} {'tuning':>6} {'heldout':>7}")
    for (key, lang, answerable), counts in sorted(cells.items()):
        what = "answerable" if answerable else "unanswerable"
        print(f"{key:24} {lang:4} {what:12} {counts['tuning']:6} {counts['heldout']:7}")
        if abs(counts["tuning"] - counts["heldout"]) > 2:
            problems.append(f"{key}/{lang}/{what}: split {counts['tuning']} tuning vs {counts['heldout']} held out")

    answerable = [row for row in good if row["answerable"]]
    unanswerable = [row for row in good if not row["answerable"]]
    for key, (language, _) in bt.TRANSCRIPTS.items():
        mine = [row for row in answerable if row["transcript"] == key]
        if len(mine) < MIN_ANSWERABLE[language]:
            problems.append(f"{key}: {len(mine)} answerable questions (at least {MIN_ANSWERABLE[language]} wanted)")
        thirds = Counter(min(2, int(row["_position"] * 3)) for row in mine if "_position" in row)
        if min(thirds[0], thirds[1], thirds[2]) < 4:
            problems.append(f"{key}: answerable quotes per third of the transcript {dict(sorted(thirds.items()))} "
                            "(at least 4 in each wanted)")
        missing = [row for row in unanswerable if row["transcript"] == key]
        if len(missing) < 3 or {row["lang"] for row in missing} != {"en", "es"}:
            problems.append(f"{key}: {len(missing)} unanswerable questions (at least 3, in both languages, wanted)")
        everything = [row for row in good if row["transcript"] == key]
        spanish = sum(row["lang"] == "es" for row in everything) / max(1, len(everything))
        if not 0.35 <= spanish <= 0.65:
            problems.append(f"{key}: {spanish:.0%} of its questions are in Spanish (35-65 % wanted)")
        print(f"{key}: {len(mine)} answerable (per third {[thirds[0], thirds[1], thirds[2]]}), "
              f"{len(missing)} unanswerable, {spanish:.0%} Spanish")
    if len(answerable) < 66:
        problems.append(f"{len(answerable)} answerable questions in all (at least 66 wanted)")
    if len(unanswerable) < 16:
        problems.append(f"{len(unanswerable)} unanswerable questions in all (at least 16 wanted)")

    labels = Counter(label for row in good for label in row["source"].split("+"))
    kinds = Counter(row["kind"] for row in answerable)
    print("source labels:", ", ".join(f"{k} {v}" for k, v in labels.most_common()))
    print("kinds (answerable):", ", ".join(f"{k} {v}" for k, v in kinds.most_common()))
    if problems:
        print(f"\n{len(problems)} problem(s):")
        for problem in problems:
            print(" -", problem)
        return 1
    print(f"video questions OK: {len(answerable)} answerable, {len(unanswerable)} unanswerable")
    return 0


if __name__ == "__main__":
    sys.exit(main())
