"""``taller chat``: the Textual terminal chat over the Taller agent.

Layout (works at 80×24; the threads sidebar opens by default from 100 columns)::

    ┌ threads ┐┌ chat log: your messages, streamed Markdown answers, tool cards, images ┐
    │         ││                                                                        │
    │         │├ training runs: progress bar, epoch, loss, metric, ETA, loss sparkline  ┤
    │         │├ prompt (Enter sends, / for commands)                                   ┤
    status bar: backend · model │ GPU/CPU │ data folder │ thread
    footer: keys

Nothing slow runs on the UI thread: the agent's blocking event generator runs in a Textual
thread worker and hands each event back with ``call_from_thread``; training runs report through
:data:`taller.progress.bus` from their own threads and are handed to the UI's event loop without
waiting for it (a training step never waits on the screen). Esc sets the run's cancel event.

Entry point for the CLI: :func:`run_chat`.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import threading
import time
from pathlib import Path
from typing import Any

from textual import on, work
from textual.app import App, ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.message import Message
from textual.screen import ModalScreen
from textual.widgets import Footer, Input, Label, ListItem, ListView, Static

from taller.ui.screens import ConfirmScreen, FilePickerScreen, HelpScreen, RunsScreen, TextPromptScreen
from taller.ui.widgets import (
    AssistantMessage,
    ErrorMessage,
    ImageBlock,
    Notice,
    RunsPanel,
    StatusBar,
    ToolCard,
    UserMessage,
    escape,
    file_link,
    image_widget_class,
)

NEW_THREAD_TITLE = "＋ new chat"
WIDE_SCREEN = 100  # columns from which the threads sidebar is shown at start
RUN_POLL_S = 2.0  # how often running training runs are checked for their end


class ProgressReceived(Message):
    """A progress event from the bus, carried onto the UI thread."""

    def __init__(self, event: dict[str, Any]) -> None:
        super().__init__()
        self.event = event


class ThreadItem(ListItem):
    """One saved conversation in the sidebar."""

    def __init__(self, thread_id: str, title: str, current: bool = False) -> None:
        super().__init__(Label(title or thread_id, markup=False), classes="thread-item current" if current else "thread-item")
        self.thread_id = thread_id
        self.title_text = title


class ThreadList(ListView):
    """The threads sidebar: Enter opens, ``r`` renames, ``d`` deletes."""

    BINDINGS = [
        Binding("r", "app.rename_thread_selected", "Rename"),
        Binding("d,delete", "app.delete_thread_selected", "Delete"),
    ]


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
    _MAIN_SCREEN_ACTIONS = {"attach", "toggle_threads", "new_thread", "runs", "clear", "help", "cancel",
                            "rename_thread_selected", "delete_thread_selected"}

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
        self._assistant: AssistantMessage | None = None
        self._cards: dict[str, ToolCard] = {}
        self._card_started: dict[str, float] = {}
        self._attachments: list[str] = []
        self._unsubscribe = None
        self._poller = None
        self.agent_error: str | None = None

    # --- layout -----------------------------------------------------------------------------------
    def compose(self) -> ComposeResult:
        with Horizontal(id="body"):
            with Vertical(id="sidebar"):
                yield Static("Threads", classes="sidebar-title")
                yield ThreadList(id="threads")
                yield Static("[dim]Enter open · r rename\nd delete · ^n new[/dim]", classes="sidebar-help")
            with Vertical(id="main"):
                yield VerticalScroll(id="log")
                yield RunsPanel(id="runs")
                yield Static("", id="attachments")
                yield Input(placeholder="Message Taller · / for commands · F1 help", id="prompt")
        yield StatusBar()
        yield Footer()

    @property
    def log_view(self) -> VerticalScroll:
        return self.query_one("#log", VerticalScroll)

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
        self.query_one("#sidebar").display = show
        self.runs_panel.display = False
        self.query_one("#attachments").display = False
        self.log_view.anchor()
        self.status_bar.set(data=self._data_label(), device=self._device_label or "…",
                            backend="starting…" if self._agent is None else "…")
        if self._device_label is None:
            self._probe_device()
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
        self.log_view.mount(ErrorMessage(f"the agent could not start: {message}"))

    def _agent_ready(self) -> None:
        threads = self._safe(lambda: self._agent.threads(), [])
        if self._requested_thread:
            thread_id = self._requested_thread
        elif threads:
            thread_id = threads[0]["thread_id"]  # resume the most recent conversation
        else:
            from taller.agent.session import new_thread_id

            thread_id = new_thread_id()
        self.open_thread(thread_id, force=True)
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
            self.log_view.mount(ErrorMessage(f"no LLM is available: {info['error']}"))

    @work(thread=True, group="startup", exit_on_error=False)
    def _probe_device(self) -> None:
        # Importing torch takes a second or two: a worker, so the chat opens at once.
        try:
            import torch

            if torch.cuda.is_available():
                label = f"GPU {torch.cuda.get_device_name(0)}"
            elif getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
                label = "GPU (Apple MPS)"
            else:
                label = "CPU"
        except Exception as exc:
            label = f"CPU (torch: {type(exc).__name__})"
        if self.settings.device not in ("auto", "", None):
            label += f", device={self.settings.device}"
        self.call_from_thread(self.status_bar.set, device=label)

    def _data_label(self) -> str:
        folder = self.settings.data_dir
        if folder:
            return self._short(folder)
        return f"{self._short(self.settings.cache_dir)} (no TALLER_DATA_DIR)"

    @staticmethod
    def _short(path: Any) -> str:
        text = str(path)
        home = str(Path.home())
        return "~" + text[len(home):] if home != "/" and text.startswith(home + os.sep) else text

    @staticmethod
    def _safe(call, default):
        try:
            return call()
        except Exception:
            return default

    # --- threads ------------------------------------------------------------------------------------
    def refresh_threads(self) -> None:
        """Rebuild the sidebar from the agent's saved threads (a small local SQLite query)."""
        if self._agent is None:
            return
        threads = self._safe(lambda: self._agent.threads(), [])
        items: list[ListItem] = []
        if self.thread_id and all(t["thread_id"] != self.thread_id for t in threads):
            items.append(ThreadItem(self.thread_id, NEW_THREAD_TITLE, current=True))
        for thread in threads:
            items.append(ThreadItem(thread["thread_id"], thread.get("title") or thread["thread_id"],
                                    current=thread["thread_id"] == self.thread_id))
        listing = self.query_one(ThreadList)
        listing.clear()
        listing.extend(items)
        for index, item in enumerate(items):
            if item.thread_id == self.thread_id:
                listing.index = index
        title = next((t.get("title") for t in threads if t["thread_id"] == self.thread_id), None)
        self.status_bar.set(thread=(title or "new chat")[:30])

    def open_thread(self, thread_id: str, force: bool = False) -> None:
        """Show a thread's conversation (resumed from the checkpointer) and make it current."""
        if self._answering and not force:
            self.notify("An answer is running: press Esc to cancel it first.", severity="warning")
            return
        if thread_id == self.thread_id and not force:
            return
        self.thread_id = thread_id
        self._assistant = None
        self._cards.clear()
        self.log_view.remove_children()
        history = self._safe(lambda: self._agent.history(thread_id), [])
        widgets = []
        for entry in history:
            widgets.extend(self._history_widgets(entry))
        if widgets:
            self.log_view.mount_all(widgets)
        self.refresh_threads()
        pending = self._safe(lambda: self._agent.pending_interrupt(thread_id), None)
        if pending:
            # A confirmation left open when the app closed: ask again.
            self.call_after_refresh(self._ask_confirmation, {"thread_id": thread_id, **pending})

    def _history_widgets(self, entry: dict[str, Any]) -> list[Any]:
        role, content = entry.get("role"), entry.get("content") or ""
        if role == "user":
            return [UserMessage(content)]
        if role == "assistant":
            return [AssistantMessage(content)]
        if role == "tool":
            try:
                result = json.loads(content)
            except (TypeError, ValueError):
                result = {"summary": content}
            if not isinstance(result, dict):
                result = {"summary": str(result)}
            card = ToolCard(entry.get("name") or "tool", None, collapsed=True, result=result)
            out: list[Any] = [card]
            for path in result.get("images") or []:
                if Path(str(path)).is_file():
                    out.append(ImageBlock(str(path), renderer=self.image_renderer))
            return out
        return []

    @on(ListView.Selected, "#threads")
    def _thread_selected(self, event: ListView.Selected) -> None:
        item = event.item
        if isinstance(item, ThreadItem):
            self.open_thread(item.thread_id)
            self.prompt.focus()

    def _selected_thread(self) -> ThreadItem | None:
        listing = self.query_one(ThreadList)
        item = listing.highlighted_child
        return item if isinstance(item, ThreadItem) else None

    def action_rename_thread_selected(self) -> None:
        item = self._selected_thread()
        if item is not None:
            self.rename_thread(item.thread_id, item.title_text)

    def action_delete_thread_selected(self) -> None:
        item = self._selected_thread()
        if item is not None:
            self.delete_thread(item.thread_id, item.title_text)

    def rename_thread(self, thread_id: str, current: str = "", title: str | None = None) -> None:
        def apply(new_title: str | None) -> None:
            if new_title:
                self._safe(lambda: self._agent.rename_thread(thread_id, new_title), None)
                self.refresh_threads()

        if title is not None:
            apply(title)
            return
        if current == NEW_THREAD_TITLE:
            self.notify("Send a first message; then the thread can be renamed.")
            return
        self.push_screen(TextPromptScreen("Rename thread", value=current), apply)

    def delete_thread(self, thread_id: str, title: str = "") -> None:
        def apply(yes: bool | None) -> None:
            if not yes:
                return
            if self._answering and thread_id == self.thread_id:
                self.notify("An answer is running in this thread: press Esc first.", severity="warning")
                return
            self._safe(lambda: self._agent.delete_thread(thread_id), None)
            if thread_id == self.thread_id:
                self.action_new_thread()
            else:
                self.refresh_threads()

        self.push_screen(ConfirmScreen(f"Delete the thread “{title or thread_id}”?", yes="Delete", no="Keep"), apply)

    # --- sending ------------------------------------------------------------------------------------
    @on(Input.Submitted, "#prompt")
    def _submitted(self, event: Input.Submitted) -> None:
        event.stop()
        text = event.value.strip()
        if not text:
            return
        if text.startswith("/"):
            self.prompt.clear()
            self.run_command(text)
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
        attachments, self._attachments = self._attachments, []
        self._show_attachments()
        self.log_view.mount(UserMessage(text, attachments))
        self._start_agent("run", text=text, attachments=attachments or None)
        return True

    def _start_agent(self, mode: str, text: str | None = None, attachments: list[str] | None = None,
                     approve: bool = False) -> None:
        token = object()
        self._run_token = token
        self._answering = True
        self._cancel = threading.Event()
        self._assistant = None
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
        log = self.log_view
        if kind == "token":
            if self._cancel is not None and self._cancel.is_set():
                return  # cancelled: stop showing at once, the stream ends soon
            if self._assistant is None:
                self._assistant = AssistantMessage()
                await log.mount(self._assistant)
            await self._assistant.append(str(event.get("text") or ""))
        elif kind == "tool_start":
            await self._close_answer()
            card = ToolCard(str(event.get("tool")), event.get("args"), event.get("call_id"))
            self._cards[str(event.get("call_id"))] = card
            self._card_started[str(event.get("call_id"))] = time.monotonic()
            await log.mount(card)
        elif kind == "tool_end":
            call_id = str(event.get("call_id"))
            card = self._cards.get(call_id)
            if card is None:
                card = ToolCard(str(event.get("tool")), None, call_id)
                self._cards[call_id] = card
                await log.mount(card)
            elapsed = None
            if self.show_timings and call_id in self._card_started:
                elapsed = f"{time.monotonic() - self._card_started.pop(call_id):.1f} s"
            card.finish(event.get("result"), bool(event.get("ok", True)), elapsed)
        elif kind == "image":
            caption = str(event.get("caption") or "")
            card = self._cards.get(str(event.get("call_id")))
            if card is not None and card.result and str(card.result.get("summary") or "").startswith(caption):
                caption = ""  # the card above already says it
            await log.mount(ImageBlock(str(event.get("path")), caption, renderer=self.image_renderer))
        elif kind == "progress":
            self._on_progress(event)
        elif kind == "interrupt":
            await self._close_answer()
            self._ask_confirmation(event)
        elif kind == "final":
            await self._final(event)
        elif kind == "error":
            await self._close_answer()
            await log.mount(ErrorMessage(str(event.get("message") or "unknown error")))

    async def _close_answer(self, footer: str | None = None, text: str | None = None) -> None:
        if self._assistant is not None:
            await self._assistant.finish(footer, text)
            self._assistant = None

    async def _final(self, event: dict[str, Any]) -> None:
        backend, model = event.get("backend") or "", event.get("model") or ""
        footer_parts = [p for p in (backend, model) if p]
        if self.show_timings and isinstance(event.get("elapsed_s"), (int, float)):
            footer_parts.append(f"{event['elapsed_s']:.1f} s")
        if event.get("cancelled"):
            footer_parts.append("cancelled")
        footer = "[dim]" + escape(" · ".join(footer_parts)) + "[/dim]" if footer_parts else None
        text = str(event.get("text") or "")
        if self._assistant is None and (text.strip() or event.get("cancelled")):
            self._assistant = AssistantMessage()
            await self.log_view.mount(self._assistant)
            if text.strip() and not event.get("cancelled"):
                await self._assistant.markdown.update(text)
                self._assistant.text = text
        if event.get("cancelled"):
            await self._close_answer(footer)
            await self.log_view.mount(Notice("[b]Cancelled.[/b] The rest of the answer was dropped."))
        else:
            await self._close_answer(footer, text)
        if backend:
            self.status_bar.set(backend=backend, model=model)

    def action_cancel(self) -> None:
        """Esc: stop the running answer or tool (the agent checks the event between steps)."""
        if self._answering and self._cancel is not None and not self._cancel.is_set():
            self._cancel.set()
            self.status_bar.set(busy="cancelling…")

    # --- confirmation --------------------------------------------------------------------------------
    def _ask_confirmation(self, event: dict[str, Any]) -> None:
        thread_id = event.get("thread_id") or self.thread_id
        tool, args = str(event.get("tool")), event.get("args") or {}

        def answer(approve: bool | None) -> None:
            if thread_id != self.thread_id:
                return
            self.log_view.mount(Notice(("Approved: " if approve else "Declined: ") + escape(f"{tool}"),))
            self._start_agent("resume", approve=bool(approve))

        self.push_screen(ConfirmScreen.for_tool(tool, args, event.get("message")), answer)

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

    def on_progress_received(self, message: "ProgressReceived") -> None:
        self._on_progress(message.event)

    def _on_progress(self, event: dict[str, Any]) -> None:
        if not self.is_running:
            return
        if event.get("run_id"):
            self.runs_panel.update_from(event)
            if self._poller is None:
                self._poller = self.set_interval(RUN_POLL_S, self._poll_runs)
            return
        # Progress of the tool running now (no run id): show it on its card.
        running = [card for card in self._cards.values() if card.ok is None]
        if running:
            running[-1].show_progress(event)

    def _poll_runs(self) -> None:
        ids = [row.run_id for row in self.runs_panel.rows() if row.state == "running"]
        if ids:
            self._check_runs(ids)

    @work(thread=True, group="runs-poll", exclusive=True, exit_on_error=False)
    def _check_runs(self, run_ids: list[str]) -> None:
        # "finished" and "failed" are not progress events: read them from the runs registry.
        try:
            from taller.trainers import runs
        except ImportError:
            return
        for run_id in run_ids:
            try:
                state = runs.get(run_id).get("state")
            except Exception:
                continue
            if state and state not in ("running", "cancelling"):
                try:
                    self.call_from_thread(self._run_state, run_id, state)
                except RuntimeError:
                    return

    def _run_state(self, run_id: str, state: str) -> None:
        row = self.runs_panel.row(run_id)
        if row is not None and row.state != state:
            row.set_state(state)
            severity = "information" if state == "finished" else "warning"
            self.notify(f"Training run {run_id} {state}.", severity=severity)

    def on_run_progress_cancel_requested(self, message) -> None:
        self.cancel_run(message.run_id)

    def cancel_run(self, run_id: str) -> bool:
        """Ask a training run to stop (it keeps its last checkpoint)."""
        try:
            from taller.trainers import runs
        except ImportError:
            self.notify("Training runs are not available in this version of Taller.", severity="error")
            return False
        try:
            stopped = runs.cancel(run_id)
        except Exception as exc:
            self.notify(f"Cannot cancel {run_id}: {exc}", severity="error")
            return False
        if stopped:
            row = self.runs_panel.row(run_id)
            if row is not None:
                row.set_state("cancelling")
            self.notify(f"Cancelling {run_id}; its last checkpoint is kept.")
        else:
            self.notify(f"{run_id} is not running.", severity="warning")
        return stopped

    # --- attachments ----------------------------------------------------------------------------------
    def attach(self, path: str) -> None:
        resolved = Path(path).expanduser()
        if not resolved.is_file():
            self.notify(f"No such file: {resolved}", severity="error")
            return
        self._attachments.append(str(resolved.absolute()))
        self._show_attachments()
        self.prompt.focus()

    def _show_attachments(self) -> None:
        bar = self.query_one("#attachments", Static)
        bar.display = bool(self._attachments)
        bar.update("[dim]attached[/dim] " + "  ".join(file_link(p, Path(p).name) for p in self._attachments)
                   + "  [dim](sent with your next message)[/dim]" if self._attachments else "")

    def action_attach(self) -> None:
        self.push_screen(FilePickerScreen(Path.cwd()), lambda path: self.attach(path) if path else None)

    # --- actions ------------------------------------------------------------------------------------
    def action_toggle_threads(self) -> None:
        sidebar = self.query_one("#sidebar")
        sidebar.display = not sidebar.display
        if sidebar.display:
            self.refresh_threads()
            self.query_one(ThreadList).focus()
        else:
            self.prompt.focus()

    def action_new_thread(self) -> None:
        if self._answering:
            self.notify("An answer is running: press Esc to cancel it first.", severity="warning")
            return
        from taller.agent.session import new_thread_id

        self.open_thread(new_thread_id())
        self.prompt.focus()

    def action_runs(self) -> None:
        self.push_screen(RunsScreen())

    def action_clear(self) -> None:
        self._assistant = None
        self.log_view.remove_children()

    def action_help(self) -> None:
        self.push_screen(HelpScreen())

    # --- slash commands -----------------------------------------------------------------------------
    def run_command(self, line: str) -> None:
        """``/name args``: the common actions without going through the LLM."""
        try:
            parts = shlex.split(line[1:])
        except ValueError:
            parts = line[1:].split()
        if not parts:
            self.action_help()
            return
        name, args = parts[0].lower(), parts[1:]
        handler = getattr(self, f"_command_{name}", None)
        if handler is None:
            self.log_view.mount(Notice(f"Unknown command /{escape(name)}. Try /help."))
            return
        handler(args)

    def _command_help(self, args: list[str]) -> None:
        self.action_help()

    def _command_clear(self, args: list[str]) -> None:
        self.action_clear()

    def _command_new(self, args: list[str]) -> None:
        self.action_new_thread()

    def _command_threads(self, args: list[str]) -> None:
        sidebar = self.query_one("#sidebar")
        if not sidebar.display:
            self.action_toggle_threads()
        else:
            self.query_one(ThreadList).focus()

    def _command_rename(self, args: list[str]) -> None:
        if args:
            self.rename_thread(self.thread_id, title=" ".join(args))
        else:
            title = next((t.get("title") for t in self._safe(lambda: self._agent.threads(), [])
                          if t["thread_id"] == self.thread_id), NEW_THREAD_TITLE)
            self.rename_thread(self.thread_id, title)

    def _command_delete(self, args: list[str]) -> None:
        self.delete_thread(self.thread_id, self.status_bar.thread)

    def _command_runs(self, args: list[str]) -> None:
        self.action_runs()

    def _command_quit(self, args: list[str]) -> None:
        self.exit()

    _command_exit = _command_quit

    def _command_attach(self, args: list[str]) -> None:
        if args:
            self.attach(" ".join(args))
        else:
            self.action_attach()

    def _command_cancel(self, args: list[str]) -> None:
        if not args:
            if self._answering:
                self.action_cancel()
            else:
                self.log_view.mount(Notice("Usage: /cancel RUN_ID (see /runs)."))
            return
        self.cancel_run(args[0])

    def _command_models(self, args: list[str]) -> None:
        self.run_tool_card("list_models", {})

    def _command_train(self, args: list[str]) -> None:
        if not args:
            from taller.trainers import TRAINERS

            self.log_view.mount(Notice("Usage: /train MODEL [EPOCHS], models: " + ", ".join(TRAINERS)))
            return
        tool_args: dict[str, Any] = {"model": args[0]}
        for extra in args[1:]:
            value = extra.split("=", 1)[-1]
            if value.isdigit():
                tool_args["epochs"] = int(value)
            else:
                self.log_view.mount(Notice(f"Epochs must be a whole number, got {escape(extra)}."))
                return
        if self.settings.auto_approve:
            self.run_tool_card("train_model", tool_args)
            return
        from taller.agent.graph import confirmation_text

        def answer(approve: bool | None) -> None:
            if approve:
                self.run_tool_card("train_model", tool_args)
            else:
                self.log_view.mount(Notice("OK, not training."))

        self.push_screen(ConfirmScreen.for_tool("train_model", tool_args, confirmation_text("train_model", tool_args)),
                         answer)

    def run_tool_card(self, tool: str, args: dict[str, Any]) -> None:
        """Run one tool directly (slash commands) in a worker and show it as a card."""
        card = ToolCard(tool, args)
        self.log_view.mount(card)
        self._tool_worker(tool, args, card, time.monotonic())

    @work(thread=True, group="tools", exit_on_error=False)
    def _tool_worker(self, tool: str, args: dict[str, Any], card: ToolCard, started: float) -> None:
        from taller.tools import run_tool

        result = run_tool(tool, args)
        elapsed = f"{time.monotonic() - started:.1f} s" if self.show_timings else None
        try:
            self.call_from_thread(self._tool_done, card, result, elapsed)
        except RuntimeError:
            pass

    def _tool_done(self, card: ToolCard, result: dict[str, Any], elapsed: str | None) -> None:
        card.finish(result, "error" not in result, elapsed)
        for path in result.get("images") or []:
            self.log_view.mount(ImageBlock(str(path), str(result.get("summary") or "")[:200],
                                           renderer=self.image_renderer))


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
