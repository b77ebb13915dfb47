"""The chat page in a real headless Chromium (Debian's ``chromium``), driven by Playwright.

Skipped with a reason when ``/usr/bin/chromium`` or the ``playwright`` package is missing
(CI installs them with ``apt-get install -y chromium`` and ``pip install playwright``).
"""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from taller.llm import FakeChatModel
from taller.agent.session import Agent
from taller.config import get_settings
from taller.server import BackgroundServer
from taller.tools import get_tool

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]

if not CHROMIUM.exists():
    pytest.skip("browser test needs Debian's chromium at /usr/bin/chromium (apt-get install -y chromium)",
                allow_module_level=True)
sync_api = pytest.importorskip("playwright.sync_api", reason="browser test needs the playwright package "
                                                            "(pip install playwright; no `playwright install` needed)")


def write_png(path: Path) -> None:
    from PIL import Image

    buffer = io.BytesIO()
    Image.new("RGB", (32, 24), (20, 120, 200)).save(buffer, format="PNG")
    path.write_bytes(buffer.getvalue())


def open_browser_page(**context_options):
    """A headless Debian-Chromium page (in a context with ``context_options``) and the list its
    console errors and page errors are collected in; closes the browser on exit."""
    import contextlib

    @contextlib.contextmanager
    def opened():
        with sync_api.sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True)
            page = browser.new_context(**context_options).new_page()
            page.set_default_timeout(20000)
            problems: list[str] = []
            page.on("console", lambda message: problems.append(message.text) if message.type == "error" else None)
            page.on("pageerror", lambda error: problems.append(str(error)))
            try:
                yield page, problems
            finally:
                browser.close()

    return opened()


@pytest.fixture
def browser_page():
    with open_browser_page() as opened:
        yield opened


def test_chat_page_streams_tools_images_approval_and_cancel(browser_page, monkeypatch):
    page, problems = browser_page
    grid = get_settings().outputs_dir / "samples.png"
    grid.parent.mkdir(parents=True, exist_ok=True)
    write_png(grid)
    monkeypatch.setattr(get_tool("list_models"), "func",
                        lambda **kwargs: {"summary": "One trained model.", "images": [str(grid)]})
    trained = []
    monkeypatch.setattr(get_tool("train_model"), "func",
                        lambda **kwargs: trained.append(kwargs) or {"summary": "Run started.", "run_id": "vae-1"})
    long_answer = " ".join(f"w{i}" for i in range(400))
    model = FakeChatModel(token_delay=0.01, responses=[
        {"tool": "list_models", "args": {}}, "Here is your sample grid.",
        {"tool": "train_model", "args": {"model": "vae", "epochs": 2}}, "Training has started.",
        {"tool": "none", "args": {}}, long_answer,
    ])
    agent = Agent(chat_model=model)
    with BackgroundServer(agent=agent) as server:
        page.goto(server.page_url)
        page.wait_for_selector("#status[data-state=open]")
        assert page.evaluate("location.hash") == "", "the token leaves the address bar"

        # A tool call: tool card, image fetched with the token, streamed answer.
        page.fill("#input", "show my models")
        page.press("#input", "Enter")
        page.wait_for_selector(".card.tool[data-state=done]")
        page.wait_for_function("() => { const img = document.querySelector('figure img');"
                               " return img && img.complete && img.naturalWidth === 32; }")
        answer = page.locator(".msg.assistant").last
        page.wait_for_function("() => !document.querySelector('.msg.assistant.streaming')")
        assert answer.inner_text().startswith("Here is your sample grid.")

        # A costly tool: the approval card, then the run.
        page.fill("#input", "train a vae for 2 epochs")
        page.press("#input", "Enter")
        page.click(".card.interrupt button.approve")
        page.wait_for_function("() => [...document.querySelectorAll('.msg.assistant')]"
                               ".some(m => m.textContent.startsWith('Training has started.') && !m.classList.contains('streaming'))")
        assert trained == [{"model": "vae", "epochs": 2}]
        assert page.locator(".card.tool[data-tool=train_model][data-state=done]").count() == 1

        # Cancel a long streamed answer.
        page.fill("#input", "tell me everything")
        page.press("#input", "Enter")
        page.wait_for_selector(".msg.assistant.streaming")
        page.click("#cancel")
        page.wait_for_selector(".msg.assistant.cancelled")
        cancelled_text = page.locator(".msg.assistant.cancelled").inner_text()
        assert "w0" in cancelled_text and "w399" not in cancelled_text
        assert page.is_disabled("#cancel")

        # Reloading shows the thread again from the server's history.
        page.reload()
        page.wait_for_selector("#status[data-state=open]")
        page.wait_for_selector(".msg.user")
        users = page.locator(".msg.user .body").all_inner_texts()
        assert users[:3] == ["show my models", "train a vae for 2 epochs", "tell me everything"]
    agent.close()
    assert problems == [], problems


def test_page_without_token_asks_for_it_and_uploads_an_image(browser_page, tmp_path):
    page, problems = browser_page
    photo = tmp_path / "photo.png"
    write_png(photo)
    model = FakeChatModel(responses=[{"tool": "none", "args": {}}, lambda messages: "saw: " + messages[-1].content])
    agent = Agent(chat_model=model)
    with BackgroundServer(agent=agent) as server:
        page.goto(f"http://127.0.0.1:{server.port}/")
        page.wait_for_selector("#token-box:not([hidden])")
        page.fill("#token-input", server.token)
        page.click("#token-save")
        page.wait_for_selector("#status[data-state=open]")

        # The attach button reads the file in the browser and sends it as base64.
        page.set_input_files("#file", str(photo))
        page.wait_for_function("() => document.getElementById('attachment-name').textContent === 'photo.png'")
        page.fill("#input", "what is in this photo?")
        page.press("#input", "Enter")
        page.wait_for_function("() => [...document.querySelectorAll('.msg.assistant')]"
                               ".some(m => m.textContent.includes('(attached file:'))")
    uploads = list((get_settings().outputs_dir / "uploads").iterdir())
    assert len(uploads) == 1 and uploads[0].read_bytes() == photo.read_bytes()
    assert str(uploads[0]) in page.locator(".msg.assistant").last.inner_text()
    agent.close()
    assert problems == [], problems


def test_database_answer_chart_suggestions_and_thumbs_up(browser_page, monkeypatch):
    import taller.knowledge.sql as sqlmod

    page, problems = browser_page
    points = [["USA", 523.06], ["Canada", 303.96], ["France", 195.1]]
    sql = "SELECT BillingCountry, SUM(Total) FROM Invoice GROUP BY 1 ORDER BY 2 DESC LIMIT 3"
    asked: list[str] = []

    def query_database(question, database=None):
        asked.append(question)
        return {"summary": "The USA buys the most.", "question": question, "database": "sales",
                "sql": sql, "columns": ["country", "sales"], "rows": points, "row_count": 3,
                "chart": {"type": "bar", "x": "country", "y": "sales", "points": points},
                "suggestions": ["Which genres sell most?", "And the top 5 Invoice by Total?"]}

    monkeypatch.setattr(get_tool("query_database"), "func", query_database)
    stored: list[tuple] = []
    monkeypatch.setattr(sqlmod, "remember_example", lambda question, sql, database=None: stored.append(
        (question, sql, database)) or {"summary": "Remembered.", "id": "example:1", "sql": sql, "database": database})
    model = FakeChatModel(responses=[
        {"tool": "query_database", "args": {"question": "Which 3 countries buy the most?"}}, "The USA.",
        {"tool": "query_database", "args": {"question": "Which genres sell most?"}}, "Rock.",
    ])
    agent = Agent(chat_model=model)
    with BackgroundServer(agent=agent) as server:
        page.goto(server.page_url)
        page.wait_for_selector("#status[data-state=open]")
        page.fill("#input", "Which 3 countries buy the most?")
        page.press("#input", "Enter")
        page.wait_for_selector(".card.tool[data-state=done] svg.chart")
        card = page.locator(".card.tool").first
        # Inline SVG drawn by the page from the spec: one bar per point, tallest for the largest.
        heights = [float(h) for h in card.locator("svg.chart rect.bar").evaluate_all(
            "bars => bars.map(b => b.getAttribute('height'))")]
        assert len(heights) == 3 and heights[0] == max(heights) and heights[2] == min(heights)
        assert card.locator("svg.chart text.label").all_text_contents() == ["USA", "Canada", "France"]
        assert stored == [], "an answer nobody confirmed is never stored"

        card.locator("button.confirm").click()
        page.wait_for_function("() => document.querySelector('.card.tool button.confirm').textContent.startsWith('✓')")
        assert stored == [("Which 3 countries buy the most?", sql, "sales")]
        assert card.locator("button.confirm").is_disabled()

        # The follow-ups become the answer's suggested next steps: a button puts its text in the
        # input and sends nothing; Enter sends it.
        page.wait_for_function("() => document.querySelector('.msg.assistant .suggestions')"
                               " && !document.querySelector('.msg.assistant.streaming')")
        assert card.locator(".suggestions").count() == 0, "shown once, under the answer"
        chips = page.locator(".msg.assistant .suggestions button.chip")
        assert chips.all_inner_texts() == ["Which genres sell most?", "And the top 5 Invoice by Total?"]
        chips.first.click()
        assert page.input_value("#input") == "Which genres sell most?"
        assert page.evaluate("document.activeElement.id") == "input"
        page.wait_for_timeout(300)
        assert asked == ["Which 3 countries buy the most?"], "a suggestion never sends by itself"
        page.press("#input", "Enter")
        page.wait_for_selector(".card.tool >> nth=1")
        page.wait_for_function("() => [...document.querySelectorAll('.msg.assistant')]"
                               ".some(m => m.textContent.startsWith('Rock.') && !m.classList.contains('streaming'))")
        # The thread may be re-drawn from its history when the answer ends: wait for both turns.
        page.wait_for_function("() => document.querySelectorAll('.msg.user .body').length === 2")
        assert page.locator(".msg.user .body").all_inner_texts() == ["Which 3 countries buy the most?",
                                                                     "Which genres sell most?"]
        assert asked == ["Which 3 countries buy the most?", "Which genres sell most?"]
    agent.close()
    assert problems == [], problems
