"""Time series for the ``rnn`` trainer's forecasting task: synthetic series, CSV columns, windows.

Kept apart from :mod:`taller.trainers.rnn` as :mod:`~taller.trainers.text` and
:mod:`~taller.trainers.images` are kept apart from the trainers that read them: the ``forecast``
tool reads a user's CSV with :func:`read_csv_column` before any model is involved.
"""

from __future__ import annotations

import csv
import math
import re
from pathlib import Path

import torch


def synthetic_series(count: int, length: int, generator: torch.Generator) -> torch.Tensor:
    """[count, length] series: level + trend + one or two seasonal waves + noise, varied scales."""
    t = torch.arange(length, dtype=torch.float32)
    def uniform(low: float, high: float) -> torch.Tensor:
        return low + (high - low) * torch.rand(count, 1, generator=generator)
    level = uniform(-50, 50)
    scale = 10 ** uniform(-1, 2)  # 0.1 to 100: the model must not depend on scale
    period = uniform(4, 40)
    period2 = uniform(40, 120)
    trend = uniform(-0.02, 0.02) * scale
    wave = torch.sin(2 * math.pi * t / period + uniform(0, 2 * math.pi))
    wave2 = uniform(0, 0.5) * torch.sin(2 * math.pi * t / period2 + uniform(0, 2 * math.pi))
    noise = uniform(0.02, 0.3) * torch.randn(count, length, generator=generator)
    return level + trend * t + scale * (wave + wave2 + noise)


_MISSING = {"na", "n/a", "nan", "null", "none", "-", "?", "missing"}
# A header cell shown in results as the column's name; anything else is called "column N", so a
# file that is no series (a credentials file, a config) never has a line of it echoed.
_SHOWN_NAME = re.compile(r"[\w .()%/#+-]{1,40}")


def _shown_name(name: str, index: int) -> str:
    name = name.strip()
    return name if _SHOWN_NAME.fullmatch(name) and "=" not in name else f"column {index + 1}"


def read_csv_column(path: str | Path, column: str | None = None) -> tuple[list[float], str]:
    """The numbers of one CSV column → (values, column name).

    Without ``column`` the last column whose cells are (almost all) numbers is used: series
    files usually put a date or index first and the value after it. Cells that are not numbers
    (blank, "NA", "null") are skipped as missing. ValueError when no column is numeric; its
    message names the file and what is wrong, never the file's contents (no header, no value).
    The name returned is the header cell when it looks like a column name, else "column N".
    """
    path = Path(path)
    text = path.read_text(encoding="utf-8-sig", errors="replace")
    if not text.strip():
        raise ValueError(f"{path.name} is empty")
    try:
        dialect = csv.Sniffer().sniff(text[:4096], delimiters=",;\t|")
    except csv.Error:
        dialect = csv.excel
    try:
        rows = [row for row in csv.reader(text.splitlines(), dialect) if any(cell.strip() for cell in row)]
    except csv.Error as exc:  # a field past csv's size limit, a NUL byte: never the text itself
        raise ValueError(f"{path.name} is not a readable CSV file ({str(exc)[:80]})") from None
    if not rows:
        raise ValueError(f"{path.name} has no rows with values")
    width = max(len(row) for row in rows)

    def number(cell: str) -> float | None:
        try:
            value = float(cell.strip().replace(" ", ""))
        except ValueError:
            return None
        return value if math.isfinite(value) else None

    has_header = any(number(cell) is None and cell.strip() for cell in rows[0])
    header = [cell.strip() for cell in rows[0]] + [""] * (width - len(rows[0])) if has_header else [f"column {i + 1}" for i in range(width)]
    body = rows[1:] if has_header else rows
    columns: dict[str, tuple[int, list[float]]] = {}
    for index, name in enumerate(header):
        name = name or f"column {index + 1}"
        cells = [row[index] for row in body
                 if index < len(row) and row[index].strip() and row[index].strip().lower() not in _MISSING]
        numbers = [v for v in (number(c) for c in cells) if v is not None]
        if cells and len(numbers) >= 0.9 * len(cells) and len(numbers) >= 2:
            columns[name] = (index, numbers)
    plural = "s" if width != 1 else ""
    if column is not None:
        if column not in columns:
            # The caller's name is quoted; the file's own header names are not.
            raise ValueError(f"column {column[:60]!r} is not a numeric column of {path.name} (it has "
                             f"{len(columns)} numeric column{'s' if len(columns) != 1 else ''} of {width})")
        index, values = columns[column]
        return values, _shown_name(column, index)
    if not columns:
        raise ValueError(f"{path.name} has no numeric column; it has {width} column{plural} and "
                         f"{len(body):,} row{'s' if len(body) != 1 else ''}, none of them mostly numbers")
    name, (index, values) = list(columns.items())[-1]
    return values, _shown_name(name, index)


def windows(series: torch.Tensor, window: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Every (window, next value) pair of a 1-D series: [N, window] and [N]."""
    frames = series.unfold(0, window + 1, 1)
    return frames[:, :window], frames[:, window]


def standardise(inputs: torch.Tensor, targets: torch.Tensor | None = None):
    """Scale each window by its own mean and spread (targets with the same numbers)."""
    mean = inputs.mean(dim=-1, keepdim=True)
    spread = inputs.std(dim=-1, keepdim=True, unbiased=False)
    spread = torch.where(spread > 1e-8, spread, torch.ones_like(spread))
    scaled = (inputs - mean) / spread
    if targets is None:
        return scaled, mean, spread
    return scaled, (targets - mean.squeeze(-1)) / spread.squeeze(-1), mean, spread
