"""RNN / LSTM / GRU: memory tasks, the comparison table and plot, forecasting, CSV columns."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch

from taller.trainers import engine, rnn
from taller.trainers.text import recurrent_threads


@pytest.fixture(autouse=True)
def one_thread():
    with recurrent_threads("cpu"):
        yield


def test_recall_task_asks_for_the_first_symbol():
    inputs, targets = rnn.recall_task(50, 12, 8, torch.Generator().manual_seed(0))
    assert inputs.shape == (50, 13)
    assert torch.equal(inputs[:, 0] - 1, targets)
    assert bool(((inputs[:, 1:-1] > 8) & (inputs[:, 1:-1] <= 16)).all())  # noise is never a symbol
    assert bool((inputs[:, -1] == 0).all())


def test_adding_task_marks_one_value_in_each_half():
    inputs, targets = rnn.adding_task(40, 20, torch.Generator().manual_seed(0))
    markers = inputs[..., 1]
    assert bool((markers.sum(1) == 2).all())
    assert bool((markers[:, :10].sum(1) == 1).all())
    assert torch.allclose((inputs[..., 0] * markers).sum(1), targets)


def test_compare_dry_run_writes_table_and_plot():
    metrics = rnn.train(rnn.Config(compare=True, dry_run=True, hidden_size=16, train_size=256, test_size=64))
    row = metrics["accuracy"]["10"]
    assert set(row) == {"rnn", "lstm", "gru"} and all(0.0 <= v <= 1.0 for v in row.values())
    assert Path(metrics["images"][0]).stat().st_size > 1000
    assert "| 10 |" in metrics["table"]
    assert json.loads((Path(metrics["run_dir"]) / "results.json").read_text())["chance"] == pytest.approx(0.125)


@pytest.mark.parametrize("task", ["recall", "adding"])
def test_single_cell_learns(task):
    config = rnn.Config(task=task, cell="gru", length=5, epochs=4, train_size=512, test_size=128, hidden_size=24,
                        lr=1e-2, symbols=4)
    metrics = rnn.train(config)
    result = metrics["results"][0]
    assert result["last_loss"] < result["first_loss"]
    assert "best.pt" in engine.list_runs("rnn")[0]["checkpoints"]


def test_synthetic_series_and_standardised_windows():
    series = rnn.synthetic_series(6, 100, torch.Generator().manual_seed(0))
    assert series.shape == (6, 100) and bool(torch.isfinite(series).all())
    inputs, targets = rnn.windows(series[0], 10)
    assert inputs.shape == (90, 10) and torch.equal(inputs[1, :-1], inputs[0, 1:]) and targets[0] == series[0, 10]
    scaled, scaled_targets, mean, spread = rnn.standardise(inputs, targets)
    assert torch.allclose(scaled * spread + mean, inputs, atol=1e-3)
    assert torch.allclose(scaled_targets * spread.squeeze(-1) + mean.squeeze(-1), targets, atol=1e-3)


def test_forecast_beats_naive_on_a_clean_seasonal_series():
    values = [10 + 5 * math.sin(2 * math.pi * t / 12) + 0.05 * t for t in range(120)]
    out = rnn.forecast_values(values, steps=6)
    assert len(out["predictions"]) == 6 and all(math.isfinite(v) for v in out["predictions"])
    backtest = out["backtest"]
    assert backtest["horizon"] == 6
    assert backtest["model_mae"] < backtest["naive_mae"]


def test_forecast_rejects_short_or_broken_series():
    with pytest.raises(ValueError, match="at least 12"):
        rnn.forecast_values([1, 2, 3], 2)
    with pytest.raises(ValueError, match="finite"):
        rnn.forecast_values([1.0] * 20 + [float("nan")], 2)
    short = rnn.forecast_values([float(v % 5) for v in range(20)], 3)  # no back-test under 30 values
    assert "backtest" not in short and len(short["predictions"]) == 3


def test_forecast_trainer_on_a_user_csv(tmp_path):
    rows = ["date,units"] + [f"2026-01-{i % 28 + 1:02d},{20 + 8 * math.sin(i / 3):.3f}" for i in range(90)]
    path = tmp_path / "sales.csv"
    path.write_text("\n".join(rows))
    metrics = rnn.train(rnn.Config(task="forecast", csv_path=str(path), epochs=3, window=12, horizon=6, hidden_size=16))
    assert metrics["source"] == "sales.csv:units"
    assert metrics["test_mae"] >= 0 and metrics["naive_mae"] > 0
    state = engine.load_checkpoint(Path(metrics["run_dir"]) / "best.pt")
    first = rnn.Forecaster("lstm", 16)
    first.load_state_dict(state["model"])
    second = rnn.Forecaster("lstm", 16)
    second.load_state_dict(state["model"])
    history = torch.tensor([[20 + 8 * math.sin(i / 3) for i in range(30)]])
    assert torch.equal(rnn.predict_ahead(first, history, 4, 12), rnn.predict_ahead(second, history, 4, 12))


def test_csv_columns(tmp_path):
    good = tmp_path / "good.csv"
    good.write_text("when;index;value\nmon;1;3,5\ntue;2;NA\nwed;3;4.5\nthu;4;5\n".replace("3,5", "3.5"))
    values, column = rnn.read_csv_column(good)
    assert column == "value" and values == [3.5, 4.5, 5.0]
    assert rnn.read_csv_column(good, "index")[0] == [1, 2, 3, 4]
    words = tmp_path / "words.csv"
    words.write_text("name,city\nana,lima\nbea,quito\n")
    with pytest.raises(ValueError, match="no numeric column"):
        rnn.read_csv_column(words)
    with pytest.raises(ValueError, match="not a numeric column"):
        rnn.read_csv_column(good, "when")


def test_bad_settings_are_clear_errors():
    with pytest.raises(ValueError, match="task"):
        rnn.train(rnn.Config(task="poetry"))
    with pytest.raises(ValueError, match="cell"):
        rnn.train(rnn.Config(cell="transformer"))


def test_background_run_through_the_registry():
    from taller.trainers import runs

    run_id = runs.start("rnn", epochs=1, dry_run=True, hidden_size=8, train_size=128, test_size=32)
    state = runs.wait(run_id, timeout=120)
    assert state["state"] == "finished", state
    assert "accuracy" in state["metrics"]


def test_lesson_dry_run_writes_its_record_and_no_checkpoint():
    metrics = rnn.train(rnn.Config(lesson=True, dry_run=True))
    assert metrics["lesson"] and metrics["claim"] and isinstance(metrics["claim_held"], bool)
    assert metrics["reading"] and metrics["reading_es"]
    figures = metrics["figures"]
    assert set(figures["final"]) == set(rnn.CELLS) and figures["length"] == rnn.LESSON_DRY_RUN.length
    assert len(figures["curves"]["lstm"]["accuracy"]) == rnn.LESSON_DRY_RUN.epochs
    assert metrics["claim_held"] == rnn.lesson_claim_holds(figures)
    [image] = metrics["images"]
    assert Path(image).read_bytes()[:4] == b"\x89PNG"
    run_dir = Path(metrics["run_dir"])
    record = json.loads((run_dir / "lesson.json").read_text())
    assert record["state"] == "finished" and set(record["experiments"]) == set(rnn.CELLS)
    assert not (run_dir / "best.pt").exists() and not (run_dir / "last.pt").exists()


def _lesson_figures(rnn_best: float, lstm: float, gru: float) -> dict:
    return {"final": {"rnn": min(rnn_best, 0.2), "lstm": lstm, "gru": gru},
            "best": {"rnn": rnn_best, "lstm": lstm, "gru": gru}}


def test_lesson_claim_needs_both_gated_cells_high_and_the_vanilla_rnn_low():
    assert rnn.lesson_claim_holds(_lesson_figures(0.14, 1.0, 0.95))
    assert not rnn.lesson_claim_holds(_lesson_figures(0.14, 0.85, 1.0))  # the LSTM fell short
    assert not rnn.lesson_claim_holds(_lesson_figures(0.14, 1.0, 0.6))  # the GRU fell short
    assert not rnn.lesson_claim_holds(_lesson_figures(0.45, 1.0, 1.0))  # the vanilla RNN remembered


def test_memory_init_opens_the_keep_gates_only():
    hidden, lag = 32, 100
    lstm = rnn.make_cell("lstm", 4, hidden, memory=lag)
    forget = lstm.bias_ih_l0[hidden : 2 * hidden] + lstm.bias_hh_l0[hidden : 2 * hidden]
    assert bool((forget >= 0).all() and (forget <= math.log(lag - 1) + 1e-6).all())
    assert torch.allclose(lstm.bias_ih_l0[:hidden] + lstm.bias_hh_l0[:hidden], -forget)
    gru = rnn.make_cell("gru", 4, hidden, memory=lag)
    assert bool((gru.bias_ih_l0[hidden : 2 * hidden] + gru.bias_hh_l0[hidden : 2 * hidden] >= 0).all())
    torch.manual_seed(0)
    plain = rnn.make_cell("rnn", 4, hidden)
    torch.manual_seed(0)
    assert torch.equal(rnn.make_cell("rnn", 4, hidden, memory=lag).weight_hh_l0, plain.weight_hh_l0)
