"""Adding many videos at once: a YouTube playlist or channel, or a folder of transcript files.

:func:`add_many` lists the source, then adds each video through :func:`library.add_video
<taller.knowledge.videos.library.add_video>` (the same fetch, chunking, embedding, errors and
per-chunk progress as adding one video):

* a **playlist** (``youtube.com/playlist?list=…``) or a **channel** (``/@name``, ``/channel/UC…``,
  ``/c/…``, ``/user/…``, optionally ``/videos``, ``/streams`` or ``/shorts``) is listed with
  ``yt-dlp`` (flat: ids and titles only, nothing downloaded), through :func:`list_youtube`, which
  tests replace. A channel is listed newest first. A watch URL with ``v=`` and ``list=`` is one
  video, not the playlist (see :func:`taller.knowledge.transcripts.youtube_collection`);
* a **folder** is searched recursively for ``.vtt``, ``.srt`` and ``.json`` files, in sorted
  order, skipping hidden files and folders and yt-dlp's ``*.info.json`` metadata; several
  languages of one video (yt-dlp's ``Title [ID].en.vtt`` and ``Title [ID].es.vtt``) are added
  once, in the first language of ``video_languages`` there is. Every path is checked with
  :func:`taller.paths.check_input_path`.

Resumable: the progress of each source is a JSON file under ``$TALLER_HOME/videos/ingest/``,
replaced atomically after every video (the listed videos; which are done, which failed and why,
how often they were tried). Adding the same source again continues: videos done before (and
videos already in the library) are skipped; a video whose failure may pass (no network, YouTube
blocking the IP, an unexpected error) is tried again every time, one that YouTube refused for
good (no transcript, private, removed) or a bad file is tried once more, then reported without
trying again; a file changed since is always tried again. A kill at any moment loses at most the
video in progress. Progress is reported with :func:`taller.progress.emit` (``"video 3 of 40:
<title>"`` with counts and an ETA), the work can be cancelled between videos (and inside one, as
:func:`add_video <taller.knowledge.videos.library.add_video>` can), and one failing video never
stops the others; five failures in a row that look like the network or the store (not the
video) stop the run early, keeping the progress, so an offline run does not walk a whole channel.
The result is a plain dict of bounded size.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import threading
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable

from taller.config import get_settings
from taller.errors import ToolError
from taller.knowledge.transcripts import SUPPORTED_SUFFIXES, TranscriptError, youtube_collection
from taller.knowledge.videos import library
from taller.progress import CancelledError, emit

SOURCE_TOOL = "add_video"
STATE_VERSION = 1
MAX_LISTED = 20  # failures (and added videos) listed in a result; the rest are counted
MAX_REASON = 240
STOP_AFTER = 5  # failures in a row that are not about the video itself stop the run
GIVE_UP_AFTER = 2  # tries of a video that failed for good (no transcript, a bad file)
_BRACKETED_ID = re.compile(r"\[([A-Za-z0-9_-]{11})\]")
_VIDEO_ID = re.compile(r"^[A-Za-z0-9_-]{11}$")
# Failures that may pass: worth trying again on every run.
_TRANSIENT = ("offline mode", "blocks transcript requests", "cannot reach youtube", "could not get the transcript",
              "cannot open the video collection")

Lister = Callable[[str, "int | None"], dict[str, Any]]


# --- what the source is --------------------------------------------------------------------------

def classify_source(source: str) -> tuple[str, str] | None:
    """``("playlist" | "channel", canonical URL)``, ``("folder", absolute path)``, or None when
    ``source`` is a single video, a file or anything else (:func:`add_video` handles those).

    A folder is an existing directory, checked with :func:`taller.paths.check_input_path`
    (system folders are refused with a :class:`ToolError`).
    """
    from taller.paths import check_input_path

    text = (source or "").strip()
    if not text:
        return None
    collection = youtube_collection(text)
    if collection:
        return collection
    if "://" in text:
        return None
    candidate = Path(text.strip("'\"")).expanduser()
    try:
        is_dir = candidate.is_dir()
    except OSError:
        return None
    if not is_dir:
        return None
    return "folder", str(check_input_path(text, kind="folder", must_exist=False))


def is_collection(source: str) -> bool:
    """Whether :func:`add_many` (rather than adding one video) is what ``source`` asks for."""
    try:
        return classify_source(source) is not None
    except ToolError:
        return True  # a refused folder: add_many says why


# --- listing --------------------------------------------------------------------------------------

def list_youtube(url: str, limit: int | None = None) -> dict[str, Any]:
    """A playlist's or channel's ``{"title", "entries": [{"id", "title"}]}`` from yt-dlp (flat:
    no video page is opened, nothing is downloaded). ToolError when it cannot be listed."""
    if get_settings().offline:
        raise ToolError(f"cannot list {url}: Taller is in offline mode (TALLER_OFFLINE). Download the "
                        "transcripts on a machine that can reach YouTube into a folder (yt-dlp --skip-download "
                        "--write-subs --write-auto-subs --sub-format vtt URL) and add that folder.")
    try:
        import yt_dlp
    except ImportError:  # pragma: no cover - a declared dependency
        raise ToolError("yt-dlp is not installed (pip install yt-dlp): it lists playlists and channels") from None
    options: dict[str, Any] = {"extract_flat": "in_playlist", "quiet": True, "skip_download": True,
                               "no_warnings": True, "noprogress": True, "socket_timeout": 20,
                               "logger": _Silent()}  # yt-dlp prints errors even when quiet
    if limit:
        options["playlistend"] = int(limit)
    try:
        with yt_dlp.YoutubeDL(options) as ydl:
            info = ydl.extract_info(url, download=False)
    except Exception as exc:  # noqa: BLE001 - yt-dlp's DownloadError and network errors alike
        message = re.sub(r"\x1b\[[0-9;]*m", "", str(exc)).replace("ERROR: ", "").strip().splitlines()
        reason = (message[0] if message else type(exc).__name__).split(" (caused by ")[0][:300]
        raise ToolError(f"cannot list {url} with yt-dlp: {reason}. No network, or YouTube blocks this IP? "
                        "Download the transcripts elsewhere (yt-dlp --skip-download --write-subs --write-auto-subs "
                        "--sub-format vtt URL) into a folder and add the folder.") from None
    info = info or {}
    return {"title": info.get("title"), "entries": list(_flat_entries(info.get("entries") or []))}


class _Silent:
    """A yt-dlp logger that says nothing: failures come back as one ToolError."""

    def debug(self, message: str) -> None:
        pass

    info = warning = error = debug


def _flat_entries(entries: Any, depth: int = 0) -> Any:
    """Video entries of a yt-dlp listing; nested playlists (a channel's tabs) are walked once."""
    for entry in entries:
        if not isinstance(entry, dict):
            continue  # an unavailable video is listed as None
        if entry.get("_type") == "playlist" or (entry.get("entries") is not None and depth == 0):
            if depth == 0:
                yield from _flat_entries(entry.get("entries") or [], depth + 1)
            continue
        video_id = str(entry.get("id") or "")
        if _VIDEO_ID.match(video_id) and entry.get("ie_key") in (None, "Youtube"):
            yield {"id": video_id, "title": entry.get("title")}


def _youtube_items(url: str, limit: int | None, lister: Lister) -> tuple[str | None, list[dict[str, Any]]]:
    listed = lister(url, limit)
    items, seen = [], set()
    for entry in listed.get("entries") or []:
        video_id = str(entry.get("id") or "")
        if not _VIDEO_ID.match(video_id) or video_id in seen:
            continue
        seen.add(video_id)
        items.append({"id": video_id, "title": entry.get("title") or None, "target": video_id})
    return listed.get("title") or None, items[:limit] if limit else items


def _language_rank(path: Path, languages: list[str]) -> int:
    parts = path.name.split(".")
    code = parts[-2].lower() if len(parts) >= 3 else ""
    for rank, wanted in enumerate(languages):
        if code == wanted.lower() or code.startswith(wanted.lower() + "-"):
            return rank
    return len(languages)


def _folder_items(root: Path) -> tuple[list[dict[str, Any]], dict[str, str]]:
    """The transcript files under ``root`` (sorted), and the duplicates left out: other
    languages of a video that has a file in a preferred language ({relative path: reason})."""
    files: list[Path] = []
    for folder, dirs, names in os.walk(root):  # symlinked folders are not followed
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        for name in names:
            if name.startswith(".") or name.lower().endswith(".info.json"):
                continue
            if Path(name).suffix.lower() in SUPPORTED_SUFFIXES:
                files.append(Path(folder) / name)
    files.sort(key=lambda p: p.relative_to(root).as_posix())
    languages = list(get_settings().video_languages or ["en"])
    best: dict[str, Path] = {}
    for path in files:
        bracketed = _BRACKETED_ID.search(path.name)
        if bracketed:
            key = bracketed.group(1)
            if key not in best or _language_rank(path, languages) < _language_rank(best[key], languages):
                best[key] = path
    items, duplicates = [], {}
    for path in files:
        rel = path.relative_to(root).as_posix()
        bracketed = _BRACKETED_ID.search(path.name)
        if bracketed and best[bracketed.group(1)] != path:
            duplicates[rel] = (f"another language of the same video as "
                               f"{best[bracketed.group(1)].relative_to(root).as_posix()}")
            continue
        items.append({"id": rel, "title": path.name, "target": str(path), "stamp": _stamp(path)})
    return items, duplicates


def _stamp(path: Path) -> list[int]:
    try:
        info = path.stat()
    except OSError:
        return [0, 0]
    return [info.st_size, info.st_mtime_ns]


# --- the saved progress ---------------------------------------------------------------------------

def state_path(kind: str, target: str) -> Path:
    """The progress file of one source: ``$TALLER_HOME/videos/ingest/<kind>-<slug>-<hash>.json``."""
    if kind == "playlist":
        name = target.rsplit("list=", 1)[-1]
    elif kind == "channel":
        name = "-".join(target.split("youtube.com/", 1)[-1].split("/"))
    else:
        name = Path(target).name
    slug = re.sub(r"[^A-Za-z0-9]+", "-", name).strip("-").lower()[:48] or kind
    digest = hashlib.sha1(target.encode("utf-8")).hexdigest()[:8]
    return get_settings().home / "videos" / "ingest" / f"{kind}-{slug}-{digest}.json"


def _load_state(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, ValueError):
        return {"damaged": True}
    if not isinstance(data, dict) or not isinstance(data.get("items"), list):
        return {"damaged": True}
    return data


def _save_state(path: Path, state: dict[str, Any]) -> None:
    """Replace the progress file atomically: a kill leaves the old file or the new one, never half."""
    path.parent.mkdir(parents=True, exist_ok=True)
    state["updated_at"] = _now()
    # One temporary name per thread: two runs of one source in a server must not share it.
    tmp = path.with_name(f"{path.name}.{os.getpid()}-{threading.get_ident()}.tmp")
    tmp.write_text(json.dumps(state, ensure_ascii=False, indent=1), encoding="utf-8")
    os.replace(tmp, path)


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def _merge(listed: list[dict[str, Any]], saved: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The listed items in listed order, each with what the saved progress knows about it."""
    known = {item.get("id"): item for item in saved if isinstance(item, dict)}
    out = []
    for item in listed:
        previous = known.get(item["id"]) or {}
        merged = {"status": "pending", "attempts": 0, **previous, **item}
        merged["title"] = item.get("title") or previous.get("title")
        out.append(merged)
    return out


# --- failures -------------------------------------------------------------------------------------

def _short_reason(exc: BaseException) -> str:
    """A failure in one line: the how-to-supply instructions are said once, in the summary."""
    if isinstance(exc, ToolError):
        text = str(exc)
    else:
        text = f"{type(exc).__name__}: {exc}"
    text = text.split(" Download the transcript on a machine", 1)[0]
    text = re.sub(r"\s+", " ", text).strip() or type(exc).__name__
    return text if len(text) <= MAX_REASON else text[:MAX_REASON - 1] + "…"


def _transient(exc: BaseException) -> bool:
    """Whether a failure may pass (network, blocking, the store) rather than being the video's."""
    if not isinstance(exc, TranscriptError):
        return True
    lowered = str(exc).lower()
    return any(marker in lowered for marker in _TRANSIENT)


# --- adding ---------------------------------------------------------------------------------------

def add_many(source: str, cancel_event: Any = None, limit: int | None = None,
             lister: Lister | None = None) -> dict[str, Any]:
    """Add every video of a YouTube playlist or channel, or every transcript file of a folder.

    ``limit`` keeps the first ``limit`` videos listed (a channel lists its newest first).
    ``lister`` replaces :func:`list_youtube` (tests). Resumable, reported and cancellable as the
    module says; returns ``{"summary", "source", "kind", "title", "total", "added", "skipped",
    "failed", "failures", "more_failures", "added_videos", "continued", "state_file", ...}``.
    Raises ToolError when the source cannot be listed (and nothing was saved before), and
    :class:`CancelledError` (the progress saved) when cancelled.
    """
    from taller.paths import check_input_path

    kind_target = classify_source(source)
    if kind_target is None:
        raise ToolError(f"{str(source)[:200]!r} is not a YouTube playlist or channel URL nor a folder of "
                        ".vtt/.srt/.json transcripts")
    kind, target = kind_target
    if limit is not None and limit < 1:
        raise ToolError("limit must be at least 1")
    path = state_path(kind, target)
    saved = _load_state(path)
    notes: list[str] = []
    if saved and saved.get("damaged"):
        notes.append("the saved progress of this source was unreadable, so it starts over (videos already "
                     "in the library are still skipped)")
        saved = None
    duplicates: dict[str, str] = {}
    title: str | None = None
    if kind == "folder":
        root = check_input_path(target, kind="folder", must_exist=False)
        listed, duplicates = _folder_items(root)
        if limit:
            listed = listed[:limit]
        title = root.name
        if not listed and not duplicates:
            raise ToolError(f"no .vtt, .srt or .json transcript files in the folder {root}")
    else:
        try:
            title, listed = _youtube_items(target, limit, lister or list_youtube)
        except ToolError as exc:
            if not saved or not saved.get("items"):
                raise
            # Listed before: continue with that list (the videos may still be fetched).
            notes.append(f"could not list it again ({_short_reason(exc)}); continuing with the list saved before")
            listed = [{k: item.get(k) for k in ("id", "title", "target")} for item in saved["items"]]
            listed = listed[:limit] if limit else listed
            title = saved.get("title")
        if not listed:
            raise ToolError(f"the {kind} {target} lists no videos")
    items = _merge(listed, (saved or {}).get("items") or [])
    state = {"version": STATE_VERSION, "source": target, "kind": kind,
             "title": title or (saved or {}).get("title"), "created_at": (saved or {}).get("created_at") or _now(),
             "items": items}
    # Items listed before but not now (a limit, a video removed from the playlist) are kept.
    listed_ids = {item["id"] for item in items}
    state["items"] = items + [item for item in (saved or {}).get("items") or []
                              if isinstance(item, dict) and item.get("id") not in listed_ids]
    total = len(items)
    done_before = sum(1 for item in items if item.get("status") == "done")
    failed_before = sum(1 for item in items if item.get("status") == "failed")
    continued = ({"done": done_before, "failed": failed_before, "total": total}
                 if saved and (done_before or failed_before) else None)
    _save_state(path, state)
    label = f"the {kind} {title!r}" if title else f"the {kind} {target}"
    if continued:
        emit({"type": "progress", "source": SOURCE_TOOL, "step": done_before, "total": total,
              "message": f"continuing {label}: {done_before} of {total} already added"})

    added: list[dict[str, Any]] = []
    skipped = failed = 0
    failures: list[dict[str, Any]] = []
    skipped_reasons: dict[str, int] = {}
    durations: list[float] = []
    in_a_row = 0
    stopped: str | None = None

    def skip(reason: str) -> None:
        nonlocal skipped
        skipped += 1
        skipped_reasons[reason] = skipped_reasons.get(reason, 0) + 1

    def fail(item: dict[str, Any], reason: str, tried: bool = True) -> None:
        nonlocal failed
        failed += 1
        entry = {("file" if kind == "folder" else "video"): item["id"], "title": item.get("title"),
                 "reason": reason}
        if kind != "folder":
            entry["url"] = f"https://youtu.be/{item['id']}"
        if not tried:
            entry["not_tried_again"] = True
        failures.append(entry)

    for position, item in enumerate(items, 1):
        if kind == "folder" and item.get("status") in ("done", "failed") and item.get("stamp") != item.get("seen_stamp"):
            item.update(status="pending", attempts=0)  # the file changed since: try it again
        if item.get("status") == "done":
            skip("added before")
            continue
        if (item.get("status") == "failed" and not item.get("transient")
                and int(item.get("attempts") or 0) >= GIVE_UP_AFTER):
            fail(item, str(item.get("reason") or "failed before"), tried=False)
            continue
        if kind != "folder" and library.load_saved(item["id"]) is not None:
            item.update(status="done", video=item["id"], note="already in the library")
            _save_state(path, state)
            skip("already in the library")
            continue
        name = item.get("title") or item["id"]
        where = f"{label}, video {position} of {total}"
        try:
            library.check_cancelled(cancel_event, f"adding {label}")
        except CancelledError:
            raise CancelledError(_cancelled_message(label, kind, position - 1, total, len(added))) from None
        remaining = sum(1 for later in items[position - 1:] if later.get("status") != "done")
        eta = round(sum(durations) / len(durations) * remaining, 1) if durations else None
        emit({"type": "progress", "source": SOURCE_TOOL, "step": position, "total": total,
              "message": f"video {position} of {total}: {name}", "added": len(added), "skipped": skipped,
              "failed": failed, "eta_s": eta})
        started = time.monotonic()
        try:
            result = library.add_video(item["target"], cancel_event=cancel_event)
        except CancelledError:
            # The video in progress stays as it was (pending or failed): the next run tries it.
            raise CancelledError(_cancelled_message(label, kind, position - 1, total, len(added))) from None
        except Exception as exc:  # noqa: BLE001 - one video never stops the others
            reason = _short_reason(exc)
            transient = _transient(exc)
            item.update(status="failed", reason=reason, transient=transient,
                        attempts=int(item.get("attempts") or 0) + 1, tried_at=_now(),
                        seen_stamp=item.get("stamp"))
            _save_state(path, state)
            fail(item, reason)
            durations.append(time.monotonic() - started)
            in_a_row = in_a_row + 1 if transient else 0
            if in_a_row >= STOP_AFTER and position < total:
                stopped = (f"stopped after {STOP_AFTER} failures in a row that are not about the videos "
                           f"themselves (the last: {reason}); the progress is saved: add the same {kind} "
                           "again to continue")
                break
            continue
        in_a_row = 0
        durations.append(time.monotonic() - started)
        item.update(status="done", video=result.get("video"), attempts=int(item.get("attempts") or 0) + 1,
                    added_at=_now(), seen_stamp=item.get("stamp"))
        for stale in ("reason", "transient", "note"):
            item.pop(stale, None)
        _save_state(path, state)
        if result.get("already_present"):
            skip("already in the library")
        else:
            added.append({"video": result.get("video"), "title": result.get("name") or name,
                          **({"file": item["id"]} if kind == "folder" else {}), "chunks": result.get("chunks")})
    for _ in duplicates:
        skip("another language of a video in another file")
    pending = sum(1 for item in items if item.get("status") == "pending")
    emit({"type": "progress", "source": SOURCE_TOOL, "step": total, "total": total,
          "message": f"{label}: {len(added)} added, {skipped} skipped, {failed} failed",
          "added": len(added), "skipped": skipped, "failed": failed})
    return _result(kind, target, title, label, total + len(duplicates), added, skipped, skipped_reasons, failed, failures,
                   continued, notes, stopped, pending, path, duplicates)


def _cancelled_message(label: str, kind: str, position: int, total: int, added: int) -> str:
    return (f"adding {label} was cancelled at video {position + 1} of {total} ({added} added in this run); "
            f"the progress is saved: add the same {kind} again to continue")


def _result(kind: str, target: str, title: str | None, label: str, total: int, added: list[dict[str, Any]],
            skipped: int, skipped_reasons: dict[str, int], failed: int, failures: list[dict[str, Any]],
            continued: dict[str, int] | None, notes: list[str], stopped: str | None, pending: int, path: Path,
            duplicates: dict[str, str]) -> dict[str, Any]:
    unit = "files" if kind == "folder" else "videos"
    sentences = [f"Added {len(added)} of {total} {unit} from {label} to the video knowledge base"
                 + (f"; {skipped} skipped ({', '.join(f'{n} {why}' for why, n in skipped_reasons.items())})"
                    if skipped else "")
                 + (f"; {failed} failed" if failed else "") + "."]
    if continued:
        sentences.insert(0, f"Continuing: {continued['done']} of {continued['total']} already added"
                         + (f", {continued['failed']} failed before" if continued["failed"] else "") + ".")
    if failures:
        shown = "; ".join(f"{f.get('file') or f.get('video')}: {f['reason']}" for f in failures[:3])
        sentences.append(f"Failed: {shown}" + (f" and {len(failures) - 3} more" if len(failures) > 3 else "") + ".")
        if kind != "folder":
            languages = ",".join(f"{code}.*" for code in get_settings().video_languages or ["en"])
            sentences.append("For videos YouTube does not give, download the transcripts on a machine that can "
                             f"reach YouTube (`yt-dlp --skip-download --write-subs --write-auto-subs --sub-langs "
                             f"'{languages}' --sub-format vtt -P <folder> {target}`) and add that folder.")
    if stopped:
        sentences.append(stopped[0].upper() + stopped[1:] + ".")
    sentences += [note[0].upper() + note[1:] + "." for note in notes]
    if added:
        sentences.append("Ask about them with ask_video or summarise one with summarize_video.")
    return {
        "summary": " ".join(sentences), "source": target, "kind": kind, "title": title, "total": total,
        "added": len(added), "skipped": skipped, "failed": failed, "pending": pending,
        "added_videos": added[:MAX_LISTED], "more_added": max(0, len(added) - MAX_LISTED),
        "failures": failures[:MAX_LISTED], "more_failures": max(0, len(failures) - MAX_LISTED),
        "skipped_reasons": skipped_reasons,
        "duplicates": dict(list(duplicates.items())[:MAX_LISTED]),
        "continued": continued, "stopped": stopped, "notes": notes, "state_file": str(path),
    }
