"""Structural SQL safety: only one read-only query may reach a database, and only read-only.

Two independent layers, neither of them a prompt:

1. :func:`check_sql` parses the SQL with ``sqlglot`` in the database's dialect and accepts exactly
   one statement whose root is a query (``SELECT``, ``UNION``/``INTERSECT``/``EXCEPT``, a
   parenthesised query, ``WITH … SELECT``) and whose tree holds no write, DDL, transaction,
   ``ATTACH``/``PRAGMA``/``SET`` or ``SELECT … INTO`` node anywhere (so ``WITH d AS (DELETE …)
   SELECT …`` is refused), nor a call to a function with side effects (``load_extension``,
   ``pg_read_file``, ``pg_sleep``, ``dblink``, …). What runs is the SQL regenerated from the
   checked tree, so the database executes exactly what was checked (no parser differential with
   comments or quoting).
2. :func:`readonly_connection` connects so that the database itself refuses writes: SQLite through a
   ``file:…?mode=ro`` URI plus ``PRAGMA query_only``, PostgreSQL in a ``READ ONLY`` transaction,
   MySQL/MariaDB with ``SET SESSION TRANSACTION READ ONLY``; each with a statement timeout
   (SQLite: a progress handler that interrupts the query at the deadline). SQLite connections
   also build no value over :data:`MAX_VALUE_BYTES` (see :mod:`.execution` for the other bounds).

Every refusal is an :class:`UnsafeSQLError` whose message says why, in words a user understands,
and whose ``rule`` (a :class:`Rule`) says which rule refused it, for code and tests.
"""

from __future__ import annotations

import contextlib
import enum
import logging
import time
from dataclasses import dataclass
from typing import Any, Iterator

# Longer SQL than this is refused before parsing (a generated query is a few hundred characters;
# megabytes of SQL are an attack on the parser or the planner, not a question).
MAX_SQL_CHARS = 20_000
MAX_NESTING_DEPTH = 60

# Functions that read or write files, sleep, reach other servers or change settings.
FORBIDDEN_FUNCTIONS = frozenset({
    # SQLite
    "load_extension", "readfile", "writefile", "edit", "fts3_tokenizer", "sqlite_compileoption_get",
    # PostgreSQL
    "pg_read_file", "pg_read_binary_file", "pg_ls_dir", "pg_stat_file", "pg_sleep", "pg_sleep_for",
    "pg_sleep_until", "lo_import", "lo_export", "lo_unlink", "lo_create", "lo_from_bytea", "lo_put",
    "dblink", "dblink_exec", "dblink_connect", "set_config", "pg_terminate_backend",
    "pg_cancel_backend", "pg_reload_conf", "pg_rotate_logfile", "pg_promote", "nextval", "setval",
    "pg_advisory_lock", "pg_advisory_xact_lock", "query_to_xml", "pg_logical_emit_message",
    "pg_notify", "txid_current", "pg_current_xact_id",
    # large objects read server files once imported; the pg_ls_* family lists server folders;
    # settings show paths and secrets (found on a real server: a superuser passes them all)
    "lo_get", "lo_open", "loread", "lo_truncate", "pg_ls_waldir", "pg_ls_logdir", "pg_ls_tmpdir",
    "pg_ls_archive_statusdir", "pg_ls_logicalmapdir", "pg_ls_replslotdir", "current_setting",
    "pg_file_write", "pg_file_rename", "pg_file_unlink", "pg_logdir_ls", "pg_show_all_settings",
    # MySQL
    "sleep", "benchmark", "load_file", "get_lock",
})

_DIALECTS = {"postgresql": "postgres", "mssql": "tsql", "mariadb": "mysql", "sqlite": "sqlite",
             "mysql": "mysql", "oracle": "oracle", "duckdb": "duckdb", "snowflake": "snowflake",
             "bigquery": "bigquery", "redshift": "redshift", "trino": "trino", "clickhouse": "clickhouse"}


class Rule(str, enum.Enum):
    """The rule a refused query broke (``value`` is what a tool result carries as ``rule``)."""

    TOO_LONG = "too-long"  # longer than MAX_SQL_CHARS
    NUL_CHARACTER = "nul-character"
    TOO_DEEP = "too-deep"  # nested past what the parser or MAX_NESTING_DEPTH allows
    MULTIPLE_STATEMENTS = "multiple-statements"
    NOT_A_QUERY = "not-a-query"  # a statement that is no query and none of the kinds below
    WRITE = "write"  # INSERT, UPDATE, DELETE, MERGE, TRUNCATE, COPY, LOAD DATA
    SCHEMA_CHANGE = "schema-change"  # CREATE, DROP, ALTER, SELECT … INTO, COMMENT, GRANT, REVOKE
    SETTINGS = "settings"  # PRAGMA, SET, USE
    TRANSACTION = "transaction"  # BEGIN, COMMIT, ROLLBACK, row locks
    OTHER_DATABASE = "other-database"  # ATTACH, DETACH
    FORBIDDEN_FUNCTION = "forbidden-function"  # a function of FORBIDDEN_FUNCTIONS


class UnsafeSQLError(ValueError):
    """The SQL was refused before it reached the database; the message says why, ``rule`` which
    rule refused it."""

    def __init__(self, message: str, rule: Rule) -> None:
        super().__init__(message)
        self.rule = rule


class SQLSyntaxError(ValueError):
    """The SQL does not parse in the database's dialect (the LLM may correct it)."""


@dataclass(frozen=True)
class CheckedSQL:
    """A query that passed :func:`check_sql`: ``sql`` is what will run."""

    sql: str
    original: str
    kind: str  # root node: Select, Union, ...
    tables: tuple[str, ...]


def sqlglot_dialect(sqlalchemy_dialect: str) -> str:
    """The sqlglot dialect name for a SQLAlchemy dialect name (``postgresql`` → ``postgres``)."""
    return _DIALECTS.get(sqlalchemy_dialect.lower(), sqlalchemy_dialect.lower())


# Every sqlglot node kind that may appear nowhere in a query: the rule it breaks and, where the
# generic "a NAME statement" would not say why, the words of the refusal. Kinds this version of
# sqlglot lacks are skipped.
_FORBIDDEN_NODES: dict[str, tuple[Rule, str | None]] = {
    "Insert": (Rule.WRITE, "an INSERT (it writes data)"),
    "Update": (Rule.WRITE, "an UPDATE (it writes data)"),
    "Delete": (Rule.WRITE, "a DELETE (it removes data)"),
    "Merge": (Rule.WRITE, None),
    "TruncateTable": (Rule.WRITE, None),
    "Copy": (Rule.WRITE, None),
    "LoadData": (Rule.WRITE, None),
    "Create": (Rule.SCHEMA_CHANGE, "a CREATE (it changes the schema)"),
    "Drop": (Rule.SCHEMA_CHANGE, "a DROP (it removes tables)"),
    "Alter": (Rule.SCHEMA_CHANGE, "an ALTER (it changes the schema)"),
    "Into": (Rule.SCHEMA_CHANGE, "SELECT … INTO (it creates a table)"),
    "Comment": (Rule.SCHEMA_CHANGE, None),
    "Grant": (Rule.SCHEMA_CHANGE, None),
    "Revoke": (Rule.SCHEMA_CHANGE, None),
    "Pragma": (Rule.SETTINGS, "a PRAGMA (it reads or changes database settings)"),
    "Set": (Rule.SETTINGS, "a SET (it changes session settings)"),
    "SetItem": (Rule.SETTINGS, None),
    "Use": (Rule.SETTINGS, None),
    "Transaction": (Rule.TRANSACTION, "a transaction statement"),
    "Commit": (Rule.TRANSACTION, "a COMMIT"),
    "Rollback": (Rule.TRANSACTION, "a ROLLBACK"),
    "Lock": (Rule.TRANSACTION, None),
    "Attach": (Rule.OTHER_DATABASE, "ATTACH (it opens or closes other database files)"),
    "Detach": (Rule.OTHER_DATABASE, "DETACH (it opens or closes other database files)"),
    # What sqlglot does not model (VACUUM, REPLACE, … parse as Command) and statements that are
    # no query: refused whatever they would do.
    "Command": (Rule.NOT_A_QUERY, None),
    "Analyze": (Rule.NOT_A_QUERY, None),
    "Kill": (Rule.NOT_A_QUERY, None),
    "Cache": (Rule.NOT_A_QUERY, None),
    "Uncache": (Rule.NOT_A_QUERY, None),
    "Refresh": (Rule.NOT_A_QUERY, None),
    "Describe": (Rule.NOT_A_QUERY, None),
    "Export": (Rule.NOT_A_QUERY, None),
    "Install": (Rule.NOT_A_QUERY, None),
}


def _forbidden_kind(node: Any) -> tuple[Rule, str | None] | None:
    """The rule and words of a forbidden node (an instance of a listed kind), else None."""
    from sqlglot import exp

    for name, found in _FORBIDDEN_NODES.items():
        kind = getattr(exp, name, None)
        if isinstance(kind, type) and isinstance(node, kind):
            return found
    return None


def _describe(node: Any) -> str:
    """Words for a refused node: 'a DELETE (it removes data)', 'SELECT … INTO (…)'."""
    found = _forbidden_kind(node)
    if found is not None and found[1] is not None:
        return found[1]
    name = type(node).__name__
    if name == "Command":
        first = str(node.this or "").split()[0].upper() if node.this else "COMMAND"
        return f"{'an' if first[0] in 'AEIOU' else 'a'} {first} statement"
    if name in ("Column", "Identifier", "Literal", "Paren", "Alias"):
        return f"not a statement that reads tables (it parses as {name})"
    return f"{'an' if name[0] in 'AEIOU' else 'a'} {name.upper()} statement"


def _depth(node: Any) -> int:
    depth = 0
    while node is not None:
        depth += 1
        node = node.parent
    return depth


def check_sql(sql: str, dialect: str = "sqlite") -> CheckedSQL:
    """Accept one read-only query or raise :class:`UnsafeSQLError` / :class:`SQLSyntaxError`.

    Args:
        sql: the SQL text (from the LLM or a user).
        dialect: a SQLAlchemy or sqlglot dialect name (``sqlite``, ``postgresql``, ``mysql``, ...).
    """
    import sqlglot
    from sqlglot import exp
    from sqlglot.errors import ParseError, TokenError

    if not isinstance(sql, str) or not sql.strip():
        # Not a refusal: an empty reply is a generation failure that a retry may fix.
        raise SQLSyntaxError("the reply held no SQL query")
    if len(sql) > MAX_SQL_CHARS:
        raise UnsafeSQLError(f"the query is {len(sql):,} characters long; the limit is "
                             f"{MAX_SQL_CHARS:,}, so it was not run", Rule.TOO_LONG)
    if "\x00" in sql:
        raise UnsafeSQLError("the query contains a NUL character", Rule.NUL_CHARACTER)
    read = sqlglot_dialect(dialect)
    logger = logging.getLogger("sqlglot")
    previous = logger.level
    logger.setLevel(logging.ERROR)  # its "falling back to Command" warnings are refusals here
    try:
        statements = [s for s in sqlglot.parse(sql, read=read) if s is not None]
    except (ParseError, TokenError) as exc:
        raise SQLSyntaxError(f"the SQL does not parse as {read}: {str(exc).splitlines()[0][:300]}") from None
    except RecursionError:
        raise UnsafeSQLError("the query is nested too deeply to check, so it was not run",
                             Rule.TOO_DEEP) from None
    finally:
        logger.setLevel(previous)
    if not statements:
        raise SQLSyntaxError("the reply held no SQL statement")
    if len(statements) > 1:
        raise UnsafeSQLError(f"the text holds {len(statements)} statements; only one single "
                             "read-only query may run", Rule.MULTIPLE_STATEMENTS)
    root = statements[0]
    if not isinstance(root, exp.Query):
        # A DELETE is refused for writing, not merely for not being a SELECT.
        rule = (_forbidden_kind(root) or (Rule.NOT_A_QUERY, None))[0]
        raise UnsafeSQLError(f"only a read-only query (SELECT) may run; this is {_describe(root)}", rule)
    for node in root.walk():
        found = _forbidden_kind(node)
        if found is not None:
            raise UnsafeSQLError(f"the query contains {_describe(node)}; only reading is allowed", found[0])
        if isinstance(node, exp.Func):
            name = (node.name if isinstance(node, exp.Anonymous) else node.sql_name()).lower()
            if name in FORBIDDEN_FUNCTIONS:
                raise UnsafeSQLError(f"the function {name}() is not allowed (it reaches beyond "
                                     "reading the tables: files, settings, sleeps or writes)",
                                     Rule.FORBIDDEN_FUNCTION)
        if isinstance(node, (exp.Select, exp.Subquery)) and _depth(node) > MAX_NESTING_DEPTH:
            raise UnsafeSQLError("the query is nested too deeply, so it was not run", Rule.TOO_DEEP)
    try:
        checked = root.sql(dialect=read, comments=False)
    except Exception as exc:  # sqlglot cannot regenerate it: never run text we could not check
        raise SQLSyntaxError(f"the SQL could not be normalised: {exc}") from None
    tables = tuple(sorted({t.name for t in root.find_all(exp.Table) if t.name}))
    return CheckedSQL(sql=checked, original=sql, kind=type(root).__name__, tables=tables)


# --- read-only connections ------------------------------------------------------------------------

# The longest string or blob SQLite may build on Taller's connections (``SQLITE_LIMIT_LENGTH``;
# SQLite's default is 1 GB). ``hex(zeroblob(200000000))`` then fails at once with "string or
# blob too big" instead of building 400 MB, and ``printf('%.*c', 300000000, 'x')`` gives NULL;
# a larger value stored in a database cannot be read through Taller. Other databases have no
# such per-connection limit: their values are cut only once the driver has them.
MAX_VALUE_BYTES = 64 * 1024 * 1024


class QueryTimeoutError(RuntimeError):
    """The statement ran longer than the timeout and was interrupted."""


def limit_sqlite_values(connection: Any) -> None:
    """Cap the size of any value SQLite builds on ``connection`` at :data:`MAX_VALUE_BYTES`."""
    import sqlite3

    if hasattr(connection, "setlimit"):
        connection.setlimit(sqlite3.SQLITE_LIMIT_LENGTH, MAX_VALUE_BYTES)


def is_too_big(exc: BaseException) -> bool:
    """Whether a driver error means a value passed :data:`MAX_VALUE_BYTES` (SQLite's TOOBIG)."""
    return getattr(exc, "sqlite_errorname", "") == "SQLITE_TOOBIG" or "string or blob too big" in str(exc)


def sqlite_readonly_creator(path: str) -> Any:
    """A SQLAlchemy ``creator`` that opens a SQLite file read-only (``mode=ro`` URI)."""
    import sqlite3
    from pathlib import Path
    from urllib.parse import quote

    resolved = Path(path).expanduser().resolve()

    def connect() -> sqlite3.Connection:
        if not resolved.is_file():
            raise FileNotFoundError(f"SQLite database not found: {resolved}")
        connection = sqlite3.connect(f"file:{quote(str(resolved))}?mode=ro", uri=True,
                                     check_same_thread=False)
        # More locks: even a statement the parser missed cannot write through this connection,
        # attach another file, change a setting or load an extension.
        connection.execute("PRAGMA query_only = ON")
        connection.set_authorizer(_sqlite_authorizer)
        limit_sqlite_values(connection)
        return connection

    return connect


# Pragmas SQLAlchemy reads on connect and in its inspector (with no value assigned); every other
# pragma is denied.
# The first set takes a table or index name as its argument; the second only reads with no value.
_SCHEMA_PRAGMAS = frozenset({"table_info", "table_xinfo", "foreign_key_list", "index_list", "index_info",
                             "index_xinfo", "database_list", "table_list", "collation_list"})
_SETTING_PRAGMAS = frozenset({"read_uncommitted", "user_version", "encoding"})


def _sqlite_authorizer(action: int, arg1: Any, arg2: Any, database: Any, trigger: Any) -> int:
    """SQLite's per-statement authorizer: reads are allowed, everything else is denied."""
    import sqlite3

    if action in (sqlite3.SQLITE_SELECT, sqlite3.SQLITE_READ, sqlite3.SQLITE_RECURSIVE):
        return sqlite3.SQLITE_OK
    if action == sqlite3.SQLITE_FUNCTION:
        return sqlite3.SQLITE_DENY if str(arg2).lower() in FORBIDDEN_FUNCTIONS else sqlite3.SQLITE_OK
    if action == sqlite3.SQLITE_PRAGMA:
        name = str(arg1).lower()
        allowed = name in _SCHEMA_PRAGMAS or (arg2 is None and name in _SETTING_PRAGMAS)
        return sqlite3.SQLITE_OK if allowed else sqlite3.SQLITE_DENY
    return sqlite3.SQLITE_DENY


@contextlib.contextmanager
def readonly_connection(engine: Any, timeout_s: float) -> Iterator[Any]:
    """A SQLAlchemy connection on which writes fail and statements stop after ``timeout_s``.

    Raises :class:`QueryTimeoutError` (from the caller's ``execute``) when the deadline passes.
    """
    dialect = engine.dialect.name
    with engine.connect() as connection:
        if dialect == "sqlite":
            raw = connection.connection.driver_connection
            limit_sqlite_values(raw)
            deadline = [time.monotonic() + timeout_s]
            # Called every N SQLite VM instructions; a non-zero return interrupts the statement.
            raw.set_progress_handler(lambda: 1 if time.monotonic() > deadline[0] else 0, 5_000)
            try:
                yield connection
            finally:
                raw.set_progress_handler(None, 0)
                connection.rollback()
            return
        if dialect == "postgresql":
            connection.exec_driver_sql("SET TRANSACTION READ ONLY")
            connection.exec_driver_sql(f"SET LOCAL statement_timeout = {max(1, int(timeout_s * 1000))}")
        elif dialect in ("mysql", "mariadb"):
            connection.exec_driver_sql("SET SESSION TRANSACTION READ ONLY")
            connection.exec_driver_sql(f"SET SESSION max_execution_time = {max(1, int(timeout_s * 1000))}")
        try:
            yield connection
        finally:
            # Nothing to keep: a read-only session ends with a rollback.
            connection.rollback()


def is_timeout(exc: BaseException) -> bool:
    """Whether a driver error means the statement hit the timeout (SQLite interrupt, PG cancel)."""
    text = str(exc).lower()
    return ("interrupted" in text or "statement timeout" in text or "canceling statement" in text
            or "max_execution_time" in text or "query execution was interrupted" in text)
