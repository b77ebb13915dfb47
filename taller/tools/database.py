"""Tools over SQL databases: answer a question with a safe read-only query, describe a schema.

Thin wrappers over :mod:`taller.knowledge.sql` (imported inside the functions: it pulls
SQLAlchemy, sqlglot and, for retrieval, ChromaDB); the chat model that writes the SQL is the
agent's, passed in explicitly. To teach the SQL module a confirmed question→SQL pair or
documentation, use ``python -m taller.knowledge.sql remember|add-doc`` (see docs/sql.md): the
tools' names and arguments are fixed.
"""

from __future__ import annotations

from pydantic import BaseModel, Field

from taller.tools.registry import langchain_tool


class QueryDatabaseArgs(BaseModel):
    question: str = Field(min_length=1, max_length=2000, description="The question, in English or Spanish.")
    database: str | None = Field(default=None, description="Configured database name or SQLAlchemy URL; default 'sales'.")


class DescribeDatabaseArgs(BaseModel):
    database: str | None = Field(default=None, description="Configured database name or SQLAlchemy URL; default 'sales'.")


@langchain_tool("query_database", QueryDatabaseArgs)
def query_database(question: str, database: str | None = None) -> dict:
    from taller.knowledge.sql import ask
    from taller.llm import get_chat_model

    return ask(question, database, model=get_chat_model())


@langchain_tool("describe_database", DescribeDatabaseArgs)
def describe_database(database: str | None = None) -> dict:
    from taller.knowledge.sql import describe

    return describe(database)
