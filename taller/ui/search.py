"""Search across every saved thread: type, see the matches, Enter opens the thread at the message.

The search itself is the agent's (:meth:`taller.agent.session.Agent.search`: SQLite full-text
search over message text, tool names and arguments such as SQL); this screen asks it in a thread
worker as the user types (after a short pause, the newest query winning), lists the matches
best first and dismisses with the chosen :class:`SearchHit`. The App opens the thread and
scrolls to the message.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Input, Label, OptionList, Static
from textual.widgets.option_list import Option

from taller.ui.formatting import escape

SEARCH_LIMIT = 50  # matches listed (the agent ranks them; more would not be read)
TYPING_PAUSE_S = 0.15  # wait this long after a key before searching
SNIPPET_CHARS = 150


@dataclass(frozen=True)
class SearchHit:
    """One match: the thread and the index of the message in its history."""

    thread_id: str
    message_index: int
    title: str = ""
    role: str = ""
    snippet: str = ""


def hits_from(results: list[dict[str, Any]]) -> list[SearchHit]:
    """The agent's result dicts as hits; entries without a thread or an index are skipped."""
    hits = []
    for result in results[:SEARCH_LIMIT]:
        if not isinstance(result, dict) or not result.get("thread_id"):
            continue
        try:
            index = int(result.get("message_index"))
        except (TypeError, ValueError):
            continue
        hits.append(SearchHit(str(result["thread_id"]), index, str(result.get("title") or result["thread_id"]),
                              str(result.get("role") or ""), " ".join(str(result.get("snippet") or "").split())))
    return hits


def hit_prompt(hit: SearchHit) -> Text:
    """Two lines of a match: the thread and who wrote it, then the snippet (never read as markup)."""
    snippet = hit.snippet if len(hit.snippet) <= SNIPPET_CHARS else hit.snippet[: SNIPPET_CHARS - 1] + "…"
    text = Text()
    text.append(hit.title, style="bold")
    text.append(f"  · {hit.role or 'message'} {hit.message_index}", style="dim")
    text.append("\n" + snippet)
    return text


class SearchScreen(ModalScreen["SearchHit | None"]):
    """Type to search every thread; ↓ or Enter goes to the matches, Enter opens one, Esc closes."""

    BINDINGS = [
        Binding("escape", "close", "Close", tooltip="close the search"),
        Binding("down", "to_results", "Matches", show=False, tooltip="from the query: go to the matches"),
    ]

    def __init__(self, agent: Any, query: str = "") -> None:
        super().__init__(classes="modal")
        self.agent = agent
        self.initial_query = query
        self.hits: list[SearchHit] = []
        self._timer = None
        self._asked = ""  # the query whose answer the list should show

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog", id="search-dialog"):
            yield Static("Search all threads", classes="dialog-title")
            yield Input(value=self.initial_query, placeholder="words, a tool name, SQL…", id="search-input")
            yield OptionList(id="search-results")
            yield Label("type to search", id="search-note")
            yield Static("[dim]↓ to the matches · Enter opens · Esc closes[/dim]")

    def on_mount(self) -> None:
        self.query_one(Input).focus()
        if self.initial_query.strip():
            self._search_now()

    @property
    def results(self) -> OptionList:
        return self.query_one("#search-results", OptionList)

    @on(Input.Changed, "#search-input")
    def _typed(self, event: Input.Changed) -> None:
        event.stop()
        if self._timer is not None:
            self._timer.stop()
        self._timer = self.set_timer(TYPING_PAUSE_S, self._search_now)

    @on(Input.Submitted, "#search-input")
    def _submitted(self, event: Input.Submitted) -> None:
        event.stop()
        if self._asked != event.value.strip():
            self._search_now()  # Enter before the pause ended: search now, then go down
        self.action_to_results()

    def _search_now(self) -> None:
        query = self.query_one(Input).value.strip()
        self._asked = query
        if not query:
            self._show(query, [], None)
            return
        self.query_one("#search-note", Label).update("searching…")
        self._search(query)

    @work(thread=True, group="search", exclusive=True, exit_on_error=False)
    def _search(self, query: str) -> None:
        try:
            results, problem = self.agent.search(query, limit=SEARCH_LIMIT), None
        except Exception as exc:  # the index is a local SQLite file: say what failed, keep the screen
            results, problem = [], f"search failed: {type(exc).__name__}: {exc}"
        try:
            self.app.call_from_thread(self._show, query, hits_from(results or []), problem)
        except RuntimeError:  # the app has closed
            pass

    def _show(self, query: str, hits: list[SearchHit], problem: str | None) -> None:
        if query != self._asked:
            return  # an older query answered late
        self.hits = hits
        self.results.clear_options()
        self.results.add_options([Option(hit_prompt(hit), id=str(number)) for number, hit in enumerate(hits)])
        note = problem or (f"{len(hits)} match(es)" if hits else ("no match" if query else "type to search"))
        self.query_one("#search-note", Label).update(escape(note))

    def action_to_results(self) -> None:
        if self.hits:
            self.results.focus()
            if self.results.highlighted is None:
                self.results.highlighted = 0

    @on(OptionList.OptionSelected, "#search-results")
    def _chosen(self, event: OptionList.OptionSelected) -> None:
        event.stop()
        self.dismiss(self.hits[int(event.option.id or 0)])

    def action_close(self) -> None:
        self.dismiss(None)
