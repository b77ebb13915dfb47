"""A damaged run folder is skipped and reported, never breaking the listing (issue 16, point 7).

Each corrupt ``status.json`` (a JSON list, a string, wrong field types, binary bytes, not JSON,
a FIFO, a folder) sits beside a good run; ``list_models``, ``generate_images``, the run registry
and ``latest_checkpoint`` must still work, name the bad folder and say what is wrong. Listings
run in a thread joined with a timeout, so a regression that blocks on a FIFO fails instead of
hanging the suite.
"""

from __future__ import annotations

import json
import os

import pytest
from bounded import within

from taller.config import get_settings
from taller.tools import run_tool
from taller.trainers import runs
from taller.trainers.checkpoints import latest_checkpoint, list_runs, read_status, write_json_atomic

SECRET = "AWS_SECRET=hunter2-do-not-echo"


def _good_run(model: str = "autoencoder", run_id: str = "autoencoder-20250101-000000-good") -> str:
    folder = get_settings().runs_dir / model / run_id
    write_json_atomic(folder / "status.json", {
        "run_id": run_id, "model": model, "state": "finished", "created": "2025-01-01T00:00:00+00:00",
        "created_ts": 1735689600.0, "finished": "2025-01-01T00:01:00+00:00", "epoch": 2, "epochs": 2,
        "metrics": {"val_loss": 0.0123}, "error": None, "pid": 1})
    (folder / "best.pt").write_bytes(b"not read by the listing")
    return str(folder)


def _bad_run(name: str, model: str = "autoencoder") -> "os.PathLike":
    folder = get_settings().runs_dir / model / f"{model}-20250102-000000-{name}"
    folder.mkdir(parents=True)
    return folder


CORRUPT = {
    "list": (json.dumps([SECRET, 1, 2]).encode(), "a JSON list, not an object"),
    "string": (json.dumps(SECRET).encode(), "holds text, not an object"),
    "number": (b"42", "holds a whole number, not an object"),
    "wrong-epoch": (json.dumps({"state": "finished", "epoch": SECRET}).encode(), "'epoch' is text"),
    "wrong-metrics": (json.dumps({"state": "finished", "metrics": [SECRET]}).encode(), "'metrics' is a list"),
    "wrong-created": (json.dumps({"state": "running", "created_ts": SECRET}).encode(), "'created_ts' is text"),
    "wrong-state": (json.dumps({"state": ["running"]}).encode(), "'state' is a list"),
    "bool-pid": (json.dumps({"state": "running", "pid": True}).encode(), "'pid' is true/false"),
    "other-run": (json.dumps({"state": "finished", "run_id": "someone-else"}).encode(), "another run"),
    "binary": (b"\x89PNG\r\n\x1a\n\xff\xfe" + SECRET.encode() + b"\x00\x80", "not UTF-8 text"),
    "not-json": (f"{{{SECRET}".encode(), "not valid JSON"),
    "empty": (b"", "not valid JSON"),
}


def _in_thread(function, *args, **kwargs):
    """What ``function`` returns, failing instead of blocking (a FIFO opened for reading)."""
    return within(function, *args, limit_s=30.0, **kwargs)[0]


def _check_listing(bad_folder, words: str) -> None:
    good = _good_run()
    out = _in_thread(run_tool, "list_models", {})
    assert "error" not in out, out
    assert [entry["path"] for entry in out["runs"]] == [good], "the good run is listed, the bad one skipped"
    assert out["bad_runs"] == [{"path": str(bad_folder), "problem": out["bad_runs"][0]["problem"]}]
    assert words in out["bad_runs"][0]["problem"]
    assert str(bad_folder) in out["summary"] and "Skipped 1 run folder" in out["summary"]
    assert SECRET not in json.dumps(out), "a bad status.json is described, never quoted"
    # The registry, the checkpoint lookup and the image tool go on working.
    problems: list = []
    assert [row["path"] for row in _in_thread(runs.list_all, problems=problems)] == [good] and len(problems) == 1
    assert str(_in_thread(latest_checkpoint, "autoencoder")) == os.path.join(good, "best.pt")
    generated = _in_thread(run_tool, "generate_images", {"model": "vae"})
    assert generated.get("trained") is False and "error" not in generated


@pytest.mark.parametrize("name", sorted(CORRUPT))
def test_a_corrupt_status_json_is_skipped_and_reported(name):
    content, words = CORRUPT[name]
    folder = _bad_run(name)
    (folder / "status.json").write_bytes(content)
    _check_listing(folder, words)


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="this system has no FIFOs")
def test_a_fifo_in_place_of_status_json_never_blocks():
    folder = _bad_run("fifo")
    os.mkfifo(folder / "status.json")
    _check_listing(folder, "not a regular file (it is a FIFO)")
    status, problem = _in_thread(read_status, folder)
    assert status is None and "FIFO" in problem


def test_a_folder_or_a_link_to_a_device_in_place_of_status_json():
    folder = _bad_run("folder")
    (folder / "status.json").mkdir()
    _check_listing(folder, "it is a folder")
    (folder / "status.json").rmdir()
    if os.path.exists("/dev/zero"):
        (folder / "status.json").symlink_to("/dev/zero")
        assert "character device" in _in_thread(read_status, folder)[1]


def test_a_huge_status_json_is_not_read():
    folder = _bad_run("huge")
    (folder / "status.json").write_bytes(b"[" + b"0," * 1_000_000 + b"0]")
    status, problem = read_status(folder)
    assert status is None and "bytes, more than a record can be" in problem


def test_a_file_among_the_run_folders_and_a_folder_without_status_are_ignored():
    good = _good_run()
    (get_settings().runs_dir / "autoencoder" / "notes.txt").write_text(SECRET)
    _bad_run("starting")  # created, status.json not written yet: not a problem to report
    problems: list = []
    assert [status["path"] for status in list_runs(problems=problems)] == [good] and problems == []


def test_a_new_run_replaces_an_unusable_status_of_its_folder():
    from taller.trainers.autoencoder import Config
    from taller.trainers.engine import Run

    folder = _bad_run("resume")
    (folder / "status.json").write_text(json.dumps([SECRET]))
    run = Run.create("autoencoder", Config(dry_run=True), run_id=folder.name, resume=False)
    status, problem = read_status(folder)
    assert problem is None and status["state"] == "running" and status["run_id"] == run.run_id
    run.fail(RuntimeError("test over"))
