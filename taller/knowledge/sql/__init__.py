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
3. **generate** — the chat model given to :func:`ask` (the tool passes the agent's) writes one
   query as schema-constrained JSON ``{"sql": ...}``.
4. **check** — :func:`taller.knowledge.sql.safety.check_sql` parses it with sqlglot in the
   database's dialect; anything but a single read-only query is refused with the reason and
   the rule it broke.
5. **run** — on a read-only connection with a statement timeout, a row limit and byte bounds
   (cells cut at 2,000 characters, ~1 MB of cell text in all); results larger than that are
   exported to CSV under ``outputs/sql`` (see :mod:`.execution`).
6. **review** — an unasked ``LIMIT`` is dropped; a value compared with a column that does not
   hold it (but another column does) makes the query doubtful (:mod:`.review`).
7. **self-correct** — when the SQL does not parse, the database answers with an error or the
   query is doubtful, the facts it lacked go back to the LLM, at most ``max_retries`` times.

Teaching it (no tool needed; the tools' names and arguments are fixed)::

    python -m taller.knowledge.sql remember "How many customers per country?" \\
        "SELECT Country, COUNT(*) FROM Customer GROUP BY Country"
    python -m taller.knowledge.sql add-doc "A 'sale' is a row of InvoiceLine."

or from Python: :func:`remember_example`, :func:`add_documentation`.

One module per concern, each importing only those before it: :mod:`.safety` (the parser check
and read-only connections), :mod:`.connection`, :mod:`.execution` (running a checked query, CSV
export), :mod:`.schema` (introspection), :mod:`.memory` (Chroma: tables, examples,
documentation), :mod:`.generation` (prompt and model call), :mod:`.review` (what a query that runs may still have
wrong: an unasked ``LIMIT``, a value compared with a column that does not hold it), :mod:`.charts` (a result's chart
spec, built by code), :mod:`.suggestions` (two follow-up questions from the result and schema),
:mod:`.answer` (:func:`ask`, :func:`run_sql`, the summary sentence) and :mod:`.cli`. The names
below are the package's API.
"""

from taller.knowledge.sql.answer import MAX_RETRIES, PREVIEW_ROWS, ask, markdown_table, run_sql, summarise
from taller.knowledge.sql.charts import chart_spec
from taller.knowledge.sql.cli import main
from taller.knowledge.sql.connection import SAMPLE_NAMES, Database, DatabaseError, connect, resolve_url
from taller.knowledge.sql.execution import (
    EXPORT_MAX_ROWS,
    MAX_CELL_CHARS,
    MAX_RESULT_CHARS,
    Execution,
    ResultTooLargeError,
    execute_checked,
    json_value,
)
from taller.knowledge.sql.generation import SQL_SCHEMA, build_messages, extract_sql, generate_sql
from taller.knowledge.sql.memory import (
    DOCS_IN_PROMPT,
    EXAMPLE_MAX_DISTANCE,
    FULL_SCHEMA_TABLES,
    MAX_PROMPT_TABLES,
    RETRIEVED_TABLES,
    Context,
    add_documentation,
    index_schema,
    remember_example,
    retrieve,
)
from taller.knowledge.sql.safety import (
    CheckedSQL,
    QueryTimeoutError,
    Rule,
    SQLSyntaxError,
    UnsafeSQLError,
    check_sql,
)
from taller.knowledge.sql.schema import (
    SAMPLE_VALUES,
    SCHEMA_TTL_S,
    Column,
    ForeignKey,
    Schema,
    Table,
    describe,
    introspect,
)
from taller.knowledge.sql.suggestions import suggest

__all__ = [
    "DOCS_IN_PROMPT", "EXAMPLE_MAX_DISTANCE", "EXPORT_MAX_ROWS", "FULL_SCHEMA_TABLES", "MAX_CELL_CHARS",
    "MAX_PROMPT_TABLES", "MAX_RESULT_CHARS", "MAX_RETRIES", "PREVIEW_ROWS", "RETRIEVED_TABLES", "SAMPLE_NAMES",
    "SAMPLE_VALUES", "SCHEMA_TTL_S", "SQL_SCHEMA", "CheckedSQL", "Column", "Context", "Database", "DatabaseError",
    "Execution", "ForeignKey", "QueryTimeoutError", "ResultTooLargeError", "Rule", "SQLSyntaxError", "Schema",
    "Table", "UnsafeSQLError",
    "add_documentation", "ask", "build_messages", "chart_spec", "check_sql", "connect", "describe",
    "execute_checked", "extract_sql", "generate_sql", "index_schema", "introspect", "json_value",
    "main", "markdown_table", "remember_example", "resolve_url", "retrieve", "run_sql", "suggest",
    "summarise",
]
