"""``taller chat``: the Textual terminal chat over the Taller agent.

Layout (works at 80×24; the threads sidebar opens by default from 100 columns)::

    ┌ threads ┐┌ chat log: your messages, streamed Markdown answers, tool cards, images ┐
    │         ││                                                                        │
    │         │├ training runs: progress bar, epoch, loss, metric, ETA, loss sparkline  ┤
    │         │├ prompt (Enter sends, / for commands)                                   ┤
    status bar: backend · model │ GPU/CPU │ data folder │ thread
    footer: keys

This module is the wiring: the App composes the widgets of :mod:`taller.ui`, holds the agent and
the current thread, and connects them. Each concern lives in its own module there: the chat log
(``ui/chat_log.py``), tool cards (``ui/cards.py``; a database answer's chart as text in
``ui/charts.py``), messages, images, the runs panel and the attachments bar
(``ui/widgets.py``), run tracking (``ui/runs.py``, no Textual), the threads
sidebar (``ui/threads.py``), slash commands (``ui/commands.py``, no Textual), the status bar
(``ui/status.py``), dialogs (``ui/screens.py``).

Nothing slow runs on the UI thread: the agent's blocking event generator runs in a Textual
thread worker and hands each event back with ``call_from_thread``; training runs report through
:data:`taller.progress.bus` from their own threads and are handed to the UI's event loop without
waiting for it (a training step never waits on the screen). Esc sets the run's cancel event.

Entry point for the CLI: :func:`run_chat`.
"""

from __future__ import annotations

import argparse
import os
import threading
from pathlib import Path
from typing import Any, Callable

from textual import on, work
from textual.app import App, ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.message import Message
from textual.screen import ModalScreen
from textual.widgets import Footer, Input, ListView

from taller.ui import commands
from taller.ui.cards import ToolCard
from taller.ui.chat_log import ChatLog
from taller.ui.formatting import escape
from taller.ui.runs import request_cancel
from taller.ui.screens import ConfirmScreen, FilePickerScreen, HelpScreen, RunsScreen
from taller.ui.status import StatusBar, data_label
from taller.ui.threads import (
    NEW_THREAD_TITLE,
    ThreadItem,
    ThreadList,
    ThreadsSidebar,
    delete_thread,
    rename_thread,
    start_thread,
    thread_title,
)
from taller.ui.widgets import AttachmentsBar, RunsPanel, image_widget_class

WIDE_SCREEN = 100  # columns from which the threads sidebar is shown at start


class ProgressReceived(Message):
    """A progress event from the bus, carried onto the UI thread."""

    def __init__(self, event: dict[str, Any]) -> None:
        super().__init__()
        self.event = event


class TallerApp(App[None]):
    """The chat. Pass ``agent=`` (or ``chat_model=``) to drive it with a scripted model in tests."""

    CSS_PATH = "tui.tcss"
    TITLE = "Taller"
    ENABLE_COMMAND_PALETTE = False
    BINDINGS = [
        Binding("escape", "cancel", "Cancel"),
        Binding("ctrl+o", "attach", "Attach", priority=True),
        Binding("ctrl+b", "toggle_threads", "Threads", priority=True),
        Binding("ctrl+n", "new_thread", "New", priority=True),
        Binding("ctrl+t", "runs", "Runs", priority=True),
        Binding("ctrl+l", "clear", "Clear", show=False, priority=True),
        Binding("f1", "help", "Help"),
        Binding("ctrl+q", "quit", "Quit", priority=True),
    ]
    # Actions that open something over the chat: not while a modal already has the screen.
    _MAIN_SCREEN_ACTIONS = {"attach", "toggle_threads", "new_thread", "runs", "clear", "help", "cancel"}

    def __init__(self, agent: Any = None, chat_model: Any = None, thread_id: str | None = None,
                 backend: str | None = None, model: str | None = None, settings: Any = None,
                 images: str | None = None, show_timings: bool = True, device_label: str | None = None,
                 show_threads: bool | None = None) -> None:
        super().__init__()
        from taller.config import get_settings

        self.settings = settings or get_settings()
        self._agent = agent
        self._owns_agent = agent is None
        self._chat_model = chat_model
        self._backend, self._model = backend, model
        self._requested_thread = thread_id
        self.thread_id: str | None = None
        # textual-image asks the terminal for its cell size: only possible before the app starts.
        self.image_renderer = image_widget_class(images or os.environ.get("TALLER_TUI_IMAGES", "auto"))
        self.show_timings = show_timings
        self._device_label = device_label
        self._show_threads = show_threads
        self._answering = False
        self._run_token: object | None = None
        self._cancel: threading.Event | None = None
        self._unsubscribe = None
        self.agent_error: str | None = None

    # --- layout -----------------------------------------------------------------------------------
    def compose(self) -> ComposeResult:
        with Horizontal(id="body"):
            yield ThreadsSidebar(id="sidebar")
            with Vertical(id="main"):
                yield ChatLog(self.image_renderer, self.show_timings, id="log")
                yield RunsPanel(id="runs")
                yield AttachmentsBar(id="attachments")
                yield Input(placeholder="Message Taller · / for commands · F1 help", id="prompt")
        yield StatusBar()
        yield Footer()

    @property
    def log_view(self) -> ChatLog:
        return self.query_one(ChatLog)

    @property
    def status_bar(self) -> StatusBar:
        return self.query_one(StatusBar)

    @property
    def runs_panel(self) -> RunsPanel:
        return self.query_one(RunsPanel)

    @property
    def prompt(self) -> Input:
        return self.query_one("#prompt", Input)

    @property
    def agent(self) -> Any:
        return self._agent

    @property
    def running(self) -> bool:
        return self._answering

    def on_mount(self) -> None:
        from taller.progress import bus

        self._unsubscribe = bus.subscribe(self._bus_listener)
        show = self._show_threads if self._show_threads is not None else self.size.width >= WIDE_SCREEN
        self.query_one(ThreadsSidebar).display = show
        self.runs_panel.display = False
        self.log_view.anchor()
        self.status_bar.set(data=data_label(self.settings), device=self._device_label or "…",
                            backend="starting…" if self._agent is None else "…")
        if self._device_label is None:
            self.status_bar.probe_device(self.settings)
        self.prompt.focus()
        if self._agent is None:
            self._load_agent()
        else:
            self._agent_ready()

    def on_unmount(self) -> None:
        if self._unsubscribe is not None:
            self._unsubscribe()
        if self._cancel is not None:
            self._cancel.set()
        if self._owns_agent and self._agent is not None:
            try:
                self._agent.close()
            except Exception:
                pass

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action in self._MAIN_SCREEN_ACTIONS and isinstance(self.screen, ModalScreen):
            return False
        if action == "cancel" and not self._answering:
            return None  # shown dimmed in the footer: nothing to cancel
        return True

    # --- start-up workers -----------------------------------------------------------------------
    @work(thread=True, group="startup", exit_on_error=False)
    def _load_agent(self) -> None:
        # Importing LangGraph and opening the checkpoint database takes seconds on a slow machine.
        try:
            from taller.agent.session import Agent

            agent = Agent(settings=self.settings, chat_model=self._chat_model, backend=self._backend,
                          model=self._model)
        except Exception as exc:
            self.call_from_thread(self._agent_failed, f"{type(exc).__name__}: {exc}")
            return
        self.call_from_thread(self._set_agent, agent)

    def _set_agent(self, agent: Any) -> None:
        self._agent = agent
        self._agent_ready()

    def _agent_failed(self, message: str) -> None:
        self.agent_error = message
        self.status_bar.set(backend="unavailable", model="")
        self.log_view.add_error(f"the agent could not start: {message}")

    def _agent_ready(self) -> None:
        # Resume the most recent conversation unless a thread was asked for.
        self.open_thread(start_thread(self._requested_thread, self._threads()), force=True)
        self._backend_info()

    @work(thread=True, group="startup", exit_on_error=False)
    def _backend_info(self) -> None:
        # Resolving the model can mean loading a GGUF file: never on the UI thread.
        try:
            info = self._agent.backend_info()
        except Exception as exc:
            info = {"backend": "unavailable", "model": "", "error": f"{type(exc).__name__}: {exc}"}
        self.call_from_thread(self._show_backend, info)

    def _show_backend(self, info: dict[str, Any]) -> None:
        self.status_bar.set(backend=str(info.get("backend") or "?"), model=str(info.get("model") or ""))
        if info.get("error"):
            self.log_view.add_error(f"no LLM is available: {info['error']}")

    @staticmethod
    def _safe(call: Callable[[], Any], default: Any) -> Any:
        # The thread store is a local SQLite file: a failure there must not take the chat down.
        try:
            return call()
        except Exception:
            return default

    def _threads(self) -> list[dict[str, Any]]:
        return self._safe(lambda: self._agent.threads(), [])

    # --- threads ------------------------------------------------------------------------------------
    def refresh_threads(self) -> None:
        """Rebuild the sidebar from the agent's saved threads (a small local SQLite query)."""
        if self._agent is None:
            return
        threads = self._threads()
        self.query_one(ThreadList).show(threads, self.thread_id)
        self.status_bar.set(thread=(thread_title(threads, self.thread_id) or "new chat")[:30])

    def open_thread(self, thread_id: str, force: bool = False) -> None:
        """Show a thread's conversation (resumed from the checkpointer) and make it current."""
        if self._answering and not force:
            self.notify("An answer is running: press Esc to cancel it first.", severity="warning")
            return
        if thread_id == self.thread_id and not force:
            return
        self.thread_id = thread_id
        self.log_view.show_history(self._safe(lambda: self._agent.history(thread_id), []))
        self.refresh_threads()
        pending = self._safe(lambda: self._agent.pending_interrupt(thread_id), None)
        if pending:
            # A confirmation left open when the app closed: ask again.
            self.call_after_refresh(self._ask_confirmation, {"thread_id": thread_id, **pending})

    @on(ListView.Selected, "#threads")
    def _thread_selected(self, event: ListView.Selected) -> None:
        item = event.item
        if isinstance(item, ThreadItem):
            self.open_thread(item.thread_id)
            self.prompt.focus()

    # --- sending ------------------------------------------------------------------------------------
    @on(Input.Submitted, "#prompt")
    def _submitted(self, event: Input.Submitted) -> None:
        event.stop()
        text = event.value.strip()
        if not text:
            return
        if text.startswith("/"):
            self.prompt.clear()
            commands.run_command(self, text)
            return
        self.send(text)

    def send(self, text: str) -> bool:
        """Send a message to the agent in this thread; False (and a notice) when it cannot."""
        if self._agent is None:
            if self.agent_error:
                self.notify(f"The agent could not start: {self.agent_error}", severity="error")
            else:
                self.notify("Taller is still starting; try again in a moment.")
            return False
        if self._answering:
            self.notify("An answer is still running: wait, or press Esc to cancel it.", severity="warning")
            return False
        self.prompt.clear()
        attachments = self.query_one(AttachmentsBar).take()
        self.log_view.add_user(text, attachments)
        self._start_agent("run", text=text, attachments=attachments or None)
        return True

    def _start_agent(self, mode: str, text: str | None = None, attachments: list[str] | None = None,
                     approve: bool = False) -> None:
        token = object()
        self._run_token = token
        self._answering = True
        self._cancel = threading.Event()
        self.log_view.begin_answer()
        self.status_bar.set(busy="working · Esc cancels")
        self.refresh_bindings()
        self._agent_worker(mode, self.thread_id, self._cancel, token, text, attachments, approve)

    @work(thread=True, group="agent", exit_on_error=False)
    def _agent_worker(self, mode: str, thread_id: str, cancel: threading.Event, token: object,
                      text: str | None, attachments: list[str] | None, approve: bool) -> None:
        agent = self._agent
        try:
            if mode == "run":
                events = agent.run(text, thread_id=thread_id, cancel_event=cancel, attachments=attachments)
            else:
                events = agent.resume(thread_id, approve, cancel_event=cancel)
            for event in events:
                self.call_from_thread(self._handle_event, event, token)
        except Exception as exc:  # the agent already turns failures into events; this is the last guard
            try:
                self.call_from_thread(self._handle_event, {"type": "error", "thread_id": thread_id,
                                                           "message": f"{type(exc).__name__}: {exc}"}, token)
            except RuntimeError:  # the app has closed
                return
        try:
            self.call_from_thread(self._run_finished, token)
        except RuntimeError:
            pass

    def _run_finished(self, token: object) -> None:
        if token is not self._run_token:
            return  # a newer run (the resume after a confirmation) owns the state now
        self._answering = False
        self._cancel = None
        self.status_bar.set(busy="")
        self.refresh_bindings()
        self.refresh_threads()

    async def _handle_event(self, event: dict[str, Any], token: object) -> None:
        """Show one agent event (on the UI thread)."""
        if token is not self._run_token:
            return
        kind = event.get("type")
        if kind == "token" and self._cancel is not None and self._cancel.is_set():
            return  # cancelled: stop showing at once, the stream ends soon
        if kind == "progress":
            self._on_progress(event)
        elif kind == "interrupt":
            await self.log_view.close_answer()
            self._ask_confirmation(event)
        else:
            await self.log_view.show_event(event)
            if kind == "final" and event.get("backend"):
                self.status_bar.set(backend=event["backend"], model=event.get("model") or "")

    def action_cancel(self) -> None:
        """Esc: stop the running answer or tool (the agent checks the event between steps)."""
        if self._answering and self._cancel is not None and not self._cancel.is_set():
            self._cancel.set()
            self.status_bar.set(busy="cancelling…")

    # --- confirmation --------------------------------------------------------------------------------
    def _ask_confirmation(self, event: dict[str, Any]) -> None:
        """The agent paused before a costly tool: ask, then resume the thread with the answer."""
        thread_id = event.get("thread_id") or self.thread_id
        tool, args = str(event.get("tool")), event.get("args") or {}

        def answer(approve: bool | None) -> None:
            if thread_id != self.thread_id:
                return
            self.log_view.add_notice(("Approved: " if approve else "Declined: ") + escape(tool))
            self._start_agent("resume", approve=bool(approve))

        self.confirm_tool(tool, args, event.get("message"), answer)

    def confirm_tool(self, tool: str, args: dict[str, Any], message: str | None,
                     on_answer: Callable[[bool | None], None]) -> None:
        self.push_screen(ConfirmScreen.for_tool(tool, args, message), on_answer)

    # --- training progress ---------------------------------------------------------------------------
    def _bus_listener(self, event: dict[str, Any]) -> None:
        """Called by the progress bus from any thread: hand the event to the UI loop, never wait."""
        if not isinstance(event, dict) or event.get("type", "progress") != "progress":
            return
        if not self.is_running:
            return
        # post_message is thread-safe and does not wait (call_from_thread would block the training
        # thread until the screen has caught up; a training step must never wait on a screen).
        self.post_message(ProgressReceived(event))

    def on_progress_received(self, message: ProgressReceived) -> None:
        self._on_progress(message.event)

    def _on_progress(self, event: dict[str, Any]) -> None:
        if not self.is_running:
            return
        if event.get("run_id"):
            self.runs_panel.update_from(event)
            return
        # Progress of the tool running now (no run id): show it on its card.
        card = self.log_view.running_card()
        if card is not None:
            card.show_progress(event)

    def on_run_progress_cancel_requested(self, message) -> None:
        self.cancel_run(message.run_id)

    def cancel_run(self, run_id: str) -> bool:
        """Ask a training run to stop (it keeps its last checkpoint)."""
        outcome = request_cancel(run_id)
        if outcome.stopped:
            self.runs_panel.set_state(run_id, "cancelling")
        self.notify(outcome.message, severity=outcome.severity)
        return outcome.stopped

    # --- a database answer's buttons ------------------------------------------------------------------
    def on_tool_card_suggestion_chosen(self, message: ToolCard.SuggestionChosen) -> None:
        """A suggested follow-up pressed on a card: it is the next message, as if typed."""
        if self.send(message.text):
            self.prompt.focus()

    def on_tool_card_answer_confirmed(self, message: ToolCard.AnswerConfirmed) -> None:
        """The thumbs-up: store the question and SQL as a confirmed example (in a worker: the
        first one loads the embedding model)."""
        self._remember_worker(message.card, message.question, message.sql, message.database)

    @work(thread=True, group="remember", exit_on_error=False)
    def _remember_worker(self, card: ToolCard, question: str, sql: str, database: str | None) -> None:
        from taller.knowledge.sql import remember_example

        try:
            stored = remember_example(question, sql, database)
            ok, text = True, str(stored.get("summary") or "Remembered.")
        except Exception as exc:  # unsafe, failing or unknown database: the message says which
            ok, text = False, f"Not remembered: {exc}"
        try:
            self.call_from_thread(self._remembered, card, ok, text)
        except RuntimeError:  # the app has closed
            pass

    def _remembered(self, card: ToolCard, ok: bool, text: str) -> None:
        card.remembered(ok)
        self.notify(text, severity="information" if ok else "error")

    # --- attachments ----------------------------------------------------------------------------------
    def attach(self, path: str) -> None:
        problem = self.query_one(AttachmentsBar).add(path)
        if problem:
            self.notify(problem, severity="error")
            return
        self.prompt.focus()

    def action_attach(self) -> None:
        self.push_screen(FilePickerScreen(Path.cwd()), lambda path: self.attach(path) if path else None)

    # --- actions (keys, and the slash commands' host: see taller.ui.commands.CommandHost) -----------
    def action_toggle_threads(self) -> None:
        sidebar = self.query_one(ThreadsSidebar)
        sidebar.display = not sidebar.display
        if sidebar.display:
            self.refresh_threads()
            self.query_one(ThreadList).focus()
        else:
            self.prompt.focus()

    def show_threads(self) -> None:
        if not self.query_one(ThreadsSidebar).display:
            self.action_toggle_threads()
        else:
            self.query_one(ThreadList).focus()

    def action_new_thread(self) -> None:
        if self._answering:
            self.notify("An answer is running: press Esc to cancel it first.", severity="warning")
            return
        from taller.agent.session import new_thread_id

        self.open_thread(new_thread_id())
        self.prompt.focus()

    def rename_current_thread(self, title: str | None) -> None:
        if title is not None:
            rename_thread(self, self.thread_id, title=title)
        else:
            rename_thread(self, self.thread_id, thread_title(self._threads(), self.thread_id, NEW_THREAD_TITLE))

    def delete_current_thread(self) -> None:
        delete_thread(self, self.thread_id, self.status_bar.thread)

    def action_runs(self) -> None:
        self.push_screen(RunsScreen())

    def action_clear(self) -> None:
        self.log_view.clear()

    def action_help(self) -> None:
        self.push_screen(HelpScreen())

    def notice(self, markup: str) -> None:
        self.log_view.add_notice(markup)

    def run_tool_card(self, tool: str, args: dict[str, Any]) -> None:
        """Run one tool directly (slash commands) and show it as a card."""
        self.log_view.run_tool(tool, args)


def run_chat(thread_id: str | None = None, backend: str | None = None, model: str | None = None) -> None:
    """Open the terminal chat (``taller chat``). ``thread_id`` resumes a saved conversation."""
    TallerApp(thread_id=thread_id, backend=backend, model=model).run()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m taller.tui", description="Taller's terminal chat.")
    parser.add_argument("--thread", help="resume this thread id")
    parser.add_argument("--backend", help="LLM backend: auto, ollama, embedded or fake")
    parser.add_argument("--model", help="model name (Ollama tag or GGUF path)")
    options = parser.parse_args(argv)
    run_chat(options.thread, options.backend, options.model)


if __name__ == "__main__":
    main()
