"""Suggested next steps after a tool result: what the user may send next, never run by itself.

The ``final`` event of a turn that ran a tool carries ``suggestions``: at most
:data:`MAX_SUGGESTIONS` ``{"label", "text"}`` pairs, in the language of the user's message. A
UI shows them as buttons or ``/`` shortcuts; choosing one sends ``text`` as an ordinary message,
so it goes through routing, follow-up rewriting and, for a costly tool, the confirmation.

Where they come from, most specific first:

* an error result: none (the answer already says what to fix), except a tool that offers to
  train its missing model (``offer`` in the result): "train the birnn";
* ``query_database``: the two follow-up questions the SQL pipeline already wrote from the
  result and the schema (:mod:`taller.knowledge.sql.suggestions`, ``result["suggestions"]``);
* ``describe_database``: how many rows its largest table holds;
* ``train_model``: how the run is going, samples of a generative model, the runs to compare;
* ``list_models``: samples of the newest finished generative model, how a running one is going;
* every other tool: its ``next_steps`` in the registry (:mod:`taller.tools.registry`), formatted
  with the call's arguments and the result's fields.
"""

from __future__ import annotations

from typing import Any

from taller.tools.registry import TOOLS
from taller.trainers import MODELS

MAX_SUGGESTIONS = 3
MAX_TEXT_CHARS = 300  # a suggestion is a short message to send, not a long argument repeated

_TEXTS = {
    "en": {
        "train": ("Train {model}", "train the {model}"),
        "progress": ("How is it going?", "how is the training going"),
        "samples": ("Show samples", "generate {count} samples with the {model}"),
        "reconstructions": ("Show reconstructions", "show me {model} reconstructions"),
        "compare": ("Compare with the last run", "show training runs"),
        "rows": ("Rows in {table}", "how many rows are in {table}?"),
    },
    "es": {
        "train": ("Entrenar {model}", "entrena el {model}"),
        "progress": ("¿Cómo va?", "¿cómo va el entrenamiento?"),
        "samples": ("Ver muestras", "genera {count} muestras con el {model}"),
        "reconstructions": ("Ver reconstrucciones", "reconstruye dígitos con el {model}"),
        "compare": ("Comparar con la última", "muestra los entrenamientos"),
        "rows": ("Filas de {table}", "¿cuántas filas hay en {table}?"),
    },
}


def suggest_next(tool: str | None, args: dict[str, Any], result: Any, language: str = "en") -> list[dict[str, str]]:
    """Up to three ``{"label", "text"}`` next steps after ``tool`` returned ``result``."""
    language = "es" if language == "es" else "en"
    if not tool or not isinstance(result, dict):
        return []
    try:
        found = _suggest(tool, args or {}, result, language)
    except (KeyError, TypeError, ValueError, AttributeError):  # an odd result costs the suggestions only
        found = []
    out: list[dict[str, str]] = []
    for label, text in found:
        text = " ".join(str(text).split())
        # Cut, a message would ask about other text than the user's; too long, it is not offered.
        if text and len(text) <= MAX_TEXT_CHARS and all(item["text"] != text for item in out):
            out.append({"label": " ".join(str(label).split())[:80], "text": text})
    return out[:MAX_SUGGESTIONS]


def _pick(key: str, language: str, **values: Any) -> tuple[str, str]:
    label, text = _TEXTS[language][key]
    return label.format(**values), text.format(**values)


def _suggest(tool: str, args: dict[str, Any], result: dict[str, Any], language: str) -> list[tuple[str, str]]:
    offer = result.get("offer")
    if isinstance(offer, dict) and offer.get("tool") == "train_model" and (offer.get("args") or {}).get("model") in MODELS:
        return [_pick("train", language, model=offer["args"]["model"])]
    if result.get("error"):
        return []
    if tool == "query_database":
        return [(question, question) for question in result.get("suggestions") or [] if isinstance(question, str)]
    if tool == "describe_database":
        tables = [table for table in result.get("tables") or [] if isinstance(table, dict) and table.get("name")]
        if not tables:
            return []
        largest = max(tables, key=lambda table: table.get("row_count") or 0)
        return [_pick("rows", language, table=largest["name"])]
    if tool == "train_model":
        return _after_training(str(result.get("model") or args.get("model") or ""), language)
    if tool == "list_models":
        return _after_listing(result, language)
    return _from_registry(tool, args, result, language)


def _samples(model: str, language: str) -> tuple[str, str] | None:
    spec = MODELS.get(model)
    if spec is None or spec.generation is None:
        return None
    if "reconstruction" in spec.generation.samples:
        return _pick("reconstructions", language, model=model)
    return _pick("samples", language, model=model, count=spec.generation.default_count)


def _after_training(model: str, language: str) -> list[tuple[str, str]]:
    out = [_pick("progress", language)]
    samples = _samples(model, language)
    if samples:
        out.append(samples)
    out.append(_pick("compare", language))
    return out


def _after_listing(result: dict[str, Any], language: str) -> list[tuple[str, str]]:
    runs = [run for run in result.get("runs") or [] if isinstance(run, dict)]
    out = []
    if any(run.get("state") in ("running", "cancelling") for run in runs):
        out.append(_pick("progress", language))
    finished = next((run for run in runs if run.get("state") == "finished" and _samples(str(run.get("model")), language)), None)
    if finished:
        out.append(_samples(str(finished["model"]), language))
    return out


def _from_registry(tool: str, args: dict[str, Any], result: dict[str, Any], language: str) -> list[tuple[str, str]]:
    spec = TOOLS.get(tool)
    if spec is None:
        return []
    # The call's arguments, then what the result says (the count it made, the text it read).
    fields = {key: value for key, value in args.items() if value is not None}
    fields.update({key: value for key, value in result.items()
                   if isinstance(value, (str, int, float)) and not isinstance(value, bool)})
    out = []
    for label, template in spec.next_steps.get(language, ()):
        try:
            out.append((label.format_map(fields), template.format_map(fields)))
        except (KeyError, IndexError, ValueError):  # a field this call did not have: not offered
            continue
    return out
