"""Answering a question from the transcripts: a sentence that states the fact, cited where it is said.

:func:`ask`, step by step:

1. **Retrieve** (dense + full-text, de-duplicated, optionally one video) and score every chunk by
   its best short passage (:func:`~taller.knowledge.retrieval.add_evidence`). A question asked in
   the other language than the transcripts ("¿qué dijo sobre los impuestos?" about an English
   speech) is translated by the model for retrieval, since MiniLM embeddings and word search only
   match within one language.
2. **Decline without asking** when the best passage is below ``MIN_SCORE``: the transcripts are
   not about this.
3. **Ask for the answer itself**: JSON ``{"excerpt": <number>, "answer": <the answer, in the
   question's language>}`` (``ANSWER_SCHEMA``). A small model told to "cite [n]" replies ``[3]``
   and nothing else; asked for the number first and then the sentence, it writes the fact. (The
   embedded model decodes freely first and under the schema's grammar only when it must:
   :meth:`taller.llm.chat.EmbeddedChatModel.invoke_json`.)
4. **Check the reply** (:func:`check_reply`): it must say something beyond citations, every
   number in it must be in the excerpts (in digits or in words), and when it is in the
   transcript's language most of its words must be there too. A reply that fails is asked again
   once with a stricter prompt; if that fails too the answer is **extractive**: the best passage,
   quoted, with its time. Never an empty answer.
5. **Cite beside the sentence**: the citation goes right after the answer, at the moment the
   passage that says it is spoken (the passage of the shown excerpts closest to the answer and the
   question, with the numbers it states) (a ``youtu.be`` link with ``?t=`` or ``mm:ss`` and the file).

A decline ("the video does not say") always carries the closest passage, whatever the model said.
"""

from __future__ import annotations

import re
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

from taller.config import get_settings
from taller.errors import ToolError
from taller.knowledge.language import detect_language, fold, numbers_in
from taller.knowledge.transcripts import format_time, youtube_url
from taller.knowledge.videos.library import (ensure_indexed, get_video_collection, load_saved, resolve_or_add,
                                             with_added)

if TYPE_CHECKING:  # pragma: no cover
    from langchain_core.language_models import BaseChatModel

TOP_K = 5
# Translate a question asked in the other language than the transcript before searching
# (measured against searching as asked in docs/benchmarks.md; the benchmark turns it off).
TRANSLATE_QUESTIONS = True
# BM25 weight (and the weight of the question's words in choosing a chunk's passage) for a
# transcript the embedding model does not read: English MiniLM on Spanish text ranks passages
# little better than chance, the word index does not care about the language.
WORDS_FIRST_WEIGHT = 1.0
# For those transcripts, words also match by their first letters ("marcharse" finds "marcha"):
# stemming by truncation, since SQLite has no Spanish stemmer. 0 turns it off.
STEM_PREFIX = 5
# How many of the retrieved chunks the model reads, best evidence first, and how many words of
# each (centred on the passage that matched): a short prompt keeps a 2-core answer near 5 s, and
# the passage that matched is where the fact is in nearly every case.
EXCERPTS = 4
EXCERPT_WORDS = 80
# Tokens the answer may take: two sentences fit; a model that starts reciting the excerpt is cut
# (and :func:`salvage` keeps its first complete sentences) instead of costing half a minute.
ANSWER_TOKENS = 90
# Evidence (MiniLM cosine of the best chunk or two-sentence passage) under which the transcript
# is taken as "not about this". Measured on State of the Union transcripts: questions the
# transcript answers score 0.31-0.79, unrelated ones (bread recipes, football, backprop) 0.11-0.27.
MIN_SCORE = 0.30
# When the model gives no usable answer twice, the best passage is quoted (extractive) only if
# it is this close to the question; below, the question is declined. Measured on both halves
# (docs/benchmarks.md): unanswerable questions declined 10 → 40 % (tuning) and 10 → 30 % (held
# out), the facts stated unchanged.
EXTRACTIVE_MIN_SCORE = 0.50
# Share of a reply's own words (not the question's) that must be in the excerpts, when the reply
# is in the transcript's language.
SUPPORTED_WORDS = 0.4
_SNIPPET_CHARS = 300
LANGUAGE_NAMES = {"en": "English", "es": "Spanish"}

ANSWER_SCHEMA = {
    "type": "object",
    "properties": {"excerpt": {"type": "integer", "minimum": 0}, "answer": {"type": "string"}},
    "required": ["excerpt", "answer"],
}
ANSWER_SYSTEM = (
    "You answer a question about a video using only the numbered excerpts of its transcript. "
    "Reply in JSON: \"excerpt\" is the number of the excerpt that answers the question, and "
    "\"answer\" is one or two sentences in {language} that state the answer itself (the fact, "
    "number, name or reason), with no double quotation marks inside it. If none of the excerpts "
    "answers the question, reply "
    "{{\"excerpt\": 0, \"answer\": \"\"}}. Never use outside knowledge.")
STRICT_SYSTEM = ANSWER_SYSTEM + (
    " Your previous reply could not be used. Write the answer as a full sentence that states the "
    "fact with the excerpt's own facts and numbers, never only a number in brackets.")

TRANSLATE_SYSTEM = ("Translate the user's question into {language}. Reply with the translated "
                    "question only.")

EXTRACTIVE_INTRO = {"en": "The transcript says", "es": "La transcripción dice"}
DECLINE = {
    "en": ("The video does not say: {question}", "The added videos do not say: {question}",
           "closest passage"),
    "es": ("El vídeo no lo dice: {question}", "Los vídeos añadidos no lo dicen: {question}",
           "pasaje más cercano"),
}


# --- citations ---------------------------------------------------------------------------------

def citation(metadata: dict[str, Any], text: str, score: float | None = None,
             moment: float | None = None) -> dict[str, Any]:
    """A JSON-able citation: video, start (s), mm:ss, clickable URL (or the file), excerpt.

    ``start`` is ``moment`` (where in the chunk the quoted or best-matching passage begins, a
    couple of seconds early so the viewer hears the sentence from its start) when known, else the
    chunk's start; ``chunk_start``/``end`` give the whole retrieved window.
    """
    chunk_start = float(metadata.get("start", 0.0))
    start = chunk_start if moment is None else max(chunk_start, float(moment) - 2.0)
    video_id = metadata.get("video_id") or None
    out = {"video": metadata.get("video"), "title": metadata.get("title"), "start": round(start, 1),
           "chunk_start": round(chunk_start, 1),
           "end": round(float(metadata.get("end", chunk_start)), 1), "time": format_time(start),
           "url": youtube_url(video_id, start) if video_id else None,
           "file": None if video_id else metadata.get("source"),
           "text": text if len(text) <= _SNIPPET_CHARS else text[:_SNIPPET_CHARS].rsplit(" ", 1)[0] + " …"}
    if score is not None:
        out["score"] = round(float(score), 3)
    return out


def cite_text(item: dict[str, Any]) -> str:
    """How a citation reads inline: ``[mm:ss](url)`` or ``[mm:ss, file]``."""
    if item.get("url"):
        return f"[{item['time']}]({item['url']})"
    name = Path(item["file"]).name if item.get("file") else (item.get("title") or item.get("video"))
    return f"[{item['time']}, {name}]"


# --- text helpers ------------------------------------------------------------------------------

def _words(text: str) -> list[str]:
    return re.findall(r"[a-z0-9]+", fold(text))


def _sentences(text: str) -> list[tuple[int, int]]:
    """(start, end) character spans of the sentences of ``text``."""
    return [(m.start(), m.end()) for m in re.finditer(r"[^.!?…]+(?:[.!?…]+|$)", text) if m.group(0).strip()]


def focus(text: str, offset: int, max_words: int = EXCERPT_WORDS) -> tuple[int, str]:
    """(start offset, text) of at most ``max_words`` words of ``text`` around the sentence at
    ``offset``: that sentence, then the next ones and the one before while they fit."""
    spans = _sentences(text) or [(0, len(text))]
    index = next((i for i, (begin, end) in enumerate(spans) if begin <= offset < end), 0)
    low = high = index
    count = len(text[spans[index][0]:spans[index][1]].split())
    grew = True
    while grew:
        grew = False
        for candidate in (high + 1, low - 1):
            if 0 <= candidate < len(spans):
                size = len(text[spans[candidate][0]:spans[candidate][1]].split())
                if count + size <= max_words and not (low <= candidate <= high):
                    low, high = min(low, candidate), max(high, candidate)
                    count += size
                    grew = True
    begin, end = spans[low][0], spans[high][1]
    words = text[begin:end].split()
    piece = " ".join(words[:max(max_words, 1)]) + (" …" if len(words) > max_words else "")
    return begin, piece.strip()


# --- ask ---------------------------------------------------------------------------------------

def context_budget() -> int:
    """Characters of transcript one prompt may carry: about half the model's context window
    (3 characters per token is conservative for English and Spanish)."""
    return max(2000, int(get_settings().embedded_context * 3 * 0.5))


def _decline(question: str, hits: Sequence[Any], scope: str, reason: str, language: str) -> dict[str, Any]:
    nearest = [citation(h.metadata, h.text, h.extra.get("evidence", h.score), h.extra.get("moment"))
               for h in hits[:3]]
    one, many, closest = DECLINE[language]
    summary = (many if scope == "all videos" else one).format(question=question)
    if nearest:
        passage = hits[0].extra.get("passage") or nearest[0]["text"]
        summary += f" ({closest}: “{passage.strip()}” {cite_text(nearest[0])})"
    return {"summary": summary, "answered": False, "answer": None, "reason": reason,
            "citations": [], "nearest": nearest}


def ask(question: str, video: str | None = None, k: int = TOP_K, hybrid: bool = True,
        min_score: float = MIN_SCORE, model: BaseChatModel | None = None,
        cancel_event: Any = None) -> dict[str, Any]:
    """Answer ``question`` from the transcripts (optionally one video), citing timestamps.

    A ``video`` that is a YouTube URL/id or a transcript file not added yet is added first
    (:func:`~taller.knowledge.videos.library.resolve_or_add`); the result then has ``added``.
    ``model`` writes the answer; the ``ask_video`` tool passes the agent's, and None means
    :func:`taller.llm.get_chat_model` (asked only when the excerpts are close enough).
    """
    question = (question or "").strip()
    if not question:
        raise ToolError("ask_video needs a question")
    collection = get_video_collection()
    key, added = resolve_or_add(video, cancel_event=cancel_event)
    return with_added(_answer(question, collection, key, k, hybrid, min_score, model), added)


def spoken_language(collection: Any, key: str | None, saved: Any, default: str) -> str:
    """The language the transcripts in scope are spoken in: the saved transcript's (its caption
    language, else read from its first cues), or read from a sample of stored chunks."""
    if saved is not None:
        transcript = saved[0]
        if transcript.language and transcript.language[:2].lower() in ("en", "es"):
            return transcript.language[:2].lower()
        return detect_language(" ".join(cue.text for cue in transcript.cues[:60]), default=default)
    sample = collection.get(where={"video": key} if key else None, limit=8, include=["documents"])
    return detect_language(" ".join(sample.get("documents") or []), default=default)


def reads_only_english() -> bool:
    """Whether the configured embedding model is the English-only default (MiniLM)."""
    from taller.embeddings import DEFAULT_MODEL

    return (get_settings().embedding_model or DEFAULT_MODEL).split("/")[-1] == DEFAULT_MODEL


def _retrieve(query: str, collection: Any, key: str | None, k: int, hybrid: bool,
              words_first: bool = False) -> list[Any]:
    """The hits for ``query``, best evidence first. ``words_first`` (text the embedding model
    does not read well) weighs the word index as much as the embedding."""
    from taller.embeddings import embed
    from taller.knowledge.retrieval import LEXICAL_WEIGHT, add_evidence, search

    query_vector = embed([query])[0]
    prefix = STEM_PREFIX if words_first else 0
    hits = search(collection, query, query_vector, k=k, where={"video": key} if key else None, hybrid=hybrid,
                  lexical_weight=WORDS_FIRST_WEIGHT if words_first and hybrid else LEXICAL_WEIGHT, prefix=prefix)
    add_evidence(hits, query_vector, embed, query=query, word_weight=WORDS_FIRST_WEIGHT if words_first else 0.0,
                 prefix=prefix)
    return sorted(hits, key=lambda h: h.extra.get("evidence", h.score), reverse=True)


def translate_question(question: str, language: str, model: BaseChatModel | None) -> str:
    """``question`` in ``language`` ("en"/"es"), by the chat model; the question itself if the
    model gives nothing usable (an empty or runaway reply)."""
    from langchain_core.messages import HumanMessage, SystemMessage

    from taller.llm import complete

    reply = complete([SystemMessage(content=TRANSLATE_SYSTEM.format(language=LANGUAGE_NAMES[language])),
                      HumanMessage(content=question)], model=model)
    reply = reply.strip().strip('"').splitlines()[0].strip() if reply.strip() else ""
    return reply if 0 < len(reply) <= 3 * len(question) + 40 else question


def _answer(question: str, collection: Any, key: str | None, k: int, hybrid: bool, min_score: float,
            model: BaseChatModel | None) -> dict[str, Any]:
    """The answer of :func:`ask` once the video (``key``, None for all) is known to be added."""
    ensure_indexed(collection, key)
    if collection.count() == 0:
        raise ToolError("the video knowledge base is empty: add a video first with add_video "
                        "(a YouTube URL or a .vtt/.srt/.json transcript file)")
    scope = "all videos"
    saved = load_saved(key) if key else None
    if key:
        scope = saved[0].name if saved else key
    clock = time.perf_counter()
    seconds: dict[str, float] = {}
    language = detect_language(question)
    spoken = spoken_language(collection, key, saved, default=language)
    query = question
    if spoken != language and TRANSLATE_QUESTIONS:
        # Embeddings and word search match within one language: search in the transcript's.
        query = translate_question(question, spoken, model)
        seconds["translate"] = round(time.perf_counter() - clock, 2)
    words_first = spoken != "en" and reads_only_english()
    started = time.perf_counter()
    hits = _retrieve(query, collection, key, k, hybrid, words_first=words_first)
    seconds["retrieve"] = round(time.perf_counter() - started, 2)
    best = max((h.extra.get("evidence", h.score) for h in hits), default=-1.0)
    if best < min_score:
        return _decline(question, hits, scope, f"best similarity {best:.2f} is below {min_score:.2f}", language)

    shown = hits[:EXCERPTS]
    excerpts = [focus(hit.text, int(hit.extra.get("passage_offset", 0))) for hit in shown]
    started = time.perf_counter()
    reply, method = _grounded_reply(question, shown, excerpts, language, spoken, model)
    seconds["model"] = round(time.perf_counter() - started, 2)
    result: dict[str, Any] = {"video": key, "best_score": round(best, 3), "language": language,
                              "excerpts": [[round(h.start, 1), round(h.end, 1)] for h in shown],
                              "seconds": seconds}
    if query != question:
        result["search_query"] = query
    if reply == "decline" and method == "no number" and _states_a_quantity(shown[0], question):
        # "how many …?" answered twice without a number, yet the best passage states one
        # ("155,000 members of the Reserve … were activated"): the model missed it, the passage
        # did not. Quote it, as for any reply the model could not put into words.
        reply, method = None, "extractive"
    if reply == "decline":
        reason = ("the excerpts state no quantity for it" if method == "no number"
                  else "the model found no answer in the excerpts")
        out = _decline(question, hits, scope, reason, language)
        out.update(result)
        return out
    if reply is None and best < EXTRACTIVE_MIN_SCORE:
        # Two unusable replies over excerpts that are only loosely about the question: the near
        # miss a small model cannot put into words. Quoting a passage would answer something
        # else; say the video does not say it, with the closest passage.
        out = _decline(question, hits, scope, f"no usable answer, and the best similarity {best:.2f} is "
                       f"below {EXTRACTIVE_MIN_SCORE:.2f}", language)
        out.update(result)
        return out
    if reply is None:
        hit, offset = shown[0], int(shown[0].extra.get("passage_offset", 0))
        answer = f"{EXTRACTIVE_INTRO[language]}: “{(hit.extra.get('passage') or hit.text).strip()}”"
        method = "extractive"
    else:
        number, answer = reply
        hit, offset = where_said(answer, query, number, shown)
    moment = hit.start + (hit.end - hit.start) * offset / max(1, len(hit.text))
    source = citation(hit.metadata, hit.text, hit.extra.get("evidence", hit.score), moment)
    text = f"{answer.rstrip()} {cite_text(source)}"
    result.update({"summary": text, "answered": True, "answer": text, "citations": [source],
                   "method": method})
    return result


def _states_a_quantity(hit: Any, question: str) -> bool:
    """Whether the passage an extractive answer would quote states a number the question does not."""
    return bool(numbers_in(hit.extra.get("passage") or hit.text) - numbers_in(question))


def _prompt(question: str, shown: Sequence[Any], excerpts: Sequence[tuple[int, str]]) -> str:
    blocks = []
    for number, (hit, (_, text)) in enumerate(zip(shown, excerpts), 1):
        blocks.append(f"[{number}] ({format_time(hit.start)}–{format_time(hit.end)}) {text}")
    return "Transcript excerpts:\n\n" + "\n\n".join(blocks) + f"\n\nQuestion: {question}"


def _grounded_reply(question: str, shown: Sequence[Any], excerpts: Sequence[tuple[int, str]], language: str,
                    spoken: str, model: BaseChatModel | None) -> tuple[Any, str]:
    """("decline" | (excerpt number or None, answer) | None when no usable reply came, and how
    it was obtained: "model", "retried" or "extractive")."""
    from langchain_core.messages import HumanMessage, SystemMessage

    from taller.errors import ModelReplyError
    from taller.llm import get_chat_model, invoke_json

    model = model or get_chat_model()
    prompt = _prompt(question, shown, excerpts)
    wants_number = expects_number(question)
    numberless = 0
    for attempt, system in enumerate((ANSWER_SYSTEM, STRICT_SYSTEM)):
        messages = [SystemMessage(content=system.format(language=LANGUAGE_NAMES[language])),
                    HumanMessage(content=prompt)]
        try:
            reply = invoke_json(model, messages, ANSWER_SCHEMA, max_tokens=ANSWER_TOKENS)
        except ModelReplyError as error:
            reply = salvage(error.reply)
            if reply is None:
                continue
        verdict = check_reply(reply, question, [excerpt for _, excerpt in excerpts],
                              same_language=language == spoken)
        if wants_number and isinstance(verdict, tuple) and not numbers_in(verdict[1]):
            numberless += 1  # "how many …?" answered without a number: the excerpts lack it
            continue
        if verdict is not None:
            return verdict, "model" if attempt == 0 else "retried"
    if numberless:
        # A quantity the excerpts never state is the near miss a small model papers over
        # ("how much for the moon program?" → a sentence about the moon program): decline.
        return "decline", "no number"
    return None, "extractive"


_NUMBER_QUESTION = re.compile(
    r"\b(how (?:many|much|old|long|large|big|far|high|often)|what (?:percent|percentage|share|number|amount|"
    r"year|age)|which year|in what year|cuant[oa]s?|que (?:porcentaje|cantidad|numero|edad|ano)|"
    r"en que ano|que tan (?:grande|alto|largo))\b")


def expects_number(question: str) -> bool:
    """Whether ``question`` asks for a quantity (how many, how much, cuántos, what year, …)."""
    return bool(_NUMBER_QUESTION.search(" ".join(_words(question))))


def salvage(text: str) -> dict[str, Any] | None:
    """The fields of a JSON reply cut short by the token limit: the excerpt number and the
    answer's complete sentences (a rambling answer still stated its fact first)."""
    match = re.search(r'"excerpt"\s*:\s*(\d+)\s*,\s*"answer"\s*:\s*"(.*)', text or "", re.S)
    if not match:
        return None
    sentences = re.findall(r".*?[.!?](?=\s|$)", match.group(2).replace('\\"', '"'), re.S)
    answer = "".join(sentences).strip()
    return {"excerpt": int(match.group(1)), "answer": answer} if answer else None


# A reply that says, in words, that the excerpts do not answer.
_NONE_SAID = re.compile(
    r"\b(no_?answer|none of the excerpts|(?:does|do|is|are) not (?:mention|state|say|contain|provide|specif|answer)\w*|"
    r"not (?:mentioned|stated|said|specified)|no (?:se )?(?:menciona|dice|especifica|indica)\w*|"
    r"ninguno de los fragmentos)\b", re.I)


def check_reply(reply: dict[str, Any], question: str, excerpts: Sequence[str], same_language: bool = True) -> Any:
    """"decline", (excerpt number or None, answer) for a usable reply, or None.

    Usable: words beyond citations and numbers; every number it states is stated by the excerpts
    or the question; in the transcript's language, at least ``SUPPORTED_WORDS`` of its own content
    words (not the question's) are in the excerpts."""
    try:
        number: int | None = int(reply.get("excerpt") or 0)
    except (TypeError, ValueError, AttributeError):
        return None
    text = str(reply.get("answer") or "").strip()
    if number == 0 or (_NONE_SAID.search(text) and len(text) < 160):
        return "decline"
    if not 1 <= number <= len(excerpts):
        number = None
    answer = re.sub(r"\[\s*\d+(?:\s*[,;]\s*\d+)*\s*\]", "", text).strip()
    answer = re.sub(r"^(?:answer|respuesta)\s*:\s*", "", answer, flags=re.I).strip()
    if len(re.findall(r"[^\W\d_]{2,}", answer)) < 2:
        return None  # only citations, numbers or one word: not an answer
    if _cut_short(answer):
        return None  # a sentence broken off (a quotation mark ended the JSON string)
    if len(answer) > 600:
        answer = answer[:600].rsplit(" ", 1)[0] + " …"
    stated = numbers_in(" ".join(excerpts)) | numbers_in(question)
    if numbers_in(answer) - stated:
        return None  # a number the transcript does not say
    if same_language:
        asked = set(_words(question))
        own = [w for w in _words(answer) if len(w) >= 4 and w not in asked and w not in _COMMON]
        context = {w[:5] for w in _words(" ".join(excerpts))}
        # Short answers paraphrase ("built" for "assembled"): judge only a reply with a few words
        # of its own, where making things up shows.
        if len(own) >= 3 and sum(w[:5] in context for w in own) / len(own) < SUPPORTED_WORDS:
            return None  # mostly words the excerpts do not have: not taken from them
    return number, answer


# Words a finished sentence does not end on: a reply that stops on one was cut off.
_DANGLING = frozenset("""a an the of to in on at by for with as and or that is was are were his her their its
el la los las un una de del al en con por para que y o su sus es fue como llamado llamada""".split())


def _cut_short(answer: str) -> bool:
    words = _words(answer)
    return bool(words) and not re.search(r"[.!?…)\]»”'\"]\s*$", answer) and words[-1] in _DANGLING


_COMMON = frozenset("""that this with from have will would which their there about said says speaker
president video speech talk also they were been more than into them what when because esta este
estos estas dice dijo tambien sobre segun porque para como pero donde video discurso presidente
""".split())


def where_said(answer: str, query: str, number: int | None, shown: Sequence[Any]) -> tuple[Any, int]:
    """(hit, character offset) of the passage of the shown excerpts that says ``answer``: the one
    most similar to the answer and the (searched) question, preferring the passage that states
    the answer's numbers and the excerpt the model named."""
    import numpy as np

    from taller.embeddings import embed

    from taller.knowledge.retrieval import tokenize

    answer_vector, query_vector = embed([answer, query])
    wanted = numbers_in(answer)
    # The words of the answer and the question count too: they find the passage where the
    # embedding cannot (a Spanish transcript with English MiniLM, a name, a rare word).
    said = set(tokenize(answer)) | set(tokenize(query))
    best: tuple[float, Any, int] | None = None
    for index, hit in enumerate(shown):
        texts, offsets, vectors = hit.extra.get("passages") or ([hit.text], [0], embed([hit.text]))
        scores = np.asarray(vectors) @ answer_vector + 0.5 * (np.asarray(vectors) @ query_vector)
        for text, offset, value in zip(texts, offsets, scores):
            value = float(value) + (0.1 if number == index + 1 else 0.0)
            if said:
                value += 0.5 * len(said & set(tokenize(text))) / len(said)
            if wanted and wanted & numbers_in(text):
                value += 0.2 * len(wanted & numbers_in(text)) / len(wanted)
            if best is None or value > best[0]:
                best = (value, hit, int(offset))
    assert best is not None
    return best[1], best[2]
