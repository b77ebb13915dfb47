"""A query result's chart spec drawn as terminal text: unicode bars, or a sparkline for a line.

The spec comes from :func:`taller.knowledge.sql.charts.chart_spec` (``{"type", "x", "y",
"points"}``); this module only draws it, as plain strings (no Textual, no markup), so a card
shows it in a ``Static`` and a test reads it as text. Anything it cannot read draws nothing.
"""

from __future__ import annotations

import math
from typing import Any

BAR_WIDTH = 30  # cells of the longest bar
LABEL_WIDTH = 18
SPARK_WIDTH = 50  # a line has at most 50 points: one cell each
# Eighths of a cell, so a bar's length is exact to 1/8 of a character.
_EIGHTHS = " ▏▎▍▌▋▊▉"
_SPARKS = "▁▂▃▄▅▆▇█"


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _value_text(value: float) -> str:
    if float(value).is_integer():
        return f"{int(value):,}"
    return f"{value:,.2f}"


def _fit(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


def bar(value: float, largest: float, width: int = BAR_WIDTH) -> str:
    """A horizontal bar of ``abs(value) / largest`` of ``width`` cells, in eighths of a cell."""
    if largest <= 0:
        return ""
    eighths = round(8 * width * min(abs(value) / largest, 1.0))
    full, rest = divmod(eighths, 8)
    return "█" * full + (_EIGHTHS[rest] if rest else "")


def sparkline(values: list[float]) -> str:
    """One block per value, from ▁ (the smallest) to █ (the largest)."""
    low, high = min(values), max(values)
    if high == low:
        return _SPARKS[len(_SPARKS) // 2] * len(values)
    return "".join(_SPARKS[round((v - low) / (high - low) * (len(_SPARKS) - 1))] for v in values)


def chart_lines(spec: Any, width: int = BAR_WIDTH) -> list[str]:
    """The chart as lines of text; empty when ``spec`` is not a chart this module can draw."""
    if not isinstance(spec, dict) or spec.get("type") not in ("bar", "line"):
        return []
    points = [p for p in spec.get("points") or [] if isinstance(p, (list, tuple)) and len(p) == 2 and _number(p[1])]
    if len(points) < 2:
        return []
    x_name, y_name = str(spec.get("x") or ""), str(spec.get("y") or "")
    if spec["type"] == "line":
        values = [float(p[1]) for p in points[:SPARK_WIDTH]]
        first, last = str(points[0][0]), str(points[min(len(points), SPARK_WIDTH) - 1][0])
        return [f"{y_name} by {x_name}",
                sparkline(values),
                f"{first} … {last}  ·  min {_value_text(min(values))}  max {_value_text(max(values))}"]
    largest = max(abs(float(p[1])) for p in points)
    labels = [_fit("NULL" if p[0] is None else str(p[0]), LABEL_WIDTH) for p in points]
    pad = max(len(label) for label in labels)
    lines = [f"{y_name} by {x_name}"]
    for label, (_, value) in zip(labels, points):
        # A negative value's bar is its size; the printed value says which way.
        lines.append(f"{label.ljust(pad)} {bar(float(value), largest, width)} {_value_text(float(value))}")
    return lines
