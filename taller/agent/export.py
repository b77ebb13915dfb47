"""A thread as a file: Markdown, JSON (which imports back), a Python script or a Jupyter notebook.

:func:`export_thread` writes the thread's current branch (:meth:`Agent.history
<taller.agent.session.Agent.history>`) as

``md``     the title, each turn, every tool call with its arguments, results with columns and
           rows as Markdown tables (at most :data:`TABLE_ROWS` rows), images as ``![caption](path)``;
``json``   ``{"format": "taller-thread", "version": 1, "title", "messages": [...]}`` with the tool
           calls and their results: what :func:`import_thread` reads back;
``py``     a runnable script that repeats the thread's tool calls through Taller's Python API
           with the same arguments: SQL as the text that ran (:func:`taller.knowledge.sql.run_sql`,
           checked read-only again), a training with its run's ``config.json``
           (``taller.trainers.<model>.train(Config(...))``), every other tool through
           :func:`taller.tools.run_tool`; the user's messages and the answers become comments;
``ipynb``  the same as a notebook (nbformat 4): messages as Markdown cells, calls as code cells.

:func:`import_thread` validates a JSON export and writes it as a new thread (a new id, one
checkpoint per turn), which can be continued, edited, regenerated, searched and exported again.
Errors name the field and what is wrong with it, never its contents.
"""

from __future__ import annotations

import json
import pprint
import textwrap
import time
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Any

from taller.errors import TallerError

if TYPE_CHECKING:  # pragma: no cover
    from taller.agent.session import Agent

FORMATS = ("md", "json", "py", "ipynb")
FORMAT_NAME = "taller-thread"
FORMAT_VERSION = 1
TABLE_ROWS = 50  # rows of a result table in Markdown (the JSON keeps what the thread kept)
CELL_CHARS = 200  # of one Markdown table cell
MAX_IMPORT_MESSAGES = 10_000
MAX_IMPORT_CHARS = 200_000  # of one imported message's text
ROLES = ("user", "assistant", "tool")


class ExportError(TallerError, ValueError):
    """A thread that cannot be exported or a file that cannot be imported (the message says why)."""


# --- export ----------------------------------------------------------------------------------------

def export_thread(agent: "Agent", thread_id: str, fmt: str) -> str:
    """The current branch of ``thread_id`` as the text of a ``fmt`` file (one of :data:`FORMATS`)."""
    if fmt not in FORMATS:
        raise ExportError(f"unknown export format {str(fmt)[:20]!r}; formats: {', '.join(FORMATS)}")
    title = agent.thread_store.title(thread_id)
    history = agent.history(thread_id)
    if title is None and not history:
        raise ExportError(f"no thread {thread_id[:80]!r}")
    title = title or f"Thread {thread_id}"
    writer = {"md": to_markdown, "json": to_json, "py": to_script, "ipynb": to_notebook}[fmt]
    return writer(title, thread_id, history)


def default_path(home: Path, thread_id: str, fmt: str) -> Path:
    """Where ``taller export`` writes without ``-o``: ``$TALLER_HOME/exports/thread-<id>-<time>.<fmt>``."""
    safe = "".join(ch for ch in thread_id if ch.isalnum() or ch in "-_")[:40] or "thread"
    return home / "exports" / f"thread-{safe}-{time.strftime('%Y%m%d-%H%M%S')}.{fmt}"


def write_export(text: str, path: Path) -> Path:
    """Write ``text`` to ``path`` atomically (a partial file is never left behind)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.part")
    try:
        partial.write_text(text, encoding="utf-8")
        partial.replace(path)
    finally:
        partial.unlink(missing_ok=True)
    return path


def _stamp() -> str:
    return time.strftime("%Y-%m-%d %H:%M")


def to_json(title: str, thread_id: str, history: list[dict[str, Any]]) -> str:
    messages = []
    for entry in history:
        if entry["role"] == "tool":
            messages.append({"role": "tool", "name": entry.get("name"), "args": entry.get("args") or {},
                             "result": entry.get("result")})
        else:
            messages.append({"role": entry["role"], "content": entry["content"]})
    return json.dumps({"format": FORMAT_NAME, "version": FORMAT_VERSION, "title": title, "thread_id": thread_id,
                       "exported": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "messages": messages},
                      ensure_ascii=False, indent=2) + "\n"


# Markdown -------------------------------------------------------------------------------------------

def to_markdown(title: str, thread_id: str, history: list[dict[str, Any]]) -> str:
    parts = [f"# {_one_line(title)}", f"*Exported from Taller on {_stamp()} · thread `{thread_id}`*"]
    for entry in history:
        if entry["role"] == "user":
            parts += ["## You", entry["content"]]
        elif entry["role"] == "assistant":
            parts += ["## Taller", entry["content"]]
        else:
            parts += _tool_markdown(entry)
    return "\n\n".join(parts) + "\n"


def _tool_markdown(entry: dict[str, Any]) -> list[str]:
    name = entry.get("name") or "tool"
    parts = [f"### Tool: `{name}`", "```json\n" + json.dumps(entry.get("args") or {}, ensure_ascii=False, indent=2) + "\n```"]
    result = entry.get("result")
    if not isinstance(result, dict):
        return parts + ["```\n" + str(result)[:5000] + "\n```"]
    if result.get("error"):
        parts.append(f"**Error:** {_one_line(str(result['error']))}")
    elif result.get("summary"):
        parts.append(f"**Result:** {result['summary']}")
    if result.get("sql"):
        parts.append("```sql\n" + str(result["sql"]) + "\n```")
    table = markdown_table(result.get("columns"), result.get("rows"))
    if table:
        parts.append(table)
    summary = _one_line(str(result.get("summary") or "")).replace("[", "(").replace("]", ")")
    for index, path in enumerate(result.get("images") or []):
        caption = (summary[:80] or name) + (f" ({index + 1})" if len(result["images"]) > 1 else "")
        target = str(path)
        parts.append(f"![{caption}](<{target}>)" if any(ch in target for ch in " ()") else f"![{caption}]({target})")
    if result.get("csv"):
        parts.append(f"All rows: `{result['csv']}`")
    return parts


def markdown_table(columns: Any, rows: Any, limit: int = TABLE_ROWS) -> str:
    """A Markdown table of ``columns`` × ``rows`` (cells escaped and cut), "" when it is not one."""
    if not isinstance(columns, list) or not columns or not isinstance(rows, list):
        return ""

    def cell(value: Any) -> str:
        text = "" if value is None else str(value)
        text = " ".join(text.split()).replace("\\", "\\\\").replace("|", "\\|")
        return text if len(text) <= CELL_CHARS else text[: CELL_CHARS - 1] + "…"

    lines = ["| " + " | ".join(cell(column) for column in columns) + " |",
             "|" + "|".join("---" for _ in columns) + "|"]
    for row in rows[:limit]:
        values = list(row) if isinstance(row, (list, tuple)) else [row]
        values = (values + [""] * len(columns))[: len(columns)]
        lines.append("| " + " | ".join(cell(value) for value in values) + " |")
    if len(rows) > limit:
        lines.append(f"\n*… {len(rows) - limit} more rows*")
    return "\n".join(lines)


def _one_line(text: str) -> str:
    return " ".join(str(text).split())


# Python script and notebook ---------------------------------------------------------------------------

SETUP = '''from taller.tools import run_tool


def show(result):
    """Print what the chat showed of a result: its summary, a table, the files it wrote."""
    if not isinstance(result, dict):
        print(result)
        return
    print(result.get("error") or result.get("summary") or "done")
    columns, rows = result.get("columns"), result.get("rows")
    if result.get("table"):
        print(result["table"])
    elif columns and isinstance(rows, list):  # a table as the chat showed it, the first 20 rows
        print("| " + " | ".join(str(column) for column in columns) + " |")
        print("|" + "---|" * len(columns))
        for row in rows[:20]:
            print("| " + " | ".join("" if value is None else str(value) for value in row) + " |")
    for path in result.get("images") or []:
        print("image:", path)'''


def _calls(history: list[dict[str, Any]]) -> list[tuple[str, Any]]:
    """The thread as ("user" | "assistant", text) and ("code", python source) steps, in order."""
    steps: list[tuple[str, Any]] = []
    for entry in history:
        if entry["role"] == "tool":
            steps.append(("code", _call_code(entry)))
        else:
            steps.append((entry["role"], entry["content"]))
    return steps


def _call_code(entry: dict[str, Any]) -> str:
    """Python that repeats one tool call through Taller's API (see the module docstring)."""
    name = str(entry.get("name") or "")
    args = entry.get("args") if isinstance(entry.get("args"), dict) else {}
    result = entry.get("result") if isinstance(entry.get("result"), dict) else {}
    if name == "query_database" and result.get("sql"):
        database = args.get("database")
        return "\n".join([
            f"# query_database answered {_comment_text(str(args.get('question') or ''), 60)!s} with this SQL;",
            "# run_sql checks it again (one read-only query) before it runs.",
            "from taller.knowledge.sql import run_sql",
            "",
            f"sql = {_literal(str(result['sql']))}",
            f"result = run_sql(sql, database={database!r})",
            "show(result)",
        ])
    if name == "train_model" and args.get("model"):
        return _training_code(str(args["model"]), args, result)
    return "\n".join([f"result = run_tool({name!r}, {_python(args)})", "show(result)"])


def _training_code(model: str, args: dict[str, Any], result: dict[str, Any]) -> str:
    """The training with its run's configuration (``config.json``), in the foreground."""
    from taller.trainers import MODELS

    spec = MODELS.get(model)
    if spec is None:
        return "\n".join([f"result = run_tool('train_model', {_python(args)})", "show(result)"])
    config = _run_config(result.get("path"))
    lines = [f"# Trains {model} here, in the foreground, as the chat's run {result.get('run_id') or ''} did in the background."]
    if config is not None:
        lines += ["# Its configuration, from the run's config.json:", f"config = {_python(config)}"]
    else:
        lines += ["# (the run's config.json was not readable when this was exported: the model's defaults)",
                  f"config = {_python({'epochs': args['epochs']} if args.get('epochs') else {})}"]
    lines += [
        f"from {spec.module} import Config, train",
        "",
        "known = {name: value for name, value in config.items() if name in Config.__dataclass_fields__}",
        "result = train(Config(**known))",
        "show(result)",
    ]
    return "\n".join(lines)


def _run_config(path: Any) -> dict[str, Any] | None:
    if not path:
        return None
    try:
        config = json.loads((Path(str(path)) / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return config if isinstance(config, dict) else None


def _python(value: Any) -> str:
    """A Python literal of a JSON value (JSON's true/null are not Python)."""
    return pprint.pformat(value, width=88, sort_dicts=False)


def _literal(text: str) -> str:
    """A Python string literal: triple-quoted when that reads as the text itself, else repr."""
    if '"""' not in text and "\\" not in text and not text.endswith('"') and "\n" in text:
        return '"""' + text + '"""'
    return repr(text)


def _comment_text(text: str, width: int) -> str:
    text = _one_line(text)
    return repr(text if len(text) <= width else text[: width - 1] + "…")


def _comment(prefix: str, text: str) -> str:
    lines: list[str] = []
    for paragraph in str(text).splitlines() or [""]:
        lines += textwrap.wrap(paragraph, 84) or [""]
    first, *rest = lines or [""]
    return "\n".join([f"# {prefix}: {first}".rstrip()] + [f"#   {line}".rstrip() for line in rest])


def to_script(title: str, thread_id: str, history: list[dict[str, Any]]) -> str:
    header = (f'"""{_one_line(title).replace(chr(92), "/").replace(chr(34) * 3, "")[:100]}: a Taller chat as a script '
              f'(thread {thread_id}, exported {_stamp()}).\n\n'
              "It repeats the chat's tool calls through Taller's Python API with the same arguments;\n"
              "your messages and Taller's answers are the comments. Run it with the Python that has\n"
              "Taller installed (scripts/taller's .venv): python this_file.py\n"
              '"""\n')
    blocks = [header, SETUP]
    for kind, value in _calls(history):
        if kind == "code":
            blocks.append(value)
        else:
            blocks.append(_comment("You" if kind == "user" else "Taller", value))
    return "\n\n".join(blocks) + "\n"


def to_notebook(title: str, thread_id: str, history: list[dict[str, Any]]) -> str:
    cells = [_cell("markdown", f"# {_one_line(title)}\n\nA Taller chat as a notebook (thread `{thread_id}`, "
                               f"exported {_stamp()}): each code cell repeats one of the chat's tool calls "
                               "through Taller's Python API with the same arguments."),
             _cell("code", SETUP)]
    for kind, value in _calls(history):
        if kind == "code":
            cells.append(_cell("code", value))
        else:
            cells.append(_cell("markdown", f"**{'You' if kind == 'user' else 'Taller'}:** {value}"))
    notebook = {"cells": cells,
                "metadata": {"kernelspec": {"display_name": "Python 3", "language": "python", "name": "python3"},
                             "language_info": {"name": "python"}},
                "nbformat": 4, "nbformat_minor": 5}
    return json.dumps(notebook, ensure_ascii=False, indent=1) + "\n"


def _cell(kind: str, source: str) -> dict[str, Any]:
    cell: dict[str, Any] = {"cell_type": kind, "id": uuid.uuid4().hex[:8], "metadata": {},
                            "source": source.splitlines(keepends=True)}
    if kind == "code":
        cell.update(execution_count=None, outputs=[])
    return cell


# --- import --------------------------------------------------------------------------------------------

def load_export(text: str, source: str = "the file") -> dict[str, Any]:
    """Parse and validate a JSON export; :class:`ExportError` names ``source`` and what is wrong."""
    try:
        data = json.loads(text)
    except ValueError as exc:
        where = f" (line {exc.lineno}, column {exc.colno})" if hasattr(exc, "lineno") else ""
        raise ExportError(f"{source}: not JSON{where}") from None
    validate(data, source)
    return data


def validate(data: Any, source: str = "the file") -> None:
    """Check a parsed export: the format, the version, and every message's shape."""
    if not isinstance(data, dict) or data.get("format") != FORMAT_NAME:
        raise ExportError(f"{source}: not a Taller thread export (\"format\" must be \"{FORMAT_NAME}\")")
    version = data.get("version")
    if not isinstance(version, int) or isinstance(version, bool):
        raise ExportError(f"{source}: \"version\" must be an integer")
    if version > FORMAT_VERSION:
        raise ExportError(f"{source}: export version {version} is newer than the {FORMAT_VERSION} this Taller reads; "
                          "upgrade Taller")
    if "title" in data and not isinstance(data["title"], str):
        raise ExportError(f"{source}: \"title\" must be a string")
    messages = data.get("messages")
    if not isinstance(messages, list) or not messages:
        raise ExportError(f"{source}: \"messages\" must be a non-empty list")
    if len(messages) > MAX_IMPORT_MESSAGES:
        raise ExportError(f"{source}: {len(messages)} messages; the limit is {MAX_IMPORT_MESSAGES}")
    for index, message in enumerate(messages):
        where = f"{source}: messages[{index}]"
        if not isinstance(message, dict):
            raise ExportError(f"{where} must be an object")
        role = message.get("role")
        if role not in ROLES:
            raise ExportError(f"{where}: \"role\" must be one of {', '.join(ROLES)}")
        if index == 0 and role != "user":
            raise ExportError(f"{where}: a thread starts with a user message")
        if role == "tool":
            if not isinstance(message.get("name"), str) or not message["name"]:
                raise ExportError(f"{where}: a tool message needs its tool's \"name\"")
            if not isinstance(message.get("args", {}), dict):
                raise ExportError(f"{where}: \"args\" must be an object")
            try:
                size = len(json.dumps(message.get("result"), ensure_ascii=False))
            except (TypeError, ValueError):
                raise ExportError(f"{where}: \"result\" is not JSON data") from None
            if size > MAX_IMPORT_CHARS:
                raise ExportError(f"{where}: the result has {size} characters; the limit is {MAX_IMPORT_CHARS}")
        else:
            content = message.get("content")
            if not isinstance(content, str):
                raise ExportError(f"{where}: \"content\" must be a string")
            if len(content) > MAX_IMPORT_CHARS:
                raise ExportError(f"{where}: {len(content)} characters; the limit is {MAX_IMPORT_CHARS}")


def import_thread(agent: "Agent", data: dict[str, Any] | str) -> str:
    """Write a JSON export (parsed, or its text) as a new thread; returns the new thread's id."""
    from langchain_core.messages import AIMessage, HumanMessage, ToolMessage

    if isinstance(data, str):
        data = load_export(data)
    else:
        validate(data)
    turns: list[list[Any]] = []
    for message in data["messages"]:
        role = message["role"]
        if role == "user":
            turns.append([HumanMessage(content=message["content"])])
        elif role == "assistant":
            turns[-1].append(AIMessage(content=message["content"]))
        else:
            call_id = f"call_{uuid.uuid4().hex[:12]}"
            result = message.get("result")
            content = result if isinstance(result, str) else json.dumps(result, ensure_ascii=False, default=str)
            turns[-1] += [AIMessage(content="", tool_calls=[{"name": message["name"], "args": message.get("args") or {},
                                                             "id": call_id}]),
                          ToolMessage(content=content[:MAX_IMPORT_CHARS], tool_call_id=call_id, name=message["name"])]
    title = data.get("title") or None
    return agent.write_thread(turns, title=title)
