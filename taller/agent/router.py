"""Choosing the one tool call for a request: an intent classifier, rules, then constrained LLM output.

Small local models pick a first tool well when their output is constrained to a schema, and
babble or loop when left free. So planning is a single decision, ``{"tool", "args"}``:

1. The intent classifier (:mod:`taller.agent.intents`, trained on the registry's examples)
   gives a probability per tool and "none". When it is sure and the tool's arguments can be read
   off the request by rules (a model name, a file path, a quoted text), the plan is made
   instantly, without the LLM. When it is sure of the tool only, the LLM fills the arguments.
2. Otherwise the LLM answers with output constrained to a JSON schema whose choices are narrowed to
   the classifier's best candidates (Ollama ``format`` / llama.cpp grammar), and the arguments
   are validated against the tool's pydantic schema, with one retry that shows the model its
   mistake.
3. When the request states more than the rules read (a number, a quote, a file, a named
   database), the LLM fills the tool's whole schema and :mod:`taller.agent.grounding` keeps only
   the values the text supports.
4. A follow-up turn is first made standalone (:mod:`taller.agent.followup`); a turn that changes
   a value of the previous call edits that call, the turn's own values winning (a number goes to
   the argument whose word is beside it: "what about 10 steps?"; a correction swaps the number it
   takes back: "25, not 24"); a turn that goes back to an earlier call ("go back to the dog pic")
   gets that call.

Why one module of about 1,150 lines: these steps are one decision read top to bottom (rules →
classifier → LLM choice → grounded arguments → follow-up edit → veto); the mechanisms with their
own state or vocabulary (the classifier, grounding, follow-ups, the registry) live in their own
modules.
"""

from __future__ import annotations

import json
import logging
import re
import threading
from collections import Counter
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

from langchain_core.messages import BaseMessage, HumanMessage, SystemMessage

from taller.agent import followup, prompts
from taller.tools import TOOL_NAMES, ToolError, get_tool, validate_args

if TYPE_CHECKING:  # pragma: no cover
    from taller.agent.intents import IntentClassifier

log = logging.getLogger(__name__)

NONE = "none"
# The intent classifier's probability for its best label above which the router trusts it alone
# (set on the tuning half of bench/data: 98 % of its requests score above it, 98.7 % of those right).
CONFIDENT_SCORE = 0.6
CANDIDATES = 4


# --- rules: read arguments off the request ----------------------------------------------------

_IMAGE_PATH = re.compile(r"""(?:^|[\s'"(¿¡])((?:~|\.{1,2}|/)?[\w./~-]*[\w-]\.(?:png|jpe?g|bmp|gif|webp|tiff?))\b""", re.I)
_TRANSCRIPT_PATH = re.compile(r"""(?:^|[\s'"(¿¡])((?:~|\.{1,2}|/)?[\w./~-]*[\w-]\.(?:vtt|srt|json))\b""", re.I)
# A folder, written with its final slash ("transcripciones/curso_pytorch/", "~/talks/"): the only
# tool that takes one is add_video (a folder of transcripts).
_FOLDER = re.compile(r"""(?:^|[\s'"(¿¡])((?:~|\.{1,2})?/?(?:[\w.~-]+/)+)(?=[\s'")?!,;:]|$)""")
_CSV_PATH = re.compile(r"""(?:^|[\s'"(¿¡])((?:~|\.{1,2}|/)?[\w./~-]*[\w-]\.csv)\b""", re.I)
# A link, without the punctuation of the sentence around it ("in https://youtu.be/x, how …").
_URL = re.compile(r"https?://\S*[^\s.,;:?!)\]'\"”»]", re.I)
# A SQLAlchemy database URL ("postgresql://analyst@db.local/library", "sqlite:///data/shop.db",
# "mysql+pymysql://…"), without a sentence's closing punctuation: the database argument as written.
_DATABASE_URL = re.compile(r"(?<![\w/])((?!https?://)[a-z][a-z0-9]*(?:\+[a-z0-9]+)?://[^\s'\"<>]*[^\s'\"<>.,;:?!)])", re.I)
# A bare YouTube id: 11 characters of [A-Za-z0-9_-] with a digit, "_" or "-" or mixed case inside.
_EPOCH_WORD = re.compile(r"(?:(?<=\d)|\b)(?:epochs?|épocas?|epocas?)\b", re.I)
_SAMPLE_WORD = re.compile(r"(?:(?<=\d)|\b)(?:samples?|images?|imágenes|imagenes|muestras|digits?|dígitos|digitos|pictures?)\b", re.I)


def _number_before(text: str, unit: re.Pattern[str]) -> int | None:
    """The whole number written just before a unit word: "12 epochs", "twelve epochs", "cinco
    épocas", "veinte muestras" (digits or English/Spanish number words, up to three words back).
    The first unit word with a number before it counts ("sample 12 digits": the digits)."""
    for match in unit.finditer(text):
        found = followup.number_near(text[:match.start()].split()[-3:], backwards=True)
        if found is not None:
            return found
    return None


_NUMBER = re.compile(r"-?\d+(?:\.\d+)?")
_NUMBER_RUN = re.compile(r"-?\d+(?:\.\d+)?(?:\s*[,;]?\s*(?:and|y)?\s*-?\d+(?:\.\d+)?)+")


@lru_cache(maxsize=1)
def _registry_words() -> frozenset[str]:
    """Every word the registry gives for a model or an argument value ("bidireccional", "greedy")."""
    from taller.text import normalize
    from taller.tools import registry

    phrases = [word for words in registry.model_words().values() for word in words]
    phrases += [word for spec in registry.TOOLS.values() for values in spec.synonyms.values()
                for words in values.values() for word in words]
    return frozenset(token for phrase in phrases for token in re.split(r"[\s_-]+", normalize(phrase)) if token)


def spelled(text: str) -> str:
    """``text`` normalised, a misspelt registry word one edit away spelled right (see
    :func:`taller.text.respelled`): typos are how people write, and a model's name must survive them."""
    from taller.text import respelled

    return respelled(text, _registry_words())


def _model_name(text: str, allowed: Sequence[str]) -> str | None:
    """The model of ``allowed`` that ``text`` names (registry words), the longest match winning:
    "variational autoencoder" is the VAE although it contains "autoencoder". A model the text
    takes back ("el de puntuación, no el traductor") is not the one it names."""
    from taller.agent import grounding
    from taller.text import negated_starts
    from taller.tools import registry

    folded = spelled(text)  # "la lstm bidireccinal" names the bidirectional model
    taken_back = negated_starts(folded)
    best: tuple[int, str] | None = None
    for name, words in registry.model_words().items():
        if name not in allowed:
            continue
        for word in words:
            for match in grounding.phrase_pattern(word).finditer(folded):
                if match.start() in taken_back:
                    continue
                length = match.end() - match.start()
                if best is None or length > best[0]:
                    best = (length, name)
    return best[1] if best else None


_COMMAND_WORDS = re.compile(
    r"^\s*(?:(?:please|por favor|can you|could you|puedes|podrías|podrias)\s+)*"
    r"(?:translate|traduce|traducir|tradúceme|traduceme|punctuate|puntúa|puntua|add punctuation to|"
    r"restore (?:the )?punctuation (?:of|in)|pon(?:le)? puntuación a)\s+(?:this|esto|este texto|the text)?\s*",
    re.I)
_TARGET_LANGUAGE = re.compile(r"\s*(?:in|into|to|al|en)\s+(?:spanish|español|espanol)\s*[.?!]?\s*$", re.I)


# A payload that only points back ("translate that last one"): the text is in the thread.
_ONLY_REFERENCE = re.compile(
    r"^\s*(?:it|this|that|these|those|this one|that one|that last one|the last one|the same|the last text|"
    r"esto|eso|este|esta|ese|esa|lo mismo|el [uú]ltimo|la [uú]ltima|la misma frase|el mismo texto)"
    r"(?:\s+(?:too|also|again|tambi[eé]n|otra vez))?\s*[.?!]*\s*$", re.I)


def _payload_text(text: str) -> str | None:
    """The text a translate/punctuate request is about: quoted, after a colon, or after the verb."""
    payload = _payload_candidate(text)
    return None if payload and _ONLY_REFERENCE.match(payload) else payload


def _payload_candidate(text: str) -> str | None:
    from taller.agent.grounding import quoted_spans

    quoted = quoted_spans(text)  # an apostrophe inside a word ("don't") does not end the quote
    if quoted:
        return quoted[0].strip()
    if ":" in text:
        tail = text.split(":", 1)[1].strip()
        return tail or None
    command = _COMMAND_WORDS.match(text)
    if command and command.end() < len(text):
        body = _TARGET_LANGUAGE.sub("", text[command.end():]).strip()
        return body or None
    return None


def _known_database(text: str) -> str | None:
    """A database the configuration knows by name (``databases`` in the settings, or the sample's
    other name, "chinook"), other than the default, named as a word of ``text``."""
    from taller.config import get_settings
    from taller.knowledge.sql.connection import SAMPLE_NAMES

    settings = get_settings()
    names = ({*settings.databases, *SAMPLE_NAMES} - {settings.default_database})
    for name in sorted(names, key=len, reverse=True):
        match = re.search(rf"(?<![\w/.:@-]){re.escape(name)}(?![\w/.:@-])", text, re.I)
        if match:
            return name
    return None


_LESSON_WORD = re.compile(r"\b(?:lessons?|lecci[oó]n|lecciones|experiments?|experimentos?)\b", re.I)


def extract_args(tool: str, text: str) -> dict[str, Any] | None:
    """Arguments for ``tool`` read off ``text`` by rules, or None when rules cannot tell."""
    if tool in ("describe_database", "query_database"):
        url = _DATABASE_URL.search(text)
        database = url.group(1) if url else _known_database(text)
        named = {"database": database} if database else {}
        return {"question": text.strip(), **named} if tool == "query_database" else named
    if tool in ("list_models", NONE):
        return {}
    if tool == "train_model":
        model = _model_name(text, ["dense_classifier", "autoencoder", "rnn", "birnn", "seq2seq", "vae", "pix2pix"])
        if not model:
            return None
        epochs = _number_before(text, _EPOCH_WORD)
        return {"model": model, **({"epochs": epochs} if epochs else {})}
    if tool in ("classify_pet", "analyze_face"):
        path = _IMAGE_PATH.search(text)
        return {"image_path": path.group(1)} if path else None
    if tool == "generate_images":
        model = _model_name(text, ["autoencoder", "vae", "pix2pix"])
        if not model:
            return None
        args: dict[str, Any] = {"model": model}
        count = _number_before(text, _SAMPLE_WORD)
        if count:
            args["count"] = count
        path = _IMAGE_PATH.search(text)
        if path:
            args["image_path"] = path.group(1)
        return args
    if tool == "forecast":
        csv = _CSV_PATH.search(text)
        steps_match = re.search(r"(?:next|siguientes|próximos|proximos)\s+(\d+)|(\d+)\s*(?:steps?|pasos|values|valores)", text, re.I)
        # Digits by the rule below; a count in words ("doce pasos", "seven more") by the registry's
        # words for ``steps``.
        steps = (int(next(g for g in steps_match.groups() if g)) if steps_match
                 else followup.numbers_by_units("forecast", text).get("steps"))
        if csv:
            values: Any = csv.group(1)
        else:
            # The series is the longest run of numbers separated only by commas, spaces or
            # semicolons; a number elsewhere ("a 10-step forecast", "2 more") is not part of it.
            # The step count is not part of it either ("…, 15, 17 2 steps").
            series_text = text[:steps_match.start()] + " ; " + text[steps_match.end():] if steps_match else text
            runs = [[float(n) for n in _NUMBER.findall(run.group(0))] for run in _NUMBER_RUN.finditer(series_text)]
            numbers = max(runs, key=len, default=[])
            if len(numbers) < 3:
                return None
            values = numbers
        return {"values": values, **({"steps": steps} if steps else {})}
    if tool in ("translate", "punctuate"):
        payload = _payload_text(text)
        return {"text": payload, **followup.numbers_by_words(tool, text)} if payload else None
    if tool == "add_video":
        url = _URL.search(text) or _TRANSCRIPT_PATH.search(text) or _FOLDER.search(text)
        if url:
            return {"url_or_path": url.group(0) if url.re is _URL else url.group(1)}
        video_id = re.search(r"\b([A-Za-z0-9_-]{11})\b", text)
        return {"url_or_path": video_id.group(1)} if video_id and re.search(r"[0-9_-]", video_id.group(1)) else None
    if tool in ("ask_video", "summarize_video"):
        # A video named by URL, YouTube id or transcript file is the video to use (added first
        # when it is not in the library yet).
        named = _URL.search(text) or _TRANSCRIPT_PATH.search(text) or followup.VIDEO_ID.search(text)
        video = {"video": named.group(1) if named.re is _TRANSCRIPT_PATH else named.group(0)} if named else {}
        return {"question": text.strip(), **video} if tool == "ask_video" else video
    if tool == "show_lesson" and _LESSON_WORD.search(text):
        # "the dropout lesson", "la lección de la atención": the lesson named by its model or its
        # subject (the registry's words). Without the word "lesson" a subject is a concept question
        # ("¿qué es el beam search?"), which the classifier and the model decide.
        named = _named_choices(tool, text).get("model")
        return {"model": named} if named else None
    return None


# --- the intent classifier (the pre-router) ------------------------------------------------------

_classifier: "IntentClassifier | None" = None
_classifier_lock = threading.Lock()


def semantic_router() -> "IntentClassifier":
    """The process's intent classifier, trained on the registry's examples at first use."""
    global _classifier
    from taller.agent.intents import IntentClassifier

    with _classifier_lock:
        if _classifier is None:
            _classifier = IntentClassifier(prompts.ROUTER_EXAMPLES)
        return _classifier


# --- the LLM's constrained choice -------------------------------------------------------------------

def _args_schema(tool: str, only: Sequence[str] | None = None, optional_too: bool = False) -> dict:
    """The tool's pydantic argument schema as JSON schema, optionally limited to some fields.

    ``optional_too``: every field may be null, so the model can leave out what was not said.
    """
    schema = get_tool(tool).args_schema.model_json_schema()
    schema.pop("title", None)
    if optional_too:
        schema["properties"] = {name: {"anyOf": [prop, {"type": "null"}]} if "anyOf" not in prop else prop
                                for name, prop in schema.get("properties", {}).items()}
        # Length limits become grammar repetitions (a 2,000-character question is 2,000 nested
        # rules, which llama.cpp refuses); pydantic checks them after the reply anyway.
        _drop_lengths(schema)
    if only is not None:
        schema["properties"] = {k: v for k, v in schema.get("properties", {}).items() if k in only}
        schema["required"] = [k for k in schema.get("required", []) if k in only]
    return schema


def _drop_lengths(node: Any) -> None:
    if isinstance(node, dict):
        for key in ("maxLength", "minLength", "maxItems", "minItems"):
            node.pop(key, None)
        for value in node.values():
            _drop_lengths(value)
    elif isinstance(node, list):
        for value in node:
            _drop_lengths(value)


def choice_schema(candidates: Sequence[str]) -> dict:
    """JSON schema of the first decision: only the name of one of ``candidates``."""
    return {"type": "object", "properties": {"tool": {"type": "string", "enum": list(candidates)}},
            "required": ["tool"]}


def _catalog() -> str:
    # The whole catalog every time (candidates are narrowed in the schema, not the prompt), so
    # the system prompt is identical across calls and llama.cpp reuses its cached prefix.
    return "\n".join(f"- {name}: {prompts.TOOL_CATALOG[name].split(' args:')[0]}" for name in TOOL_NAMES)


def _history_text(history: Sequence[BaseMessage], limit: int = 4) -> list[BaseMessage]:
    """The last few human/assistant turns (text only) so follow-ups like "again, 5 epochs" work."""
    kept = [m for m in history if m.type in ("human", "ai") and isinstance(m.content, str) and m.content.strip()]
    return [type(m)(content=m.content[:500]) for m in kept[-limit:]]


def _required(tool: str) -> list[str]:
    return [name for name, field in get_tool(tool).args_schema.model_fields.items() if field.is_required()]


def llm_plan(model: Any, request: str, candidates: Sequence[str], history: Sequence[BaseMessage] = (),
             results_note: str | None = None, context: followup.ThreadContext | None = None,
             allow_none: bool = True) -> dict[str, Any]:
    """Ask the LLM which tool (schema: an enum of ``candidates``), then only the missing arguments.

    Two short constrained decisions work far better with 0.5B-1.5B models than one free-form
    tool call: the first can only name a tool; the second can only fill the tool's *required*
    arguments that the rules could not read off the request, so optional numbers (epochs, beam
    size) are never invented. A model that volunteers ``args`` with its choice (the scripted test
    model, large Ollama models) has them validated like any others.
    """
    from taller.agent import grounding
    from taller.llm import invoke_json

    candidates = list(dict.fromkeys([*candidates, NONE])) if allow_none else list(dict.fromkeys(candidates))
    system = prompts.ROUTER_SYSTEM.format(catalog=_catalog())
    if results_note:
        system += "\n\n" + prompts.ROUTER_AFTER_TOOL.format(results=results_note)
    messages: list[BaseMessage] = [SystemMessage(content=system), *_history_text(history), HumanMessage(content=request)]
    # One candidate is no choice: the intent classifier was sure of the tool and only its
    # arguments need the model, which saves a call (a second or two on a CPU).
    try:
        raw = {"tool": candidates[0]} if len(candidates) == 1 else invoke_json(
            model, messages, choice_schema(candidates), max_tokens=24)
    except ValueError as exc:
        # A reply that is no JSON object (a backend without constrained decoding, a model that
        # answered in prose): the domain words decide if they can, else the turn is answered
        # without a tool, as when the model chooses "none". Never a raw parser error.
        log.warning("the model's tool choice was not JSON: %s", str(exc)[:200])
        by_keywords = keyword_plan(request)
        if by_keywords is not None and by_keywords["tool"] in candidates:
            return by_keywords
        return {"tool": None, "args": {}, "source": "llm", "unreadable_choice": True}
    tool = raw.get("tool")
    if tool in (None, "", NONE, "null"):
        return {"tool": None, "args": {}, "source": "llm"}
    if not isinstance(tool, str) or tool not in TOOL_NAMES:
        shown = tool[:40] if isinstance(tool, str) else type(tool).__name__
        return {"tool": None, "args": {}, "source": "llm", "error": f"the model chose an unknown tool {shown!r}"}

    args: dict[str, Any] = dict(extract_args(tool, request) or {})
    if isinstance(raw.get("args"), dict):
        args = {**args, **raw["args"]}  # what the model chose explicitly wins over the rules' guess
    if context is not None:  # "and her age?": the photo of the last call, before asking the model
        args = {**followup.inherited(tool, context, _required(tool), args), **args}
    sources = [request, *(context.sources() if context is not None else [])]
    if _unexplained(tool, request, args):
        args = _grounded_fill(model, tool, request, args, sources)
    missing = [name for name in _required(tool) if name not in args]
    error = None
    for attempt in range(2):
        if missing:
            ask: list[BaseMessage] = [
                SystemMessage(content=prompts.ROUTER_ARGS_SYSTEM.format(tool=tool, description=prompts.TOOL_CATALOG[tool])),
                HumanMessage(content=request),
            ]
            if error:
                ask.append(HumanMessage(content=f"That was invalid ({error}). Reply again."))
            try:
                filled = invoke_json(model, ask, _args_schema(tool, only=missing), max_tokens=reply_budget(request))
            except ValueError as exc:  # a reply cut off mid-JSON (a small model repeating itself)
                log.warning("filling %s's arguments failed: %s", tool, str(exc)[:200])
                error = "the model's reply was not valid JSON"
                continue
            # A required value must be in the request or the thread, like the optional ones: "train
            # that model" gets no model the user never mentioned, and "what format must the series
            # have?" no series [1, 2, 3, 4, 5]. Free text (a question) may be reworded, so it is kept.
            rules = _field_rules(tool)
            chosen = {k: v for k, v in filled.items() if k in missing}
            # (A file name the user never wrote is refused below, with its own question.)
            checked = {k: v for k, v in chosen.items() if k not in _free_text(tool) and rules.get(k) is not None
                       and not (k in _PATH_ARGUMENTS and isinstance(v, str))}
            kept = grounding.ground_arguments(checked, rules, list(sources)).kept if checked else {}
            # An invented choice is asked again below (a retry may name a real one); an invented
            # value (a text, a series) would only be invented again.
            invented = sorted(k for k in set(checked) - set(kept) if rules[k].kind != "enum")
            args.update({k: v for k, v in chosen.items() if k not in checked or k in kept})
            if invented:
                return {"tool": tool, "args": args, "source": "llm", "invented": invented,
                        "error": f"which {' and '.join(invented)}? Give the {' and '.join(invented)} in your message"}
        unseen = _invented_paths(args, sources)
        if unseen:
            # A file the user never named cannot be right; ask instead of guessing.
            return {"tool": tool, "args": {k: v for k, v in args.items() if k not in unseen}, "source": "llm",
                    "error": f"which file? Give the path of the {' and '.join(unseen)} in your message"}
        try:
            clean = validate_args(tool, args)
            return {"tool": tool, "args": _compact(tool, clean), "source": "llm"}
        except ToolError as exc:
            error = str(exc)
            missing = _required(tool)
            for name in missing:
                args.pop(name, None)
    return {"tool": tool, "args": args, "source": "llm", "error": error}


# --- grounded arguments: the LLM fills the whole schema, only what the text supports is kept -----

_PATHISH = followup.PATHISH  # one definition, shared with the follow-up checks


def _field_rules(tool: str) -> dict[str, Any]:
    from taller.agent import grounding
    from taller.tools import registry

    spec = registry.TOOLS[tool]
    return grounding.field_rules_from_schema(spec.args_schema, spec.free_text_fields, spec.synonyms)


def _new_numbers(request: str, used: str) -> list[float]:
    """The numbers ``request`` states that ``used`` does not, less the ones it takes back ("I
    meant 6, not 8": 8 is the old value, not a new one)."""
    from taller.text import negated_numbers, number_mentions

    return list((Counter(number_mentions(request)) - Counter(number_mentions(used))
                 - Counter(negated_numbers(request))).elements())


def _states_more(request: str, args: dict[str, Any]) -> bool:
    """Whether ``request`` states a number, a quoted text or a file that ``args`` do not use."""
    from taller.agent import grounding

    used = " ".join(" ".join(map(str, v)) if isinstance(v, list) else str(v) for v in args.values())
    if _new_numbers(request, used):
        return True
    return (any(span not in used for span in grounding.quoted_spans(request))
            or any(token not in used for token in _PATHISH.findall(request)))


def _unexplained(tool: str, request: str, args: dict[str, Any]) -> bool:
    """Whether ``request`` states something that may fill an argument ``args`` does not have yet:
    a number, a quoted text or a file/URL not already used, or a word of a missing field's
    choices. Only then is the LLM asked to fill the whole schema (it costs a call)."""
    from taller.agent import grounding

    fields = get_tool(tool).args_schema.model_fields
    missing = [name for name in fields if args.get(name) in (None, "", [])]
    if not missing:
        return False
    used = " ".join(" ".join(map(str, v)) if isinstance(v, list) else str(v) for v in args.values())
    # Counted with repeats: "a 10-step forecast of 8, 10, 12" states 10 twice, the series uses it once.
    if Counter(grounding.number_mentions(request)) - Counter(grounding.number_mentions(used)):
        return True
    if any(span not in used for span in grounding.quoted_spans(request)):
        return True
    # A link or file inside a free-text argument (the question) still names something: a
    # database URL, a video ("… in postgresql://reader@db/shop?").
    from taller.tools import registry

    free = registry.TOOLS[tool].free_text_fields if tool in registry.TOOLS else frozenset()
    named = " ".join(str(value) for name, value in args.items() if name not in free)
    if any(token not in named for token in _PATHISH.findall(request)):
        return True
    rules = _field_rules(tool)
    for name in missing:
        rule = rules.get(name)
        synonyms = getattr(rule, "synonyms", None) or {}
        for value, words in synonyms.items():
            if grounding.grounded_enum(value, words, [request]):
                return True
    # A database named in the sentence ("in the payroll database", "la base de datos de nóminas").
    name = _named_database(request)
    return bool("database" in missing and name and name.lower() not in _NOT_A_NAME)


def _named_database(request: str) -> str | None:
    """The word ``request`` puts before "database" or after "base de datos", "database" misspelt
    too ("in the hr databse"); None when it names none that way."""
    from taller.text import respelled

    named = _NAMED_DATABASE.search(respelled(request, _DATABASE_WORDS))
    return next((group for group in named.groups() if group), None) if named else None


_NAMED_DATABASE = re.compile(
    r"\b([\w-]+)\s+(?:database|db)\b|\b(?:database|db)\s+(?:called|named)\s+([\w-]+)"
    r"|\bbase(?:\s+de\s+datos)?\s+(?:de\s+|llamada\s+)?([\w-]+)", re.I)
_DATABASE_WORDS = frozenset({"database", "databases"})
_NOT_A_NAME = {"the", "a", "an", "my", "this", "that", "your", "our", "sales", "default", "de", "la", "el", "mi",
               "esta", "ventas", "y", "and", "of", "in", "en", "to", "from", "query", "consulta", "datos", "la", "que"}


# Tokens an argument reply may take at most, and at least: its keys and punctuation.
ARGS_TOKENS, ARGS_OVERHEAD = 200, 32


def reply_budget(*texts: str) -> int:
    """Tokens for a JSON reply of arguments that can only keep what ``texts`` say (grounding drops
    the rest): their length, generously (a token is 3-4 characters), plus the JSON around them.
    A small model that starts counting ("values": [24, 25, 26, … 70, …) stops there instead of
    at ``ARGS_TOKENS``, seconds later, with the same unusable reply."""
    return min(ARGS_TOKENS, ARGS_OVERHEAD + sum(len(text) for text in texts) // 2)


def _grounded_fill(model: Any, tool: str, request: str, args: dict[str, Any], sources: Sequence[str]) -> dict[str, Any]:
    """Ask the LLM for every argument of ``tool`` and keep those grounded in ``sources``.

    Arguments already read off the request by rules stay as they are (a quoted text is exact);
    the LLM's values add what rules missed — an optional count, a beam size, a database named in
    the sentence — and anything it invented is dropped by :mod:`taller.agent.grounding`.
    """
    from taller.agent import grounding
    from taller.llm import invoke_json

    ask: list[BaseMessage] = [
        SystemMessage(content=prompts.ROUTER_ARGS_SYSTEM.format(tool=tool, description=prompts.TOOL_CATALOG[tool])),
        HumanMessage(content=request),
    ]
    try:
        filled = invoke_json(model, ask, _args_schema(tool, optional_too=True), max_tokens=reply_budget(*sources))
    except Exception as exc:  # a reply that is not JSON, a schema the backend refuses: keep the rules' args
        log.warning("argument fill for %s failed: %s", tool, exc)
        return args
    proposed = {k: v for k, v in filled.items() if k not in args and v not in (None, "", [])}
    rules = _field_rules(tool)
    kept = grounding.ground_arguments(proposed, rules, list(sources)).kept
    for name, value in kept.items():
        if rules[name].kind == "string" and isinstance(value, str):
            # A name as the user spelled it ("the hr database"), not as a rewrite recased it ("HR").
            kept[name] = _users_spelling(value, [*sources[1:], sources[0]])
    return {**args, **kept}


def _free_text(tool: str) -> frozenset[str]:
    """The tool's arguments that may be reworded (a question), from its registry entry."""
    from taller.tools import registry

    return registry.TOOLS[tool].free_text_fields if tool in registry.TOOLS else frozenset()


def _users_spelling(value: str, texts: Sequence[str]) -> str:
    """``value`` as first written in ``texts`` (case-insensitive whole-word match), else itself."""
    pattern = re.compile(rf"(?<!\w){re.escape(value.strip())}(?!\w)", re.I)
    for text in texts:
        match = pattern.search(text)
        if match:
            return match.group(0)
    return value


_PATH_ARGUMENTS = ("image_path", "url_or_path", "values")


def _invented_paths(args: dict[str, Any], sources: Sequence[str]) -> list[str]:
    """Path-like arguments whose value appears neither in the request nor in the thread."""
    unseen = []
    for name in _PATH_ARGUMENTS:
        value = args.get(name)
        if isinstance(value, str) and value.strip() and not any(value.strip().lower() in text.lower() for text in sources):
            unseen.append(name)
    return unseen


def _compact(tool: str, args: dict[str, Any]) -> dict[str, Any]:
    """Drop optional arguments left at their default so plans read like the user's request."""
    fields = get_tool(tool).args_schema.model_fields
    return {k: v for k, v in args.items() if not (k in fields and not fields[k].is_required() and v == fields[k].default)}


# Questions that name a video, a talk or a lecture are about an added video (an URL or a
# transcript file in the request means adding or summarising it instead).
_VIDEO_QUESTION = re.compile(r"\b(v[ií]deos?|lectures?|talks?|charlas?|conferencias?|ponentes?|speakers?|clases?)\b", re.I)
# What shows a request is about a recording: a word for one, for the person speaking in it, or for
# speaking itself ("what does she say about…", "¿qué dice de…?"), or a time in it ("at minute 12").
_RECORDING = re.compile(
    r"\b(v[ií]deos?|lectures?|talks?|charlas?|conferencias?|conferenciantes?|ponentes?|ponencias?|speakers?|"
    r"speech(?:es)?|discursos?|keynotes?|clases?|profes?|professors?|profesor(?:a|es)?|presenters?|"
    r"presentador(?:a|es)?|orador(?:a|es)?|hosts?|episodes?|episodios?|podcasts?|recordings?|grabaci[oó]n(?:es)?|"
    r"clips?|webinars?|seminar(?:io)?s?|interviews?|entrevistas?|transcripts?|transcripci[oó]n(?:es)?|"
    r"subt[ií]tulos|subtitles|captions?|youtube|channels?|canal(?:es)?|playlists?|"
    r"says?|said|saying|mentions?|mentioned|talks? about|talked about|dice|dijo|dicen|menciona(?:n|ba)?|"
    r"mencion[oó]|habla(?:n|ba)?|habl[oó]|comenta(?:n|ba)?|coment[oó]|opina|minutos?|minutes?|"
    # what the source says: "according to it, what's the difference between …?"
    r"according to (?:it|him|her|them)|seg[uú]n (?:[eé]l|ella|ellos|ellas))\b", re.I)
# The tools that answer from a recording in the library.
_RECORDING_TOOLS = followup.RECORDING_TOOLS


def _ruled_out(texts: Sequence[str], context: followup.ThreadContext | None) -> frozenset[str]:
    """Tools the request cannot mean for want of what they work on.

    The classifier learnt video questions that never say "video" ("¿qué opina el ponente de…?"),
    and with them it places concept questions on the video tools ("¿en qué consiste exactamente el
    sobreajuste?", "what does the beam size actually change?"): their wording is the same. What
    tells them apart is whether anything points at a recording: a word for one or its speaker, a
    link, a transcript, a video id, or a thread that has been about a video. Without any, a
    question is answered, not looked up in a transcript. Likewise ``forecast`` needs a series
    (:func:`_names_a_series`) or a thread that has forecast.
    """
    calls = (context.calls or ((context.last_call,) if context.last_call else ())) if context is not None else ()
    said = [*texts, *(context.turns if context is not None else ())]
    ruled_out: set[str] = set()
    if not (any((call or {}).get("tool") in _RECORDING_TOOLS | {"add_video"} for call in calls)
            or any(_RECORDING.search(text) or _URL.search(text) or _TRANSCRIPT_PATH.search(text)
                   or followup.VIDEO_ID.search(text) or re.search(r"youtu\.?be", text, re.I) for text in said)):
        ruled_out |= _RECORDING_TOOLS
    # The same for a forecast: a year alone ("hmm, and if we only count 2012?") reads as numbers to
    # the classifier, but a forecast needs a series — numbers that are not years, a CSV file, a word
    # for forecasting — or a thread that has forecast.
    if not (any((call or {}).get("tool") == "forecast" for call in calls) or any(_names_a_series(text) for text in said)):
        ruled_out.add("forecast")
    return frozenset(ruled_out)


_SERIES_WORDS = re.compile(
    r"\b(forecast\w*|predict\w*|prediction|pron[oó]stic\w*|predec\w*|predic\w*|predig\w*|series?|trend|"
    r"tendencia|extrapol\w*|proyect\w*|project\w*|sequence|secuencia|comes? next|what's next|sigue|viene despu[eé]s)\b", re.I)


def _names_a_series(text: str) -> bool:
    """Three numbers or more that are not years, a CSV file, or a word for forecasting."""
    from taller.agent import grounding

    numbers = [number for number in grounding.number_mentions(text) if not followup.is_year(number)]
    return len(numbers) >= 3 or bool(_CSV_PATH.search(text)) or bool(_SERIES_WORDS.search(text))


# A question as people type one: a question mark, or a question word first (after "and" / "y").
_QUESTION = re.compile(r"[?¿]|^\W*(?:(?:and|y|e)\s+)?(what|who|when|where|why|how|which|does|do|did|is|are|"
                       r"qu[eé]|qui[eé]n(?:es)?|cu[aá]nd[oa]|d[oó]nde|por qu[eé]|c[oó]mo|cu[aá]l(?:es)?|cu[aá]nt[oa]s?)\b", re.I)


# The default "sales" database's subjects, with words that ask for data rather than explanations.
_SALES_SUBJECT = re.compile(
    r"\b(customers?|invoices?|sales|genres?|tracks?|songs?|albums?|artists?|employees?|playlists?|"
    r"clientes?|facturas?|ventas?|g[eé]neros?|canciones?|pistas?|[aá]lbum(?:es)?|artistas?|empleados?)\b", re.I)
_DATA_ASK = re.compile(
    r"\b(top|how many|how much|total|most|least|average|list|which|count|per|"
    r"cu[aá]nt[oa]s?|cu[aá]les|total(?:es)?|m[aá]s|menos|promedio|lista|por)\b|\d", re.I)


# The user's own thing ("my face", "this photo", "mi perro"): a request to run the tool on it.
_MINE = re.compile(r"\b(my|mine|me|this|these|our|mi|mis|m[ií]o|m[ií]a|esta|este|estas|estos|nuestr[oa]s?)\b", re.I)


# Which tools take which kind of file (the suffixes their path arguments accept).
_FILE_TOOLS = (
    (_IMAGE_PATH, ("classify_pet", "analyze_face", "generate_images")),
    (_TRANSCRIPT_PATH, ("add_video", "summarize_video", "ask_video")),
    (_CSV_PATH, ("forecast",)),
    (_FOLDER, ("add_video",)),
)


def _tools_for_files(request: str) -> tuple[str, ...]:
    """The tools that take the kind of file named in ``request`` (empty when it names none)."""
    tools: list[str] = []
    for pattern, names in _FILE_TOOLS:
        if pattern.search(request):
            tools += names
    if _URL.search(request) and re.search(r"youtu\.?be", request, re.I):
        tools += ["add_video", "summarize_video", "ask_video"]
    return tuple(dict.fromkeys(tools))


def keyword_plan(request: str) -> dict[str, Any] | None:
    """A plan from unambiguous domain words, used when the semantic router is unsure."""
    about_schema = re.search(r"\b(describ\w*|schema|esquema|tables?|tablas?)\b", request, re.I)
    if (_SALES_SUBJECT.search(request) and _DATA_ASK.search(request) and not about_schema
            and not _VIDEO_QUESTION.search(request)):
        return {"tool": "query_database", "args": {"question": request.strip()}, "source": "keywords"}
    if _VIDEO_QUESTION.search(request) and _QUESTION.search(request) and not (
            _URL.search(request) or _TRANSCRIPT_PATH.search(request)):
        if not re.search(r"\b(summar|resum)", request, re.I):
            return {"tool": "ask_video", "args": {"question": request.strip()}, "source": "keywords"}
    return None


def plan(request: str, model_factory: Any, history: Sequence[BaseMessage] = (), use_semantic: bool = True,
         results_note: str | None = None, context: followup.ThreadContext | None = None) -> dict[str, Any]:
    """The tool call for ``request``: ``{"tool": name|None, "args": {...}, "source": ...}``.

    ``model_factory`` is called only when the LLM is needed, so confident requests never load it.
    A turn that reads like a follow-up of the thread (``history``, or an explicit ``context``) is
    first rewritten into a standalone request; the plan then carries it as ``standalone``.
    """
    if context is None:
        context = followup.context_from_messages(history)
    if (results_note is None and followup.asks_progress(request)
            and any(call.get("tool") == "train_model" for call in (context.calls or ((context.last_call,) if context.last_call else ()))[-2:])):
        # "how's it doing?" right after a training started: its status is what the models list shows.
        return {"tool": "list_models", "args": {}, "source": "follow-up"}
    returned = _returned_call(request, context, use_semantic) if results_note is None else None
    if returned is None and results_note is None:
        returned = _extended_series(request, context)
    if returned is not None:
        return _stated_defaults(returned, request)
    standalone = request
    quick = None
    alone = None  # the tool the classifier gives the turn alone, without the thread's pull
    alone_score = 0.0
    sure_tool = None  # the tool the classifier is sure of for the turn as typed (arguments aside)
    rewritten = False
    again = _takes_the_bare_value(request, context) if results_note is None else None
    # A short question right after a question ("which month was the best?"): a follow-up only if
    # the classifier reads it as the same tool or as none (checked below, once it has read it).
    short = use_semantic and results_note is None and followup.short_question_after_one(request, context)
    if results_note is None and again is None and (followup.looks_like_followup(request, context) or short):
        # A turn the classifier places on a tool with every argument read off it needs no
        # rewrite ("add this one too: <URL>", "and luna.png?" with the last tool favoured),
        # except a free-text argument (a question) that points back: "who are those
        # customers?" must say which customers. A turn it reads as chat ("¿y de jazz?") is
        # rewritten: in a thread it rarely is chat.
        last_tool = (context.last_call or {}).get("tool")
        prior = _followup_prior(request, last_tool)
        ruled_out = _ruled_out([request], context)
        quick = semantic_plan(request, prior, ruled_out) if use_semantic else None
        if use_semantic:
            best, score = _scores(request, prior, ruled_out)[0]
            sure_tool = best if best != NONE and score >= CONFIDENT_SCORE else None
            alone, alone_score = _scores(request, None, ruled_out)[0]
        free_text = quick is not None and bool(_free_text_fields(quick.get("tool")))
        if quick is None or not quick.get("tool") or (
                (followup.refers_back(request) or followup.adds_to_the_question(request)
                 or followup.says_what_it_replaces(request)
                 or (short and alone in (last_tool, NONE))) and free_text):
            standalone = followup.rewrite(model_factory(), request, context,
                                          turn_tool=alone if alone != NONE else None)
            rewritten = True
    # The last tool is favoured: strongly when the turn reads like a follow-up, mildly otherwise
    # ("¿qué dice sobre BERT?" right after a video summary), so only a turn the classifier is
    # unsure of changes tool.
    favour = None
    if results_note is None and (context.last_call or {}).get("tool"):
        if followup.looks_like_followup(request, context) or (short and alone in (context.last_call["tool"], NONE)):
            favour = _followup_prior(request, context.last_call["tool"])
        else:
            favour = (context.last_call["tool"], THREAD_PRIOR)
    if again is not None:
        # Only a new value for the last call ("¿y dibujos/tres_mio.png?" after a reconstruction):
        # the same call with it, whatever tool the value alone suggests (a photo: faces).
        decision = {"tool": again, "args": {}, "source": "follow-up"}
    elif sure_tool and standalone != request and not followup.changes_a_value(request):
        # The classifier was sure of the turn's tool; the rewrite only fills in what the turn
        # leaves to the thread (a small model's rewrite may drift to another tool: "ok, sample
        # 12 digits from it" became a training request).
        decision = _with_standalone(sure_tool, request, standalone, model_factory, context)
    else:
        decision = _plan_standalone(standalone, model_factory, history, use_semantic, results_note, context, favour)
        counted_by = _tool_counting(request)
        if rewritten and counted_by and counted_by == alone and decision.get("tool") not in (None, counted_by):
            # "once it finishes I want 9 samples out of it" came back joined to the training it
            # waits for: the turn counts in one tool's units, and the turn alone reads as that tool.
            decision = _with_standalone(counted_by, request, standalone, model_factory, context)
        elif (rewritten and alone not in (None, NONE) and alone_score >= ALONE_SURE and not followup.corrects(request)
              and decision.get("tool") not in (None, alone) and _supplies_what_it_needs(alone, request)):
            # "cool, also add his follow-up lecture <URL>" came back joined to the summary before
            # it: a turn the classifier alone is sure of, that names everything its tool needs,
            # is a request of its own.
            decision = _with_standalone(alone, request, request, model_factory, context)
            standalone = request
    changes_a_value = followup.changes_a_value(request)
    if (not decision.get("tool") and results_note is None and context.last_call
            and (followup.continues(request) or changes_a_value
                 or (followup.refers_back(request)
                     and followup.numbers_by_units(context.last_call.get("tool"), request)))):
        # "and …?", "make that 10 steps", "can you try it with a beam of 3" after a tool call that
        # routing could not place (the rewrite came back empty or unchanged): the same tool
        # again, with what this turn adds.
        decision = _same_tool_again(request, standalone, context) or decision
    if (not decision.get("tool") and results_note is None
            and (context.last_call or {}).get("tool") in _RECORDING_TOOLS | {"add_video"}
            and (followup.speaks_of_the_speaker(request) or _RECORDING.search(request))
            and _QUESTION.search(request) and not _asks_why(request)):
        # "does he recommend ReLU or something else?" after questions about a talk, "according to
        # it, what's …?" right after adding one: "he" is its speaker, "it" the recording, so the
        # question is for the same recording, in its own words.
        decision = _asked_of_the_recording(request, context) or decision
    if (decision.get("tool") and results_note is None and context.last_call
            and decision["tool"] == context.last_call.get("tool")
            and (followup.refers_back(request) or changes_a_value or again is not None)):
        # "mejor 6", "now with beam 5", "now on labels/b.png": the same call with a value changed.
        decision = _edited_call(model_factory, request, decision, context)
    if decision.get("tool"):
        decision = followup.carry_over(decision, context, _required(decision["tool"]),
                                       refers=followup.refers_back(request), request=request)
        decision = _model_from_thread(decision, request, context)
        decision = _turn_choices_win(decision, request)
        decision = _default_database_named(decision, request)
        decision = _thread_database_named(decision, request, context)
        decision = _earlier_value(decision, request, context)
    if (rewritten and standalone.strip() == request.strip() and decision.get("tool")
            and decision["tool"] == (context.last_call or {}).get("tool")
            and (followup.points_at_the_last_request(request, decision["tool"])
                 or (short and alone in (decision["tool"], NONE)))
            and all(decision["args"].get(name) == (context.last_call.get("args") or {}).get(name) for name in ("database", "video"))
            and context.last_request):
        # The rewrite came back unchanged for a turn that points back ("¿cuánto gastaron esos
        # clientes?", "which month was the best?"): the question goes with the one it continues, so
        # both parts reach the tool.
        # Not a question to another database or video ("ok now back to the sales db: how many
        # playlists are there?"): the one it would continue was about something else.
        joined = f"{context.last_request} {request}".strip()
        fields = _free_text_fields(decision["tool"])
        if fields:
            decision = {**decision, "args": {**decision["args"], **{name: joined for name in fields}}}
            standalone = joined
    if decision.get("tool") and results_note is None and (
            _asks_why(request) or _asks_what_it_can_do(request) or (use_semantic and _asks_what_it_is(request)
                                   and semantic_router().scores(request)[0][0] == NONE)):
        # A concept question the classifier alone reads as chat stays chat: the thread's pull
        # ("whats a foreign key again" after database questions) is no reason to run a tool.
        # "¿por qué se usa una GRU y no una red densa para esto?": a tool shows what happens,
        # not why; a why-question that names nothing to run (no file, number, quote or video)
        # is answered, whatever the rewrite carried into it.
        decision = {"tool": None, "args": {}, "source": decision.get("source", "llm"),
                    "question_about": decision["tool"]}
    if decision.get("tool") and results_note is None:
        decision = _stated_defaults(_without_unused_image(decision, request), request)
    if standalone.strip() != request.strip():
        decision = {**decision, "standalone": standalone}
    return decision


# The thing a tool works on, by its argument, and the arguments of earlier calls that held one:
# a video is also what add_video was given.
_SUBJECT_FIELDS = {"image_path": ("image_path",), "text": ("text",), "video": ("video", "url_or_path")}
# "the first one", "la segunda", "el primer vídeo", "in the second one": an earlier thing by its
# place in the thread. Not "the first 5 rows": a number after the ordinal counts something.
_ORDINAL = re.compile(
    r"\b(?:the|la|el|lo|in the|en la|en el)\s+(?P<place>first|1st|second|2nd|third|3rd|primer[oa]?|segund[oa]|"
    r"tercer[oa]?)\b(?!\s+\d)(?!\s+(?:few|couple|par|vez|time)\b)", re.I)
_PLACES = {"first": 0, "1st": 0, "primer": 0, "primero": 0, "primera": 0, "second": 1, "2nd": 1, "segundo": 1,
           "segunda": 1, "third": 2, "3rd": 2, "tercer": 2, "tercero": 2, "tercera": 2}


def _earlier_value(decision: dict[str, Any], request: str, context: followup.ThreadContext) -> dict[str, Any]:
    """The earlier photo, text or video the turn points at by its place ("summarize the first
    one", "translate the first one") or by a word of its file's name ("go back to the headshot"
    for ``interview_headshot.jpg``, "en la de toby"), when the turn writes none of its own."""
    from taller.agent import grounding

    tool = decision.get("tool")
    fields = get_tool(tool).args_schema.model_fields if tool else {}
    field = next((name for name in _SUBJECT_FIELDS if name in fields), None)
    if (field is None or grounding.quoted_spans(request) or followup.PATHISH.search(request)
            or followup.VIDEO_ID.search(request)):
        return decision
    seen: list[str] = []
    for call in context.calls:
        for name in _SUBJECT_FIELDS[field]:
            value = (call.get("args") or {}).get(name)
            if isinstance(value, str) and value.strip() and value not in seen:
                seen.append(value)
    if len(seen) < 2:
        return decision  # one earlier thing: the thread's carry-over already points at it
    chosen = None
    place = _ORDINAL.search(request)
    if place and _PLACES[place.group("place").lower()] < len(seen):
        chosen = seen[_PLACES[place.group("place").lower()]]
    elif field == "image_path":
        said = {word for word in re.findall(r"[^\W\d_]{4,}", grounding.normalize(request))}
        named = [value for value in seen if said & _file_words(value)]
        chosen = named[0] if len(named) == 1 else None
    if chosen is None or (decision["args"].get(field) == chosen and "error" not in decision):
        return decision
    out = {**decision, "args": {**decision["args"], field: chosen},
           "carried_over": sorted({*decision.get("carried_over", []), field})}
    if field in str(decision.get("error") or ""):
        out.pop("error")  # the error was the missing file ("which file?"), now chosen
    return out


def _database_called(request: str, name: str) -> str | None:
    """``name`` when ``request`` names that database the way people point at one of several:
    "the sales one", "en la de sales" (Spanish leaves out "base"). "the sales db" is
    :func:`_named_database`'s."""
    word = re.escape(name)
    pattern = rf"\b(?:the|to|in|on)\s+{word}\s+one\b|\b(?:la|el)\s+de\s+{word}\b"
    return name if re.search(pattern, request, re.I) else None


# The default database pointed at as such: "for the default music one", "back to the default db",
# "en la de siempre", "la base por defecto", "la predeterminada".
_THE_DEFAULT_ONE = re.compile(
    r"\bthe\s+default\s+(?:[^\W\d_]+\s+)?(?:one|db|database)\b|\b(?:la|el)\s+de\s+siempre\b|"
    r"\b(?:la\s+)?(?:base(?:\s+de\s+datos)?|bd|bbdd)\s+(?:por\s+defecto|predeterminada)\b|\bla\s+predeterminada\b", re.I)


def _default_database_named(decision: dict[str, Any], request: str) -> dict[str, Any]:
    """Without the conversation's database when the turn names the default one: "vuelve a la base
    sales: ¿cuántos clientes hay en Chile?" after questions to ``inventario`` asks ``sales``,
    whether the other one was carried over or kept by an edit of the last call."""
    database = str((decision.get("args") or {}).get("database") or "")
    if not database or database.lower() in request.lower():
        return decision  # none, or the one the turn writes
    from taller.config import get_settings

    # "la base de datos por defecto" first: read as "base … <name>", it would name one called "por".
    name = ("default" if _THE_DEFAULT_ONE.search(request) else None) or _named_database(request) \
        or _database_called(request, get_settings().default_database)
    if not name or name.lower() not in {get_settings().default_database.lower(), "default"}:
        return decision
    args = {key: value for key, value in decision["args"].items() if key != "database"}
    carried = [field for field in decision.get("carried_over", ()) if field != "database"]
    return {**decision, "args": args, "carried_over": carried}


def _thread_database_named(decision: dict[str, Any], request: str, context: followup.ThreadContext) -> dict[str, Any]:
    """The thread's earlier database that the turn names by its short name ("and in the shop one,
    …" after ``sqlite:///home/ana/shop.db``; "back to the hr database"), when the call would ask
    another one."""
    if not decision.get("tool") or "database" not in get_tool(decision["tool"]).args_schema.model_fields:
        return decision
    current = (decision.get("args") or {}).get("database")
    for call in reversed(context.calls):
        earlier = (call.get("args") or {}).get("database")
        if not isinstance(earlier, str) or not earlier or earlier == current:
            continue
        short = Path(earlier.rstrip("/").rsplit("/", 1)[-1]).stem if "/" in earlier else earlier
        if short and (_database_called(request, short) or (_named_database(request) or "").lower() == short.lower()):
            return {**decision, "args": {**decision["args"], "database": earlier},
                    "carried_over": sorted({*decision.get("carried_over", []), "database"})}
    return decision


def _takes_the_bare_value(request: str, context: followup.ThreadContext) -> str | None:
    """The last call's tool, when this turn is only a new value (:func:`followup.bare_ellipsis`)
    that one of that tool's own arguments takes: a file, a quoted text, a series, a number of
    its units. A value only a free-text argument (a question) could hold needs the rewrite.
    So is a short turn that states a number by that tool's words for it and no other tool's
    ("con un haz de cinco" after a translation; not "5 more images" after a forecast)."""
    from taller.tools import registry

    tool = (context.last_call or {}).get("tool")
    if tool not in registry.TOOLS:
        return None
    if ((followup.changes_a_value(request) or followup.states_a_setting(request)) and followup.numbers_by_units(tool, request)
            and not any(followup.numbers_by_units(other, request) for other in registry.TOOLS if other != tool)):
        return tool
    if (followup.states_a_setting(request) and _the_number_field(tool) and not _free_text_fields(tool)
            and _lone_count(request) and not any(followup.numbers_by_units(other, request) for other in registry.TOOLS)):
        # "otra vez pero que sean 12" after nine samples: one bare number, and the last tool has one
        # number to take it (the count, the epochs, the steps, the beam).
        return tool
    if not followup.bare_ellipsis(request):
        return None
    read = {**(extract_args(tool, request) or {}), **_turn_files(tool, request),
            **followup.numbers_by_units(tool, request)}
    return tool if any(name not in _free_text_fields(tool) for name in read) else None


def _lone_count(request: str) -> bool:
    """Whether ``request`` states one number, a whole one that is not a year, and no file or quote."""
    from taller.agent import grounding

    numbers = grounding.number_mentions(request)
    return (len(numbers) == 1 and float(numbers[0]).is_integer() and not followup.is_year(numbers[0])
            and not (_PATHISH.search(request) or grounding.quoted_spans(request)))


# "no input image", "without a photo", "sin imagen de entrada": the user declines the input image.
_NO_IMAGE = re.compile(r"\b(?:no|without|sin|ninguna)\s+(?:(?:an?|any|una|input|de entrada)\s+)*"
                       r"(?:input\s+)?(?:images?|photos?|pictures?|im[aá]gen(?:es)?|fotos?|dibujos?)\b", re.I)


def _without_unused_image(decision: dict[str, Any], request: str) -> dict[str, Any]:
    """An input image carried from the thread to a model that takes none is dropped ("now the vae,
    12 samples" after reconstructing digit7.png with the autoencoder: the VAE samples from noise),
    and so is one the user declines ("now just 4 from its validation set, no input image")."""
    from taller.trainers import MODELS

    args = decision.get("args") or {}
    if args.get("image_path") and _NO_IMAGE.search(request) and str(args["image_path"]) not in request:
        return {**decision, "args": {name: value for name, value in args.items() if name != "image_path"}}
    spec = MODELS.get(args.get("model")) if isinstance(args.get("model"), str) else None
    if (spec is None or spec.generation is None or spec.generation.from_image is not None
            or not args.get("image_path") or str(args["image_path"]) in request):
        return decision
    return {**decision, "args": {name: value for name, value in args.items() if name != "image_path"}}


def _stated_defaults(decision: dict[str, Any], request: str) -> dict[str, Any]:
    """A default the user stated stays in the call ("now with beam 4" when 4 is the default):
    the call shows the value they asked for, and a later change of default cannot change it."""
    tool = decision["tool"]
    args = dict(decision.get("args") or {})
    fields = get_tool(tool).args_schema.model_fields
    stated = {name: value for name, value in followup.numbers_by_units(tool, request).items()
              if name in fields and name not in args and value == fields[name].default}
    return {**decision, "args": {**args, **stated}} if stated else decision


# A turn that goes back to something of an earlier call ("go back to the dog pic", "volviendo a
# la serie de antes", "vuelve a mirar la primera foto"), and the words for the things calls take.
_RETURN = re.compile(
    r"\b(?:go(?:ing)? back to|back to|return(?:ing)? to|vuelve a|volv\w* a|regres\w* a|de antes|from before|"
    r"earlier|the first|la primera|el primer[oa]?)\b", re.I)
_FIRST = re.compile(r"\b(?:first|primer[oa]?)\b", re.I)
_THING_WORDS = {
    "image_path": re.compile(r"\b(?:fotos?|photos?|pics?|pictures?|images?|im[aá]gen(?:es)?|selfies?)\b", re.I),
    "values": re.compile(r"\b(?:series|serie|secuencias?|sequences?|numbers|n[uú]meros)\b", re.I),
    "video": re.compile(r"\b(?:v[ií]deos?|talks?|charlas?|lectures?|clases?)\b", re.I),
    "text": re.compile(r"\b(?:frases?|sentences?|textos?|texts?)\b", re.I),
}


def _returned_call(request: str, context: followup.ThreadContext, classify: bool = False) -> dict[str, Any] | None:
    """The earlier call a turn goes back to, with the values the turn changes: the newest call
    before the current subject that took the kind of thing the turn names (a photo, a series, a
    video, a text), or with "first", the oldest such call of the thread."""
    returning = _RETURN.search(request)
    if not returning or len(context.calls) < 2:
        return None
    kinds = [name for name, pattern in _THING_WORDS.items() if pattern.search(request)]
    calls = list(context.calls)
    if not kinds:
        named = _calls_on_a_file_named(request, calls[:-1])
        by_tool = _returned_to_tool(request, returning, calls)
        if by_tool is None and named and not (classify and _sure_of_another_tool(request, named[-1].get("tool"))):
            # "go back to the graduation one — is anyone crying?": the file's own name says which.
            # Not when the turn asks another tool of it ("go back to the headshot and run your
            # cat-or-dog classifier on it"): the plan takes the file from the thread then.
            return _call_again(named[-1], request, question=request.strip())
        return by_tool
    last_args = calls[-1].get("args") or {}
    first = bool(_FIRST.search(request))

    def holds(call: dict[str, Any]) -> bool:
        args = call.get("args") or {}
        return any(args.get(kind) not in (None, "", []) for kind in kinds)

    if first:
        matching = [call for call in calls if holds(call)]
    else:  # before the current subject: not the thing the last call was about
        matching = [call for call in calls[:-1] if holds(call)
                    and all((call.get("args") or {}).get(kind) != last_args.get(kind) for kind in kinds)]
    if not matching:
        return None
    target = matching[0] if first else matching[-1]
    tool = target.get("tool")
    if tool not in TOOL_NAMES:
        return None
    # The earlier call's things (photo, series, video, model) with this turn's question, if the
    # tool takes one ("going back to the first video, what does it say about X?"). A question
    # going back to a summary's video is asked of that video ("going back to the lecture, what
    # did it say about warmup?"): by the tool of the same subject that takes a question.
    sibling = _question_tool_sharing(tool)
    if sibling and _QUESTION.search(request) and (not classify or _scores_higher(request, sibling, tool)):
        fields = get_tool(sibling).args_schema.model_fields
        target = {"tool": sibling, "args": {name: value for name, value in (target.get("args") or {}).items()
                                            if name in fields}}
    return _call_again(target, request, question=request.strip())


def _question_tool_sharing(tool: str | None) -> str | None:
    """The tool that takes a question about what ``tool`` works on (a video, a database), when
    ``tool`` itself takes none: ask_video for summarize_video."""
    from taller.tools import registry

    spec = registry.TOOLS.get(tool or "")
    if spec is None or spec.free_text_fields or not spec.sticky_fields:
        return None
    return next((name for name, other in registry.TOOLS.items()
                 if other.free_text_fields and other.sticky_fields & spec.sticky_fields), None)


def _scores_higher(request: str, tool: str, other: str | None) -> bool:
    """Whether the classifier scores ``tool`` above ``other`` for ``request``."""
    scores = dict(semantic_router().scores(request))
    return scores.get(tool, 0.0) > scores.get(other or "", 0.0)


def _sure_of_another_tool(request: str, tool: str | None) -> bool:
    """Whether the classifier is sure the turn alone means a tool other than ``tool``."""
    best, score = semantic_router().scores(request)[0]
    return best not in (NONE, tool) and score >= CONFIDENT_SCORE


def _file_words(value: str) -> set[str]:
    """The words (four letters or more) of a file's or link's name: "graduation" and "day" of
    ``photos/graduation_day.jpg``."""
    from taller.agent import grounding

    return set(re.findall(r"[^\W\d_]{4,}", grounding.normalize(Path(str(value)).stem)))


def _calls_on_a_file_named(request: str, calls: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """The calls whose photo, video or transcript is the one file of the thread that ``request``
    names by a word of its name ("the graduation one", "la foto del abuelo"); none when no file or
    more than one matches."""
    from taller.agent import grounding

    said = set(re.findall(r"[^\W\d_]{4,}", grounding.normalize(request)))
    files = {str(value) for call in calls for name in ("image_path", "video", "url_or_path")
             if isinstance(value := (call.get("args") or {}).get(name), str) and value.strip()
             and "://" not in value}  # a link's name is "watch": no word of the user's
    named = [value for value in files if said & _file_words(value)]
    if len(named) != 1:
        return []
    return [call for call in calls if named[0] in {str(v) for v in (call.get("args") or {}).values()}]


def _call_again(target: dict[str, Any], request: str, question: str | None) -> dict[str, Any] | None:
    """The earlier call ``target`` made again: its values (its question replaced by ``question``,
    or left out) with the ones ``request`` states (choices, numbers, files); None when they do
    not make a valid call."""
    tool = target.get("tool")
    free = _free_text_fields(tool)
    args = {name: value for name, value in (target.get("args") or {}).items()
            if value not in (None, "", []) and name not in free}
    if question is not None:
        args.update({name: question for name in free})
    args.update({**_named_choices(tool, request), **followup.numbers_by_words(tool, request),
                 **followup.numbers_by_units(tool, request), **_turn_files(tool, request)})
    try:
        clean = validate_args(tool, args)
    except ToolError:
        return None
    return {"tool": tool, "args": _compact(tool, clean), "source": "follow-up", "returned_to": True}


# A turn that adds values to the series of the last forecast: a verb of adding, and where they go
# ("añade 35 y 36 al final de la serie", "append 201 and 205 to the end").
_ADD_VALUES = re.compile(r"\b(?:add|adding|append\w*|extend\w*|tack\w*|a[ñn]ad\w*|a[ñn]ád\w*|agreg\w*|sum[aá]\w*|"
                         r"incluy\w*|incorpor\w*|mete|met[eé]le|pon(?:le|les)?)\b", re.I)
_TO_THE_SERIES = re.compile(
    r"\b(?:(?:at|to|on)\s+the\s+end|to\s+(?:the|that|this|my)\s+(?:series|sequence|list|data|numbers)|"
    r"al\s+final|a\s+la\s+(?:serie|secuencia|lista)|a\s+(?:los|esos|estos)\s+(?:datos|n[uú]meros|valores))\b", re.I)
# A verb that asks for the forecast: the number right after it is the step count ("y vuelve a
# predecir siete", "forecast 5 more").
_FORECAST_VERB = re.compile(r"\b(?:forecast\w*|predict\w*|pronostic\w*|pronóstic\w*|predec\w*|predic\w*)\b", re.I)


def _extended_series(request: str, context: followup.ThreadContext) -> dict[str, Any] | None:
    """The last forecast again on its series with the values this turn adds at its end.

    "añade 35 y 36 al final de la serie y vuelve a pronosticar siete pasos": read as an edit,
    the new numbers look like a new step count or a new series; they are neither, they lengthen
    the one the thread is about.
    """
    last = context.last_call or {}
    values = (last.get("args") or {}).get("values")
    if last.get("tool") != "forecast" or not isinstance(values, list):
        return None
    if not (_ADD_VALUES.search(request) and _TO_THE_SERIES.search(request)):
        return None
    steps = followup.numbers_by_units("forecast", request).get("steps")
    words = request.split()
    for index, word in enumerate(words):
        if steps is None and _FORECAST_VERB.fullmatch(word.strip(".,;:!?¿¡")):
            steps = followup.number_near(words[index + 1:index + 5], backwards=False)
    # The added values are the numbers written as digits before the forecast is asked for again.
    asked = _FORECAST_VERB.search(request)
    head = request[:asked.start()] if asked else request
    added = [float(number) for number in _NUMBER.findall(head)]
    if not added:
        return None
    args: dict[str, Any] = {"values": [*values, *added]}
    if steps or (last.get("args") or {}).get("steps"):
        args["steps"] = steps or last["args"]["steps"]
    try:
        clean = validate_args("forecast", args)
    except ToolError:
        return None
    return {"tool": "forecast", "args": _compact("forecast", clean), "source": "follow-up", "edited": ["values"]}


def _returned_to_tool(request: str, returning: re.Match[str], calls: list[dict[str, Any]]) -> dict[str, Any] | None:
    """"back to the translation: redo the last one with beam 2": the turn names the earlier work by
    what it did, not by its thing. The words after "back to" are read by the intent classifier,
    among the tools the thread called before its current one, and the newest call of the tool it
    places them on is made again with what the turn changes."""
    parts = re.split(r"[:;,.!?]| and | y ", request[returning.end():], maxsplit=1)
    named, rest = parts[0].strip(), (parts[1] if len(parts) > 1 else "").strip(" ?¿!¡.")
    earlier = {call.get("tool") for call in calls[:-1]} - {calls[-1].get("tool"), None}
    if not named or len(named.split()) > 5 or not earlier:
        return None
    if rest and not (followup.refers_back(rest) or followup.changes_a_value(rest)):
        # "vuelve a la base sales: ¿cuántos clientes hay en Chile?": a request of its own follows.
        return None
    scores = [(name, p) for name, p in semantic_router().scores(named) if name in earlier]
    if not scores or scores[0][1] < RETURN_SCORE:
        return None
    tool = scores[0][0]
    target = next(call for call in reversed(calls[:-1]) if call.get("tool") == tool)
    # No question of its own: a tool that needs one is not made again this way.
    return _call_again(target, request, question=None)


# How sure the classifier must be that the words after "back to" name an earlier tool's work
# ("the translation", "la predicción"), among the tools the thread called: not a guess.
RETURN_SCORE = 0.3


# A question that asks why ("why does…", "¿por qué…", "and why is…").
_WHY = re.compile(r"^\W*(?:(?:ok|okay|and|so|but|hmm+|y|pero|vale|entonces|oye|in general|en general|"
                  r"generally|anyway|de todas formas)\W+)*(?:why|por\s*qu[eé])\b", re.I)
# Where a clause ends inside a sentence: "never mind the lecture — in general, why …?"
_CLAUSE_END = re.compile(r"\s+[—–]\s+|\s*;\s*")


# A question that asks what a concept is ("¿qué es exactamente el cuello de botella de un
# autoencoder?", "lol ok, whats a foreign key again", "how does beam search work?").
_WHAT_IS = re.compile(
    r"^\W*(?:(?:ok|okay|so|and|lol|hmm+|y|pero|vale|oye|bueno|entonces)\W+)*"
    r"(?:what(?:'s|s|\s+is|\s+are)\s+(?:a|an|the|exactly|actually)?\b|what\s+does\s+.{1,40}\s+mean\b|"
    r"qu[eé]\s+(?:es|son|significa)\b|en\s+qu[eé]\s+consiste|explain\b|expl[ií]ca(?:me)?\b|define\b|"
    r"how\s+does\s+.{1,40}\s+work\b|c[oó]mo\s+funciona)", re.I)
# What makes such a question one about data or about the user's own things, which a tool answers:
# someone's (her age, their emails), a superlative or total (the longest track), the models or the
# training's status, the tables of a database.
_DATA_OR_OWNED = re.compile(
    r"\b(?:her|his|their|its|my|your|our|those|these|them|they|su|sus|mi|mis|tu|tus|nuestr\w*|"
    r"longest|shortest|biggest|largest|most|least|best|worst|top|total|average|next|"
    r"m[aá]s|menos|mejor|peor|promedio|siguientes?|pr[oó]xim\w*|"
    r"status|progress|estado|progreso|models?|modelos?|databases?|tables?|tablas?|base de datos|"
    r"lessons?|lecci[oó]n|lecciones|experiments?|experimentos?)\b", re.I)


def _asks_what_it_is(request: str) -> bool:
    """A question about what a concept is that names nothing of the user's (no file, number, quote,
    video, data words): answered in words, whatever tool the classifier or the rewrite leaned to."""
    sentences = [part for part in _SENTENCE_END.split(request.strip()) if part.strip()]
    # The question may come last, after what prompted it ("¿y eso cómo lo calcula? ¿qué es una GRU?").
    return bool(_WHAT_IS.search(request) or (sentences and _WHAT_IS.search(sentences[-1]))) and not (
        _DATA_OR_OWNED.search(request) or _SALES_SUBJECT.search(request) or _RECORDING.search(request)
        or _names_something_to_run_on(request))


_SENTENCE_END = re.compile(r"(?<=[.!?;])\s+")


def _names_something_to_run_on(request: str) -> bool:
    """Whether ``request`` names something a tool would run on (a number, quoted text, a file or
    link, a video): then a question about a concept or a model is a request after all."""
    from taller.agent import grounding

    return bool(grounding.number_mentions(request) or grounding.quoted_spans(request) or _PATHISH.search(request)
                or followup.VIDEO_ID.search(request) or _URL.search(request))

# A question about what a model or tool does or can do, or its defaults, rather than a request to
# run it: "how many epochs does it use by default?", "does the tool also guess gender?", "¿y el VAE
# también puede partir de una imagen mía?", "¿el modelo entiende los signos de apertura?". The
# subject is the model ("it", "the VAE", "el modelo"), never "you"; the verb is one of ability or
# habit, not of saying ("does it mention dropout?" asks a video).
_ABILITY_VERBS = (r"use|uses|handle|handles|understand|understands|know|knows|support|supports|accept|accepts|"
                  r"take|takes|work|works|detect|detects|recognize|recognise|recognizes|guess|guesses|start|starts|"
                  r"learn|learns|need|needs|deal|cope|manage")
_ABILITY_VERBOS = (r"puede|pueden|entiende|entienden|sabe|saben|usa|usan|utiliza|maneja|soporta|acepta|detecta|"
                   r"reconoce|adivina|funciona|necesita|aprende|distingue|partir")
_BY_DEFAULT = re.compile(r"\b(?:by default|por defecto|de forma predeterminada|predeterminad[oa])\b", re.I)
_UNDER_THE_HOOD = re.compile(r"\b(?:under the hood|internally|behind the scenes|por dentro|internamente)\b", re.I)
# The generic words for a model or tool; the models' own names come from the registry.
_MODEL_NOUNS = ("model", "tool", "network", "net", "classifier", "translator", "one")
_MODELO_NOUNS = ("modelo", "red", "herramienta", "clasificador", "traductor")


@lru_cache(maxsize=1)
def _what_it_can_do() -> re.Pattern[str]:
    """The pattern of a question about a model's abilities, with every model's words (registry)."""
    from taller.tools import registry

    names = sorted({re.escape(word.rstrip("*")) for words in registry.model_words().values() for word in words
                    if word.strip("* ")}, key=len, reverse=True)
    english = "|".join([*_MODEL_NOUNS, *names])
    spanish = "|".join([*_MODELO_NOUNS, *names])
    return re.compile(
        rf"^\W*(?:(?:and|so|but|ok|okay|wait|y|pero|vale|oye)\W+)*(?:can|could|does|do|will|would)\s+"
        rf"(?:it|that|this|the\s+(?:[^\W\d_]+\s+){{0,2}}?(?:{english})(?:\s+(?:{'|'.join(_MODEL_NOUNS)}))?)\s+"
        rf"(?:also\s+|even\s+|ever\s+)?"
        rf"(?:{_ABILITY_VERBS})\b|"
        rf"(?:^|[¿\s])(?:el|la|este|ese|esta|esa)\s+(?:{spanish})\s+(?:tambi[eé]n\s+|ya\s+)?(?:{_ABILITY_VERBOS})\b",
        re.I)


def _asks_what_it_can_do(request: str) -> bool:
    """A question about a model's or tool's abilities or defaults that names nothing to run it on
    (no file, number, quoted text or video): answered in words."""
    # "by default" of a thing of the user's ("¿qué hay en la base de datos por defecto?") names
    # the thing to look at, not a default to explain.
    by_default = bool(_BY_DEFAULT.search(request)) and not _DATA_OR_OWNED.search(request)
    return bool(_QUESTION.search(request) and (by_default or _UNDER_THE_HOOD.search(request)
                                                or _what_it_can_do().search(request))) \
        and not _names_something_to_run_on(request)


def _asks_why(request: str) -> bool:
    """A why-question that names nothing a tool could run on. The question may come last, after
    what prompted it ("that one's wrong, it's obviously a cat. why does it get confused?")."""
    sentences = [part for part in _SENTENCE_END.split(request.strip()) if part.strip()]
    asked = sentences[-1] if sentences else request
    clauses = [part for part in _CLAUSE_END.split(asked) if part.strip()]
    return bool(_WHY.search(request) or _WHY.search(asked) or (clauses and _WHY.search(clauses[-1]))) \
        and not _names_something_to_run_on(request)


def _model_from_thread(decision: dict[str, Any], request: str, context: followup.ThreadContext) -> dict[str, Any]:
    """The model a turn points back to ("reconstruct my_digit.png with it", "entrena ese modelo")
    when the turn names none: the latest earlier request that names a model the tool takes. The
    latest mention wins over the model a rewrite or the last call brought: "vale, entrénalo" right
    after "¿cuánto tardaría en entrenarse el pix2pix?" trains pix2pix, not the model generated with
    before that question."""
    from taller.tools import registry

    tool = decision["tool"]
    args = dict(decision.get("args") or {})
    if "model" not in _required(tool) or not followup.refers_back(request):
        return decision
    allowed = list((registry.TOOLS[tool].synonyms.get("model") or {}).keys()) if tool in registry.TOOLS else []
    if _model_name(request, allowed):
        return decision  # the turn names its model
    args = {**_turn_files(tool, request), **args}  # a plan that failed validation kept no file
    for turn in reversed(context.turns):
        name = _model_name(turn, allowed)
        if name == args.get("model"):
            return decision
        if name:
            try:
                clean = validate_args(tool, {**args, "model": name})
            except ToolError:
                return decision
            out = {**decision, "args": _compact(tool, clean),
                   "carried_over": sorted({*decision.get("carried_over", []), "model"})}
            out.pop("error", None)
            return out
    return decision


def _numbers_from_the_turn(tool: str, request: str, args: dict[str, Any],
                           context: followup.ThreadContext) -> dict[str, Any]:
    """Single numbers a follow-up's call may use: the ones the turn states, or the same
    argument's value in the last call of the same tool. A rewrite that joins the turn to an
    earlier request ("train the autoencoder for 3 epochs and show me its reconstruction of
    digit7.png") must not turn that request's 3 epochs into 3 images."""
    from taller.agent import grounding

    last = context.last_call or {}
    same_tool = (last.get("args") or {}) if last.get("tool") == tool else {}
    kept = {}
    for name, value in args.items():
        number = isinstance(value, (int, float)) and not isinstance(value, bool)
        if (number and not grounding.grounded_number(value, [request]) and same_tool.get(name) != value
                and name not in followup.numbers_by_words(tool, request)):
            continue
        kept[name] = value
    return kept


# How sure the classifier must be of a turn alone, without the thread's pull, for a rewrite that
# went to another tool to be overruled (:func:`plan`).
ALONE_SURE = 0.9


def _supplies_what_it_needs(tool: str, request: str) -> bool:
    """Whether ``request`` itself gives every required argument of ``tool`` that is not free text
    (a file, a link, a series), and at least one: a question alone always "has" its question. A
    tool that requires nothing (the database's tables, the models) needs nothing of the turn."""
    required = _required(tool)
    if not required:
        return True  # "describe that one too": a tool that needs nothing has it all
    needed = [name for name in required if name not in _free_text_fields(tool)]
    read = {**(extract_args(tool, request) or {}), **_turn_files(tool, request)}
    return bool(needed) and all(read.get(name) not in (None, "", []) for name in needed)


def _tool_counting(request: str) -> str | None:
    """The one tool whose units count a number of ``request`` ("9 samples": generate_images), if
    only one does."""
    from taller.tools import registry

    tools = [tool for tool in registry.TOOLS if followup.numbers_by_units(tool, request)]
    return tools[0] if len(tools) == 1 else None


def _with_standalone(tool: str, request: str, standalone: str, model_factory: Any,
                     context: followup.ThreadContext) -> dict[str, Any]:
    """A plan for ``tool``: arguments read off the turn, then off its standalone form (the
    question, a video or a database the thread supplied); what is still missing is left to
    the carry-over from the last call."""
    args = {**(extract_args(tool, standalone) or {}), **(extract_args(tool, request) or {})}
    for name in _free_text_fields(tool):  # a question is asked in its standalone form
        args[name] = standalone.strip()
    if _unexplained(tool, standalone, args):
        args = _grounded_fill(model_factory(), tool, standalone, args, [standalone, *context.sources()])
    args = _numbers_from_the_turn(tool, request, args, context)
    try:
        clean = validate_args(tool, args)
    except ToolError as exc:
        return {"tool": tool, "args": args, "source": "semantic+rewrite", "error": str(exc)}
    return {"tool": tool, "args": _compact(tool, clean), "source": "semantic+rewrite"}


# Which file each path argument takes, by its name.
_FILE_ARGUMENTS = {"image_path": (_IMAGE_PATH,), "url_or_path": (_URL, _TRANSCRIPT_PATH),
                   "video": (_URL, _TRANSCRIPT_PATH), "values": (_CSV_PATH,), "database": (_DATABASE_URL,)}


def _turn_files(tool: str, request: str) -> dict[str, str]:
    """The one file or link of the right kind that ``request`` names, per path argument of ``tool``."""
    found: dict[str, str] = {}
    for name in get_tool(tool).args_schema.model_fields:
        for pattern in _FILE_ARGUMENTS.get(name, ()):
            matches = [m.group(1) if pattern is not _URL else m.group(0) for m in pattern.finditer(request)]
            if len(matches) == 1:
                found[name] = matches[0]
                break
    return found


def _free_text_fields(tool: str | None) -> frozenset[str]:
    from taller.tools import registry

    return registry.TOOLS[tool].free_text_fields if tool in registry.TOOLS else frozenset()


def _named_choices(tool: str, request: str) -> dict[str, str]:
    """The choices ``request`` names by the registry's words, one per field when only one value
    is named ("¿y la del traductor?" → ``model="seq2seq"``, "the overfitting one" →
    ``"dense_classifier"``): in a follow-up they replace the last call's value."""
    from taller.agent import grounding
    from taller.tools import registry

    spec = registry.TOOLS.get(tool)
    found: dict[str, str] = {}
    for field, values in (spec.synonyms if spec else {}).items():
        named = [value for value, words in values.items()
                 if not value.isdigit() and grounding.grounded_enum(value, words, [spelled(request)])]
        if len(named) == 1:
            found[field] = named[0]
    return found


def _turn_choices_win(decision: dict[str, Any], request: str) -> dict[str, Any]:
    """A choice the turn names replaces one it does not name: a value read from the thread or
    guessed by the model ("back to the lessons: the overfitting one" after the bidirectional
    lesson means the dense classifier's lesson)."""
    from taller.agent import grounding
    from taller.tools import registry

    tool = decision["tool"]
    spec = registry.TOOLS.get(tool)
    args = dict(decision.get("args") or {})
    changed = False
    for field, value in _named_choices(tool, request).items():
        current = args.get(field)
        words = (spec.synonyms.get(field) or {}).get(current, ()) if spec and isinstance(current, str) else ()
        if current != value and not (isinstance(current, str) and grounding.grounded_enum(current, words, [request])):
            args[field], changed = value, True
    if not changed:
        return decision
    try:
        clean = validate_args(tool, args)
    except ToolError:
        return decision
    out = {key: item for key, item in decision.items() if key != "error"}
    return {**out, "args": _compact(tool, clean)}


def _the_number_field(tool: str) -> str | None:
    """The tool's one single-number argument (epochs, count, steps, beam size), if it has one."""
    numbers = [name for name, rule in _field_rules(tool).items() if rule.kind == "number"]
    return numbers[0] if len(numbers) == 1 else None


def _edited_call(model_factory: Any, request: str, decision: dict[str, Any],
                 context: followup.ThreadContext) -> dict[str, Any]:
    """The last call again, with what this turn changes: the turn's own values win, and every
    other value is the last call's.

    Rewriting a follow-up into a sentence and reading the arguments back loses values a small
    model garbles: "mejor 6" after a 2-step forecast became "forecast 2 steps for the next 6
    values"; "ahora con un haz de 6" came back with the sentence translated into Spanish; "que
    sean 4 épocas" after a correction went back to the model the correction replaced. So the
    call is rebuilt from the last one: a value the plan read is kept only when the turn itself
    states it (a number, a quoted text, a file, a model's name); what the rules read off the
    turn is added; when the turn states a value the call does not use yet, the LLM is shown the
    previous call and the turn and fills the tool's whole schema, and a value grounded in the
    turn replaces the plan's. Free-text arguments (a question) keep the standalone form.
    """
    from taller.agent import grounding
    from taller.llm import invoke_json
    from taller.tools import registry

    tool = decision["tool"]
    free = registry.TOOLS[tool].free_text_fields if tool in registry.TOOLS else frozenset()
    previous = {name: value for name, value in (context.last_call.get("args") or {}).items()
                if value not in (None, "", []) and name not in free}
    if tool == "generate_images" and "image_path" not in previous and _turn_files(tool, request).get("image_path"):
        # Nine samples of the VAE, then "now reconstruct digit7.png with the autoencoder": the
        # count was how many to sample; working on a given image is another use of the tool.
        previous.pop("count", None)
    planned = decision.get("args") or {}
    in_turn = grounding.ground_arguments({name: value for name, value in planned.items() if name not in free},
                                         _field_rules(tool), [request]).kept
    # Values the turn names in words ("now greedy"), its quoted text or series (read by rules),
    # and the file it names ("and bruno.png?") need no model: the turn's own values win over
    # the ones a rewrite carried along.
    read = {name: value for name, value in (extract_args(tool, request) or {}).items() if name not in free}
    args = {**previous, **in_turn, **read, **_named_choices(tool, request), **followup.numbers_by_words(tool, request),
            **followup.numbers_by_units(tool, request), **_turn_files(tool, request)}
    args.update({name: planned[name] for name in free if planned.get(name)})
    try:
        clean = validate_args(tool, args)
    except ToolError:
        return decision  # the last call's values do not fit what the turn changed: keep the plan
    decision = {key: value for key, value in decision.items() if key != "error"}
    decision = {**decision, "args": _compact(tool, clean)}
    fixed = {name: value for name, value in args.items() if name not in free}
    if not _states_more(request, fixed):
        return decision
    replaced = _number_replaced(request, fixed)
    if replaced:
        try:
            clean = validate_args(tool, {**args, **replaced})
        except ToolError:
            clean = None
        if clean is not None:
            return {**decision, "args": _compact(tool, clean), "edited": sorted(replaced)}
    number_field = _the_number_field(tool)
    if number_field:
        # One new number for a tool with one number field ("mejor 12", "make it 20", "sorry, I
        # meant 6, not 8"): that field, no model needed (the edit prompt got it wrong).
        used = " ".join(" ".join(map(str, v)) if isinstance(v, list) else str(v) for v in fixed.values())
        unused = _new_numbers(request, used)
        if len(unused) == 1 and float(unused[0]).is_integer() and unused[0] > 0 \
                and not grounding.quoted_spans(request) and not _PATHISH.search(request):
            try:
                clean = validate_args(tool, {**args, number_field: int(unused[0])})
            except ToolError:
                clean = None
            if clean is not None:
                return {**decision, "args": _compact(tool, clean), "edited": [number_field]}
    user = f"Previous call: {tool}({json.dumps(previous, ensure_ascii=False)})\nUser: {request}\nNew call arguments:"
    ask: list[BaseMessage] = [
        SystemMessage(content=prompts.ROUTER_EDIT_SYSTEM.format(tool=tool, description=prompts.TOOL_CATALOG[tool])),
        HumanMessage(content=user),
    ]
    try:
        # The new call's values come from the previous call and the user's words: both are in ``user``.
        filled = invoke_json(model_factory(), ask, _args_schema(tool, optional_too=True), max_tokens=reply_budget(user))
    except Exception as exc:  # a reply that is not JSON: keep the plan as it was
        log.warning("editing the previous %s call failed: %s", tool, exc)
        return decision
    proposed = {name: value for name, value in filled.items() if name not in free and value not in (None, "", [])}
    stated = grounding.ground_arguments(proposed, _field_rules(tool), [request]).kept
    if not stated:
        return decision
    edited = {**args, **stated}
    try:
        clean = validate_args(tool, edited)
    except ToolError:
        return decision
    return {**decision, "args": _compact(tool, clean), "edited": sorted(stated)}


def _number_replaced(request: str, args: dict[str, Any]) -> dict[str, Any]:
    """The one value a correction swaps ("the last number should be 25, not 24"; "6, not 8"): the
    argument that holds the number taken back (once), with the one new number in its place."""
    from taller.text import negated_numbers

    taken_back = negated_numbers(request)
    used = " ".join(" ".join(map(str, v)) if isinstance(v, list) else str(v) for v in args.values())
    new = _new_numbers(request, used)
    if len(taken_back) != 1 or len(new) != 1:
        return {}
    old_value, new_value = taken_back[0], new[0]
    holders = {}
    for name, value in args.items():
        if isinstance(value, list) and [float(x) for x in value if isinstance(x, (int, float))].count(old_value) == 1:
            holders[name] = [new_value if isinstance(x, (int, float)) and float(x) == old_value else x for x in value]
        elif isinstance(value, (int, float)) and not isinstance(value, bool) and float(value) == old_value:
            holders[name] = int(new_value) if float(new_value).is_integer() else new_value
    return holders if len(holders) == 1 else {}


def _asked_of_the_recording(request: str, context: followup.ThreadContext) -> dict[str, Any] | None:
    """``request`` as the question of the recording tool that takes one; the video is the thread's."""
    from taller.tools import registry

    tool = next((name for name in sorted(_RECORDING_TOOLS) if registry.TOOLS[name].free_text_fields), None)
    if tool is None:
        return None
    args = {name: request.strip() for name in registry.TOOLS[tool].free_text_fields}
    try:
        clean = validate_args(tool, args)
    except ToolError:
        return None
    return {"tool": tool, "args": _compact(tool, clean), "source": "follow-up"}


def _same_tool_again(request: str, standalone: str, context: followup.ThreadContext) -> dict[str, Any] | None:
    """The last call's tool for a continuation turn, its arguments from the turn and the thread.

    Free-text arguments (a question) get the standalone form, or, when the rewrite changed
    nothing, the previous request with this turn after it, so both parts reach the tool.
    """
    from taller.tools import registry

    last = context.last_call or {}
    tool = last.get("tool")
    if tool not in registry.TOOLS:
        return None
    text = standalone if standalone.strip() != request.strip() else f"{context.last_request or ''} {request}".strip()
    if not registry.TOOLS[tool].free_text_fields and _QUESTION.search(request):
        # A question after a summary or a description ("¿y qué ejemplo usa para explicar el
        # gradiente?") is asked of the same video or database, by the tool that takes a question,
        # and in its own words: the request before it asked for no answer.
        tool = _question_tool_sharing(tool) or tool
        text = standalone
    args = {**_named_choices(tool, request), **followup.numbers_by_units(tool, request),
            **(extract_args(tool, request) or {})}
    for name in registry.TOOLS[tool].free_text_fields:
        args[name] = text
    args = {**followup.inherited(tool, context, _required(tool), args), **args}
    try:
        clean = validate_args(tool, args)
    except ToolError:
        return None
    return {"tool": tool, "args": _compact(tool, clean), "source": "follow-up"}


# How much likelier a follow-up turn must be to mean another tool than the last one: "and
# bruno.png?" after classify_pet says nothing of the tool (a photo fits three), "add this one too:
# <URL>" after ask_video says add_video plainly.
FOLLOWUP_PRIOR = 10.0
# The same for any other turn of a conversation: a mild pull, for turns the classifier is unsure of.
THREAD_PRIOR = 3.0
# A bare new value ("and lecture_08.srt?") names no tool; what the classifier reads in it is the
# value's kind (a transcript: adding, asking), so the last tool almost always keeps it.
BARE_PRIOR = 100.0


def _followup_prior(request: str, last_tool: str | None) -> tuple[str, float] | tuple[str, float, bool] | None:
    """How a follow-up leans to the last call's tool: towards it and the tools that share its
    subject; a bare new value ("and lecture_08.srt?", "y esta: fotos/pelusa.jpeg") towards that
    tool alone, since it names nothing else (a transcript fits adding or asking; a photo, three tools)."""
    if not last_tool:
        return None
    if followup.bare_ellipsis(request) or followup.corrects(request):
        # A correction ("no wait, I meant the autoencoder") names a value, not a new tool: the
        # words of the value ("autoencoder": reconstructions) must not carry it to another tool.
        return (last_tool, BARE_PRIOR, False)
    return (last_tool, FOLLOWUP_PRIOR)


def _scores(request: str, favour: tuple | None = None,
            ruled_out: frozenset[str] = frozenset()) -> list[tuple[str, float]]:
    """The classifier's probabilities, reweighted towards ``favour`` ((the last call's tool, how
    strongly[, whether the tools sharing its subject too])) in a conversation, without the tools
    ``ruled_out`` (:func:`_ruled_out`), normalised again."""
    ranked = semantic_router().scores(request)
    if ruled_out:
        kept = [(name, p) for name, p in ranked if name not in ruled_out]
        total = sum(p for _, p in kept) or 1.0
        ranked = [(name, p / total) for name, p in kept]
    if not favour:
        return ranked
    tool, strength = favour[0], favour[1]
    favoured = _related_tools(tool) if len(favour) < 3 or favour[2] else {tool}
    weighted = [(name, p * (strength if name in favoured else 1.0)) for name, p in ranked]
    total = sum(p for _, p in weighted) or 1.0
    return sorted(((name, p / total) for name, p in weighted), key=lambda item: item[1], reverse=True)


def _related_tools(tool: str) -> set[str]:
    """``tool`` and the tools that share the conversation's subject with it (a sticky field: the
    video tools, the database tools), so "what does it say about X?" after a summary leans to
    asking the video."""
    from taller.tools import registry

    spec = registry.TOOLS.get(tool)
    if spec is None:
        return {tool}
    # The video just added is the next call's video (as in :func:`followup.sticky`): adding one
    # shares the video tools' subject, so "what does it say about X?" right after leans to asking it.
    subject = spec.sticky_fields | ({"video"} if tool == "add_video" else set())
    return {tool} | {name for name, other in registry.TOOLS.items() if other.sticky_fields & subject}


def semantic_plan(request: str, favour: tuple | None = None,
                  ruled_out: frozenset[str] = frozenset()) -> dict[str, Any] | None:
    """The pre-router's plan when it is confident of the tool and the rules read every argument."""
    ranked = _scores(request, favour, ruled_out)
    best, score = ranked[0]
    if score < CONFIDENT_SCORE:
        return None
    args = extract_args(best, request)
    if args is None:
        return None
    if best != NONE and _unexplained(best, request, args):
        return None  # the request says more than the rules read: let the LLM fill, then ground
    if best == NONE and _tools_for_files(request):
        return None  # a photo, a transcript, a CSV or a video link to work on: not chat
    if best == NONE:
        return {"tool": None, "args": {}, "source": "semantic", "confidence": round(score, 3)}
    try:
        clean = validate_args(best, args)
    except ToolError:
        return None
    return {"tool": best, "args": _compact(best, clean), "source": "semantic", "confidence": round(score, 3)}


def _plan_standalone(request: str, model_factory: Any, history: Sequence[BaseMessage], use_semantic: bool,
                     results_note: str | None, context: followup.ThreadContext | None = None,
                     favour: tuple | None = None) -> dict[str, Any]:
    ruled_out = _ruled_out([request], context) if results_note is None else frozenset()
    candidates: list[str] = [name for name in TOOL_NAMES if name not in ruled_out]
    ranked: list[tuple[str, float]] = []
    if use_semantic and results_note is None:
        quick = semantic_plan(request, favour, ruled_out)
        if quick is not None:
            return quick
        ranked = _scores(request, favour, ruled_out)
        best, score = ranked[0]
        if score >= CONFIDENT_SCORE:
            # Confident about the tool but not its arguments: the LLM only fills them.
            candidates = [best] if best != NONE else candidates
        else:
            by_keywords = keyword_plan(request)
            if by_keywords is not None:
                if _unexplained(by_keywords["tool"], request, by_keywords["args"]):
                    sources = [request, *(context.sources() if context is not None else [])]
                    args = _grounded_fill(model_factory(), by_keywords["tool"], request, by_keywords["args"], sources)
                    by_keywords = {**by_keywords, "args": args}
                return by_keywords
            candidates = [name for name, _ in ranked[:CANDIDATES]]
    # A file in the request says which tools can be meant: a photo, a transcript, a CSV.
    by_file = _tools_for_files(request)
    if by_file:
        # Every tool that takes the file, in the classifier's order: its top few may leave out
        # the one meant ("…te paso el enlace para que la añadas: <link>" ranks asking first).
        # A confident single choice that takes the file stays.
        narrowed = [name for name in candidates if name in by_file]
        if len(candidates) > 1 or not narrowed:
            narrowed = [name for name, _ in ranked if name in by_file] if ranked else narrowed
        candidates = narrowed or list(by_file)
    decision = llm_plan(model_factory(), request, candidates, history, results_note, context,
                        allow_none=not by_file and len(candidates) > 1)
    thread_has_file = any(name in ((context.last_call or {}).get("args") or {}) for name in _PATH_ARGUMENTS) \
        if context is not None else False
    needs_a_file = decision.get("tool") and any(name in _PATH_ARGUMENTS for name in _required(decision["tool"]))
    if (decision.get("tool") and decision.get("error") and (needs_a_file or decision.get("invented"))
            and not _PATHISH.search(request) and _QUESTION.search(request) and not _MINE.search(request)
            and not thread_has_file):  # in a thread, "how old does she look?" means the last photo
        # A question that names no file, about a tool that needs one ("how does the classifier
        # tell cats from dogs?"), or that states nothing the tool needs, so the model had to invent
        # it ("can the translator go from Spanish to English too?"), is a question about the
        # tool: answer it, run nothing.
        return {"tool": None, "args": {}, "source": "llm", "question_about": decision["tool"]}
    if ranked and decision.get("tool"):
        scores = dict(ranked)
        tool = decision["tool"]
        # Semantic veto: small models rarely answer "none" to a general question. When the request
        # reads more like chit-chat than like the chosen tool, and the rules found nothing for that
        # tool in it (no file, no model name, no quoted text), answer without a tool.
        # A turn that points back to the conversation's subject with a tool of that subject
        # ("nice, can you summarize it?" after a question about the video) is not chit-chat.
        on_subject = (context is not None and bool(context.last_call) and followup.refers_back(request)
                      and tool in _related_tools(context.last_call.get("tool")))
        if scores.get(NONE, -1.0) > scores.get(tool, -1.0) and not extract_args(tool, request) and not on_subject:
            return {"tool": None, "args": {}, "source": "llm+semantic", "vetoed": tool}
    return decision
