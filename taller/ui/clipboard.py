"""Copying from the chat: what can be copied from a message, and where the copy goes (no Textual).

Two halves, both plain Python:

* :func:`copy_choices` lists what a message offers: an answer's whole Markdown, each fenced code
  block in it and each Markdown table (as TSV and as Markdown); a tool card's SQL query, its
  result table (TSV and Markdown), its summary and raw JSON; a user message's text.
* :func:`clipboard_mode` decides how the text reaches the user's clipboard, and
  :func:`write_fallback` writes the file used when the terminal cannot take it.

The terminal clipboard is OSC 52 (the App's ``copy_to_clipboard``): the terminal, even over SSH,
puts the text on the system clipboard. Terminals do not answer whether they honour it, and one
that ignores it does so silently, so Taller sends it only where the terminal names itself as one
that accepts it by default (kitty, WezTerm, Alacritty, foot, Ghostty, iTerm2, Windows Terminal);
everywhere else (GNOME Terminal and other VTE terminals, Apple Terminal, tmux and screen without
their clipboard passthrough, an unknown ``TERM``) the text goes to ``$TALLER_HOME/clipboard.txt``
and the notification says so. ``TALLER_TUI_CLIPBOARD`` overrides the guess: ``osc52``, ``file``,
``both`` or ``auto`` (the default).
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

from taller.ui.formatting import table_of

MODES = ("auto", "osc52", "file", "both")
FALLBACK_NAME = "clipboard.txt"
MAX_COPY_CHARS = 1_000_000  # more than any answer or capped result; OSC 52 payloads stay sane
LABEL_CHARS = 48  # how much of a code block's first line a menu entry shows

# Terminals that accept an OSC 52 write without the user changing a setting, by what they put in
# the environment (TERM survives SSH; TERM_PROGRAM and LC_TERMINAL often do too).
OSC52_TERMS = ("xterm-kitty", "alacritty", "foot", "foot-extra", "xterm-ghostty", "wezterm")
OSC52_TERM_PROGRAMS = ("wezterm", "ghostty", "iterm.app")
OSC52_VARIABLES = ("KITTY_WINDOW_ID", "WEZTERM_PANE", "ALACRITTY_WINDOW_ID", "GHOSTTY_RESOURCES_DIR", "WT_SESSION")
# Multiplexers swallow OSC 52 unless configured (tmux: set-clipboard on), so they decide alone.
MULTIPLEXER_VARIABLES = ("TMUX", "STY")


@dataclass(frozen=True)
class CopyChoice:
    """One thing a message offers to copy: what the menu says, and the text copied."""

    label: str
    text: str


def clipboard_mode(environ: Mapping[str, str] | None = None) -> str:
    """``osc52``, ``file`` or ``both``: where a copy goes in this terminal.

    ``TALLER_TUI_CLIPBOARD`` wins when it names a mode; ``auto`` (or an unknown value) guesses
    from the environment, as the module's docstring explains.
    """
    environ = os.environ if environ is None else environ
    asked = (environ.get("TALLER_TUI_CLIPBOARD") or "auto").strip().lower()
    if asked in MODES and asked != "auto":
        return asked
    return "osc52" if terminal_accepts_osc52(environ) else "file"


def terminal_accepts_osc52(environ: Mapping[str, str]) -> bool:
    """Whether the terminal names itself as one that takes OSC 52 writes by default."""
    if any(environ.get(name) for name in MULTIPLEXER_VARIABLES):
        return False
    term = (environ.get("TERM") or "").lower()
    program = (environ.get("TERM_PROGRAM") or environ.get("LC_TERMINAL") or "").lower()
    return (term in OSC52_TERMS or program in OSC52_TERM_PROGRAMS
            or any(environ.get(name) for name in OSC52_VARIABLES))


def write_fallback(home: Path, text: str) -> Path:
    """Write ``text`` to ``home/clipboard.txt`` (readable by the user only) and return the path.

    Written to a temporary file first and renamed, so a reader never sees half a copy.
    """
    home.mkdir(parents=True, exist_ok=True)
    path = home / FALLBACK_NAME
    partial = home / (FALLBACK_NAME + ".partial")
    descriptor = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
        handle.write(text)
    os.replace(partial, path)
    return path


def bounded(text: str) -> str:
    """The text to copy, cut at :data:`MAX_COPY_CHARS` (a copy never floods the terminal)."""
    return text if len(text) <= MAX_COPY_CHARS else text[:MAX_COPY_CHARS]


# --- what a message offers ----------------------------------------------------------------------

FENCE = re.compile(r"^(?P<indent>[ ]{0,3})(?P<fence>`{3,}|~{3,})[ \t]*(?P<info>[^\n`]*)\n(?P<body>.*?)^(?P=indent)(?P=fence)[ \t]*$",
                   re.MULTILINE | re.DOTALL)
TABLE_SEPARATOR = re.compile(r"^\s*\|?\s*:?-{3,}:?\s*(\|\s*:?-{3,}:?\s*)*\|?\s*$")


def code_blocks(markdown: str) -> list[tuple[str, str]]:
    """``(language, code)`` for each fenced code block of a Markdown text, in order."""
    blocks = []
    for match in FENCE.finditer(markdown or ""):
        language = match.group("info").strip().split(" ")[0] if match.group("info").strip() else ""
        blocks.append((language, match.group("body").rstrip("\n")))
    return blocks


def markdown_tables(markdown: str) -> list[tuple[list[str], list[list[str]]]]:
    """Columns and rows of each pipe table in a Markdown text (code blocks left out)."""
    text = FENCE.sub("", markdown or "")
    lines = text.splitlines()
    tables = []
    index = 0
    while index + 1 < len(lines):
        if "|" in lines[index] and TABLE_SEPARATOR.match(lines[index + 1]):
            columns = _cells(lines[index])
            rows = []
            index += 2
            while index < len(lines) and "|" in lines[index] and lines[index].strip():
                rows.append(_cells(lines[index]))
                index += 1
            tables.append((columns, rows))
        else:
            index += 1
    return tables


def _cells(line: str) -> list[str]:
    line = line.strip()
    if line.startswith("|"):
        line = line[1:]
    if line.endswith("|") and not line.endswith("\\|"):
        line = line[:-1]
    # A pipe written \| inside a cell is part of the cell.
    return [cell.strip().replace("\\|", "|") for cell in re.split(r"(?<!\\)\|", line)]


def _cell(value: Any) -> str:
    return "" if value is None else str(value)


def table_tsv(columns: list[str], rows: list[list[Any]]) -> str:
    """Tab-separated values with a header line (tabs and line breaks in cells become spaces),
    which spreadsheets paste into cells."""

    def clean(value: Any) -> str:
        return re.sub(r"[\t\r\n]+", " ", _cell(value))

    return "\n".join("\t".join(clean(cell) for cell in line) for line in [columns, *rows]) + "\n"


def table_markdown(columns: list[str], rows: list[list[Any]]) -> str:
    """A Markdown pipe table (pipes in cells escaped, line breaks as spaces)."""

    def clean(value: Any) -> str:
        return re.sub(r"[\r\n]+", " ", _cell(value)).replace("|", "\\|")

    lines = ["| " + " | ".join(clean(c) for c in columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(clean(c) for c in row) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def _rows(count: int) -> str:
    return "1 row" if count == 1 else f"{count} rows"


def _first_line(code: str) -> str:
    line = next((line.strip() for line in code.splitlines() if line.strip()), "")
    return line if len(line) <= LABEL_CHARS else line[: LABEL_CHARS - 1] + "…"


def answer_choices(markdown: str) -> list[CopyChoice]:
    """An answer: the whole Markdown first, then each code block, then each table."""
    choices = [CopyChoice("The whole answer (Markdown)", markdown)] if markdown.strip() else []
    blocks = code_blocks(markdown)
    for number, (language, code) in enumerate(blocks, start=1):
        kind = f"{language} code" if language else "Code"
        choices.append(CopyChoice(f"{kind} block {number}: {_first_line(code)}", code + "\n"))
    for number, (columns, rows) in enumerate(markdown_tables(markdown), start=1):
        choices.append(CopyChoice(f"Table {number} as TSV ({_rows(len(rows))})", table_tsv(columns, rows)))
        choices.append(CopyChoice(f"Table {number} as Markdown", table_markdown(columns, rows)))
    return choices


def tool_choices(tool: str, result: dict[str, Any] | None) -> list[CopyChoice]:
    """A tool card: the SQL query, the result table (TSV, Markdown), the summary, the raw JSON."""
    if not isinstance(result, dict):
        return []
    choices = []
    sql = result.get("sql")
    if isinstance(sql, str) and sql.strip():
        choices.append(CopyChoice("SQL query", sql.strip() + "\n"))
    table = table_of(result)
    if table is not None and table[0]:
        columns, rows = table
        choices.append(CopyChoice(f"Result table as TSV ({_rows(len(rows))})", table_tsv(columns, rows)))
        choices.append(CopyChoice("Result table as Markdown", table_markdown(columns, rows)))
    summary = result.get("error") or result.get("summary")
    if isinstance(summary, str) and summary.strip():
        choices.append(CopyChoice("Summary" if not result.get("error") else "Error", summary.strip() + "\n"))
    choices.append(CopyChoice(f"Raw {tool} result (JSON)", json.dumps(result, ensure_ascii=False, indent=1, default=str) + "\n"))
    return choices


def user_choices(text: str) -> list[CopyChoice]:
    return [CopyChoice("Your message", text)] if text.strip() else []
