"""The video knowledge base: add transcripts, answer questions with cited timestamps, summarise.

* :func:`add_video` — a YouTube URL/id or a ``.vtt``/``.srt``/``.json`` file → transcript →
  time-window chunks (``chunk_seconds`` with ``chunk_overlap_seconds`` of overlap, each keeping
  its start and end) → MiniLM embeddings → the Chroma collection. Chunk ids are
  ``<video>:<n>``, so adding the same video again changes nothing; a changed transcript or chunk
  setting replaces the old chunks. The transcript itself is kept as JSON under
  ``$TALLER_HOME/videos/`` for summaries and for re-indexing with another embedding model.
* :func:`ask` — retrieval (dense + BM25, de-duplicated, optionally one video) → the agent's LLM,
  told to use only the excerpts and cite each claim as ``[n]``; citations become
  ``https://youtu.be/<id>?t=<s>`` links and ``mm:ss``. When the best excerpt is below a
  similarity threshold the LLM is not even asked; when it is asked and answers ``NO_ANSWER``,
  the reply says the transcript does not contain the answer.
* :func:`summarize` — map-reduce over the whole transcript: bounded sections → one summary
  each (map), consecutive summaries combined in bounded batches until they fit (hierarchical
  reduce), then an overview; every section keeps its timestamp. Each LLM prompt stays under a
  character budget derived from the model's context, so multi-hour videos never overflow it.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Sequence

from taller.config import get_settings
from taller.knowledge.transcripts import (Cue, Transcript, TranscriptError, format_time, load_transcript,
                                          parse_video_id, youtube_url)
from taller.progress import CancelledError, cancel_requested, emit
from taller.errors import ToolError

COLLECTION = "videos"
TOP_K = 5
# Evidence (MiniLM cosine of the best chunk or two-sentence passage) under which the transcript
# is taken as "not about this". Measured on State of the Union transcripts: questions the
# transcript answers score 0.31-0.79, unrelated ones (bread recipes, football, backprop) 0.11-0.27.
MIN_SCORE = 0.30
NO_ANSWER = "NO_ANSWER"
EMBED_BATCH = 64
_SNIPPET_CHARS = 300

ANSWER_SYSTEM = (
    "You answer questions about videos using ONLY the numbered transcript excerpts given. "
    "End every sentence that states a fact with the number of the excerpt it comes from in square "
    "brackets, for example [2]. Do not use any outside knowledge. If the excerpts do not contain "
    f"the answer, reply with exactly {NO_ANSWER} and nothing else. Answer briefly, in the language "
    "of the question.")
MAP_SYSTEM = (
    "You summarise one part of a video transcript. Write 2 or 3 sentences with its main points, "
    "using only what the transcript says, in the transcript's language. No preamble.")
REDUCE_SYSTEM = (
    "You combine summaries of consecutive parts of a video into one summary of 2 to 4 sentences "
    "that keeps the most important points. Use only what the summaries say. No preamble.")
OVERVIEW_SYSTEM = (
    "You write the overview of a whole video from the summaries of its parts, in order: 3 to 5 "
    "sentences on what the video covers. Use only what the summaries say. No preamble.")


@dataclass
class Chunk:
    """A time window of a transcript, the unit that is embedded and retrieved."""

    index: int
    start: float
    end: float
    text: str


def check_cancelled(cancel_event: Any = None, what: str = "the video work") -> None:
    """Raise CancelledError when ``cancel_event`` (or the cancel flag bound to the current tool
    call by the agent, see :func:`taller.progress.reporting_to`) is set."""
    if cancel_requested(cancel_event):
        raise CancelledError(f"{what} was cancelled")


# --- chunking ----------------------------------------------------------------------------------

def chunk_cues(cues: Sequence[Cue], seconds: float, overlap: float) -> list[Chunk]:
    """Group cues into windows of ``seconds`` that start every ``seconds - overlap`` seconds.

    A window holds every cue that starts inside it (a cue is never cut, so a chunk may end a
    little after the window); the next window starts at the first cue at or after
    ``window start + step``, so consecutive chunks share about ``overlap`` seconds of speech.
    """
    import bisect

    if seconds <= 0:
        raise ToolError(f"chunk_seconds must be positive, got {seconds}")
    if overlap < 0 or overlap >= seconds:
        raise ToolError(f"chunk_overlap_seconds must be between 0 and chunk_seconds ({seconds}), got {overlap}")
    cues = sorted(cues, key=lambda cue: cue.start)
    starts = [cue.start for cue in cues]
    step = seconds - overlap
    chunks: list[Chunk] = []
    i = 0
    while i < len(cues):
        window_start = cues[i].start
        j = bisect.bisect_left(starts, window_start + seconds, lo=i + 1)
        members = cues[i:j]
        chunks.append(Chunk(len(chunks), members[0].start, max(cue.end for cue in members),
                            " ".join(cue.text for cue in members)))
        if j >= len(cues):
            break
        i = max(i + 1, bisect.bisect_left(starts, window_start + step, lo=i))
    return chunks


def chunk_transcript(transcript: Transcript, seconds: float | None = None,
                     overlap: float | None = None) -> list[Chunk]:
    settings = get_settings()
    return chunk_cues(transcript.cues, settings.chunk_seconds if seconds is None else seconds,
                      settings.chunk_overlap_seconds if overlap is None else overlap)


# --- storage -----------------------------------------------------------------------------------

def collection_name(model: str | None = None) -> str:
    """One collection per embedding model: vectors of different models must never mix."""
    model = model or get_settings().embedding_model
    if model in ("all-MiniLM-L6-v2", "sentence-transformers/all-MiniLM-L6-v2"):
        return COLLECTION
    slug = re.sub(r"[^A-Za-z0-9]+", "-", Path(model).name if "/" not in model or Path(model).exists() else model)
    digest = hashlib.sha1(model.encode("utf-8")).hexdigest()[:6]
    return f"{COLLECTION}-{slug.strip('-').lower()[:40]}-{digest}"


def get_video_collection() -> Any:
    """The Chroma collection of transcript chunks for the configured embedding model."""
    from taller.knowledge.store import get_collection

    model = get_settings().embedding_model
    try:
        return get_collection(collection_name(model), metadata={"embedding_model": model})
    except Exception as exc:  # a damaged folder or an unreachable server: say which
        where = get_settings().chroma_url or get_settings().chroma_dir
        raise ToolError(f"cannot open the video collection in Chroma at {where}: "
                        f"{type(exc).__name__}: {exc}") from exc


def _catalog_dir() -> Path:
    return get_settings().home / "videos"


def _catalog_path(key: str) -> Path:
    return _catalog_dir() / f"{re.sub(r'[^A-Za-z0-9_-]', '_', key)}.json"


def _save_transcript(transcript: Transcript, info: dict[str, Any]) -> None:
    folder = _catalog_dir()
    folder.mkdir(parents=True, exist_ok=True)
    data = transcript.to_dict()
    data.update(info)
    path = _catalog_path(transcript.key)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(data, ensure_ascii=False), encoding="utf-8")
    tmp.replace(path)  # atomic: a crash never leaves half a catalog entry


def load_saved(key: str) -> tuple[Transcript, dict[str, Any]] | None:
    """The saved transcript and its catalog fields, or None."""
    path = _catalog_path(key)
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return None
    info = {k: data.pop(k) for k in ("added_at", "chunks", "chunk_seconds", "chunk_overlap_seconds",
                                     "fingerprint") if k in data}
    return Transcript.from_dict(data), info


def list_videos() -> list[dict[str, Any]]:
    """Every added video (newest first) with title, source, duration and chunk count."""
    out = []
    folder = _catalog_dir()
    if not folder.is_dir():
        return out
    for path in folder.glob("*.json"):
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError):
            continue  # a damaged entry must not hide the others
        cues = data.get("cues") or []
        out.append({"video": data.get("key"), "title": data.get("title"), "name": data.get("title") or
                    (Path(data["source"]).name if data.get("source") and not data.get("video_id") else data.get("key")),
                    "channel": data.get("channel"), "source": data.get("source"), "video_id": data.get("video_id"),
                    "language": data.get("language"), "chunks": data.get("chunks"),
                    "duration": max((c[1] for c in cues), default=0.0), "added_at": data.get("added_at", "")})
    out.sort(key=lambda item: item["added_at"], reverse=True)
    return out


def _fingerprint(chunks: Sequence[Chunk], model: str) -> str:
    digest = hashlib.sha1(model.encode("utf-8"))
    for chunk in chunks:
        digest.update(f"{chunk.start:.3f}|{chunk.end:.3f}|{chunk.text}\n".encode("utf-8"))
    return digest.hexdigest()


def _chunk_metadata(transcript: Transcript, chunk: Chunk, fingerprint: str) -> dict[str, Any]:
    # Chroma metadata values must be str/int/float/bool: no None.
    return {"video": transcript.key, "video_id": transcript.video_id or "", "title": transcript.name,
            "source": transcript.source, "index": chunk.index, "start": float(chunk.start),
            "end": float(chunk.end), "fingerprint": fingerprint}


def _index(collection: Any, transcript: Transcript, chunks: Sequence[Chunk], fingerprint: str,
           source_tool: str = "add_video", cancel_event: Any = None) -> None:
    """Embed and store ``chunks`` in batches, reporting progress; cancellable between batches
    (a cancelled video has a partial set of chunks and no catalog entry, so adding it again
    replaces them)."""
    from taller.embeddings import embed
    from taller.knowledge.retrieval import bump_generation

    total = len(chunks)
    for begin in range(0, total, EMBED_BATCH):
        check_cancelled(cancel_event, f"adding {transcript.name}")
        batch = chunks[begin:begin + EMBED_BATCH]
        vectors = embed([chunk.text for chunk in batch])
        collection.upsert(ids=[f"{transcript.key}:{chunk.index}" for chunk in batch],
                          embeddings=vectors.tolist(), documents=[chunk.text for chunk in batch],
                          metadatas=[_chunk_metadata(transcript, chunk, fingerprint) for chunk in batch])
        done = begin + len(batch)
        emit({"type": "progress", "source": source_tool, "step": done, "total": total,
              "message": f"embedded {done}/{total} chunks of {transcript.name}"})
    bump_generation()


def _stored_state(collection: Any, key: str) -> tuple[int, str | None]:
    """How many chunks of ``key`` the collection holds and their fingerprint."""
    found = collection.get(where={"video": key}, include=["metadatas"])
    fingerprints = {m.get("fingerprint") for m in found["metadatas"] or []}
    return len(found["ids"]), (fingerprints.pop() if len(fingerprints) == 1 else None)


# --- add ---------------------------------------------------------------------------------------

def add_transcript(transcript: Transcript, cancel_event: Any = None) -> dict[str, Any]:
    """Chunk, embed and store a transcript; idempotent. Returns what was done."""
    from taller.knowledge.retrieval import bump_generation

    settings = get_settings()
    if not transcript.cues:
        raise TranscriptError(f"the transcript of {transcript.name} is empty: there is nothing to add")
    chunks = chunk_transcript(transcript)
    model = settings.embedding_model
    fingerprint = _fingerprint(chunks, model)
    collection = get_video_collection()
    stored, stored_fingerprint = _stored_state(collection, transcript.key)
    unchanged = stored == len(chunks) and stored_fingerprint == fingerprint
    if not unchanged:
        if stored:
            # The transcript or the chunk settings changed: replace, never mix old and new chunks.
            collection.delete(where={"video": transcript.key})
            bump_generation()
        try:
            _index(collection, transcript, chunks, fingerprint, cancel_event=cancel_event)
        finally:
            bump_generation()
    previous = load_saved(transcript.key)
    added_at = previous[1].get("added_at") if previous and unchanged else None
    _save_transcript(transcript, {
        "added_at": added_at or datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "chunks": len(chunks), "chunk_seconds": settings.chunk_seconds,
        "chunk_overlap_seconds": settings.chunk_overlap_seconds, "fingerprint": fingerprint})
    return {"video": transcript.key, "chunks": len(chunks), "already_present": unchanged,
            "replaced": bool(stored) and not unchanged}


def _describe(transcript: Transcript) -> dict[str, Any]:
    return {"video": transcript.key, "title": transcript.title, "name": transcript.name,
            "channel": transcript.channel, "video_id": transcript.video_id,
            "url": youtube_url(transcript.video_id) if transcript.video_id else None,
            "source": transcript.source, "language": transcript.language,
            "is_generated": transcript.is_generated, "translated": transcript.translated,
            "duration": round(transcript.duration, 1), "duration_text": format_time(transcript.duration),
            "cues": len(transcript.cues)}


def add_video(url_or_path: str, cancel_event: Any = None) -> dict[str, Any]:
    """Add a YouTube video or a transcript file; returns a tool result."""
    transcript = load_transcript(url_or_path)
    done = add_transcript(transcript, cancel_event=cancel_event)
    info = _describe(transcript)
    kind = ""
    if transcript.language:
        kind = f", language {transcript.language}"
        if transcript.is_generated:
            kind += " (YouTube's automatic captions)"
        if transcript.translated:
            kind += " (translated by YouTube)"
    if done["already_present"]:
        summary = (f"{transcript.name} was already in the video knowledge base "
                   f"({done['chunks']} chunks); nothing changed.")
    else:
        verb = "Updated" if done["replaced"] else "Added"
        summary = (f"{verb} {transcript.name}: {info['duration_text']} of transcript in "
                   f"{done['chunks']} chunks{kind}. Ask about it with ask_video or summarise it "
                   f"with summarize_video.")
    return {"summary": summary, **info, "chunks": done["chunks"],
            "already_present": done["already_present"], "replaced": done["replaced"]}


# --- resolving which video ---------------------------------------------------------------------

def resolve_video(video: str | None) -> str | None:
    """The key of the video meant by ``video`` (key, URL, id, file path, title, file name)."""
    if video is None or not str(video).strip():
        return None
    text = str(video).strip()
    videos = list_videos()
    keys = {item["video"] for item in videos}
    if text in keys:
        return text
    video_id = parse_video_id(text)
    if video_id and video_id in keys:
        return video_id
    path = Path(text).expanduser()
    for item in videos:
        if item["source"] and path.name and (item["source"] == str(path.resolve()) or
                                             (not item["video_id"] and Path(item["source"]).name == text)):
            return item["video"]
    lowered = text.lower()
    for exact in (True, False):
        for item in videos:
            names = [n for n in (item["title"], item["name"]) if n]
            if any((n.lower() == lowered) if exact else (lowered in n.lower()) for n in names):
                return item["video"]
    # Chunks from an earlier run or a shared Chroma server may have no catalog entry here.
    collection = get_video_collection()
    for field_name in ("video", "video_id", "title"):
        found = collection.get(where={field_name: video_id if field_name == "video_id" and video_id else text},
                               limit=1, include=["metadatas"])
        if found["ids"]:
            return str(found["metadatas"][0]["video"])
    known = ", ".join(f"{item['name']} ({item['video']})" for item in videos[:10]) or "none yet"
    raise ToolError(f"no added video matches {text!r}. Videos in the knowledge base: {known}. "
                    "Add it first with add_video.")


def _ensure_indexed(collection: Any, key: str | None) -> None:
    """Re-embed saved transcripts missing from this collection (e.g. after changing the model)."""
    keys = [key] if key else [item["video"] for item in list_videos()]
    for video in keys:
        saved = load_saved(video)
        if saved is None:
            continue
        if collection.get(where={"video": video}, limit=1, include=[])["ids"]:
            continue
        add_transcript(saved[0])


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

def _context_budget() -> int:
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
        min_score: float = MIN_SCORE) -> dict[str, Any]:
    """Answer ``question`` from the transcripts (optionally one video), citing timestamps."""
    from langchain_core.messages import HumanMessage, SystemMessage

    from taller.llm import complete
    from taller.embeddings import embed
    from taller.knowledge.retrieval import add_evidence, search

    question = (question or "").strip()
    if not question:
        raise ToolError("ask_video needs a question")
    collection = get_video_collection()
    key = resolve_video(video)
    _ensure_indexed(collection, key)
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
    budget = _context_budget()
    per_excerpt = max(400, budget // max(1, len(hits)))
    blocks = []
    for number, (hit, item) in enumerate(zip(hits, sources), 1):
        text = hit.text if len(hit.text) <= per_excerpt else hit.text[:per_excerpt] + " …"
        blocks.append(f"[{number}] {item['title']}, {item['time']}–{format_time(hit.end)}:\n{text}")
    prompt = ("Transcript excerpts:\n\n" + "\n\n".join(blocks) +
              f"\n\nQuestion: {question}\n\nAnswer with [n] citations, or {NO_ANSWER}.")
    reply = complete([SystemMessage(content=ANSWER_SYSTEM), HumanMessage(content=prompt)])
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


# --- summarize ---------------------------------------------------------------------------------

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


def _llm(system: str, prompt: str) -> str:
    from langchain_core.messages import HumanMessage, SystemMessage

    from taller.llm import complete

    return complete([SystemMessage(content=system), HumanMessage(content=prompt)]).strip()


def _render(items: Sequence[dict[str, Any]], limit: int) -> str:
    return "\n\n".join(f"[{format_time(item['start'])}–{format_time(item['end'])}] {item['summary'][:limit]}"
                       for item in items)


def summarize(video: str | None = None, max_chars: int | None = None, cancel_event: Any = None) -> dict[str, Any]:
    """Map-reduce summary of a whole video with a timestamp per section."""
    collection = get_video_collection()
    key = resolve_video(video)
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
    return summarize_transcript(transcript, max_chars=max_chars, cancel_event=cancel_event)


def summarize_transcript(transcript: Transcript, max_chars: int | None = None,
                         cancel_event: Any = None) -> dict[str, Any]:
    """Map-reduce summary of ``transcript``; every LLM prompt stays under ``max_chars``
    characters of transcript or summaries (default: half the configured context window)."""
    if not transcript.cues:
        raise ToolError(f"the transcript of {transcript.name} is empty")

    budget = max_chars or _context_budget()
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
        summary = _llm(MAP_SYSTEM, f"Part {number} of {len(sections)} of \"{transcript.name}\", "
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
            summary = _llm(REDUCE_SYSTEM, f"Consecutive parts of \"{transcript.name}\":\n\n"
                                          + _render(batch, item_limit))
            reduced.append(stamp({"start": batch[0]["start"], "end": batch[-1]["end"], "summary": summary}))
        level = reduced
        levels += 1

    if len(mapped) == 1:
        overview = mapped[0]["summary"]
    else:
        overview = _llm(OVERVIEW_SYSTEM, f"Summaries of the parts of \"{transcript.name}\" "
                                         f"({format_time(transcript.duration)}), in order:\n\n"
                                         + _render(level, item_limit))
    lines = [f"{transcript.name} ({format_time(transcript.duration)}): {overview}", ""]
    for item in level:
        where = f"[{item['time']}]({item['url']})" if item["url"] else f"[{item['time']}]"
        lines.append(f"- {where} {item['summary']}")
    citations = [{"video": transcript.key, "start": round(item["start"], 1), "time": item["time"],
                  "url": item["url"], "file": None if transcript.video_id else transcript.source,
                  "text": item["summary"]} for item in level]
    return {"summary": "\n".join(lines).strip(), "overview": overview, "video": transcript.key,
            "title": transcript.name, "duration": round(transcript.duration, 1),
            "sections": level, "detailed_sections": mapped if levels > 1 else [],
            "citations": citations, "map_sections": len(mapped), "reduce_levels": levels}
