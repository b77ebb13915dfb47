"""The chat's plain logic for copying, branch marks and the help text (no Textual App running).

Copying: what an answer, a tool card and a user message offer (code blocks, tables as TSV and
Markdown, the SQL), where a copy goes (OSC 52 for terminals that take it, else the file) and
how the file is written. Branches: where ``◀ k/n ▶`` goes for the fork shapes regenerate and
edit make. Help: key names as people write them, and tooltips grouping rows.
"""

from __future__ import annotations

import stat

import pytest
from textual.binding import Binding

from taller.ui import branches as branch_view
from taller.ui.clipboard import (
    FALLBACK_NAME,
    MAX_COPY_CHARS,
    answer_choices,
    bounded,
    clipboard_mode,
    code_blocks,
    markdown_tables,
    table_markdown,
    table_tsv,
    tool_choices,
    user_choices,
    write_fallback,
)
from taller.ui.help import key_display, keys_display, section_markdown

ANSWER = """Here is the query and a snippet.

```sql
SELECT Name FROM Artist
WHERE ArtistId < 5;
```

| artist | sales |
|---|---:|
| Iron Maiden | 138.6 |
| A \\| B | 1 |

~~~
print("hi")
~~~
"""


def test_an_answer_offers_itself_each_code_block_and_each_table():
    choices = answer_choices(ANSWER)
    labels = [choice.label for choice in choices]
    assert labels[0] == "The whole answer (Markdown)" and choices[0].text == ANSWER
    assert labels[1] == "sql code block 1: SELECT Name FROM Artist"
    assert choices[1].text == "SELECT Name FROM Artist\nWHERE ArtistId < 5;\n"
    assert labels[2] == 'Code block 2: print("hi")' and choices[2].text == 'print("hi")\n'
    assert labels[3:] == ["Table 1 as TSV (2 rows)", "Table 1 as Markdown"]
    assert choices[3].text == "artist\tsales\nIron Maiden\t138.6\nA | B\t1\n"
    assert "| A \\| B | 1 |" in choices[4].text


def test_code_blocks_and_tables_ignore_what_is_not_one():
    assert code_blocks("no code here, only `inline`") == []
    assert code_blocks("```python\nx = 1\n```\ntext\n```\ny\n```") == [("python", "x = 1"), ("", "y")]
    # A table written inside a code block is code, not a table.
    assert markdown_tables("```\n| a | b |\n|---|---|\n| 1 | 2 |\n```") == []
    assert markdown_tables("| a | b |\n|---|---|\n| 1 | 2 |\n\nafter") == [(["a", "b"], [["1", "2"]])]
    assert answer_choices("   ") == []


def test_a_tool_card_offers_its_sql_its_table_its_summary_and_the_raw_result():
    result = {"summary": "3 rows.", "sql": "SELECT a, b FROM t", "columns": ["a", "b"],
              "rows": [[1, "x\ty"], [2, None]]}
    choices = {choice.label: choice.text for choice in tool_choices("query_database", result)}
    assert choices["SQL query"] == "SELECT a, b FROM t\n"
    assert choices["Result table as TSV (2 rows)"] == "a\tb\n1\tx y\n2\t\n"  # a tab in a cell is a space
    assert choices["Result table as Markdown"] == "| a | b |\n|---|---|\n| 1 | x\ty |\n| 2 |  |\n"
    assert choices["Summary"] == "3 rows.\n"
    assert '"sql": "SELECT a, b FROM t"' in choices["Raw query_database result (JSON)"]
    failed = [choice.label for choice in tool_choices("query_database", {"error": "no such table: t"})]
    assert failed == ["Error", "Raw query_database result (JSON)"]
    assert tool_choices("x", None) == [] and user_choices("") == []


def test_tables_escape_pipes_and_flatten_line_breaks():
    assert table_markdown(["a|b"], [["line\nbreak"]]) == "| a\\|b |\n|---|\n| line break |\n"
    assert table_tsv(["a"], [["one\r\ntwo"]]) == "a\none two\n"


@pytest.mark.parametrize("environ, mode", [
    ({"TERM": "xterm-kitty"}, "osc52"),
    ({"TERM": "xterm-256color", "TERM_PROGRAM": "WezTerm"}, "osc52"),
    ({"TERM": "xterm-256color", "WT_SESSION": "abc"}, "osc52"),
    ({"TERM": "xterm-256color", "LC_TERMINAL": "iTerm.app"}, "osc52"),
    ({"TERM": "xterm-256color", "COLORTERM": "truecolor", "VTE_VERSION": "7200"}, "file"),  # GNOME Terminal
    ({"TERM": "xterm-256color", "TERM_PROGRAM": "Apple_Terminal"}, "file"),
    ({"TERM": "xterm-kitty", "TMUX": "/tmp/tmux-1000/default,1,0"}, "file"),  # tmux swallows it by default
    ({}, "file"),
    ({"TERM": "dumb", "TALLER_TUI_CLIPBOARD": "osc52"}, "osc52"),
    ({"TERM": "xterm-kitty", "TALLER_TUI_CLIPBOARD": "FILE"}, "file"),
    ({"TALLER_TUI_CLIPBOARD": "both"}, "both"),
    ({"TERM": "alacritty", "TALLER_TUI_CLIPBOARD": "nonsense"}, "osc52"),  # unknown value: the guess
])
def test_where_a_copy_goes(environ, mode):
    assert clipboard_mode(environ) == mode


def test_the_fallback_file_is_private_and_replaced_whole(tmp_path):
    path = write_fallback(tmp_path / "home", "first copy")
    assert path == tmp_path / "home" / FALLBACK_NAME
    assert path.read_text(encoding="utf-8") == "first copy"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    write_fallback(tmp_path / "home", "second ✓")
    assert path.read_text(encoding="utf-8") == "second ✓"
    assert [p.name for p in (tmp_path / "home").iterdir()] == [FALLBACK_NAME]  # no partial left
    assert len(bounded("x" * (MAX_COPY_CHARS + 5))) == MAX_COPY_CHARS


# --- branches ------------------------------------------------------------------------------------

HISTORY = [{"role": "user", "index": 0}, {"role": "assistant", "index": 1},
           {"role": "user", "index": 2}, {"role": "tool", "index": 3}, {"role": "assistant", "index": 4}]


def branch(branch_id: str, fork_index: int, current: bool = False) -> dict:
    return {"branch_id": branch_id, "fork_index": fork_index, "current": current, "messages": 5,
            "updated": 0.0, "last_user": ""}


def test_a_regeneration_marks_its_turn_with_the_current_branch_position():
    found = branch_view.forks([branch("a", 2), branch("b", 2, current=True)], HISTORY)
    assert list(found) == [2]
    assert found[2].label == "◀ 2/2 ▶"
    assert found[2].neighbour(-1) == "a" and found[2].neighbour(1) == "a"  # wraps around
    assert branch_view.labels(found) == {2: "◀ 2/2 ▶"}


def test_a_fork_in_the_middle_of_a_turn_is_marked_on_its_user_message():
    # A branch whose own part starts at the tool call (index 3) belongs to the turn of message 2.
    found = branch_view.forks([branch("a", 3, current=True), branch("b", 3), branch("c", 3)], HISTORY)
    assert found[2].label == "◀ 1/3 ▶" and found[2].neighbour(1) == "b"


def test_nested_forks_part_where_the_shallower_one_is():
    # a forks from the trunk at the first message; b and c fork later, below the same fork.
    branches = [branch("a", 0), branch("b", 2, current=True), branch("c", 2)]
    found = branch_view.forks(branches, HISTORY)
    assert found[0].branch_ids == ("a", "b") and found[0].label == "◀ 2/2 ▶"
    assert found[2].branch_ids == ("b", "c") and found[2].label == "◀ 1/2 ▶"


def test_no_marks_without_other_branches():
    assert branch_view.forks([branch("a", 0, current=True)], HISTORY) == {}
    assert branch_view.forks([], HISTORY) == {}
    assert branch_view.turn_of(HISTORY, 4) == 2 and branch_view.turn_of(HISTORY, 1) == 0


# --- help ----------------------------------------------------------------------------------------

def test_keys_are_written_as_keyboards_print_them():
    assert key_display("ctrl+o") == "Ctrl+O"
    assert key_display("alt+left") == "Alt+←"
    assert key_display("f12") == "F12"
    assert key_display("escape") == "Esc"
    assert key_display("y") == "y"
    assert keys_display("n,escape") == "n / Esc"


def test_bindings_sharing_a_tooltip_are_one_row_and_pipes_are_escaped():
    section = section_markdown("Menu", [Binding("1", "pick(1)", "One", tooltip="pick it"),
                                        Binding("2", "pick(2)", "Two", tooltip="pick it"),
                                        Binding("escape", "close", "Close | quit")])
    assert "| 1 / 2 | pick it |" in section
    assert "| Esc | Close \\| quit |" in section
