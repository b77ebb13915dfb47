"""The lesson framework (taller.trainers.lessons) and the show_lesson tool, on a scripted lesson.

Each trainer's own lesson is tested on its dry-run path in that trainer's test file; here a
small fake lesson checks what every lesson gets from the framework: one progress fraction and
ETA over all experiments, lesson.json and the plot, no checkpoint, continuing a stopped lesson
without redoing its finished experiments, and how the tool shows (or starts) a lesson.
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass
from pathlib import Path

import pytest

from taller.progress import CancelledError
from taller.trainers import lessons
from taller.trainers.engine import Run, latest_checkpoint, list_runs


@dataclass
class FakeConfig:
    epochs: int = 1
    seed: int = 0
    device: str = "cpu"
    dry_run: bool = False
    resume: bool = False
    lesson: bool = True


def _teach(calls: list[str], stop_at: str | None = None, cancel: threading.Event | None = None):
    """A lesson of three experiments that "train" two steps each and report a number."""

    def teach(config, notebook, device):
        figures = {}
        for name, value in (("small", 0.5), ("medium", 0.2), ("large", 0.1)):
            def compute(name=name, value=value):
                calls.append(name)
                if name == stop_at and cancel is not None:
                    cancel.set()
                for step in (1, 2):
                    notebook.run.check_cancelled()
                    notebook.run.progress(1, 1, step, 2, loss=value, force=True)
                return {"error": value}
            figures[name] = notebook.experiment(name, compute)["error"]
        held = figures["small"] > figures["medium"] > figures["large"]
        notebook.plot_path.write_bytes(b"\x89PNG\r\n\x1a\nfake")
        return lessons.Lesson(title="Bigger is better", claim="the error falls at every size", held=held,
                              figures=figures, reading={"en": f"Error {figures['large']} at the largest size.",
                                                        "es": f"Error {figures['large']} en el mayor tamaño."},
                              plot=notebook.plot_path)

    return teach


def test_a_lesson_is_a_run_with_one_eta_a_record_and_no_checkpoint():
    events: list[dict] = []
    calls: list[str] = []
    metrics = lessons.run_lesson("vae", FakeConfig(), _teach(calls), on_progress=events.append, experiments=3)
    assert calls == ["small", "medium", "large"]
    assert metrics["lesson"] == "Bigger is better" and metrics["claim_held"] is True
    assert metrics["figures"] == {"small": 0.5, "medium": 0.2, "large": 0.1}
    assert metrics["reading"].startswith("Error 0.1") and metrics["reading_es"].startswith("Error 0.1 en")
    run_dir = Path(metrics["run_dir"])
    record = json.loads((run_dir / lessons.LESSON_FILE).read_text())
    assert record["state"] == "finished" and record["claim_held"] is True and set(record["experiments"]) == set(calls)
    assert not list(run_dir.glob("*.pt")), "a lesson keeps no checkpoint"
    assert latest_checkpoint("vae") is None, "the model's tools must not load a lesson's side models"
    # One progress fraction over the three experiments: stages 1..3 and a fraction that only grows.
    staged = [e for e in events if e.get("stages") == 3]
    assert [e["stage"] for e in staged] == [1, 1, 2, 2, 3, 3]
    fractions = [e["done"] for e in staged]
    assert fractions == sorted(fractions) and fractions[0] < 0.34 and fractions[-1] == 1.0
    found = lessons.latest_lesson("vae")
    assert found["run_id"] == metrics["run_id"] and found["reading"]["es"].startswith("Error")


def test_a_stopped_lesson_is_continued_without_redoing_its_finished_experiments():
    cancel = threading.Event()
    calls: list[str] = []
    with pytest.raises(CancelledError):
        lessons.run_lesson("vae", FakeConfig(), _teach(calls, stop_at="medium", cancel=cancel),
                           cancel_event=cancel, experiments=3)
    stopped = list_runs("vae")[0]
    assert stopped["state"] == "cancelled"
    record = json.loads((Path(stopped["path"]) / lessons.LESSON_FILE).read_text())
    assert record["state"] == "running" and list(record["experiments"]) == ["small"]
    assert lessons.latest_lesson("vae") is None, "an unfinished lesson is not shown as a result"

    events: list[dict] = []
    again: list[str] = []
    metrics = lessons.run_lesson("vae", FakeConfig(), _teach(again), on_progress=events.append, experiments=3)
    assert again == ["medium", "large"], "the finished experiment is taken, not trained again"
    assert metrics["continued_from"] == stopped["run_id"] and metrics["claim_held"] is True
    assert any(stopped["run_id"] in (e.get("message") or "") and "1 experiment" in e["message"] for e in events)

    # Other settings measure something else: nothing is taken from a stopped lesson with another seed.
    cancel = threading.Event()
    with pytest.raises(CancelledError):
        lessons.run_lesson("vae", FakeConfig(seed=1), _teach([], stop_at="medium", cancel=cancel),
                           cancel_event=cancel, experiments=3)
    fresh: list[str] = []
    metrics = lessons.run_lesson("vae", FakeConfig(seed=2), _teach(fresh), experiments=3)
    assert fresh == ["small", "medium", "large"] and metrics["continued_from"] is None


def test_dry_runs_are_not_shown_as_the_lesson():
    lessons.run_lesson("vae", FakeConfig(dry_run=True), _teach([]), experiments=3)
    assert lessons.latest_lesson("vae") is None
    assert lessons.latest_lesson("vae", include_dry_run=True)["dry_run"] is True


# --- the show_lesson tool ----------------------------------------------------------------------

class _Settings:
    auto_approve = False


def test_show_lesson_shows_a_finished_lesson_in_both_languages_without_asking():
    from taller.agent.graph import template_answer
    from taller.tools import needs_confirmation, run_tool

    assert needs_confirmation("show_lesson", _Settings(), {"model": "vae"}), "nothing ran yet: it would train"
    metrics = lessons.run_lesson("vae", FakeConfig(), _teach([]), experiments=3)
    assert not needs_confirmation("show_lesson", _Settings(), {"model": "vae"}), "showing a result costs nothing"
    assert needs_confirmation("show_lesson", _Settings(), {"model": "rnn"})
    out = run_tool("show_lesson", {"model": "vae"})
    assert out["state"] == "finished" and out["run_id"] == metrics["run_id"] and out["claim_held"] is True
    assert "Error 0.1 at the largest size" in out["summary"] and "claim held" in out["summary"]
    assert out["images"] == [str(Path(metrics["run_dir"]) / lessons.PLOT_FILE)]
    assert template_answer("show_lesson", out, "es").startswith("Bigger is better: Error 0.1 en el mayor tamaño")
    assert template_answer("show_lesson", out, "en") == out["summary"]


def test_show_lesson_starts_the_lesson_when_it_has_not_run(monkeypatch):
    from taller.tools import run_tool
    from taller.trainers import runs

    started: list[tuple] = []
    monkeypatch.setattr(runs, "start", lambda model, epochs=None, **overrides: started.append((model, overrides)) or "rnn-1")
    out = run_tool("show_lesson", {"model": "rnn"})
    assert started == [("rnn", {"lesson": True})]
    assert out["state"] == "started" and out["run_id"] == "rnn-1" and "under 10 minutes" in out["summary"]
    assert "lección" in out["summary_es"]


def test_list_models_tells_a_lesson_from_a_trained_model():
    from taller.tools import run_tool

    lessons.run_lesson("vae", FakeConfig(), _teach([]), experiments=3)
    out = run_tool("list_models", {})
    assert "vae lesson done (claim held)" in out["summary"] and "vae trained" not in out["summary"]
    assert out["runs"][0]["lesson"] is True


def test_in_the_chat_a_finished_lesson_is_shown_at_once_and_a_missing_one_asks_first(monkeypatch):
    from taller.agent.session import Agent
    from taller.llm import FakeChatModel
    from taller.trainers import runs

    metrics = lessons.run_lesson("rnn", FakeConfig(), _teach([]), experiments=3)
    model = FakeChatModel(responses=[{"tool": "show_lesson", "args": {"model": "rnn"}}, "Here is the lesson."])
    events = list(Agent(chat_model=model).run("show me why LSTMs remember longer", "lesson-thread"))
    kinds = [event["type"] for event in events]
    assert "interrupt" not in kinds and kinds[0] == "tool_start" and events[-1]["type"] == "final"
    assert [e["path"] for e in events if e["type"] == "image"] == [str(Path(metrics["run_dir"]) / lessons.PLOT_FILE)]
    assert "Error 0.1 at the largest size" in next(e for e in events if e["type"] == "tool_end")["result"]["summary"]

    # No VAE lesson yet: the agent asks with the lesson's own question, and only a yes starts it.
    started: list[str] = []
    monkeypatch.setattr(runs, "start", lambda name, epochs=None, **overrides: started.append(name) or "vae-lesson-1")
    agent = Agent(chat_model=FakeChatModel(responses=[{"tool": "show_lesson", "args": {"model": "vae"}}, "Started."]))
    asked = list(agent.run("enséñame la lección del compromiso de beta", "lesson-thread-2"))
    assert [e["type"] for e in asked] == ["interrupt"] and started == []
    assert "lección de vae" in asked[0]["message"] and "menos de 10 minutos" in asked[0]["message"]
    list(agent.resume("lesson-thread-2", approve=True))
    assert started == ["vae"]
