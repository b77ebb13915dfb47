"""Questions about databases: RAG-assisted natural language → SQL, run safely, with self-correction.

The pipeline of :func:`ask`:

1. **connect** — ``database`` is a configured name (setting ``databases``: name → SQLAlchemy URL),
   the default ``sales`` (the Chinook sample, built on first use by :mod:`taller.knowledge.chinook`),
   or any SQLAlchemy URL. SQLite files are opened read-only.
2. **retrieve** — the schema (tables, columns, types, keys, row counts, a few sample values per
   column) is introspected with SQLAlchemy. Small schemas go to the LLM whole; for large ones
   only the tables nearest to the question in ChromaDB (plus the tables their foreign keys join
   to) are sent. User documentation and confirmed question→SQL examples ("remember this", like
   Vanna's training data) are retrieved from the same Chroma collection.
3. **generate** — the agent's LLM writes one query as schema-constrained JSON ``{"sql": ...}``.
4. **check** — :func:`taller.knowledge.sql_safety.check_sql` parses it with sqlglot in the
   database's dialect; anything but a single read-only query is refused with the reason.
5. **run** — on a read-only connection with a statement timeout and a row limit; results larger
   than the limit are exported to CSV under ``outputs/sql``.
6. **self-correct** — when the SQL does not parse or the database answers with an error, the
   error and the schema go back to the LLM, at most ``max_retries`` times.

Teaching it (no tool needed; the tools' names and arguments are fixed)::

    python -m taller.knowledge.sql remember "How many customers per country?" \\
        "SELECT Country, COUNT(*) FROM Customer GROUP BY Country"
    python -m taller.knowledge.sql add-doc "A 'sale' is a row of InvoiceLine."

or from Python: :func:`remember_example`, :func:`add_documentation`.
"""

from __future__ import annotations

import argparse
import csv
import datetime as dt
import decimal
import hashlib
import json
import re
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from taller.config import get_settings
from taller.knowledge.sql_safety import (
    CheckedSQL,
    QueryTimeoutError,
    SQLSyntaxError,
    UnsafeSQLError,
    check_sql,
    is_timeout,
    readonly_connection,
    sqlglot_dialect,
    sqlite_readonly_creator,
)
from taller.progress import emit
from taller.errors import ModelReplyError, ToolError
from taller.paths import check_input_path

# Schemas with at most this many tables are sent whole: retrieval would only drop context.
FULL_SCHEMA_TABLES = 12
# For larger schemas: how many tables retrieval picks, and the most sent after adding FK neighbours.
RETRIEVED_TABLES = 6
MAX_PROMPT_TABLES = 10
SAMPLE_VALUES = 3
MAX_RETRIES = 2
EXPORT_MAX_ROWS = 100_000
PREVIEW_ROWS = 10
# Cosine distance under which a remembered example counts as similar enough to show the LLM.
EXAMPLE_MAX_DISTANCE = 0.6
DOCS_IN_PROMPT = 3
SQL_SCHEMA = {
    "type": "object",
    "properties": {"sql": {"type": "string", "description": "one read-only SQL query"}},
    "required": ["sql"],
}
SOURCE = "query_database"
# Names that mean the built-in Chinook sample unless the user configured them otherwise.
SAMPLE_NAMES = ("sales", "chinook")
# Re-read a schema after this many seconds, so a long-running server sees new tables.
SCHEMA_TTL_S = 300.0


class DatabaseError(ToolError):
    """The database cannot be opened or named; the message says what to fix."""


# --- connections ----------------------------------------------------------------------------------

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
    raise DatabaseError(f"unknown database {name!r}; configured: {known}. Give a configured name "
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
            raise DatabaseError(f"not a valid SQLAlchemy URL: {exc}") from None
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


# --- schema ---------------------------------------------------------------------------------------

@dataclass
class Column:
    name: str
    type: str
    nullable: bool = True
    primary_key: bool = False
    samples: list[Any] = field(default_factory=list)


@dataclass
class ForeignKey:
    columns: list[str]
    table: str
    referred: list[str]


@dataclass
class Table:
    name: str
    columns: list[Column]
    foreign_keys: list[ForeignKey] = field(default_factory=list)
    row_count: int | None = None

    def ddl(self) -> str:
        """A compact CREATE TABLE with row count and sample values as comments (what LLMs know)."""
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
            if column.samples:
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
    tables: list[Table]

    def table(self, name: str) -> Table | None:
        lowered = name.lower()
        return next((t for t in self.tables if t.name.lower() == lowered), None)

    def fingerprint(self) -> str:
        text = "|".join(f"{t.name}:{','.join(f'{c.name} {c.type}' for c in t.columns)}" for t in self.tables)
        return hashlib.sha1(text.encode()).hexdigest()[:16]

    def text(self, names: list[str] | None = None) -> str:
        chosen = self.tables if names is None else [t for t in self.tables if t.name in names]
        return "\n\n".join(t.ddl() for t in chosen)


def _sample_text(value: Any) -> str:
    if isinstance(value, str):
        short = value if len(value) <= 40 else value[:37] + "..."
        return "'" + short.replace("'", "''") + "'"
    return str(value)


_schemas: dict[str, tuple[float, Schema]] = {}


def _json_value(value: Any) -> Any:
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
                    value = _json_value(value)
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


# --- knowledge in Chroma --------------------------------------------------------------------------

def _collection(db: Database) -> Any:
    from taller.knowledge.store import get_collection

    digest = hashlib.sha1(db.url.encode()).hexdigest()[:12]
    slug = re.sub(r"[^a-zA-Z0-9_-]+", "-", db.name).strip("-_")[:30] or "db"
    return get_collection(f"sql-{slug}-{digest}", metadata={"database": db.url})


def _has(collection: Any, kind: str) -> bool:
    return bool(collection.get(where={"kind": kind}, limit=1, include=[])["ids"])


def index_schema(db: Database, schema: Schema | None = None, force: bool = False) -> int:
    """Store one Chroma document per table (its DDL); re-indexes when the schema changed."""
    from taller.embeddings import embed

    schema = schema or introspect(db)
    collection = _collection(db)
    fingerprint = schema.fingerprint()
    existing = collection.get(where={"kind": "table"}, include=["metadatas"])
    if not force and existing["ids"] and all(
            (m or {}).get("fingerprint") == fingerprint for m in existing["metadatas"]):
        return 0
    if existing["ids"]:
        collection.delete(ids=existing["ids"])
    emit({"source": SOURCE, "message": f"indexing {len(schema.tables)} tables of {db.name}"})
    documents = [t.ddl() for t in schema.tables]
    collection.add(ids=[f"table:{t.name}" for t in schema.tables], documents=documents,
                   embeddings=embed(documents).tolist(),
                   metadatas=[{"kind": "table", "table": t.name, "fingerprint": fingerprint}
                              for t in schema.tables])
    return len(documents)


def remember_example(question: str, sql: str, database: str | None = None) -> dict[str, Any]:
    """Store a confirmed question→SQL pair ("remember this"); the SQL must be safe and run."""
    from taller.embeddings import embed

    if not question or not question.strip():
        raise ToolError("the question to remember is empty")
    db = connect(database)
    checked = check_sql(sql, db.dialect)
    _execute(db, checked, row_limit=1, export=False)  # an example that fails would teach errors
    collection = _collection(db)
    key = "example:" + hashlib.sha1(question.strip().lower().encode()).hexdigest()[:16]
    collection.upsert(ids=[key], documents=[question.strip()], embeddings=embed([question.strip()]).tolist(),
                      metadatas=[{"kind": "example", "sql": checked.sql}])
    return {"summary": f"Remembered the query for {question.strip()!r} in {db.name}.", "id": key,
            "sql": checked.sql, "database": db.name}


def add_documentation(text: str, database: str | None = None) -> dict[str, Any]:
    """Store user documentation (business terms, conventions) that retrieval can show the LLM."""
    from taller.embeddings import embed

    if not text or not text.strip():
        raise ToolError("the documentation text is empty")
    db = connect(database)
    collection = _collection(db)
    key = "doc:" + hashlib.sha1(text.strip().encode()).hexdigest()[:16]
    collection.upsert(ids=[key], documents=[text.strip()], embeddings=embed([text.strip()]).tolist(),
                      metadatas=[{"kind": "doc"}])
    return {"summary": f"Added documentation to {db.name}.", "id": key, "database": db.name}


@dataclass
class Context:
    """What retrieval found for one question."""

    tables: list[str]
    schema_text: str
    examples: list[tuple[str, str]]  # (question, sql)
    documentation: list[str]


def retrieve(db: Database, question: str, schema: Schema | None = None) -> Context:
    """The relevant tables, remembered examples and documentation for ``question``."""
    schema = schema or introspect(db)
    collection = _collection(db)
    large = len(schema.tables) > FULL_SCHEMA_TABLES
    has_examples, has_docs = _has(collection, "example"), _has(collection, "doc")
    vector = None
    if large or has_examples or has_docs:
        from taller.embeddings import embed

        vector = embed([question]).tolist()
    names = [t.name for t in schema.tables]
    if large:
        index_schema(db, schema)
        hits = collection.query(query_embeddings=vector, n_results=RETRIEVED_TABLES,
                                where={"kind": "table"}, include=["metadatas"])
        names = [m["table"] for m in hits["metadatas"][0]]
        # Add the tables the hits join to, so the LLM can write the joins it needs.
        for name in list(names):
            table = schema.table(name)
            for fk in table.foreign_keys if table else []:
                if fk.table not in names and len(names) < MAX_PROMPT_TABLES and schema.table(fk.table):
                    names.append(schema.table(fk.table).name)
    examples: list[tuple[str, str]] = []
    if has_examples:
        hits = collection.query(query_embeddings=vector, n_results=3, where={"kind": "example"},
                                include=["documents", "metadatas", "distances"])
        examples = [(d, m["sql"]) for d, m, dist in zip(hits["documents"][0], hits["metadatas"][0],
                                                       hits["distances"][0]) if dist <= EXAMPLE_MAX_DISTANCE]
    docs: list[str] = []
    if has_docs:
        # Documentation is short and written on purpose: the nearest notes always go in.
        hits = collection.query(query_embeddings=vector, n_results=DOCS_IN_PROMPT, where={"kind": "doc"},
                                include=["documents"])
        docs = list(hits["documents"][0])
    return Context(tables=names, schema_text=schema.text(names), examples=examples, documentation=docs)


# --- generation -----------------------------------------------------------------------------------

def build_messages(question: str, db: Database, context: Context,
                   failed: tuple[str, str] | None = None) -> list[Any]:
    """The prompt: rules as the system message; schema, docs, examples and question as the user's.

    ``failed`` is ``(sql, error)`` of the previous attempt, for a self-correction request.
    """
    from langchain_core.messages import HumanMessage, SystemMessage

    dialect = {"postgresql": "PostgreSQL", "sqlite": "SQLite", "mysql": "MySQL"}.get(db.dialect, db.dialect)
    system = (
        f"You write one {dialect} SQL query that answers the user's question about the database "
        "described below.\n"
        "Rules: write a single SELECT query (WITH and UNION are fine); never INSERT, UPDATE, DELETE, "
        "CREATE, DROP, ALTER, PRAGMA or ATTACH. Use only the tables and columns listed. Questions may "
        "be in Spanish or English; values in the data are stored as shown in the examples "
        "(e.g. country names in English). Give readable column aliases. Use LIMIT only when the "
        'question asks for a number of items. Reply with JSON: {"sql": "<the query>"}.'
    )
    parts = [f"Database schema:\n{context.schema_text}"]
    if context.documentation:
        parts.append("Documentation:\n" + "\n".join(f"- {d}" for d in context.documentation))
    if context.examples:
        parts.append("Examples of correct queries:\n" + "\n".join(
            f"Question: {q}\nSQL: {s}" for q, s in context.examples))
    if failed is not None:
        shown = failed[0].strip() or "(an empty reply)"
        parts.append(f"A previous attempt for this question failed.\nSQL: {shown}\nError: {failed[1]}\n"
                     "Write a corrected query that uses only the tables and columns of the schema above.")
    parts.append(f"Question: {question}")
    return [SystemMessage(content=system), HumanMessage(content="\n\n".join(parts))]


def extract_sql(reply: Any) -> str:
    """The SQL of a model reply: the JSON ``sql`` field, else a fenced or bare query."""
    if isinstance(reply, dict):
        value = reply.get("sql") or reply.get("query") or ""
        return str(value).strip()
    text = str(reply).strip()
    fence = re.search(r"```(?:sql)?\s*(.*?)```", text, re.S | re.I)
    if fence:
        return fence.group(1).strip()
    start = re.search(r"\b(WITH|SELECT)\b", text, re.I)
    return text[start.start():].strip() if start else text


def _generate(model: Any, messages: list[Any]) -> str:
    from taller.llm import invoke_json

    try:
        reply = invoke_json(model, messages, SQL_SCHEMA)
    except ModelReplyError as exc:  # not JSON: keep what the model said so the retry can show it
        return extract_sql(exc.reply)
    return extract_sql(reply)


# --- execution ------------------------------------------------------------------------------------

@dataclass
class Execution:
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


def _execute(db: Database, checked: CheckedSQL, row_limit: int | None = None,
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
                    row = [_json_value(v) for v in raw]
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


def _db_error_text(exc: Exception) -> str:
    orig = getattr(exc, "orig", None)
    text = str(orig if orig is not None else exc).strip()
    return text.splitlines()[0][:400] if text else type(exc).__name__


# --- the answer -----------------------------------------------------------------------------------

def markdown_table(columns: list[str], rows: list[list[Any]], limit: int = PREVIEW_ROWS) -> str:
    """A small Markdown table of the first ``limit`` rows, for chat interfaces."""
    def cell(value: Any) -> str:
        text = "" if value is None else str(value)
        text = text.replace("|", "\\|").replace("\n", " ")
        return text if len(text) <= 60 else text[:57] + "..."

    lines = ["| " + " | ".join(cell(c) for c in columns) + " |",
             "|" + "|".join("---" for _ in columns) + "|"]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows[:limit]]
    return "\n".join(lines)


def _format_value(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:,.2f}".rstrip("0").rstrip(".") if value != int(value) else f"{int(value):,}"
    if isinstance(value, int) and not isinstance(value, bool):
        return f"{value:,}"
    return "NULL" if value is None else str(value)


def summarise(columns: list[str], execution: Execution) -> str:
    """One sentence that answers from the result (no LLM call: fast, and never invents a figure)."""
    rows = execution.rows
    if execution.row_count == 0:
        return "The query returned no rows."
    if execution.row_count == 1 and len(columns) == 1:
        return f"The answer is {_format_value(rows[0][0])} ({columns[0]})."
    if execution.row_count == 1:
        pairs = ", ".join(f"{c} = {_format_value(v)}" for c, v in zip(columns, rows[0]))
        return f"One row: {pairs}."
    first = ", ".join(f"{c} = {_format_value(v)}" for c, v in zip(columns[:4], rows[0][:4]))
    total = f"{execution.row_count:,}" if execution.complete else f"more than {execution.row_count:,}"
    text = f"The query returned {total} rows; the first is {first}."
    if execution.truncated:
        text += f" Showing the first {len(rows):,}"
        text += f"; all rows were saved to {execution.csv}." if execution.csv else "."
    return text


def ask(question: str, database: str | None = None, max_retries: int = MAX_RETRIES,
        model: Any = None) -> dict[str, Any]:
    """Answer ``question`` with one safe read-only query; the tool result of ``query_database``.

    Returns a dict with ``sql``, ``columns``, ``rows``, ``row_count``, ``truncated``, ``csv``,
    ``summary`` and ``table`` (Markdown preview). A refused query returns ``error`` and
    ``refused: True`` with the reason; a query that still fails after the retries returns
    ``error`` with the last database error.
    """
    from taller.llm import LLMUnavailableError, get_chat_model

    if not question or not question.strip():
        raise ToolError("the question is empty")
    db = connect(database)
    schema = introspect(db)
    emit({"source": SOURCE, "message": "retrieving the relevant schema"})
    context = retrieve(db, question, schema)
    try:
        model = model or get_chat_model()
    except LLMUnavailableError as exc:
        raise ToolError(str(exc)) from None
    messages = build_messages(question, db, context)
    attempts: list[dict[str, str]] = []
    base = {"question": question, "database": db.name, "dialect": db.dialect, "tables_used": context.tables}
    for attempt in range(max_retries + 1):
        emit({"source": SOURCE, "message": "writing the SQL" if attempt == 0 else f"correcting the SQL (retry {attempt})"})
        sql = _generate(model, messages)
        error: str | None = None
        try:
            checked = check_sql(sql, db.dialect)
        except UnsafeSQLError as exc:
            # A refusal is final: asking again would only invite another attempt at the same thing.
            message = f"Refused to run the query: {exc}."
            return {"error": message, "summary": message, "refused": True, "sql": sql,
                    "columns": [], "rows": [], "attempts": attempts + [{"sql": sql, "error": str(exc)}], **base}
        except SQLSyntaxError as exc:
            error = str(exc)
        if error is None:
            emit({"source": SOURCE, "message": "running the query"})
            try:
                execution = _execute(db, checked)
            except QueryTimeoutError as exc:
                message = f"The query was stopped: {exc}. Try a narrower question."
                return {"error": message, "summary": message, "sql": checked.sql, "columns": [], "rows": [],
                        "attempts": attempts + [{"sql": checked.sql, "error": str(exc)}], **base}
            except Exception as exc:  # driver errors differ per database; all go back to the LLM
                error = _db_error_text(exc)
            else:
                attempts.append({"sql": checked.sql, "error": ""})
                return {
                    "summary": summarise(execution.columns, execution),
                    "sql": checked.sql,
                    "columns": execution.columns,
                    "rows": execution.rows,
                    "row_count": execution.row_count,
                    "truncated": execution.truncated,
                    "csv": execution.csv,
                    "table": markdown_table(execution.columns, execution.rows),
                    "attempts": attempts,
                    "seconds": round(execution.seconds, 3),
                    **base,
                }
        attempts.append({"sql": sql, "error": error})
        # Self-correction: the failed SQL, the error and the schema go back to the model, as one
        # fresh request (small local models answered a follow-up turn with an empty query).
        messages = build_messages(question, db, context, failed=(sql, error))
    message = (f"Could not write a working query after {len(attempts)} attempts; "
               f"the last error was: {attempts[-1]['error']}")
    return {"error": message, "summary": message, "sql": attempts[-1]["sql"], "columns": [], "rows": [],
            "attempts": attempts, **base}


def run_sql(sql: str, database: str | None = None, row_limit: int | None = None) -> dict[str, Any]:
    """Run a given query through the same checks (for the benchmark, tests and power users)."""
    db = connect(database)
    checked = check_sql(sql, db.dialect)
    execution = _execute(db, checked, row_limit=row_limit)
    return {"summary": summarise(execution.columns, execution), "sql": checked.sql,
            "columns": execution.columns, "rows": execution.rows, "row_count": execution.row_count,
            "truncated": execution.truncated, "csv": execution.csv}


# --- command line ---------------------------------------------------------------------------------

def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m taller.knowledge.sql",
                                     description="Teach and query Taller's SQL knowledge.")
    parser.add_argument("--database", default=None, help="configured name or SQLAlchemy URL")
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("ask", help="answer a question with a query")
    p.add_argument("question")
    sub.add_parser("describe", help="print the schema")
    p = sub.add_parser("remember", help="store a confirmed question → SQL example")
    p.add_argument("question")
    p.add_argument("sql")
    p = sub.add_parser("add-doc", help="store documentation text")
    p.add_argument("text")
    sub.add_parser("index", help="(re)index the schema in Chroma")
    args = parser.parse_args(argv)
    try:
        if args.command == "ask":
            out = ask(args.question, args.database)
        elif args.command == "describe":
            out = describe(args.database)
        elif args.command == "remember":
            out = remember_example(args.question, args.sql, args.database)
        elif args.command == "add-doc":
            out = add_documentation(args.text, args.database)
        else:
            db = connect(args.database)
            out = {"summary": f"indexed {index_schema(db, force=True)} tables of {db.name}"}
    except (ToolError, UnsafeSQLError, SQLSyntaxError) as exc:
        print(json.dumps({"error": str(exc)}, ensure_ascii=False))
        return 1
    print(json.dumps(out, ensure_ascii=False, indent=2, default=str))
    return 0 if "error" not in out else 1


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
