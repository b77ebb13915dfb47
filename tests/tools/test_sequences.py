"""The forecast, punctuate and translate tools through the registry, with tiny trained models."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from taller.tools import run_tool
from taller.trainers.text import recurrent_threads


@pytest.fixture(autouse=True)
def one_thread():
    with recurrent_threads("cpu"):
        yield


@pytest.fixture(scope="module")
def trained_runs(tmp_path_factory, spa_eng_data):
    """Tiny birnn and seq2seq models trained on real spa-eng data once for this module (seconds)."""
    from taller.config import get_settings
    from taller.trainers import birnn, seq2seq

    data = spa_eng_data
    home = tmp_path_factory.mktemp("sequence_tools_home")
    with pytest.MonkeyPatch.context() as patch, recurrent_threads("cpu"):
        patch.setenv("TALLER_HOME", str(home))
        patch.setenv("TALLER_DATA_DIR", str(data))
        patch.setenv("TALLER_OFFLINE", "1")
        get_settings(reload=True)
        birnn.train(birnn.Config(max_sentences=1500, epochs=2, lr=1e-2, embedding_dim=32, hidden_size=32, patience=0))
        seq2seq.train(seq2seq.Config(max_pairs=1500, max_length=8, epochs=2, lr=5e-3, embedding_dim=32, hidden_size=48,
                                     test_sources=20, val_sources=20, beam_eval_sentences=4, patience=0))
    get_settings(reload=True)
    return home / "runs"


@pytest.fixture
def with_models(trained_runs, taller_home):
    """Copy the trained runs into this test's TALLER_HOME, where the tools look for them."""
    shutil.copytree(trained_runs, taller_home / "runs")
    return taller_home


# --- forecast ------------------------------------------------------------------------------

SEASONAL = [round(10 + 4 * ((t % 12) - 6) ** 2 / 36 + 0.1 * t, 3) for t in range(60)]


def test_forecast_list_gives_values_backtest_and_plot():
    out = run_tool("forecast", {"values": SEASONAL, "steps": 4})
    assert "error" not in out, out
    assert len(out["predictions"]) == 4
    assert out["backtest"]["horizon"] == 4 and out["backtest"]["naive_mae"] >= 0
    assert "Next 4 values" in out["summary"]
    assert Path(out["images"][0]).is_file()


def test_forecast_accepts_numbers_in_a_string_and_csv_files(tmp_path):
    text = ", ".join(str(v) for v in SEASONAL[:20])
    out = run_tool("forecast", {"values": text, "steps": 2})
    assert len(out["predictions"]) == 2 and out["backtest"] is None and "too short" in out["summary"]
    csv_path = tmp_path / "series.csv"
    csv_path.write_text("month,amount\n" + "\n".join(f"m{i},{v}" for i, v in enumerate(SEASONAL)))
    out = run_tool("forecast", {"values": str(csv_path), "steps": 3})
    assert out["source"].startswith("column 'amount' of series.csv") and len(out["predictions"]) == 3


def test_forecast_bad_input_is_a_clear_error(tmp_path):
    words = tmp_path / "names.csv"
    words.write_text("name,city\nana,lima\nbea,quito\n")
    assert "no numeric column" in run_tool("forecast", {"values": str(words)})["error"]
    assert "at least 12" in run_tool("forecast", {"values": [1, 2, 3]})["error"]
    assert "not found" in run_tool("forecast", {"values": str(tmp_path / "missing.csv")})["error"]
    assert "error" in run_tool("forecast", {"values": SEASONAL, "steps": 0})
    assert "no values" in run_tool("forecast", {"values": "  "})["error"]


# --- punctuate / translate without a model ---------------------------------------------------

def test_without_models_they_offer_training_and_never_guess():
    out = run_tool("punctuate", {"text": "hola qué tal"})
    assert out["available"] is False and out["suggestion"] == {"tool": "train_model", "args": {"model": "birnn"}}
    out = run_tool("translate", {"text": "I am hungry."})
    assert out["available"] is False and "translation" not in out
    assert out["suggestion"]["args"]["model"] == "seq2seq"


def test_empty_text_is_an_error():
    assert "no text" in run_tool("punctuate", {"text": "   "})["error"]
    assert "no text" in run_tool("translate", {"text": ""})["error"]
    assert "no words" in run_tool("punctuate", {"text": "¿?!..."})["error"]


# --- with tiny trained models --------------------------------------------------------------------

def test_punctuate_restores_with_the_trained_model(with_models):
    out = run_tool("punctuate", {"text": "tom is here"})
    assert "error" not in out, out
    assert out["text"].lower().replace(".", "").replace("?", "").replace("!", "").replace(",", "").split() == ["tom", "is", "here"]
    assert out["truncated"] is False and out["words"] == 3


def test_punctuate_long_and_non_latin_text(with_models):
    out = run_tool("punctuate", {"text": "tom is here " * 100})
    assert out["truncated"] is True and "first 200 words" in out["summary"]
    out = run_tool("punctuate", {"text": "東京 は 大きい"})
    assert "error" not in out and "guess" in out["summary"]


def test_translate_with_the_trained_model(with_models):
    out = run_tool("translate", {"text": "Tom is here.", "beam_size": 3})
    assert "error" not in out, out
    assert isinstance(out["translation"], str) and out["translation"]
    assert out["beam_size"] == 3 and Path(out["images"][0]).is_file()
    greedy = run_tool("translate", {"text": "Tom is here.", "beam_size": 1})
    assert greedy["translation"]


def test_translate_long_and_non_latin_text(with_models):
    long_text = " ".join(["I see Tom."] * 12)
    out = run_tool("translate", {"text": long_text, "beam_size": 1})
    assert any("first 8 of 12 sentences" in note for note in out["notes"])
    out = run_tool("translate", {"text": "東京はとても大きいです"})
    assert "error" in out and "will not guess" in out["error"]
    out = run_tool("translate", {"text": "Tom " + "very " * 60 + "tired.", "beam_size": 1})
    assert any("cut to its first" in note for note in out["notes"])
