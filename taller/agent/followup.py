"""Follow-ups: a turn that only makes sense with the thread becomes a standalone request.

People ask conversationally: "How many invoices were billed to Canada?" → "and to France?";
"what emotion does the face in me.jpg show?" → "and her age?". Routing such a turn alone sends
the bare fragment to a tool (or to none). So before routing, a turn that reads like a follow-up
is rewritten — by the LLM, under a JSON schema — into one request that stands alone ("How many
invoices were billed to France?"), using the recent turns and the last tool call with its
arguments. The standalone form is what the router and the tool get, what the ``tool_start``
event shows and what the thread stores.

A turn that is only a cue and a new value ("and to France?", "¿y de jazz?", "now the top 10")
is resolved without the model (:func:`substituted`): the value replaces the part of the previous
request of its kind. Asked to rewrite it, a small model asks about both ("… billed to Canada and
to France?"), which is another question.

Two guards keep the rewrite honest: it runs only when the turn reads like a follow-up (it
starts like a continuation — "and…", "¿y…", "now…", "what about…" — or a word points back —
"her", "the same", "instead"), and :func:`carry_over` fills an argument the standalone request still lacks
from the last call only when the user referred back and the tool is the same.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any, Sequence

# Arguments that a follow-up may inherit from the previous call of the same tool.
CARRY_OVER = ("image_path", "values", "model", "database", "video", "text", "url_or_path")

# A turn that starts like this continues the previous one ("and to France?", "¿y de jazz?").
# An acknowledgement that may open a follow-up ("ok, and in 2004?", "genial, y ahora el VAE").
_OPENING = r"^\s*(?:(?:ok(?:ay)?|vale|bueno|great|cool|nice|perfect|perfecto|genial|thanks|gracias|hmm+)\s*[,!.]?\s+)*"
_CONTINUATION = re.compile(
    _OPENING + r"[¿¡]?\s*(and|y|e|also|too|plus|what about|how about|same|the same|again|now|then|instead|"
    r"but|y qu[eé]|y si|tambi[eé]n|lo mismo|igual|otra vez|de nuevo|ahora|entonces|pero|"
    r"en vez|en lugar|mejor|only|just|solo|s[oó]lo|solamente|except|excepto|"
    r"one more|another|una m[aá]s|uno m[aá]s|otra m[aá]s|otro m[aá]s)\b", re.I)
# Words that point back to something in the thread. ("él" is the pronoun; the article "el"
# points at nothing; "le"/"les" are the Spanish "her"/"him"/"them" as indirect objects.)
_REFERENCE = re.compile(
    r"\b(it|its|it's|her|his|him|she|he|them|they|their|those|these|that(?!'s|\s+(?:is|was|helps|works|sounds|looks|seems|makes|would|will)\b)|this one|the same|"
    r"same one|instead|again|ella|él|ellos|ellas|le|les|su|sus|ese|esos?|esas?|eso|esto|este|esta|mismo|misma|"
    r"en vez|en lugar|otra vez|de nuevo|hazlo|anterior|previous|last one|el [uú]ltimo|la [uú]ltima|"
    # "one" standing for a thing just named: "which one has the most tracks?", "the smallest one"
    r"which ones?|the (?:[^\W\d_]+ )?ones?(?!-| (?:of|by|more|day|time|thing)\b))\b", re.I)
# A turn that corrects the previous one ("no wait, I meant the GRU", "perdón, quería decir de
# Argentina", "sorry, the bidirectional one"): it points back to the last call, whose tool and
# other values it keeps. A bare "no" counts only with a comma or a stop after it ("no, …"), so
# "no sé qué es una GRU" is not a correction.
_CORRECTION = re.compile(
    r"^\s*(?:(?:hmm+|uh+|oh|ah|oops|ups|uy|ay)\W+)*(?:no\s*[,.!]|no wait\b|wait\b|sorry\b|actually\b|"
    r"perd[oó]n\w*|disculp\w*|espera\b|en realidad\b)"
    r"|\bI meant\b|\bI mean\b|\bquise decir\b|\bquer[ií]a decir\b|\bme refer[ií]a\b", re.I)
# A turn that keeps the last call's quantity while changing something else ("the same number of
# images with pix2pix", "la misma cantidad pero con el VAE", "as many epochs").
_SAME_AMOUNT = re.compile(
    r"\bsame (?:number|amount|count|quantity)\b|\bsame (?:epochs|steps|images|samples|pictures|beam(?: size)?)\b|"
    r"\bas many\b|\bmism[oa]s? (?:n[uú]mero|cantidad)\b|\btant[oa]s como\b|"
    r"\bmism[oa]s (?:[eé]pocas|im[aá]genes|muestras|pasos|fotos)\b|\bmismo (?:haz|beam)\b", re.I)
# A turn that repeats the last call on something else ("and the same for sales_2024.csv", "haz
# lo mismo con luna.png"): every value it does not change is kept.
_SAME_CALL = re.compile(
    r"\b(?:the )?same (?:for|with|on)\b|\bsame thing\b|\bdo the same\b|\blo mismo (?:para|con|en|de)\b|"
    r"\bhaz lo mismo\b|\bigual (?:para|con)\b", re.I)
# A Spanish imperative with its object attached ("ordénalas", "repítelo", "muéstramelos",
# "tradúceme"): the stress mark the clitic forces on the verb tells it from a plain word.
_CLITIC = re.compile(r"\b\w*[áéíóú]\w*?(?:lo|la|los|las|le|les|me)\b", re.I)


# A turn that asks how running work is going ("how's it doing?", "¿cómo va el training?",
# "any progress?"): right after a training starts it asks for the training's status.
_PROGRESS = re.compile(
    r"^\W*(?:(?:ok|so|and|y|oye|vale|bueno)\W+)?(?:how(?:'s|\s+is|\s+are)?\s+(?:it|things|the training|training|"
    r"that|we)\s+(?:going|doing|coming along|progressing|looking)|hows\s+it\s+\w+|c[oó]mo\s+va(?:s|mos)?\b(?!\s+a\b)|"
    r"qu[eé]\s+tal\s+va|(?:any\s+)?progress\b|(?:alg[uú]n\s+)?progreso\b|is it (?:done|finished) yet|"
    r"how\s+far\s+(?:along\s+)?(?:is|are)\b|how\s+(?:much\s+)?longer\b|how\s+long\s+(?:left|to\s+go|until)\b|eta\b|"
    r"cu[aá]nto\s+(?:le\s+)?(?:falta|queda)\b|(?:what|which)\s+epoch\s+is\s+it\b|(?:en|por)\s+qu[eé]\s+[eé]poca\s+va\b|"
    r"(?:ya\s+)?(?:termin[oó]|acab[oó])\b)", re.I)


def asks_progress(text: str) -> bool:
    """Whether ``text`` asks how running work is going (see :data:`_PROGRESS`)."""
    return len(text.split()) <= 8 and bool(_PROGRESS.search(text))


@dataclass(frozen=True)
class ThreadContext:
    """What the router may use from the thread: recent user turns and the last tool call."""

    turns: tuple[str, ...] = ()           # earlier user requests, oldest first (standalone forms)
    last_call: dict[str, Any] | None = None  # {"tool": name, "args": {...}} of the latest tool call
    last_request: str | None = None       # the user request that led to ``last_call``
    calls: tuple[dict[str, Any], ...] = ()  # the recent tool calls, oldest first (``last_call`` last)
    offered: tuple[str, ...] = ()  # the next questions the last tool result suggested (standalone)

    @property
    def empty(self) -> bool:
        return not self.turns and self.last_call is None

    def sources(self) -> list[str]:
        """Texts an argument may be grounded in besides the request: turns and the last call."""
        texts = list(self.turns[-4:])
        if self.last_call:
            texts.append(json.dumps(self.last_call.get("args") or {}, ensure_ascii=False))
            for value in (self.last_call.get("args") or {}).values():
                texts.append(" ".join(map(str, value)) if isinstance(value, list) else str(value))
        return texts


def context_from_messages(messages: Sequence[Any], limit: int = 4) -> ThreadContext:
    """The thread context from LangChain messages (human turns, AI tool calls) before this turn.

    A human message may carry the standalone form of a rewritten follow-up in
    ``additional_kwargs["standalone"]``; that form is used, so a second follow-up builds on the
    first one's full meaning ("and to France?" → "who are those customers?"). A turn without one
    whose call asked a question in words stands for that question: "sorry, I meant Led Zeppelin"
    was asked as "How many albums does Led Zeppelin have?", and the next turn builds on that.
    """
    from taller.tools import registry

    turns: list[str] = []
    calls: list[dict[str, Any]] = []
    offered: tuple[str, ...] = ()
    last_call: dict[str, Any] | None = None
    last_request: str | None = None
    current: str | None = None
    rewritten = False
    for message in messages:
        kind = getattr(message, "type", "")
        if kind == "human":
            extra = getattr(message, "additional_kwargs", None) or {}
            content = message.content if isinstance(message.content, str) else ""
            rewritten = bool(extra.get("standalone"))
            current = str(extra.get("standalone") or content).strip()
            if current:
                turns.append(current)
        elif kind == "ai":
            for call in getattr(message, "tool_calls", None) or []:
                last_call = {"tool": call.get("name"), "args": dict(call.get("args") or {})}
                spec = registry.TOOLS.get(last_call["tool"] or "")
                asked = next((str(last_call["args"][name]).strip() for name in sorted(spec.free_text_fields)
                              if isinstance(last_call["args"].get(name), str) and last_call["args"][name].strip()),
                             None) if spec else None
                if asked and not rewritten and current and turns and turns[-1] == current:
                    turns[-1] = current = asked
                last_request = current
                calls.append(last_call)
        elif kind == "tool":
            offered = _suggested_questions(message.content)
    return ThreadContext(turns=tuple(turns[-limit:]), last_call=last_call, last_request=last_request,
                         calls=tuple(calls[-limit:]), offered=offered)


def _suggested_questions(content: Any) -> tuple[str, ...]:
    """The questions a tool result offers as next steps (``"suggestions"``): each is written to
    stand alone, so the user who sends one is not continuing the last question."""
    try:
        result = json.loads(content) if isinstance(content, str) else content
    except ValueError:  # a result cut at its size limit is no JSON: it offers nothing readable
        return ()
    found = result.get("suggestions") if isinstance(result, dict) else None
    return tuple(" ".join(item.split()) for item in found if isinstance(item, str)) if isinstance(found, list) else ()


# Chat spellings of the words that make a turn a follow-up ("n blues?", "wat about u?", "y q tal
# en 2010?"): the cue is what matters, and people type it fast.
_CHAT_WORDS = {"nd": "and", "u": "you", "r": "are", "ur": "your", "abt": "about", "wat": "what", "wut": "what",
               "wht": "what", "dat": "that", "dis": "this", "thx": "thanks", "pls": "please", "plz": "please",
               "q": "qué", "xq": "por qué", "pq": "por qué", "tb": "también", "tmb": "también"}
# The cue words a swap of two neighbouring letters ("tehm", "waht", "agian", "thier") or a letter
# left out ("insted") may hide. Not a changed letter: that turns a real word into a cue word ("name"
# → "same", "than" → "that").
_CUE_WORDS = frozenset(
    "and what about them they those these their that this again same instead also with how many much please "
    "thanks now then only just other another ellos ellas esos esas estos estas mismo misma otra otro ahora "
    "también tambien cuántos cuántas cuanto cuantos sobre".split())


def _cue_word_meant(word: str) -> str | None:
    """The cue word ``word`` misspells by two neighbouring letters swapped ("tehm") or, from four
    letters on, one letter left out ("insted", "agin"); None when it is no such misspelling."""
    lower = word.lower()
    for index in range(len(lower) - 1):
        candidate = lower[:index] + lower[index + 1] + lower[index] + lower[index + 2:]
        if candidate != lower and candidate in _CUE_WORDS:
            return candidate
    if len(lower) >= 4:
        for cue in _CUE_WORDS:
            if len(cue) == len(lower) + 1 and any(cue[:index] + cue[index + 1:] == lower for index in range(len(cue))):
                return cue
    return None


def cue_spelled(text: str) -> str:
    """``text`` with its cue words spelled out: chat forms (:data:`_CHAT_WORDS`; a leading "n" is
    "and") and cue words with two letters swapped. Everything else is left as typed, so values,
    names and quoted text are untouched."""
    def fix(match: re.Match[str]) -> str:
        word = match.group(0)
        lower = word.lower()
        if match.start() == len(text) - len(text.lstrip(" ¿¡")) and lower == "n":
            return "and"
        if lower in _CHAT_WORDS and not (lower == "q" and not text[match.end():].strip(" ?!.¿¡")):
            return _CHAT_WORDS[lower]  # "q" is "qué" before words ("y q tal"), not at the end ("y de Oslo q?")
        if len(lower) >= 3 and lower not in _CUE_WORDS:
            return _cue_word_meant(word) or word
        return word

    return re.sub(r"(?<![\w'’/.-])[^\W\d_]+(?![\w'’/.-])", fix, text) if text else text


def continues(text: str) -> bool:
    """Whether ``text`` starts like a continuation of the last request ("and…?", "¿y…?", "now…")."""
    return bool(_CONTINUATION.search(cue_spelled(text)))


def refers_back(text: str) -> bool:
    """Whether ``text`` starts like a continuation or points back ("and…", "her age", "the same",
    "ordénalas", "no wait, I meant …"), its cue words read through typos (:func:`cue_spelled`)."""
    text = cue_spelled(text)
    return bool(_CONTINUATION.search(text) or _REFERENCE.search(text) or _CLITIC.search(text)
                or _CORRECTION.search(text))


# The tools that read a recording, and "he", "she", "they" in a question about one: its speakers,
# whom the video argument already names ("does he mention layer norm at all?" asks the same video,
# not the last question again).
RECORDING_TOOLS = frozenset({"ask_video", "summarize_video"})
_SPEAKER = re.compile(r"\b(?:he|she|they|him|her|them|él|ella|ellos|ellas)\b", re.I)


def speaks_of_the_speaker(text: str) -> bool:
    """Whether ``text`` says "he", "she", "they" (in a thread about a recording: its speakers)."""
    return bool(_SPEAKER.search(text))


def points_at_the_last_request(text: str, tool: str | None) -> bool:
    """Whether ``text``, a turn for ``tool``, points back to the request before it (:func:`refers_back`),
    a recording's speaker aside."""
    return refers_back(_SPEAKER.sub(" ", text) if tool in RECORDING_TOOLS else text)


def corrects(text: str) -> bool:
    """Whether ``text`` corrects the previous request ("sorry, I meant …", "perdón, el otro")."""
    return bool(_CORRECTION.search(text))


def kept_values(tool: str, request: str, context: ThreadContext, args: dict[str, Any]) -> dict[str, Any]:
    """Optional values of the last call that this turn keeps without saying them again.

    A correction of the last call ("no wait, I meant the autoencoder" after 12 epochs of the VAE)
    or the same call on something else ("and the same for sales_2024.csv") changes one value and
    keeps the others, when it stays with the same tool; a turn that asks
    for "the same number" keeps the last call's numbers that ``tool`` also takes ("the same
    number of images with pix2pix" after 4 VAE samples). Free text is never kept this way: a
    question is rewritten, not inherited. Values ``args`` already has win.
    """
    from taller.tools import get_tool, registry

    last = context.last_call or {}
    previous = last.get("args") or {}
    if tool not in registry.TOOLS:
        return {}
    accepted = set(get_tool(tool).args_schema.model_fields) - registry.TOOLS[tool].free_text_fields
    missing = {name: value for name, value in previous.items()
               if name in accepted and args.get(name) in (None, "", []) and value not in (None, "", [])}
    kept: dict[str, Any] = {}
    if (corrects(request) or _SAME_CALL.search(request)) and last.get("tool") == tool:
        kept.update(missing)
    if _SAME_AMOUNT.search(request):
        # The newest call that has the number: "¿cómo va?" may have come in between.
        for call in reversed(context.calls or (last,)):
            for name, value in (call.get("args") or {}).items():
                if (name in accepted and name not in kept and args.get(name) in (None, "")
                        and isinstance(value, (int, float)) and not isinstance(value, bool)):
                    kept[name] = value
    return kept


def numbers_by_words(tool: str, text: str) -> dict[str, int]:
    """Numeric arguments of ``tool`` that the registry gives words for, named in ``text``:
    "greedy" is a beam of 1."""
    from taller.agent import grounding
    from taller.tools import registry

    spec = registry.TOOLS.get(tool)
    found: dict[str, int] = {}
    folded = grounding.normalize(text)
    for field, values in (spec.synonyms if spec else {}).items():
        for value, words in values.items():
            if value.isdigit() and any(grounding.phrase_pattern(word).search(folded) for word in words):
                found[field] = int(value)
    return found


# Words between a number argument's word and its number: "a beam of 4", "haz de tres", "beam = 2".
_LINK_WORDS = {"of", "de", "del", "=", ":", "is", "es", "to", "the", "los", "las", "el", "la"}
# Words that start a number only with the word after them: "a dozen", "una docena", "half a dozen".
_ARTICLE_WORDS = {"a", "an", "un", "una", "half", "media", "medio"}


# "the last fourteen weeks", "los últimos 12 meses": a count of what the data already holds, not
# of what to make.
_PAST = frozenset({"last", "past", "previous", "ultimos", "ultimas", "pasados", "pasadas", "anteriores"})


def numbers_by_units(tool: str, text: str) -> dict[str, int]:
    """Numeric arguments of ``tool`` that ``text`` states with the argument's word (the registry's
    ``units``): "what about 10 steps?" → ``steps=10``; "con un haz de tres" → ``beam_size=3``; "the
    next 8" → ``steps=8``. A word with no single whole number beside it states nothing."""
    from taller.agent import grounding
    from taller.tools import registry

    spec = registry.TOOLS.get(tool)
    found: dict[str, int] = {}
    words = grounding.normalize(text).replace("-", " ").split()
    for field, (after_number, before_number) in (spec.units if spec else {}).items():
        for index, word in enumerate(words):
            bare = word.strip(".,;:!?¿¡()'\"")
            value = None
            before = words[max(0, index - 3):index]
            if any(_word_is(bare, unit) for unit in after_number) and not _PAST.intersection(before):
                value = number_near(before, backwards=True)
            if value is None and any(_word_is(bare, lead) for lead in before_number):
                value = number_near(words[index + 1:index + 5], backwards=False)
            if value is not None:
                found[field] = value
                break
    return found


def _word_is(word: str, unit: str) -> bool:
    from taller.agent import grounding

    unit = grounding.normalize(unit)
    if " " in unit:
        unit = unit.split()[-1]  # "beam size": its last word, the number comes right after it
    return word.startswith(unit[:-1]) if unit.endswith("*") else word == unit


def number_near(words: Sequence[str], backwards: bool) -> int | None:
    """The one whole positive number written at the near end of ``words`` (digits or words),
    widening word by word while it still reads as one number: "five" → "twenty five"; "2 models
    for 5" stops at 5. Forwards (after "next", "beam of"), it must start right there."""
    from taller.agent import grounding

    found = None
    span = list(words)
    if not backwards:
        while span and span[0].strip(".,;:!?¿¡") in _LINK_WORDS:
            span = span[1:]
        # The number comes right after the word: "next 5", not "next after 100".
        first = span[0].strip(".,;:!?¿¡") if span else ""
        if not (grounding.number_mentions(first)
                or (first in _ARTICLE_WORDS and grounding.number_mentions(" ".join(span[:2])))):
            return None
    for size in range(1, len(span) + 1):
        part = span[-size:] if backwards else span[:size]
        mentions = grounding.number_mentions(" ".join(part))
        if len(mentions) > 1:
            break
        if mentions:
            found = mentions[0]
        elif found is not None:
            break
    if found is None or found != int(found) or found <= 0:
        return None
    return int(found)


def _value_words(text: str) -> bool:
    """Whether ``text`` names a value of any tool by a word the registry gives for it."""
    from taller.tools import registry

    return any(numbers_by_words(tool, text) for tool in registry.TOOLS)


def _without_value_words(text: str) -> str:
    """``text`` (folded) without the words the registry gives for an argument's value ("greedy")."""
    from taller.agent import grounding
    from taller.tools import registry

    folded = grounding.normalize(text)
    for spec in registry.TOOLS.values():
        for values in spec.synonyms.values():
            for value, words in values.items():
                if value.isdigit():
                    for word in sorted(words, key=len, reverse=True):
                        folded = grounding.phrase_pattern(word).sub(" ", folded)
    return folded


def changes_a_value(text: str) -> bool:
    """A short turn that states a value and little else: "make that 10 steps", "mejor 6", "luna.png?"."""
    from taller.agent import grounding

    quotes = grounding.quoted_spans(text)
    rest = VIDEO_ID.sub(" ", PATHISH.sub(" ", text))
    for span in quotes:
        rest = rest.replace(span, " ")
    from taller.text import is_number_word

    # Four other words at most: "train the autoencoder for 3 epochs" is a request of its own. The
    # value's own words are not other words: "con un haz de cinco" is "con un haz de 5", and "sin
    # beam search, en modo voraz" names a beam of 1 by the registry's words.
    # Nor are the words that only point back or fill in ("otra vez pero que sean 12", "again but
    # make it 12"): what is left must be four words at most.
    words = [word for word in re.findall(r"[^\W\d_]+", _without_value_words(rest))
             if not is_number_word(word) and word.lower() not in _POINTING_WORDS]
    if len(words) > 4:
        return False
    return bool(grounding.number_mentions(rest) or quotes or PATHISH.search(text) or VIDEO_ID.search(text)
                or _value_words(rest))


def _unit_words() -> frozenset[str]:
    """Every word the registry gives for a numeric argument ("epochs", "haz", "beam", "pasos")."""
    from taller.agent import grounding
    from taller.tools import registry

    return frozenset(grounding.normalize(word).split()[-1].rstrip("*") for spec in registry.TOOLS.values()
                     for after, before in spec.units.values() for word in (*after, *before) if word.strip())


def states_a_setting(text: str) -> bool:
    """A short turn that states a number by its argument's word and little else: "¿podría usar un
    haz de ocho?", "otra vez pero con 12 épocas". The argument's word, the small words that tie it
    to its number and the words that only point back do not count; four others at most."""
    from taller.agent import grounding
    from taller.text import is_number_word

    if not grounding.number_mentions(text):
        return False
    units = _unit_words()
    words = [word for word in re.findall(r"[^\W\d_]+", grounding.normalize(text))
             if not is_number_word(word) and word not in _POINTING_WORDS | _LINK_WORDS | _ARTICLE_WORDS
             and word not in units and word.rstrip("s") not in units and word[:-2] not in units]
    return len(words) <= 4


# Words a bare follow-up is made of besides its value: "and", "what about", "y esta", "now".
_FILLER = re.compile(
    r"\b(and|y|e|also|too|what|how|about|with|for|on|in|to|the|a|this|that|one|ones|these|those|now|then|"
    r"same|again|please|pls|ok|okay|oh|hmm|con|para|en|de|del|el|la|los|las|este|esta|esto|ese|esa|"
    r"eso|otro|otra|ahora|tambi[eé]n|qu[eé]|tal|porfa|vale|bueno|oye|s[ií]|yes|"
    # an acknowledgement first, and "do" / "haz", which only say "the same": "cool, do b.png too"
    r"great|cool|nice|perfect|perfecto|genial|thanks|gracias|do|haz)\b", re.I)


def bare_ellipsis(text: str) -> bool:
    """A turn that is only a new value for the last call: "and lecture_08.srt?", "y esta:
    fotos/pelusa.jpeg", "what about 'see you'?", "¿y 2012?". It says nothing of the tool, so it
    means the same tool again ("and her age?" asks something new: not bare)."""
    from taller.agent import grounding

    quotes = grounding.quoted_spans(text)
    rest = VIDEO_ID.sub(" ", PATHISH.sub(" ", text))
    for span in quotes:
        rest = rest.replace(span, " ")
    has_value = rest != text or bool(re.search(r"\d", rest))
    return has_value and not _FILLER.sub(" ", re.sub(r"[\d\W_]+", " ", rest)).strip()


# A fragment that only adds a grouping, an order or a place to the last question: "by department",
# "por año", "grouped by genre", "sorted by price", "per country".
_FRAGMENT = re.compile(
    r"^\W*(?:(?:grouped|broken down|sorted|ordered|split)\s+)?(?:by|per|por|para cada|agrupad[oa]s? por|"
    r"ordenad[oa]s? por|each|cada)\s+[^\W\d_]+(?:\s+[^\W\d_]+)?\W*$", re.I)


def adds_to_the_question(text: str) -> bool:
    """Whether ``text`` is only a grouping, an order or a "per …" for the last question."""
    return bool(_FRAGMENT.match(text))


def looks_like_followup(text: str, context: ThreadContext) -> bool:
    """Whether ``text`` may depend on the thread (cheap; the rewrite itself decides the rest). A
    next step the last result suggested is written to stand alone: it does not."""
    if " ".join(text.split()) in context.offered:
        return False
    return not context.empty and (refers_back(text) or changes_a_value(text) or adds_to_the_question(text)
                                  or says_what_it_replaces(text))


# A question word opening a turn ("which", "de qué", "cuánto"), after "and"/"y" at most.
_WH_OPENING = re.compile(
    r"^\W*(?:(?:and|so|y|e)\s+)?(?:(?:de|en|a|con|por|para|from|in)\s+)?"
    r"(?:what|which|who|whom|whose|when|where|how|qu[eé]|cu[aá]l(?:es)?|cu[aá]nt[oa]s?|qui[eé]n(?:es)?|"
    r"d[oó]nde|cu[aá]ndo|c[oó]mo)\b", re.I)


def short_question_after_one(text: str, context: ThreadContext) -> bool:
    """A question of five words or fewer right after a question to a tool that takes one: "which
    month was the best?", "de qué país son", "cuanto duran en minutos". So short, it may ask about
    what was just asked (Spanish leaves the subject out); the rewrite says of what, or leaves it.
    The router sends it there only when the classifier reads no other tool in it
    ("where is the bottleneck explained?" after a database question asks a video)."""
    if not _asks_free_text(context) or not _WH_OPENING.search(text) or " ".join(text.split()) in context.offered:
        return False
    return len(re.findall(r"[^\W\d_]+", text)) <= 5 and not (PATHISH.search(text) or VIDEO_ID.search(text))


# A rewrite that reads like code ("classify_pet({...})", "translate('…', beam=3)", "forecast(6
# steps, data.csv)") copied the prompt's tool line instead of rewriting the user.
_TOOL_CALL = re.compile(r"\b[a-z]+_[a-z_]+\s*\(\s*\{|\b[A-Za-z_]\w*\(")


def _speaks_code(standalone: str, said: Sequence[str]) -> bool:
    """Whether the rewrite reads like a call or names a tool (``query_database``) that nobody in
    the thread wrote: a sentence a person would type has neither."""
    from taller.tools import TOOL_NAMES

    written = " ".join(said)
    if any(match.group(0) not in written for match in _TOOL_CALL.finditer(standalone)):
        return True
    return any(re.search(rf"\b{name}\b", standalone) and name not in written for name in TOOL_NAMES)

REWRITE_SCHEMA = {"type": "object", "properties": {"request": {"type": "string"}}, "required": ["request"]}

REWRITE_SYSTEM = """Rewrite the user's last message so it can be understood without the conversation. \
The last message may continue the previous request (change the subject, a value, a file, or ask \
something more about the same thing). Write ONE complete request in the same language as the last \
message. Take what it leaves out (the file, the numbers, the text, the model, the database, the \
video, the subject) from the previous request. Copy file names, numbers, quoted text and names \
exactly. If the last message does not depend on the conversation, copy it unchanged.

A new value REPLACES the value of the same kind in the previous request (a country, a year, a \
genre, a topic, a department, a file): the new request asks only about the new value, never about \
both. A new question about the same thing replaces the previous question: keep its subject, not \
the question itself.

Examples:
Previous request: How many albums does Queen have?
Last message: and Metallica?
Standalone: How many albums does Metallica have?

Previous request: How many orders were shipped to Italy last year?
Last message: and to Spain?
Standalone: How many orders were shipped to Spain last year?

Previous request: ¿Cuántas reservas tiene el hotel de Sevilla?
Last message: ¿y el de Bilbao?
Standalone: ¿Cuántas reservas tiene el hotel de Bilbao?

Previous request: which composer wrote the most songs?
Last message: and the most symphonies?
Standalone: which composer wrote the most symphonies?

Previous request: what does the lecture say about loss functions?
Last message: ¿y de los optimizadores?
Standalone: ¿qué dice la charla sobre los optimizadores?

Previous request: list the customers from Chile
Last message: what did they buy?
Standalone: what did the customers from Chile buy?

Previous request: ¿qué emoción muestra la cara en ana.jpg?
Last message: ¿y su edad?
Standalone: ¿qué edad tiene la cara en ana.jpg?

Previous request: translate 'nice to meet you'
Last message: and 'see you soon'?
Standalone: translate 'see you soon'

Previous request: forecast 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12
Last message: now 8 steps
Standalone: forecast 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12 for the next 8 steps

Previous request: train the vae for 2 epochs
Last message: thanks!
Standalone: thanks!

Reply with JSON only: {"request": "<standalone request>"}"""


def _call_text(call: dict[str, Any] | None) -> str:
    if not call:
        return "(none)"
    return f"{call.get('tool')}({json.dumps(call.get('args') or {}, ensure_ascii=False)})"


# An elliptical turn: a cue, then only the new value ("and to France?", "what about marketing?",
# "¿y de jazz?", "ok, and in 2004?", "now the top 10", "same for albums").
_ELLIPSIS = re.compile(
    _OPENING + r"[¿¡]?\s*"
    r"(?:and now|y ahora|(?:and\s+|so\s+)?what about|(?:and\s+)?how about|and|y|e|same for|same with|lo mismo (?:para|con|en|de)|"
    r"igual (?:para|con)|now|ahora)\s+(?P<value>.+?)\s*[?？!.]*\s*$", re.I)
# "the same for X" inside a longer turn: "would you mind doing the same for Metal?", "now the same
# yearly breakdown for Latin, if you'd be so kind", "vale, ahora lo mismo pero de la regularización
# L2". The value ends at a comma or a stop.
_SAME_FOR = re.compile(
    r"\b(?:(?:the\s+)?same(?:\s+[^\W\d_]+){0,2}?\s+(?:for|with|about|on)|"
    r"(?:lo\s+mismo|la\s+misma\s+\w+|el\s+mismo\s+\w+)(?:\s+pero)?\s+(?:(?:para|con|en)\s+)?)"
    # "de" / "sobre" stay with the value: they say it is a topic ("¿qué dice … sobre el dropout?")
    r"(?P<value>[^,;:?¿!¡.]+?)\s*(?:[,;:?!.].*)?$", re.I)
# Words that make the rest a request or a question of its own, not a value: "and what's their
# salary?", "and now train the vae", "¿y cómo se llama?".
_NOT_A_VALUE = re.compile(
    r"\b(what|what's|whats|who|how|which|why|when|where|is|are|was|were|does|do|did|can|could|will|"
    r"train|translate|generate|make|create|summari[sz]e|forecast|predict|classify|describe|show|add|analy[sz]e|"
    r"list|punctuate|run|query|tell|give|explain|"
    r"qu[eé]|qui[eé]n(?:es)?|c[oó]mo|cu[aá]l(?:es)?|cu[aá]nt[oa]s?|d[oó]nde|cu[aá]ndo|por qu[eé]|es|son|hay|"
    r"entrena\w*|traduc\w*|genera\w*|crea\w*|haz|resum\w*|pronostica\w*|predic\w*|clasifica\w*|describ\w*|"
    r"muestra\w*|ense[nñ]a\w*|a[nñ]ade\w*|analiza\w*|lista\w*|dime|dame|explica\w*)\b", re.I)
_LEADING_PREPOSITION = re.compile(r"^(?:to|in|for|from|of|on|at|by|with|about|regarding|concerning|de|del|en|para|por|con|a|al|sobre|acerca de)\s+", re.I)
_SPAN_STOPWORDS = frozenset("""the a an of to in for from on at by with and or is are was were do does did how
many much what which who de del la el los las en para por con y o un una que hay es son cuantos cuantas""".split())
# How well a part of the previous request must fit the new value to be the part it replaces: the
# MiniLM cosine of the two ("Canada" for "France" 0.65, "2011" for "2012" 0.87), plus what says
# two values are of one kind when the embedding does not ("Iron Maiden" for "Led Zeppelin" is
# only 0.43): both names (capitalised), both numbers, or the part sits after the preposition the
# value comes with ("de jazz" for "¿y de heavy metal?", "about inflation" for "and about
# unemployment?"; about / on / regarding / sobre introduce the same thing, a topic).
SUBSTITUTION_FIT = 0.45
_SAME_PREPOSITION, _BOTH_NAMES, _BOTH_NUMBERS = 0.3, 0.2, 0.3
# Words that rank ("the most", "the least", "el peor"): one replaces another as a number does.
_SUPERLATIVE = re.compile(
    r"\b(?:most|least|fewest|best|worst|highest|lowest|biggest|smallest|largest|longest|shortest|oldest|newest|"
    r"cheapest|top|bottom|m[aá]s|menos|mejor(?:es)?|peor(?:es)?|mayor(?:es)?|menor(?:es)?)\b", re.I)
# A new value for the topic slot of the previous question: enough alone (see :func:`substituted`).
_TOPIC_SLOT = SUBSTITUTION_FIT
_TOPIC = frozenset({"about", "on", "regarding", "concerning", "sobre", "acerca"})
# A Spanish verb of saying: "de" after it introduces a topic ("¿qué dice de la regularización?").
_SAYS = re.compile(r"dicen?|dijo|dijeron|habla(?:n|ba|ron)?|habl[oó]|comenta(?:n|ba)?|coment[oó]|cuenta(?:n)?|"
                   r"cont[oó]|explica(?:n)?|explic[oó]|menciona(?:n)?|mencion[oó]|opina(?:n)?|opin[oó]", re.I)


# A value that narrows the question rather than replacing one of its values ("and only in 2010",
# "y solo las de Chile", "just the ones from 2012").
_RESTRICTION = re.compile(r"^(?:only|just|solo|s[oó]lo|solamente|[uú]nicamente)\b", re.I)


def _model_replaced(value: str, previous: str) -> str | None:
    """``previous`` with the model it names replaced by the one ``value`` names ("ahora la del VAE"
    after "muéstrame la lección del autoencoder …"); None unless both name one, and not the same."""
    from taller.agent import grounding
    from taller.tools import registry

    def named(text: str) -> tuple[str, int, int] | None:
        folded = grounding.normalize(text)
        if len(folded) != len(text):
            return None  # spaces or letters folded away: positions would not line up
        found = [(match.end() - match.start(), name, match.start(), match.end())
                 for name, words in registry.model_words().items() for word in words
                 for match in grounding.phrase_pattern(word).finditer(folded)]
        if not found:
            return None
        _, name, start, end = max(found)  # the longest: "variational autoencoder" is the VAE
        return name, start, end

    new, old = named(value), named(previous)
    if new is None or old is None or new[0] == old[0]:
        return None
    return previous[:old[1]] + value[new[1]:new[2]] + previous[old[2]:]


def _kind_of_preposition(words: str) -> str:
    """"topic" for the prepositions that introduce one ("about", "acerca de"), else the word
    ("del" and "al" are "de" and "a" with the article: "¿y del dropout?" for "de la regularización")."""
    word = (words.lower().split() or [""])[0]
    word = {"del": "de", "al": "a"}.get(word, word)
    return "topic" if word in _TOPIC else word


def _is_name(text: str, start: int) -> bool:
    """A capitalised word that does not open a sentence."""
    return text[start:start + 1].isupper() and bool(re.search(r"\w[\s,]*$", text[:start]))


def substituted(text: str, previous: str) -> str | None:
    """``previous`` with the part ``text``'s new value replaces ("How many invoices were billed to
    Canada?" + "and to France?" → "How many invoices were billed to France?"), or None when
    ``text`` is not only a cue and a value, or no part of ``previous`` is of the value's kind.

    A small model asked to rewrite such a turn joins both ("… billed to Canada and to France?"),
    which asks another question. The part replaced is the span of one to four words of
    ``previous`` that fits the value best (:data:`SUBSTITUTION_FIT`): a value of the same kind
    as the old one (a country, a genre, a year, a department, a topic, "the most tracks")."""
    from taller.text import number_mentions

    match = _SAME_FOR.search(cue_spelled(text or "")) or _ELLIPSIS.match(cue_spelled(text or ""))
    if not match or not previous:
        return None
    value = match.group("value").strip(" ,;:")
    # Four words at most, small words aside: "the weights and biases part" is one value.
    if (len([word for word in value.split() if word.lower() not in _SPAN_STOPWORDS]) > 4 or _NOT_A_VALUE.search(value) or _REFERENCE.search(value)
            or PATHISH.search(value) or VIDEO_ID.search(value) or re.search(r"['\"“‘«]", value)):
        return None
    from taller.agent import grounding
    from taller.tools import registry

    if any(numbers_by_units(tool, value) for tool in registry.TOOLS):
        return None  # "now with beam 5", "make it 10 epochs": a setting of the call, not its subject
    if _RESTRICTION.match(value):
        return None  # "y solo las de 2010": a condition added to the question, not a value replaced
    model = _model_replaced(value, previous)
    if model is not None:
        return model
    preposition = _LEADING_PREPOSITION.match(value)
    core = value[preposition.end():] if preposition else value
    tokens = list(re.finditer(r"[^\s¿?¡!,.;:]+", previous))
    # A quoted text is the user's own words (the text to translate): never edited.
    quoted = [(at, at + len(span)) for span in grounding.quoted_spans(previous) if (at := previous.find(span)) >= 0]

    def slot_ends(index: int) -> bool:
        """The phrase after a preposition ends here: punctuation, the end, or a word of no content
        next ("de rock hay", "about taxes and …")."""
        if index + 1 >= len(tokens):
            return True
        between = previous[tokens[index].end():tokens[index + 1].start()]
        following = tokens[index + 1].group(0)
        # A year after a phrase qualifies it ("in March 2024"): "and in April?" replaces the month.
        return (bool(re.search(r"[?!,.;:]", between)) or following.lower() in _SPAN_STOPWORDS
                or bool(_LEADING_PREPOSITION.match(following + " ")) or bool(_A_YEAR.match(following)))

    spans, bonuses = [], []
    for first in range(len(tokens)):
        before = tokens[first - 1].group(0) if first else ""
        for last in range(first, min(first + 4, len(tokens))):
            words = [token.group(0).lower() for token in tokens[first:last + 1]]
            if words[-1] in _SPAN_STOPWORDS:
                continue  # a phrase does not end on "the", "de", "hay"
            start, end = tokens[first].start(), tokens[last].end()
            if any(start < stop and begin < end for begin, stop in quoted):
                continue
            bonus = 0.0
            # The whole phrase after the same preposition, not a piece of it ("la energía" of
            # "sobre la energía nuclear" would leave "nuclear" behind).
            if (preposition and slot_ends(last)
                    and _kind_of_preposition(before) == _kind_of_preposition(preposition.group(0).strip())):
                bonus += _SAME_PREPOSITION
            # The topic of a question ("did she talk about type hints?", "¿qué dice sobre el
            # dropout?") is what "and async?" or "¿y de batch norm?" replaces, however far apart
            # MiniLM places the two topics (0.04 and 0.08 here).
            before_before = tokens[first - 2].group(0) if first >= 2 else ""
            topic_before = (_kind_of_preposition(before) == "topic"
                            or (_kind_of_preposition(before) == "de" and bool(_SAYS.fullmatch(before_before))))
            if (slot_ends(last) and topic_before
                    and (not preposition or _kind_of_preposition(preposition.group(0).strip()) in ("topic", "de"))):
                bonus += _TOPIC_SLOT
            if _is_name(previous, start) and core[:1].isupper():
                bonus += _BOTH_NAMES
            if number_mentions(core) and number_mentions(previous[start:end]):
                bonus += _BOTH_NUMBERS
            if _SUPERLATIVE.search(core) and _SUPERLATIVE.search(previous[start:end]):
                bonus += _BOTH_NUMBERS  # "the least" for "the most", "el peor" for "el mejor"
            spans.append((start, end))
            bonuses.append(bonus)
    if not spans:
        return None
    try:
        from taller.embeddings import embed

        vectors = embed([core, *(previous[start:end] for start, end in spans)])
    except Exception:  # no embedding model here: the LLM rewrite does without
        return None
    fits = [float(similarity) + bonus for similarity, bonus in zip(vectors[1:] @ vectors[0], bonuses)]
    best = max(fits)
    if best < SUBSTITUTION_FIT:
        return None
    # Of the spans that fit about as well as the best, the one as long as the value, then the
    # shortest: "sales" for "marketing", not "the sales"; "la energía nuclear" for "la energía
    # solar", not "la energía".
    size = len(core.split())
    start, end = min((span for span, fit in zip(spans, fits) if fit >= best - 0.05),
                     key=lambda span: (abs(len(previous[span[0]:span[1]].split()) - size), span[1] - span[0]))
    if previous[start:end].lower() == core.lower():
        return None  # the value is already there: not a substitution
    return previous[:start] + core + previous[end:]


# "that year", "ese año", "the same month": a time the previous request named. A small model's
# rewrite often keeps the phrase as it is ("¿qué autor fue el más prestado ese año?").
_THAT_TIME = re.compile(
    r"(?:\b(?:in|during|for|en|durante|de)\s+)?\b(?:that|the same|ese|aquel|el mismo|dicho)\s+"
    r"(?P<unit>year|a[nñ]o|month|mes)\b", re.I)
_YEAR_DIGITS = r"(?:1[89]\d\d|20\d\d)"  # a year as people ask about them: 1800-2099
_YEAR = re.compile(rf"\b{_YEAR_DIGITS}\b")
_A_YEAR = re.compile(rf"^{_YEAR_DIGITS}$")


def is_year(number: float) -> bool:
    """Whether a number read off a turn is a year as people ask about them (1800-2099), not a count."""
    return number == int(number) and 1800 <= number <= 2099
_MONTH = re.compile(
    r"\b(?:january|february|march|april|may|june|july|august|september|october|november|december|enero|"
    r"febrero|marzo|abril|mayo|junio|julio|agosto|septiembre|setiembre|octubre|noviembre|diciembre)"
    rf"(?:\s+(?:of\s+|de\s+)?{_YEAR_DIGITS})?\b", re.I)


def with_the_time_named(text: str, previous: str) -> str:
    """``text`` with "that year" / "ese mes" written out as the one year or month of ``previous``
    ("¿qué autor fue el más prestado ese año?" after "… en 2022?" → "… en 2022?"); unchanged when
    ``previous`` names none or several."""
    def named(match: re.Match[str]) -> str:
        unit = match.group("unit").lower()
        pattern = _YEAR if unit in ("year", "año", "ano") else _MONTH
        found = {value.group(0) for value in pattern.finditer(previous or "")}
        if len(found) != 1:
            return match.group(0)
        spanish = unit in ("año", "ano", "mes")
        return f"{'en' if spanish else 'in'} {found.pop()}"

    return _THAT_TIME.sub(named, text)


# Words that point back to the last call without naming anything ("otra vez pero", "again but").
_POINTING_WORDS = frozenset("""again otra vez nuevo pero but too also tambien también""".split())
# Words around a bare new number that say nothing else: "mejor dame 7", "make it 10", "now just 5".
_NUMBER_FILLER = frozenset("""ok okay vale so and y now ahora better rather instead mejor make it give me show just only
please porfa que sean sea pon ponme dame muestrame muéstrame enséñame ensename hazlo with con the top los las el la
mas más more than list lista""".split())


def _asks_free_text(context: ThreadContext) -> bool:
    """Whether the last call's tool takes a question in words (its numbers live in the sentence)."""
    from taller.tools import registry

    spec = registry.TOOLS.get((context.last_call or {}).get("tool") or "")
    return bool(spec and spec.free_text_fields)


def number_substituted(text: str, previous: str) -> str | None:
    """``previous`` with its one number replaced by the one number ``text`` states and nothing
    else ("¿Cuáles son los tres géneros con más canciones?" + "mejor dame 7" → "… los 7 géneros
    …"), or None. A year is not a count: it is never the number replaced."""
    from taller.text import number_mentions

    words = [word.strip(".,;:!?¿¡") for word in (text or "").split()]
    rest = [word for word in words if word and word.lower() not in _NUMBER_FILLER]
    if len(rest) != 1 or len(number_mentions(rest[0])) != 1:
        return None
    tokens = [match for match in re.finditer(r"[^\s¿?¡!,.;:]+", previous or "")
              if len(number_mentions(match.group(0))) == 1 and not _A_YEAR.match(match.group(0))]
    if len(tokens) != 1:
        return None
    old = tokens[0]
    return previous[:old.start()] + rest[0] + previous[old.end():]


# "albums instead of artists", "con Chile en vez de Argentina", "the GRU rather than the LSTM":
# the turn says both the new value and the one it replaces.
_INSTEAD = re.compile(
    r"^(?P<before>[^,;:?¿!¡]*?)\s+(?:instead of|rather than|in place of|en vez de|en lugar de)\s+"
    r"(?:(?:the|el|la|los|las)\s+)?(?P<old>[^,;:?¿!¡]+?)\s*[?!.]*\s*$", re.I)
# The same said the other way round: "swap rock for jazz", "replace Chile with Peru", "cambia
# Chile por Perú"; and a correction that names both: "I meant 2012, not 2013", "2012, no 2013".
_SWAP = re.compile(
    r"^(?:.*?\b)?(?:swap|switch|replace|change|cambia|cambiar|sustituye|reemplaza)\s+(?:(?:the|el|la|los|las)\s+)?"
    r"(?P<old>[^,;:?¿!¡]+?)\s+(?:for|with|to|by|por|con)\s+(?:(?:the|el|la|los|las)\s+)?"
    r"(?P<new>[^,;:?¿!¡]+?)\s*[?!.]*\s*$", re.I)
_NOT_THAT = re.compile(r"^(?P<before>.*?\S)\s*,?\s+(?:not|no|y no|and not)\s+(?:(?:the|el|la|los|las)\s+)?"
                       r"(?P<old>[^,;:?¿!¡]+?)\s*[?!.]*\s*$", re.I)
_ARTICLES = frozenset({"the", "a", "an", "el", "la", "los", "las", "un", "una"})


def _replacement(text: str) -> tuple[str, str] | None:
    """(the new value, the old one) a turn says it swaps, by any of the three ways of saying it."""
    spelled = cue_spelled(text or "").strip(" ¿¡")
    swap = _SWAP.match(spelled)
    if swap:
        return swap.group("new").strip(), swap.group("old").strip()
    match = _INSTEAD.match(spelled) or _NOT_THAT.match(spelled)
    if not match:
        return None
    old = match.group("old").strip()
    # The new value is as many words as the old one, read back from the marker.
    words = [word.strip(",.;:") for word in match.group("before").split() if word.lower() not in _ARTICLES]
    words = [word for word in words if word]
    size = len(old.split())
    if not old or len(words) < size:
        return None
    return " ".join(words[-size:]), old


def _names_a_value(words: str) -> bool:
    """Whether ``words`` hold something besides question words, pronouns and small words."""
    return any(word.lower() not in _SPAN_STOPWORDS and not _REFERENCE.fullmatch(word) and not _WH.fullmatch(word)
               for word in re.findall(r"\w+", words))


_WH = re.compile(r"why|when|where|whom?|whose|c[oó]mo|cu[aá]ndo|d[oó]nde|qui[eé]n(?:es)?", re.I)


def says_what_it_replaces(text: str) -> bool:
    """Whether ``text`` names a value and the one it replaces ("albums rather than tracks")."""
    pair = _replacement(text)
    return pair is not None and _names_a_value(pair[0]) and _names_a_value(pair[1])


def replaced_as_said(text: str, previous: str) -> str | None:
    """``previous`` with the value ``text`` says it replaces ("waht about albums insted of
    artists" → "Who are the top 10 albums …", "swap rock for jazz", "I meant 2012, not 2013");
    None unless that value is a word or phrase of ``previous``. The new value is as many words
    as the old one, read back from the marker ("lo mismo con Chile en vez de Argentina":
    "Chile"); "artist" and "artists" are one word."""
    found_pair = _replacement(text)
    if found_pair is None or not previous:
        return None
    new, old = found_pair
    if not (_names_a_value(old) and _names_a_value(new)) or len(old.split()) > 3 or len(new.split()) > 3:
        return None  # "why not 2013?", "change it to 10 steps": a question word or "it" is no value
    stem = re.escape(old[:-1]) if len(old) > 3 and old.lower().endswith("s") else re.escape(old)
    found = re.search(rf"(?<!\w){stem}(?:es|s)?(?!\w)", previous, re.I)
    if not found:
        return None
    return previous[:found.start()] + new + previous[found.end():]


def rewrite(model: Any, text: str, context: ThreadContext, turn_tool: str | None = None) -> str:
    """The standalone form of ``text`` (``text`` itself when the model returns nothing usable).
    ``turn_tool`` is the tool the turn alone reads as, if any (see :func:`_joins`).

    An elliptical turn that only gives a new value is resolved without the model
    (:func:`substituted`); a time it points back to ("that year") is written out
    (:func:`with_the_time_named`)."""
    previous = context.last_request or (context.turns[-1] if context.turns else "")
    replaced = replaced_as_said(text, previous)
    if replaced is None:
        replaced = substituted(text, previous)
    if replaced is None and _asks_free_text(context):
        replaced = number_substituted(text, previous)
    if replaced is not None:
        return replaced
    # "ese año" after a turn that named none ("descríbeme las tablas") is the year of the turn before.
    timed = next((turn for turn in reversed(context.turns) if _YEAR.search(turn) or _MONTH.search(turn)), previous)
    return with_the_time_named(_rewritten(model, text, context, previous, turn_tool), timed)


def _rewritten(model: Any, text: str, context: ThreadContext, previous: str, turn_tool: str | None = None) -> str:
    from langchain_core.messages import HumanMessage, SystemMessage

    from taller.llm import invoke_json

    earlier = [turn for turn in context.turns[-4:-1] if turn != previous and not _superseded(turn, previous)]
    history = "".join(f"Earlier request: {turn}\n" for turn in earlier)
    user = (f"{history}Previous request: {previous}\nTool used for it: {_call_text(context.last_call)}\n"
            f"Last message: {text}\nStandalone:")
    try:
        reply = invoke_json(model, [SystemMessage(content=REWRITE_SYSTEM), HumanMessage(content=user)],
                            REWRITE_SCHEMA, max_tokens=160)
    except ValueError:  # the model's reply was not JSON: route the turn as it is
        return text
    standalone = str(reply.get("request") or "").strip()
    # A rewrite far longer than both turns together is the model rambling, not a rewrite; one
    # that reads like a tool call ("classify_pet({...})") copied the prompt instead of the user.
    if (not standalone or len(standalone) > 2 * (len(previous) + len(text)) + 40
            or _speaks_code(standalone, [text, previous, *earlier])):
        return text
    if refers_back(text) and not _content_words(standalone) - _content_words(text):
        # "¿y cuánto sumaron en total?" came back as "¿Cuánto sumaron en total?": the rewrite took
        # nothing from the thread, so it is no better than the turn (which the router then joins
        # to the request it continues).
        return text
    last_tool = (context.last_call or {}).get("tool")
    if (((turn_tool and turn_tool != last_tool) or not points_at_the_last_request(text, last_tool))
            and any(_joins(standalone, before, text) for before in [previous, *earlier] if before)):
        # "¿es un perro o un gato? en la de toby sale también mi hermana, ¿qué edad le echas?":
        # a turn that reads as another tool's request, or points at nothing of the previous one
        # ("does he mention layer norm at all" after a question about the same talk), put beside
        # the previous request asks both. (Beside a question of its own tool that points back,
        # the previous question carries the subject the turn leaves out: measured, rejecting those
        # too lost two held-out turns.)
        return text
    if _copies_an_earlier_turn(text, standalone, [previous, *earlier]):
        return text  # "show that classifier's metrics" came back as the previous request, word for word
    if not _keeps_what_the_turn_says(text, standalone):
        from taller.agent import grounding

        words = _content_words(text)
        if words and not any(word in grounding.normalize(standalone) for word in words):
            # It dropped the file and every word of the turn: it is another request ("enséñame
            # cómo reconstruye cero.png" came back as the progress question before it).
            return text
        # The rewrite dropped a number, a quote or a file the user just wrote ("now with beam 5"):
        # keep the turn itself beside it, so the arguments are read from what was said.
        return f"{standalone} {text}"
    return standalone


def _joins(standalone: str, previous: str, text: str) -> bool:
    """Whether ``standalone`` is ``previous`` and ``text`` (of four words or more) put side by side:
    nearly all the words of both (nine in ten), and nearly as many words as both together. Files and links do not count:
    a rewrite may drop the earlier one ("¿es un perro o un gato? <the next turn>")."""
    from taller.agent import grounding

    def words(sentence: str) -> list[str]:
        return re.findall(r"\w+", grounding.normalize(PATHISH.sub(" ", sentence)))

    rewritten, before, turn = words(standalone), words(previous), words(text)
    if len(before) < 3 or len(turn) < 4:
        return False  # "by year?" joined to its question is the rewrite it needs
    present = set(rewritten)

    def kept(part: list[str]) -> float:
        return sum(word in present for word in part) / len(part)

    return (kept(before) >= JOINED_SHARE and kept(turn) >= JOINED_SHARE
            and len(rewritten) >= JOINED_SHARE * (len(before) + len(turn)))


# Share of each request's words a rewrite keeps, and of their combined length, from which it is
# the two side by side: a rewrite that replaces a value drops the old one and the turn's cue words.
JOINED_SHARE = 0.9


def _superseded(earlier: str, previous: str) -> bool:
    """Whether ``previous`` is ``earlier`` asked again with a value changed ("How many albums does
    Led Zeppelin have?" after "… Iron Maiden …", by a correction or an "and …?"). Shown both, a
    small model rewrites the next turn from the older one."""
    from taller.agent import grounding

    old, new = (set(re.findall(r"\w{3,}", grounding.normalize(text))) for text in (earlier, previous))
    if not (old and new):
        return False
    # Or most of the older one is inside the previous, which went on from it ("How many albums does
    # Led Zeppelin have in the store? and how many tracks in total across them?").
    return (len(old & new) / len(old | new) >= SUPERSEDED_OVERLAP
            or len(old & new) / len(old) >= SUPERSEDED_CONTAINED)


# Share of words two requests have in common (of all their words) from which the newer one is the
# older asked again: one or two values changed in a question of five to ten words.
SUPERSEDED_OVERLAP = 0.5
# Share of the older request's words found in the previous one from which the previous one holds it.
SUPERSEDED_CONTAINED = 0.7


def _content_words(text: str) -> set[str]:
    """Words of five letters or more that are not follow-up cues ("métricas", "clasificador")."""
    from taller.agent import grounding

    stripped = _REFERENCE.sub(" ", _CONTINUATION.sub(" ", text))
    return {word for word in re.findall(r"[^\W\d_]{5,}", grounding.normalize(stripped))} - {"again", "nuevo", "hazlo"}


def _copies_an_earlier_turn(text: str, standalone: str, earlier: Sequence[str]) -> bool:
    """The rewrite is an earlier request, unchanged, and shares none of the words that carry this
    turn's own meaning ("do it again" may copy the last request; "enséñame las métricas de ese
    clasificador" may not)."""
    from taller.agent import grounding

    folded = grounding.normalize(standalone).strip(" ?¿!¡.")
    if not any(folded == grounding.normalize(turn).strip(" ?¿!¡.") for turn in earlier if turn):
        return False
    words = _content_words(text)
    return bool(words) and not any(word in folded for word in words)


# A file, a path or a link, as the user wrote it ("labels/house_02.png", "https://youtu.be/…").
PATHISH = re.compile(r"(?:\b[a-z][a-z0-9+.-]*://\S+|[\w~./-]+\.[A-Za-z]{2,5}\b)", re.I)
# A bare YouTube id: 11 characters with a digit, "_" or "-", or an upper-case letter after another
# letter ("aircAruvnKk"), so not an 11-letter word ("autoencoder", "Transformer") nor lower-case
# words joined by hyphens ("fine-tuning", "end-to-end").
VIDEO_ID = re.compile(r"(?<![\w/.-])(?=[A-Za-z0-9_-]{11}(?![\w/.-]))(?![a-z]+(?:-[a-z]+)+(?![\w/.-]))"
                      r"(?=[A-Za-z0-9_-]{0,10}[0-9_-]|[A-Za-z0-9_-]{0,9}[A-Za-z][A-Za-z0-9_-]{0,9}[A-Z])"
                      r"[A-Za-z0-9_-]{11}")


def _keeps_what_the_turn_says(text: str, standalone: str) -> bool:
    """Every number, quoted text, file and link of ``text`` is still in ``standalone``, unchanged."""
    from collections import Counter

    from taller.agent import grounding

    if Counter(grounding.number_mentions(text)) - Counter(grounding.number_mentions(standalone)):
        return False
    if any(path not in standalone for path in PATHISH.findall(text) + VIDEO_ID.findall(text)):
        return False  # "labels/house_02.png" shortened to "house_02.png" names another file
    folded = grounding.normalize(standalone)
    return all(grounding.normalize(span) in folded for span in grounding.quoted_spans(text))


def inherited(tool: str, context: ThreadContext, required: Sequence[str], args: dict[str, Any],
              refers: bool = False) -> dict[str, Any]:
    """Required arguments of ``tool`` that ``args`` lacks and the last call of the same tool had;
    of any tool when the turn points back (``refers``: "how old does she look?" after the pet
    classifier's photo)."""
    last = context.last_call
    if not last or (last.get("tool") != tool and not refers):
        return {}
    previous = last.get("args") or {}
    return {name: previous[name] for name in required
            if name not in args and name in CARRY_OVER and name in previous}


# A playlist or channel link: many videos, not one.
_YOUTUBE_COLLECTION = re.compile(r"[?&]list=|youtube\.com/(?:@|channel/|c/|user/)", re.I)


def _many_videos(source: str) -> bool:
    """Whether ``source`` (what add_video was given) names many videos: a playlist or channel
    link, or a folder (a path ending in "/" or whose last part has no extension)."""
    text = str(source).strip()
    if _YOUTUBE_COLLECTION.search(text):
        return True
    if "://" in text or VIDEO_ID.fullmatch(text):
        return False
    return text.endswith(("/", "\\")) or "." not in text.rstrip("/").rsplit("/", 1)[-1]


def sticky(tool: str, context: ThreadContext, args: dict[str, Any]) -> dict[str, Any]:
    """The conversation's current database or video (``ToolSpec.sticky_fields``) that ``args``
    lack, from the last call of any tool: after "resume el vídeo kCc8FmEb1nY", "¿qué dice sobre
    BERT?" asks that video."""
    from taller.tools import registry

    spec = registry.TOOLS.get(tool)
    last = context.last_call or {}
    previous = dict(last.get("args") or {})
    if spec is None:
        return {}
    if last.get("tool") == "add_video" and previous.get("url_or_path") and not _many_videos(previous["url_or_path"]):
        # The video just added is the subject; a playlist, a channel or a folder is not one
        # video ("¿en qué vídeo explican X?" after adding a playlist asks all of them).
        previous.setdefault("video", previous["url_or_path"])
    return {name: previous[name] for name in spec.sticky_fields
            if args.get(name) in (None, "") and previous.get(name) not in (None, "")}


def carry_over(decision: dict[str, Any], context: ThreadContext, required: Sequence[str],
               refers: bool = False, request: str = "") -> dict[str, Any]:
    """Fill required arguments the decision lacks from the last call of the same tool, the
    conversation's current database or video from the last call of any tool, and the values a
    correction or "the same number" keeps (:func:`kept_values`)."""
    tool = decision.get("tool")
    if not tool:
        return decision
    args = dict(decision.get("args") or {})
    required_args = inherited(tool, context, required, args, refers)
    inherited_args = {**kept_values(tool, request, context, args), **sticky(tool, context, args), **required_args}
    if not inherited_args:
        return decision
    out = {**decision, "args": {**args, **inherited_args}, "carried_over": sorted(inherited_args)}
    if required_args:
        out.pop("error", None)  # the missing argument was the error ("which file?")
    return out
