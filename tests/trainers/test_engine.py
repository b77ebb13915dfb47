"""The shared engine: devices, batching, early stopping, run folders, checkpoints, progress, resume."""

from __future__ import annotations

import json
import threading

import pytest
import torch

from taller.progress import CancelledError, bus
from taller.trainers import engine


def _fake_accelerators(monkeypatch, cuda: bool, mps: bool) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: cuda)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: mps)


def test_select_device_prefers_cuda_then_mps_then_cpu(monkeypatch):
    _fake_accelerators(monkeypatch, cuda=True, mps=True)
    assert engine.select_device("auto") == torch.device("cuda")
    _fake_accelerators(monkeypatch, cuda=False, mps=True)
    assert engine.select_device("auto") == torch.device("mps")
    assert engine.select_device(None) == torch.device("mps")
    _fake_accelerators(monkeypatch, cuda=False, mps=False)
    assert engine.select_device("auto") == torch.device("cpu")
    assert engine.select_device(" CPU ") == torch.device("cpu")


def test_select_device_follows_the_setting_and_refuses_what_is_missing(monkeypatch):
    from taller.config import get_settings

    _fake_accelerators(monkeypatch, cuda=True, mps=False)
    monkeypatch.setenv("TALLER_DEVICE", "cpu")
    get_settings(reload=True)
    assert engine.select_device("auto") == torch.device("cpu")  # the setting beats the GPU
    _fake_accelerators(monkeypatch, cuda=False, mps=False)
    with pytest.raises(ValueError, match="no CUDA"):
        engine.select_device("cuda")
    with pytest.raises(ValueError, match="MPS is not available"):
        engine.select_device("mps")
    with pytest.raises(ValueError, match="unknown device"):
        engine.select_device("tpu-9000")


def test_seed_everything_repeats_random_numbers():
    engine.seed_everything(7)
    first = torch.rand(3)
    engine.seed_everything(7)
    assert torch.equal(first, torch.rand(3))


def test_device_batches_cover_every_row_once():
    x = torch.arange(10).float().unsqueeze(1)
    y = torch.arange(10)
    batches = engine.DeviceBatches([x, y], batch_size=4, device="cpu", shuffle=True, generator_seed=0)
    assert len(batches) == 3
    seen = torch.cat([yb for _, yb in batches])
    assert sorted(seen.tolist()) == list(range(10))
    for xb, yb in batches:  # rows stay paired after shuffling
        assert torch.equal(xb.squeeze(1).long(), yb)
    dropped = engine.DeviceBatches([x, y], batch_size=4, device="cpu", drop_last=True)
    assert len(dropped) == 2 and all(len(b[0]) == 4 for b in dropped)
    with pytest.raises(ValueError):
        engine.DeviceBatches([x, y[:5]], batch_size=2)


def test_make_batches_falls_back_to_dataloader_when_over_budget():
    x = torch.randn(20, 3)
    fits = engine.make_batches([x], 8, "cpu")
    assert isinstance(fits, engine.DeviceBatches)
    streamed = engine.make_batches([x], 8, "cpu", memory_budget_bytes=10)
    assert isinstance(streamed, engine.LoaderBatches)
    assert len(streamed) == 3 and sum(len(b[0]) for b in streamed) == 20


def test_early_stopping_min_and_max():
    stopper = engine.EarlyStopping(patience=2, mode="min")
    assert stopper.step(1.0) and stopper.step(0.5)
    assert not stopper.step(0.6) and not stopper.should_stop
    assert not stopper.step(0.7) and stopper.should_stop
    assert stopper.best == 0.5
    up = engine.EarlyStopping(patience=1, mode="max", min_delta=0.1)
    assert up.step(0.5)
    assert not up.step(0.55)  # not better by min_delta
    assert up.should_stop


class _Config:
    pass


def _config():
    from dataclasses import dataclass

    @dataclass
    class Config:
        epochs: int = 3
        lr: float = 0.1

    return Config()


def test_run_writes_status_metrics_and_atomic_checkpoint(taller_home):
    config = _config()
    run = engine.Run.create("toy", config)
    assert run.dir == taller_home / "runs" / "toy" / run.run_id
    assert run.run_id.startswith("toy-")
    assert json.loads((run.dir / "config.json").read_text())["lr"] == 0.1
    model = torch.nn.Linear(3, 2)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    run.log_epoch(1, {"loss": torch.tensor(0.5), "val_loss": 0.25})
    path = run.save_checkpoint(engine.cpu_state(model), optimizer.state_dict(), 1, 0.25, {"note": "x"}, name="best.pt")
    assert not list(run.dir.glob(".*.tmp"))  # no temp file left behind
    loaded = engine.load_checkpoint(path)
    assert loaded["config"] == {"epochs": 3, "lr": 0.1} and loaded["config_class"] == "Config"
    assert loaded["epoch"] == 1 and loaded["extra"] == {"note": "x"}
    clone = torch.nn.Linear(3, 2)
    clone.load_state_dict(loaded["model"])
    sample = torch.randn(4, 3)
    assert torch.equal(clone(sample), model(sample))
    lines = (run.dir / "metrics.jsonl").read_text().splitlines()
    assert json.loads(lines[0])["val_loss"] == 0.25 and json.loads(lines[0])["loss"] == 0.5
    result = run.finish({"val_loss": 0.25})
    assert result["run_id"] == run.run_id
    runs = engine.list_runs("toy")
    assert runs[0]["state"] == "finished" and runs[0]["metrics"]["val_loss"] == 0.25
    assert engine.latest_checkpoint("toy") == path


def test_load_checkpoint_rejects_garbage(tmp_path):
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match="not a readable"):
        engine.load_checkpoint(bad)
    with pytest.raises(FileNotFoundError):
        engine.load_checkpoint(tmp_path / "missing.pt")


def test_progress_events_are_throttled_and_carry_eta():
    events, direct = [], []
    unsubscribe = bus.subscribe(events.append)
    try:
        run = engine.Run.create("toy", _config(), on_progress=direct.append)
        for step in range(1, 101):
            run.progress(1, 2, step, 100, torch.tensor(1.0 / step), metric_name="val")
        run.progress(2, 2, 1, 100, 0.1)
    finally:
        unsubscribe()
    mine = [e for e in events if e.get("run_id") == run.run_id]
    assert 1 <= len(mine) < 50  # throttled, but the end of the epoch always goes out
    assert any(e["step"] == 100 for e in mine)
    last = [e for e in mine if e["step"] == 100][0]
    assert last["type"] == "progress" and last["source"] == "train_model" and last["model"] == "toy"
    assert abs(last["loss"] - 0.01) < 1e-6
    assert direct == mine


def test_cancel_and_resume_the_unfinished_run(taller_home):
    event = threading.Event()
    run = engine.Run.create("toy", _config(), cancel_event=event)
    run.check_cancelled()  # not set: nothing happens
    model = torch.nn.Linear(2, 2)
    event.set()
    with pytest.raises(CancelledError):
        with run:
            try:
                run.check_cancelled()
            except CancelledError:
                run.save_checkpoint(engine.cpu_state(model), None, 1, None)
                raise
    assert engine.list_runs("toy")[0]["state"] == "cancelled"
    again = engine.Run.create("toy", _config(), resume=True)
    assert again.run_id == run.run_id
    assert again.resume_checkpoint is not None and again.resume_checkpoint["epoch"] == 1
    # Nothing to resume is said, never a silent new run from zero.
    with pytest.raises(FileNotFoundError, match="nothing to resume: other has no runs yet"):
        engine.Run.create("other", _config(), resume=True)
    assert not (taller_home / "runs" / "other").exists() or not any(p.is_dir() for p in (taller_home / "runs" / "other").iterdir())


def test_failed_run_records_the_error():
    run = engine.Run.create("toy", _config())
    with pytest.raises(RuntimeError):
        with run:
            raise RuntimeError("boom")
    status = engine.list_runs("toy")[0]
    assert status["state"] == "failed" and "boom" in status["error"]
