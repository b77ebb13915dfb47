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
