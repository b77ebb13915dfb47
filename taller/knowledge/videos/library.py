"""The video library: which transcripts are added, their chunks in Chroma, finding a video by name.

* :func:`add_video` / :func:`add_transcript` — chunk, embed (MiniLM) and store in the Chroma
  collection of the configured embedding model, and in its full-text (BM25) index
  (:mod:`taller.knowledge.fulltext`, written and deleted alongside Chroma). Chunk ids are
  ``<video>:<n>``, so adding the same video again changes nothing; a changed transcript or
  chunk setting replaces the old chunks. The transcript itself is kept as JSON under
  ``$TALLER_HOME/videos/`` (the catalog), for summaries and for re-indexing with another
  embedding model (:func:`ensure_indexed`).
* :func:`list_videos`, :func:`load_saved`, :func:`resolve_video` — the catalog, and the key of
  the video a user means by a key, URL, id, file path, title or file name.
* :func:`resolve_or_add` / :func:`with_added` — the same, adding a YouTube URL/id or transcript
  file that is not in the library yet (users mean "summarise <URL>" as one request), and the
  result that says so.
"""

from __future__ import annotations

import hashlib
import json
import re
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Sequence

from taller.config import get_settings
from taller.errors import ToolError
from taller.knowledge.transcripts import (SUPPORTED_SUFFIXES, Transcript, TranscriptError, format_time,
                                          load_transcript, looks_like_url, parse_video_id, youtube_url)
from taller.knowledge.videos.chunking import Chunk, chunk_transcript
from taller.progress import CancelledError, cancel_requested, emit

COLLECTION = "videos"
EMBED_BATCH = 64


def check_cancelled(cancel_event: Any = None, what: str = "the video work") -> None:
    """Raise CancelledError when ``cancel_event`` (or the cancel flag bound to the current tool
    call by the agent, see :func:`taller.progress.reporting_to`) is set."""
    if cancel_requested(cancel_event):
        raise CancelledError(f"{what} was cancelled")


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
    from taller.knowledge import fulltext

    total = len(chunks)
    for begin in range(0, total, EMBED_BATCH):
        check_cancelled(cancel_event, f"adding {transcript.name}")
        batch = chunks[begin:begin + EMBED_BATCH]
        vectors = embed([chunk.text for chunk in batch])
        ids = [f"{transcript.key}:{chunk.index}" for chunk in batch]
        documents = [chunk.text for chunk in batch]
        metadatas = [_chunk_metadata(transcript, chunk, fingerprint) for chunk in batch]
        collection.upsert(ids=ids, embeddings=vectors.tolist(), documents=documents, metadatas=metadatas)
        # The full-text (BM25) index follows Chroma batch by batch: only these rows are written.
        fulltext.add(collection.name, ids, documents, metadatas)
        done = begin + len(batch)
        emit({"type": "progress", "source": source_tool, "step": done, "total": total,
              "message": f"embedded {done}/{total} chunks of {transcript.name}"})


def _stored_state(collection: Any, key: str) -> tuple[int, str | None]:
    """How many chunks of ``key`` the collection holds and their fingerprint."""
    found = collection.get(where={"video": key}, include=["metadatas"])
    fingerprints = {m.get("fingerprint") for m in found["metadatas"] or []}
    return len(found["ids"]), (fingerprints.pop() if len(fingerprints) == 1 else None)


# --- adding ------------------------------------------------------------------------------------

def add_transcript(transcript: Transcript, cancel_event: Any = None) -> dict[str, Any]:
    """Chunk, embed and store a transcript; idempotent. Returns what was done."""
    from taller.knowledge import fulltext

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
            fulltext.delete(collection.name, video=transcript.key)
        _index(collection, transcript, chunks, fingerprint, cancel_event=cancel_event)
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

def _find_video(text: str, videos: list[dict[str, Any]]) -> str | None:
    """The key of the added video ``text`` names (key, URL, id, file path, title, file name), or None."""
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
    return None


def _no_match(text: str, videos: list[dict[str, Any]]) -> ToolError:
    shown = 10  # a long library must not flood the reply (or the LLM's context)
    known = ", ".join(f"{item['name']} ({item['video']})" for item in videos[:shown]) or "none yet"
    if len(videos) > shown:
        known += f" and {len(videos) - shown} more"
    return ToolError(f"no added video matches {text!r}, and it is not a YouTube URL or id or a "
                     f".vtt/.srt/.json transcript file to add. Videos in the knowledge base: {known}.")


def resolve_video(video: str | None) -> str | None:
    """The key of the added video meant by ``video`` (key, URL, id, file path, title, file name);
    None for no video; ToolError listing the added videos when nothing matches."""
    if video is None or not str(video).strip():
        return None
    text = str(video).strip()
    videos = list_videos()
    key = _find_video(text, videos)
    if key is None:
        raise _no_match(text, videos)
    return key


def _addable(text: str) -> bool:
    """Whether ``text`` names something :func:`add_video` can load, rather than title words.

    An 11-character plain word ("autoencoder", "Transformer") is title words, not a YouTube id:
    real ids have digits, ``-``, ``_`` or capitals inside. A path is recognised by its suffix or
    a folder separator; :func:`~taller.knowledge.transcripts.load_transcript` then checks it with
    :func:`taller.paths.check_input_path` like every path from the LLM.
    """
    if Path(text).suffix.lower() in SUPPORTED_SUFFIXES or "/" in text or text.startswith("~"):
        return True
    if looks_like_url(text):
        return True
    return bool(parse_video_id(text)) and not re.fullmatch(r"[A-Z]?[a-z]+", text)


def resolve_or_add(video: str | None, cancel_event: Any = None) -> tuple[str | None, dict[str, Any] | None]:
    """The key of the video meant by ``video``, adding it first when it is a YouTube URL/id or a
    transcript file not in the library yet: ``(key, add_video's result or None)``.

    Users mean "summarise <URL>" as one request, so the question and summary tools call this
    instead of making the LLM plan an add_video step first. A video already added (by key, URL,
    path or title) is never re-added. Adding reports the same progress and is cancellable like
    :func:`add_video`; when it fails, nothing is half-added and the error names the video.
    """
    if video is None or not str(video).strip():
        return None, None
    text = str(video).strip()
    videos = list_videos()
    key = _find_video(text, videos)
    if key is not None:
        return key, None
    if not _addable(text):
        raise _no_match(text, videos)
    try:
        added = add_video(text, cancel_event=cancel_event)
    except ToolError as exc:  # a cancel (CancelledError) is not a ToolError: it passes unchanged
        raise ToolError(f"{text} is not in the video knowledge base yet, and adding it failed: {exc}") from exc
    return added["video"], added


def with_added(result: dict[str, Any], added: dict[str, Any] | None) -> dict[str, Any]:
    """``result`` saying that ``added`` (an :func:`add_video` result) was added first: an
    ``added`` field, and a first sentence of ``summary`` that says so."""
    if not added:
        return result
    note = (f"Added {added['name']} to the video knowledge base first "
            f"({added['duration_text']} of transcript in {added['chunks']} chunks).")
    return {**result, "summary": f"{note}\n\n{result.get('summary', '')}".strip(),
            "added": {"video": added["video"], "title": added["name"], "chunks": added["chunks"],
                      "url": added.get("url"), "source": added.get("source")}}


def ensure_indexed(collection: Any, key: str | None) -> None:
    """Re-embed saved transcripts missing from this collection (e.g. after changing the model)."""
    keys = [key] if key else [item["video"] for item in list_videos()]
    for video in keys:
        saved = load_saved(video)
        if saved is None:
            continue
        if collection.get(where={"video": video}, limit=1, include=[])["ids"]:
            continue
        add_transcript(saved[0])
