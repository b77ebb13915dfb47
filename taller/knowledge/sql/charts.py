"""A chart for a query result, as a declarative spec that code builds from the rows.

The LLM writes the SQL and nothing else: whether a result gets a chart, and which one, is
decided here from the result's shape, so no generated code is ever run to draw it. The spec is
plain JSON that every interface draws its own way (the page as inline SVG, the terminal with
unicode blocks)::

    {"type": "bar" | "line", "x": "<column>", "y": "<column>", "points": [[x, y], ...]}

- **line**: two columns, the first a date, month or year (ISO text such as ``2009-01`` or
  ``2009-01-03 00:00:00``, or four-digit year integers), the second a number; at least two
  points, sorted by time.
- **bar**: two columns, a label and a number, 2–30 rows (more bars than that are unreadable, and a
  result that long is a list to scroll, not a picture).
- otherwise ``None``: one value, more than two columns, no number, or too few points.

At most :data:`MAX_POINTS` points are sent; a longer time series is thinned evenly (first and
last kept), so a chart never carries the whole result.
"""

from __future__ import annotations

import math
import re
from typing import Any

MAX_POINTS = 50
MIN_BARS, MAX_BARS = 2, 30

# ISO dates as databases print them: a year, a month, a day, a time (json_value writes dates
# this way too).
_ISO_TIME = re.compile(r"^\d{4}(-\d{2}(-\d{2}([ T]\d{2}:\d{2}(:\d{2}(\.\d+)?)?)?)?)?$")
# A column whose name says it holds years ("year", "Year", "anio", "año", "release_year").
_YEAR_NAME = re.compile(r"(year|a[nñ]o|anio)", re.I)


def _number(value: Any) -> bool:
    # bool is an int to Python but a yes/no to a reader; NaN and infinities cannot be drawn.
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _is_time_axis(name: str, values: list[Any]) -> bool:
    """Every value a date/month/year as ISO text, or every value a plausible year integer."""
    if all(isinstance(v, str) and _ISO_TIME.match(v.strip()) for v in values):
        return True
    if all(isinstance(v, int) and not isinstance(v, bool) for v in values):
        # Four-digit integers are years only when they read as years: a column named so, or
        # values of the last two centuries (ids 1000..1030 would otherwise become a timeline).
        if all(1000 <= v <= 2999 for v in values):
            return bool(_YEAR_NAME.search(name)) or all(1900 <= v <= 2100 for v in values)
    return False


def _thin(points: list[list[Any]], limit: int = MAX_POINTS) -> list[list[Any]]:
    """At most ``limit`` points, evenly spaced, first and last kept."""
    if len(points) <= limit:
        return points
    step = (len(points) - 1) / (limit - 1)
    return [points[round(i * step)] for i in range(limit)]


def chart_spec(columns: list[str], rows: list[list[Any]]) -> dict[str, Any] | None:
    """The chart for a result (see the module docstring), or None when it has none."""
    if len(columns) != 2 or len(rows) < 2:
        return None
    pairs = [list(row) for row in rows if isinstance(row, (list, tuple)) and len(row) == 2]
    if len(pairs) != len(rows):
        return None
    # Rows without a number (NULL) are left out of the picture; the table still shows them.
    points = [[x, y] for x, y in pairs if _number(y)]
    if len(points) < 2:
        return None
    x_name, y_name = str(columns[0]), str(columns[1])
    xs = [x for x, _ in points]
    if all(x is not None for x in xs) and _is_time_axis(x_name, xs):
        if len({str(x).strip() for x in xs}) != len(xs):
            return None  # two values for one date: not one series
        # ISO text sorts as time; years as numbers. (The query may have ordered by the value.)
        points.sort(key=lambda point: (str(point[0]).strip() if isinstance(point[0], str) else f"{point[0]:04d}"))
        return {"type": "line", "x": x_name, "y": y_name, "points": _thin(points)}
    if not MIN_BARS <= len(rows) <= MAX_BARS:
        return None
    if any(isinstance(x, float) for x in xs):
        return None  # two measures (a float is no label): a scatter, which is not drawn here
    labels = [[("NULL" if x is None else x), y] for x, y in points]
    return {"type": "bar", "x": x_name, "y": y_name, "points": labels}
