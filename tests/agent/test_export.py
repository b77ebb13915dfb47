"""Export of a real thread (tool calls made by the agent) to md, json, py and ipynb, and import.

The thread is made by the agent with a scripted fake model that calls real tools on the default
``sales`` database (Chinook, built from the data folder): ``query_database`` runs the model's
SQL, ``describe_database`` and ``list_models`` need no model. The ``.py`` export then runs with
``python`` in a subprocess and the ``.ipynb`` executes with nbclient, against the test's
TALLER_HOME.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from taller.agent.export import ExportError, export_thread, import_thread, load_export
from taller.agent.session import Agent
from taller.llm import FakeChatModel, use_chat_model

SQL = ("SELECT g.Name, COUNT(*) AS Tracks FROM Track t JOIN Genre g ON g.GenreId = t.GenreId "
       "GROUP BY g.Name ORDER BY Tracks DESC LIMIT 3")
SCRIPT = [
    {"tool": "query_database", "args": {"question": "top 3 genres by number of tracks"}}, {"sql": SQL},
    "Rock leads with 1297 tracks.",
    {"tool": "describe_database", "args": {}}, "The sales database has 11 tables.",
    {"tool": "list_models", "args": {}}, "No models have been trained yet.",
]


@pytest.fixture
def thread(data_dir):
    """(agent, thread id) of a three-turn thread with real tool calls."""
    model = FakeChatModel(responses=list(SCRIPT))
    with use_chat_model(model):
        agent = Agent(chat_model=model)
        for text in ("top 3 genres by number of tracks", "describe the database", "which models have I trained?"):
            events = list(agent.run(text, "real"))
            assert events[-1]["type"] == "final", events[-1]
    yield agent, "real"
    agent.close()


def test_history_carries_the_tool_calls(thread):
    agent, thread_id = thread
    tools = [entry for entry in agent.history(thread_id) if entry["role"] == "tool"]
    assert [entry["name"] for entry in tools] == ["query_database", "describe_database", "list_models"]
    assert tools[0]["args"]["question"] == "top 3 genres by number of tracks"
    # The SQL as it ran: reviewed (genres grouped by their key too) and written back by the
    # safety check.
    assert "GROUP BY g.Name, g.GenreId ORDER BY Tracks DESC LIMIT 3" in tools[0]["result"]["sql"]
    assert tools[0]["result"]["rows"][0] == ["Rock", 1297]


def test_markdown_has_the_turns_the_call_and_the_table(thread):
    agent, thread_id = thread
    text = export_thread(agent, thread_id, "md")
    assert text.startswith("# top 3 genres by number of tracks")
    assert "## You\n\ntop 3 genres by number of tracks" in text and "## Taller\n\nRock leads with 1297 tracks." in text
    assert "### Tool: `query_database`" in text and '"question": "top 3 genres by number of tracks"' in text
    ran = next(entry for entry in agent.history(thread_id) if entry["role"] == "tool")["result"]["sql"]
    assert "```sql\n" + ran + "\n```" in text
    assert "| Name | Tracks |\n|---|---|\n| Rock | 1297 |" in text


def test_the_script_runs_with_python(thread, tmp_path):
    agent, thread_id = thread
    script = tmp_path / "thread.py"
    script.write_text(export_thread(agent, thread_id, "py"), encoding="utf-8")
    source = script.read_text(encoding="utf-8")
    assert "# You: top 3 genres by number of tracks" in source and "run_sql(sql, database=None)" in source
    assert "run_tool('describe_database', {})" in source
    done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=300,
                          env={**os.environ, "TALLER_HOME": os.environ["TALLER_HOME"]})
    assert done.returncode == 0, done.stderr[-3000:]
    assert "| Rock | 1297 |" in done.stdout  # the SQL ran again and printed its table
    assert "11 tables" in done.stdout and "No models have been trained yet" in done.stdout


def test_the_notebook_executes(thread, tmp_path):
    import nbformat
    from nbclient import NotebookClient

    agent, thread_id = thread
    notebook = nbformat.reads(export_thread(agent, thread_id, "ipynb"), as_version=4)
    nbformat.validate(notebook)
    kinds = [cell.cell_type for cell in notebook.cells]
    assert kinds[:2] == ["markdown", "code"] and kinds.count("code") == 4  # set-up + three calls
    NotebookClient(notebook, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}).execute()
    outputs = "".join(output.get("text", "") for cell in notebook.cells if cell.cell_type == "code"
                      for output in cell.outputs)
    assert "| Rock | 1297 |" in outputs and "11 tables" in outputs
    assert not any(output.output_type == "error" for cell in notebook.cells if cell.cell_type == "code"
                   for output in cell.outputs)


def test_json_round_trips_through_import(thread):
    agent, thread_id = thread
    exported = export_thread(agent, thread_id, "json")
    data = json.loads(exported)
    assert data["format"] == "taller-thread" and data["version"] == 1 and len(data["messages"]) == 9
    new_id = import_thread(agent, exported)
    assert new_id != thread_id
    strip = lambda history: [{key: value for key, value in entry.items() if key != "content" or entry["role"] != "tool"}
                             for entry in history]
    assert strip(agent.history(new_id)) == strip(agent.history(thread_id))
    assert agent.thread_store.title(new_id) == data["title"]
    again = json.loads(export_thread(agent, new_id, "json"))
    assert again["messages"] == data["messages"]
    # The imported thread is searchable and can be continued and regenerated.
    assert {hit["thread_id"] for hit in agent.search("genres")} == {thread_id, new_id}
    model = FakeChatModel(responses=[{"tool": "none"}, "Again: no models yet."])
    agent._chat_model = model
    events = list(agent.regenerate(new_id))
    assert events[-1]["type"] == "final" and agent.history(new_id)[-1]["content"] == "Again: no models yet."
    assert len(agent.branches(new_id)) == 2


def test_import_of_the_first_message_edit_works():
    agent = Agent(chat_model=FakeChatModel(responses=[{"tool": "none"}, "Edited answer."]))
    new_id = import_thread(agent, {"format": "taller-thread", "version": 1, "title": "imported",
                                   "messages": [{"role": "user", "content": "hi"},
                                                {"role": "assistant", "content": "hello"}]})
    events = list(agent.edit(new_id, 0, "hi again"))
    assert events[-1]["type"] == "final"
    assert [(e["role"], e["content"]) for e in agent.history(new_id)] == [("user", "hi again"), ("assistant", "Edited answer.")]
    assert agent.threads()[0]["title"] == "imported"


SECRET = "s3cr3t-contents"


@pytest.mark.parametrize("text, expected", [
    (f"{{not json {SECRET}", "not JSON (line 1, column 2)"),
    (json.dumps({"format": "other", "note": SECRET}), "not a Taller thread export"),
    (json.dumps({"format": "taller-thread", "version": 9, "messages": []}), "export version 9 is newer"),
    (json.dumps({"format": "taller-thread", "version": 1, "messages": []}), "\"messages\" must be a non-empty list"),
    (json.dumps({"format": "taller-thread", "version": 1, "messages": [{"role": SECRET, "content": "x"}]}),
     "messages[0]: \"role\" must be one of"),
    (json.dumps({"format": "taller-thread", "version": 1, "messages": [{"role": "assistant", "content": SECRET}]}),
     "messages[0]: a thread starts with a user message"),
    (json.dumps({"format": "taller-thread", "version": 1, "messages": [{"role": "user", "content": 5}]}),
     "messages[0]: \"content\" must be a string"),
    (json.dumps({"format": "taller-thread", "version": 1, "messages": [
        {"role": "user", "content": SECRET}, {"role": "tool", "args": {}, "result": SECRET}]}),
     "messages[1]: a tool message needs its tool's \"name\""),
])
def test_import_names_what_is_wrong_without_echoing_contents(text, expected):
    with pytest.raises(ExportError) as caught:
        load_export(text, "chat.json")
    message = str(caught.value)
    assert message.startswith("chat.json") and expected in message and SECRET not in message


def test_unknown_thread_and_format_are_refused():
    agent = Agent(chat_model=FakeChatModel())
    with pytest.raises(ExportError, match="no thread 'missing'"):
        export_thread(agent, "missing", "md")
    with pytest.raises(ExportError, match="unknown export format 'pdf'"):
        export_thread(agent, "missing", "pdf")


def test_cli_export_import_and_search(tmp_path, capsys):
    from taller.cli import main

    agent = Agent(chat_model=FakeChatModel(responses=[{"tool": "none"}, "Dropout zeroes units at random."]))
    assert list(agent.run("explain dropout", "cli-thread"))[-1]["type"] == "final"
    agent.close()
    target = tmp_path / "out" / "thread.json"
    assert main(["export", "cli-thread", "--format", "json", "-o", str(target)]) == 0
    assert capsys.readouterr().out.strip() == str(target) and json.loads(target.read_text())["version"] == 1
    assert main(["export", "cli-thread"]) == 0  # default: under $TALLER_HOME/exports, path printed
    default = capsys.readouterr().out.strip()
    assert default.startswith(os.path.join(os.environ["TALLER_HOME"], "exports")) and default.endswith(".md")
    assert main(["import", str(target)]) == 0
    new_id = capsys.readouterr().out.strip()
    assert main(["search", "zeroes", "--json"]) == 0
    found = json.loads(capsys.readouterr().out)
    assert {hit["thread_id"] for hit in found} == {"cli-thread", new_id}
    assert main(["search", "nothing-like-this"]) == 1
    assert main(["export", "missing-thread"]) == 1 and "no thread 'missing-thread'" in capsys.readouterr().err
    bad = tmp_path / "bad.json"
    bad.write_text('{"format": "taller-thread", "version": 1, "messages": [{"role": "robot"}]}')
    assert main(["import", str(bad)]) == 1
    assert "messages[0]: \"role\" must be one of" in capsys.readouterr().err


def test_markdown_images_and_long_tables():
    from taller.agent.export import TABLE_ROWS, to_markdown

    history = [
        {"role": "user", "content": "generate 2 samples with the vae", "index": 0},
        {"role": "tool", "name": "generate_images", "args": {"model": "vae", "count": 2}, "index": 1,
         "result": {"summary": "2 new samples [grid]", "images": ["/runs/vae/a.png", "/runs/my runs/b (1).png"]}},
        {"role": "tool", "name": "query_database", "args": {"question": "all tracks"}, "index": 2,
         "result": {"summary": "120 rows", "sql": "SELECT Name FROM Track", "columns": ["Name", "Note"],
                    "rows": [[f"t{i}", "a|b\nc"] for i in range(120)]}},
    ]
    text = to_markdown("Samples", "t", history)
    assert "![2 new samples (grid) (1)](/runs/vae/a.png)" in text
    assert "![2 new samples (grid) (2)](</runs/my runs/b (1).png>)" in text  # a path with spaces stays one link
    assert "| t0 | a\\|b c |" in text and f"| t{TABLE_ROWS - 1} |" in text and f"| t{TABLE_ROWS} |" not in text
    assert f"… {120 - TABLE_ROWS} more rows" in text
