"""``python -m taller.knowledge.sql``: ask, describe, and teach (remember, add-doc, index).

The tools' names and arguments are fixed, so teaching the SQL knowledge happens here.
"""

from __future__ import annotations

import argparse
import json

from taller.errors import ToolError
from taller.knowledge.sql.answer import ask
from taller.knowledge.sql.connection import connect
from taller.knowledge.sql.memory import add_documentation, index_schema, remember_example
from taller.knowledge.sql.safety import SQLSyntaxError, UnsafeSQLError
from taller.knowledge.sql.schema import describe


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
