"""The text-to-SQL benchmark's data stays sound: every gold query runs, returns rows, has no tie.

``bench/data/sql/check_questions.py`` builds the three unseen databases into a temporary folder
and checks all 196 gold queries (and that two builds are identical); a change to the builder or
to a question that breaks a gold fails here, not in a long benchmark run.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_every_gold_query_of_the_unseen_databases_runs_and_is_unambiguous():
    done = subprocess.run([sys.executable, str(ROOT / "bench/data/sql/check_questions.py")],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    assert "all gold queries run, return rows and have no tie at a boundary" in done.stdout


def test_video_questions_quote_their_transcripts_once_and_are_split_evenly():
    done = subprocess.run([sys.executable, str(ROOT / "bench/data/videos/check_questions.py")],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    assert "video questions OK:" in done.stdout


def test_routing_sets_follow_the_tool_contracts_and_dev4_is_checked():
    # check_data.py validates every routing set (dev4 included) against the tools' schemas: an
    # expected call that breaks a contract, or a value the user never wrote, fails here.
    done = subprocess.run([sys.executable, str(ROOT / "bench/data/check_data.py")],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    assert "routing_dialogues_dev4.jsonl: 30 dialogues" in done.stdout
    assert "all items valid" in done.stdout
