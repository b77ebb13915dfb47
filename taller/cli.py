"""The ``taller`` command line.

Sub-commands import what they need when they run, so ``taller --help`` answers at once.

    taller ask "…"                 answer once, streaming to stdout
    taller ask --plan "…"          print the tool call the agent would make, as JSON
    taller tool NAME --args JSON   run one tool directly and print its JSON result
    taller train MODEL             train a workshop model in the foreground, with progress
    taller chat | serve            the terminal UI | the local websocket server
    taller doctor | config         check the installation | print the effective settings
    taller model install           install the embedded LLM (GGUF) for offline use
    taller export THREAD --format md|json|py|ipynb [-o FILE]   a thread as a file
    taller import FILE             a JSON export back as a new thread
    taller search QUERY            search the messages of every thread
"""

from __future__ import annotations

import argparse
import json
import os
import sys


def _apply_overrides(args: argparse.Namespace) -> None:
    """``--backend``/``--model`` override the config for this process only."""
    if getattr(args, "backend", None):
        os.environ["TALLER_BACKEND"] = args.backend
    if getattr(args, "model", None):
        if args.model.endswith(".gguf"):
            os.environ["TALLER_EMBEDDED_MODEL_PATH"] = args.model
        elif (getattr(args, "backend", None) or os.environ.get("TALLER_BACKEND")) == "openai":
            os.environ["TALLER_OPENAI_MODEL"] = args.model
        else:
            os.environ["TALLER_OLLAMA_MODEL"] = args.model
    from taller.config import get_settings

    get_settings(reload=True)


def _print_json(value) -> None:
    from taller.tools.base import to_json

    print(json.dumps(json.loads(to_json(value)), ensure_ascii=False, indent=2))


# --- sub-commands ---------------------------------------------------------------------------------

def cmd_ask(args: argparse.Namespace) -> int:
    _apply_overrides(args)
    text = " ".join(args.text).strip()
    if not text:
        print("taller ask: give the request as an argument, e.g. taller ask \"train the autoencoder\"", file=sys.stderr)
        return 2
    if args.server:
        from taller.client import ask_sync

        def show(event: dict) -> None:
            _render_event(event, args)

        from taller.client import ClientError

        # Over the server, confirmation is asked the same way as locally (or --yes approves).
        approve = True if args.yes else (lambda event: _confirm(event.get("message", "Approve?")))
        try:
            final = ask_sync(args.server, args.token, text, thread_id=args.thread, on_event=show, approve=approve)
        except ClientError as exc:
            print(f"taller: {exc}", file=sys.stderr)
            return 1
        print()
        return 0 if final and final.get("type") == "final" else 1
    from taller.agent.session import Agent
    from taller.errors import TallerError

    try:
        agent = Agent()
    except TallerError as exc:  # a thread database that is newer, corrupt or locked: say which
        print(f"taller: {exc}", file=sys.stderr)
        return 1
    if args.plan:
        try:
            print(json.dumps(agent.plan(text), ensure_ascii=False))
        except Exception as exc:  # no LLM available, for instance
            print(f"taller: {exc}", file=sys.stderr)
            return 1
        return 0
    if args.yes:
        os.environ["TALLER_AUTO_APPROVE"] = "1"
    from taller.trainers.runs import detached_runs

    thread = args.thread
    events = agent.run(text, thread_id=thread)
    # A training started here must outlive this command: it trains in a detached process.
    with detached_runs():
        while True:
            last = None
            for event in events:
                _render_event(event, args)
                last = event
            if last and last["type"] == "interrupt":
                approve = _confirm(last.get("message", "Approve?"))
                events = agent.resume(last["thread_id"], approve)
                continue
            print()
            return 0 if last and last["type"] == "final" else 1


def _confirm(question: str) -> bool:
    if not sys.stdin.isatty():
        print(f"\n{question} [no terminal to confirm: use --yes to approve]", file=sys.stderr)
        return False
    answer = input(f"\n{question} [y/N] ").strip().lower()
    return answer in ("y", "yes", "s", "si", "sí")


_progress_shown: dict[str, bool] = {}


def _render_event(event: dict, args: argparse.Namespace) -> None:
    kind = event.get("type")
    if getattr(args, "json", False):
        print(json.dumps(event, ensure_ascii=False, default=str), flush=True)
        return
    if kind == "token":
        print(event.get("text", ""), end="", flush=True)
    elif kind == "final":
        from taller.agent.graph import result_details

        print(result_details(event.get("result")), end="", flush=True)
    elif kind == "tool_start":
        print(f"[{event['tool']}({json.dumps(event.get('args', {}), ensure_ascii=False)})]", file=sys.stderr, flush=True)
    elif kind == "tool_end":
        if _progress_shown.pop("line", False):
            print(file=sys.stderr)  # end the progress line that \r kept rewriting
        result = event.get("result") or {}
        status = "error" if result.get("error") else "done"
        print(f"[{event['tool']} {status}]", file=sys.stderr, flush=True)
    elif kind == "progress":
        _progress_shown["line"] = True
        print(f"\r[{_progress_line(event)}]\x1b[K", end="", file=sys.stderr, flush=True)
    elif kind == "image":
        print(f"[image: {event.get('path')}]", file=sys.stderr, flush=True)
    elif kind == "error":
        print(f"taller: {event.get('message')}", file=sys.stderr, flush=True)


def _progress_line(event: dict) -> str:
    parts = []
    if event.get("epoch") is None and event.get("message"):
        # Tool progress says what it is doing ("video 3 of 40: <title>", "embedded 64/80 chunks").
        parts.append(str(event["message"]))
        if event.get("eta_s") is not None:
            parts.append(f"ETA {int(event['eta_s'])}s")
        return ", ".join(parts)
    if event.get("epoch") is not None:
        parts.append(f"epoch {event['epoch']}/{event.get('epochs', '?')}")
    if event.get("step") is not None and event.get("total"):
        parts.append(f"step {event['step']}/{event['total']}")
    if event.get("loss") is not None:
        parts.append(f"loss {event['loss']:.4f}")
    if event.get("metric") is not None:
        parts.append(f"{event.get('metric_name') or 'metric'} {event['metric']:.4f}")
    if event.get("eta_s") is not None:
        parts.append(f"ETA {int(event['eta_s'])}s")
    return ", ".join(parts) or str(event.get("message", ""))


def cmd_tool(args: argparse.Namespace) -> int:
    _apply_overrides(args)
    from taller.tools import TOOL_NAMES, run_tool

    if args.name not in TOOL_NAMES:
        print(f"taller tool: unknown tool {args.name!r}; available: {', '.join(TOOL_NAMES)}", file=sys.stderr)
        return 2
    try:
        tool_args = json.loads(args.args) if args.args else {}
    except json.JSONDecodeError as exc:
        print(f"taller tool: --args is not valid JSON: {exc}", file=sys.stderr)
        return 2
    from taller.progress import reporting_to

    def show(event: dict) -> None:  # progress on stderr; stdout stays the JSON result
        if event.get("type", "progress") == "progress":
            _render_event(event, argparse.Namespace())

    from taller.trainers.runs import detached_runs

    # A training started here must outlive this command: it trains in a detached process.
    with reporting_to(show), detached_runs():
        out = run_tool(args.name, tool_args)
    if _progress_shown.pop("line", False):
        print(file=sys.stderr)
    _print_json(out)
    return 1 if "error" in out else 0


def cmd_train(args: argparse.Namespace) -> int:
    import importlib
    import dataclasses
    import threading

    from taller.progress import CancelledError, bus
    from taller.trainers import TRAINERS, lesson_names

    if args.epochs is not None and args.epochs < 1:
        print("taller train: --epochs must be at least 1", file=sys.stderr)
        return 2
    module = importlib.import_module(TRAINERS[args.model])
    config = module.Config()
    if args.epochs is not None:
        config = dataclasses.replace(config, epochs=args.epochs)
    if args.dry_run and hasattr(config, "dry_run"):
        config = dataclasses.replace(config, dry_run=True)
    if getattr(args, "lesson", False):
        if not hasattr(config, "lesson"):
            print(f"taller train: {args.model} has no lesson; lessons: {', '.join(lesson_names())}", file=sys.stderr)
            return 2
        config = dataclasses.replace(config, lesson=True)
    unsubscribe = bus.subscribe(lambda event: print(f"\r{_progress_line(event)}   ", end="", file=sys.stderr, flush=True))
    cancel = threading.Event()
    try:
        metrics = module.train(config, cancel_event=cancel)
    except KeyboardInterrupt:
        cancel.set()
        print("\ntaller train: cancelled", file=sys.stderr)
        return 130
    except CancelledError:
        print("\ntaller train: cancelled", file=sys.stderr)
        return 130
    except Exception as exc:
        print(f"\ntaller train: {exc}", file=sys.stderr)
        return 1
    finally:
        unsubscribe()
    print()
    _print_json(metrics)
    return 0


def cmd_doctor(args: argparse.Namespace) -> int:
    from taller.doctor import run_checks

    checks = run_checks()
    if args.json:
        print(json.dumps(checks, indent=2, default=str))
    else:
        width = max(len(c["name"]) for c in checks)
        for c in checks:
            mark = {"ok": "ok  ", "warn": "WARN", "missing": "MISS"}.get(c["status"], c["status"])
            print(f"{mark}  {c['name']:<{width}}  {c['detail']}")
            if c["status"] != "ok" and c.get("fix"):
                print(f"      {'':<{width}}  → {c['fix']}")
    return 0


def cmd_config(args: argparse.Namespace) -> int:
    from taller.config import ConfigError, get_settings, save_setting

    if args.set:
        name, _, value = args.set.partition("=")
        try:
            path = save_setting(name.strip(), value.strip())
        except ConfigError as exc:
            print(f"taller config: {exc}", file=sys.stderr)
            return 2
        print(f"saved {name.strip()} in {path}")
        return 0
    settings = get_settings()
    values = settings.as_dict()
    if args.json:
        print(json.dumps(values, indent=2, default=str))
        return 0
    width = max(len(k) for k in values)
    for key, value in values.items():
        print(f"{key:<{width}}  {json.dumps(value, default=str, ensure_ascii=False):<40}  ({settings.sources.get(key, 'default')})")
    print(f"\nconfig file: {settings.config_file}")
    return 0


def cmd_chat(args: argparse.Namespace) -> int:
    _apply_overrides(args)
    from taller.tui import run_chat

    run_chat(thread_id=args.thread, backend=args.backend, model=args.model)
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    _apply_overrides(args)
    from taller.server import serve

    serve(host=args.host, port=args.port, token=args.token)
    return 0


def cmd_model(args: argparse.Namespace) -> int:
    from taller.llm.install import DEFAULT_EMBEDDED, EMBEDDED_MODELS, install, installed_model_path

    if args.action == "ensure":
        return _ensure_llm()
    if args.action == "list":
        current = installed_model_path()
        for name, spec in EMBEDDED_MODELS.items():
            mark = "*" if name == DEFAULT_EMBEDDED else " "
            print(f"{mark} {name:<14} {spec.description}")
        print(f"\ninstalled: {current or 'none'}")
        return 0
    try:
        install(args.name or DEFAULT_EMBEDDED)
    except Exception as exc:
        print(f"taller model install: {exc}", file=sys.stderr)
        return 1
    return 0


def _thread_agent():
    """An agent for thread files and search: no LLM is resolved (none is needed)."""
    from taller.agent.session import Agent

    return Agent()


def cmd_export(args: argparse.Namespace) -> int:
    from pathlib import Path

    from taller.agent.export import ExportError, default_path, export_thread, write_export
    from taller.config import get_settings

    agent = _thread_agent()
    try:
        text = export_thread(agent, args.thread, args.format)
        path = Path(args.output).expanduser() if args.output else default_path(get_settings().home, args.thread, args.format)
        write_export(text, path)
    except ExportError as exc:
        print(f"taller export: {exc}", file=sys.stderr)
        return 1
    except OSError as exc:
        print(f"taller export: cannot write {exc.filename or args.output}: {exc.strerror or exc}", file=sys.stderr)
        return 1
    finally:
        agent.close()
    print(path)
    return 0


def cmd_import(args: argparse.Namespace) -> int:
    from pathlib import Path

    from taller.agent.export import ExportError, import_thread, load_export

    path = Path(args.file).expanduser()
    try:
        if path.stat().st_size > 64 * 1024 * 1024:
            print(f"taller import: {path} is larger than 64 MiB; a thread export is far smaller", file=sys.stderr)
            return 1
        data = load_export(path.read_text(encoding="utf-8"), str(path))
    except UnicodeDecodeError:
        print(f"taller import: {path} is not UTF-8 text", file=sys.stderr)
        return 1
    except OSError as exc:
        print(f"taller import: cannot read {path}: {exc.strerror or exc}", file=sys.stderr)
        return 1
    except ExportError as exc:
        print(f"taller import: {exc}", file=sys.stderr)
        return 1
    agent = _thread_agent()
    try:
        thread_id = import_thread(agent, data)
    finally:
        agent.close()
    print(thread_id)
    return 0


def cmd_search(args: argparse.Namespace) -> int:
    query = " ".join(args.query).strip()
    agent = _thread_agent()
    try:
        hits = agent.search(query, limit=args.limit)
    finally:
        agent.close()
    if args.json:
        _print_json(hits)
        return 0
    if not hits:
        print(f"no messages match {query[:80]!r}", file=sys.stderr)
        return 1
    for hit in hits:
        print(f"{hit['thread_id']}  #{hit['message_index']:<3} {hit['role']:<9} {hit['title'][:40]}: {hit['snippet']}")
    return 0


def _ensure_llm() -> int:
    """Make sure some LLM can answer: Ollama with the model, or the embedded model installed."""
    import importlib.util

    from taller.llm import ollama_has, ollama_status
    from taller.llm.install import install, installed_model_path
    from taller.config import get_settings

    settings = get_settings()
    if settings.backend == "openai" or settings.openai_url:
        # A configured server comes first: never build llama.cpp (15 minutes) for a machine
        # whose team serves the model.
        from taller.errors import LLMUnavailableError
        from taller.llm.openai_compatible import openai_chat_model

        try:
            model = openai_chat_model(settings, probe_timeout=2.0)
        except LLMUnavailableError as exc:
            print(f"taller: {exc}", file=sys.stderr)
            if settings.backend == "openai":
                return 1
        else:
            print(f"taller: using the OpenAI-compatible server at {settings.openai_url} "
                  f"({getattr(model, 'model_name', '') or settings.openai_model or 'its first model'})",
                  file=sys.stderr)
            return 0
    status = ollama_status(settings.ollama_host)
    if status["reachable"] and ollama_has(status["models"], settings.ollama_model):
        print(f"taller: using Ollama at {settings.ollama_host} ({settings.ollama_model})", file=sys.stderr)
        return 0
    if status["reachable"]:
        print(f"taller: Ollama answers but has no {settings.ollama_model}: `ollama pull {settings.ollama_model}`; "
              "using the embedded model meanwhile", file=sys.stderr)
    if importlib.util.find_spec("llama_cpp") is None:
        return 3
    if settings.embedded_model_path or installed_model_path(settings) is not None:
        return 0
    try:
        install(log=lambda line: print(f"taller: {line}", file=sys.stderr))
    except Exception as exc:
        print(f"taller: could not install the embedded model: {exc}", file=sys.stderr)
        return 1
    return 0


# --- parser ---------------------------------------------------------------------------------------

def build_parser() -> argparse.ArgumentParser:
    from taller.trainers import MODELS  # the model registry: light, no torch

    parser = argparse.ArgumentParser(prog="taller", description="Taller: a local assistant over a deep-learning workshop.")
    parser.add_argument("--version", action="version", version="taller 0.1.0")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    def llm_flags(p: argparse.ArgumentParser) -> None:
        p.add_argument("--backend", choices=["auto", "ollama", "embedded", "openai", "fake"],
                       help="LLM backend (default: config)")
        p.add_argument("--model", help="Ollama model tag, a .gguf path for the embedded backend, or the "
                                       "served model's name for the openai backend")

    p = sub.add_parser("ask", help="answer one request, streaming to stdout")
    p.add_argument("text", nargs="*", help="the request")
    p.add_argument("--plan", action="store_true", help="print the tool call as JSON without running it")
    p.add_argument("--thread", help="conversation thread id to continue")
    p.add_argument("--yes", action="store_true", help="approve costly actions (training) without asking")
    p.add_argument("--json", action="store_true", help="print every event as a JSON line")
    p.add_argument("--server", help="ask a running `taller serve` (ws://127.0.0.1:8765) instead")
    p.add_argument("--token", help="the server's token (default: read from the data folder)")
    llm_flags(p)
    p.set_defaults(func=cmd_ask)

    p = sub.add_parser("tool", help="run one tool directly and print its JSON result")
    p.add_argument("name", help="tool name, e.g. query_database")
    p.add_argument("--args", default="{}", help="the tool's arguments as a JSON object")
    llm_flags(p)
    p.set_defaults(func=cmd_tool)

    p = sub.add_parser("train", help="train a workshop model in the foreground")
    p.add_argument("model", choices=list(MODELS))
    p.add_argument("--epochs", type=int)
    p.add_argument("--dry-run", action="store_true", help="a few batches only")
    p.add_argument("--lesson", action="store_true",
                   help="run the model's lesson (a few short trainings, a plot and what they show) instead")
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("chat", help="open the terminal chat")
    p.add_argument("--thread", help="thread id to resume")
    llm_flags(p)
    p.set_defaults(func=cmd_chat)

    p = sub.add_parser("serve", help="run the local websocket server and web page")
    p.add_argument("--host", help="bind address (default 127.0.0.1)")
    p.add_argument("--port", type=int, help="port (default 8765; 0 = any free port)")
    p.add_argument("--token", help="access token (default: generated into the data folder)")
    llm_flags(p)
    p.set_defaults(func=cmd_serve)

    p = sub.add_parser("doctor", help="check each component and say how to fix what is missing")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_doctor)

    p = sub.add_parser("config", help="print the effective settings (or --set NAME=VALUE)")
    p.add_argument("--json", action="store_true")
    p.add_argument("--set", metavar="NAME=VALUE", help="save one setting in config.toml")
    p.set_defaults(func=cmd_config)

    p = sub.add_parser("model", help="the embedded LLM: list or install")
    p.add_argument("action", choices=["list", "install", "ensure"],
                   help="ensure: use Ollama if it answers, else install the embedded model (exit 3: llama-cpp-python missing)")
    p.add_argument("name", nargs="?", default=None, help="qwen2.5-1.5b (default) or qwen2.5-0.5b (smaller, weaker)")
    p.set_defaults(func=cmd_model)

    p = sub.add_parser("export", help="write a thread as Markdown, JSON, a Python script or a notebook")
    p.add_argument("thread", help="the thread id (see the chat's thread list or `taller search`)")
    p.add_argument("--format", "-f", choices=["md", "json", "py", "ipynb"], default="md")
    p.add_argument("-o", "--output", help="the file to write (default: $TALLER_HOME/exports/…)")
    p.set_defaults(func=cmd_export)

    p = sub.add_parser("import", help="add a thread from a JSON export (prints the new thread id)")
    p.add_argument("file", help="a file written by `taller export THREAD --format json`")
    p.set_defaults(func=cmd_import)

    p = sub.add_parser("search", help="search the messages, tool calls and SQL of every thread")
    p.add_argument("query", nargs="+", help="words to find (all of them, as typed)")
    p.add_argument("--limit", type=int, default=20)
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_search)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not args.command:
        parser.print_help()
        return 0
    try:
        return args.func(args) or 0
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
