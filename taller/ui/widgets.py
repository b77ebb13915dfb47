"""The chat's building blocks: messages, inline images, training progress, the attachments bar.

Every widget here is fed plain event dicts from :class:`taller.agent.session.Agent` (or the
progress bus) on the UI thread. None of them does I/O heavier than opening an image file, except
the runs panel's poll of the runs registry, which runs in a thread worker; so none can freeze
the interface. Tool cards are in :mod:`taller.ui.cards`, the status bar in :mod:`taller.ui.status`.
"""

from __future__ import annotations

import logging
from pathlib import Path

from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.message import Message
from textual.widget import Widget
from textual.widgets import Button, Markdown, ProgressBar, Sparkline, Static

from taller.ui.formatting import escape, file_link
from taller.ui.runs import RunState, RunTracker, ended_states

RUN_POLL_S = 2.0  # how often running training runs are checked for their end


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


# --- messages ---------------------------------------------------------------------------------------

class UserMessage(Static):
    """What the user typed (shown verbatim, never parsed as markup).

    It can be selected (focused) from the keyboard: Enter then edits it. ``index`` is its place
    in the thread's history (``None`` until the agent has saved it), which editing needs;
    ``branch`` is the ``◀ 2/3 ▶`` shown when the thread forks at this message.
    """

    can_focus = True
    BINDINGS = [Binding("enter", "app.edit_selected", "Edit", tooltip="on a selected message of yours: "
                        "put it in the prompt to edit; Enter there reruns from it")]

    def __init__(self, text: str, attachments: list[str] | None = None, index: int | None = None) -> None:
        self.text = text
        self.attachments = list(attachments or [])
        self.index = index
        self.branch = ""
        super().__init__(self._body(), classes="message user")

    def _body(self) -> str:
        body = escape(self.text)
        if self.attachments:
            body += "\n" + "\n".join(f"[dim]attached[/dim] {file_link(path)}" for path in self.attachments)
        if self.branch:
            body += f"\n[dim]{escape(self.branch)}[/dim]"
        return body

    def show_branch(self, label: str) -> None:
        """Show (or, with ``""``, hide) the branch indicator under the message."""
        if label != self.branch:
            self.branch = label
            self.update(self._body())


class AssistantMessage(Vertical):
    """The agent's answer: Markdown, streamed token by token, then a one-line footer.

    Selectable like a user message (for copying); ``index`` is its place in the history and
    ``branch`` the indicator shown when regenerating made several answers here.
    """

    can_focus = True

    def __init__(self, text: str = "", index: int | None = None) -> None:
        super().__init__(classes="message assistant")
        self._initial = text
        self._stream = None
        self.text = text
        self.index = index
        self.branch = ""

    def compose(self) -> ComposeResult:
        yield Markdown(self._initial, classes="answer")

    def show_branch(self, label: str) -> None:
        """Show (or, with ``""``, hide) the branch indicator above the answer's footer."""
        self.branch = label
        shown = list(self.query(".branch"))
        if not label:
            for old in shown:
                old.remove()
        elif shown:
            shown[0].update(f"[dim]{escape(label)}[/dim]")
        else:
            self.mount(Static(f"[dim]{escape(label)}[/dim]", classes="branch"), after=self.markdown)

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


class SuggestionsBar(Vertical):
    """Suggested next steps under an answer: numbered buttons (``/1`` … ``/3`` do the same).

    Pressing one puts its text in the prompt; nothing runs until the user presses Enter there.
    """

    class Chosen(Message):
        def __init__(self, text: str) -> None:
            super().__init__()
            self.text = text

    def __init__(self, suggestions: list[dict[str, str]]) -> None:
        super().__init__(classes="suggestions")
        self.suggestions = suggestions

    def compose(self) -> ComposeResult:
        for number, suggestion in enumerate(self.suggestions, start=1):
            yield Button(f"/{number} → {suggestion['label']}", name=str(number - 1), compact=True,
                         classes="next-step", tooltip=suggestion["text"])

    def on_button_pressed(self, event: Button.Pressed) -> None:
        event.stop()
        self.post_message(self.Chosen(self.suggestions[int(event.button.name or 0)]["text"]))


def clean_suggestions(raw: object, limit: int = 3) -> list[dict[str, str]]:
    """The ``final`` event's suggestions that can be shown: ``{"label", "text"}`` with text, at most
    ``limit``; a plain string is its own label."""
    out: list[dict[str, str]] = []
    for item in raw if isinstance(raw, list) else []:
        if isinstance(item, str):
            item = {"label": item, "text": item}
        if not isinstance(item, dict):
            continue
        text = str(item.get("text") or "").strip()
        label = " ".join(str(item.get("label") or text).split())
        if text and text not in (s["text"] for s in out):
            out.append({"label": label[:80], "text": text})
    return out[:limit]


class EditBar(Static):
    """Above the prompt while an earlier message is being edited: which one, and how to stop."""

    def __init__(self, **kwargs) -> None:
        super().__init__("", **kwargs)
        self.display = False

    def show_editing(self, position: int | None) -> None:
        if position is None:
            self.display = False
            self.update("")
            return
        self.display = True
        self.update(f"[b]Editing your message {position}[/b] · Enter reruns from it (the old answer "
                    "stays as a branch) · Esc stops editing")


class ErrorMessage(Static):
    """A request that failed: the reason, in full, in red."""

    def __init__(self, message: str) -> None:
        super().__init__(f"[b]Error:[/b] {escape(message)}", classes="message error")


class Notice(Static):
    """A short line from the app itself (help, command results, cancellation)."""

    def __init__(self, text: str, markup: bool = True) -> None:
        super().__init__(text if markup else escape(text), classes="message notice")


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
    """One training run: label with epoch/loss/metric/ETA, a progress bar, a loss sparkline, Cancel.

    It draws a :class:`taller.ui.runs.RunState`; the runs panel updates that state and calls
    :meth:`show`.
    """

    class CancelRequested(Message):
        def __init__(self, run_id: str) -> None:
            super().__init__()
            self.run_id = run_id

    def __init__(self, run: RunState) -> None:
        super().__init__(classes="run-progress")
        self.run = run
        self._ready = False

    @property
    def run_id(self) -> str:
        return self.run.run_id

    @property
    def state(self) -> str:
        return self.run.state

    @property
    def losses(self) -> list[float]:
        return self.run.losses

    def compose(self) -> ComposeResult:
        yield Static(self._label(), classes="run-label")
        with Horizontal(classes="run-bars"):
            yield ProgressBar(total=100, show_eta=False, classes="run-bar")
            yield Sparkline([], classes="run-sparkline")
            yield Button("Cancel", variant="error", compact=True, classes="run-cancel")

    def _label(self) -> str:
        parts = [f"[b]{escape(self.run.model)}[/b]", *(escape(part) for part in self.run.details())]
        if self.run.state != "running":
            parts.append(f"[b]{escape(self.run.state)}[/b]")
        return "  ".join(parts)

    def on_mount(self) -> None:
        self._ready = True
        self.show()

    def show(self) -> None:
        """Draw the run's current state."""
        # Events can arrive before the row's children exist; on_mount shows the latest state.
        if not self._ready:
            return
        done = self.run.fraction()
        if done is not None:
            self.query_one(ProgressBar).update(progress=round(100 * done, 1))
        self.query_one(Sparkline).data = list(self.run.losses)
        self.set_class(not self.run.active, "ended")
        self.query_one(".run-cancel", Button).disabled = self.run.state != "running"
        self.query_one(".run-label", Static).update(self._label())

    def on_button_pressed(self, event: Button.Pressed) -> None:
        event.stop()
        self.post_message(self.CancelRequested(self.run_id))


class RunsPanel(Vertical):
    """Live training runs of this session, above the prompt; hidden while there are none.

    Runs that finish or fail send no progress event: while one is running, the panel asks the
    runs registry every :data:`RUN_POLL_S` seconds, in a worker, and says when one has ended.
    """

    MAX_ROWS = 3

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.tracker = RunTracker()
        self._rows: dict[str, RunProgress] = {}
        self._poller = None

    def row(self, run_id: str) -> RunProgress | None:
        return self._rows.get(run_id)

    def rows(self) -> list[RunProgress]:
        return list(self._rows.values())

    def update_from(self, event: dict) -> None:
        """Apply one progress event that carries a ``run_id``: a new run gets a row."""
        if not event.get("run_id"):
            return
        if self.tracker.get(str(event["run_id"])) is None:
            # Room for the new run: the oldest runs that ended make way (running ones never do).
            for run_id in self.tracker.prune(self.MAX_ROWS - 1):
                # After the next refresh: a burst of events may prune a row mounted in this very
                # tick, and removing a widget before its mount completes leaves it half there.
                self.call_after_refresh(self._rows.pop(run_id).remove)
        run, created = self.tracker.update(event)
        if created:
            self._rows[run.run_id] = RunProgress(run)
            self.mount(self._rows[run.run_id])
            self.display = True
            if self._poller is None:
                self._poller = self.set_interval(RUN_POLL_S, self._poll)
        self._rows[run.run_id].show()

    def set_state(self, run_id: str, state: str) -> bool:
        """A run that ended stays listed (dimmed) with how it ended; True when the state changed."""
        changed = self.tracker.set_state(run_id, state)
        if changed:
            self._rows[run_id].show()
        return changed

    def _poll(self) -> None:
        running = self.tracker.running_ids()
        if running:
            self._check_runs(running)

    @work(thread=True, group="runs-poll", exclusive=True, exit_on_error=False)
    def _check_runs(self, run_ids: list[str]) -> None:
        ended = ended_states(run_ids)
        if ended:
            try:
                self.app.call_from_thread(self._runs_ended, ended)
            except RuntimeError:  # the app has closed
                return

    def _runs_ended(self, ended: dict[str, str]) -> None:
        for run_id, state in ended.items():
            if self.set_state(run_id, state):
                self.notify(f"Training run {run_id} {state}.",
                            severity="information" if state == "finished" else "warning")


# --- attachments ------------------------------------------------------------------------------------

class AttachmentsBar(Static):
    """Files attached to the next message, above the prompt; hidden while there are none."""

    def __init__(self, **kwargs) -> None:
        super().__init__("", **kwargs)
        self.paths: list[str] = []
        self.display = False

    def add(self, path: str) -> str | None:
        """Attach a file; the problem, said for people, when there is no such file."""
        resolved = Path(path).expanduser()
        if not resolved.is_file():
            return f"No such file: {resolved}"
        self.paths.append(str(resolved.absolute()))
        self._show()
        return None

    def take(self) -> list[str]:
        """The attached files, which go with the message being sent; the bar empties."""
        paths, self.paths = self.paths, []
        self._show()
        return paths

    def _show(self) -> None:
        self.display = bool(self.paths)
        self.update("[dim]attached[/dim] " + "  ".join(file_link(p, Path(p).name) for p in self.paths)
                    + "  [dim](sent with your next message)[/dim]" if self.paths else "")
