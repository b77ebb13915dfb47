"""The chat's building blocks: messages, tool cards, inline images, training progress, status bar.

Every widget here is fed plain event dicts from :class:`taller.agent.session.Agent` (or the
progress bus) by the App, on the UI thread. None of them does I/O heavier than opening an image
file, so none can freeze the interface.
"""

from __future__ import annotations

import json
import logging
import math
from pathlib import Path
from typing import Any

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.message import Message
from textual.widget import Widget
from textual.widgets import Button, Collapsible, DataTable, Markdown, ProgressBar, Sparkline, Static

MAX_TABLE_ROWS = 200  # rows shown in a result table (the tool already caps SQL results)
MAX_TABLE_LINES = 12  # lines a result table takes in the log (it scrolls beyond)
MAX_DETAIL_CHARS = 4000  # raw JSON shown under a tool card
SPARKLINE_POINTS = 60  # loss values kept per run


# --- helpers ----------------------------------------------------------------------------------------

def escape(text: Any) -> str:
    """Text made safe to embed in Textual markup: every ``[`` is literal.

    (``textual.markup.escape`` leaves ``["a", 1]`` alone, which the markup parser then rejects.)
    """
    text = str(text).replace("[", "\\[")
    # A trailing backslash would escape the markup tag that follows it.
    return text + " " if text.endswith("\\") else text


def image_widget_class(kind: str = "auto") -> type[Widget] | None:
    """The textual-image widget for ``kind`` (auto, sixel, tgp, halfcell, unicode), None for ``none``.

    textual-image asks the terminal for its cell size when imported, which is only possible before
    Textual takes over the terminal, so the App calls this in its constructor.
    """
    kind = (kind or "auto").lower()
    if kind == "none":
        return None
    # A terminal that does not answer the cell-size query (tmux, some SSH set-ups) makes
    # textual-image log a traceback before the app starts; its fallback size is fine, so hush it.
    logging.getLogger("textual_image").setLevel(logging.ERROR)
    try:
        from textual_image import widget as image_widgets
    except Exception:  # textual-image missing or the terminal query failed: paths only
        return None
    return {
        "auto": image_widgets.Image,
        "sixel": image_widgets.SixelImage,
        "tgp": image_widgets.TGPImage,
        "halfcell": image_widgets.HalfcellImage,
        "unicode": image_widgets.UnicodeImage,
    }.get(kind, image_widgets.Image)


def file_link(path: str | Path, label: str | None = None) -> str:
    """Markup for a clickable ``file://`` link (terminals that support OSC 8 open it)."""
    text = escape(label if label is not None else str(path))
    try:
        uri = Path(path).expanduser().absolute().as_uri()
    except ValueError:
        return text
    return f'[link="{uri.replace(chr(34), "%22")}"]{text}[/link]'


def url_link(url: str, label: str) -> str:
    if not url.startswith(("http://", "https://", "file://")):
        return escape(label)
    return f'[link="{url.replace(chr(34), "%22")}"]{escape(label)}[/link]'


def format_seconds(seconds: float | None) -> str:
    """``m:ss`` or ``h:mm:ss``, as a video player shows a time."""
    if seconds is None or not isinstance(seconds, (int, float)) or math.isnan(seconds) or seconds < 0:
        return "?"
    seconds = int(round(seconds))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


def format_number(value: Any) -> str:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return str(value)
    if isinstance(value, int):
        return str(value)
    if value != 0 and (abs(value) < 1e-3 or abs(value) >= 1e5):
        return f"{value:.3e}"
    return f"{value:.4f}"


def compact_args(args: Any, limit: int = 300) -> str:
    text = json.dumps(args, ensure_ascii=False, default=str) if args else "{}"
    return text if len(text) <= limit else text[: limit - 1] + "…"


def citation_link(citation: Any) -> str:
    """One citation of a video answer as ``[video 12:34](url) text`` markup.

    Accepts the fields video tools use (``url``, ``start``/``start_s``, ``video``/``video_id``/
    ``title``, ``text``/``snippet``, ``timestamp``); a YouTube id without a URL gets a ``&t=`` link.
    """
    if not isinstance(citation, dict):
        return escape(str(citation))
    start = citation.get("start", citation.get("start_s"))
    stamp = citation.get("timestamp") or (format_seconds(start) if isinstance(start, (int, float)) else "")
    video = str(citation.get("title") or citation.get("video") or citation.get("video_id") or "")
    url = citation.get("url") or ""
    video_id = citation.get("video_id")
    if not url and video_id and isinstance(start, (int, float)) and len(str(video_id)) == 11:
        url = f"https://www.youtube.com/watch?v={video_id}&t={int(start)}s"
    elif url and "youtube.com/watch" in url and "&t=" not in url and isinstance(start, (int, float)):
        url = f"{url}&t={int(start)}s"
    label = " ".join(part for part in (video, stamp) if part) or "source"
    if url.startswith(("http://", "https://")):
        head = url_link(url, label)
    elif url or citation.get("path"):
        head = file_link(url or citation["path"], label)
    else:
        head = escape(label)
    snippet = str(citation.get("text") or citation.get("snippet") or "").strip()
    if len(snippet) > 160:
        snippet = snippet[:159] + "…"
    return f"▸ {head}" + (f"  [dim]{escape(snippet)}[/dim]" if snippet else "")


def table_of(result: dict[str, Any]) -> tuple[list[str], list[list[Any]]] | None:
    """Columns and rows to show as a table: SQL results, or the first list of uniform records."""
    columns, rows = result.get("columns"), result.get("rows")
    if isinstance(columns, list) and isinstance(rows, list):
        out = []
        for row in rows[:MAX_TABLE_ROWS]:
            if isinstance(row, dict):
                out.append([row.get(str(c)) for c in columns])
            elif isinstance(row, (list, tuple)):
                out.append(list(row))
        return [str(c) for c in columns], out
    for key, value in result.items():
        if key in ("images", "citations") or not isinstance(value, list) or not value:
            continue
        if all(isinstance(item, dict) for item in value):
            names: list[str] = []
            for item in value[:MAX_TABLE_ROWS]:
                for name, cell in item.items():
                    if name not in names and not isinstance(cell, (dict, list)):
                        names.append(name)
            if names:
                return names[:8], [[item.get(n) for n in names[:8]] for item in value[:MAX_TABLE_ROWS]]
    return None


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


# --- messages ---------------------------------------------------------------------------------------

class UserMessage(Static):
    """What the user typed (shown verbatim, never parsed as markup)."""

    def __init__(self, text: str, attachments: list[str] | None = None) -> None:
        body = escape(text)
        if attachments:
            body += "\n" + "\n".join(f"[dim]attached[/dim] {file_link(path)}" for path in attachments)
        super().__init__(body, classes="message user")


class AssistantMessage(Vertical):
    """The agent's answer: Markdown, streamed token by token, then a one-line footer."""

    def __init__(self, text: str = "") -> None:
        super().__init__(classes="message assistant")
        self._initial = text
        self._stream = None
        self.text = text

    def compose(self) -> ComposeResult:
        yield Markdown(self._initial, classes="answer")

    @property
    def markdown(self) -> Markdown:
        return self.query_one(Markdown)

    async def append(self, fragment: str) -> None:
        """Add a streamed piece; rendering keeps up by batching pieces that arrive together."""
        self.text += fragment
        if self._stream is None:
            self._stream = Markdown.get_stream(self.markdown)
        await self._stream.write(fragment)

    async def finish(self, footer: str | None = None, text: str | None = None) -> None:
        """End the stream; ``text`` replaces the content when the final answer differs (no tokens)."""
        if self._stream is not None:
            await self._stream.stop()
            self._stream = None
        if text is not None and text.strip() and text.strip() != self.text.strip():
            self.text = text
            await self.markdown.update(text)
        if footer:
            await self.mount(Static(footer, classes="footer"))


class ErrorMessage(Static):
    """A request that failed: the reason, in full, in red."""

    def __init__(self, message: str) -> None:
        super().__init__(f"[b]Error:[/b] {escape(message)}", classes="message error")


class Notice(Static):
    """A short line from the app itself (help, command results, cancellation)."""

    def __init__(self, text: str, markup: bool = True) -> None:
        super().__init__(text if markup else escape(text), classes="message notice")


# --- tool cards ---------------------------------------------------------------------------------------

class ToolCard(Collapsible):
    """One tool call: the tool, its arguments and status, then its result; collapses with Enter."""

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
            columns, rows = table
            data = DataTable(classes="tool-table", zebra_stripes=True, cursor_type="row")
            data.add_columns(*columns)
            for row in rows:
                data.add_row(*(cell_text(cell) for cell in row))
            # A fixed height (header + rows, at most 12 lines): an "auto" height lets the first
            # layout pass show a scrollbar that then vanishes, and the table's width would jump.
            data.styles.height = min(len(rows) + 1, MAX_TABLE_LINES)
            widgets.append(data)
            total_rows = result.get("row_count", len(result.get("rows") or rows))
            if isinstance(total_rows, int) and total_rows > len(rows):
                widgets.append(Static(f"[dim]showing {len(rows)} of {total_rows} rows[/dim]"))
        if result.get("sql"):
            widgets.append(Static(f"[dim]SQL[/dim] {escape(str(result['sql']))}", classes="tool-sql"))
        citations = result.get("citations")
        if isinstance(citations, list) and citations:
            widgets.append(Static("\n".join(citation_link(c) for c in citations[:20]), classes="citations"))
        details = json.dumps(result, ensure_ascii=False, indent=1, default=str)
        if len(details) > MAX_DETAIL_CHARS:
            details = details[:MAX_DETAIL_CHARS] + "\n…"
        widgets.append(Collapsible(Static(escape(details), classes="tool-json"), title="raw result",
                                   collapsed=True, classes="tool-details"))
        self.contents.mount_all(widgets)


# --- images ---------------------------------------------------------------------------------------

class ImageBlock(Vertical):
    """An image a tool wrote: shown inline when the terminal can, always with its path."""

    def __init__(self, path: str, caption: str = "", renderer: type[Widget] | None = None) -> None:
        super().__init__(classes="image-block")
        self.path = str(path)
        self.caption = caption
        self.renderer = renderer
        self.problem: str | None = None

    def compose(self) -> ComposeResult:
        yield Static(f"[dim]image[/dim] {file_link(self.path)}", classes="image-path")
        picture = self._picture()
        if picture is not None:
            yield picture
        elif self.problem:
            yield Static(f"[dim]{escape(self.problem)}[/dim]", classes="image-problem")
        if self.caption:
            yield Static(f"[dim]{escape(self.caption)}[/dim]", classes="image-caption")

    def _picture(self) -> Widget | None:
        if self.renderer is None:
            self.problem = "inline images are off; open the file to see it"
            return None
        try:
            from PIL import Image as PILImage

            with PILImage.open(self.path) as probe:
                probe.verify()  # a corrupt or truncated file fails here, not while drawing
            image = PILImage.open(self.path)
            image.load()
        except Exception as exc:
            self.problem = f"cannot show the image inline ({type(exc).__name__}: {exc})"
            return None
        return self.renderer(image, classes="inline-image")


# --- training runs ----------------------------------------------------------------------------------

class RunProgress(Vertical):
    """One training run: label with epoch/loss/metric/ETA, a progress bar, a loss sparkline, Cancel."""

    class CancelRequested(Message):
        def __init__(self, run_id: str) -> None:
            super().__init__()
            self.run_id = run_id

    def __init__(self, run_id: str, model: str | None = None) -> None:
        super().__init__(classes="run-progress")
        self.run_id = run_id
        self.model = model or run_id.split("-")[0]
        self.losses: list[float] = []
        self.state = "running"
        self.last_event: dict[str, Any] = {}

    def compose(self) -> ComposeResult:
        yield Static(self._label(), classes="run-label")
        with Horizontal(classes="run-bars"):
            yield ProgressBar(total=100, show_eta=False, classes="run-bar")
            yield Sparkline([], classes="run-sparkline")
            yield Button("Cancel", variant="error", compact=True, classes="run-cancel")

    def _label(self) -> str:
        event = self.last_event
        parts = [f"[b]{escape(self.model)}[/b]"]
        if event.get("epoch") is not None and event.get("epochs"):
            parts.append(f"epoch {event['epoch']}/{event['epochs']}")
        if isinstance(event.get("loss"), (int, float)):
            parts.append(f"loss {format_number(event['loss'])}")
        if isinstance(event.get("metric"), (int, float)):
            parts.append(f"{escape(str(event.get('metric_name') or 'metric'))} {format_number(event['metric'])}")
        if self.state == "running":
            if isinstance(event.get("eta_s"), (int, float)) and event["eta_s"] > 0:
                parts.append(f"ETA {format_seconds(event['eta_s'])}")
        else:
            parts.append(f"[b]{escape(self.state)}[/b]")
        return "  ".join(parts)

    @staticmethod
    def fraction(event: dict[str, Any]) -> float | None:
        epoch, epochs = event.get("epoch"), event.get("epochs")
        step, total = event.get("step"), event.get("total")
        if not isinstance(epoch, (int, float)) or not isinstance(epochs, (int, float)) or epochs <= 0:
            return None
        if isinstance(step, (int, float)) and isinstance(total, (int, float)) and total > 0:
            done = ((epoch - 1) * total + step) / (epochs * total)
        else:
            done = epoch / epochs
        return min(max(done, 0.0), 1.0)

    def on_mount(self) -> None:
        self._ready = True
        self._show()

    def update_from(self, event: dict[str, Any]) -> None:
        """Apply one progress event (from the bus or the agent's stream)."""
        self.last_event = {**self.last_event, **{k: v for k, v in event.items() if v is not None}}
        if event.get("model"):
            self.model = str(event["model"])
        loss = event.get("loss")
        if isinstance(loss, (int, float)) and math.isfinite(loss):
            self.losses = (self.losses + [float(loss)])[-SPARKLINE_POINTS:]
        if event.get("state") in ("finished", "cancelled", "failed"):
            self.state = str(event["state"])
        self._show()

    def set_state(self, state: str) -> None:
        """A run that ended stays listed (dimmed) with how it ended."""
        self.state = state
        self._show()

    def _show(self) -> None:
        # Events can arrive before the row's children exist; on_mount shows the latest state.
        if not getattr(self, "_ready", False):
            return
        done = 1.0 if self.state == "finished" else self.fraction(self.last_event)
        if done is not None:
            self.query_one(ProgressBar).update(progress=round(100 * done, 1))
        self.query_one(Sparkline).data = list(self.losses)
        ended = self.state not in ("running", "cancelling")
        self.set_class(ended, "ended")
        self.query_one(".run-cancel", Button).disabled = self.state != "running"
        self.query_one(".run-label", Static).update(self._label())

    def on_button_pressed(self, event: Button.Pressed) -> None:
        event.stop()
        self.post_message(self.CancelRequested(self.run_id))


class RunsPanel(Vertical):
    """Live training runs of this session, above the prompt; hidden while there are none."""

    MAX_ROWS = 3

    def row(self, run_id: str) -> RunProgress | None:
        for child in self.query(RunProgress):
            if child.run_id == run_id:
                return child
        return None

    def rows(self) -> list[RunProgress]:
        return list(self.query(RunProgress))

    def update_from(self, event: dict[str, Any]) -> RunProgress:
        run_id = str(event["run_id"])
        row = self.row(run_id)
        if row is None:
            row = RunProgress(run_id, event.get("model"))
            self.mount(row)
            ended = [r for r in self.rows() if r.state != "running"]
            while len(self.rows()) > self.MAX_ROWS and ended:
                ended.pop(0).remove()
            self.display = True
        row.update_from(event)
        return row


# --- status bar ---------------------------------------------------------------------------------------

class StatusBar(Static):
    """One line: which LLM answered, GPU or CPU, the data folder, the thread."""

    def __init__(self) -> None:
        super().__init__("", id="status")
        self.backend = "…"
        self.model = ""
        self.device = "…"
        self.data = ""
        self.thread = ""
        self.busy = ""

    def set(self, **fields: str) -> None:
        for name, value in fields.items():
            setattr(self, name, value)
        self.update(self.status_text())

    def status_text(self) -> str:
        llm = escape(self.backend + (f" · {self.model}" if self.model else ""))
        parts = [f"[b]{llm}[/b]", escape(self.device), f"data: {escape(self.data)}"]
        if self.thread:
            parts.append(f"thread: {escape(self.thread)}")
        if self.busy:
            parts.insert(0, f"[reverse] {escape(self.busy)} [/reverse]")
        return " │ ".join(parts)
