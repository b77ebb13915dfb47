"""The tools: the fixed contract between the agent and Taller's modules.

Every tool has one entry in :data:`taller.tools.registry.TOOLS` (its description, examples,
confirmation, argument words); the names, the costly set and the modules below are derived from
it. Each group of tools lives in its own module and is imported only when a tool is needed.
"""

from __future__ import annotations

import logging
import traceback
from typing import TYPE_CHECKING, Any

from taller.paths import clip
from taller.tools.base import ToolError, error_result
from taller.tools.registry import TOOLS

if TYPE_CHECKING:  # pragma: no cover
    from langchain_core.tools import BaseTool

log = logging.getLogger(__name__)

# Derived once, at import, from the registry (tests/tools/test_registry.py checks them).
# tool name -> module that defines it (a LangChain tool object of the same name).
TOOL_MODULES: dict[str, str] = {name: spec.module for name, spec in TOOLS.items()}
TOOL_NAMES: tuple[str, ...] = tuple(TOOLS)
# Tools that pause for the user's confirmation (LangGraph interrupt) unless auto_approve is on.
COSTLY_TOOLS: frozenset[str] = frozenset(name for name, spec in TOOLS.items() if spec.costly)


def needs_confirmation(tool: str, settings: Any, args: dict[str, Any] | None = None) -> bool:
    """The one confirmation rule, for the agent and for the TUI's slash commands alike.

    Given the call's ``args``, a tool whose registry entry has ``costly_when`` asks only when that
    call would start costly work (``show_lesson`` of a lesson that has already run just shows it).
    """
    if tool not in COSTLY_TOOLS or settings.auto_approve:
        return False
    return TOOLS[tool].costly_call(args)


def get_tool(name: str) -> "BaseTool":
    """The LangChain tool called ``name``; a clear ToolError for an unknown name."""
    spec = TOOLS.get(name)
    if spec is None:
        raise ToolError(f"unknown tool {name!r}; available tools: {', '.join(TOOLS)}")
    return spec.tool


def get_tools() -> list["BaseTool"]:
    return [spec.tool for spec in TOOLS.values()]


def validate_args(name: str, args: dict[str, Any] | None) -> dict[str, Any]:
    """Check ``args`` against the tool's pydantic schema; ToolError says what is wrong."""
    from pydantic import ValidationError

    tool = get_tool(name)
    if args is None:
        args = {}
    if not isinstance(args, dict):
        raise ToolError(f"arguments for {name} must be a JSON object, got {type(args).__name__}")
    schema = tool.args_schema
    try:
        model = schema.model_validate(args)
    except ValidationError as exc:
        problems = []
        for err in exc.errors():
            where = ".".join(str(p) for p in err["loc"]) or "arguments"
            problems.append(f"{where}: {err['msg']}")
        raise ToolError(f"bad arguments for {name}: " + "; ".join(problems)) from None
    return model.model_dump(exclude_unset=False)


# The longest error message a tool result carries: whatever a message quotes (a path, an
# argument), it is cut in the middle past this (see :func:`taller.paths.clip`).
MAX_ERROR_CHARS = 1_000


def _error_text(exc: BaseException) -> str:
    """``Kind: reason`` of an unexpected exception, bounded; an OS error's path is quoted once, cut."""
    if isinstance(exc, OSError) and exc.strerror:
        text = f"{type(exc).__name__}: {exc.strerror}"
        return text + (f": {clip(str(exc.filename))}" if exc.filename else "")
    return clip(f"{type(exc).__name__}: {exc}", MAX_ERROR_CHARS)


def run_tool(name: str, args: dict[str, Any] | None = None) -> dict[str, Any]:
    """Validate and run one tool; never raises for bad input, returns ``{"error": ...}``."""
    from taller.data import DataNotFoundError
    from taller.errors import LLMUnavailableError
    from taller.progress import CancelledError

    try:
        clean = validate_args(name, args)
        tool = get_tool(name)
        out = tool.func(**clean)
    except (ToolError, DataNotFoundError, CancelledError, LLMUnavailableError) as exc:
        return error_result(clip(str(exc) or type(exc).__name__, MAX_ERROR_CHARS), tool=name)
    except (FileNotFoundError, PermissionError, IsADirectoryError, ValueError) as exc:
        return error_result(_error_text(exc), tool=name)
    except Exception as exc:  # keep serving: log the traceback, tell the user what failed
        log.error("tool %s failed:\n%s", name, clip(traceback.format_exc(), 20_000))
        return error_result(f"{name} failed unexpectedly ({_error_text(exc)})", tool=name)
    if not isinstance(out, dict):
        out = {"summary": str(out)}
    out.setdefault("summary", "")
    return out
