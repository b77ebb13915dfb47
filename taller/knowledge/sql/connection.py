"""Opening databases: a configured name, the Chinook sample, a SQLAlchemy URL or a SQLite file.

Every handle is read-only (SQLite files through a ``mode=ro`` creator, see
:func:`taller.knowledge.sql.safety.sqlite_readonly_creator`) and opened once per process.
"""

from __future__ import annotations

import re
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from taller.config import get_settings
from taller.errors import ToolError
from taller.knowledge.sql.safety import sqlglot_dialect, sqlite_readonly_creator
from taller.paths import check_input_path, clip

# The tool name progress events of this package are reported under.
SOURCE = "query_database"
# Names that mean the built-in Chinook sample unless the user configured them otherwise.
SAMPLE_NAMES = ("sales", "chinook")


class DatabaseError(ToolError):
    """The database cannot be opened or named; the message says what to fix."""


@dataclass
class Database:
    """An open, read-only handle on one database."""

    name: str
    url: str  # printable (password hidden)
    dialect: str  # SQLAlchemy dialect name: sqlite, postgresql, mysql, ...
    engine: Any
    path: Path | None = None  # the file, for SQLite

    @property
    def sqlglot_dialect(self) -> str:
        return sqlglot_dialect(self.dialect)


_engines: dict[str, Database] = {}
_engines_lock = threading.Lock()


def _looks_like_url(text: str) -> bool:
    return bool(re.match(r"^[a-zA-Z][a-zA-Z0-9+_.-]*://", text))


def resolve_url(database: str | None = None) -> tuple[str, str]:
    """``(name, SQLAlchemy URL)`` for a configured name, the default, a URL or a SQLite file."""
    settings = get_settings()
    name = (database or settings.default_database or "sales").strip()
    if name in settings.databases:
        return name, settings.databases[name]
    if name in SAMPLE_NAMES:
        from taller.knowledge.chinook import ChinookUnavailableError, ensure_chinook

        try:
            return name, f"sqlite:///{ensure_chinook()}"
        except ChinookUnavailableError as exc:
            raise DatabaseError(f"the sample database is not available: {exc}") from None
    if _looks_like_url(name):
        # A readable name for summaries and CSV files: the file's stem or the database's name.
        database_part = name.split("?", 1)[0].rstrip("/").rsplit("/", 1)[-1]
        return Path(database_part).stem or "database", name
    if name.lower().endswith((".sqlite", ".sqlite3", ".db")):
        return Path(name).stem, f"sqlite:///{check_input_path(name)}"
    known = ", ".join(sorted({"sales", *settings.databases})) or "sales"
    raise DatabaseError(f"unknown database {clip(name)!r}; configured: {known}. Give a configured name "
                        "or a SQLAlchemy URL such as postgresql://user@host/dbname")


def connect(database: str | None = None) -> Database:
    """Open (once per process) a read-only handle on ``database``."""
    from sqlalchemy import create_engine
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError, NoSuchModuleError
    from sqlalchemy.pool import NullPool

    name, raw_url = resolve_url(database)
    with _engines_lock:
        if raw_url in _engines:
            return _engines[raw_url]
        try:
            url = make_url(raw_url)
        except ArgumentError as exc:
            raise DatabaseError(f"not a valid SQLAlchemy URL: {clip(str(exc))}") from None
        printable = url.render_as_string(hide_password=True)
        backend = url.get_backend_name()
        path = None
        try:
            if backend == "sqlite" and url.database and url.database != ":memory:":
                path = check_input_path(url.database)
                # Open through a creator: SQLite's own URI syntax gives mode=ro, which SQLAlchemy
                # URLs cannot express for every driver.
                engine = create_engine("sqlite://", creator=sqlite_readonly_creator(str(path)),
                                       poolclass=NullPool)
            else:
                engine = create_engine(url, pool_pre_ping=True)
        except NoSuchModuleError as exc:
            raise DatabaseError(f"SQLAlchemy has no driver for {backend!r}: {exc}") from None
        except ModuleNotFoundError as exc:
            hint = " (pip install 'taller[postgres]')" if backend == "postgresql" else ""
            raise DatabaseError(f"the driver for {backend} is not installed: {exc.name}{hint}") from None
        handle = Database(name=name, url=printable, dialect=engine.dialect.name, engine=engine, path=path)
        _engines[raw_url] = handle
        return handle
