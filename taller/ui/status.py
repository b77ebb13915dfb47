"""The status bar: which LLM answers, GPU or CPU, the data folder, the thread, what is running.

The device is found by importing torch, which takes a second or two, so the bar probes it in a
thread worker (:meth:`StatusBar.probe_device`) and the chat opens at once.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from textual import work
from textual.widgets import Static

from taller.ui.formatting import escape


def short_path(path: Any) -> str:
    """A path with the home folder written ``~``."""
    text = str(path)
    home = str(Path.home())
    return "~" + text[len(home):] if home != "/" and text.startswith(home + os.sep) else text


def data_label(settings: Any) -> str:
    """The data folder, or the cache folder and a hint when TALLER_DATA_DIR is not set."""
    if settings.data_dir:
        return short_path(settings.data_dir)
    return f"{short_path(settings.cache_dir)} (no TALLER_DATA_DIR)"


def device_label(settings: Any) -> str:
    """"GPU <name>", "GPU (Apple MPS)" or "CPU", and the device setting when one is forced.

    Imports torch: call it from a worker thread.
    """
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
    if settings.device not in ("auto", "", None):
        label += f", device={settings.device}"
    return label


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

    @work(thread=True, group="startup", exit_on_error=False)
    def probe_device(self, settings: Any) -> None:
        label = device_label(settings)
        try:
            self.app.call_from_thread(self.set, device=label)
        except RuntimeError:  # the app has closed
            pass
