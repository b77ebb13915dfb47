"""The help screen's text, written from the key bindings themselves (no hand-kept list).

Each part of the chat that has keys (the App, a selected message, the threads list, every dialog)
is one section; its rows come from the class's own ``BINDINGS``: the keys as people write them
(``Ctrl+O``, ``n / Esc``) and what they do (the binding's tooltip when it has one, its footer
description otherwise). Adding a binding adds its row, so the help cannot go stale;
``tests/test_tui.py`` checks that every binding of every class in the chat appears.
"""

from __future__ import annotations

from typing import Any, Iterable, Sequence

# How a key name of Textual is written for people.
KEY_WORDS = {
    "escape": "Esc", "enter": "Enter", "tab": "Tab", "delete": "Delete", "backspace": "Backspace",
    "up": "↑", "down": "↓", "left": "←", "right": "→", "pageup": "PgUp", "pagedown": "PgDn",
    "home": "Home", "end": "End", "space": "Space", "ctrl": "Ctrl", "alt": "Alt", "shift": "Shift",
    "super": "Super", "slash": "/", "question_mark": "?",
}


def key_display(key: str) -> str:
    """``ctrl+o`` → ``Ctrl+O``, ``alt+left`` → ``Alt+←``, ``f1`` → ``F1``, ``y`` → ``y``."""
    parts = key.strip().split("+")
    shown = []
    for part in parts:
        if part in KEY_WORDS:
            shown.append(KEY_WORDS[part])
        elif len(part) > 1 and part[0] == "f" and part[1:].isdigit():
            shown.append(part.upper())
        elif len(parts) > 1 and len(part) == 1:
            shown.append(part.upper())  # Ctrl+O, as keyboards print it
        else:
            shown.append(part)
    return "+".join(shown)


def keys_display(keys: str) -> str:
    """A binding's comma-separated keys, each written for people: ``n / Esc``."""
    return " / ".join(key_display(key) for key in keys.split(",") if key.strip())


def binding_text(binding: Any) -> str:
    """What a binding does, in the help: its tooltip (the longer text) or its description."""
    return str(getattr(binding, "tooltip", "") or binding.description or binding.action)


def own_bindings(cls: type) -> list[Any]:
    """The bindings a class declares itself (``Binding`` objects; tuples are turned into them)."""
    from textual.binding import Binding

    out = []
    for item in cls.__dict__.get("BINDINGS", ()):
        out.append(item if isinstance(item, Binding) else Binding(*item))
    return out


def _cell(text: str) -> str:
    return text.replace("|", "\\|")


def section_markdown(title: str, bindings: Iterable[Any], note: str = "") -> str:
    """One ``## title`` section: a table of keys and what they do."""
    rows = [f"## {title}", ""]
    if note:
        rows += [note, ""]
    rows += ["| Key | Does |", "|---|---|"]
    # Bindings that share a tooltip (1 … 9 of a menu) are one row: their keys side by side.
    grouped: list[tuple[list[str], str]] = []
    for binding in bindings:
        text = binding_text(binding)
        if grouped and binding.tooltip and grouped[-1][1] == text:
            grouped[-1][0].append(keys_display(binding.key))
        else:
            grouped.append(([keys_display(binding.key)], text))
    for keys, text in grouped:
        rows.append(f"| {_cell(' / '.join(keys))} | {_cell(text)} |")
    return "\n".join(rows) + "\n"


def help_markdown(intro: str, sections: Sequence[tuple[str, Sequence[Any], str]], outro: str = "") -> str:
    """The whole help: the intro, one section per part of the chat, then the outro."""
    parts = [intro.rstrip() + "\n"]
    parts += [section_markdown(title, bindings, note) for title, bindings, note in sections]
    if outro:
        parts.append(outro)
    return "\n".join(parts)
