"""Answering a question from the transcripts, with every claim cited as a clickable timestamp.

:func:`ask`: retrieval (dense + BM25, de-duplicated, optionally one video) → the chat model it is
given, told to use only the excerpts and cite each claim as ``[n]``; citations become
``https://youtu.be/<id>?t=<s>`` links and ``mm:ss``. When the best excerpt is below a similarity
threshold the model is not even asked; when it is asked and answers ``NO_ANSWER``, the reply says
the transcript does not contain the answer.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

from taller.config import get_settings
from taller.errors import ToolError
from taller.knowledge.transcripts import format_time, youtube_url
from taller.knowledge.videos.library import (ensure_indexed, get_video_collection, load_saved, resolve_or_add,
                                             with_added)

if TYPE_CHECKING:  # pragma: no cover
    from langchain_core.language_models import BaseChatModel

TOP_K = 5
# Evidence (MiniLM cosine of the best chunk or two-sentence passage) under which the transcript
# is taken as "not about this". Measured on State of the Union transcripts: questions the
# transcript answers score 0.31-0.79, unrelated ones (bread recipes, football, backprop) 0.11-0.27.
MIN_SCORE = 0.30
NO_ANSWER = "NO_ANSWER"
_SNIPPET_CHARS = 300

ANSWER_SYSTEM = (
    "You answer questions about videos using ONLY the numbered transcript excerpts given. "
    "End every sentence that states a fact with the number of the excerpt it comes from in square "
    "brackets, for example [2]. Do not use any outside knowledge. If the excerpts do not contain "
    f"the answer, reply with exactly {NO_ANSWER} and nothing else. Answer briefly, in the language "
    "of the question.")


# --- citations ---------------------------------------------------------------------------------

def citation(metadata: dict[str, Any], text: str, score: float | None = None,
             moment: float | None = None) -> dict[str, Any]:
    """A JSON-able citation: video, start (s), mm:ss, clickable URL (or the file), excerpt.

    ``start`` is ``moment`` (where in the chunk the best-matching passage begins, a couple of
    seconds early so the viewer hears the sentence from its start) when known, else the chunk's
    start; ``chunk_start``/``end`` give the whole retrieved window.
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


# --- ask ---------------------------------------------------------------------------------------

def context_budget() -> int:
    """Characters of transcript one prompt may carry: about half the model's context window
    (3 characters per token is conservative for English and Spanish)."""
    return max(2000, int(get_settings().embedded_context * 3 * 0.5))


def _no_answer(question: str, hits: Sequence[Any], scope: str, reason: str) -> dict[str, Any]:
    nearest = [citation(h.metadata, h.text, h.extra.get("evidence", h.score), h.extra.get("moment"))
               for h in hits[:3]]
    where = "The added videos' transcripts do" if scope == "all videos" else f"The transcript of {scope} does"
    summary = f"{where} not contain an answer to: {question}"
    if nearest:
        summary += f" (closest passage: {cite_text(nearest[0])})."
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


def _answer(question: str, collection: Any, key: str | None, k: int, hybrid: bool, min_score: float,
            model: BaseChatModel | None) -> dict[str, Any]:
    """The answer of :func:`ask` once the video (``key``, None for all) is known to be added."""
    from langchain_core.messages import HumanMessage, SystemMessage

    from taller.llm import complete
    from taller.embeddings import embed
    from taller.knowledge.retrieval import add_evidence, search

    ensure_indexed(collection, key)
    if collection.count() == 0:
        raise ToolError("the video knowledge base is empty: add a video first with add_video "
                        "(a YouTube URL or a .vtt/.srt/.json transcript file)")
    scope = "all videos"
    if key:
        saved = load_saved(key)
        scope = saved[0].name if saved else key
    query_vector = embed([question])[0]
    hits = search(collection, question, query_vector, k=k,
                  where={"video": key} if key else None, hybrid=hybrid)
    add_evidence(hits, query_vector, embed)
    best = max((h.extra.get("evidence", h.score) for h in hits), default=-1.0)
    if best < min_score:
        return _no_answer(question, sorted(hits, key=lambda h: h.extra.get("evidence", h.score), reverse=True),
                          scope, f"best similarity {best:.2f} is below {min_score:.2f}")

    sources = [citation(h.metadata, h.text, h.extra.get("evidence", h.score), h.extra.get("moment"))
               for h in hits]
    budget = context_budget()
    per_excerpt = max(400, budget // max(1, len(hits)))
    blocks = []
    for number, (hit, item) in enumerate(zip(hits, sources), 1):
        text = hit.text if len(hit.text) <= per_excerpt else hit.text[:per_excerpt] + " …"
        blocks.append(f"[{number}] {item['title']}, {item['time']}–{format_time(hit.end)}:\n{text}")
    prompt = ("Transcript excerpts:\n\n" + "\n\n".join(blocks) +
              f"\n\nQuestion: {question}\n\nAnswer with [n] citations, or {NO_ANSWER}.")
    reply = complete([SystemMessage(content=ANSWER_SYSTEM), HumanMessage(content=prompt)], model=model)
    if not reply or NO_ANSWER in reply.upper().replace(" ", "_"):
        return _no_answer(question, hits, scope, "the model found no answer in the excerpts")

    cited: list[int] = []

    def link(match: re.Match) -> str:
        numbers = [int(n) for n in re.findall(r"\d+", match.group(0))]
        valid = [n for n in numbers if 1 <= n <= len(sources)]
        for n in valid:
            if n not in cited:
                cited.append(n)
        return " ".join(cite_text(sources[n - 1]) for n in valid)

    answer = re.sub(r"\[(\d+(?:\s*[,;]\s*\d+)*)\]", link, reply).strip()
    citations = [sources[n - 1] for n in cited]
    if not citations:
        # The model ignored the instruction to cite: show every excerpt it was given instead.
        citations = sources
        answer += "\n\nSources: " + ", ".join(cite_text(item) for item in sources)
    return {"summary": answer, "answered": True, "answer": answer, "citations": citations,
            "video": key, "best_score": round(best, 3)}
