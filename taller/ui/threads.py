"""The threads sidebar: saved conversations, the current one marked, Enter to open one.

The agent's thread store (``agent.threads()``: ``{"thread_id", "title"}`` dicts, most recent
first) is the only source of truth; the sidebar is rebuilt from it after every change. The plain
helpers (:func:`sidebar_entries`, :func:`thread_title`, :func:`start_thread`) hold the rules; the
widgets only draw them. Renaming and deleting (:func:`rename_thread`, :func:`delete_thread`) ask in
a dialog, then act on the agent through a :class:`ThreadsHost` (the App), which also opens threads.
"""

from __future__ import annotations

from typing import Any, Protocol

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.widgets import Label, ListItem, ListView, Static

from taller.ui.screens import ConfirmScreen, TextPromptScreen

NEW_THREAD_TITLE = "＋ new chat"


def sidebar_entries(threads: list[dict[str, Any]], current: str | None) -> list[tuple[str, str, bool]]:
    """(thread id, title, is current) per line; a current thread not saved yet comes first."""
    entries = []
    if current and all(thread["thread_id"] != current for thread in threads):
        entries.append((current, NEW_THREAD_TITLE, True))  # no message sent in it yet
    for thread in threads:
        entries.append((thread["thread_id"], thread.get("title") or thread["thread_id"],
                        thread["thread_id"] == current))
    return entries


def thread_title(threads: list[dict[str, Any]], thread_id: str | None, default: str | None = None) -> str | None:
    """The saved title of ``thread_id``, ``default`` when the thread is not saved yet."""
    return next((thread.get("title") for thread in threads if thread["thread_id"] == thread_id), default)


def start_thread(requested: str | None, threads: list[dict[str, Any]]) -> str:
    """The thread the chat opens with: the one asked for, else the most recent, else a new one."""
    if requested:
        return requested
    if threads:
        return threads[0]["thread_id"]
    from taller.agent.session import new_thread_id

    return new_thread_id()


class ThreadsHost(Protocol):
    """What the thread dialogs need from the App."""

    agent: Any
    thread_id: str | None

    @property
    def running(self) -> bool: ...  # an answer is streaming in the current thread

    def push_screen(self, screen: Any, callback: Any = None) -> Any: ...
    def notify(self, message: str, *, severity: str = "information") -> None: ...
    def refresh_threads(self) -> None: ...
    def action_new_thread(self) -> None: ...


def rename_thread(host: ThreadsHost, thread_id: str, current: str = "", title: str | None = None) -> None:
    """Rename a thread to ``title``, or ask for the new title in a dialog (``current`` filled in)."""

    def apply(new_title: str | None) -> None:
        if new_title:
            try:
                host.agent.rename_thread(thread_id, new_title)
            except Exception as exc:  # the thread store is a local SQLite file
                host.notify(f"Cannot rename the thread: {exc}", severity="error")
            host.refresh_threads()

    if title is not None:
        apply(title)
        return
    if current == NEW_THREAD_TITLE:
        host.notify("Send a first message; then the thread can be renamed.")
        return
    host.push_screen(TextPromptScreen("Rename thread", value=current), apply)


def delete_thread(host: ThreadsHost, thread_id: str, title: str = "") -> None:
    """Delete a thread after a yes; deleting the current one opens a fresh chat."""

    def apply(yes: bool | None) -> None:
        if not yes:
            return
        if host.running and thread_id == host.thread_id:
            host.notify("An answer is running in this thread: press Esc first.", severity="warning")
            return
        try:
            host.agent.delete_thread(thread_id)
        except Exception as exc:
            host.notify(f"Cannot delete the thread: {exc}", severity="error")
        if thread_id == host.thread_id:
            host.action_new_thread()
        else:
            host.refresh_threads()

    host.push_screen(ConfirmScreen(f"Delete the thread “{title or thread_id}”?", yes="Delete", no="Keep"), apply)


class ThreadItem(ListItem):
    """One saved conversation in the sidebar."""

    def __init__(self, thread_id: str, title: str, current: bool = False) -> None:
        super().__init__(Label(title or thread_id, markup=False), classes="thread-item current" if current else "thread-item")
        self.thread_id = thread_id
        self.title_text = title


class ThreadList(ListView):
    """The threads list: Enter opens, ``r`` renames, ``d`` deletes."""

    BINDINGS = [
        Binding("r", "rename_selected", "Rename", tooltip="rename the highlighted thread"),
        Binding("d,delete", "delete_selected", "Delete", tooltip="delete the highlighted thread (asks first)"),
    ]

    @property
    def selected_thread(self) -> ThreadItem | None:
        item = self.highlighted_child
        return item if isinstance(item, ThreadItem) else None

    def action_rename_selected(self) -> None:
        item = self.selected_thread
        if item is not None:
            rename_thread(self.app, item.thread_id, item.title_text)

    def action_delete_selected(self) -> None:
        item = self.selected_thread
        if item is not None:
            delete_thread(self.app, item.thread_id, item.title_text)

    def show(self, threads: list[dict[str, Any]], current: str | None) -> None:
        """Rebuild the list from the agent's saved threads, the current one highlighted."""
        items = [ThreadItem(thread_id, title, is_current)
                 for thread_id, title, is_current in sidebar_entries(threads, current)]
        self.clear()
        self.extend(items)
        for index, item in enumerate(items):
            if item.thread_id == current:
                self.index = index


class ThreadsSidebar(Vertical):
    """The sidebar: a title, the threads list and its keys."""

    def compose(self) -> ComposeResult:
        yield Static("Threads", classes="sidebar-title")
        yield ThreadList(id="threads")
        yield Static("[dim]Enter open · r rename\nd delete · ^n new[/dim]", classes="sidebar-help")
