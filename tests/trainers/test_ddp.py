"""Distributed training under torchrun (2 processes, gloo on the CPU) with the real data sets.

What docs/trainers.md ("Several processes") promises: the same ``python -m taller.trainers.<name>``
trains under ``torchrun --nproc_per_node 2``; rank 0 alone writes the run's files (one run
folder, one ``metrics.jsonl`` with each epoch once, one TensorBoard writer per launch) and the
record says ``world_size``; a launch killed with SIGKILL mid-run resumes with ``--resume`` from its
last checkpoint and says so, with 2 processes or with 1; a cancel sent to rank 0 (what ``cancel``
does) stops every process at the same step with a checkpoint; a process that dies does not leave
the others waiting. Each process takes an equal, disjoint share of every global batch.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

import real_data
from taller.trainers import distributed

INTERVAL = 0.3  # seconds between checkpoints (30 s by default)
STEP_PAUSE = 0.04  # slows each step so that a kill lands mid-run on any machine

TRAINERS = {
    # 540 training images in global batches of 32: 17 steps an epoch.
    "autoencoder": (["--train-limit", "600", "--batch-size", "32", "--epochs", "3", "--patience", "0"], ("mnist",)),
    # ~1,800 Spanish/English training sentences in global batches of 32: ~57 steps an epoch.
    "birnn": (["--max-sentences", "2000", "--batch-size", "32", "--epochs", "3", "--patience", "0",
               "--embedding-dim", "16", "--hidden-size", "16", "--min-freq", "1"], ("spa-eng",)),
}


def environment(home: Path, data: tuple[str, ...], interval: float | None = INTERVAL,
                step_pause: float | None = STEP_PAUSE) -> dict[str, str]:
    env = {**os.environ, "TALLER_HOME": str(home), "TALLER_DATA_DIR": str(real_data.require(data)),
           "OMP_NUM_THREADS": "1", "TALLER_OFFLINE": "1", distributed.TIMEOUT_ENV: "60"}
    for name in ("TALLER_CHECKPOINT_INTERVAL_S", "TALLER_TEST_STEP_PAUSE_S", "TALLER_TEST_SAVE_PAUSE_S",
                 "WORLD_SIZE", "RANK", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
        env.pop(name, None)
    if interval is not None:
        env["TALLER_CHECKPOINT_INTERVAL_S"] = str(interval)
    if step_pause is not None:
        env["TALLER_TEST_STEP_PAUSE_S"] = str(step_pause)
    return env


def command(model: str, processes: int, *extra: str) -> list[str]:
    args = [*TRAINERS[model][0], "--device", "cpu", *extra]
    if processes == 1:
        return [sys.executable, "-m", f"taller.trainers.{model}", *args]
    return [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", str(processes),
            "-m", f"taller.trainers.{model}", *args]


def launch(home: Path, model: str, processes: int = 2, *extra: str, **env) -> subprocess.Popen:
    """The training in its own process group (torchrun and its workers), so a test can kill it all."""
    return subprocess.Popen(command(model, processes, *extra), env=environment(home, TRAINERS[model][1], **env),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)


def finish(process: subprocess.Popen, timeout: float = 150) -> tuple[int, str, str]:
    try:
        out, err = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        out, err = process.communicate()
        raise AssertionError(f"the training did not end within {timeout:g} s:\n{err[-3000:]}")
    return process.returncode, out, err


def wait_for(condition, what: str, process: subprocess.Popen, timeout: float = 120.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        if process.poll() is not None:
            _, err = process.communicate()
            raise AssertionError(f"the training ended (code {process.returncode}) before {what}:\n{err[-3000:]}")
        time.sleep(0.05)
    os.killpg(process.pid, signal.SIGKILL)
    raise AssertionError(f"timed out waiting for {what}")


def run_folder(home: Path, model: str) -> Path | None:
    root = home / "runs" / model
    folders = sorted(p for p in root.iterdir() if p.is_dir()) if root.is_dir() else []
    assert len(folders) <= 1, f"more than one run folder: {folders}"  # rank 0 alone creates it
    return folders[0] if folders else None


def status(folder: Path) -> dict:
    try:
        return json.loads((folder / "status.json").read_text())
    except (OSError, ValueError):
        return {}


def checkpoint_inside_epoch_2(folder: Path) -> bool:
    saved = status(folder).get("checkpoint") or {}
    return saved.get("epoch") == 1 and (saved.get("step") or 0) > 0


def epochs_logged(folder: Path) -> list[int]:
    lines = [json.loads(line) for line in (folder / "metrics.jsonl").read_text().splitlines() if line.strip()]
    return [line["epoch"] for line in lines]


def kill_mid_epoch_2(home: Path, model: str, processes: int = 2) -> tuple[Path, int, int]:
    """Train, wait for a time-based checkpoint inside epoch 2, SIGKILL the whole launch; returns
    the run folder and the (epoch, step) its last.pt holds."""
    process = launch(home, model, processes)
    folder = wait_for(lambda: run_folder(home, model), "the run folder", process)
    wait_for(lambda: checkpoint_inside_epoch_2(folder), "a checkpoint inside epoch 2", process)
    kill_everything(process)
    process.communicate(timeout=30)
    from taller.trainers.engine import list_runs, load_checkpoint

    assert {row["run_id"]: row for row in list_runs(model)}[folder.name]["state"] == "interrupted"
    checkpoint = load_checkpoint(folder / "last.pt")
    assert checkpoint["world_size"] == processes
    assert status(folder)["world_size"] == processes
    return folder, int(checkpoint["epoch"]), int(checkpoint["extra"]["step"])


def assert_resumed(home: Path, model: str, folder: Path, epoch: int, step: int, processes: int, launches: int) -> str:
    code, out, err = finish(launch(home, model, processes, "--resume", interval=None))
    assert code == 0, err[-3000:]
    where = f"from epoch {epoch + 1}, step {step}" if step else f"from the end of epoch {epoch}"
    assert f"resumed run {folder.name} {where}" in err
    assert err.count(f"resumed run {folder.name}") == 1  # rank 0 alone reports
    final = status(folder)
    assert final["state"] == "finished" and final["world_size"] == processes
    assert final["resumed_from"] == {"epoch": epoch, "step": step}
    epoch_lines = [e for e, line in zip(epochs_logged(folder), (folder / "metrics.jsonl").read_text().splitlines())
                   if '"train_loss"' in line or '"train_mse"' in line]
    assert epoch_lines == [1, 2, 3]  # each epoch once, across both launches: no rank wrote its own copy
    assert json.loads(out)["run_id"] == folder.name  # one final answer, rank 0's
    assert len(list((folder / "tensorboard").glob("events.out.tfevents.*"))) == launches  # one writer per launch
    assert not list(folder.glob(".*.tmp"))
    return err


@pytest.mark.parametrize("model", ["autoencoder", "birnn"])
def test_two_processes_killed_mid_run_resume_with_two(taller_home, model):
    folder, epoch, step = kill_mid_epoch_2(taller_home, model)
    assert (epoch, step > 0) == (1, True)
    assert_resumed(taller_home, model, folder, epoch, step, processes=2, launches=2)
    import tempfile

    # Rank 1's scratch folder (its pictures): the killed launch's is removed by the next, the next's at its end.
    assert not list(Path(tempfile.gettempdir()).glob(f"taller-{folder.name}-rank*"))


@pytest.mark.parametrize("first,then", [(2, 1), (1, 2)], ids=["2-then-1", "1-then-2"])
def test_a_checkpoint_resumes_with_another_number_of_processes(taller_home, first, then):
    folder, epoch, step = kill_mid_epoch_2(taller_home, "autoencoder", processes=first)
    err = assert_resumed(taller_home, "autoencoder", folder, epoch, step, processes=then, launches=2)
    saved_by = f"{first} process{'es' if first > 1 else ''}"
    assert f"saved by {saved_by}, continued by {then}" in err


def test_cancel_to_rank_0_stops_every_process_with_a_checkpoint(taller_home):
    # What `cancel` does to a run trained elsewhere: SIGTERM to the process that holds the run's lock.
    process = launch(taller_home, "autoencoder", 2)
    folder = wait_for(lambda: run_folder(taller_home, "autoencoder"), "the run folder", process)
    first = wait_for(lambda: status(folder).get("checkpoint"), "the first checkpoint", process)
    pid = status(folder)["pid"]
    assert pid != process.pid  # rank 0's worker, not torchrun
    os.kill(pid, signal.SIGTERM)
    code, _, err = finish(process, timeout=90)
    assert code != 0  # torchrun reports a cancelled worker as failed
    assert err.count("cancelled: training run") == 2 and "[rank0]: Traceback" not in err and "[rank1]: Traceback" not in err
    final = status(folder)
    assert final["state"] == "cancelled" and (folder / "last.pt").is_file()
    # Saved at the step the processes agreed on (a cancel right after the first save may stop there).
    from taller.trainers.engine import load_checkpoint

    saved = load_checkpoint(folder / "last.pt")
    assert (saved["epoch"], saved["extra"]["step"]) == (final["checkpoint"]["epoch"], final["checkpoint"]["step"])
    assert (saved["epoch"], saved["extra"]["step"]) >= (first["epoch"], first["step"]) and saved["saved"] >= first["saved"]


def test_a_dead_process_does_not_leave_the_other_waiting(taller_home):
    process = launch(taller_home, "autoencoder", 2, interval=None)
    folder = wait_for(lambda: run_folder(taller_home, "autoencoder"), "the run folder", process)
    wait_for(lambda: status(folder).get("device"), "training to start", process)
    time.sleep(1.0)
    rank_1 = [pid for pid in _children(process.pid) if _environ(pid).get("RANK") == "1"]
    assert len(rank_1) == 1
    started = time.monotonic()
    os.kill(rank_1[0], signal.SIGKILL)
    code, _, _ = finish(process, timeout=60)  # torchrun tears the group down; far below the 60 s timeout
    assert code != 0 and time.monotonic() - started < 45
    from taller.trainers.engine import list_runs

    assert list_runs("autoencoder")[0]["state"] in ("cancelled", "failed", "interrupted")


def test_train_model_launches_through_torchrun_when_train_processes_is_2(taller_home):
    from taller.trainers import runs

    # `taller tool train_model` from a shell, the setting at 2: full MNIST, one epoch slowed to >= 0.2 s a
    # step, so it is still training when cancelled.
    env = {**environment(taller_home, ("mnist",), interval=0.5, step_pause=0.2), "TALLER_TRAIN_PROCESSES": "2"}
    started = subprocess.run([sys.executable, "-m", "taller", "tool", "train_model", "--args",
                              json.dumps({"model": "autoencoder", "epochs": 1})],
                             env=env, capture_output=True, text=True, timeout=240)
    assert started.returncode == 0, started.stderr[-3000:]
    result = json.loads(started.stdout)
    run_id, pid = result["run_id"], result["pid"]
    folder = taller_home / "runs" / "autoencoder" / run_id
    try:
        assert result["processes"] == 2 and "with 2 processes (torchrun" in result["summary"]
        assert isinstance(pid, int) and pid != os.getpid() and status(folder)["world_size"] == 2
        deadline = time.monotonic() + 120
        while not (folder / "last.pt").is_file():
            assert time.monotonic() < deadline, "no checkpoint from the torchrun launch"
            time.sleep(0.1)
        assert runs.cancel(run_id)  # SIGTERM to rank 0, which holds the run's lock: every worker stops
        deadline = time.monotonic() + 60
        while status(folder).get("state") != "cancelled":
            assert time.monotonic() < deadline, "the torchrun launch did not stop"
            time.sleep(0.1)
        log = (folder / "train.log").read_text()
        assert "(rank 0 of 2)" in log and "(rank 1 of 2)" in log
    finally:
        if Path(f"/proc/{pid}").exists():
            os.kill(pid, signal.SIGKILL)


def test_a_torchrun_launch_from_a_long_lived_process_streams_its_progress(taller_home, monkeypatch):
    # The TUI and the server start runs in their own process; with train_processes 2 the run
    # trains under torchrun instead, and rank 0's progress events come back on this process's bus.
    from taller.config import get_settings
    from taller.progress import bus
    from taller.trainers import runs

    for name, value in environment(taller_home, ("mnist",), interval=None, step_pause=None).items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("TALLER_TRAIN_PROCESSES", "2")
    get_settings(reload=True)
    events: list[dict] = []
    unsubscribe = bus.subscribe(events.append)
    try:
        run_id = runs.start("autoencoder", 2, train_limit=600, batch_size=32, patience=0, device="cpu")
        deadline = time.monotonic() + 150
        while runs.get(run_id)["state"] in ("running", "cancelling"):
            assert time.monotonic() < deadline, "the torchrun launch did not finish"
            time.sleep(0.2)
        time.sleep(1.0)  # the relay publishes what is left in the FIFO, then ends
    finally:
        unsubscribe()
    assert runs.get(run_id)["state"] == "finished" and runs.get(run_id)["world_size"] == 2
    ours = [event for event in events if event.get("run_id") == run_id]
    assert any("training on cpu" in (event.get("message") or "") for event in ours)
    epoch_ends = [event["epoch"] for event in ours if event.get("metric") is not None and event.get("step") == event.get("total")]
    assert epoch_ends == [1, 2]  # each epoch's end once: rank 0 alone reports


def kill_everything(process: subprocess.Popen) -> None:
    """SIGKILL the workers, then torchrun: a crash of the whole launch. (torchrun starts each
    worker in a session of its own, so its process group alone is not all of it; killed first,
    torchrun would make the workers stop cleanly, see the next test.)"""
    for pid in _children(process.pid):
        os.kill(pid, signal.SIGKILL)
    os.killpg(process.pid, signal.SIGKILL)


def test_workers_stop_with_a_checkpoint_when_torchrun_is_killed(taller_home):
    process = launch(taller_home, "autoencoder", 2, interval=None)
    folder = wait_for(lambda: run_folder(taller_home, "autoencoder"), "the run folder", process)
    wait_for(lambda: status(folder).get("device"), "training to start", process)
    workers = _children(process.pid)
    assert len(workers) == 2
    time.sleep(1.0)
    os.killpg(process.pid, signal.SIGKILL)  # torchrun's own group: the workers are not in it
    deadline = time.monotonic() + 60
    while any(Path(f"/proc/{pid}").exists() and "(Z)" not in _state(pid) for pid in workers):
        assert time.monotonic() < deadline, "the workers kept running without torchrun"
        time.sleep(0.1)
    process.communicate(timeout=30)
    final = status(folder)
    assert final["state"] == "cancelled" and (folder / "last.pt").is_file()  # stopped at a step, saved


def _state(pid: int) -> str:
    try:
        return "(" + Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] + ")"
    except (OSError, IndexError):
        return "(gone)"


def _children(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                parent = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            if parent == pid:
                found.append(int(entry.name))
    return found


def _environ(pid: int) -> dict[str, str]:
    try:
        raw = (Path("/proc") / str(pid) / "environ").read_bytes()
    except OSError:
        return {}
    pairs = (item.split(b"=", 1) for item in raw.split(b"\0") if b"=" in item)
    return {key.decode(errors="replace"): value.decode(errors="replace") for key, value in pairs}


# --- the shares of the data -------------------------------------------------------------------------


@pytest.mark.parametrize("count,batch_size,world", [(64, 16, 2), (100, 32, 2), (103, 32, 3), (7, 4, 4), (50, 9, 2)])
def test_every_process_gets_an_equal_share_and_together_they_cover_the_data(count, batch_size, world):
    order = torch.randperm(count, generator=torch.Generator().manual_seed(1))
    shares = [distributed.epoch_shares(order, batch_size, rank, world) for rank in range(world)]
    steps = -(-count // batch_size)
    assert all(len(share) == steps for share in shares)  # the same number of steps: no collective waits
    for step in range(steps):
        sizes = {len(shares[rank][step]) for rank in range(world)}
        assert len(sizes) == 1  # equal rows in every process at every step
        batch = set(order[step * batch_size : (step + 1) * batch_size].tolist())
        taken = [shares[rank][step].tolist() for rank in range(world)]
        assert set().union(*taken) == batch  # the shares cover the global batch, nothing else
        extra = sum(len(t) for t in taken) - len(batch)
        assert extra == (-len(batch)) % world  # only the padding of an uneven batch repeats
        if len(batch) % world == 0:
            assert all(not set(taken[a]) & set(taken[b]) for a in range(world) for b in range(a + 1, world))
    covered = set().union(*(set(s.tolist()) for share in shares for s in share))
    assert covered == set(range(count))


def test_device_batches_give_each_process_its_share_of_the_single_process_batches():
    data = torch.arange(40).float().unsqueeze(1)
    per_rank = [device_batches(data, rank, 2) for rank in range(2)]
    assert [len(batch) for batch in per_rank[0]] == [len(batch) for batch in per_rank[1]] == [8, 8, 4]
    for first, second in zip(*per_rank):
        assert not set(first.tolist()) & set(second.tolist())
    assert sorted(v for batches in per_rank for batch in batches for v in batch.tolist()) == list(range(40))
    # The same global batches, in the same order, as one process: rank 0 + rank 1 of a step is its batch.
    for step, batch in enumerate(device_batches(data, 0, 1)):
        assert sorted(torch.cat([per_rank[0][step], per_rank[1][step]]).tolist()) == sorted(batch.tolist())


def device_batches(data: torch.Tensor, rank: int, world: int) -> list[torch.Tensor]:
    from taller.trainers.engine import DeviceBatches

    return [batch[0].squeeze(1) for batch in DeviceBatches([data], batch_size=16, device="cpu", generator_seed=3,
                                                           rank=rank, world_size=world)]
