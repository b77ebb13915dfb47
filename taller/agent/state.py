"""The agent's state: the conversation (persisted per thread) and the current request's plan."""

from __future__ import annotations

from typing import Annotated, Any, TypedDict

from langchain_core.messages import BaseMessage
from langgraph.graph.message import add_messages


class ToolCallRecord(TypedDict):
    tool: str
    args: dict[str, Any]
    result: dict[str, Any]


class AgentState(TypedDict, total=False):
    # The whole conversation of the thread; LangGraph's reducer appends new messages.
    messages: Annotated[list[BaseMessage], add_messages]
    # The user's current request (the text of the last human message).
    request: str
    # The tool call chosen for the next step: {"tool": name | None, "args": {...}, "source": ...}.
    plan: dict[str, Any] | None
    # Tool calls made for the current request, in order (reset with every new request).
    results: list[ToolCallRecord]
    # Why the loop stopped early, when it did ("repeated call", "step limit", "rejected").
    stop_reason: str | None
