"""The exceptions every layer shares (base layer: imports nothing from Taller).

They carry structured fields, never text to be parsed again: a :class:`ModelReplyError` keeps the
model's whole raw reply in ``reply`` so the caller can show it or feed it back to the model.
"""

from __future__ import annotations


class TallerError(Exception):
    """Base class of Taller's own errors."""


class ToolError(TallerError):
    """A clear, user-facing reason why a tool could not do what was asked.

    The message names the file or the value and what is wrong with it, never a file's contents.
    """


class CancelledError(TallerError):
    """Raised by long work when its cancel flag was set; the work left a valid state."""


class LLMUnavailableError(TallerError, RuntimeError):
    """No LLM backend can answer; the message says how to get one."""


class ModelReplyError(TallerError, ValueError):
    """The model's reply was not what was asked for (not JSON, not an object, …).

    ``reply`` is the whole reply as the model wrote it; the message shows only its start.
    """

    def __init__(self, message: str, reply: str) -> None:
        super().__init__(f"{message}: {reply[:200]!r}")
        self.reply = reply
