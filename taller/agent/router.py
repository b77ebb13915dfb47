"""Choosing the one tool call for a request: a semantic pre-router, rules, then constrained LLM output.

Small local models pick a first tool well when their output is constrained to a schema, and
babble or loop when left free. So planning is a single decision, ``{"tool", "args"}``:

1. The semantic pre-router embeds the request with MiniLM and compares it with example requests of
   every tool (``prompts.ROUTER_EXAMPLES``). When the nearest tool wins by a clear margin and the
   tool's arguments can be read off the request by rules (a model name, a file path, a quoted
   text), the plan is made instantly, without the LLM.
2. Otherwise the LLM answers with output constrained to a JSON schema whose choices are narrowed to
   the pre-router's best candidates (Ollama ``format`` / llama.cpp grammar), and the arguments are
   validated against the tool's pydantic schema, with one retry that shows the model its mistake.
"""

from __future__ import annotations

import re
import threading
from typing import Any, Sequence

from langchain_core.messages import BaseMessage, HumanMessage, SystemMessage

from taller.agent import prompts
from taller.tools import TOOL_NAMES, ToolError, get_tool, validate_args

NONE = "none"
# Cosine similarity the best example must reach, and the lead it must have over the next tool.
CONFIDENT_SCORE = 0.62
CONFIDENT_MARGIN = 0.06
CANDIDATES = 4


# --- rules: read arguments off the request ----------------------------------------------------

_MODEL_WORDS = [
    ("dense_classifier", r"dense|mlp|cats?\s*(vs\.?|versus|and|or|y|o)\s*dogs?|gatos?\s*(vs\.?|y|o)\s*perros?|clasificador|classifier|pet"),
    ("birnn", r"bidirec|birnn|bi-?lstm|punctuat|puntua"),
    ("seq2seq", r"seq2seq|translat|traduc|attention model"),
    ("autoencoder", r"auto-?encoder|autocodificador"),
    ("vae", r"\bvae\b|variational|variacional"),
    ("pix2pix", r"pix2pix|\bgan\b|facade|fachada"),
    ("rnn", r"\brnn\b|\blstm\b|\bgru\b|recurrent|recurrente|forecaster"),
]
_IMAGE_PATH = re.compile(r"""(?:^|[\s'"(])((?:~|\.{1,2}|/)?[\w./~-]*[\w-]\.(?:png|jpe?g|bmp|gif|webp|tiff?))\b""", re.I)
_TRANSCRIPT_PATH = re.compile(r"""(?:^|[\s'"(])((?:~|\.{1,2}|/)?[\w./~-]*[\w-]\.(?:vtt|srt|json))\b""", re.I)
_CSV_PATH = re.compile(r"""(?:^|[\s'"(])((?:~|\.{1,2}|/)?[\w./~-]*[\w-]\.csv)\b""", re.I)
_URL = re.compile(r"https?://\S+", re.I)
_EPOCHS = re.compile(r"(\d+)\s*(?:epochs?|épocas?|epocas?)", re.I)
_NUMBER = re.compile(r"-?\d+(?:\.\d+)?")
_QUOTED = re.compile(r"""["“'‘«]([^"”'’»]{1,2000})["”'’»]""")


def _model_name(text: str, allowed: Sequence[str]) -> str | None:
    lowered = text.lower()
    for name, pattern in _MODEL_WORDS:
        if name in allowed and re.search(pattern, lowered):
            return name
    return None


def _payload_text(text: str) -> str | None:
    """The text a translate/punctuate request is about: quoted, or after a colon."""
    quoted = _QUOTED.search(text)
    if quoted:
        return quoted.group(1).strip()
    if ":" in text:
        tail = text.split(":", 1)[1].strip()
        return tail or None
    return None


def extract_args(tool: str, text: str) -> dict[str, Any] | None:
    """Arguments for ``tool`` read off ``text`` by rules, or None when rules cannot tell."""
    if tool in ("list_models", "describe_database", NONE):
        return {}
    if tool == "train_model":
        model = _model_name(text, ["dense_classifier", "autoencoder", "rnn", "birnn", "seq2seq", "vae", "pix2pix"])
        if not model:
            return None
        epochs = _EPOCHS.search(text)
        return {"model": model, **({"epochs": int(epochs.group(1))} if epochs else {})}
    if tool in ("classify_pet", "analyze_face"):
        path = _IMAGE_PATH.search(text)
        return {"image_path": path.group(1)} if path else None
    if tool == "generate_images":
        model = _model_name(text, ["autoencoder", "vae", "pix2pix"])
        if not model:
            return None
        args: dict[str, Any] = {"model": model}
        count = re.search(r"\b(\d{1,2})\b\s*(?:samples?|images?|imágenes|muestras|digits?|dígitos)", text, re.I)
        if count:
            args["count"] = int(count.group(1))
        path = _IMAGE_PATH.search(text)
        if path:
            args["image_path"] = path.group(1)
        return args
    if tool == "forecast":
        csv = _CSV_PATH.search(text)
        steps_match = re.search(r"(?:next|siguientes|próximos|proximos)\s+(\d+)|(\d+)\s*(?:steps?|pasos|values|valores)", text, re.I)
        steps = int(next(g for g in steps_match.groups() if g)) if steps_match else None
        if csv:
            values: Any = csv.group(1)
        else:
            body = text
            if steps_match:
                body = text[: steps_match.start()] + text[steps_match.end():]
            numbers = [float(n) for n in _NUMBER.findall(body)]
            if len(numbers) < 3:
                return None
            values = numbers
        return {"values": values, **({"steps": steps} if steps else {})}
    if tool in ("translate", "punctuate"):
        payload = _payload_text(text)
        return {"text": payload} if payload else None
    if tool == "add_video":
        url = _URL.search(text) or _TRANSCRIPT_PATH.search(text)
        if url:
            return {"url_or_path": url.group(1) if url.re is _TRANSCRIPT_PATH else url.group(0)}
        video_id = re.search(r"\b([A-Za-z0-9_-]{11})\b", text)
        return {"url_or_path": video_id.group(1)} if video_id and re.search(r"[0-9_-]", video_id.group(1)) else None
    if tool == "ask_video":
        return {"question": text.strip()}
    if tool == "summarize_video":
        url = _URL.search(text)
        return {"video": url.group(0)} if url else {}
    if tool == "query_database":
        return {"question": text.strip()}
    return None


# --- semantic pre-router --------------------------------------------------------------------------

class SemanticRouter:
    """Nearest-example classifier over MiniLM embeddings of ``prompts.ROUTER_EXAMPLES``."""

    def __init__(self, examples: dict[str, list[str]] | None = None) -> None:
        self.examples = examples or prompts.ROUTER_EXAMPLES
        self._labels: list[str] = []
        self._matrix = None
        self._lock = threading.Lock()

    def _ensure(self) -> None:
        with self._lock:
            if self._matrix is not None:
                return
            from taller.knowledge.embeddings import embed

            labels, texts = [], []
            for label, sentences in self.examples.items():
                labels += [label] * len(sentences)
                texts += sentences
            self._matrix = embed(texts)
            self._labels = labels

    def scores(self, text: str) -> list[tuple[str, float]]:
        """Best similarity per tool, highest first."""
        from taller.knowledge.embeddings import embed

        self._ensure()
        sims = self._matrix @ embed([text])[0]
        best: dict[str, float] = {}
        for label, sim in zip(self._labels, sims.tolist()):
            best[label] = max(best.get(label, -1.0), sim)
        return sorted(best.items(), key=lambda item: item[1], reverse=True)


_semantic: SemanticRouter | None = None


def semantic_router() -> SemanticRouter:
    global _semantic
    if _semantic is None:
        _semantic = SemanticRouter()
    return _semantic


# --- the LLM's constrained choice -------------------------------------------------------------------

def _args_schema(tool: str) -> dict:
    schema = get_tool(tool).args_schema.model_json_schema()
    schema.pop("title", None)
    return schema


def plan_schema(candidates: Sequence[str]) -> dict:
    """A JSON schema whose only valid documents are calls of one of ``candidates`` (or none)."""
    options = []
    for name in candidates:
        args = {"type": "object", "properties": {}} if name == NONE else _args_schema(name)
        options.append({
            "type": "object",
            "properties": {"tool": {"type": "string", "enum": [name]}, "args": args},
            "required": ["tool", "args"],
        })
    return options[0] if len(options) == 1 else {"anyOf": options}


def _catalog(candidates: Sequence[str]) -> str:
    lines = [f"- {name}: {prompts.TOOL_CATALOG[name]}" for name in candidates if name != NONE]
    lines.append('- none: no tool; chit-chat or a general question. args: {}')
    return "\n".join(lines)


def _history_text(history: Sequence[BaseMessage], limit: int = 4) -> list[BaseMessage]:
    """The last few human/assistant turns (text only) so follow-ups like "again, 5 epochs" work."""
    kept = [m for m in history if m.type in ("human", "ai") and isinstance(m.content, str) and m.content.strip()]
    return [type(m)(content=m.content[:500]) for m in kept[-limit:]]


def llm_plan(model: Any, request: str, candidates: Sequence[str], history: Sequence[BaseMessage] = (),
             results_note: str | None = None) -> dict[str, Any]:
    """Ask the LLM for ``{"tool", "args"}`` constrained to ``candidates``; validate the args."""
    from taller.agent.llm import invoke_json

    candidates = list(dict.fromkeys([*candidates, NONE]))
    system = prompts.ROUTER_SYSTEM.format(catalog=_catalog(candidates))
    if results_note:
        system += "\n\n" + prompts.ROUTER_AFTER_TOOL.format(results=results_note)
    messages: list[BaseMessage] = [SystemMessage(content=system), *_history_text(history), HumanMessage(content=request)]
    schema = plan_schema(candidates)
    error = None
    for attempt in range(2):
        raw = invoke_json(model, messages, schema)
        tool = raw.get("tool")
        args = raw.get("args") or {}
        if tool in (None, "", NONE, "null"):
            return {"tool": None, "args": {}, "source": "llm"}
        if tool not in TOOL_NAMES:
            error = f"unknown tool {tool!r}"
        else:
            try:
                clean = validate_args(tool, args)
                return {"tool": tool, "args": _compact(tool, clean), "source": "llm"}
            except ToolError as exc:
                error = str(exc)
        messages = messages + [HumanMessage(content=f"That reply was invalid ({error}). Reply again with valid JSON.")]
    return {"tool": tool if tool in TOOL_NAMES else None, "args": args, "source": "llm", "error": error}


def _compact(tool: str, args: dict[str, Any]) -> dict[str, Any]:
    """Drop optional arguments left at their default so plans read like the user's request."""
    fields = get_tool(tool).args_schema.model_fields
    return {k: v for k, v in args.items() if not (k in fields and not fields[k].is_required() and v == fields[k].default)}


def plan(request: str, model_factory: Any, history: Sequence[BaseMessage] = (), use_semantic: bool = True,
         results_note: str | None = None) -> dict[str, Any]:
    """The tool call for ``request``: ``{"tool": name|None, "args": {...}, "source": ...}``.

    ``model_factory`` is called only when the LLM is needed, so confident requests never load it.
    """
    candidates: list[str] = list(TOOL_NAMES)
    if use_semantic and results_note is None:
        ranked = semantic_router().scores(request)
        (best, score), (_, second) = ranked[0], ranked[1]
        if score >= CONFIDENT_SCORE and score - second >= CONFIDENT_MARGIN:
            args = extract_args(best, request)
            if args is not None:
                if best == NONE:
                    return {"tool": None, "args": {}, "source": "semantic", "confidence": round(score, 3)}
                try:
                    clean = validate_args(best, args)
                    return {"tool": best, "args": _compact(best, clean), "source": "semantic",
                            "confidence": round(score, 3)}
                except ToolError:
                    pass
            candidates = [best] if best != NONE else candidates
        else:
            candidates = [name for name, _ in ranked[:CANDIDATES]]
    return llm_plan(model_factory(), request, [c for c in candidates if c != NONE] + [NONE], history, results_note)
