"""The runs panel in the running App (Pilot): it prunes ended runs and notices runs that ended."""

from __future__ import annotations

from taller.agent.session import Agent
from taller.llm import FakeChatModel
from taller.tui import TallerApp
from taller.ui import widgets
from taller.ui.widgets import RunProgress


def make_app() -> TallerApp:
    return TallerApp(agent=Agent(chat_model=FakeChatModel(responses=[])), thread_id="t", show_timings=False,
                     device_label="CPU", images="none")


async def test_a_burst_of_runs_keeps_the_running_ones_and_the_newest():
    app = make_app()
    async with app.run_test(size=(80, 24)) as pilot:
        panel = app.runs_panel
        panel.update_from({"run_id": "vae-1", "model": "vae", "epoch": 1, "epochs": 5})  # still running
        # Five runs that ended, in one tick (rows mounted and pruned before the screen refreshes).
        for index in range(5):
            panel.update_from({"run_id": f"rnn-{index}", "model": "rnn", "state": "cancelled"})
        await pilot.pause()
        await pilot.pause()
        shown = [row.run_id for row in app.query(RunProgress)]
        assert shown == ["vae-1", "rnn-3", "rnn-4"]
        assert [row.run_id for row in panel.rows()] == shown
        assert [run.run_id for run in panel.tracker] == shown


async def test_a_run_that_finished_without_an_event_is_noticed(monkeypatch):
    from taller.trainers import runs

    states = {"vae-7": "running"}
    monkeypatch.setattr(runs, "get", lambda run_id: {"run_id": run_id, "state": states[run_id]})
    monkeypatch.setattr(widgets, "RUN_POLL_S", 0.05)
    app = make_app()
    notified: list[tuple[str, str]] = []
    monkeypatch.setattr(app, "notify", lambda message, severity="information", **options: notified.append((message, severity)))
    async with app.run_test(size=(80, 24)) as pilot:
        app.runs_panel.update_from({"run_id": "vae-7", "model": "vae", "epoch": 4, "epochs": 5, "eta_s": 20.0})
        await pilot.pause(0.2)
        [row] = list(app.query(RunProgress))
        assert row.state == "running" and "ETA 0:20" in str(row.query_one(".run-label").render())
        states["vae-7"] = "finished"  # the trainer wrote its status file; no progress event follows
        for _ in range(40):
            await pilot.pause(0.05)
            if row.state == "finished":
                break
        assert row.state == "finished"
        label = str(row.query_one(".run-label").render())
        assert "finished" in label and "ETA" not in label
        assert row.query_one("ProgressBar").progress == 100.0
        assert row.has_class("ended") and row.query_one(".run-cancel").disabled
        assert notified == [("Training run vae-7 finished.", "information")]
