"""Tool cards: one tool call in the chat log, from "running…" to its rendered result.

A card shows the tool and its arguments while it runs, progress lines the tool reports, then
the result: the summary, a table (SQL rows or a list of records), a chart when the result has
one (its spec is built by the SQL library; :mod:`taller.ui.charts` draws it), the SQL, video
citations as links, and the raw JSON under a fold. It collapses with Enter, like any
``Collapsible``.

A database answer also gets buttons: its suggested follow-up questions (pressing one posts
:class:`ToolCard.SuggestionChosen`: the App puts it in the prompt, and Enter sends it) and a thumbs-up
(:class:`ToolCard.AnswerConfirmed`: the App stores the question and SQL as a confirmed example).
The card only asks; doing it is the App's job, off the UI thread.
"""

from __future__ import annotations

import json
from typing import Any

from rich.text import Text
from textual.containers import Vertical
from textual.message import Message
from textual.widget import Widget
from textual.widgets import Button, Collapsible, DataTable, Static

from taller.ui.charts import chart_lines
from taller.ui.formatting import citation_link, compact_args, escape, format_number, table_of

MAX_TABLE_LINES = 12  # lines a result table takes in the log (it scrolls beyond)
MAX_DETAIL_CHARS = 4000  # raw JSON shown under a tool card


def cell_text(value: Any) -> Text:
    """A table cell as plain text (a DataTable would read a str as markup)."""
    if value is None:
        return Text("")
    if isinstance(value, float):
        text = format_number(value)
        if "e" not in text:
            text = text.rstrip("0").rstrip(".")  # 138.6 rather than 138.6000 in a table
        return Text(text, justify="right")
    text = str(value)
    return Text(text if len(text) <= 60 else text[:59] + "…", justify="right" if isinstance(value, int) else "left")


CONFIRM_LABEL = "👍 Correct — remember this query"
REMEMBERED_LABEL = "✓ Remembered for similar questions"


def confirmable(tool: str, result: dict[str, Any]) -> bool:
    """Whether a result is a database answer the user can confirm: it ran, with its question and SQL."""
    return (tool == "query_database" and not result.get("error") and isinstance(result.get("question"), str)
            and isinstance(result.get("sql"), str) and bool(result["sql"].strip()))


class ToolCard(Collapsible):
    """One tool call: the tool, its arguments and status, then its result; collapses with Enter."""

    class SuggestionChosen(Message):
        """A suggested follow-up question was pressed: the App puts ``text`` in the prompt (Enter sends it)."""

        def __init__(self, card: ToolCard, text: str) -> None:
            super().__init__()
            self.card = card
            self.text = text

    class AnswerConfirmed(Message):
        """The thumbs-up on a database answer: store ``question`` → ``sql`` for ``database``."""

        def __init__(self, card: ToolCard, question: str, sql: str, database: str | None) -> None:
            super().__init__()
            self.card = card
            self.question = question
            self.sql = sql
            self.database = database

    def __init__(self, tool: str, args: Any, call_id: str | None = None, collapsed: bool = False,
                 result: dict[str, Any] | None = None) -> None:
        children = [] if args is None else [Static(f"[dim]args[/dim] {escape(compact_args(args))}", classes="tool-args")]
        super().__init__(*children, title=f"⚙ {tool} · running…", collapsed=collapsed, classes="tool-card running")
        self.tool = tool
        self.args = args
        self.call_id = call_id
        self.result: dict[str, Any] | None = None
        self.ok: bool | None = None
        self._initial_result = result  # a card rebuilt from a thread's history
        self.index: int | None = None  # its place in the thread's history, when rebuilt from it

    def on_mount(self) -> None:
        if self._initial_result is not None:
            self.finish(self._initial_result, "error" not in self._initial_result)

    @property
    def contents(self) -> Widget:
        return self.query_one(Collapsible.Contents)

    def show_progress(self, event: dict[str, Any]) -> None:
        """Progress of the running tool itself (indexing a video, generating images...)."""
        line = event.get("message") or ""
        step, total = event.get("step"), event.get("total")
        if isinstance(step, (int, float)) and isinstance(total, (int, float)) and total:
            line = f"{line}  {int(100 * step / total)}%".strip()
        try:
            status = self.query_one(".tool-progress", Static)
            status.update(escape(line))
        except Exception:
            self.contents.mount(Static(escape(line), classes="tool-progress"))

    def finish(self, result: Any, ok: bool = True, elapsed: str | None = None) -> None:
        """Show the result: summary, table, citations, and the raw JSON under a fold."""
        if not isinstance(result, dict):
            result = {"summary": str(result)}
        self.result, self.ok = result, ok and "error" not in result
        mark = "✓" if self.ok else "✗"
        self.title = f"{mark} {self.tool}" + (f" · {elapsed}" if elapsed else "")
        self.remove_class("running")
        self.add_class("ok" if self.ok else "failed")
        for old in self.query(".tool-progress"):
            old.remove()
        widgets: list[Widget] = []
        if result.get("error"):
            widgets.append(Static(f"[b]✗[/b] {escape(str(result['error']))}", classes="tool-error"))
        elif result.get("summary"):
            widgets.append(Static(escape(str(result["summary"])), classes="tool-summary"))
        table = table_of(result)
        if table is not None and not table[1]:
            table = None
            if not result.get("error") and result.get("columns"):
                widgets.append(Static("[dim](no rows)[/dim]", classes="tool-empty"))
        if table is not None:
            widgets += self._table(result, *table)
        chart = chart_lines(result.get("chart"))
        if chart and not result.get("error"):
            widgets.append(Static(Text("\n".join(chart)), classes="tool-chart"))
        if result.get("sql"):
            widgets.append(Static(f"[dim]SQL[/dim] {escape(str(result['sql']))}", classes="tool-sql"))
        actions = self._actions(result)
        if actions is not None:
            widgets.append(actions)
        citations = result.get("citations")
        if isinstance(citations, list) and citations:
            widgets.append(Static("\n".join(citation_link(c) for c in citations[:20]), classes="citations"))
        details = json.dumps(result, ensure_ascii=False, indent=1, default=str)
        if len(details) > MAX_DETAIL_CHARS:
            details = details[:MAX_DETAIL_CHARS] + "\n…"
        widgets.append(Collapsible(Static(escape(details), classes="tool-json"), title="raw result",
                                   collapsed=True, classes="tool-details"))
        self.contents.mount_all(widgets)

    # --- a database answer's buttons ------------------------------------------------------------
    def _actions(self, result: dict[str, Any]) -> Widget | None:
        """The thumbs-up and the suggested follow-ups, one button a line (they fit 80 columns)."""
        buttons: list[Widget] = []
        if confirmable(self.tool, result):
            buttons.append(Button(CONFIRM_LABEL, classes="confirm-answer", compact=True,
                                  tooltip="Store this question and its SQL as an example for similar questions"))
        suggestions = result.get("suggestions") if not result.get("error") else None
        for text in suggestions if isinstance(suggestions, list) else []:
            if isinstance(text, str) and text.strip():
                # The button's name holds the question as written (its label has an arrow).
                buttons.append(Button(f"→ {text}", name=text, classes="suggestion", compact=True))
        return Vertical(*buttons, classes="tool-actions") if buttons else None

    def drop_suggestions(self, texts: set[str]) -> None:
        """Remove the follow-up buttons whose question the answer's own next steps already offer."""
        for button in list(self.query(".suggestion").results(Button)):
            if (button.name or "") in texts:
                button.remove()

    @property
    def database(self) -> str | None:
        """The database the answer came from, as the tool was called (a URL stays a URL)."""
        if isinstance(self.args, dict) and isinstance(self.args.get("database"), str) and self.args["database"]:
            return self.args["database"]
        named = (self.result or {}).get("database")
        return named if isinstance(named, str) and named else None

    def on_button_pressed(self, event: Button.Pressed) -> None:
        button = event.button
        if button.has_class("suggestion"):
            event.stop()
            self.post_message(self.SuggestionChosen(self, button.name or str(button.label)))
        elif button.has_class("confirm-answer") and self.result is not None:
            event.stop()
            button.disabled = True  # one confirmation per answer; re-enabled if storing fails
            self.post_message(self.AnswerConfirmed(self, str(self.result["question"]), str(self.result["sql"]),
                                                   self.database))

    def remembered(self, ok: bool) -> None:
        """The App's answer to :class:`AnswerConfirmed`: show it stored, or let the user try again."""
        for button in self.query(".confirm-answer").results(Button):
            button.disabled = ok
            if ok:
                button.label = REMEMBERED_LABEL

    @staticmethod
    def _table(result: dict[str, Any], columns: list[str], rows: list[list[Any]]) -> list[Widget]:
        data = DataTable(classes="tool-table", zebra_stripes=True, cursor_type="row")
        data.add_columns(*columns)
        for row in rows:
            data.add_row(*(cell_text(cell) for cell in row))
        # A fixed height (header + rows, at most 12 lines): an "auto" height lets the first
        # layout pass show a scrollbar that then vanishes, and the table's width would jump.
        data.styles.height = min(len(rows) + 1, MAX_TABLE_LINES)
        widgets: list[Widget] = [data]
        total_rows = result.get("row_count", len(result.get("rows") or rows))
        if isinstance(total_rows, int) and total_rows > len(rows):
            widgets.append(Static(f"[dim]showing {len(rows)} of {total_rows} rows[/dim]"))
        return widgets
