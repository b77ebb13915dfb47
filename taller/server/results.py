"""Image URLs for the files a tool result names, so a client can show them inline.

A tool result is plain JSON from the tool (``{"summary", "images": [...], "grid": "...png", ...}``).
The live stream shows a result's images through separate ``image`` events; a thread's history
has only the results, so the server adds ``image_urls`` (``path → /files?path=…``) for every image
path it finds in a result that ``/files`` would serve. Pure: the caller passes ``file_url``.
"""

from __future__ import annotations

from typing import Any, Callable

from taller.server.http import FILE_TYPES

# A result is walked this deep and this far: results are bounded before they reach the server,
# and a client shows a handful of images per result at most.
MAX_DEPTH = 4
MAX_STRINGS = 2_000
MAX_IMAGES = 24


def image_paths(result: Any) -> list[str]:
    """Strings in ``result`` that look like image file paths, in order, without repeats."""
    found: list[str] = []
    budget = [MAX_STRINGS]

    def walk(value: Any, depth: int) -> None:
        if budget[0] <= 0 or len(found) >= MAX_IMAGES or depth > MAX_DEPTH:
            return
        if isinstance(value, str):
            budget[0] -= 1
            if 1 < len(value) < 4096 and "\n" not in value and value.lower().endswith(tuple(FILE_TYPES)) \
                    and value not in found:
                found.append(value)
        elif isinstance(value, dict):
            for item in value.values():
                walk(item, depth + 1)
        elif isinstance(value, (list, tuple)):
            for item in value:
                walk(item, depth + 1)

    walk(result, 0)
    return found


def image_urls(result: Any, file_url: Callable[[str], str | None]) -> dict[str, str]:
    """``path → URL`` for the image paths of ``result`` that the server serves (others are left out)."""
    urls = {}
    for path in image_paths(result):
        url = file_url(path)
        if url:
            urls[path] = url
    return urls
