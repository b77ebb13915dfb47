"""Routing benchmark: does the agent pick the right tool and arguments, and how fast?

A fixed set of English and Spanish requests covering every tool and no-tool chats (written for
this benchmark; the semantic router's examples in ``taller/agent/prompts.py`` are different
sentences). For each backend it prints tool accuracy, tool+arguments accuracy and the p50/p95
latency of ``Agent.plan`` (routing only: nothing runs).

    python bench/routing.py                         # semantic router + the embedded model
    python bench/routing.py --no-semantic           # the LLM alone
    python bench/routing.py --backend ollama --model llama3.1
    python bench/routing.py --gguf ~/models/other.gguf --limit 20 --verbose
    python bench/routing.py --set requests --split tuning     # bench/data, tuning half
    python bench/routing.py --set requests --split heldout    # held-out half: run, never tune on
    python bench/routing.py --set requests-dev                # a second, blind tuning set of requests
    python bench/routing.py --set dialogues --split tuning    # multi-turn: follow-ups scored apart

Sets: ``legacy`` (the 68 ``CASES`` below, written with the first router and no longer blind) and
``requests`` (``bench/data/routing_requests.jsonl``, 325 items written before the system was run
on them; see bench/data/README.md) and ``dialogues`` (``routing_dialogues.jsonl``, 48 dialogues:
each turn is planned with the thread so far — the system's own earlier plans, as in a real chat —
and first turns and follow-up turns are scored apart). Report both halves; tune on ``tuning`` only.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Contains:
    """An argument that must contain this text (free-text questions may be paraphrased)."""

    text: str


CASES: list[tuple[str, str | None, dict]] = [
    # train_model
    ("train the autoencoder", "train_model", {"model": "autoencoder"}),
    ("please train the cats vs dogs classifier for 4 epochs", "train_model", {"model": "dense_classifier", "epochs": 4}),
    ("entrena el autoencoder durante 2 épocas", "train_model", {"model": "autoencoder", "epochs": 2}),
    ("entrena el modelo de traducción", "train_model", {"model": "seq2seq"}),
    ("start training the variational autoencoder", "train_model", {"model": "vae"}),
    ("quiero entrenar la GAN pix2pix", "train_model", {"model": "pix2pix"}),
    ("train the bidirectional LSTM", "train_model", {"model": "birnn"}),
    ("train an LSTM on the memory task, 6 epochs", "train_model", {"model": "rnn", "epochs": 6}),
    # list_models
    ("which models do I have trained?", "list_models", {}),
    ("¿cómo va el entrenamiento?", "list_models", {}),
    ("show me my training runs and their metrics", "list_models", {}),
    ("lista los modelos entrenados", "list_models", {}),
    # classify_pet
    ("is photos/rex.jpg a cat or a dog?", "classify_pet", {"image_path": "photos/rex.jpg"}),
    ("¿mi mascota en ~/fotos/michi.png es gato o perro?", "classify_pet", {"image_path": "~/fotos/michi.png"}),
    ("classify the pet in /tmp/pet.jpeg", "classify_pet", {"image_path": "/tmp/pet.jpeg"}),
    ("dime si animal.jpg es un perro", "classify_pet", {"image_path": "animal.jpg"}),
    # generate_images
    ("generate 6 samples from the vae", "generate_images", {"model": "vae", "count": 6}),
    ("show autoencoder reconstructions of some test digits", "generate_images", {"model": "autoencoder"}),
    ("genera imágenes nuevas con el VAE", "generate_images", {"model": "vae"}),
    ("run pix2pix on labels/facade_01.png", "generate_images", {"model": "pix2pix", "image_path": "labels/facade_01.png"}),
    # forecast
    ("forecast the next 4 values of 3, 5, 7, 9, 11", "forecast", {"values": [3, 5, 7, 9, 11], "steps": 4}),
    ("predice los siguientes 2 valores: 10, 20, 30, 40", "forecast", {"values": [10, 20, 30, 40], "steps": 2}),
    ("what comes next in the series 1.5 2.5 3.5 4.5 5.5", "forecast", {"values": [1.5, 2.5, 3.5, 4.5, 5.5]}),
    ("forecast data/sales.csv", "forecast", {"values": "data/sales.csv"}),
    # punctuate
    ("add punctuation to: hello how are you i am fine", "punctuate", {"text": "hello how are you i am fine"}),
    ("puntúa este texto: que hora es", "punctuate", {"text": "que hora es"}),
    ("restore the capitals and punctuation of 'where is my phone'", "punctuate", {"text": "where is my phone"}),
    ("pon la puntuación: donde vives", "punctuate", {"text": "donde vives"}),
    # translate
    ("translate 'the weather is nice today' to Spanish", "translate", {"text": "the weather is nice today"}),
    ("traduce: I want a coffee", "translate", {"text": "I want a coffee"}),
    ("how do you say 'thank you very much' in Spanish?", "translate", {"text": "thank you very much"}),
    ("translate into Spanish: we are learning deep learning", "translate", {"text": "we are learning deep learning"}),
    ("tradúceme «the book is on the table»", "translate", {"text": "the book is on the table"}),
    # analyze_face
    ("what's the emotion and age of the face in selfie.jpg", "analyze_face", {"image_path": "selfie.jpg"}),
    ("¿qué emoción muestra la persona en retrato.png?", "analyze_face", {"image_path": "retrato.png"}),
    ("how old do the people in group_photo.jpeg look?", "analyze_face", {"image_path": "group_photo.jpeg"}),
    ("analiza las caras de ~/fotos/boda.jpg", "analyze_face", {"image_path": "~/fotos/boda.jpg"}),
    # add_video
    ("add the video https://www.youtube.com/watch?v=aircAruvnKk", "add_video", {"url_or_path": "https://www.youtube.com/watch?v=aircAruvnKk"}),
    ("añade el vídeo https://youtu.be/IHZwWFHWa-w", "add_video", {"url_or_path": "https://youtu.be/IHZwWFHWa-w"}),
    ("index the subtitles in lectures/intro.srt", "add_video", {"url_or_path": "lectures/intro.srt"}),
    ("load this transcript: talk.vtt", "add_video", {"url_or_path": "talk.vtt"}),
    # ask_video
    ("what does the video say about gradient descent?", "ask_video", {"question": Contains("gradient descent")}),
    ("¿en qué minuto del vídeo hablan de la retropropagación?", "ask_video", {"question": Contains("retropropagación")}),
    ("according to the lecture, why do we need activation functions?", "ask_video", {"question": Contains("activation functions")}),
    ("en la charla, ¿quién es el ponente?", "ask_video", {"question": Contains("ponente")}),
    # summarize_video
    ("summarize the video", "summarize_video", {}),
    ("hazme un resumen del vídeo", "summarize_video", {}),
    ("give me the key points of the talk, section by section", "summarize_video", {}),
    ("resume https://youtu.be/aircAruvnKk", "summarize_video", {"video": "https://youtu.be/aircAruvnKk"}),
    # query_database
    ("query the sales DB: who are the top 5 customers by total spent?", "query_database", {"question": Contains("top 5 customers")}),
    ("¿cuántas facturas hay de clientes de Brasil?", "query_database", {"question": Contains("Brasil")}),
    ("which genre sells the most tracks?", "query_database", {"question": Contains("genre")}),
    ("consulta la base de datos: ventas totales por año", "query_database", {"question": Contains("ventas totales")}),
    ("how many employees does the store have?", "query_database", {"question": Contains("employees")}),
    # describe_database
    ("describe the sales database", "describe_database", {}),
    ("¿qué tablas tiene la base de datos?", "describe_database", {}),
    ("show me the database schema", "describe_database", {}),
    ("describe la base de datos de ventas", "describe_database", {}),
    # no tool
    ("hi there!", None, {}),
    ("buenas tardes", None, {}),
    ("thank you, that was helpful", None, {}),
    ("what is the vanishing gradient problem?", None, {}),
    ("¿qué diferencia hay entre una LSTM y una GRU?", None, {}),
    ("explain what a convolutional layer does", None, {}),
    ("¿qué es el aprendizaje por transferencia?", None, {}),
    ("what can you do?", None, {}),
    ("who created you?", None, {}),
    ("cuéntame un chiste sobre redes neuronales", None, {}),
]


@dataclass(frozen=True)
class Optional:
    """An argument the call means the same without (a stated default); if given, it must match."""

    value: object


@dataclass(frozen=True)
class Excludes:
    """Text a free-text argument must not contain: the value a follow-up replaced ("and to
    France?" after Canada asks about France alone, not "Canada and France")."""

    text: str


DATA = Path(__file__).resolve().parent / "data"


def _expected_value(value: object) -> object:
    """bench/data's JSON forms → the matcher's: ``{"contains": ...}`` and ``{"optional": ...}``."""
    if isinstance(value, dict) and set(value) in ({"contains"}, {"contains", "excludes"}):
        words, absent = value["contains"], value.get("excludes", [])
        return (tuple(Contains(word) for word in ([words] if isinstance(words, str) else words))
                + tuple(Excludes(word) for word in ([absent] if isinstance(absent, str) else absent)))
    if isinstance(value, dict) and set(value) == {"optional"}:
        return Optional(_expected_value(value["optional"]))
    return value


# The half each loaded request (or dialogue's first turn) belongs to, so that a run over both halves
# reports each apart and keeps the held-out misses out of sight.
HALF_OF: dict[str, str] = {}


# Each benchmark set and its file in bench/data. The "-dev" sets are tuning sets written blind, one
# per round of tuning once the earlier ones were spent (see bench/data/README.md).
REQUEST_FILES = {"requests": "routing_requests.jsonl", "requests-dev": "routing_requests_dev.jsonl",
                 "requests-dev2": "routing_requests_dev2.jsonl", "requests-dev3": "routing_requests_dev3.jsonl",
                 "requests-dev4": "routing_requests_dev4.jsonl"}
DIALOGUE_FILES = {"dialogues": "routing_dialogues.jsonl", "dialogues-dev": "routing_dialogues_dev.jsonl",
                  "dialogues-dev2": "routing_dialogues_dev2.jsonl", "dialogues-dev3": "routing_dialogues_dev3.jsonl",
                  "dialogues-dev4": "routing_dialogues_dev4.jsonl", "dialogues-dev5": "routing_dialogues_dev5.jsonl",
                  "dialogues-dev6": "routing_dialogues_dev6.jsonl", "dialogues-dev7": "routing_dialogues_dev7.jsonl",
                  "dialogues-dev8": "routing_dialogues_dev8.jsonl", "dialogues-dev9": "routing_dialogues_dev9.jsonl",
                  "dialogues-dev10": "routing_dialogues_dev10.jsonl",
                  "substitutions": "routing_substitutions.jsonl"}


def load_requests(split: str = "all", file: str = "routing_requests.jsonl") -> list[tuple[str, str | None, dict]]:
    """The hand-written requests of bench/data as ``(text, tool, args)`` cases.

    ``routing_requests_dev.jsonl`` is a second set of single requests (all tuning), written blind
    for the fifth round once the first tuning half had one miss left.
    """
    cases = []
    for line in (DATA / file).read_text(encoding="utf-8").splitlines():
        if not line.strip():
            continue
        item = json.loads(line)
        if split in ("all", item["split"]):
            args = {key: _expected_value(value) for key, value in item["args"].items()}
            cases.append((item["text"], item["tool"], args))
            HALF_OF[item["text"]] = item["split"]
    return cases


def load_dialogues(split: str = "all", file: str = "routing_dialogues.jsonl",
                   ids: frozenset[str] = frozenset()) -> list[list[tuple[str, str | None, dict]]]:
    """The hand-written dialogues of bench/data, each a list of ``(text, tool, args)`` turns.

    ``routing_dialogues_dev.jsonl`` is a second tuning set, written later by someone who had not
    seen the router or the first set, to tune follow-ups on once the first tuning half was spent;
    ``routing_dialogues_dev2.jsonl`` a third, written the same way for the third round, and
    ``routing_dialogues_dev3.jsonl`` a fourth, for the fourth, and ``routing_dialogues_dev4.jsonl`` a
    fifth, for the fifth.
    """
    dialogues = []
    for line in (DATA / file).read_text(encoding="utf-8").splitlines():
        if not line.strip():
            continue
        item = json.loads(line)
        if split in ("all", item["split"]) and (not ids or item.get("id") in ids):
            dialogues.append([(turn["text"], turn["tool"], {key: _expected_value(value) for key, value in turn["args"].items()})
                              for turn in item["turns"]])
            HALF_OF[item["turns"][0]["text"]] = item["split"]
    return dialogues


def value_match(want: object, got: object) -> bool:
    if isinstance(want, Optional):
        return got is None or value_match(want.value, got)
    if isinstance(want, tuple):  # every word of a {"contains": [...]}
        return all(value_match(word, got) for word in want)
    if isinstance(want, Contains):
        return isinstance(got, str) and want.text.lower() in got.lower()
    if isinstance(want, Excludes):
        return isinstance(got, str) and want.text.lower() not in got.lower()
    if isinstance(want, list):
        try:
            return isinstance(got, list) and [float(x) for x in got] == [float(x) for x in want]
        except (TypeError, ValueError):
            return False
    return got == want


def args_match(expected: dict, actual: dict) -> bool:
    for key, want in expected.items():
        if not value_match(want, actual.get(key)):
            return False
    # No invented optional arguments: every argument given must be expected (question text aside).
    return all(key in expected for key in actual)


def shown(value: object) -> object:
    """An expected value as plain JSON for the failure list."""
    if isinstance(value, Optional):
        return {"optional": shown(value.value)}
    if isinstance(value, tuple):
        absent = [word.text for word in value if isinstance(word, Excludes)]
        return {"contains": [word.text for word in value if isinstance(word, Contains)],
                **({"excludes": absent} if absent else {})}
    if isinstance(value, Contains):
        return {"contains": value.text}
    return value


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))
    return ordered[index]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--backend", default="embedded", choices=["embedded", "ollama", "auto"])
    parser.add_argument("--model", help="Ollama model tag")
    parser.add_argument("--gguf", help="GGUF file for the embedded backend (default: the installed one)")
    parser.add_argument("--no-semantic", action="store_true", help="turn the MiniLM pre-router off")
    parser.add_argument("--set", dest="case_set", default="legacy", choices=["legacy", *REQUEST_FILES, *DIALOGUE_FILES])
    parser.add_argument("--show-heldout", action="store_true",
                        help="print the held-out half's misses too (only when the tuning is over)")
    parser.add_argument("--split", default="all", choices=["all", "tuning", "heldout"],
                        help="with --set requests: which half (tune on 'tuning' only)")
    parser.add_argument("--limit", type=int, help="only the first N cases")
    parser.add_argument("--only", default="", help="only these dialogues, by id (comma-separated)")
    parser.add_argument("--threads", type=int, default=0, help="llama.cpp threads (0 = all cores)")
    parser.add_argument("--verbose", action="store_true")
    parser.add_argument("--json", help="also write the results to this file")
    options = parser.parse_args()

    os.environ["TALLER_BACKEND"] = options.backend
    os.environ["TALLER_SEMANTIC_ROUTER"] = "0" if options.no_semantic else "1"
    if options.gguf:
        os.environ["TALLER_EMBEDDED_MODEL_PATH"] = options.gguf
    if options.model:
        os.environ["TALLER_OLLAMA_MODEL"] = options.model
    if options.threads:
        os.environ["TALLER_EMBEDDED_THREADS"] = str(options.threads)
    os.environ.setdefault("TALLER_EMBEDDED_CONTEXT", "2048")

    from taller.agent.session import Agent
    from taller.config import get_settings

    get_settings(reload=True)
    agent = Agent()
    from langchain_core.messages import AIMessage, HumanMessage

    from taller.agent import router

    ids = frozenset(filter(None, options.only.split(",")))
    if options.case_set in DIALOGUE_FILES:
        dialogues = load_dialogues(options.split, DIALOGUE_FILES[options.case_set], ids)
    else:
        if options.case_set in REQUEST_FILES:
            cases = load_requests(options.split, REQUEST_FILES[options.case_set])
        else:
            cases = CASES
        dialogues = [[case] for case in cases]  # single requests: dialogues of one turn
    dialogues = dialogues[: options.limit] if options.limit else dialogues
    # Warm-up: load the LLM and MiniLM outside the timed loop (their load time is reported apart).
    started = time.perf_counter()
    if not options.no_semantic:
        router.semantic_router().scores("warm up")
    info = agent.backend_info()
    load_s = time.perf_counter() - started

    latencies, tool_ok, full_ok, by_source = [], 0, 0, {}
    followups = {"turns": 0, "tool_ok": 0, "full_ok": 0}
    failures = []
    halves: dict[str, dict[str, int]] = {}
    for dialogue in dialogues:
        history: list = []
        half = HALF_OF.get(dialogue[0][0], "tuning")
        for turn_index, (text, tool, args) in enumerate(dialogue):
            started = time.perf_counter()
            try:
                decision = router.plan(text, agent.chat_model, history=history, use_semantic=not options.no_semantic)
            except Exception as exc:
                decision = {"tool": "ERROR", "args": {}, "error": str(exc), "source": "error"}
            elapsed = time.perf_counter() - started
            latencies.append(elapsed)
            got_tool = decision.get("tool")
            got_args = decision.get("args", {}) if got_tool else {}
            source = decision.get("source", "?")
            by_source[source] = by_source.get(source, 0) + 1
            right_tool = got_tool == tool
            right_all = right_tool and args_match(args, got_args) and not decision.get("error")
            tool_ok += right_tool
            full_ok += right_all
            counts = halves.setdefault(half, {"cases": 0, "tool_ok": 0, "full_ok": 0, "followups": 0, "followups_ok": 0})
            counts["cases"] += 1
            counts["tool_ok"] += right_tool
            counts["full_ok"] += right_all
            if turn_index > 0:
                counts["followups"] += 1
                counts["followups_ok"] += right_all
            if turn_index > 0:
                followups["turns"] += 1
                followups["tool_ok"] += right_tool
                followups["full_ok"] += right_all
            if not right_all:
                failures.append({"half": half, "request": text, "turn": turn_index, "standalone": decision.get("standalone"),
                                 "want": {"tool": tool, "args": {k: shown(v) for k, v in args.items()}},
                                 "got": {"tool": got_tool, "args": got_args, "error": decision.get("error")}, "source": source})
            if options.verbose and (half != "heldout" or options.show_heldout):
                mark = "ok " if right_all else ("TOOL" if right_tool else "MISS")
                rewritten = f" [as {decision['standalone']!r}]" if decision.get("standalone") else ""
                print(f"{mark} {elapsed:6.2f}s [{source:8}] {text!r}{rewritten} -> {got_tool} {json.dumps(got_args, ensure_ascii=False)}", flush=True)
            # The thread as a chat would keep it: the turn (with its standalone form) and the call.
            extra = {"standalone": decision["standalone"]} if decision.get("standalone") else {}
            history.append(HumanMessage(content=text, additional_kwargs=extra))
            if got_tool and got_tool != "ERROR":
                history.append(AIMessage(content="", tool_calls=[{"name": got_tool, "args": got_args, "id": f"call_{turn_index}"}]))
            history.append(AIMessage(content="(answer)"))

    n = len(latencies)
    summary = {
        "set": options.case_set, "split": options.split if options.case_set != "legacy" else None,
        "backend": info, "semantic_router": not options.no_semantic, "cases": n,
        "tool_accuracy": round(tool_ok / n, 3), "tool_and_args_accuracy": round(full_ok / n, 3),
        "p50_s": round(statistics.median(latencies), 3), "p95_s": round(percentile(latencies, 95), 3),
        "mean_s": round(statistics.mean(latencies), 3), "decided_by": by_source, "load_s": round(load_s, 2),
        "by_half": {name: {"cases": c["cases"], "tool_accuracy": round(c["tool_ok"] / c["cases"], 3),
                           "tool_and_args_accuracy": round(c["full_ok"] / c["cases"], 3),
                           **({"followup_turns": c["followups"],
                               "followup_tool_and_args_accuracy": round(c["followups_ok"] / c["followups"], 3)}
                              if c["followups"] else {})} for name, c in halves.items()},
        **({"followup_turns": followups["turns"],
            "followup_tool_accuracy": round(followups["tool_ok"] / max(1, followups["turns"]), 3),
            "followup_tool_and_args_accuracy": round(followups["full_ok"] / max(1, followups["turns"]), 3)}
           if options.case_set.startswith("dialogues") else {}),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, {platform.python_version()}",
    }
    print(json.dumps(summary, indent=2, ensure_ascii=False))
    if not options.show_heldout:
        # The held-out half is run, never read while tuning: its misses stay out of sight (and out
        # of the JSON file) unless asked for, whichever --split ran it.
        hidden = [item for item in failures if item["half"] == "heldout"]
        if hidden:
            print(f"\n{len(hidden)} held-out misses not shown (--show-heldout to see them)")
        failures = [item for item in failures if item["half"] != "heldout"]
    if failures:
        print("\nmisrouted:")
        for item in failures:
            rewritten = f" (as {item['standalone']!r})" if item.get("standalone") else ""
            print(f"  [{item['source']}] {item['request']!r}{rewritten}\n      want {item['want']}\n      got  {item['got']}")
    if options.json:
        with open(options.json, "w", encoding="utf-8") as handle:
            json.dump({"summary": summary, "failures": failures}, handle, ensure_ascii=False, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
