"""Modal screens of the chat: confirmation, text prompt, image picker, help, copy, export, runs.

Each one is keyboard-first (a letter or Enter/Esc answers it) and returns its answer through
``dismiss`` so the App decides what happens next.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Iterable

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, DataTable, DirectoryTree, Input, Label, Markdown, OptionList, Static
from textual.widgets.option_list import Option

from taller.paths import IMAGE_SUFFIXES
from taller.ui.clipboard import CopyChoice
from taller.ui.formatting import compact_args, escape, format_number


class ConfirmScreen(ModalScreen[bool]):
    """Ask before a costly action (training): ``y``/Enter runs it, ``n``/Esc does not."""

    BINDINGS = [
        Binding("y", "answer(True)", "Yes", tooltip="yes: run it"),
        Binding("n,escape", "answer(False)", "No", tooltip="no: do not run it"),
    ]

    def __init__(self, message: str, detail: str | None = None, yes: str = "Run it", no: str = "Cancel") -> None:
        super().__init__(classes="modal")
        self.message = message
        self.detail = detail
        self.yes, self.no = yes, no

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog", id="confirm-dialog"):
            yield Static(escape(self.message), classes="dialog-title")
            if self.detail:
                yield Static(f"[dim]{escape(self.detail)}[/dim]", classes="dialog-detail")
            with Horizontal(classes="dialog-buttons"):
                yield Button(f"{self.yes} (y)", variant="success", id="yes")
                yield Button(f"{self.no} (n)", variant="error", id="no")

    def on_mount(self) -> None:
        self.query_one("#yes", Button).focus()

    def action_answer(self, approve: bool) -> None:
        self.dismiss(approve)

    @on(Button.Pressed)
    def _pressed(self, event: Button.Pressed) -> None:
        event.stop()
        self.dismiss(event.button.id == "yes")

    @staticmethod
    def for_tool(tool: str, args: dict[str, Any], message: str | None = None) -> "ConfirmScreen":
        return ConfirmScreen(message or f"Run {tool}?", detail=f"{tool} {compact_args(args)}")


class TextPromptScreen(ModalScreen[str | None]):
    """One line of text (a thread's new title): Enter accepts, Esc cancels."""

    BINDINGS = [Binding("escape", "cancel", "Cancel", tooltip="close without saving")]

    def __init__(self, title: str, value: str = "", placeholder: str = "") -> None:
        super().__init__(classes="modal")
        self.prompt_title = title
        self.value = value
        self.placeholder = placeholder

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog"):
            yield Static(escape(self.prompt_title), classes="dialog-title")
            yield Input(value=self.value, placeholder=self.placeholder, id="prompt-input")
            yield Static("[dim]Enter to save · Esc to cancel[/dim]")

    def on_mount(self) -> None:
        self.query_one(Input).focus()

    @on(Input.Submitted)
    def _submitted(self, event: Input.Submitted) -> None:
        event.stop()
        self.dismiss(event.value.strip() or None)

    def action_cancel(self) -> None:
        self.dismiss(None)


class ImageTree(DirectoryTree):
    """A directory tree that lists folders and image files only (hidden files left out)."""

    def filter_paths(self, paths: Iterable[Path]) -> Iterable[Path]:
        return [p for p in paths if not p.name.startswith(".")
                and (p.is_dir() or p.suffix.lower() in IMAGE_SUFFIXES)]


class FilePickerScreen(ModalScreen[str | None]):
    """Pick an image to attach: browse with the arrow keys, or type a path and press Enter."""

    BINDINGS = [Binding("escape", "cancel", "Cancel", tooltip="close without attaching")]

    def __init__(self, start: str | Path | None = None) -> None:
        super().__init__(classes="modal")
        self.start = Path(start or Path.cwd()).expanduser()

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog", id="picker-dialog"):
            yield Static("Attach an image", classes="dialog-title")
            yield Input(placeholder="type a path, or choose below and press Enter", id="picker-path")
            yield ImageTree(str(self.start), id="picker-tree")
            yield Static("[dim]Tab moves between the path and the tree · Esc cancels[/dim]")

    def on_mount(self) -> None:
        self.query_one(ImageTree).focus()

    @on(DirectoryTree.FileSelected)
    def _file_selected(self, event: DirectoryTree.FileSelected) -> None:
        event.stop()
        self.dismiss(str(Path(event.path).absolute()))

    @on(Input.Submitted, "#picker-path")
    def _typed(self, event: Input.Submitted) -> None:
        event.stop()
        text = event.value.strip().strip("'\"")
        if not text:
            return
        path = Path(text).expanduser()
        if path.is_dir():
            self.query_one(ImageTree).path = path
            return
        if not path.is_file():
            self.notify(f"no such file: {path}", severity="error")
            return
        self.dismiss(str(path.absolute()))

    def action_cancel(self) -> None:
        self.dismiss(None)


HELP_INTRO = """\
# Taller chat

Ask in plain words: *train the autoencoder for 3 epochs*, *what is a VAE?*,
*which artist sold most?*, *summarise the video*. Everything below works from the keyboard.
"""

HELP_MESSAGES = """\
Alt+↑ / Alt+↓ select a message in the log (Esc goes back to the prompt); Ctrl+Y, F2,
Alt+← / Alt+→ then act on the selected one. Nothing selected: they act on the last answer, the
last message you sent and the latest fork. A forked message shows `◀ 2/3 ▶`: the thread keeps
every earlier answer and edit as a branch.
"""


class HelpScreen(ModalScreen[None]):
    """Every key of the chat and every slash command (the App writes the text from its bindings)."""

    BINDINGS = [Binding("escape,q,f1", "close", "Close", tooltip="close this help")]

    def __init__(self, markdown: str) -> None:
        super().__init__(classes="modal")
        self.markdown = markdown

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog", id="help-dialog"):
            yield Markdown(self.markdown)
            yield Static("[dim]↑ ↓ PgUp PgDn scroll · Esc closes[/dim]")

    def on_mount(self) -> None:
        self.query_one(Markdown).focus()

    def action_close(self) -> None:
        self.dismiss(None)


class CopyScreen(ModalScreen[CopyChoice | None]):
    """What the selected message offers to copy: ↑ ↓ and Enter, or its number; Esc closes."""

    BINDINGS = [
        Binding("escape", "cancel", "Close", tooltip="close without copying"),
        # One binding a digit (an action gets its number from its binding); the help shows them
        # as one row because they share the tooltip.
        *(Binding(str(number), f"pick({number})", f"Copy {number}", show=False,
                  tooltip="copy the entry with that number") for number in range(1, 10)),
    ]

    def __init__(self, title: str, choices: list[CopyChoice]) -> None:
        super().__init__(classes="modal")
        self.copy_title = title
        self.choices = choices

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog", id="copy-dialog"):
            yield Static(escape(self.copy_title), classes="dialog-title")
            yield OptionList(*(Option(Text(f"{number}  {choice.label}"), id=str(number - 1))
                               for number, choice in enumerate(self.choices, start=1)), id="copy-options")
            yield Static("[dim]Enter or a number copies · Esc closes[/dim]")

    def on_mount(self) -> None:
        options = self.query_one(OptionList)
        options.highlighted = 0
        options.focus()

    @on(OptionList.OptionSelected)
    def _selected(self, event: OptionList.OptionSelected) -> None:
        event.stop()
        self.dismiss(self.choices[int(event.option.id or 0)])

    def action_pick(self, number: int) -> None:
        if 1 <= number <= len(self.choices):
            self.dismiss(self.choices[number - 1])

    def action_cancel(self) -> None:
        self.dismiss(None)


EXPORT_FORMATS = (
    ("md", "m", "Markdown: the conversation, tool calls, tables and images"),
    ("json", "j", "JSON: every message, to import again (taller import FILE)"),
    ("py", "p", "Python script that repeats the thread's tool calls"),
    ("ipynb", "n", "Jupyter notebook that repeats the thread's tool calls"),
)


class ExportScreen(ModalScreen[str | None]):
    """Choose the format of the current thread's export: m, j, p, n, or ↑ ↓ and Enter."""

    BINDINGS = [
        Binding("m", "choose('md')", "Markdown", tooltip="export as Markdown (.md)"),
        Binding("j", "choose('json')", "JSON", tooltip="export as JSON (.json, importable)"),
        Binding("p", "choose('py')", "Python", tooltip="export as a runnable Python script (.py)"),
        Binding("n", "choose('ipynb')", "Notebook", tooltip="export as a Jupyter notebook (.ipynb)"),
        Binding("escape", "choose(None)", "Close", tooltip="close without exporting"),
    ]

    def __init__(self, folder: str) -> None:
        super().__init__(classes="modal")
        self.folder = folder

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog", id="export-dialog"):
            yield Static("Export this thread", classes="dialog-title")
            yield OptionList(*(Option(Text(f"{key}  {label}"), id=fmt) for fmt, key, label in EXPORT_FORMATS),
                             id="export-options")
            yield Static(f"[dim]written under {escape(self.folder)} · Esc closes[/dim]")

    def on_mount(self) -> None:
        options = self.query_one(OptionList)
        options.highlighted = 0
        options.focus()

    @on(OptionList.OptionSelected)
    def _selected(self, event: OptionList.OptionSelected) -> None:
        event.stop()
        self.dismiss(event.option.id)

    def action_choose(self, fmt: str | None) -> None:
        self.dismiss(fmt)


class RunsScreen(ModalScreen[None]):
    """Every training run (this session's and those on disk); ``c`` cancels the selected one."""

    BINDINGS = [
        Binding("escape,q", "close", "Close", tooltip="close the window"),
        Binding("c", "cancel_run", "Cancel run", tooltip="cancel the selected run (it keeps its last checkpoint)"),
        Binding("r", "refresh", "Refresh", tooltip="read the runs again"),
    ]

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog", id="runs-dialog"):
            yield Static("Training runs", classes="dialog-title")
            yield DataTable(id="runs-table", cursor_type="row", zebra_stripes=True)
            yield Label("loading…", id="runs-note")
            yield Static("[dim]c cancels the selected run · r refreshes · Esc closes[/dim]")

    def on_mount(self) -> None:
        table = self.query_one(DataTable)
        table.add_columns("run", "model", "state", "epoch", "metrics")
        table.focus()
        self.action_refresh()

    def action_refresh(self) -> None:
        self._load()

    @work(thread=True, exclusive=True, group="runs")
    def _load(self) -> None:
        # Reading every run's status.json is file I/O: off the UI thread.
        try:
            from taller.trainers import runs
        except ImportError as exc:
            self.app.call_from_thread(self._show, [], f"training runs are not available in this version ({exc})")
            return
        problems: list[dict[str, str]] = []
        try:
            rows = runs.list_all(problems=problems)
        except Exception as exc:
            self.app.call_from_thread(self._show, [], f"cannot list runs: {type(exc).__name__}: {exc}")
            return
        note = None
        if problems:
            note = (f"{len(rows)} run(s); skipped {len(problems)} unreadable run folder(s): "
                    f"{problems[0]['path']} ({problems[0]['problem']})")
        self.app.call_from_thread(self._show, rows, note)

    def _show(self, rows: list[dict[str, Any]], problem: str | None) -> None:
        table = self.query_one(DataTable)
        table.clear()
        for row in rows:
            metrics = row.get("metrics") or {}
            shown = ", ".join(f"{k} {format_number(v)}" for k, v in list(metrics.items())[:3]
                              if isinstance(v, (int, float)))
            epoch = f"{row.get('epoch') or 0}/{row.get('epochs') or '?'}"
            cells = (row.get("run_id"), row.get("model") or "", row.get("state") or "", epoch, shown)
            table.add_row(*(Text(str(cell)) for cell in cells), key=str(row.get("run_id")))
        note = self.query_one("#runs-note", Label)
        note.update(problem or (f"{len(rows)} run(s)" if rows else "no training runs yet: try /train autoencoder 1"))

    def action_cancel_run(self) -> None:
        table = self.query_one(DataTable)
        if table.row_count == 0:
            return
        run_id = table.coordinate_to_cell_key(table.cursor_coordinate).row_key.value
        self.app.cancel_run(run_id)  # the App knows how (and says so when runs are unavailable)
        self.set_timer(0.5, self.action_refresh)

    def action_close(self) -> None:
        self.dismiss(None)
