"""The threads sidebar's rules (taller/ui/threads.py), without running the App."""

from __future__ import annotations

import re

from taller.ui.threads import NEW_THREAD_TITLE, sidebar_entries, start_thread, thread_title

SAVED = [{"thread_id": "b", "title": "Translation"}, {"thread_id": "a", "title": None}]


def test_a_current_thread_not_saved_yet_comes_first():
    assert sidebar_entries(SAVED, "fresh") == [("fresh", NEW_THREAD_TITLE, True), ("b", "Translation", False),
                                               ("a", "a", False)]  # no title: its id
    assert sidebar_entries(SAVED, "a") == [("b", "Translation", False), ("a", "a", True)]
    assert sidebar_entries([], None) == []


def test_titles_and_the_thread_to_open_first():
    assert thread_title(SAVED, "b") == "Translation"
    assert thread_title(SAVED, "fresh") is None and thread_title(SAVED, "fresh", NEW_THREAD_TITLE) == NEW_THREAD_TITLE
    assert start_thread("asked", SAVED) == "asked"
    assert start_thread(None, SAVED) == "b"  # the most recent conversation
    assert re.fullmatch(r"[0-9a-f]{16}", start_thread(None, []))
