"""Adding many videos at once (`taller.knowledge.videos.ingest.add_many`): a folder of real
transcript files, a YouTube playlist or channel listed by a fake yt-dlp lister (no network here),
resuming after a kill or a cancel, per-video failures with reasons, progress events, and which
URLs are a playlist or channel rather than one video. Videos are really chunked, embedded
(offline MiniLM) and stored in Chroma; only YouTube is faked."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import pytest

from taller.config import get_settings
from taller.errors import ToolError
from taller.knowledge import transcripts
from taller.knowledge.transcripts import Cue, Transcript, TranscriptError, parse_video_id, youtube_collection
from taller.knowledge.videos import ingest, list_videos
from taller.progress import CancelledError, reporting_to
from taller.tools import run_tool

VTT = """WEBVTT

00:00:00.000 --> 00:00:04.000
Gradient descent moves the weights a small step downhill.

00:00:04.000 --> 00:00:09.500
The learning rate decides how long that step is.
"""

SRT = """1
00:00:00,000 --> 00:00:03,000
Dropout switches off random neurons while training.

2
00:00:03,000 --> 00:00:07,000
At test time every neuron is used again.
"""

JSON = json.dumps([{"text": "An autoencoder compresses its input into a code", "start": 0.0, "duration": 4.0},
                   {"text": "and rebuilds the input from that code.", "start": 4.0, "duration": 3.5}])

SECRET = "hunter2-do-not-leak"


class Killed(BaseException):
    """A kill of the process in the middle of a video (nothing catches it, like SIGKILL)."""


def transcript_folder(tmp_path: Path) -> Path:
    folder = tmp_path / "course"
    (folder / "week2").mkdir(parents=True)
    (folder / "a-gradient.vtt").write_text(VTT, encoding="utf-8")
    (folder / "week2" / "b-dropout.srt").write_text(SRT, encoding="utf-8")
    (folder / "c-autoencoder.json").write_text(JSON, encoding="utf-8")
    # Not transcripts: hidden files, yt-dlp's metadata, other suffixes.
    (folder / ".hidden.vtt").write_text(VTT, encoding="utf-8")
    (folder / "c-autoencoder.info.json").write_text('{"title": "metadata"}', encoding="utf-8")
    (folder / "notes.txt").write_text("not a transcript", encoding="utf-8")
    return folder


VIDEOS = {"vidAAAAAAA1": "Backpropagation, step by step", "vidBBBBBBB2": "Convolutions explained",
          "vidCCCCCCC3": "Attention is all you need", "vidDDDDDDD4": "Batch normalisation"}


def fake_video(video_id: str) -> Transcript:
    words = VIDEOS.get(video_id, video_id)
    cues = [Cue(0.0, 4.0, f"Today: {words}."), Cue(4.0, 9.0, f"This lecture explains {words.lower()} in detail.")]
    return Transcript(key=video_id, cues=cues, video_id=video_id, source=f"https://youtu.be/{video_id}",
                      title=words, language="en", is_generated=False)


class FakeYouTube:
    """Lists a playlist and serves transcripts; ``fail`` maps an id to the exception to raise."""

    def __init__(self, ids=tuple(VIDEOS), fail=None, title="Deep learning course"):
        self.ids, self.fail, self.title = list(ids), dict(fail or {}), title
        self.listed: list[str] = []
        self.fetched: list[str] = []

    def lister(self, url, limit=None):
        self.listed.append(url)
        ids = self.ids[:limit] if limit else self.ids
        return {"title": self.title, "entries": [{"id": i, "title": VIDEOS.get(i)} for i in ids]}

    def fetch(self, video_id, *args, **kwargs):
        self.fetched.append(video_id)
        failure = self.fail.get(video_id)
        if failure is not None:
            raise failure
        return fake_video(video_id)


@pytest.fixture
def youtube(monkeypatch):
    fake = FakeYouTube()
    monkeypatch.setattr(ingest, "list_youtube", fake.lister)
    monkeypatch.setattr(transcripts, "fetch_youtube", lambda video_id, *a, **k: fake.fetch(video_id))
    return fake


PLAYLIST = "https://www.youtube.com/playlist?list=PLdeeplearning01"


def state_of(kind: str, target: str) -> dict:
    return json.loads(ingest.state_path(kind, target).read_text(encoding="utf-8"))


# --- which sources are collections ---------------------------------------------------------------

@pytest.mark.parametrize("text,expected", [
    ("https://www.youtube.com/playlist?list=PLabc_123-x", ("playlist", "https://www.youtube.com/playlist?list=PLabc_123-x")),
    ("youtube.com/playlist?list=PLabc", ("playlist", "https://www.youtube.com/playlist?list=PLabc")),
    ("https://m.youtube.com/watch?list=PLabc", ("playlist", "https://www.youtube.com/playlist?list=PLabc")),
    ("https://www.youtube.com/@3blue1brown", ("channel", "https://www.youtube.com/@3blue1brown/videos")),
    ("https://www.youtube.com/@3blue1brown/videos", ("channel", "https://www.youtube.com/@3blue1brown/videos")),
    ("www.youtube.com/@3blue1brown/streams", ("channel", "https://www.youtube.com/@3blue1brown/streams")),
    ("https://www.youtube.com/@3blue1brown/featured", ("channel", "https://www.youtube.com/@3blue1brown/videos")),
    ("https://www.youtube.com/channel/UCYO_jab_esuFRV4b17AJtAw",
     ("channel", "https://www.youtube.com/channel/UCYO_jab_esuFRV4b17AJtAw/videos")),
    ("https://youtube.com/c/sentdex/videos", ("channel", "https://www.youtube.com/c/sentdex/videos")),
    ("https://www.youtube.com/user/sentdex", ("channel", "https://www.youtube.com/user/sentdex/videos")),
    ("@3blue1brown", ("channel", "https://www.youtube.com/@3blue1brown/videos")),
    # One video, even inside a playlist: YouTube plays that video.
    ("https://www.youtube.com/watch?v=dQw4w9WgXcQ&list=PLabc", None),
    ("https://youtu.be/dQw4w9WgXcQ?list=PLabc", None),
    ("https://www.youtube.com/watch?v=dQw4w9WgXcQ", None),
    ("dQw4w9WgXcQ", None),
    ("https://vimeo.com/channels/staffpicks", None),
    ("https://www.youtube.com/results?search_query=dropout", None),
    ("lecture.vtt", None),
])
def test_playlist_and_channel_urls(text, expected):
    assert youtube_collection(text) == expected
    assert ingest.classify_source(text) == expected


@pytest.mark.parametrize("text,expected", [
    ("https://www.youtube.com/watch?v=dQw4w9WgXcQ&list=PLabc&index=3", "dQw4w9WgXcQ"),
    ("https://youtu.be/dQw4w9WgXcQ?list=PLabc", "dQw4w9WgXcQ"),
    ("https://www.youtube.com/playlist?list=PLabcdefghi", None),
    ("https://www.youtube.com/@abcdefghijk", None),
    ("https://www.youtube.com/channel/UCabcdefghijklmnopqrstuv", None),
    ("https://www.youtube.com/c/abcdefghijk", None),
    ("https://www.youtube.com/user/abcdefghijk/videos", None),
])
def test_a_playlist_or_channel_is_never_a_video_id(text, expected):
    assert parse_video_id(text) == expected


def test_folders_are_collections_and_checked_like_user_paths(tmp_path):
    folder = transcript_folder(tmp_path)
    assert ingest.classify_source(str(folder)) == ("folder", str(folder.resolve()))
    assert ingest.classify_source(str(folder / "a-gradient.vtt")) is None  # one file: add_video
    assert ingest.classify_source(str(tmp_path / "missing")) is None
    with pytest.raises(ToolError, match="system folders"):
        ingest.classify_source("/etc")
    assert ingest.is_collection("/etc")  # add_many then says why not
    assert "system folders" in run_tool("add_video", {"url_or_path": "/etc"})["error"]
    empty = tmp_path / "empty"
    empty.mkdir()
    assert "no .vtt, .srt or .json" in run_tool("add_video", {"url_or_path": str(empty)})["error"]


# --- folders --------------------------------------------------------------------------------------

def test_a_folder_of_transcripts_is_added_then_continued(tmp_path):
    folder = transcript_folder(tmp_path)
    out = run_tool("add_video", {"url_or_path": str(folder)})
    assert "error" not in out, out
    assert (out["kind"], out["total"], out["added"], out["skipped"], out["failed"]) == ("folder", 3, 3, 0, 0)
    assert [v["file"] for v in out["added_videos"]] == ["a-gradient.vtt", "c-autoencoder.json", "week2/b-dropout.srt"]
    assert out["summary"].startswith("Added 3 of 3 files from the folder 'course'")
    assert out["continued"] is None
    assert sorted(v["name"] for v in list_videos()) == ["a-gradient.vtt", "b-dropout.srt", "c-autoencoder.json"]
    json.dumps(out)
    state = state_of("folder", str(folder.resolve()))
    assert [(i["id"], i["status"]) for i in state["items"]] == [
        ("a-gradient.vtt", "done"), ("c-autoencoder.json", "done"), ("week2/b-dropout.srt", "done")]
    assert Path(out["state_file"]).parent == get_settings().home / "videos" / "ingest"

    # Again: nothing is read or embedded again, and the result says what it continued from.
    again = ingest.add_many(str(folder))
    assert (again["added"], again["skipped"], again["failed"]) == (0, 3, 0)
    assert again["continued"] == {"done": 3, "failed": 0, "total": 3}
    assert again["summary"].startswith("Continuing: 3 of 3 already added.")

    # A changed file is added again; a new file is added.
    (folder / "a-gradient.vtt").write_text(VTT.replace("small step", "tiny step"), encoding="utf-8")
    (folder / "d-new.srt").write_text(SRT.replace("Dropout", "Weight decay"), encoding="utf-8")
    third = ingest.add_many(str(folder))
    assert (third["added"], third["skipped"]) == (2, 2)
    assert {v["title"] for v in third["added_videos"]} == {"a-gradient.vtt", "d-new.srt"}
    assert len(list_videos()) == 4


def test_a_bad_file_is_reported_by_name_and_the_others_are_added(tmp_path):
    folder = transcript_folder(tmp_path)
    (folder / "broken.json").write_text(json.dumps([{"password": SECRET}]), encoding="utf-8")
    (folder / "week2" / "broken.vtt").write_text(f"WEBVTT\n\n{SECRET} -> nope\n\nnor {SECRET}\n", encoding="utf-8")
    out = run_tool("add_video", {"url_or_path": str(folder)})
    assert (out["total"], out["added"], out["failed"]) == (5, 3, 2)
    assert [f["file"] for f in out["failures"]] == ["broken.json", "week2/broken.vtt"]
    assert out["failures"][0]["reason"] == "transcript JSON item 0 has no 'text' and 'start'"
    assert "WebVTT" in out["failures"][1]["reason"]
    assert "broken.json" in out["summary"] and "week2/broken.vtt" in out["summary"]
    assert SECRET not in json.dumps(out) and SECRET not in Path(out["state_file"]).read_text(encoding="utf-8")

    # A file that failed is tried once more, then reported without reading it again.
    second = ingest.add_many(str(folder))
    assert (second["added"], second["skipped"], second["failed"]) == (0, 3, 2)
    assert not any(f.get("not_tried_again") for f in second["failures"])
    third = ingest.add_many(str(folder))
    assert third["failed"] == 2 and all(f["not_tried_again"] for f in third["failures"])
    # Fixed, it is added.
    (folder / "broken.json").write_text(JSON.replace("autoencoder", "variational autoencoder"), encoding="utf-8")
    fourth = ingest.add_many(str(folder))
    assert (fourth["added"], fourth["failed"]) == (1, 1)


def test_several_languages_of_one_video_are_added_once(tmp_path):
    folder = tmp_path / "subs"
    folder.mkdir()
    (folder / "Lecture 1 [Lecture1abc].en.vtt").write_text(VTT, encoding="utf-8")
    (folder / "Lecture 1 [Lecture1abc].es.vtt").write_text(
        VTT.replace("Gradient descent moves the weights a small step downhill.",
                    "El descenso de gradiente mueve los pesos cuesta abajo."), encoding="utf-8")
    out = ingest.add_many(str(folder))
    # video_languages is ["es", "en"]: the Spanish file is the one added.
    assert out["added"] == 1 and out["added_videos"][0]["video"] == "Lecture1abc"
    assert out["skipped"] == 1 and "Lecture 1 [Lecture1abc].en.vtt" in out["duplicates"]
    assert [v["language"] for v in list_videos()] == ["es"]


# --- playlists and channels -----------------------------------------------------------------------

def test_a_playlist_with_a_video_without_transcript(youtube):
    youtube.ids = ["vidAAAAAAA1", "vidBBBBBBB2", "vidCCCCCCC3"]
    youtube.fail = {"vidBBBBBBB2": TranscriptError(
        "https://youtu.be/vidBBBBBBB2 has no transcript (captions are disabled or missing). If you have "
        "subtitles for it elsewhere, add the .vtt/.srt file instead.")}
    out = run_tool("add_video", {"url_or_path": PLAYLIST})
    assert "error" not in out, out
    assert (out["kind"], out["title"], out["total"], out["added"], out["failed"]) == (
        "playlist", "Deep learning course", 3, 2, 1)
    assert [v["video"] for v in out["added_videos"]] == ["vidAAAAAAA1", "vidCCCCCCC3"]
    failure = out["failures"][0]
    assert failure["video"] == "vidBBBBBBB2" and failure["title"] == "Convolutions explained"
    assert "has no transcript" in failure["reason"] and failure["url"] == "https://youtu.be/vidBBBBBBB2"
    assert "yt-dlp --skip-download" in out["summary"] and PLAYLIST in out["summary"]
    assert sorted(v["video"] for v in list_videos()) == ["vidAAAAAAA1", "vidCCCCCCC3"]
    assert youtube.listed == [PLAYLIST]
    json.dumps(out)

    # Again: the one that failed is tried once more; the added ones are not fetched again.
    youtube.fetched.clear()
    again = ingest.add_many(PLAYLIST)
    assert youtube.fetched == ["vidBBBBBBB2"]
    assert (again["added"], again["skipped"], again["failed"]) == (0, 2, 1)
    assert again["summary"].startswith("Continuing: 2 of 3 already added, 1 failed before.")
    youtube.fetched.clear()
    third = ingest.add_many(PLAYLIST)
    assert youtube.fetched == [] and third["failures"][0]["not_tried_again"]


def test_a_channel_is_listed_and_videos_in_the_library_are_skipped(youtube):
    ingest.library.add_video("vidAAAAAAA1")  # added one by one before
    youtube.fetched.clear()
    out = ingest.add_many("https://www.youtube.com/@deeplearningcourse", limit=3)
    assert youtube.listed == ["https://www.youtube.com/@deeplearningcourse/videos"]
    assert youtube.fetched == ["vidBBBBBBB2", "vidCCCCCCC3"]  # limit=3: the newest three
    assert (out["kind"], out["total"], out["added"], out["skipped"]) == ("channel", 3, 2, 1)
    assert out["skipped_reasons"] == {"already in the library": 1}
    # Without the limit, the rest of the channel is added.
    more = ingest.add_many("https://www.youtube.com/@deeplearningcourse/videos")
    assert (more["total"], more["added"], more["skipped"]) == (4, 1, 3)
    # A smaller limit later looks at fewer videos and forgets none of the saved progress.
    youtube.fetched.clear()
    newest = ingest.add_many("https://www.youtube.com/@deeplearningcourse", limit=2)
    assert (newest["total"], newest["skipped"], youtube.fetched) == (2, 2, [])
    assert len(state_of("channel", "https://www.youtube.com/@deeplearningcourse/videos")["items"]) == 4


def test_a_watch_url_inside_a_playlist_adds_only_that_video(youtube):
    out = run_tool("add_video", {"url_or_path": "https://www.youtube.com/watch?v=vidCCCCCCC3&list=PLdeeplearning01"})
    assert out["video"] == "vidCCCCCCC3" and youtube.listed == [] and youtube.fetched == ["vidCCCCCCC3"]


def test_resume_after_a_kill_continues_where_it_stopped(youtube):
    youtube.fail = {"vidCCCCCCC3": Killed()}
    with pytest.raises(Killed):
        ingest.add_many(PLAYLIST)
    state = state_of("playlist", PLAYLIST)
    assert [(i["id"], i["status"]) for i in state["items"]] == [
        ("vidAAAAAAA1", "done"), ("vidBBBBBBB2", "done"), ("vidCCCCCCC3", "pending"), ("vidDDDDDDD4", "pending")]
    assert not list(Path(ingest.state_path("playlist", PLAYLIST)).parent.glob("*.tmp"))

    youtube.fail = {}
    youtube.fetched.clear()
    out = ingest.add_many(PLAYLIST)
    assert youtube.fetched == ["vidCCCCCCC3", "vidDDDDDDD4"]
    assert (out["added"], out["skipped"], out["failed"]) == (2, 2, 0)
    assert out["continued"] == {"done": 2, "failed": 0, "total": 4}
    assert out["summary"].startswith("Continuing: 2 of 4 already added.")
    assert sorted(v["video"] for v in list_videos()) == sorted(VIDEOS)


def test_cancel_between_videos_keeps_the_progress(youtube):
    cancel = threading.Event()
    events: list[dict] = []

    def sink(event):
        events.append(event)
        if "embedded" in event.get("message", ""):
            cancel.set()  # while the first video is stored: it finishes, the second never starts

    with reporting_to(sink), pytest.raises(CancelledError, match="add the same playlist again to continue"):
        ingest.add_many(PLAYLIST, cancel_event=cancel)
    assert [v["video"] for v in list_videos()] == ["vidAAAAAAA1"] and youtube.fetched == ["vidAAAAAAA1"]
    state = state_of("playlist", PLAYLIST)
    assert [i["status"] for i in state["items"]] == ["done", "pending", "pending", "pending"]

    # Cancelled before anything: nothing changes.
    with pytest.raises(CancelledError):
        ingest.add_many(PLAYLIST, cancel_event=cancel)
    assert state_of("playlist", PLAYLIST)["items"] == state["items"]

    out = ingest.add_many(PLAYLIST)
    assert (out["added"], out["skipped"]) == (3, 1) and out["continued"]["done"] == 1


def test_progress_says_which_video_with_counts_and_eta(youtube):
    youtube.fail = {"vidBBBBBBB2": TranscriptError("https://youtu.be/vidBBBBBBB2 is unavailable (private, removed "
                                                   "or a wrong id).")}
    events: list[dict] = []
    with reporting_to(events.append):
        out = ingest.add_many(PLAYLIST)
    assert out["failures"][0]["reason"].endswith("(private, removed or a wrong id).")
    per_video = [e for e in events if e.get("message", "").startswith("video ")]
    assert [e["message"] for e in per_video] == [
        "video 1 of 4: Backpropagation, step by step", "video 2 of 4: Convolutions explained",
        "video 3 of 4: Attention is all you need", "video 4 of 4: Batch normalisation"]
    assert all(e["source"] == "add_video" and e["total"] == 4 for e in per_video)
    assert [e["step"] for e in per_video] == [1, 2, 3, 4]
    assert [(e["added"], e["failed"]) for e in per_video] == [(0, 0), (1, 0), (1, 1), (2, 1)]
    assert per_video[0]["eta_s"] is None and all(isinstance(e["eta_s"], float) for e in per_video[1:])
    # The chunks of each video are reported too, and the last event sums up.
    assert any("embedded" in e.get("message", "") for e in events)
    assert events[-1]["message"].endswith("3 added, 0 skipped, 1 failed")


def test_failures_about_the_network_stop_early_and_are_always_retried(youtube):
    ids = [f"vid{n:08d}" for n in range(8)]
    youtube.ids = ids
    offline = TranscriptError("cannot reach YouTube for https://youtu.be/x (ConnectionError): no network? "
                              "Download the transcript on a machine that can reach YouTube and add the file instead.")
    youtube.fail = {i: offline for i in ids}
    out = ingest.add_many(PLAYLIST)
    assert youtube.fetched == ids[:5] and out["failed"] == 5 and out["pending"] == 3
    assert "stopped after 5 failures in a row" in out["stopped"] and "Stopped after 5" in out["summary"]
    assert "Download the transcript" not in out["failures"][0]["reason"]  # said once, in the summary
    youtube.fetched.clear()
    ingest.add_many(PLAYLIST)
    ingest.add_many(PLAYLIST)
    assert youtube.fetched == ids[:5] * 2  # never given up on: the network may come back


def test_the_list_saved_before_is_used_when_listing_fails(youtube, monkeypatch):
    youtube.fail = {"vidDDDDDDD4": Killed()}
    with pytest.raises(Killed):
        ingest.add_many(PLAYLIST)

    def cannot_list(url, limit=None):
        raise ToolError(f"cannot list {url} with yt-dlp: Unable to download webpage")

    monkeypatch.setattr(ingest, "list_youtube", cannot_list)
    youtube.fail = {}
    out = ingest.add_many(PLAYLIST)
    assert out["added"] == 1 and out["skipped"] == 3 and "list saved before" in out["summary"]
    with pytest.raises(ToolError, match="cannot list"):
        ingest.add_many("https://www.youtube.com/playlist?list=PLneverlisted")


def test_the_real_lister_offline_and_yt_dlp_entries():
    # TALLER_OFFLINE=1 in tests: the real lister says what to do instead of trying the network.
    out = run_tool("add_video", {"url_or_path": PLAYLIST})
    assert "offline mode" in out["error"] and "folder" in out["error"]
    # yt-dlp's flat listing: videos, unavailable ones (None), nested tabs, playlists in a channel.
    info_entries = [
        {"_type": "url", "ie_key": "Youtube", "id": "vidAAAAAAA1", "title": "One"},
        None,
        {"_type": "playlist", "title": "Videos", "entries": [
            {"_type": "url", "ie_key": "Youtube", "id": "vidBBBBBBB2", "title": "Two"}]},
        {"_type": "url", "ie_key": "YoutubeTab", "id": "PLsomething", "title": "A playlist"},
    ]
    assert list(ingest._flat_entries(info_entries)) == [{"id": "vidAAAAAAA1", "title": "One"},
                                                        {"id": "vidBBBBBBB2", "title": "Two"}]


def test_a_damaged_progress_file_starts_over(youtube):
    ingest.add_many(PLAYLIST)
    ingest.state_path("playlist", PLAYLIST).write_text("{not json", encoding="utf-8")
    youtube.fetched.clear()
    out = ingest.add_many(PLAYLIST)
    # Nothing is fetched again: the library already has every video.
    assert youtube.fetched == [] and out["skipped"] == 4 and "unreadable" in out["summary"]
    assert state_of("playlist", PLAYLIST)["items"][0]["status"] == "done"


def test_results_stay_small_for_long_playlists(youtube):
    ids = [f"bad{n:08d}" for n in range(30)]
    youtube.ids = ids
    youtube.fail = {i: TranscriptError(f"https://youtu.be/{i} has no transcript (captions are disabled or missing).")
                    for i in ids}
    out = ingest.add_many(PLAYLIST)
    assert out["failed"] == 30 and len(out["failures"]) == 20 and out["more_failures"] == 10
    assert "and 27 more" in out["summary"] and len(json.dumps(out)) < 12_000
