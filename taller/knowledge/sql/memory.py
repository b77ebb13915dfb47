"""What retrieval knows about a database, kept in ChromaDB: the tables, examples, documentation.

One collection per database holds three kinds of documents: each table's DDL (indexed only for
schemas too large to send whole), confirmed question→SQL examples ("remember this", like
Vanna's training data) and user documentation. :func:`retrieve` picks, for one question, the
tables to show the LLM (plus the tables their foreign keys join to), the nearest examples and
the nearest notes.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from typing import Any

from taller.errors import ToolError
from taller.knowledge.sql import linking
from taller.knowledge.sql.connection import SOURCE, Database, connect
from taller.knowledge.sql.execution import execute_checked
from taller.knowledge.sql.safety import check_sql
from taller.knowledge.sql.schema import Schema, introspect
from taller.progress import emit

# Schemas with at most this many tables are sent whole: retrieval would only drop context.
FULL_SCHEMA_TABLES = 12
# For larger schemas: how many tables retrieval picks, and the most sent after adding FK neighbours.
RETRIEVED_TABLES = 6
MAX_PROMPT_TABLES = 10
# Cosine distance under which a remembered example counts as similar enough to show the LLM.
EXAMPLE_MAX_DISTANCE = 0.6
DOCS_IN_PROMPT = 3


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
    execute_checked(db, checked, row_limit=1, export=False)  # an example that fails would teach errors
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
    values: list[str] = field(default_factory=list)  # "employees.status = 'on_leave'" for values the question names
    joins: list[str] = field(default_factory=list)   # "enrollments.stu_id = students.stu_id", …


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
    # Schema linking (read from the database, not guessed): every value of the short category
    # columns, the stored values the question names, and the joins among the tables shown.
    stored = linking.value_index(db, schema)
    mentioned = linking.mentioned_values(question, stored, names)
    return Context(tables=names, schema_text=schema.text(names, linking.categories(stored)), examples=examples,
                   documentation=docs,
                   values=[f"{item.table}.{item.column} = {_quoted(item.value)}" for item in mentioned],
                   joins=linking.join_paths(schema, names))


def _quoted(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"
