"""Snapshot tests of the chat's main screens at 80×24 and 120×40 (pytest-textual-snapshot).

Deterministic by construction: fixed thread ids, a fixed data folder, no timings on screen, the
device label given, tools replaced by fixed results. Update after an intended change with
``pytest tests/test_tui_snapshots.py --snapshot-update`` and look at the SVGs.
"""

from __future__ import annotations

import pytest

from taller.llm import FakeChatModel
from taller.agent.session import Agent
from taller.progress import bus
from taller.tools import get_tool
from taller.tui import TallerApp


@pytest.fixture(autouse=True)
def fixed_environment(monkeypatch):
    from taller.config import get_settings

    monkeypatch.setenv("TALLER_DATA_DIR", "/data/taller")
    get_settings(reload=True)
    monkeypatch.setattr(get_tool("query_database"), "func", lambda question, database=None: {
        "summary": "The three best-selling artists by revenue.",
        "sql": "SELECT ar.Name, SUM(il.UnitPrice * il.Quantity) AS Revenue FROM ... LIMIT 3",
        "columns": ["Artist", "Revenue"],
        "rows": [["Iron Maiden", 138.6], ["U2", 105.93], ["Metallica", 90.09]]})
    monkeypatch.setattr(get_tool("train_model"), "func", lambda model, epochs=None: {
        "summary": f"Training {model} in the background (run {model}-demo).", "run_id": f"{model}-demo"})


def make_app(responses: list, **options) -> TallerApp:
    agent = Agent(chat_model=FakeChatModel(responses=list(responses)))
    return TallerApp(agent=agent, thread_id=options.pop("thread_id", "thread-1"), show_timings=False,
                     device_label="CPU", images="none", **options)


SQL_SCRIPT = [{"tool": "query_database", "args": {"question": "top 3 artists by revenue"}},
              "**Iron Maiden** leads with $138.60, then U2 and Metallica."]


async def idle(pilot) -> None:
    """Wait until no worker runs (a turn's end starts the one that reads the thread's branches)."""
    for _ in range(50):
        await pilot.app.workers.wait_for_complete()
        await pilot.pause()
        if not any(worker.is_running for worker in pilot.app.workers):
            return


async def ask(pilot, text: str) -> None:
    pilot.app.prompt.cursor_blink = False  # a blinking cursor would differ between screenshots
    pilot.app.prompt.value = text
    await pilot.press("enter")
    await idle(pilot)


def test_chat_with_sql_table_80x24(snap_compare):
    app = make_app(SQL_SCRIPT)
    assert snap_compare(app, terminal_size=(80, 24), run_before=lambda pilot: ask(pilot, "Which 3 artists sell most?"))


def test_confirmation_modal_80x24(snap_compare):
    app = make_app([{"tool": "train_model", "args": {"model": "autoencoder", "epochs": 3}}])
    assert snap_compare(app, terminal_size=(80, 24), run_before=lambda pilot: ask(pilot, "train the autoencoder, 3 epochs"))


def test_threads_and_training_progress_120x40(snap_compare):
    script = [{"tool": "none", "args": {}}, "An autoencoder compresses its input to a small code and rebuilds it.",
              *SQL_SCRIPT]
    app = make_app(script, show_threads=True)

    async def run_before(pilot) -> None:
        await ask(pilot, "What is an autoencoder?")
        app.action_new_thread()
        await pilot.pause()
        # The new thread gets a fixed id so the screen is the same on every run.
        app.open_thread("thread-2", force=True)
        await ask(pilot, "Which 3 artists sell most?")
        for epoch, loss in enumerate([0.21, 0.12, 0.09, 0.071], start=1):
            bus.publish({"type": "progress", "source": "train_model", "run_id": "autoencoder-demo",
                         "model": "autoencoder", "epoch": epoch, "epochs": 10, "step": 235, "total": 235,
                         "loss": loss, "metric": loss * 0.9, "metric_name": "val_mse", "eta_s": 42.0 * (10 - epoch)})
        await pilot.pause()
        await pilot.pause()

    assert snap_compare(app, terminal_size=(120, 40), run_before=run_before)


def test_branch_mark_and_next_steps_80x24(snap_compare, monkeypatch):
    """A regenerated SQL answer: ◀ 2/2 ▶ on the question, the next steps as /1 /2 buttons."""
    result = {"summary": "The three best-selling artists by revenue.", "sql": "SELECT ar.Name … LIMIT 3",
              "question": "top 3 artists by revenue", "columns": ["Artist", "Revenue"],
              "rows": [["Iron Maiden", 138.6], ["U2", 105.93], ["Metallica", 90.09]],
              "suggestions": ["Which genres sell most?", "Which customers spent most?"]}
    monkeypatch.setattr(get_tool("query_database"), "func", lambda question, database=None: result)
    app = make_app([*SQL_SCRIPT, *SQL_SCRIPT])

    async def run_before(pilot) -> None:
        await ask(pilot, "Which 3 artists sell most?")
        await pilot.press("ctrl+r")
        await idle(pilot)
        await pilot.pause()

    assert snap_compare(app, terminal_size=(80, 24), run_before=run_before)


def test_copy_menu_80x24(snap_compare):
    answer = "Count the rows:\n\n```sql\nSELECT COUNT(*) FROM Invoice;\n```\n\n| a | b |\n|---|---|\n| 1 | 2 |\n"
    app = make_app([{"tool": "none", "args": {}}, answer])

    async def run_before(pilot) -> None:
        await ask(pilot, "How do I count invoices?")
        await pilot.press("ctrl+y")
        await pilot.pause()

    assert snap_compare(app, terminal_size=(80, 24), run_before=run_before)
