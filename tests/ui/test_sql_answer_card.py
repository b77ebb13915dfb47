"""A database answer's card in the terminal: its chart, the thumbs-up and the suggested follow-ups.

The chart text is checked on its own (:mod:`taller.ui.charts`); the buttons in the running App
(Pilot) with a scripted agent: the thumbs-up stores the question and SQL through
``taller.knowledge.sql.remember_example`` (replaced here by a recorder; the server test stores
for real), and a suggestion pressed goes to the prompt, sent only by Enter.
"""

from __future__ import annotations

import pytest
from textual.widgets import Button

from taller.agent.session import Agent
from taller.llm import FakeChatModel
from taller.tools import get_tool
from taller.tui import TallerApp
from taller.ui.cards import CONFIRM_LABEL, REMEMBERED_LABEL, ToolCard, confirmable
from taller.ui.charts import BAR_WIDTH, bar, chart_lines, sparkline
from taller.ui.widgets import SuggestionsBar, UserMessage

SIZE = (100, 60)  # tall enough that the card's buttons are on screen to click

POINTS = [["USA", 523.06], ["Canada", 303.96], ["France", 195.1]]
RESULT = {
    "summary": "The query returned 3 rows; the first is country = USA, sales = 523.06.",
    "question": "Which 3 countries buy the most?", "database": "sales",
    "sql": "SELECT BillingCountry AS country, SUM(Total) AS sales FROM Invoice GROUP BY 1 ORDER BY 2 DESC LIMIT 3",
    "columns": ["country", "sales"], "rows": POINTS, "row_count": 3,
    "chart": {"type": "bar", "x": "country", "y": "sales", "points": POINTS},
    "suggestions": ["Which genres sell most?", "And the top 5 Invoice by Total?"],
}


# --- the chart as text ---------------------------------------------------------------------------


def test_bars_are_scaled_to_the_largest_value_in_eighths():
    lines = chart_lines(RESULT["chart"])
    assert lines[0] == "sales by country"
    usa, canada, france = lines[1:]
    assert usa.startswith("USA    ") and usa.endswith(" 523.06")
    assert bar(523.06, 523.06).count("█") == BAR_WIDTH  # the largest fills the width
    assert bar(303.96, 523.06) == "█" * 17 + "▍"  # 17.43 cells: 17 full and 3/8 of one
    assert "█" * 17 + "▍" in canada and "France" in france
    assert bar(0.0, 10.0) == "" and bar(5.0, 0.0) == ""
    negative = chart_lines({"type": "bar", "x": "k", "y": "v", "points": [["a", -4], ["b", 2]]})
    assert negative[1].endswith("-4") and negative[1].count("█") == BAR_WIDTH


def test_a_line_is_a_sparkline_with_its_ends_and_range():
    spec = {"type": "line", "x": "month", "y": "sales", "points": [["2021-01", 1], ["2021-02", 5], ["2021-03", 3]]}
    assert chart_lines(spec) == ["sales by month", "▁█▅", "2021-01 … 2021-03  ·  min 1  max 5"]
    assert sparkline([2.0, 2.0]) == "▅▅"


@pytest.mark.parametrize("spec", [None, {}, {"type": "pie", "points": POINTS}, {"type": "bar", "points": [["a", 1]]},
                                  {"type": "bar", "points": [["a", "x"], ["b", None]]}])
def test_what_is_no_chart_draws_nothing(spec):
    assert chart_lines(spec) == []


def test_only_a_database_answer_that_ran_can_be_confirmed():
    assert confirmable("query_database", RESULT)
    assert not confirmable("query_database", {**RESULT, "error": "no such column: Totl"})
    assert not confirmable("query_database", {k: v for k, v in RESULT.items() if k != "question"})
    assert not confirmable("describe_database", RESULT)


# --- the card in the App ---------------------------------------------------------------------------


def make_app(responses: list) -> tuple[TallerApp, FakeChatModel]:
    fake = FakeChatModel(responses=list(responses))
    app = TallerApp(agent=Agent(chat_model=fake), thread_id="thread-1", show_timings=False, device_label="CPU",
                    images="none")
    return app, fake


async def settle(pilot) -> None:
    await pilot.app.workers.wait_for_complete()
    await pilot.pause()
    await pilot.pause()


async def send(pilot, text: str) -> None:
    pilot.app.prompt.value = text
    await pilot.press("enter")
    await settle(pilot)


@pytest.fixture
def sql_tool(monkeypatch):
    """query_database answers with RESULT (for the question it is asked); returns the questions asked."""
    asked: list[dict] = []

    def body(question, database=None):
        asked.append({"question": question, "database": database})
        return {**RESULT, "question": question, "database": database or "sales"}

    monkeypatch.setattr(get_tool("query_database"), "func", body)
    return asked


@pytest.fixture
def remembered(monkeypatch):
    """Replace remember_example with a recorder; set ``fail`` to make it refuse."""
    import taller.knowledge.sql as sqlmod

    calls: list[tuple] = []
    state = {"fail": None}

    def remember_example(question, sql, database=None):
        calls.append((question, sql, database))
        if state["fail"]:
            raise sqlmod.UnsafeSQLError(state["fail"], sqlmod.Rule.WRITE)
        return {"summary": f"Remembered the query for {question!r} in {database}.", "id": "example:1",
                "sql": sql, "database": database}

    monkeypatch.setattr(sqlmod, "remember_example", remember_example)
    return calls, state


async def test_card_shows_the_chart_and_the_thumbs_up_stores_only_when_pressed(sql_tool, remembered):
    calls, _ = remembered
    app, _ = make_app([{"tool": "query_database", "args": {"question": "Which 3 countries buy the most?",
                                                           "database": "ref"}}, "The USA buys the most."])
    notes: list[tuple[str, str]] = []
    async with app.run_test(size=SIZE) as pilot:
        app.notify = lambda message, severity="information", **options: notes.append((message, severity))
        await send(pilot, "Which 3 countries buy the most?")
        [card] = list(app.query(ToolCard))
        chart = str(card.query_one(".tool-chart").render())
        assert "sales by country" in chart and "USA" in chart and "█" * BAR_WIDTH in chart
        assert calls == [], "an answer nobody confirmed is never stored"
        thumb = card.query_one(".confirm-answer")
        assert str(thumb.label) == CONFIRM_LABEL
        thumb.scroll_visible(animate=False)
        await pilot.pause()
        await pilot.click(thumb)
        await settle(pilot)
        # The database as the tool was called ("ref"), not only the name the result gives.
        assert calls == [("Which 3 countries buy the most?", RESULT["sql"], "ref")]
        assert thumb.disabled and str(thumb.label) == REMEMBERED_LABEL
        assert notes and notes[-1][1] == "information" and "Remembered" in notes[-1][0]


async def test_a_refused_example_says_why_and_can_be_tried_again(sql_tool, remembered):
    calls, state = remembered
    state["fail"] = "a DELETE changes data"
    app, _ = make_app([{"tool": "query_database", "args": {"question": "Which 3 countries buy the most?"}}, "Done."])
    notes: list[tuple[str, str]] = []
    async with app.run_test(size=SIZE) as pilot:
        app.notify = lambda message, severity="information", **options: notes.append((message, severity))
        await send(pilot, "Which 3 countries buy the most?")
        thumb = app.query_one(ToolCard).query_one(".confirm-answer")
        thumb.press()
        await settle(pilot)
        assert calls == [("Which 3 countries buy the most?", RESULT["sql"], "sales")]  # the result's name
        assert not thumb.disabled and str(thumb.label) == CONFIRM_LABEL
        assert notes[-1][1] == "error" and "a DELETE changes data" in notes[-1][0]


async def test_a_suggestion_pressed_goes_to_the_prompt_and_enter_sends_it(sql_tool, remembered):
    app, fake = make_app([
        {"tool": "query_database", "args": {"question": "Which 3 countries buy the most?"}}, "The USA.",
        {"tool": "query_database", "args": {"question": "Which genres sell most?"}}, "Rock.",
    ])
    async with app.run_test(size=SIZE) as pilot:
        await send(pilot, "Which 3 countries buy the most?")
        # The answer's next steps are the SQL follow-ups: numbered buttons under the answer, and
        # the card drops its own copies of them (the thumbs-up stays).
        card = app.query_one(ToolCard)
        assert list(card.query(".suggestion")) == [] and card.query(".confirm-answer")
        bar = app.query_one(SuggestionsBar)
        buttons = list(bar.query(Button))
        assert [str(b.label) for b in buttons] == [f"/{n} → {text}" for n, text in enumerate(RESULT["suggestions"], 1)]
        buttons[0].scroll_visible(animate=False)
        await pilot.pause()
        await pilot.click(buttons[0])
        await settle(pilot)
        # Nothing ran: the question waits in the prompt for Enter.
        assert app.prompt.value == "Which genres sell most?" and app.prompt.has_focus
        assert [str(m.render()) for m in app.query(UserMessage)] == ["Which 3 countries buy the most?"]
        assert len(sql_tool) == 1
        await pilot.press("enter")
        await settle(pilot)
        users = [str(message.render()) for message in app.query(UserMessage)]
        assert users == ["Which 3 countries buy the most?", "Which genres sell most?"]
        assert [call["question"] for call in sql_tool] == ["Which 3 countries buy the most?", "Which genres sell most?"]
        assert len(list(app.query(ToolCard))) == 2
        assert remembered[0] == []


async def test_a_card_rebuilt_from_history_keeps_its_follow_ups_and_they_fill_the_prompt(sql_tool, remembered):
    app, fake = make_app([{"tool": "query_database", "args": {"question": "Which 3 countries buy the most?"}},
                          "The USA."])
    async with app.run_test(size=SIZE) as pilot:
        await send(pilot, "Which 3 countries buy the most?")
        app.open_thread("thread-1", force=True)  # the saved thread: no answer bar, the card's own buttons
        await settle(pilot)
        assert not app.query(SuggestionsBar)
        card = app.query_one(ToolCard)
        card.collapsed = False
        await pilot.pause()
        button = card.query_one(".suggestion", Button)
        button.focus()
        await pilot.press("enter")
        await settle(pilot)
        assert app.prompt.value == RESULT["suggestions"][0]
        assert len(sql_tool) == 1
