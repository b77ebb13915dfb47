"""Running a checked query: read-only, with a statement timeout, and bounded in rows and bytes.

What a result carries is bounded while it is read, one row at a time (a huge result never sits
in memory, and nothing of it is copied, turned into text or JSON beyond the bounds):

* each text cell in ``rows`` is shown up to :data:`MAX_CELL_CHARS` characters, then cut with a
  note of its whole length;
* ``rows`` holds at most ``sql_row_limit`` rows and about :data:`MAX_RESULT_CHARS` characters of
  cell text in all; the rows after that are counted, and exported when export is on;
* the rows beyond what ``rows`` holds stream into a CSV file under ``outputs/sql`` (at most
  :data:`EXPORT_MAX_ROWS` rows and about :data:`EXPORT_MAX_BYTES` of cell text, each cell cut at
  :data:`EXPORT_MAX_CELL_CHARS`). It is written under a temporary name and renamed when the
  statement ends well: a statement that fails or times out leaves no file.

What was cut is said in :attr:`Execution.cut` (and the ``cut`` field of the tool result). SQLite
builds no value over :data:`~taller.knowledge.sql.safety.MAX_VALUE_BYTES` on Taller's connections;
other drivers hand over each value whole, so there the bounds apply from the driver's row on.
"""

from __future__ import annotations

import csv
import datetime as dt
import decimal
import os
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

from taller.config import get_settings
from taller.errors import ToolError
from taller.knowledge.sql.connection import Database
from taller.knowledge.sql.safety import (
    MAX_VALUE_BYTES,
    CheckedSQL,
    QueryTimeoutError,
    is_timeout,
    is_too_big,
    readonly_connection,
)

EXPORT_MAX_ROWS = 100_000
# Characters of one text cell shown in a result's rows; a longer one is cut and says its length.
MAX_CELL_CHARS = 2_000
# Characters of cell text that a result's rows hold in all (about 1 MB); later rows are not kept.
MAX_RESULT_CHARS = 1_000_000
# A CSV export's cells are cut here (a spreadsheet cell holds at most 32,767 characters) ...
EXPORT_MAX_CELL_CHARS = 32_767
# ... and the export stops after about this much cell text (100 MB).
EXPORT_MAX_BYTES = 100 * 1024 * 1024
# What a number, a date or NULL counts for in the character budgets.
_SCALAR_CHARS = 8


class ResultTooLargeError(ToolError):
    """A value of the result is larger than the database connection may build or read."""


def json_value(value: Any) -> Any:
    """A database value as plain JSON (Decimal → float, dates → ISO text, bytes → a note)."""
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, decimal.Decimal):
        return float(value)
    if isinstance(value, (dt.datetime, dt.date, dt.time)):
        return value.isoformat()
    if isinstance(value, memoryview):
        return f"<{value.nbytes} bytes>"
    if isinstance(value, (bytes, bytearray)):
        return f"<{len(value)} bytes>"
    return str(value)  # arrays, JSON documents, UUIDs...: their text (cut like any text cell)


def cut_text(text: str, limit: int) -> str:
    """``text`` cut to ``limit`` characters, ending with a note of its whole length."""
    return f"{text[:limit]}… [cut: {len(text):,} characters in all, {limit:,} shown]"


def _chars(value: Any) -> int:
    return len(value) if isinstance(value, str) else _SCALAR_CHARS


@dataclass
class Execution:
    """What running one query gave: the kept rows and what became of the rest."""

    columns: list[str]
    rows: list[list[Any]]
    row_count: int  # rows read (all of them, unless export stopped at its limits)
    truncated: bool  # rows holds fewer than row_count
    complete: bool  # every row of the result was read
    csv: str | None = None
    seconds: float = 0.0
    cut: str | None = None  # what was cut from the result and why (None: nothing)
    cut_cells: int = 0  # text cells shown cut at MAX_CELL_CHARS
    longest_cell: int = 0  # characters of the longest cell read


@dataclass
class _Bounds:
    """What was cut while reading, for :attr:`Execution.cut`."""

    cut_cells: int = 0
    longest: int = 0
    kept_chars: int = 0
    rows_by_size: bool = False  # rows stopped being kept at MAX_RESULT_CHARS
    export_chars: int = 0
    export_cells: int = 0  # cells cut at EXPORT_MAX_CELL_CHARS in the CSV
    export_by_size: bool = False
    export_by_rows: bool = False

    def note(self, kept: int, max_chars: int, csv_rows: int) -> str | None:
        parts = []
        if self.cut_cells:
            parts.append(f"{self.cut_cells:,} cell{'s' if self.cut_cells != 1 else ''} longer than "
                         f"{MAX_CELL_CHARS:,} characters {'are' if self.cut_cells != 1 else 'is'} shown cut "
                         f"(the longest has {self.longest:,} characters)")
        if self.rows_by_size:
            parts.append(f"only the first {kept:,} rows are shown: together their cells hold about "
                         f"{max_chars:,} characters, the most a result carries")
        if self.export_cells:
            parts.append(f"{self.export_cells:,} cell{'s' if self.export_cells != 1 else ''} of the CSV "
                         f"{'are' if self.export_cells != 1 else 'is'} cut at {EXPORT_MAX_CELL_CHARS:,} characters")
        if self.export_by_size:
            parts.append(f"the CSV stops after {csv_rows:,} rows: it reached about "
                         f"{EXPORT_MAX_BYTES // (1024 * 1024)} MB, the most an export holds")
        if self.export_by_rows:
            parts.append(f"the CSV stops at {EXPORT_MAX_ROWS:,} rows, the most an export holds")
        return "; ".join(parts) + "." if parts else None


def _rows(cursor: Any) -> Any:
    """Rows one at a time: the driver is never asked for a batch, so at most one row of a huge
    result is in memory (a batch of 500 rows of 60 MB cells would be 30 GB)."""
    while True:
        row = cursor.fetchone()
        if row is None:
            return
        yield row


def _start(cursor: Any, sql: str) -> Any:
    """Run ``sql`` on the driver's ``cursor``; its rows one at a time, ``cursor.description`` set.

    psycopg's ``execute`` reads the whole result into the client's memory before returning
    (measured: ``SELECT generate_series(1, 30000000)`` took 2.1 GB before the first row was
    looked at), so there the rows are streamed instead (``Cursor.stream``: libpq's single-row
    mode), and closing the stream early cancels the rest of the query on the server.
    """
    if type(cursor).__module__.split(".")[0] == "psycopg" and hasattr(cursor, "stream"):
        stream = cursor.stream(sql)
        # The columns are known once the first row has arrived.
        first = next(stream, None)
        if first is not None:
            return _Stream(first, stream)
        # An empty result tells a stream no columns: ask for them with LIMIT 0, which
        # PostgreSQL answers without running the query again (its plan is "never executed").
        cursor.execute(f"SELECT * FROM ({sql}) AS empty_result LIMIT 0")
    else:
        cursor.execute(sql)
    return _rows(cursor)


class _Stream:
    """``first`` then the rest of a started psycopg stream; :meth:`close` ends the stream even
    when iteration never began (it holds the connection's lock until then)."""

    def __init__(self, first: Any, rest: Any) -> None:
        self.first, self.rest = first, rest

    def __iter__(self) -> Iterator[Any]:
        yield self.first
        yield from self.rest

    def close(self) -> None:
        self.rest.close()


def _csv_path(db: Database) -> Path:
    folder = get_settings().outputs_dir / "sql"
    folder.mkdir(parents=True, exist_ok=True)
    stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S-%f")
    return folder / f"{re.sub(r'[^a-zA-Z0-9_-]+', '-', db.name)}-{stamp}.csv"


class _Export:
    """The CSV of a large result, written under a temporary name (``.name.csv.part``) and renamed
    only by :meth:`finish`; :meth:`discard` removes what was written."""

    def __init__(self, db: Database, columns: list[str]) -> None:
        self.path = _csv_path(db)
        self.part = self.path.with_name(f".{self.path.name}.part")
        self.file = open(self.part, "w", newline="", encoding="utf-8")
        self.writer = csv.writer(self.file)
        self.writer.writerow(columns)
        self.rows = 0

    def write(self, row: list[Any]) -> None:
        self.writer.writerow(row)
        self.rows += 1

    def finish(self) -> Path:
        self.file.close()
        os.replace(self.part, self.path)
        return self.path

    def discard(self) -> None:
        if not self.file.closed:
            self.file.close()
        self.part.unlink(missing_ok=True)


def execute_checked(db: Database, checked: CheckedSQL, row_limit: int | None = None,
                    export: bool = True, timeout_s: float | None = None,
                    max_chars: int | None = None) -> Execution:
    """Run a checked query read-only; keep ``row_limit`` rows (and at most ``max_chars``
    characters of cell text, default :data:`MAX_RESULT_CHARS`) and export the rest to CSV."""
    settings = get_settings()
    row_limit = settings.sql_row_limit if row_limit is None else row_limit
    timeout_s = settings.sql_timeout_s if timeout_s is None else timeout_s
    max_chars = MAX_RESULT_CHARS if max_chars is None else max_chars
    started = time.perf_counter()
    rows: list[list[Any]] = []
    # The export form of kept rows whose cells were cut for showing (the CSV holds more of them).
    full_rows: dict[int, list[Any]] = {}
    bounds = _Bounds()
    count, complete, export_file, path = 0, True, None, None
    keeping = True
    try:
        with readonly_connection(db.engine, timeout_s) as connection:
            # The driver's own cursor, with no parameters: drivers with "format" placeholders
            # (psycopg) would otherwise read the % of a LIKE pattern as a placeholder.
            cursor = connection.connection.dbapi_connection.cursor()
            raw_rows = None
            try:
                raw_rows = _start(cursor, checked.sql)
                if cursor.description is None:
                    raise ToolError("the statement returned no result set")
                columns = [d[0] for d in cursor.description]
                for raw in raw_rows:
                    count += 1
                    values = [json_value(v) for v in raw]
                    longest = max((len(v) for v in values if isinstance(v, str)), default=0)
                    bounds.longest = max(bounds.longest, longest)
                    if keeping and count <= row_limit:
                        shown = values
                        if longest > MAX_CELL_CHARS:
                            shown = [cut_text(v, MAX_CELL_CHARS) if isinstance(v, str) and len(v) > MAX_CELL_CHARS
                                     else v for v in values]
                            bounds.cut_cells += sum(1 for v in values if isinstance(v, str) and len(v) > MAX_CELL_CHARS)
                        size = sum(_chars(v) for v in shown)
                        if not rows or bounds.kept_chars + size <= max_chars:
                            bounds.kept_chars += size
                            rows.append(shown)
                            if shown is not values and export:
                                full_rows[len(rows) - 1] = _export_form(values)
                            continue
                        bounds.rows_by_size = True
                    keeping = False
                    if not export:
                        complete = False
                        break
                    if export_file is None:
                        export_file = _Export(db, columns)
                        for index, kept in enumerate(rows):
                            _write(export_file, full_rows.get(index, kept), bounds)
                        full_rows.clear()
                    _write(export_file, _export_form(values), bounds)
                    if count >= EXPORT_MAX_ROWS or bounds.export_chars >= EXPORT_MAX_BYTES:
                        complete = False
                        bounds.export_by_rows = count >= EXPORT_MAX_ROWS
                        bounds.export_by_size = not bounds.export_by_rows
                        break
            finally:
                if raw_rows is not None:
                    # A stream left half read holds its connection until closed: closing it
                    # cancels the rest of the query (psycopg) before the rollback.
                    raw_rows.close()
                cursor.close()
        if export_file is not None:
            path = export_file.finish()
    except ToolError:
        raise
    except Exception as exc:  # each driver has its own error classes; a timeout is reported as one
        driver_error = getattr(exc, "orig", None) or exc
        if is_timeout(driver_error):
            raise QueryTimeoutError(f"the query ran longer than {timeout_s:g} s and was stopped") from None
        if is_too_big(driver_error):
            raise ResultTooLargeError(
                f"a value in the result would be larger than {MAX_VALUE_BYTES // (1024 * 1024)} MB, the most "
                "Taller lets SQLite build or read, so the query was stopped; select part of it "
                "(substr(), length()) instead") from None
        raise
    finally:
        if export_file is not None and path is None:
            export_file.discard()  # the statement failed or timed out: no partial export stays
    truncated = count > len(rows)
    return Execution(columns=columns, rows=rows, row_count=count, truncated=truncated,
                     complete=complete, csv=str(path) if path else None,
                     seconds=time.perf_counter() - started,
                     cut=bounds.note(len(rows), max_chars, export_file.rows if export_file else 0),
                     cut_cells=bounds.cut_cells, longest_cell=bounds.longest)


class _Cut(str):
    """A cell cut for the CSV (so the writer can count it)."""


def _export_form(values: list[Any]) -> list[Any]:
    """A row as the CSV holds it: text cells cut at :data:`EXPORT_MAX_CELL_CHARS`."""
    if not any(isinstance(v, str) and len(v) > EXPORT_MAX_CELL_CHARS for v in values):
        return values
    return [_Cut(cut_text(v, EXPORT_MAX_CELL_CHARS)) if isinstance(v, str) and len(v) > EXPORT_MAX_CELL_CHARS
            else v for v in values]


def _write(export_file: _Export, row: list[Any], bounds: _Bounds) -> None:
    export_file.write(row)
    bounds.export_chars += sum(_chars(v) for v in row)
    bounds.export_cells += sum(1 for v in row if isinstance(v, _Cut))


def database_error_text(exc: Exception) -> str:
    """The first line of a driver error, for the model's self-correction and the user."""
    orig = getattr(exc, "orig", None)
    text = str(orig if orig is not None else exc).strip()
    return text.splitlines()[0][:400] if text else type(exc).__name__
