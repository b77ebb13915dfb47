"""The LangGraph graph: route → (confirm) → act → answer.

::

    START → route ──(no tool)────────────────────────────→ answer → END
              │                                              ↑
              ├─(costly tool)→ confirm ─(rejected)───────────┤
              │                   │ (approved)                │
              └─(tool)──────────→ act ──(single step, or done)┘
                                   └─(multi_step)→ route (repeated-call and step guards)

``route`` makes one schema-constrained decision (:mod:`taller.agent.router`); ``act`` runs the
tool and reports ``tool_start``/``tool_end``/``image`` events on LangGraph's custom stream;
``answer`` writes the reply from the tool's result with tools unbound (or answers a chat
message directly), streaming ``token`` events. ``confirm`` pauses with ``interrupt()``.
"""

from __future__ import annotations

import json
import re
import threading
import uuid
from typing import Any, Callable

from langchain_core.language_models.chat_models import BaseChatModel
from langchain_core.messages import AIMessage, HumanMessage, SystemMessage, ToolMessage
from langchain_core.runnables import RunnableConfig
from langgraph.config import get_stream_writer
from langgraph.graph import END, START, StateGraph
from langgraph.types import interrupt

from taller import progress
from taller.agent import prompts, router
from taller.llm import LLMUnavailableError, text_of
from taller.agent.state import AgentState
from taller.config import Settings
from taller.tools import needs_confirmation, run_tool
from taller.tools.base import to_json

RESULT_CHARS = 3000  # how much of a tool result the answer prompt may quote


def _stream_sink() -> Callable[[dict], None] | None:
    """The run's custom-stream writer, or None outside a streamed run (plain invoke)."""
    try:
        return get_stream_writer()
    except Exception:
        return None


def _writer() -> Callable[[dict], None]:
    return _stream_sink() or (lambda event: None)


def _cancel_event(config: RunnableConfig) -> threading.Event | None:
    return (config.get("configurable") or {}).get("cancel_event")


def _same_call(a: dict, b: dict) -> bool:
    return a.get("tool") == b.get("tool") and json.dumps(a.get("args"), sort_keys=True) == json.dumps(b.get("args"), sort_keys=True)


def confirmation_text(tool: str, args: dict[str, Any], language: str = "en") -> str:
    """The question asked before a costly tool, in the user's language ("en" or "es")."""
    from taller.tools import registry

    template = registry.confirmation_templates(language if language in registry.LANGUAGES else "en").get(tool)
    if template and tool == "train_model":
        count = args.get("epochs")
        if language == "es":
            epochs = f"{count} {'época' if count == 1 else 'épocas'}" if count else "su número de épocas por defecto"
        else:
            epochs = f"{count} {'epoch' if count == 1 else 'epochs'}" if count else "its default number of epochs"
        return template.format(model=args.get("model"), epochs=epochs)
    if template:
        return template.format(**args)
    if language == "es":
        return f"¿Ejecutar {tool} con {json.dumps(args, ensure_ascii=False)}?"
    return f"Run {tool} with {json.dumps(args, ensure_ascii=False)}?"


# Fixed sentences of the agent itself, per language.
MESSAGES = {
    "rejected": {"en": "OK, I did not run it.", "es": "De acuerdo, no lo he ejecutado."},
    "incomplete": {"en": "I understood you want {tool}, but the request was incomplete: {error}",
                   "es": "Entendí que quieres {tool}, pero a la petición le falta algo: {error}"},
    "failed": {"en": "I could not run {tool}: {error}", "es": "No pude ejecutar {tool}: {error}"},
    "finished": {"en": "{tool} finished.", "es": "{tool} ha terminado."},
}


def message(key: str, language: str, **values: Any) -> str:
    return MESSAGES[key]["es" if language == "es" else "en"].format(**values)


def template_answer(tool: str | None, result: dict[str, Any] | None, language: str = "en") -> str:
    """The answer without an LLM: the tool's own summary (tools write it for people)."""
    if not tool or result is None:
        return ""
    if result.get("error"):
        return message("failed", language, tool=tool, error=result["error"])
    if language == "es" and result.get("summary_es"):  # a tool that wrote its own Spanish summary
        return str(result["summary_es"])
    return str(result.get("summary") or message("finished", language, tool=tool))


TRANSLATE_SUMMARY_SCHEMA = {"type": "object", "properties": {"spanish": {"type": "string"}}, "required": ["spanish"]}


def in_spanish(model: BaseChatModel | None, text: str) -> str:
    """``text`` (a tool's English summary) in Spanish, or ``text`` itself when the translation
    is not safe: every number, file name and quoted text of the original must survive it."""
    from taller.agent import grounding
    from taller.llm import invoke_json

    if model is None or not text.strip() or grounding.detect_language(text) == "es":
        return text
    try:
        reply = invoke_json(model, [SystemMessage(content=prompts.TRANSLATE_SUMMARY_SYSTEM), HumanMessage(content=text)],
                            TRANSLATE_SUMMARY_SCHEMA, max_tokens=400)
    except (ValueError, LLMUnavailableError):
        return text
    spanish = str(reply.get("spanish") or "").strip()
    numbers = sorted(grounding.number_mentions(text))
    kept_tokens = re.findall(r"[A-Za-z_~/][\w./~-]*\.[A-Za-z]\w{0,4}\b|`[^`]+`", text)  # files, code
    if (not spanish or sorted(grounding.number_mentions(spanish)) != numbers
            or any(token not in spanish for token in kept_tokens)):
        return text
    return spanish


def result_details(result: dict[str, Any] | None) -> str:
    """What a text-only answer must show beside its sentence: the SQL and a small table.

    The TUI and the web page render these from the ``tool_end`` result; the CLI prints this.
    """
    if not result or result.get("error") or not result.get("sql"):
        return ""
    parts = [f"```sql\n{result['sql']}\n```"]
    if result.get("table"):
        parts.append(str(result["table"]))
    if result.get("csv"):
        parts.append(f"All rows: {result['csv']}")
    return "\n\n" + "\n\n".join(parts)


def use_template(style: str, model: BaseChatModel | None) -> bool:
    if style in ("template", "llm"):
        return style == "template"
    from taller.llm import EmbeddedChatModel

    return isinstance(model, EmbeddedChatModel)


def _language_of(state: AgentState) -> str:
    """The language of the user's message this turn (what they typed, not its rewrite)."""
    from taller.agent.grounding import detect_language

    last = next((m for m in reversed(state.get("messages") or []) if m.type == "human"), None)
    return detect_language(text_of(last) if last is not None else state.get("request") or "")


def build_graph(model_factory: Callable[[], BaseChatModel], settings: Settings, checkpointer: Any = None):
    """Compile the agent graph. ``model_factory`` is called lazily, only when an LLM is needed."""

    def _model_or_none() -> BaseChatModel | None:
        try:
            return model_factory()
        except LLMUnavailableError:
            return None

    def route(state: AgentState, config: RunnableConfig) -> dict[str, Any]:
        results = state.get("results") or []
        note = None
        if results:
            note = "\n".join(f"- {r['tool']}({json.dumps(r['args'], ensure_ascii=False)}) -> "
                             f"{to_json(r['result'])[:800]}" for r in results)
        history = state.get("messages", [])[:-1] if not results else state.get("messages", [])
        decision = router.plan(state["request"], model_factory, history=history,
                               use_semantic=settings.semantic_router, results_note=note)
        if decision.get("tool") and any(_same_call(decision, r) for r in results):
            # Small models repeat the call they just made; the result would be the same.
            return {"plan": None, "stop_reason": "repeated call"}
        update: dict[str, Any] = {"plan": decision}
        standalone = decision.get("standalone")
        last = state["messages"][-1] if state.get("messages") else None
        if standalone and isinstance(last, HumanMessage):
            # The thread keeps the standalone form beside what the user typed (same message id,
            # so the reducer replaces it): later follow-ups and the history build on its meaning.
            update["messages"] = [HumanMessage(content=last.content, id=last.id,
                                               additional_kwargs={**last.additional_kwargs, "standalone": standalone})]
            update["request"] = standalone
        return update

    def after_route(state: AgentState) -> str:
        decision = state.get("plan") or {}
        tool = decision.get("tool")
        if not tool or decision.get("error"):
            return "answer"
        if needs_confirmation(tool, settings, decision.get("args") or {}):
            return "confirm"
        return "act"

    def confirm(state: AgentState) -> dict[str, Any]:
        decision = state["plan"]
        reply = interrupt({
            "tool": decision["tool"],
            "args": decision["args"],
            "message": confirmation_text(decision["tool"], decision["args"], _language_of(state)),
        })
        approved = reply.get("approve") if isinstance(reply, dict) else bool(reply)
        if approved:
            return {}
        return {"stop_reason": "rejected"}

    def after_confirm(state: AgentState) -> str:
        return "answer" if state.get("stop_reason") == "rejected" else "act"

    def act(state: AgentState, config: RunnableConfig) -> dict[str, Any]:
        write = _writer()
        decision = state["plan"]
        tool, args = decision["tool"], decision["args"]
        call_id = f"call_{uuid.uuid4().hex[:12]}"
        start = {"type": "tool_start", "tool": tool, "args": args, "call_id": call_id}
        if decision.get("standalone"):  # a follow-up, rewritten: show what the tool was asked
            start["request"] = decision["standalone"]
        write(start)
        # The tool's progress and cancellation travel with the call, not through globals.
        with progress.reporting_to(_stream_sink(), _cancel_event(config)):
            outcome = run_tool(tool, args)
        write({"type": "tool_end", "tool": tool, "call_id": call_id, "result": outcome,
               "ok": "error" not in outcome})
        for path in outcome.get("images") or []:
            write({"type": "image", "tool": tool, "call_id": call_id, "path": str(path),
                   "caption": outcome.get("summary", "")[:200]})
        record = {"tool": tool, "args": args, "result": outcome}
        return {
            "results": [*(state.get("results") or []), record],
            "plan": None,
            "messages": [
                AIMessage(content="", tool_calls=[{"name": tool, "args": args, "id": call_id}]),
                ToolMessage(content=to_json(outcome)[:20000], tool_call_id=call_id, name=tool),
            ],
        }

    def after_act(state: AgentState) -> str:
        results = state.get("results") or []
        if settings.multi_step and len(results) < settings.max_tool_steps and "error" not in results[-1]["result"]:
            return "route"
        return "answer"

    def answer(state: AgentState, config: RunnableConfig) -> dict[str, Any]:
        write = _writer()
        cancel = _cancel_event(config)
        results = state.get("results") or []
        decision = state.get("plan") or {}
        last = results[-1] if results else None
        language = _language_of(state)
        if state.get("stop_reason") == "rejected":
            text = message("rejected", language)
            write({"type": "token", "text": text})
            return {"messages": [AIMessage(content=text)], "plan": None}
        if decision.get("error") and not results:
            text = message("incomplete", language, tool=decision.get("tool") or "a tool", error=decision["error"])
            write({"type": "token", "text": text})
            return {"messages": [AIMessage(content=text)], "plan": None}
        if last is not None and last["result"].get("error"):
            # Errors are answered from the tool's own message: an LLM paraphrase can lose the fix.
            text = template_answer(last["tool"], last["result"], language)
            write({"type": "token", "text": text})
            return {"messages": [AIMessage(content=text)], "plan": None}
        if last is not None and use_template(settings.answer_style, _model_or_none()):
            text = template_answer(last["tool"], last["result"], language)
            if language == "es":  # tools write English summaries; translated only when safe
                text = in_spanish(_model_or_none(), text)
            write({"type": "token", "text": text})
            return {"messages": [AIMessage(content=text)], "plan": None}
        if last is not None:
            system = prompts.ANSWER_SYSTEM.format(tool=last["tool"], result=to_json(last["result"])[:RESULT_CHARS])
            messages = [SystemMessage(content=system), HumanMessage(content=state["request"])]
        else:
            history = [m for m in state.get("messages", []) if m.type in ("human", "ai") and text_of(m).strip()]
            messages = [SystemMessage(content=prompts.CHAT_SYSTEM), *history[-8:]]
        pieces: list[str] = []
        try:
            for chunk in model_factory().stream(messages):
                if cancel is not None and cancel.is_set():
                    pieces.append(" …")
                    break
                piece = text_of(chunk)
                if piece:
                    pieces.append(piece)
                    write({"type": "token", "text": piece})
        except LLMUnavailableError as exc:
            fallback = template_answer(last["tool"], last["result"]) if last else str(exc)
            pieces = [fallback]
            write({"type": "token", "text": fallback})
        text = "".join(pieces).strip() or template_answer(last["tool"] if last else None, last["result"] if last else None)
        return {"messages": [AIMessage(content=text)], "plan": None}

    graph = StateGraph(AgentState)
    graph.add_node("route", route)
    graph.add_node("confirm", confirm)
    graph.add_node("act", act)
    graph.add_node("answer", answer)
    graph.add_edge(START, "route")
    graph.add_conditional_edges("route", after_route, ["confirm", "act", "answer"])
    graph.add_conditional_edges("confirm", after_confirm, ["act", "answer"])
    graph.add_conditional_edges("act", after_act, ["route", "answer"])
    graph.add_edge("answer", END)
    return graph.compile(checkpointer=checkpointer)
