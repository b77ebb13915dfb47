"""What is in a database: tables, columns, types, keys, row counts and sample values.

:func:`introspect` reads it with SQLAlchemy's inspector (cached per process for
``SCHEMA_TTL_S``); :class:`Table` renders itself as the compact ``CREATE TABLE`` with row count
and sample values that the LLM is shown; :func:`describe` is the ``describe_database`` result.
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass, field
from typing import Any

from taller.config import get_settings
from taller.knowledge.sql.connection import SOURCE, Database, DatabaseError, connect
from taller.knowledge.sql.execution import json_value
from taller.knowledge.sql.safety import readonly_connection
from taller.progress import emit

SAMPLE_VALUES = 3
# Re-read a schema after this many seconds, so a long-running server sees new tables.
SCHEMA_TTL_S = 300.0


@dataclass
class Column:
    """One column, with up to ``SAMPLE_VALUES`` distinct values read from the table."""

    name: str
    type: str
    nullable: bool = True
    primary_key: bool = False
    samples: list[Any] = field(default_factory=list)


@dataclass
class ForeignKey:
    """``columns`` of this table refer to ``referred`` columns of ``table``."""

    columns: list[str]
    table: str
    referred: list[str]


@dataclass
class Table:
    """One table as the LLM is shown it (see :meth:`ddl`)."""

    name: str
    columns: list[Column]
    foreign_keys: list[ForeignKey] = field(default_factory=list)
    row_count: int | None = None

    def ddl(self, categories: dict[str, list[str]] | None = None) -> str:
        """A compact CREATE TABLE with row count and sample values as comments (what LLMs know).

        ``categories`` (column → every distinct value) replaces a column's samples with the whole
        list, so a question's "on leave" can be matched to the stored ``'on_leave'``."""
        count = f"  -- {self.row_count:,} rows" if self.row_count is not None else ""
        references = {c: fk for fk in self.foreign_keys for c in fk.columns}
        lines = []
        for column in self.columns:
            text = f"  {column.name} {column.type}"
            if column.primary_key:
                text += " PRIMARY KEY"
            fk = references.get(column.name)
            if fk is not None:
                text += f" REFERENCES {fk.table}({fk.referred[fk.columns.index(column.name)]})"
            if categories and column.name in categories:
                text += ",  -- one of " + ", ".join(_sample_text(v) for v in categories[column.name])
            elif column.samples:
                text += ",  -- e.g. " + ", ".join(_sample_text(v) for v in column.samples)
            else:
                text += ","
            lines.append(text)
        if lines:
            lines[-1] = lines[-1].replace(",  --", "  --", 1) if ",  --" in lines[-1] else lines[-1].rstrip(",")
        return f"CREATE TABLE {self.name} ({count}\n" + "\n".join(lines) + "\n);"

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "row_count": self.row_count,
            "columns": [{"name": c.name, "type": c.type, "nullable": c.nullable,
                         "primary_key": c.primary_key, "samples": c.samples} for c in self.columns],
            "foreign_keys": [{"columns": fk.columns, "table": fk.table, "referred": fk.referred}
                             for fk in self.foreign_keys],
        }


@dataclass
class Schema:
    """Every table of one database."""

    tables: list[Table]
    # The distinct short text values, read on first need by :func:`.linking.value_index`.
    stored_values: list[Any] | None = field(default=None, repr=False, compare=False)

    def table(self, name: str) -> Table | None:
        lowered = name.lower()
        return next((t for t in self.tables if t.name.lower() == lowered), None)

    def fingerprint(self) -> str:
        text = "|".join(f"{t.name}:{','.join(f'{c.name} {c.type}' for c in t.columns)}" for t in self.tables)
        return hashlib.sha1(text.encode()).hexdigest()[:16]

    def text(self, names: list[str] | None = None, categories: dict[tuple[str, str], list[str]] | None = None) -> str:
        """The DDL of the tables ``names`` (all by default); ``categories`` is (table, column) →
        every distinct value, for the columns that are categories."""
        chosen = self.tables if names is None else [t for t in self.tables if t.name in names]
        categories = categories or {}
        return "\n\n".join(t.ddl({column: values for (table, column), values in categories.items()
                                   if table == t.name}) for t in chosen)


def _sample_text(value: Any) -> str:
    if isinstance(value, str):
        short = value if len(value) <= 40 else value[:37] + "..."
        return "'" + short.replace("'", "''") + "'"
    return str(value)


_schemas: dict[str, tuple[float, Schema]] = {}


def introspect(db: Database, refresh: bool = False) -> Schema:
    """Tables, columns, types, keys, row counts and a few sample values (cached per process)."""
    from sqlalchemy import column as sa_column
    from sqlalchemy import func, inspect, select
    from sqlalchemy import table as sa_table
    from sqlalchemy.exc import SQLAlchemyError

    cached = _schemas.get(db.url)
    if not refresh and cached is not None and time.monotonic() - cached[0] < SCHEMA_TTL_S:
        return cached[1]
    emit({"source": SOURCE, "message": f"reading the schema of {db.name}"})
    timeout = min(get_settings().sql_timeout_s, 5.0)
    try:
        inspector = inspect(db.engine)
        names = sorted(inspector.get_table_names())
        tables = []
        for name in names:
            pk = set(inspector.get_pk_constraint(name).get("constrained_columns") or [])
            columns = [Column(name=c["name"], type=str(c["type"]), nullable=bool(c.get("nullable", True)),
                              primary_key=c["name"] in pk) for c in inspector.get_columns(name)]
            fks = [ForeignKey(columns=list(fk["constrained_columns"]), table=fk["referred_table"],
                              referred=list(fk["referred_columns"]))
                   for fk in inspector.get_foreign_keys(name) if fk.get("referred_table")]
            tables.append(Table(name=name, columns=columns, foreign_keys=fks))
    except SQLAlchemyError as exc:
        raise DatabaseError(f"cannot read the schema of {db.url}: {str(exc).splitlines()[0]}") from None

    # Counts and samples are our own queries (not LLM text), still on the read-only connection.
    with readonly_connection(db.engine, timeout) as connection:
        for t in tables:
            target = sa_table(t.name)
            try:
                t.row_count = int(connection.execute(select(func.count()).select_from(target)).scalar_one())
            except SQLAlchemyError:
                t.row_count = None
            keys = {name for fk in t.foreign_keys for name in fk.columns}
            for c in t.columns:
                if c.primary_key or c.name in keys or any(word in c.type.upper() for word in ("BLOB", "BYTEA", "BINARY")):
                    continue  # ids and binary data teach the LLM nothing
                col = sa_column(c.name)
                try:
                    values = connection.execute(
                        select(col).select_from(target).where(col.is_not(None)).limit(50)).scalars().all()
                except SQLAlchemyError:
                    continue
                seen: list[Any] = []
                for value in values:
                    value = json_value(value)
                    if value not in seen:
                        seen.append(value)
                    if len(seen) == SAMPLE_VALUES:
                        break
                c.samples = seen
    schema = Schema(tables=tables)
    _schemas[db.url] = (time.monotonic(), schema)
    return schema


def describe(database: str | None = None) -> dict[str, Any]:
    """The schema as a tool result: tables with columns, types, keys and row counts."""
    db = connect(database)
    schema = introspect(db)
    parts = [f"{t.name} ({t.row_count:,} rows)" if t.row_count is not None else t.name for t in schema.tables]
    summary = (f"Database '{db.name}' ({db.dialect}) has {len(schema.tables)} tables: " + ", ".join(parts) + "."
               if schema.tables else f"Database '{db.name}' ({db.dialect}) has no tables.")
    return {
        "summary": summary,
        "database": db.name,
        "url": db.url,
        "dialect": db.dialect,
        "tables": [t.as_dict() for t in schema.tables],
        "schema": schema.text(),
    }
