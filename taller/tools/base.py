"""The contract every Taller tool follows.

A tool is a thin LangChain ``StructuredTool``: a typed function with a pydantic argument schema,
calling into a library function, and described to the LLM by its entry in
:mod:`taller.tools.registry` (``@langchain_tool(name, schema)`` joins the two). It returns a
JSON-able dict with at least ``summary`` (one or two sentences for the LLM and the user) plus
structured fields; image files are listed under ``images`` (absolute PNG paths) so every
interface can show them.

Bad input never escapes as a traceback: library code raises :class:`ToolError` (or a known
exception type) and :func:`run_tool` turns it into ``{"error": ..., "summary": ...}``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from taller.errors import ToolError
from taller.paths import check_input_path

__all__ = ["ToolError", "check_input_path", "error_result", "result", "to_json"]


def result(summary: str, **fields: Any) -> dict[str, Any]:
    """Build a tool result: ``summary`` first, then the structured fields."""
    out: dict[str, Any] = {"summary": summary}
    out.update(fields)
    return out


def error_result(message: str, **fields: Any) -> dict[str, Any]:
    return {"error": message, "summary": message, **fields}


def to_json(value: Any) -> str:
    """JSON text of a tool result; paths and numpy scalars become plain values."""

    def default(obj: Any) -> Any:
        if isinstance(obj, Path):
            return str(obj)
        if hasattr(obj, "item"):
            return obj.item()
        if hasattr(obj, "tolist"):
            return obj.tolist()
        return str(obj)

    return json.dumps(value, ensure_ascii=False, default=default)
