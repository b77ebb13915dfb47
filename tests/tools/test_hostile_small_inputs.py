"""Smaller hostile inputs of issue 16, point 9: a 1 MB path, ±1e308 in a series, a router reply
that is not JSON. Each gets a short, clear answer, never a raw exception or an echo of the input."""

from __future__ import annotations

import json
import math

import pytest

from taller.errors import ToolError
from taller.paths import MAX_PATH_CHARS, QUOTE_CHARS, check_input_path, clip
from taller.tools import MAX_ERROR_CHARS, run_tool

MEGABYTE_PATH = "/tmp/" + "a" * 1_000_000 + ".csv"


# --- a 1 MB path ----------------------------------------------------------------------------------

@pytest.mark.parametrize("path", [MEGABYTE_PATH, "a" * 1_000_000, "~/" + "b" * 300 + "/x.csv",
                                  "/tmp/" + "c/" * 2_500 + "x.csv", "/tmp/" + "d" * 300 + ".png"])
def test_check_input_path_refuses_long_paths_briefly(path):
    with pytest.raises(ToolError) as refused:
        check_input_path(path)
    message = str(refused.value)
    assert len(message) < QUOTE_CHARS + 150, message
    assert "File name too long" not in message and message.count(path[:50]) <= 1


def test_clip_keeps_both_ends_and_says_the_length():
    text = "/home/jo/" + "x" * 500 + "/data.csv"
    shown = clip(text)
    assert shown.startswith("/home/jo/") and shown.endswith("(518 characters)") and "data.csv" in shown
    assert len(shown) < QUOTE_CHARS + 30 and clip("short") == "short"


@pytest.mark.parametrize("tool, args", [
    ("forecast", {"values": MEGABYTE_PATH}),
    ("classify_pet", {"image_path": MEGABYTE_PATH}),
    ("analyze_face", {"image_path": MEGABYTE_PATH}),
    ("generate_images", {"model": "pix2pix", "image_path": MEGABYTE_PATH}),
    ("describe_database", {"database": MEGABYTE_PATH[:-4] + ".db"}),
    ("describe_database", {"database": "x" * 1_000_000}),
    ("add_video", {"url_or_path": MEGABYTE_PATH[:-4] + ".vtt"}),
    ("add_video", {"url_or_path": "y" * 1_000_000}),
])
def test_every_path_tool_answers_a_megabyte_path_briefly(tool, args):
    out = run_tool(tool, args)
    assert "error" in out
    assert len(out["error"]) <= MAX_ERROR_CHARS + 50, out["error"][:300]
    assert len(json.dumps(out)) < 3 * MAX_ERROR_CHARS
    assert f"{MAX_PATH_CHARS:,}" in out["error"] or "characters" in out["error"], out["error"][:300]


def test_unexpected_errors_are_bounded_too(monkeypatch):
    from taller.tools import sequences

    def explode(values, steps=5):
        raise OSError(36, "File name too long", "z" * 1_000_000)

    monkeypatch.setattr(sequences.forecast, "func", explode)
    out = run_tool("forecast", {"values": [1.0] * 20})
    assert out["error"].startswith("forecast failed unexpectedly (OSError: File name too long: zzz")
    assert len(out["error"]) < 300 and out["error"].count("File name too long") == 1


# --- ±1e308 in a series ----------------------------------------------------------------------------

@pytest.mark.parametrize("values", [
    [1e308, -1e308] * 10,
    [1e300 * i for i in range(20)],
    "1e308, -1e308, " * 10,
    [1.0] * 19 + [-1.7e308],
])
def test_forecast_of_huge_values_is_a_clear_error(values):
    out = run_tool("forecast", {"values": values})
    assert "error" in out and "rescale" in out["error"] and "arange" not in out["error"], out
    assert "up to ±1e+30" in out["error"]


@pytest.mark.parametrize("values", [[math.inf] + [1.0] * 19, [math.nan] * 20, "inf, " * 20])
def test_forecast_of_infinity_or_nan_is_a_clear_error(values):
    out = run_tool("forecast", {"values": values})
    assert "not a finite number" in out.get("error", ""), out


def test_forecast_of_large_but_usable_values_works():
    out = run_tool("forecast", {"values": [1e25 * (1 + 0.3 * math.sin(i / 2)) for i in range(20)], "steps": 2})
    assert "error" not in out and all(math.isfinite(v) for v in out["predictions"])


def test_a_csv_of_huge_values_is_a_clear_error_too(tmp_path):
    path = tmp_path / "huge.csv"
    path.write_text("value\n" + "\n".join("1e308" if i % 2 else "-1e308" for i in range(20)) + "\n")
    out = run_tool("forecast", {"values": str(path)})
    assert "rescale" in out["error"]


# --- a router reply that is not JSON --------------------------------------------------------------

PROSE = "Sure! I think the best tool here would be the forecast one, let me know."


def test_a_non_json_tool_choice_falls_back_instead_of_raising():
    from taller.agent import router
    from taller.llm import FakeChatModel

    model = FakeChatModel(responses=[], default=PROSE)
    decision = router.plan("could you do the thing with my stuff", lambda: model, use_semantic=False)
    assert decision["tool"] is None and "error" not in decision
    # Domain words still route the request when the model's choice cannot be read.
    decision = router.plan("how many customers per country are in the sales data?", lambda: model,
                           use_semantic=False)
    assert decision["tool"] == "query_database" and decision["source"] == "keywords"


def test_a_non_json_router_reply_never_reaches_the_user_as_a_value_error():
    from taller.agent.session import Agent
    from taller.config import get_settings
    from taller.llm import FakeChatModel

    agent = Agent(settings=get_settings(), chat_model=FakeChatModel(responses=[], default=PROSE))
    events = list(agent.run("could you do the thing with my stuff"))
    assert [e["type"] for e in events if e["type"] in ("error", "final")] == ["final"], events[-1]
    assert "ValueError" not in json.dumps(events) and "did not return a JSON object" not in json.dumps(events)
