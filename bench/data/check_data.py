"""Self-check of the routing benchmark's data files: counts, and validation against the tool contracts.

Loads ``routing_requests.jsonl`` and ``routing_dialogues.jsonl`` beside this file, prints counts per
tool, language, split and source, and fails (exit status 1) on any item that is not valid:

* every ``tool`` is one of the tool names (``taller.tools.TOOL_NAMES``) or null, and a null tool
  expects no arguments;
* every ``args`` key is a field of that tool's pydantic schema, every required field is there, and an
  expected value is a plain value, ``{"contains": "words" | ["words", ...]}`` (only for text fields) or
  ``{"optional": value}``; a concrete call built from the expectation validates against the schema
  (so a beam of 20 or a count of 100 would be caught);
* exact text values (paths, URLs, quoted text, database names, video ids) appear verbatim in the
  request, or for a follow-up in the dialogue so far, and every ``contains`` word appears there too
  (case-insensitive): the expected answer is stated, never guessed;
* each tool and language is split evenly between ``tuning`` and ``heldout`` (difference at most 1),
  every dialogue has 2 to 4 turns, and every tool is called in some follow-up turn;
* an item marked ``long`` has more than 25 words.

It also validates ``routing_dialogues_dev3.jsonl`` and ``routing_dialogues_dev4.jsonl`` (later tuning
sets, all ``tuning``, 3 to 5 turns per dialogue) against the same contracts and prints the counts of
each per tool, language and kind, and
``routing_requests_dev.jsonl`` (a later tuning set of single requests, all ``tuning``) likewise: the
same contracts, unique ids and texts (none repeated from ``routing_requests.jsonl``), ``long`` checked,
and its counts per tool and language.

    .venv/bin/python bench/data/check_data.py
"""

from __future__ import annotations

import collections
import json
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent.parent))  # run from anywhere: import taller from this checkout

from taller.tools import TOOL_NAMES, get_tool  # noqa: E402

# The dialogue sets were written before show_lesson existed (it came with the fifth round): their
# coverage of follow-ups is checked over the tools there were then.
DIALOGUE_TOOLS = tuple(tool for tool in TOOL_NAMES if tool != "show_lesson")

SPLITS = ("tuning", "heldout")
LANGS = ("en", "es")
# Arguments whose expected value is copied from the user's words (so it must be found in them).
COPIED = {"image_path", "url_or_path", "text", "database", "video"}

problems: list[str] = []


def complain(where: str, message: str) -> None:
    problems.append(f"{where}: {message}")


def load(name: str) -> list[dict]:
    items = []
    for number, line in enumerate((HERE / name).read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            items.append(json.loads(line))
        except json.JSONDecodeError as exc:
            complain(f"{name} line {number}", f"not valid JSON ({exc.msg})")
    return items


def concrete(value):
    """A value the tool could receive for this expectation (contains → its words, optional → inside)."""
    if isinstance(value, dict) and "optional" in value:
        return concrete(value["optional"])
    if isinstance(value, dict) and "contains" in value:
        words = value["contains"]
        return " ".join(words) if isinstance(words, list) else words
    return value


def check_value(where: str, key: str, value, context: str) -> None:
    if isinstance(value, dict):
        if set(value) == {"optional"}:
            check_value(where, key, value["optional"], context)
            return
        if set(value) not in ({"contains"}, {"contains", "excludes"}):
            complain(where, f"{key}: an expectation object has 'contains' (and maybe 'excludes') or 'optional'; "
                            f"got {sorted(value)}")
            return
        absent = value.get("excludes", [])
        for word in absent if isinstance(absent, list) else [absent]:
            # The value a follow-up replaced: said earlier in the dialogue, so a rewrite could keep it.
            if not isinstance(word, str) or not word.strip() or word.lower() not in context.lower():
                complain(where, f"{key}: excludes {word!r}, which the user never wrote")
        words = value["contains"]
        words = words if isinstance(words, list) else [words]
        if not words or not all(isinstance(word, str) and word.strip() for word in words):
            complain(where, f"{key}: 'contains' needs non-empty strings")
        for word in words:
            if isinstance(word, str) and word.lower() not in context.lower():
                complain(where, f"{key}: contains {word!r}, which the user never wrote")
        return
    if key in COPIED and isinstance(value, str) and value not in context:
        complain(where, f"{key}: {value!r} does not appear verbatim in the user's words")
    if key == "values" and isinstance(value, str) and value not in context:
        complain(where, f"values: {value!r} does not appear verbatim in the user's words")


def check_call(where: str, tool, args, context: str) -> None:
    if not isinstance(args, dict):
        complain(where, "args must be an object")
        return
    if tool is None:
        if args:
            complain(where, "a no-tool item expects no arguments")
        return
    if tool not in TOOL_NAMES:
        complain(where, f"unknown tool {tool!r}")
        return
    schema = get_tool(tool).args_schema
    fields = schema.model_fields
    for key, value in args.items():
        if key not in fields:
            complain(where, f"{tool} has no argument {key!r} (it has {', '.join(fields) or 'none'})")
            continue
        check_value(where, key, value, context)
    for key, field in fields.items():
        if field.is_required() and key not in args:
            complain(where, f"{tool} requires {key!r}")
    try:
        schema.model_validate({key: concrete(value) for key, value in args.items() if key in fields})
    except Exception as exc:  # pydantic.ValidationError: the expected call breaks the contract
        complain(where, f"the expected call is not valid for {tool}: {exc}".splitlines()[0])


def check_split(name: str, counter: dict) -> None:
    for group, splits in sorted(counter.items(), key=str):
        if abs(splits["tuning"] - splits["heldout"]) > 1:
            complain(name, f"uneven split for {group}: {dict(splits)}")


# Tuning-only dialogue sets written blind for later rounds: every dialogue `tuning`, 3 to 5 turns.
TUNING_DIALOGUE_SETS = ("routing_dialogues_dev3.jsonl", "routing_dialogues_dev4.jsonl", "routing_dialogues_dev5.jsonl",
                        "routing_dialogues_dev6.jsonl", "routing_dialogues_dev7.jsonl",
                        "routing_dialogues_dev8.jsonl", "routing_dialogues_dev9.jsonl",
                        "routing_dialogues_dev10.jsonl")


def check_tuning_dialogues(name: str) -> None:
    """Validate one tuning-only dialogue set like the main one, and print its counts."""
    dialogues = load(name)
    ids = collections.Counter(item.get("id") for item in dialogues)
    for duplicate in [key for key, count in ids.items() if count > 1]:
        complain(name, f"{duplicate!r} is used {ids[duplicate]} times")
    followup_tools, kinds, langs = collections.Counter(), collections.Counter(), collections.Counter()
    turns_total = 0
    for item in dialogues:
        where = f"{name} {item.get('id', '?')}"
        turns = item.get("turns") or []
        turns_total += len(turns)
        if not 3 <= len(turns) <= 5:
            complain(where, f"{len(turns)} turns (3 to 5 wanted)")
        if item.get("split") != "tuning" or item.get("lang") not in LANGS:
            complain(where, f"split {item.get('split')!r} / lang {item.get('lang')!r} not allowed (all tuning)")
        if not item.get("kinds"):
            complain(where, "no kinds label")
        langs[item.get("lang")] += 1
        kinds.update(kind for kind in str(item.get("kinds", "")).split("+") if kind)
        so_far = ""
        for index, turn in enumerate(turns):
            so_far += "\n" + turn.get("text", "")
            check_call(f"{where} turn {index + 1}", turn.get("tool"), turn.get("args"), so_far)
            if index:
                followup_tools[turn.get("tool") or "(no tool)"] += 1
    # A tuning set is written blind and kept as written: a tool no follow-up calls is noted, not
    # an error (the main set, whose halves are compared, must cover every tool).
    missing = [tool for tool in DIALOGUE_TOOLS if not followup_tools[tool]]
    if missing:
        print(f"  note: no follow-up turn calls {', '.join(missing)}")
    print(f"{name}: {len(dialogues)} dialogues ({turns_total} turns, {turns_total - len(dialogues)} follow-ups); "
          f"languages: en {langs['en']}, es {langs['es']}")
    print("  follow-up turns per tool: " + ", ".join(f"{tool} {followup_tools[tool]}"
                                                   for tool in [*TOOL_NAMES, "(no tool)"]))
    print("  kinds: " + ", ".join(f"{kind} {count}" for kind, count in kinds.most_common()))


# Tuning-only request sets written blind for later rounds: every request `tuning`.
TUNING_REQUEST_SETS = ("routing_requests_dev.jsonl", "routing_requests_dev2.jsonl", "routing_requests_dev3.jsonl",
                       "routing_requests_dev4.jsonl")



def check_request(where: str, item: dict, splits: tuple[str, ...]) -> list[str] | None:
    """The checks every single request gets (keys, split, language, the expected call, the
    ``long`` label); returns its ``source`` labels, or None when it lacks keys to check."""
    missing = {"id", "split", "lang", "source", "text", "tool", "args"} - set(item)
    if missing:
        complain(where, f"missing keys {sorted(missing)}")
        return None
    if item["split"] not in splits or item["lang"] not in LANGS:
        complain(where, f"split {item['split']!r} / lang {item['lang']!r} not allowed (splits: {', '.join(splits)})")
    check_call(where, item["tool"], item["args"], item["text"])
    words = len(item["text"].split())
    labels = item["source"].split("+")
    if "long" in labels and words <= 25:
        complain(where, f"marked long but has {words} words")
    return labels

SUBSTITUTIONS = "routing_substitutions.jsonl"


def check_substitutions() -> None:
    """Two-turn dialogues whose follow-up replaces one value: every follow-up excludes the old one,
    and each language is split half and half."""
    halves = collections.defaultdict(collections.Counter)
    for item in load(SUBSTITUTIONS):
        where = f"{SUBSTITUTIONS} {item.get('id', '?')}"
        turns = item.get("turns") or []
        if len(turns) != 2:
            complain(where, f"{len(turns)} turns (2 wanted)")
            continue
        halves[item.get("lang")][item.get("split")] += 1
        so_far = ""
        for index, turn in enumerate(turns):
            so_far += "\n" + turn.get("text", "")
            check_call(f"{where} turn {index + 1}", turn.get("tool"), turn.get("args"), so_far)
        question = (turns[1].get("args") or {}).get("question")
        if not (isinstance(question, dict) and question.get("excludes")):
            complain(where, "the follow-up's question needs 'excludes' (the value it replaced)")
    check_split(SUBSTITUTIONS, halves)


def check_tuning_requests(name: str, seen_texts: set) -> None:
    """Validate one tuning-only request set like the main one, and print its counts."""
    requests = load(name)
    ids = collections.Counter(item.get("id") for item in requests)
    for duplicate in [key for key, count in ids.items() if count > 1]:
        complain(name, f"{duplicate!r} is used {ids[duplicate]} times")
    texts = collections.Counter(item.get("text") for item in requests)
    for duplicate in [key for key, count in texts.items() if count > 1]:
        complain(name, f"the same request twice: {duplicate!r}")
    per_tool = collections.defaultdict(collections.Counter)
    sources = collections.Counter()
    long_items, terse_items = 0, 0
    for item in requests:
        where = f"{name} {item.get('id', '?')}"
        labels = check_request(where, item, ("tuning",))
        if labels is None:
            continue
        if item["text"] in seen_texts:
            complain(where, f"repeats a request of another set: {item['text']!r}")
        words = len(item["text"].split())
        long_items += words > 25
        terse_items += words <= 4
        sources.update(labels)
        per_tool[item["tool"] or "(no tool)"][item["lang"]] += 1
    for tool in TOOL_NAMES:
        if not sum(per_tool[tool].values()):
            complain(name, f"{tool} has no request")
    total = len(requests)
    langs = collections.Counter(item.get("lang") for item in requests)
    print(f"{name}: {total} requests; languages: en {langs['en']}, es {langs['es']}")
    print("  per tool (en/es): " + ", ".join(f"{tool} {per_tool[tool]['en']}/{per_tool[tool]['es']}"
                                           for tool in [*TOOL_NAMES, "(no tool)"]))
    print(f"  typos {sources['typo']}, long (>25 words) {long_items}, terse (<=4 words) {terse_items}")
    print("  sources: " + ", ".join(f"{label} {count}" for label, count in sources.most_common()))


def main() -> int:
    requests = load("routing_requests.jsonl")
    dialogues = load("routing_dialogues.jsonl")

    ids = collections.Counter(item.get("id") for item in requests + dialogues)
    for duplicate in [key for key, count in ids.items() if count > 1]:
        complain("ids", f"{duplicate!r} is used {ids[duplicate]} times")
    texts = collections.Counter(item.get("text") for item in requests)
    for duplicate in [key for key, count in texts.items() if count > 1]:
        complain("requests", f"the same request twice: {duplicate!r}")

    per_tool = collections.defaultdict(collections.Counter)
    per_group = collections.defaultdict(collections.Counter)
    sources = collections.Counter()
    long_items, terse_items = 0, 0
    for item in requests:
        where = item.get("id", "?")
        labels = check_request(where, item, SPLITS)
        if labels is None:
            continue
        words = len(item["text"].split())
        long_items += words > 25
        terse_items += words <= 4
        sources.update(labels)
        tool = item["tool"] or "(no tool)"
        per_tool[tool][item["lang"]] += 1
        per_tool[tool][item["split"]] += 1
        per_group[(tool, item["lang"])][item["split"]] += 1
    check_split("requests", per_group)

    followup_tools = collections.Counter()
    dialogue_groups = collections.defaultdict(collections.Counter)
    turn_tools = collections.Counter()
    for item in dialogues:
        where = item.get("id", "?")
        turns = item.get("turns") or []
        if not 2 <= len(turns) <= 4:
            complain(where, f"{len(turns)} turns (2 to 4 wanted)")
        if item.get("split") not in SPLITS or item.get("lang") not in LANGS:
            complain(where, f"split {item.get('split')!r} / lang {item.get('lang')!r} not allowed")
        dialogue_groups[item.get("lang")][item.get("split")] += 1
        so_far = ""
        for index, turn in enumerate(turns):
            so_far += "\n" + turn.get("text", "")
            check_call(f"{where} turn {index + 1}", turn.get("tool"), turn.get("args"), so_far)
            turn_tools[turn.get("tool") or "(no tool)"] += 1
            if index:
                followup_tools[turn.get("tool") or "(no tool)"] += 1
    check_split("dialogues", dialogue_groups)
    for tool in DIALOGUE_TOOLS:
        if not followup_tools[tool]:
            complain("dialogues", f"{tool} is never called in a follow-up turn")

    total = len(requests)
    print(f"requests: {total}")
    print(f"  {'tool':<18}{'all':>5}{'en':>5}{'es':>5}{'tune':>6}{'held':>6}")
    for tool in [*TOOL_NAMES, "(no tool)"]:
        row = per_tool[tool]
        print(f"  {tool:<18}{row['en'] + row['es']:>5}{row['en']:>5}{row['es']:>5}{row['tuning']:>6}{row['heldout']:>6}")
    langs = collections.Counter(item["lang"] for item in requests)
    splits = collections.Counter(item["split"] for item in requests)
    print(f"  languages: en {langs['en']}, es {langs['es']} ({langs['es'] / total:.0%} Spanish)")
    print(f"  splits: tuning {splits['tuning']}, heldout {splits['heldout']}")
    print(f"  typos {sources['typo']} ({sources['typo'] / total:.0%}), long (>25 words) {long_items}, "
          f"terse (<=4 words) {terse_items}")
    print("  sources: " + ", ".join(f"{name} {count}" for name, count in sources.most_common()))

    turns_total = sum(len(item.get("turns") or []) for item in dialogues)
    langs = collections.Counter(item.get("lang") for item in dialogues)
    splits = collections.Counter(item.get("split") for item in dialogues)
    print(f"dialogues: {len(dialogues)} ({turns_total} turns, {turns_total - len(dialogues)} follow-ups)")
    print(f"  languages: en {langs['en']}, es {langs['es']}; splits: tuning {splits['tuning']}, heldout {splits['heldout']}")
    print("  follow-up turns per tool: " + ", ".join(f"{tool} {followup_tools[tool]}"
                                                   for tool in [*TOOL_NAMES, "(no tool)"]))
    kinds = collections.Counter(kind for item in dialogues for kind in str(item.get("kinds", "")).split("+") if kind)
    print("  kinds: " + ", ".join(f"{name} {count}" for name, count in kinds.most_common()))

    for name in TUNING_DIALOGUE_SETS:
        check_tuning_dialogues(name)
    check_substitutions()
    seen_texts = {item.get("text") for item in requests}
    for name in TUNING_REQUEST_SETS:
        check_tuning_requests(name, seen_texts)

    if problems:
        print(f"\n{len(problems)} problem(s):")
        for problem in problems:
            print("  " + problem)
        return 1
    print("\nall items valid")
    return 0


if __name__ == "__main__":
    sys.exit(main())
