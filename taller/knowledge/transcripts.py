"""Video transcripts: fetch them from YouTube or read them from a file, as timed cues.

Sources, all turned into one :class:`Transcript` (a list of :class:`Cue` with start/end seconds):

* a YouTube URL or video id, through ``youtube-transcript-api`` (its 1.x instance API). The
  language priority comes from the ``video_languages`` setting: an original transcript in the
  first wanted language that has one (manual captions before YouTube's generated ones), else a
  YouTube translation into a wanted language, else whatever the video has;
* a local ``.vtt`` (WebVTT, including YouTube's rolling auto-captions that ``yt-dlp`` writes),
  ``.srt`` (SubRip) or ``.json`` file — the JSON that ``youtube-transcript-api`` writes
  (``--format json`` or ``JSONFormatter``: a list of ``{"text", "start", "duration"}``), which is
  how a user whose IP YouTube blocks can still add a video.

Any failure raises :class:`TranscriptError` (a :class:`~taller.tools.base.ToolError`) whose
message says what to do, never a traceback.
"""

from __future__ import annotations

import hashlib
import html
import json
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Iterable, Sequence
from urllib.parse import parse_qs, urlparse

from taller.errors import ToolError

SUPPORTED_SUFFIXES = (".vtt", ".srt", ".json")
# YouTube ids are 11 characters of the URL-safe base64 alphabet.
_VIDEO_ID = re.compile(r"^[A-Za-z0-9_-]{11}$")
# yt-dlp names files "Title [VIDEOID].en.vtt": the id in brackets lets a file cite YouTube links.
_BRACKETED_ID = re.compile(r"\[([A-Za-z0-9_-]{11})\]")
_TIMESTAMP = re.compile(r"^(?:(\d+):)?(\d{1,2}):(\d{1,2})(?:[.,](\d{1,3}))?$")
_TAG = re.compile(r"<[^>]*>")
# Cues longer than this are split (by a maintained splitter) so no chunk is one giant cue.
MAX_CUE_CHARS = 400


class TranscriptError(ToolError):
    """A transcript could not be fetched or read; the message says how to supply one."""


@dataclass
class Cue:
    """One caption: text shown from ``start`` to ``end`` seconds."""

    start: float
    end: float
    text: str


@dataclass
class Transcript:
    """A whole transcript plus what is known about its video."""

    key: str  # stable id in the knowledge base: the YouTube id, or "file-<name>-<hash>"
    cues: list[Cue]
    video_id: str | None = None  # YouTube id when known (gives clickable youtu.be links)
    source: str = ""  # the URL or the file path it came from
    title: str | None = None
    channel: str | None = None
    language: str | None = None
    is_generated: bool | None = None
    translated: bool = False
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def duration(self) -> float:
        return max((cue.end for cue in self.cues), default=0.0)

    @property
    def name(self) -> str:
        """What a person calls this video: its title, else the file name or id."""
        if self.title:
            return self.title
        if self.video_id:
            return self.video_id
        return Path(self.source).name if self.source else self.key

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["cues"] = [[round(c.start, 3), round(c.end, 3), c.text] for c in self.cues]
        return out

    @staticmethod
    def from_dict(data: dict[str, Any]) -> "Transcript":
        data = dict(data)
        cues = [Cue(float(s), float(e), str(t)) for s, e, t in data.pop("cues", [])]
        known = {f for f in Transcript.__dataclass_fields__}
        return Transcript(cues=cues, **{k: v for k, v in data.items() if k in known})


# --- time formatting ---------------------------------------------------------------------------

def format_time(seconds: float) -> str:
    """``mm:ss`` (``h:mm:ss`` from one hour on), as YouTube shows timestamps."""
    total = max(0, int(seconds))
    hours, rest = divmod(total, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes:02d}:{secs:02d}"


def youtube_url(video_id: str, seconds: float = 0.0) -> str:
    """A clickable link that starts the video at ``seconds``."""
    return f"https://youtu.be/{video_id}?t={max(0, int(seconds))}"


def parse_timestamp(text: str) -> float:
    """Seconds of ``HH:MM:SS.mmm``, ``MM:SS.mmm`` or SRT's ``HH:MM:SS,mmm``; ValueError if not."""
    match = _TIMESTAMP.match(text.strip())
    if not match:
        raise ValueError(f"not a timestamp: {text.strip()[:40]!r}")
    hours, minutes, secs, millis = match.groups()
    if int(secs) >= 60 or (hours is not None and int(minutes) >= 60):
        raise ValueError(f"not a timestamp: {text.strip()[:40]!r}")
    fraction = int(millis.ljust(3, "0")) / 1000 if millis else 0.0
    return int(hours or 0) * 3600 + int(minutes) * 60 + int(secs) + fraction


# --- YouTube ids -------------------------------------------------------------------------------

def _youtube_url(text: str) -> Any:
    """``text`` parsed as a URL (``youtube.com/…`` without a scheme too); None when unparsable."""
    if "://" not in text and re.match(r"^(www\.|m\.|music\.)?(youtube\.com|youtu\.be)/", text):
        text = "https://" + text
    try:
        return urlparse(text)
    except ValueError:
        return None


def parse_video_id(text: str) -> str | None:
    """The YouTube id in a URL (watch, youtu.be, shorts, embed, live) or a bare id; else None.

    A watch URL inside a playlist (``watch?v=ID&list=PL…``, ``youtu.be/ID?list=PL…``) is that one
    video, as YouTube plays it: only a pure playlist URL (``/playlist?list=…``, or ``watch?list=…``
    without ``v=``) is a playlist, see :func:`youtube_collection`. Channel URLs (``/@name``,
    ``/channel/UC…``, ``/c/…``, ``/user/…``) are never a video id.
    """
    text = (text or "").strip()
    if _VIDEO_ID.match(text):
        return text
    url = _youtube_url(text)
    if url is None:
        return None
    host = (url.hostname or "").lower()
    if host.endswith("youtu.be"):
        candidate = url.path.strip("/").split("/")[0]
        return candidate if _VIDEO_ID.match(candidate) else None
    if host.endswith("youtube.com") or host.endswith("youtube-nocookie.com"):
        query = parse_qs(url.query)
        if "v" in query and _VIDEO_ID.match(query["v"][0]):
            return query["v"][0]
        parts = [p for p in url.path.split("/") if p]
        if len(parts) >= 2 and parts[0] in ("shorts", "embed", "live", "v", "e") and _VIDEO_ID.match(parts[1]):
            return parts[1]
    return None


# Channel tabs that list videos; any other tab (featured, about, playlists…) means its videos.
_CHANNEL_TABS = ("videos", "streams", "shorts")
_HANDLE = re.compile(r"^@[A-Za-z0-9._%-]{3,100}$")


def youtube_collection(text: str) -> tuple[str, str] | None:
    """``("playlist" | "channel", canonical URL)`` when ``text`` is a YouTube playlist or channel
    URL, else None (a single video, another site, or not a URL).

    * playlist: ``youtube.com/playlist?list=ID`` or ``watch?list=ID`` without ``v=``; a watch URL
      with both ``v=`` and ``list=`` is the single video (:func:`parse_video_id`);
    * channel: ``youtube.com/@name``, ``/channel/UC…``, ``/c/name``, ``/user/name``, optionally
      followed by a tab (``/videos``, ``/streams``, ``/shorts``; any other tab, or none, means
      ``/videos``), or a bare ``@name`` handle.
    """
    text = (text or "").strip()
    if _HANDLE.match(text):
        return "channel", f"https://www.youtube.com/{text}/videos"
    url = _youtube_url(text)
    if url is None:
        return None
    host = (url.hostname or "").lower()
    if not (host == "youtube.com" or host.endswith(".youtube.com")):
        return None
    query = parse_qs(url.query)
    parts = [p for p in url.path.split("/") if p]
    playlist = (query.get("list") or [""])[0]
    if playlist and re.fullmatch(r"[A-Za-z0-9_-]{2,64}", playlist) and (
            parts == ["playlist"] or (parts == ["watch"] and "v" not in query)):
        return "playlist", f"https://www.youtube.com/playlist?list={playlist}"
    if not parts:
        return None
    if parts[0].startswith("@") and _HANDLE.match(parts[0]):
        channel, rest = parts[:1], parts[1:]
    elif parts[0] in ("channel", "c", "user") and len(parts) >= 2 and re.fullmatch(r"[A-Za-z0-9._%-]+", parts[1]):
        channel, rest = parts[:2], parts[2:]
    else:
        return None
    tab = rest[0].lower() if rest and rest[0].lower() in _CHANNEL_TABS else "videos"
    return "channel", "https://www.youtube.com/" + "/".join(channel) + "/" + tab


def looks_like_url(text: str) -> bool:
    text = text.strip().lower()
    return text.startswith(("http://", "https://", "www.", "youtube.com", "youtu.be", "m.youtube.com"))


# --- cleaning ----------------------------------------------------------------------------------

def _clean_text(text: str) -> str:
    """Caption text without markup: tags (<c>, <i>, <00:00:01.000>), entities, extra spaces."""
    text = html.unescape(_TAG.sub("", text))
    return re.sub(r"\s+", " ", text).strip()


def _merge_rolling(cues: list[tuple[float, float, list[str]]]) -> list[Cue]:
    """Drop lines repeated from the previous cue (YouTube's rolling two-line auto-captions)."""
    out: list[Cue] = []
    previous: list[str] = []
    for start, end, lines in cues:
        fresh = [line for line in lines if line and line not in previous]
        if lines:
            previous = lines
        if fresh:
            out.append(Cue(start, max(end, start), " ".join(fresh)))
    return out


def split_long_cues(cues: Iterable[Cue], max_chars: int = MAX_CUE_CHARS) -> list[Cue]:
    """Split cues longer than ``max_chars`` with LangChain's recursive splitter.

    A single caption can hold a whole paragraph (hand-made JSON, SRT exported from a script);
    the pieces get start/end times interpolated by character position, so every chunk built
    from them still carries a meaningful timestamp.
    """
    out: list[Cue] = []
    splitter = None
    for cue in cues:
        if len(cue.text) <= max_chars:
            out.append(cue)
            continue
        if splitter is None:
            from langchain_text_splitters import RecursiveCharacterTextSplitter

            splitter = RecursiveCharacterTextSplitter(
                chunk_size=max_chars, chunk_overlap=0, add_start_index=True,
                separators=[". ", "? ", "! ", "; ", ", ", " ", ""], keep_separator="end")
        documents = splitter.create_documents([cue.text])
        length = max(1, len(cue.text))
        span = cue.end - cue.start
        for i, document in enumerate(documents):
            begin = document.metadata.get("start_index", 0)
            finish = documents[i + 1].metadata.get("start_index", length) if i + 1 < len(documents) else length
            out.append(Cue(cue.start + span * begin / length, cue.start + span * finish / length,
                           document.page_content.strip()))
    return [cue for cue in out if cue.text]


# --- file formats ------------------------------------------------------------------------------

def _parse_blocks(text: str, kind: str) -> list[Cue]:
    """Shared reader for WebVTT and SRT: blank-line separated blocks with a ``-->`` line."""
    text = text.replace("\r\n", "\n").replace("\r", "\n").lstrip("\ufeff")
    blocks = re.split(r"\n[ \t]*\n", text.strip())
    raw: list[tuple[float, float, list[str]]] = []
    bad = 0
    for number, block in enumerate(blocks, 1):
        lines = [line.rstrip() for line in block.split("\n")]
        timing_at = next((i for i, line in enumerate(lines) if "-->" in line), None)
        if timing_at is None:
            first = lines[0].strip() if lines else ""
            # Headers and metadata blocks carry no timing; anything else is damage.
            if kind == "vtt" and (first.startswith(("WEBVTT", "NOTE", "STYLE", "REGION", "Kind:", "Language:"))):
                continue
            bad += 1
            continue
        left, _, right = lines[timing_at].partition("-->")
        try:
            start = parse_timestamp(left)
            end = parse_timestamp(right.strip().split()[0] if right.strip() else "")
        except ValueError:
            bad += 1
            continue
        text_lines = [_clean_text(line) for line in lines[timing_at + 1:]]
        raw.append((start, end, [line for line in text_lines if line]))
    if not raw:
        what = "WebVTT" if kind == "vtt" else "SubRip"
        raise TranscriptError(f"no timed captions found: this is not a readable {what} file "
                              f"({len(blocks)} blocks, none with a valid 'start --> end' line)")
    if bad > max(3, len(raw) // 2):
        # More broken blocks than good ones: a truncated or mangled file, not a few glitches.
        raise TranscriptError(f"the caption file is corrupt: {bad} of {bad + len(raw)} blocks "
                              "have no valid 'start --> end' timing line")
    raw.sort(key=lambda item: item[0])
    return _merge_rolling(raw)


def parse_vtt(text: str) -> list[Cue]:
    """Cues of a WebVTT file (tags and YouTube's repeated rolling lines removed)."""
    if not text.lstrip("\ufeff \n\r\t").startswith("WEBVTT"):
        raise TranscriptError("not a WebVTT file: it must start with the line 'WEBVTT'")
    return _parse_blocks(text, "vtt")


def parse_srt(text: str) -> list[Cue]:
    """Cues of a SubRip (.srt) file."""
    return _parse_blocks(text, "srt")


def parse_json(text: str) -> tuple[list[Cue], dict[str, Any]]:
    """Cues of the JSON ``youtube-transcript-api`` writes, plus any metadata found in it.

    Accepted shapes: ``[{"text", "start", "duration"}, ...]`` (``JSONFormatter``), a list of such
    lists (the CLI with several ids: the first is used), or an object with ``snippets``/``cues``
    and optional ``video_id``, ``title``, ``channel``, ``language_code``.
    """
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise TranscriptError(f"the transcript JSON is not valid JSON ({exc.msg} at line {exc.lineno})") from None
    meta: dict[str, Any] = {}
    if isinstance(data, dict):
        meta = {k: data[k] for k in ("video_id", "title", "channel", "language", "language_code",
                                     "is_generated") if data.get(k) is not None}
        data = data.get("snippets", data.get("cues", data.get("transcript")))
    if isinstance(data, list) and data and all(isinstance(item, list) for item in data):
        data = data[0]
    if not isinstance(data, list):
        raise TranscriptError("the transcript JSON must be a list of {\"text\", \"start\", \"duration\"} "
                              "objects, as youtube-transcript-api writes it")
    cues: list[Cue] = []
    for i, item in enumerate(data):
        if not isinstance(item, dict) or "text" not in item or "start" not in item:
            # The message names the item, never its contents (a file may hold anything).
            problem = ("has no 'text' and 'start'" if isinstance(item, dict) else
                       f"is a {type(item).__name__}, not an object with 'text' and 'start'")
            raise TranscriptError(f"transcript JSON item {i} {problem}")
        try:
            start = float(item["start"])
            duration = float(item.get("duration", item.get("dur", 0.0)) or 0.0)
        except (TypeError, ValueError):
            raise TranscriptError(f"transcript JSON item {i} has a non-numeric start or duration") from None
        text = _clean_text(str(item["text"]))
        if text:
            cues.append(Cue(start, start + max(0.0, duration), text))
    cues.sort(key=lambda cue: cue.start)
    return cues, meta


def _file_key(path: Path) -> str:
    """Stable id for a local file: readable name plus a hash of its absolute path."""
    stem = re.sub(r"[^A-Za-z0-9]+", "-", path.name.split(".")[0]).strip("-").lower()[:40] or "transcript"
    digest = hashlib.sha1(str(path).encode("utf-8")).hexdigest()[:8]
    return f"file-{stem}-{digest}"


def load_transcript_file(path: str | Path) -> Transcript:
    """Read a ``.vtt``, ``.srt`` or ``.json`` transcript; TranscriptError when unreadable."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in SUPPORTED_SUFFIXES:
        raise TranscriptError(f"unsupported transcript file {path.name!r}: use a .vtt, .srt or "
                              "youtube-transcript-api .json file")
    try:
        text = path.read_bytes().decode("utf-8-sig")
    except UnicodeDecodeError:
        raise TranscriptError(f"{path.name} is not UTF-8 text; is it really a transcript?") from None
    except OSError as exc:
        raise TranscriptError(f"cannot read {path}: {exc.strerror or exc}") from None
    if not text.strip():
        raise TranscriptError(f"{path.name} is empty: there is no transcript to add")
    meta: dict[str, Any] = {}
    if suffix == ".vtt":
        cues = parse_vtt(text)
    elif suffix == ".srt":
        cues = parse_srt(text)
    else:
        cues, meta = parse_json(text)
    cues = split_long_cues(cues)
    if not cues:
        raise TranscriptError(f"{path.name} has no spoken text (every caption is empty)")
    bracketed = _BRACKETED_ID.search(path.name)
    video_id = meta.get("video_id") or (bracketed.group(1) if bracketed else None)
    if video_id and not _VIDEO_ID.match(str(video_id)):
        video_id = None
    language = meta.get("language_code") or meta.get("language")
    if not language:
        # yt-dlp: "Title [id].es.vtt" — the language code is the second-to-last suffix.
        parts = path.name.split(".")
        if len(parts) >= 3 and re.fullmatch(r"[a-z]{2,3}(-[A-Za-z0-9]+)?", parts[-2]):
            language = parts[-2]
    return Transcript(key=video_id or _file_key(path.resolve()), cues=cues, video_id=video_id,
                      source=str(path.resolve()), title=meta.get("title"), channel=meta.get("channel"),
                      language=language, is_generated=meta.get("is_generated"))


# --- YouTube -----------------------------------------------------------------------------------

def how_to_supply(video_id: str) -> str:
    """The instructions every fetch failure ends with."""
    return (f"Download the transcript on a machine that can reach YouTube and add the file instead: "
            f"`yt-dlp --skip-download --write-subs --write-auto-subs --sub-langs 'es.*,en.*' "
            f"--sub-format vtt https://youtu.be/{video_id}` (gives a .vtt; keep the [{video_id}] in "
            f"the file name so answers link to YouTube), or `youtube_transcript_api {video_id} "
            f"--languages es en --format json > {video_id}.json`; then add_video('<path to that file>').")


def choose_transcript(transcript_list: Any, languages: Sequence[str]) -> tuple[Any, bool]:
    """Pick the transcript to fetch from a ``TranscriptList``; returns (transcript, translated).

    Order: an original transcript in the first wanted language that has one (manual captions
    before generated ones, as the library's ``find_transcript`` does); then a YouTube translation
    into the first wanted language, translating manual captions before generated ones; then any
    transcript the video has, manual first.
    """
    from youtube_transcript_api import NoTranscriptFound

    available = list(transcript_list)
    if not available:
        raise NoTranscriptFound(getattr(transcript_list, "video_id", ""), list(languages), transcript_list)
    try:
        return transcript_list.find_transcript(list(languages)), False
    except NoTranscriptFound:
        pass
    ordered = sorted(available, key=lambda t: bool(t.is_generated))
    for language in languages:
        for candidate in ordered:
            if candidate.is_translatable and any(
                    option.language_code == language for option in candidate.translation_languages):
                return candidate.translate(language), True
    return ordered[0], False


def _video_details(video_id: str, timeout: float = 4.0) -> dict[str, str]:
    """Title and channel from YouTube's public oEmbed endpoint (best effort, no API key)."""
    try:
        import requests

        response = requests.get("https://www.youtube.com/oembed",
                                params={"url": f"https://www.youtube.com/watch?v={video_id}", "format": "json"},
                                timeout=timeout)
        if response.ok:
            data = response.json()
            return {"title": data.get("title"), "channel": data.get("author_name")}
    except Exception:  # noqa: BLE001 - details are optional; the transcript is what matters
        pass
    return {}


def fetch_youtube(video_id: str, languages: Sequence[str] | None = None, api: Any = None,
                  offline: bool | None = None) -> Transcript:
    """Fetch a YouTube transcript; TranscriptError (with how to supply a file) on any failure."""
    from taller.config import get_settings

    settings = get_settings()
    languages = list(languages or settings.video_languages or ["en"])
    offline = settings.offline if offline is None else offline
    source = f"https://youtu.be/{video_id}"
    if offline and api is None:
        raise TranscriptError(f"cannot download the transcript of {source}: Taller is in offline mode "
                              f"(TALLER_OFFLINE). " + how_to_supply(video_id))
    try:
        import requests
        from youtube_transcript_api import (CouldNotRetrieveTranscript, IpBlocked, NoTranscriptFound,
                                            RequestBlocked, TranscriptsDisabled, VideoUnavailable,
                                            YouTubeTranscriptApi)
    except ImportError:  # pragma: no cover - a declared dependency
        raise TranscriptError("youtube-transcript-api is not installed (pip install youtube-transcript-api). "
                              + how_to_supply(video_id)) from None
    api = api or YouTubeTranscriptApi()
    try:
        transcript_list = api.list(video_id)
        chosen, translated = choose_transcript(transcript_list, languages)
        fetched = chosen.fetch()
    except (IpBlocked, RequestBlocked):
        raise TranscriptError(f"YouTube blocks transcript requests from this IP address for {source}. "
                              + how_to_supply(video_id)) from None
    except (TranscriptsDisabled, NoTranscriptFound):
        raise TranscriptError(f"{source} has no transcript (captions are disabled or missing). If you "
                              "have subtitles for it elsewhere, add the .vtt/.srt file instead.") from None
    except VideoUnavailable:
        raise TranscriptError(f"{source} is unavailable (private, removed or a wrong id).") from None
    except CouldNotRetrieveTranscript as exc:
        reason = str(getattr(exc, "cause", "") or type(exc).__name__).strip().splitlines()[0]
        raise TranscriptError(f"could not get the transcript of {source}: {reason}. " + how_to_supply(video_id)) from None
    except requests.exceptions.RequestException as exc:
        raise TranscriptError(f"cannot reach YouTube for {source} ({type(exc).__name__}): no network? "
                              + how_to_supply(video_id)) from None
    cues = split_long_cues(
        Cue(float(s.start), float(s.start) + float(s.duration or 0.0), _clean_text(s.text))
        for s in fetched.snippets if _clean_text(s.text))
    if not cues:
        raise TranscriptError(f"the transcript of {source} is empty: there is nothing to add")
    details = _video_details(video_id) if not offline else {}
    return Transcript(key=video_id, cues=cues, video_id=video_id, source=source,
                      title=details.get("title"), channel=details.get("channel"),
                      language=fetched.language_code, is_generated=bool(fetched.is_generated),
                      translated=translated)


def load_transcript(url_or_path: str) -> Transcript:
    """A transcript from a YouTube URL/id or a local file path (checked like any user path)."""
    from taller.paths import check_input_path

    text = (url_or_path or "").strip()
    if not text:
        raise TranscriptError("give a YouTube URL or id, or a .vtt/.srt/.json transcript file")
    candidate = Path(text).expanduser()
    if candidate.suffix.lower() in SUPPORTED_SUFFIXES or candidate.exists():
        return load_transcript_file(check_input_path(text))
    video_id = parse_video_id(text)
    if video_id:
        return fetch_youtube(video_id)
    collection = youtube_collection(text)
    if collection:
        raise TranscriptError(f"{text!r} is a YouTube {collection[0]}, not one video: add_video adds every "
                              "video of it; to ask about or summarise one, name that video's URL or title")
    if looks_like_url(text):
        raise TranscriptError(f"{text!r} is not a YouTube video URL (expected youtu.be/<id> or "
                              "youtube.com/watch?v=<id>)")
    raise TranscriptError(f"{text!r} is neither a YouTube URL/id nor an existing .vtt/.srt/.json file")


# --- building transcripts from text ----------------------------------------------------------

def cues_from_text(text: str, words_per_minute: float = 150.0, words_per_cue: int = 12) -> list[Cue]:
    """Timed cues for a plain script read aloud at ``words_per_minute`` (about 150 in speeches).

    Used by the benchmark and the tests to turn long real texts (State of the Union addresses)
    into realistic transcripts; cues never straddle a paragraph break.
    """
    seconds_per_word = 60.0 / words_per_minute
    cues: list[Cue] = []
    clock = 0.0
    for paragraph in re.split(r"\n\s*\n|\n", text):
        words = paragraph.split()
        for i in range(0, len(words), words_per_cue):
            piece = words[i:i + words_per_cue]
            duration = len(piece) * seconds_per_word
            cues.append(Cue(round(clock, 3), round(clock + duration, 3), " ".join(piece)))
            clock += duration
        if words:
            clock += 0.5  # a breath between paragraphs
    return cues
