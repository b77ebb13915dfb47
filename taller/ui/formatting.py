"""Text for the chat's widgets: markup escaping, links, numbers, times, tables of results.

Plain functions over strings and dicts (no Textual, no Rich): the widgets, the screens and the
UI-free logic of :mod:`taller.ui.runs` and :mod:`taller.ui.commands` all format with them, so a
number or a time reads the same everywhere.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

MAX_TABLE_ROWS = 200  # rows shown in a result table (the tool already caps SQL results)


def escape(text: Any) -> str:
    """Text made safe to embed in Textual markup: every ``[`` is literal.

    (``textual.markup.escape`` leaves ``["a", 1]`` alone, which the markup parser then rejects.)
    """
    text = str(text).replace("[", "\\[")
    # A trailing backslash would escape the markup tag that follows it.
    return text + " " if text.endswith("\\") else text


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
