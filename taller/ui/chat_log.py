"""The chat log: the conversation as it happens, and as it is rebuilt from a saved thread.

It turns the agent's events into widgets, on the UI thread: ``token`` pieces stream into one
Markdown answer, ``tool_start``/``tool_end`` become a tool card and its result, ``image`` an
inline picture, ``final`` closes the answer with its footer (backend · model · time), ``error`` a
red line. A saved thread's history (``agent.history``) becomes the same widgets, cards folded,
each knowing its ``index`` in the history (messages streamed live get theirs with
:meth:`ChatLog.assign_indexes` once the agent has saved them): editing, branch indicators and a
search's jump find messages by it.
Events that concern the whole App (``progress`` of a run, ``interrupt`` for a confirmation) are
the App's to handle. A tool run by a slash command also gets its card here, run in a worker.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from textual import work
from textual.containers import VerticalScroll
from textual.widget import Widget

from taller.ui.cards import ToolCard
from taller.ui.formatting import escape
from taller.ui.widgets import AssistantMessage, ErrorMessage, ImageBlock, Notice, SuggestionsBar, UserMessage


class ChatLog(VerticalScroll):
    """The scrolling conversation: messages, streamed answers, tool cards, images, notices."""

    def __init__(self, image_renderer: type[Widget] | None = None, show_timings: bool = True, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.image_renderer = image_renderer
        self.show_timings = show_timings
        self._assistant: AssistantMessage | None = None  # the answer streaming now
        self._cards: dict[str, ToolCard] = {}  # call id -> card, for tool_end and image events
        self._card_started: dict[str, float] = {}

    # --- whole log ------------------------------------------------------------------------------
    def clear(self) -> None:
        """Empty the screen (the thread itself is kept)."""
        self._assistant = None
        self.remove_children()

    def show_history(self, history: list[dict[str, Any]]) -> None:
        """Replace the log with a saved thread's messages."""
        self._assistant = None
        self._cards.clear()
        self.remove_children()
        widgets = []
        for entry in history:
            widgets.extend(self._history_widgets(entry))
        if widgets:
            self.mount_all(widgets)

    def _history_widgets(self, entry: dict[str, Any]) -> list[Widget]:
        role, content = entry.get("role"), entry.get("content") or ""
        index = entry.get("index") if isinstance(entry.get("index"), int) else None
        if role == "user":
            return [UserMessage(content, index=index)]
        if role == "assistant":
            return [AssistantMessage(content, index=index)]
        if role == "tool":
            result = entry.get("result")
            if not isinstance(result, dict):
                try:
                    result = json.loads(content)
                except (TypeError, ValueError):
                    result = {"summary": content}
            if not isinstance(result, dict):
                result = {"summary": str(result)}
            args = entry.get("args") if isinstance(entry.get("args"), dict) else None
            card = ToolCard(entry.get("name") or "tool", args, collapsed=True, result=result)
            card.index = index
            out: list[Widget] = [card]
            for path in result.get("images") or []:
                if Path(str(path)).is_file():
                    out.append(ImageBlock(str(path), renderer=self.image_renderer))
            return out
        return []

    # --- messages by place ----------------------------------------------------------------------
    def selectables(self) -> list[Widget]:
        """The messages and tool cards that can be selected, top to bottom."""
        return [child for child in self.children if isinstance(child, (UserMessage, AssistantMessage, ToolCard))]

    def message_at(self, index: int) -> Widget | None:
        """The message or tool card shown for history entry ``index``, if it is on screen."""
        return next((widget for widget in self.selectables() if getattr(widget, "index", None) == index), None)

    def last_of(self, kind: type[Widget]) -> Widget | None:
        found = [child for child in self.children if isinstance(child, kind)]
        return found[-1] if found else None

    async def remove_from(self, widget: Widget) -> None:
        """Remove ``widget`` and everything after it (an edit or a regeneration replaces them)."""
        children = list(self.children)
        if widget not in children:
            return
        doomed = children[children.index(widget):]
        for card in [w for w in doomed if isinstance(w, ToolCard)]:
            self._cards.pop(str(card.call_id), None)
        self._assistant = None
        await self.remove_children(doomed)

    def assign_indexes(self, history: list[dict[str, Any]]) -> None:
        """Give the messages streamed live their place in the saved history, for editing.

        Matched from the end, by role and text: a message the agent did not keep (a refused
        request, a cancelled answer) stays without an index instead of shifting the others.
        """
        for kind, role in ((UserMessage, "user"), (AssistantMessage, "assistant")):
            entries = [e for e in history if e.get("role") == role and isinstance(e.get("index"), int)]
            widgets = [w for w in self.children if isinstance(w, kind)]
            position = len(entries) - 1
            for widget in reversed(widgets):
                if position < 0:
                    widget.index = None
                    continue
                saved = str(entries[position].get("content") or "").strip()
                shown = widget.text.strip()
                # A message sent with attachments is saved with "(attached file: …)" lines after it.
                if saved == shown or (role == "user" and shown and saved.startswith(shown)):
                    widget.index = entries[position]["index"]
                    position -= 1
                else:
                    widget.index = None

    def show_branches(self, labels: dict[int, str]) -> None:
        """Put each ``◀ 2/3 ▶`` label on the message of that history index; clear the others."""
        for widget in self.children:
            if isinstance(widget, (UserMessage, AssistantMessage)):
                label = labels.get(widget.index, "") if widget.index is not None else ""
                if label or widget.branch:
                    widget.show_branch(label)

    async def add_suggestions(self, suggestions: list[dict[str, str]]) -> SuggestionsBar | None:
        """Numbered next steps under the answer; the last tool card drops the same buttons."""
        if not suggestions:
            return None
        texts = {s["text"] for s in suggestions}
        card = self.last_of(ToolCard)
        if isinstance(card, ToolCard):
            card.drop_suggestions(texts)
        bar = SuggestionsBar(suggestions)
        await self.mount(bar)
        return bar

    # --- lines from the app ---------------------------------------------------------------------
    def add_user(self, text: str, attachments: list[str] | None = None) -> None:
        self.mount(UserMessage(text, attachments))

    def add_notice(self, markup: str) -> None:
        self.mount(Notice(markup))

    def add_error(self, message: str) -> None:
        self.mount(ErrorMessage(message))

    # --- a request's events ---------------------------------------------------------------------
    def begin_answer(self) -> None:
        """A new request: its first token starts a new answer below everything shown."""
        self._assistant = None

    def running_card(self) -> ToolCard | None:
        """The card of the tool running now (the latest one without a result)."""
        running = [card for card in self._cards.values() if card.ok is None]
        return running[-1] if running else None

    async def show_event(self, event: dict[str, Any]) -> None:
        """Show one agent event: token, tool_start, tool_end, image, final or error."""
        kind = event.get("type")
        if kind == "token":
            if self._assistant is None:
                self._assistant = AssistantMessage()
                await self.mount(self._assistant)
            await self._assistant.append(str(event.get("text") or ""))
        elif kind == "tool_start":
            await self.close_answer()
            card = ToolCard(str(event.get("tool")), event.get("args"), event.get("call_id"))
            self._cards[str(event.get("call_id"))] = card
            self._card_started[str(event.get("call_id"))] = time.monotonic()
            await self.mount(card)
        elif kind == "tool_end":
            await self._tool_end(event)
        elif kind == "image":
            caption = str(event.get("caption") or "")
            card = self._cards.get(str(event.get("call_id")))
            if card is not None and card.result and str(card.result.get("summary") or "").startswith(caption):
                caption = ""  # the card above already says it
            await self.mount(ImageBlock(str(event.get("path")), caption, renderer=self.image_renderer))
        elif kind == "final":
            await self._final(event)
        elif kind == "error":
            await self.close_answer()
            await self.mount(ErrorMessage(str(event.get("message") or "unknown error")))

    async def _tool_end(self, event: dict[str, Any]) -> None:
        call_id = str(event.get("call_id"))
        card = self._cards.get(call_id)
        if card is None:
            card = ToolCard(str(event.get("tool")), None, call_id)
            self._cards[call_id] = card
            await self.mount(card)
        elapsed = None
        if self.show_timings and call_id in self._card_started:
            elapsed = f"{time.monotonic() - self._card_started.pop(call_id):.1f} s"
        card.finish(event.get("result"), bool(event.get("ok", True)), elapsed)

    async def close_answer(self, footer: str | None = None, text: str | None = None) -> None:
        """End the streaming answer (if any), with its footer and the final text."""
        if self._assistant is not None:
            await self._assistant.finish(footer, text)
            self._assistant = None

    async def _final(self, event: dict[str, Any]) -> None:
        footer_parts = [part for part in (event.get("backend") or "", event.get("model") or "") if part]
        if self.show_timings and isinstance(event.get("elapsed_s"), (int, float)):
            footer_parts.append(f"{event['elapsed_s']:.1f} s")
        if event.get("cancelled"):
            footer_parts.append("cancelled")
        footer = "[dim]" + escape(" · ".join(footer_parts)) + "[/dim]" if footer_parts else None
        text = str(event.get("text") or "")
        if self._assistant is None and (text.strip() or event.get("cancelled")):
            self._assistant = AssistantMessage()
            await self.mount(self._assistant)
            if text.strip() and not event.get("cancelled"):
                await self._assistant.markdown.update(text)
                self._assistant.text = text
        if event.get("cancelled"):
            await self.close_answer(footer)
            await self.mount(Notice("[b]Cancelled.[/b] The rest of the answer was dropped."))
        else:
            await self.close_answer(footer, text)

    # --- tools run by slash commands ------------------------------------------------------------
    def run_tool(self, tool: str, args: dict[str, Any]) -> ToolCard:
        """Run one tool outside the agent in a thread worker; its card shows it running, then its result."""
        card = ToolCard(tool, args)
        self.mount(card)
        self._tool_worker(tool, args, card, time.monotonic())
        return card

    @work(thread=True, group="tools", exit_on_error=False)
    def _tool_worker(self, tool: str, args: dict[str, Any], card: ToolCard, started: float) -> None:
        from taller.tools import run_tool

        result = run_tool(tool, args)
        elapsed = f"{time.monotonic() - started:.1f} s" if self.show_timings else None
        try:
            self.app.call_from_thread(self._tool_done, card, result, elapsed)
        except RuntimeError:  # the app has closed
            pass

    def _tool_done(self, card: ToolCard, result: dict[str, Any], elapsed: str | None) -> None:
        card.finish(result, "error" not in result, elapsed)
        for path in result.get("images") or []:
            self.mount(ImageBlock(str(path), str(result.get("summary") or "")[:200], renderer=self.image_renderer))
