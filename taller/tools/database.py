"""Tools over SQL databases: answer a question with a safe read-only query, describe a schema."""

from __future__ import annotations

from langchain_core.tools import tool
from pydantic import BaseModel, Field

from taller.tools.base import not_available


class QueryDatabaseArgs(BaseModel):
    question: str = Field(min_length=1, description="The question, in English or Spanish.")
    database: str | None = Field(default=None, description="Configured database name or SQLAlchemy URL; default 'sales'.")


class DescribeDatabaseArgs(BaseModel):
    database: str | None = Field(default=None, description="Configured database name or SQLAlchemy URL; default 'sales'.")


@tool("query_database", args_schema=QueryDatabaseArgs)
def query_database(question: str, database: str | None = None) -> dict:
    """Answer a question about a database (default: the 'sales' music store) with a read-only SQL query."""
    return not_available("query_database", "the SQL module is being built")


@tool("describe_database", args_schema=DescribeDatabaseArgs)
def describe_database(database: str | None = None) -> dict:
    """Describe a database's tables, columns and keys (default: the 'sales' music store)."""
    return not_available("describe_database", "the SQL module is being built")
