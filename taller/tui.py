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
(``ui/status.py``), dialogs (``ui/screens.py``), the search across threads (``ui/search.py``),
what can be copied and where a copy goes (``ui/clipboard.py``, no Textual), branch indicators
(``ui/branches.py``, no Textual) and the help written from the key bindings (``ui/help.py``).

Chat that people keep: Ctrl+Y copies (the selected message or the last answer: all of it, a code
block, a table, a tool's SQL), Ctrl+R regenerates the last answer, F2 (or Enter on a selected
message of yours) edits it and Enter reruns from there, Alt+←/→ switch between the branches this
leaves, Ctrl+F searches every thread, Ctrl+S exports the thread, and the next steps an answer
suggests are buttons (``/1``…``/3``) that fill the prompt. Alt+↑/↓ select messages.

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
from textual.screen import ModalScreen, Screen
from textual.widget import Widget
from textual.widgets import Footer, Input, ListView

from taller.ui import branches as branch_view
from taller.ui import commands
from taller.ui.cards import ToolCard
from taller.ui.chat_log import ChatLog
from taller.ui.clipboard import CopyChoice, answer_choices, bounded, clipboard_mode, tool_choices, user_choices, write_fallback
from taller.ui.formatting import escape, file_link
from taller.ui.help import help_markdown, own_bindings
from taller.ui.runs import request_cancel
from taller.ui.screens import (
    HELP_INTRO,
    HELP_MESSAGES,
    ConfirmScreen,
    CopyScreen,
    ExportScreen,
    FilePickerScreen,
    HelpScreen,
    RunsScreen,
    TextPromptScreen,
)
from taller.ui.search import SearchHit, SearchScreen
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
from taller.ui.widgets import (
    AssistantMessage,
    AttachmentsBar,
    EditBar,
    RunsPanel,
    SuggestionsBar,
    UserMessage,
    clean_suggestions,
    image_widget_class,
)

WIDE_SCREEN = 100  # columns from which the threads sidebar is shown at start
FOUND_HIGHLIGHT_S = 4.0  # how long a message a search jumped to stays highlighted


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
    # The help screen lists these from here (tooltip = the help's words), so each says what it does.
    BINDINGS = [
        Binding("escape", "cancel", "Cancel", tooltip="cancel the running answer or tool; else stop editing, "
                "or go back from a selected message to the prompt"),
        Binding("ctrl+o", "attach", "Attach", priority=True, tooltip="attach an image (file picker)"),
        Binding("ctrl+b", "toggle_threads", "Threads", priority=True, tooltip="show/hide the threads"),
        Binding("ctrl+n", "new_thread", "New", priority=True, tooltip="new thread"),
        Binding("ctrl+t", "runs", "Runs", priority=True, tooltip="training runs (cancel with c)"),
        Binding("ctrl+l", "clear", "Clear", show=False, priority=True, tooltip="clear the screen (the thread is kept)"),
        Binding("ctrl+y", "copy", "Copy", show=False, priority=True, tooltip="copy the selected message or the "
                "last answer: all of it, a code block, a table (TSV or Markdown), a tool's SQL query"),
        Binding("ctrl+r", "regenerate", "Regenerate", show=False, priority=True,
                tooltip="regenerate the last answer (the old one stays as a branch)"),
        Binding("f2", "edit_selected", "Edit", show=False, priority=True, tooltip="edit the selected message of "
                "yours, or your last one: it goes to the prompt, Enter reruns from there"),
        Binding("alt+left", "branch(-1)", "◀ Branch", show=False, priority=True,
                tooltip="previous branch at the selected (or latest) fork ◀ 2/3 ▶"),
        Binding("alt+right", "branch(1)", "Branch ▶", show=False, priority=True,
                tooltip="next branch at the selected (or latest) fork ◀ 2/3 ▶"),
        Binding("alt+up", "select(-1)", "Select ↑", show=False, priority=True,
                tooltip="select the message above (from the prompt: the last one)"),
        Binding("alt+down", "select(1)", "Select ↓", show=False, priority=True,
                tooltip="select the message below (past the last: back to the prompt)"),
        Binding("ctrl+f", "search", "Search", show=False, priority=True,
                tooltip="search every thread; Enter opens the thread at the message"),
        Binding("ctrl+s", "export", "Export", show=False, priority=True,
                tooltip="export this thread: Markdown, JSON, Python script or Jupyter notebook"),
        Binding("f1", "help", "Help", tooltip="this help: every key and command"),
        Binding("ctrl+q", "quit", "Quit", priority=True, tooltip="quit"),
    ]
    # Actions that act on the chat: not while a modal already has the screen.
    _MAIN_SCREEN_ACTIONS = {"attach", "toggle_threads", "new_thread", "runs", "clear", "help", "cancel", "copy",
                            "regenerate", "edit_selected", "branch", "select", "search", "export"}
    # Actions that start a new answer in this thread: dimmed while one runs.
    _ANSWER_ACTIONS = {"regenerate", "edit_selected", "branch"}

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
        self._editing: UserMessage | None = None  # the earlier message being edited in the prompt
        self._run_mode = "run"
        self._rerun_error: str | None = None  # why a regeneration or an edit failed (the thread is unchanged)
        self.suggestions: list[dict[str, str]] = []  # the last answer's next steps, for /1 … /3
        self.forks: dict[int, branch_view.Fork] = {}  # turn index → branches parting there
        self.exports: list[Path] = []  # files this session exported (newest last)

    # --- layout -----------------------------------------------------------------------------------
    def compose(self) -> ComposeResult:
        with Horizontal(id="body"):
            yield ThreadsSidebar(id="sidebar")
            with Vertical(id="main"):
                yield ChatLog(self.image_renderer, self.show_timings, id="log")
                yield RunsPanel(id="runs")
                yield AttachmentsBar(id="attachments")
                yield EditBar(id="editing")
                # Text put in the prompt (an edit, a suggestion) is to be changed, not replaced by
                # the first key: no select-all when the prompt takes the focus.
                yield Input(placeholder="Message Taller · / for commands · F1 help", id="prompt", select_on_focus=False)
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
        if action == "cancel" and not (self._answering or self._editing is not None or self.selected() is not None):
            return None  # shown dimmed in the footer: nothing to cancel
        if action in self._ANSWER_ACTIONS and self._answering:
            return None
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
        self.stop_editing()
        self.suggestions = []
        self.log_view.show_history(self._safe(lambda: self._agent.history(thread_id), []))
        self.refresh_threads()
        self.refresh_view()
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
        if self._editing is not None:
            self.send_edit(text)
            return
        if text.startswith("/"):
            self.prompt.clear()
            commands.run_command(self, text)
            return
        self.send(text)

    def _can_answer(self) -> bool:
        """Whether a new answer can start now; if not, the notification says why."""
        if self._agent is None:
            if self.agent_error:
                self.notify(f"The agent could not start: {self.agent_error}", severity="error")
            else:
                self.notify("Taller is still starting; try again in a moment.")
            return False
        if self._answering:
            self.notify("An answer is still running: wait, or press Esc to cancel it.", severity="warning")
            return False
        return True

    def send(self, text: str) -> bool:
        """Send a message to the agent in this thread; False (and a notice) when it cannot."""
        if not self._can_answer():
            return False
        self.prompt.clear()
        attachments = self.query_one(AttachmentsBar).take()
        self.log_view.add_user(text, attachments)
        self._start_agent("run", text=text, attachments=attachments or None)
        return True

    def _start_agent(self, mode: str, text: str | None = None, attachments: list[str] | None = None,
                     approve: bool = False, index: int | None = None) -> None:
        token = object()
        self._run_token = token
        self._run_mode = mode
        self._rerun_error = None
        self._answering = True
        self._cancel = threading.Event()
        if mode != "resume":
            self.suggestions = []
        self.log_view.begin_answer()
        self.status_bar.set(busy="working · Esc cancels")
        self.refresh_bindings()
        self._agent_worker(mode, self.thread_id, self._cancel, token, text, attachments, approve, index)

    @work(thread=True, group="agent", exit_on_error=False)
    def _agent_worker(self, mode: str, thread_id: str, cancel: threading.Event, token: object,
                      text: str | None, attachments: list[str] | None, approve: bool, index: int | None = None) -> None:
        agent = self._agent
        try:
            if mode == "run":
                events = agent.run(text, thread_id=thread_id, cancel_event=cancel, attachments=attachments)
            elif mode == "regenerate":
                events = agent.regenerate(thread_id, cancel_event=cancel)
            elif mode == "edit":
                events = agent.edit(thread_id, index, text, cancel_event=cancel)
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
        # The turn is saved now: the live messages get their places in it (for editing) and the
        # forks their ◀ ▶ (a regeneration or an edit just made one). After a regeneration or an
        # edit that failed, the log (which dropped the old answer at the start) is rebuilt from
        # what the thread saved, with the reason below it.
        if self._rerun_error is not None:
            self._view_worker(self.thread_id, None, None, self._rerun_error)
        else:
            self.refresh_view()

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
            if kind == "error" and self._run_mode in ("regenerate", "edit"):
                what = "regenerating" if self._run_mode == "regenerate" else "the edited message"
                self._rerun_error = f"{what} failed: {event.get('message') or 'unknown error'}"
            if kind == "final" and event.get("backend"):
                self.status_bar.set(backend=event["backend"], model=event.get("model") or "")
            if kind == "final" and not event.get("cancelled"):
                self.suggestions = clean_suggestions(event.get("suggestions"))
                await self.log_view.add_suggestions(self.suggestions)

    def action_cancel(self) -> None:
        """Esc: stop the running answer or tool (the agent checks the event between steps); with
        nothing running, stop editing, or leave a selected message for the prompt."""
        if self._answering:
            if self._cancel is not None and not self._cancel.is_set():
                self._cancel.set()
                self.status_bar.set(busy="cancelling…")
            return
        if self._editing is not None:
            self.stop_editing()
            self.prompt.clear()
            self.notify("Stopped editing; the thread is unchanged.")
        self.prompt.focus()

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

    # --- a database answer's buttons, suggested next steps ---------------------------------------------
    def on_tool_card_suggestion_chosen(self, message: ToolCard.SuggestionChosen) -> None:
        """A suggested follow-up pressed on a card: it goes to the prompt; Enter sends it."""
        self.fill_prompt(message.text)

    def on_suggestions_bar_chosen(self, message: SuggestionsBar.Chosen) -> None:
        """A suggested next step pressed under an answer: it goes to the prompt; Enter sends it."""
        self.fill_prompt(message.text)

    def fill_prompt(self, text: str) -> None:
        """Put ``text`` in the prompt, ready to send with Enter (or to change first)."""
        self.stop_editing()
        self.prompt.value = text
        self.prompt.cursor_position = len(text)
        self.prompt.focus()

    def use_suggestion(self, number: int) -> None:
        """``/1`` … ``/3``: the last answer's suggested next step ``number`` goes to the prompt."""
        if 1 <= number <= len(self.suggestions):
            self.fill_prompt(self.suggestions[number - 1]["text"])
        elif self.suggestions:
            self.notice(f"The last answer suggested {len(self.suggestions)} next step(s): "
                        f"/1 … /{len(self.suggestions)}.")
        else:
            self.notice("No suggested next steps right now: they follow an answer that used a tool.")

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
        self.push_screen(HelpScreen(help_text()))

    def notice(self, markup: str) -> None:
        self.log_view.add_notice(markup)

    def run_tool_card(self, tool: str, args: dict[str, Any]) -> None:
        """Run one tool directly (slash commands) and show it as a card."""
        self.log_view.run_tool(tool, args)


    # --- selecting messages -------------------------------------------------------------------------
    def selected(self) -> Widget | None:
        """The message or tool card that has the focus (or holds it), if any."""
        node = self.focused
        log = self.log_view
        while node is not None and node is not log:
            if isinstance(node, (UserMessage, AssistantMessage, ToolCard)) and node.parent is log:
                return node
            node = node.parent
        return None

    def select(self, widget: Widget) -> None:
        """Give ``widget`` (a message or tool card) the focus and bring it into view."""
        # A card takes the focus on its title (Enter there folds it), as Tab gives it.
        target = widget.query_one("CollapsibleTitle") if isinstance(widget, ToolCard) else widget
        target.focus()
        widget.scroll_visible(animate=False)

    def action_select(self, step: int) -> None:
        """Alt+↑/↓: move the selection through the log; from the prompt, ↑ starts at the last."""
        items = self.log_view.selectables()
        if not items:
            return
        current = self.selected()
        if current is None:
            if step < 0:
                self.select(items[-1])
            return
        position = items.index(current) + step
        if position >= len(items):
            self.prompt.focus()  # past the last message: back to typing
        else:
            self.select(items[max(0, position)])

    # --- copy ---------------------------------------------------------------------------------------
    def copy_target(self) -> Widget | None:
        """The selected message, else the last answer (else the last tool card)."""
        return self.selected() or self.log_view.last_of(AssistantMessage) or self.log_view.last_of(ToolCard)

    def action_copy(self) -> None:
        """Ctrl+Y: copy from the selected message (or the last answer), choosing what in a menu."""
        target = self.copy_target()
        if isinstance(target, AssistantMessage):
            title, choices = "Copy from the answer", answer_choices(target.text)
        elif isinstance(target, ToolCard):
            title, choices = f"Copy from {target.tool}", tool_choices(target.tool, target.result)
        elif isinstance(target, UserMessage):
            title, choices = "Copy your message", user_choices(target.text)
        else:
            title, choices = "", []
        if not choices:
            self.notify("Nothing to copy yet.", severity="warning")
            return
        if len(choices) == 1:
            self.copy_choice(choices[0])
            return
        self.push_screen(CopyScreen(title, choices), lambda choice: self.copy_choice(choice) if choice else None)

    def copy_choice(self, choice: CopyChoice) -> Path | None:
        """Send ``choice`` to the terminal clipboard and/or the fallback file (see ui/clipboard.py);
        the notification says where it went. Returns the file written, if any."""
        text = bounded(choice.text)
        mode = clipboard_mode()
        written = None
        if mode in ("osc52", "both"):
            self.copy_to_clipboard(text)
        if mode in ("file", "both"):
            try:
                written = write_fallback(self.settings.home, text)
            except OSError as exc:
                self.notify(f"Cannot write the copy to {self.settings.home}: {exc.strerror or exc}", severity="error")
                return None
        what = choice.label[0].lower() + choice.label[1:]
        if mode == "osc52":
            self.notify(f"Copied {what} ({len(text)} characters) to the terminal clipboard.", markup=False)
        elif mode == "both":
            self.notify(f"Copied {what} to the terminal clipboard and to {written}.", markup=False)
        else:
            self.notify(f"Copied {what} to {written} (this terminal is not known to take OSC 52 copies; "
                        "TALLER_TUI_CLIPBOARD=osc52 sends them anyway).", markup=False, timeout=8)
        return written

    # --- regenerate, edit -----------------------------------------------------------------------------
    def action_regenerate(self) -> None:
        """Ctrl+R: answer the last message again; the old answer stays as a branch."""
        if not self._can_answer():
            return
        last = self.log_view.last_of(UserMessage)
        if last is None:
            self.notify("Nothing to regenerate yet: send a message first.", severity="warning")
            return
        self.stop_editing()
        self._answering = True  # from now: a second Ctrl+R before the run starts is refused
        self.call_later(self._regenerate, last)

    async def _regenerate(self, last: UserMessage) -> None:
        following = list(self.log_view.children)
        following = following[following.index(last) + 1:] if last in following else []
        if following:
            await self.log_view.remove_from(following[0])
        self._start_agent("regenerate")

    def action_edit_selected(self) -> None:
        """F2 (or Enter on a selected message of yours): edit it in the prompt; Enter reruns from it."""
        if self._answering:
            self.notify("An answer is running: press Esc to cancel it first.", severity="warning")
            return
        selected = self.selected()
        target = selected if isinstance(selected, UserMessage) else self.log_view.last_of(UserMessage)
        if target is None:
            self.notify("No message of yours to edit yet.", severity="warning")
            return
        if target.index is None:
            self.notify("This message is not saved in the thread, so it cannot be edited.", severity="warning")
            return
        self.stop_editing()
        self._editing = target
        target.add_class("editing")
        users = [w for w in self.log_view.children if isinstance(w, UserMessage)]
        self.query_one(EditBar).show_editing(users.index(target) + 1)
        self.prompt.value = target.text
        self.prompt.cursor_position = len(target.text)
        self.prompt.focus()
        self.refresh_bindings()

    def stop_editing(self) -> None:
        if self._editing is not None:
            self._editing.remove_class("editing")
        self._editing = None
        if self.is_mounted:
            self.query_one(EditBar).show_editing(None)

    def send_edit(self, text: str) -> bool:
        """Rerun the thread from the edited message with ``text``; what followed stays as a branch."""
        target = self._editing
        if target is None or not self._can_answer():
            return False
        if text.startswith("/"):
            self.notify("An edited message is sent to the agent: slash commands do not apply.", severity="warning")
            return False
        self.stop_editing()
        self.prompt.clear()
        self._answering = True  # from now: another message before the run starts is refused
        self.call_later(self._rerun_from, target, text)
        return True

    async def _rerun_from(self, target: UserMessage, text: str) -> None:
        index = target.index
        await self.log_view.remove_from(target)
        await self.log_view.mount(UserMessage(text, index=index))
        self._start_agent("edit", text=text, index=index)

    # --- branches -------------------------------------------------------------------------------------
    # Reading the branches deserialises a checkpoint per branch and switching takes the thread's
    # lock (which another process may hold for a while): both run in a worker, and the result is
    # applied on the UI thread only if the same thread is still shown.
    def refresh_view(self) -> None:
        """Reload the current thread's history places and branch marks (in a worker)."""
        if self._agent is not None and self.thread_id is not None:
            self._view_worker(self.thread_id, None, None)

    @work(thread=True, group="thread-view", exclusive=True, exit_on_error=False)
    def _view_worker(self, thread_id: str, switch_to: str | None, turn: int | None,
                     failed_rerun: str | None = None) -> None:
        agent = self._agent
        problem = None
        if switch_to is not None:
            try:
                agent.switch_branch(thread_id, switch_to)
            except Exception as exc:  # an unknown branch (deleted meanwhile), a busy thread, the store
                problem = f"Cannot switch branch: {exc}"
        history = self._safe(lambda: agent.history(thread_id), [])
        found = self._safe(lambda: agent.branches(thread_id), []) if hasattr(agent, "branches") else []
        try:
            self.call_from_thread(self._apply_view, thread_id, history, found if isinstance(found, list) else [],
                                  (switch_to is not None and problem is None) or failed_rerun is not None, turn,
                                  problem, failed_rerun)
        except RuntimeError:  # the app has closed
            pass

    def _apply_view(self, thread_id: str, history: list[dict[str, Any]], found: list[dict[str, Any]],
                    rebuild: bool, turn: int | None, problem: str | None, failed_rerun: str | None = None) -> None:
        if thread_id != self.thread_id:
            return  # the user opened another thread meanwhile
        if problem:
            self.notify(problem, severity="error", markup=False)
        if rebuild:
            self.stop_editing()
            self.suggestions = []
            self.log_view.show_history(history)
            if failed_rerun is not None:
                self.log_view.add_error(f"{failed_rerun} (the thread is shown as it was saved)")
            self.refresh_threads()
        else:
            self.log_view.assign_indexes(history)
        self.forks = branch_view.forks(found, history)
        self.call_after_refresh(self._show_forks, rebuild and failed_rerun is None, turn)

    def _show_forks(self, switched: bool, turn: int | None) -> None:
        self.log_view.show_branches(branch_view.labels(self.forks))
        if not switched or turn is None:
            return
        shown = self.log_view.message_at(turn)
        if shown is not None:
            self.select(shown)
        fork = self.forks.get(turn)
        if fork is not None:
            self.notify(f"Branch {fork.current + 1} of {len(fork.branch_ids)}.")

    def action_branch(self, step: int) -> None:
        """Alt+←/→: show the previous/next branch at the selected message's fork (else the latest)."""
        if self._answering or self._agent is None:
            return
        if not self.forks:
            self.notify("This thread has no other branch: regenerate (Ctrl+R) or edit (F2) makes one.")
            return
        turn = getattr(self.selected(), "index", None)
        if turn not in self.forks:
            # The fork of the selected message's turn (the nearest one above it), else the latest.
            earlier = [index for index in self.forks if isinstance(turn, int) and index <= turn]
            turn = max(earlier) if earlier else max(self.forks)
        self._view_worker(self.thread_id, self.forks[turn].neighbour(step), turn)

    # --- search -------------------------------------------------------------------------------------
    def action_search(self, query: str = "") -> None:
        """Ctrl+F: search every thread; the chosen match opens its thread at the message."""
        if self._agent is None or not hasattr(self._agent, "search"):
            self.notify("Search is not available until the agent has started.", severity="warning")
            return
        self.push_screen(SearchScreen(self._agent, query), self.jump_to)

    def jump_to(self, hit: SearchHit | None) -> None:
        """Open ``hit``'s thread and scroll to its message, highlighted for a few seconds."""
        if hit is None:
            return
        if hit.thread_id != self.thread_id:
            if self._answering:
                self.notify("An answer is running: press Esc to cancel it first.", severity="warning")
                return
            self.open_thread(hit.thread_id)
        self.call_after_refresh(self._show_found, hit)

    def _show_found(self, hit: SearchHit) -> None:
        widget = self.log_view.message_at(hit.message_index)
        if widget is None:
            self.notify("That message is not on this thread's current branch (or was deleted).", severity="warning")
            return
        self.select(widget)
        widget.add_class("found")
        self.set_timer(FOUND_HIGHLIGHT_S, lambda: widget.remove_class("found"))

    # --- export ---------------------------------------------------------------------------------------
    def export_folder(self) -> Path:
        return self.settings.home / "exports"

    def action_export(self, fmt: str | None = None) -> None:
        """Ctrl+S: export this thread; the format is asked in a dialog unless given."""
        if self._agent is None or self.thread_id is None:
            self.notify("Taller is still starting; try again in a moment.")
            return
        if not self._safe(lambda: self._agent.history(self.thread_id), []):
            self.notify("This thread is empty: nothing to export yet.", severity="warning")
            return
        if fmt is not None:
            self._export_worker(self.thread_id, fmt)
            return
        self.push_screen(ExportScreen(str(self.export_folder())),
                         lambda chosen: self._export_worker(self.thread_id, chosen) if chosen else None)

    @work(thread=True, group="export", exit_on_error=False)
    def _export_worker(self, thread_id: str, fmt: str) -> None:
        # Building a notebook reads the whole thread and its results: off the UI thread. The file
        # is named and written as `taller export` does it, so both put exports in one place.
        from taller.agent.export import default_path, export_thread, write_export

        try:
            text = export_thread(self._agent, thread_id, fmt)
            path, problem = write_export(text, default_path(self.settings.home, thread_id, fmt)), None
        except Exception as exc:  # unknown format, a thread the exporter cannot read, a full disk
            path, problem = None, f"{type(exc).__name__}: {exc}"
        try:
            self.call_from_thread(self._exported, fmt, path, problem)
        except RuntimeError:  # the app has closed
            pass

    def _exported(self, fmt: str, path: Path | None, problem: str | None) -> None:
        if path is None:
            self.notify(f"Export failed: {problem}", severity="error", markup=False)
            return
        self.exports.append(path)
        self.notice(f"Exported this thread ({escape(fmt)}) to {file_link(path)}")
        self.notify(f"Exported to {path}", markup=False)


# Every part of the chat with keys, in the order the help lists them; a test checks that each class
# of the chat that declares BINDINGS is here.
HELP_SECTIONS: list[tuple[str, Any, str]] = [
    ("Chat", TallerApp, ""),
    ("A selected message", UserMessage, HELP_MESSAGES),
    ("Moving around (any screen)", Screen, "Tool cards fold and unfold with Enter on their title."),
    ("Threads list", ThreadList, ""),
    ("Copy menu", CopyScreen, ""),
    ("Search", SearchScreen, "In the matches: ↑ ↓ move, Enter opens."),
    ("Export", ExportScreen, ""),
    ("Confirmation", ConfirmScreen, ""),
    ("Rename", TextPromptScreen, "Enter saves."),
    ("Attach an image", FilePickerScreen, "Arrows and Enter in the tree, or type a path and press Enter."),
    ("Training runs window", RunsScreen, ""),
    ("This help", HelpScreen, ""),
]


def help_text() -> str:
    """The help screen's Markdown: every binding of every part of the chat, then the commands."""
    sections = [(title, own_bindings(cls), note) for title, cls, note in HELP_SECTIONS]
    return help_markdown(HELP_INTRO, sections, "## Slash commands\n\n" + commands.help_table())


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
