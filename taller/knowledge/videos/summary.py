"""Summarising a whole video: map-reduce with a timestamp for every section.

Bounded sections → one summary each (map), consecutive summaries combined in bounded batches
until they fit (hierarchical reduce), then an overview; every section keeps a timestamp, the moment
its summary's main point is said (:func:`point_at_what_they_say`). Each
prompt stays under a character budget derived from the model's context
(:func:`~taller.knowledge.videos.answer.context_budget`), so multi-hour videos never overflow it.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any, Sequence

from taller.errors import ToolError
from taller.knowledge.transcripts import Cue, Transcript, format_time, youtube_url
from taller.knowledge.videos.answer import context_budget
from taller.knowledge.videos.library import (check_cancelled, get_video_collection, list_videos, load_saved,
                                             resolve_or_add, with_added)
from taller.progress import emit

if TYPE_CHECKING:  # pragma: no cover
    from langchain_core.language_models import BaseChatModel

MAP_SYSTEM = (
    "You summarise one part of a video transcript. Write 2 or 3 sentences with its main points, "
    "using only what the transcript says, in the transcript's language. No preamble.")
REDUCE_SYSTEM = (
    "You combine summaries of consecutive parts of a video into one summary of 2 to 4 sentences "
    "that keeps the most important points. Use only what the summaries say. No preamble.")
OVERVIEW_SYSTEM = (
    "You write the overview of a whole video from the summaries of its parts, in order: 3 to 5 "
    "sentences on what the video covers. Use only what the summaries say. No preamble.")


def _cues_from_chunks(collection: Any, key: str) -> list[Cue]:
    """Rebuild a transcript from stored chunks (no saved JSON): non-overlapping chunks in order."""
    found = collection.get(where={"video": key}, include=["documents", "metadatas"])
    rows = sorted(zip(found["metadatas"], found["documents"]), key=lambda row: float(row[0]["start"]))
    cues: list[Cue] = []
    last_end = -1.0
    for metadata, document in rows:
        if float(metadata["start"]) >= last_end - 1.0:
            cues.append(Cue(float(metadata["start"]), float(metadata["end"]), document))
            last_end = float(metadata["end"])
    return cues


def split_sections(cues: Sequence[Cue], max_chars: int) -> list[tuple[float, float, str]]:
    """Consecutive cues grouped into sections of at most ``max_chars`` characters."""
    sections: list[tuple[float, float, str]] = []
    current: list[Cue] = []
    size = 0
    for cue in cues:
        if current and size + len(cue.text) + 1 > max_chars:
            sections.append((current[0].start, max(c.end for c in current), " ".join(c.text for c in current)))
            current, size = [], 0
        current.append(cue)
        size += len(cue.text) + 1
    if current:
        sections.append((current[0].start, max(c.end for c in current), " ".join(c.text for c in current)))
    return sections


def _llm(model: BaseChatModel | None, system: str, prompt: str) -> str:
    from langchain_core.messages import HumanMessage, SystemMessage

    from taller.llm import complete

    return complete([SystemMessage(content=system), HumanMessage(content=prompt)], model=model).strip()


def _render(items: Sequence[dict[str, Any]], limit: int) -> str:
    return "\n\n".join(f"[{format_time(item['start'])}–{format_time(item['end'])}] {item['summary'][:limit]}"
                       for item in items)


# Cues per window when looking for where a section's summary is said (~96 words, ~40 s at a
# speaking pace). A summary condenses a minute or more of speech into two or three sentences: a
# window of three cues matched one clause of it, often a passing mention, and pointed away from
# the passage that develops the point (docs/benchmarks.md, "Summaries that point where the point
# is made": 3 → 8 cues took the bench's check from 12/14 to 14/14 on the speeches it was chosen
# on, and from 13/22 to 19/22 on the benchmark's four transcripts, held out).
_WINDOW_CUES = 8


def point_at_what_they_say(items: list[dict[str, Any]], cues: Sequence[Cue], video_id: str | None) -> None:
    """Give every summary item the moment its summary is said, not only where its section starts.

    A section spans minutes; its summary's main point may come late in it. Each item's ``moment``
    (and the ``time``/``url`` shown) becomes the start of the window of its section (a few cues)
    whose MiniLM embedding is closest to the summary; ``start``/``end`` stay the section's span.
    """
    from taller.embeddings import embed

    windows: list[tuple[int, float, str]] = []  # (item index, start, text)
    for index, item in enumerate(items):
        inside = [cue for cue in cues if item["start"] <= cue.start < item["end"]]
        for begin in range(0, len(inside), max(1, _WINDOW_CUES - 1)):
            group = inside[begin:begin + _WINDOW_CUES]
            windows.append((index, group[0].start, " ".join(cue.text for cue in group)))
    if not windows:
        return
    summaries = embed([item["summary"] for item in items])
    vectors = embed([text for _, _, text in windows])
    best: dict[int, tuple[float, float]] = {}
    for (index, start, _), vector in zip(windows, vectors):
        score = float(vector @ summaries[index])
        if index not in best or score > best[index][0]:
            best[index] = (score, start)
    for index, (_, start) in best.items():
        item = items[index]
        item["moment"] = round(start, 1)
        item["time"] = format_time(start)
        item["url"] = youtube_url(video_id, start) if video_id else None


def summarize(video: str | None = None, max_chars: int | None = None, cancel_event: Any = None,
              model: BaseChatModel | None = None) -> dict[str, Any]:
    """Map-reduce summary of a whole video (default: the one added last), a timestamp per section.

    A ``video`` that is a YouTube URL/id or a transcript file not added yet is added first
    (:func:`~taller.knowledge.videos.library.resolve_or_add`); the result then has ``added``.
    ``model`` writes the summaries; the ``summarize_video`` tool passes the agent's, and None
    means :func:`taller.llm.get_chat_model`.
    """
    collection = get_video_collection()
    key, added = resolve_or_add(video, cancel_event=cancel_event)
    if key is None:
        videos = list_videos()
        if not videos:
            raise ToolError("no video to summarise: add one first with add_video")
        key = videos[0]["video"]
    saved = load_saved(key)
    if saved is not None:
        transcript = saved[0]
    else:
        cues = _cues_from_chunks(collection, key)
        if not cues:
            raise ToolError(f"no transcript stored for {key}; add the video again with add_video")
        first = collection.get(where={"video": key}, limit=1, include=["metadatas"])["metadatas"][0]
        transcript = Transcript(key=key, cues=cues, video_id=first.get("video_id") or None,
                                source=first.get("source", ""), title=first.get("title"))
    return with_added(summarize_transcript(transcript, max_chars=max_chars, cancel_event=cancel_event,
                                           model=model), added)


def summarize_transcript(transcript: Transcript, max_chars: int | None = None,
                         cancel_event: Any = None, model: BaseChatModel | None = None) -> dict[str, Any]:
    """Map-reduce summary of ``transcript``; every LLM prompt stays under ``max_chars``
    characters of transcript or summaries (default: half the configured context window)."""
    if not transcript.cues:
        raise ToolError(f"the transcript of {transcript.name} is empty")

    budget = max_chars or context_budget()
    # Room for the instructions and the reply inside the budget.
    section_chars = max(500, int(budget * 0.85))
    sections = split_sections(transcript.cues, section_chars)
    total_steps = len(sections)
    emit({"type": "progress", "source": "summarize_video", "step": 0, "total": total_steps,
          "message": f"summarising {transcript.name} in {len(sections)} sections"})

    def stamp(item: dict[str, Any]) -> dict[str, Any]:
        item["time"] = format_time(item["start"])
        item["url"] = youtube_url(transcript.video_id, item["start"]) if transcript.video_id else None
        return item

    # Map: every section of the transcript, not only what retrieval would pick.
    mapped: list[dict[str, Any]] = []
    for number, (start, end, text) in enumerate(sections, 1):
        check_cancelled(cancel_event, f"summarising {transcript.name}")
        summary = _llm(model, MAP_SYSTEM, f"Part {number} of {len(sections)} of \"{transcript.name}\", "
                                          f"{format_time(start)} to {format_time(end)}:\n\n{text}")
        mapped.append(stamp({"start": start, "end": end, "summary": summary}))
        emit({"type": "progress", "source": "summarize_video", "step": number, "total": total_steps,
              "message": f"section {number}/{len(sections)} ({format_time(start)})"})

    # Reduce: combine consecutive summaries in batches that fit the budget, level by level.
    level = mapped
    levels = 1
    item_limit = max(200, section_chars // 4)  # a babbling model cannot blow the budget
    max_top_sections = 12
    while len(level) > 1 and (len(_render(level, item_limit)) > section_chars or len(level) > max_top_sections):
        # Bounded batches: by characters (the prompt must fit) and by count (so the top level
        # still has up to `max_top_sections` timestamped sections rather than one).
        per_batch = max(2, math.ceil(len(level) / max_top_sections))
        batches: list[list[dict[str, Any]]] = [[]]
        for item in level:
            candidate = batches[-1] + [item]
            if batches[-1] and (len(candidate) > per_batch or
                                len(_render(candidate, item_limit)) > section_chars):
                batches.append([item])
            else:
                batches[-1] = candidate
        if len(batches) == len(level):
            # Every item alone fills the budget: pair them so the level still shrinks.
            batches = [level[i:i + 2] for i in range(0, len(level), 2)]
        reduced = []
        for batch in batches:
            if len(batch) == 1:
                reduced.append(batch[0])
                continue
            check_cancelled(cancel_event, f"summarising {transcript.name}")
            summary = _llm(model, REDUCE_SYSTEM, f"Consecutive parts of \"{transcript.name}\":\n\n"
                                                 + _render(batch, item_limit))
            reduced.append(stamp({"start": batch[0]["start"], "end": batch[-1]["end"], "summary": summary}))
        level = reduced
        levels += 1

    if len(mapped) == 1:
        overview = mapped[0]["summary"]
    else:
        overview = _llm(model, OVERVIEW_SYSTEM, f"Summaries of the parts of \"{transcript.name}\" "
                                                f"({format_time(transcript.duration)}), in order:\n\n"
                                                + _render(level, item_limit))
    point_at_what_they_say(level, transcript.cues, transcript.video_id)
    lines = [f"{transcript.name} ({format_time(transcript.duration)}): {overview}", ""]
    for item in level:
        where = f"[{item['time']}]({item['url']})" if item["url"] else f"[{item['time']}]"
        lines.append(f"- {where} {item['summary']}")
    citations = [{"video": transcript.key, "start": round(item.get("moment", item["start"]), 1), "time": item["time"],
                  "url": item["url"], "file": None if transcript.video_id else transcript.source,
                  "text": item["summary"]} for item in level]
    return {"summary": "\n".join(lines).strip(), "overview": overview, "video": transcript.key,
            "title": transcript.name, "duration": round(transcript.duration, 1),
            "sections": level, "detailed_sections": mapped if levels > 1 else [],
            "citations": citations, "map_sections": len(mapped), "reduce_levels": levels}
