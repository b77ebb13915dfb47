"""Slash commands of the chat (``/train vae 2``, ``/runs``, ``/rename Title``): plain Python.

A line that starts with ``/`` never reaches the LLM. :func:`parse` splits it like a shell would,
:data:`COMMANDS` maps each name to what it does, and :func:`help_table` writes the help screen's
table from the same entries, so the help cannot list a command the interpreter does not know.

The commands act through a :class:`CommandHost` (the Textual App, or a recording fake in tests):
this module imports no interface framework. Commands that run a tool do it through
:func:`run_tool`, which applies the agent's own confirmation rule
(:func:`taller.tools.needs_confirmation`, worded by :func:`taller.agent.graph.confirmation_text`): a
``/train`` asks exactly when the agent's ``train_model`` call would.
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass
from typing import Any, Callable, Protocol

from taller.ui.formatting import escape


class CommandHost(Protocol):
    """What a command may do to the chat; :class:`taller.tui.TallerApp` is the real one."""

    settings: Any

    @property
    def running(self) -> bool: ...  # an answer is streaming

    def notice(self, markup: str) -> None: ...
    def action_help(self) -> None: ...
    def action_clear(self) -> None: ...
    def action_new_thread(self) -> None: ...
    def show_threads(self) -> None: ...
    def rename_current_thread(self, title: str | None) -> None: ...
    def delete_current_thread(self) -> None: ...
    def action_runs(self) -> None: ...
    def cancel_run(self, run_id: str) -> bool: ...
    def action_cancel(self) -> None: ...
    def attach(self, path: str) -> None: ...
    def action_attach(self) -> None: ...
    def run_tool_card(self, tool: str, args: dict[str, Any]) -> None: ...
    def confirm_tool(self, tool: str, args: dict[str, Any], message: str,
                     on_answer: Callable[[bool | None], None]) -> None: ...
    def action_copy(self) -> None: ...
    def action_regenerate(self) -> None: ...
    def action_edit_selected(self) -> None: ...
    def action_branch(self, step: int) -> None: ...
    def action_search(self, query: str = "") -> None: ...
    def action_export(self, fmt: str | None = None) -> None: ...
    def use_suggestion(self, number: int) -> None: ...
    def exit(self) -> None: ...


class CommandError(ValueError):
    """A command used wrongly; the message (markup) tells the user how to use it."""


@dataclass(frozen=True)
class CommandLine:
    """A parsed ``/name args…`` line."""

    name: str
    args: tuple[str, ...] = ()


def parse(line: str) -> CommandLine | None:
    """``/train vae "2"`` → ``CommandLine("train", ("vae", "2"))``; None for a bare ``/``.

    Quotes group words as in a shell; a line with an unbalanced quote is split on spaces
    rather than refused (``/rename it's done`` still renames).
    """
    text = line[1:] if line.startswith("/") else line
    try:
        parts = shlex.split(text)
    except ValueError:
        parts = text.split()
    if not parts:
        return None
    return CommandLine(parts[0].lower(), tuple(parts[1:]))


# --- the confirmation rule, shared with the agent ---------------------------------------------------

def confirmation_needed(tool: str, args: dict[str, Any], settings: Any) -> str | None:
    """The question to ask before running ``tool`` (as the agent asks it), or None to run at once."""
    from taller.tools import needs_confirmation

    if not needs_confirmation(tool, settings, args):
        return None
    # Imported here: the agent graph pulls in LangGraph, which the chat loads in a worker.
    from taller.agent.graph import confirmation_text

    return confirmation_text(tool, args)


def run_tool(host: CommandHost, tool: str, args: dict[str, Any], declined: str) -> None:
    """Run one tool for a command, after the user's yes when the agent would ask for one."""
    message = confirmation_needed(tool, args, host.settings)
    if message is None:
        host.run_tool_card(tool, args)
        return

    def answer(approve: bool | None) -> None:
        if approve:
            host.run_tool_card(tool, args)
        else:
            host.notice(declined)

    host.confirm_tool(tool, args, message, answer)


# --- the commands -----------------------------------------------------------------------------------

def train_arguments(args: tuple[str, ...]) -> dict[str, Any]:
    """``MODEL [EPOCHS]`` (or ``epochs=N``) → the ``train_model`` tool's arguments."""
    if not args:
        from taller.trainers import TRAINERS

        # Escaped: "[EPOCHS]" would otherwise be read as a markup tag and vanish from the line.
        raise CommandError(escape("Usage: /train MODEL [EPOCHS], models: " + ", ".join(TRAINERS)))
    tool_args: dict[str, Any] = {"model": args[0]}
    for extra in args[1:]:
        value = extra.split("=", 1)[-1]
        if not value.isdigit():
            raise CommandError(f"Epochs must be a whole number, got {escape(extra)}.")
        tool_args["epochs"] = int(value)
    return tool_args


def _train(host: CommandHost, args: tuple[str, ...]) -> None:
    run_tool(host, "train_model", train_arguments(args), declined="OK, not training.")


def _lesson(host: CommandHost, args: tuple[str, ...]) -> None:
    from taller.trainers import lesson_names

    if len(args) != 1 or args[0] not in lesson_names():
        raise CommandError(escape("Usage: /lesson MODEL, models: " + ", ".join(lesson_names())))
    run_tool(host, "show_lesson", {"model": args[0]}, declined="OK, not running the lesson.")


def _models(host: CommandHost, args: tuple[str, ...]) -> None:
    run_tool(host, "list_models", {}, declined="OK.")


def _cancel(host: CommandHost, args: tuple[str, ...]) -> None:
    if args:
        host.cancel_run(args[0])
    elif host.running:
        host.action_cancel()
    else:
        raise CommandError("Usage: /cancel RUN_ID (see /runs).")


def _attach(host: CommandHost, args: tuple[str, ...]) -> None:
    if args:
        host.attach(" ".join(args))
    else:
        host.action_attach()


EXPORT_FORMATS = ("md", "json", "py", "ipynb")


def _export(host: CommandHost, args: tuple[str, ...]) -> None:
    if not args:
        host.action_export()
        return
    fmt = args[0].lower().lstrip(".")
    if fmt not in EXPORT_FORMATS or len(args) > 1:
        raise CommandError("Usage: /export [md|json|py|ipynb] (no format: asks).")
    host.action_export(fmt)


def _branch(host: CommandHost, args: tuple[str, ...]) -> None:
    steps = {"next": 1, "prev": -1, "previous": -1}
    if len(args) > 1 or (args and args[0].lower() not in steps):
        raise CommandError("Usage: /branch [next|prev].")
    host.action_branch(steps[args[0].lower()] if args else 1)


def _suggestion(host: CommandHost, args: tuple[str, ...]) -> None:
    # Called as /1, /2 or /3: the command's name (first in args, see Command.takes_name) is the number.
    host.use_suggestion(int(args[0]))


@dataclass(frozen=True)
class Command:
    """One slash command: its name, how it is written and what it does (for the help).

    A command with ``takes_name`` gets the name it was called by as its first argument (``/2``
    is ``/1``'s alias and needs to know it was 2).
    """

    name: str
    usage: str
    does: str
    run: Callable[[CommandHost, tuple[str, ...]], None]
    aliases: tuple[str, ...] = ()
    takes_name: bool = False


_COMMAND_LIST = [
    Command("train", "/train MODEL [EPOCHS]", "train a workshop model (asks first)", _train),
    Command("lesson", "/lesson MODEL", "a model's lesson: its plot and what it shows (runs it first, after asking)",
            _lesson),
    Command("models", "/models", "list the training runs and their metrics", _models),
    Command("runs", "/runs", "the runs window, with cancel", lambda host, args: host.action_runs()),
    Command("cancel", "/cancel RUN_ID", "stop a training run", _cancel),
    Command("attach", "/attach [PATH]", "attach an image (no path: the picker)", _attach),
    Command("new", "/new", "new thread", lambda host, args: host.action_new_thread()),
    Command("threads", "/threads", "show the threads", lambda host, args: host.show_threads()),
    Command("rename", "/rename [TITLE]", "rename this thread (no title: asks)",
            lambda host, args: host.rename_current_thread(" ".join(args) or None)),
    Command("delete", "/delete", "delete this thread (asks first)", lambda host, args: host.delete_current_thread()),
    Command("clear", "/clear", "clear the screen (the thread is kept)", lambda host, args: host.action_clear()),
    Command("copy", "/copy", "copy from the selected message or the last answer (a menu)",
            lambda host, args: host.action_copy()),
    Command("regenerate", "/regenerate", "answer the last message again (the old answer stays as a branch)",
            lambda host, args: host.action_regenerate(), aliases=("regen",)),
    Command("edit", "/edit", "edit your last (or selected) message; Enter reruns from it",
            lambda host, args: host.action_edit_selected()),
    Command("branch", "/branch [next|prev]", "switch to another branch at the latest fork", _branch),
    Command("search", "/search [WORDS]", "search every thread, jump to a message",
            lambda host, args: host.action_search(" ".join(args))),
    Command("export", "/export [md|json|py|ipynb]", "export this thread under $TALLER_HOME/exports", _export),
    Command("1", "/1 /2 /3", "put the last answer's suggested next step in the prompt (Enter sends it)",
            _suggestion, aliases=("2", "3"), takes_name=True),
    Command("help", "/help", "this help", lambda host, args: host.action_help()),
    Command("quit", "/quit", "leave", lambda host, args: host.exit(), aliases=("exit",)),
]

# name or alias -> command
COMMANDS: dict[str, Command] = {name: command for command in _COMMAND_LIST
                                for name in (command.name, *command.aliases)}


def run_command(host: CommandHost, line: str) -> None:
    """Run ``/name args`` on ``host``: a bare ``/`` opens the help, a wrong use says why."""
    command_line = parse(line)
    if command_line is None:
        host.action_help()
        return
    command = COMMANDS.get(command_line.name)
    if command is None:
        host.notice(f"Unknown command /{escape(command_line.name)}. Try /help.")
        return
    arguments = (command_line.name, *command_line.args) if command.takes_name else command_line.args
    try:
        command.run(host, arguments)
    except CommandError as problem:
        host.notice(str(problem))


def help_table() -> str:
    """The commands as a Markdown table, in the order above."""
    rows = ["| Command | Does |", "|---|---|"]
    rows += [f"| `{command.usage}` | {command.does} |" for command in _COMMAND_LIST]
    return "\n".join(rows) + "\n"
