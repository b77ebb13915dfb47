"""Running a checked query: read-only, with a statement timeout, a row limit and CSV export.

Rows beyond ``sql_row_limit`` are not kept in memory: they stream from the driver in batches
into a CSV file under ``outputs/sql`` (at most ``EXPORT_MAX_ROWS``).
"""

from __future__ import annotations

import csv
import datetime as dt
import decimal
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from taller.config import get_settings
from taller.errors import ToolError
from taller.knowledge.sql.connection import Database
from taller.knowledge.sql.safety import CheckedSQL, QueryTimeoutError, is_timeout, readonly_connection

EXPORT_MAX_ROWS = 100_000


def json_value(value: Any) -> Any:
    """A database value as plain JSON (Decimal → float, dates → ISO text, bytes → a note)."""
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, decimal.Decimal):
        return float(value)
    if isinstance(value, (dt.datetime, dt.date, dt.time)):
        return value.isoformat()
    if isinstance(value, (bytes, bytearray, memoryview)):
        return f"<{len(bytes(value))} bytes>"
    return str(value)


@dataclass
class Execution:
    """What running one query gave: the kept rows and what became of the rest."""

    columns: list[str]
    rows: list[list[Any]]
    row_count: int  # rows read (all of them, unless export stopped at EXPORT_MAX_ROWS)
    truncated: bool  # rows holds fewer than row_count
    complete: bool  # every row of the result was read
    csv: str | None = None
    seconds: float = 0.0


def _fetch(cursor: Any, size: int = 500) -> Any:
    """Rows one at a time, read from the driver in batches (a huge result never sits in memory)."""
    while True:
        batch = cursor.fetchmany(size)
        if not batch:
            return
        yield from batch


def _csv_path(db: Database) -> Path:
    folder = get_settings().outputs_dir / "sql"
    folder.mkdir(parents=True, exist_ok=True)
    stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S-%f")
    return folder / f"{re.sub(r'[^a-zA-Z0-9_-]+', '-', db.name)}-{stamp}.csv"


def execute_checked(db: Database, checked: CheckedSQL, row_limit: int | None = None,
                    export: bool = True, timeout_s: float | None = None) -> Execution:
    """Run a checked query read-only; keep ``row_limit`` rows and export the rest to CSV."""
    settings = get_settings()
    row_limit = settings.sql_row_limit if row_limit is None else row_limit
    timeout_s = settings.sql_timeout_s if timeout_s is None else timeout_s
    started = time.perf_counter()
    rows: list[list[Any]] = []
    count, complete, csv_file, writer, path = 0, True, None, None, None
    try:
        with readonly_connection(db.engine, timeout_s) as connection:
            # The driver's own cursor, with no parameters: drivers with "format" placeholders
            # (psycopg) would otherwise read the % of a LIKE pattern as a placeholder.
            cursor = connection.connection.dbapi_connection.cursor()
            try:
                cursor.execute(checked.sql)
                if cursor.description is None:
                    raise ToolError("the statement returned no result set")
                columns = [d[0] for d in cursor.description]
                for raw in _fetch(cursor):
                    count += 1
                    row = [json_value(v) for v in raw]
                    if count <= row_limit:
                        rows.append(row)
                        continue
                    if not export:
                        complete = False
                        break
                    if writer is None:
                        path = _csv_path(db)
                        csv_file = open(path, "w", newline="", encoding="utf-8")
                        writer = csv.writer(csv_file)
                        writer.writerow(columns)
                        writer.writerows(rows)
                    writer.writerow(row)
                    if count >= EXPORT_MAX_ROWS:
                        complete = False
                        break
            finally:
                cursor.close()
    except ToolError:
        raise
    except Exception as exc:  # each driver has its own error classes; a timeout is reported as one
        if is_timeout(getattr(exc, "orig", None) or exc):
            raise QueryTimeoutError(f"the query ran longer than {timeout_s:g} s and was stopped") from None
        raise
    finally:
        if csv_file is not None:
            csv_file.close()
    return Execution(columns=columns, rows=rows, row_count=count, truncated=count > len(rows),
                     complete=complete, csv=str(path) if path else None,
                     seconds=time.perf_counter() - started)


def database_error_text(exc: Exception) -> str:
    """The first line of a driver error, for the model's self-correction and the user."""
    orig = getattr(exc, "orig", None)
    text = str(orig if orig is not None else exc).strip()
    return text.splitlines()[0][:400] if text else type(exc).__name__
