"""Background training runs: start one, ask how it goes, cancel it, list them all.

The ``train_model`` and ``list_models`` tools use this registry for every model in
:data:`taller.trainers.TRAINERS`. ``start`` creates the run folder (so the run id exists and
``status.json`` says ``running``) and returns at once; the trainer's
``train(config, run=run, cancel_event=event)`` runs in a daemon thread and reports progress
through :func:`taller.progress.emit`. One run per model at a time, across processes too: a
second ``start`` of a model that is still training — here or in another process (the model's
lock, see :mod:`taller.trainers.checkpoints`) — is refused with a clear message.

A daemon thread dies with its process, which suits the long-lived interfaces (the TUI, the
server). A short-lived command (``taller tool train_model``, ``taller ask``) starts its runs
inside :func:`detached_runs` instead: the run trains in a process of its own
(``python -m taller.trainers.detached``, in a new session, writing ``train.log`` in the run
folder) that outlives the command; ``start`` returns once that process holds the run's locks
and has written ``status.json``, or raises with its reason (data missing, model busy…).
:func:`cancel` reaches such a run too: it sends SIGTERM to the process that holds the run's lock,
which stops at its next step and saves ``last.pt`` first.

When the ``train_processes`` setting is above 1, every run is launched that way through
``torchrun --standalone --nproc_per_node N`` (distributed data-parallel, see
:mod:`taller.trainers.distributed`): rank 0 holds the run and answers the starter; ``cancel``
reaches rank 0, and all the processes stop at the same step. Started from a long-lived process
(the TUI, the server), rank 0 sends its progress events back through a FIFO and a thread here
publishes them on :data:`taller.progress.bus`, so the run's progress streams as a thread's would.
"""

from __future__ import annotations

import contextlib
import dataclasses
import importlib
import json
import os
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

from taller.progress import CancelledError
from taller.errors import ToolError
from taller.trainers import TRAINERS


@dataclass
class _ActiveRun:
    run_id: str
    model: str
    cancel_event: threading.Event
    run: Any  # engine.Run
    thread: threading.Thread | None = None
    started: float = field(default_factory=time.time)
    result: dict[str, Any] | None = None
    error: str | None = None
    state: str = "running"


_lock = threading.Lock()
_active: dict[str, _ActiveRun] = {}
_detached = False
# How long start() waits for a detached training process to take its run (it imports torch and
# reads the data set first).
DETACHED_START_TIMEOUT_S = 180.0


@contextlib.contextmanager
def detached_runs(enabled: bool = True) -> Iterator[None]:
    """Within the block, :func:`start` trains in a detached process that outlives this one."""
    global _detached
    previous, _detached = _detached, enabled
    try:
        yield
    finally:
        _detached = previous


def trainer_module(model: str) -> Any:
    """The trainer module of ``model``; ToolError for an unknown or not-yet-built model."""
    if model not in TRAINERS:
        raise ToolError(f"unknown model {model!r}; choose one of: {', '.join(TRAINERS)}")
    try:
        return importlib.import_module(TRAINERS[model])
    except ModuleNotFoundError as exc:
        if exc.name == TRAINERS[model]:
            raise ToolError(f"the {model} trainer is not available in this version of Taller") from exc
        raise


def build_config(model: str, epochs: int | None = None, **overrides: Any) -> Any:
    """The model's Config with ``epochs`` and any field overrides; clear errors for bad values."""
    module = trainer_module(model)
    config = module.Config()
    names = {f.name for f in dataclasses.fields(config)}
    unknown = sorted(set(overrides) - names)
    if unknown:
        raise ToolError(f"{model} has no setting {', '.join(unknown)}; settings: {', '.join(sorted(names))}")
    if epochs is not None:
        if isinstance(epochs, bool) or not isinstance(epochs, int) or epochs < 1:
            raise ToolError(f"epochs must be a whole number of at least 1, got {epochs!r}")
        overrides["epochs"] = epochs
    return dataclasses.replace(config, **overrides)


def _worker(active: _ActiveRun, module: Any, config: Any) -> None:
    try:
        metrics = module.train(config, run=active.run, cancel_event=active.cancel_event)
        active.result = metrics
        active.state = "finished"
    except CancelledError:
        active.state = "cancelled"
    except BaseException as exc:  # the thread must record every failure; the run's status says it too
        active.error = f"{type(exc).__name__}: {exc}"
        active.state = "failed"
        if active.run.status.get("state") == "running":
            active.run.fail(exc)


def start(model: str, epochs: int | None = None, **overrides: Any) -> str:
    """Start training ``model`` in the background; returns the run id at once.

    ``overrides`` set Config fields (``batch_size=64``, ``dry_run=True``, ``resume=True``...).
    """
    from taller.trainers.engine import Run

    from taller.locks import LockBusyError
    from taller.trainers.records import NothingToResumeError

    config = build_config(model, epochs, **overrides)
    module = trainer_module(model)
    # Missing data must be an answer now, not a failed run found later.
    check_data = getattr(module, "check_data", None)
    if check_data is not None:
        check_data(config)
    with _lock:
        for active in _active.values():
            if active.model == model and active.thread.is_alive():
                raise ToolError(
                    f"{model} is already training (run {active.run_id}); wait for it to finish or cancel it first"
                )
        processes = _train_processes()
        if _detached or processes > 1:  # several processes never fit in a thread of this one
            return _start_detached(model, {**overrides, **({"epochs": epochs} if epochs is not None else {})},
                                   processes)
        event = threading.Event()
        try:
            run = Run.create(model, config, resume=bool(getattr(config, "resume", False)), cancel_event=event)
        except (LockBusyError, NothingToResumeError) as exc:
            raise ToolError(str(exc)) from None
        active = _ActiveRun(run_id=run.run_id, model=model, cancel_event=event, run=run)
        active.thread = threading.Thread(
            target=_worker, args=(active, module, config), name=f"train-{run.run_id}", daemon=True
        )
        _active[run.run_id] = active
    active.thread.start()
    return run.run_id


def _train_processes() -> int:
    """The ``train_processes`` setting (1 when unset or below 1)."""
    from taller.config import get_settings

    value = getattr(get_settings(), "train_processes", 1)
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 1 else 1


def _start_detached(model: str, overrides: dict[str, Any], processes: int = 1) -> str:
    """Train ``model`` in a process of its own that outlives this one; its run id once it started.

    With ``processes`` > 1 that process is ``torchrun --standalone --nproc_per_node N`` running
    ``taller.trainers.detached`` in each worker; torchrun does not pass file descriptors on to its
    workers, so rank 0 answers in a file instead of the pipe.
    """
    ready_read, ready_write = os.pipe()
    early_output = tempfile.TemporaryFile()  # what the process says before its run folder exists
    ready_folder = tempfile.TemporaryDirectory(prefix="taller-ready-") if processes > 1 else None
    arguments = ["-m", "taller.trainers.detached", "--model", model, "--overrides", json.dumps(overrides)]
    events: tuple[int, str] | None = None  # the FIFO rank 0's progress comes back through, and its folder
    if ready_folder is not None:
        ready_file = Path(ready_folder.name) / "ready.json"
        command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", str(processes),
                   *arguments, "--ready-file", str(ready_file)]
        if not _detached:  # this process stays up (the TUI, the server): stream the run's progress here
            events = _progress_fifo()
            if events is not None:
                command += ["--events-fifo", str(Path(events[1]) / "events")]
    else:
        ready_file = None
        command = [sys.executable, *arguments, "--ready-fd", str(ready_write)]
    try:
        process = subprocess.Popen(command, pass_fds=(ready_write,), start_new_session=True,
                                   stdin=subprocess.DEVNULL, stdout=early_output, stderr=early_output)
    except OSError as exc:
        os.close(ready_read)
        os.close(ready_write)
        early_output.close()
        if ready_folder is not None:
            ready_folder.cleanup()
        _close_fifo(events)
        raise ToolError(f"could not start a training process for {model}: {exc.strerror or exc}") from None
    os.close(ready_write)
    answer = b""
    deadline = time.monotonic() + DETACHED_START_TIMEOUT_S
    try:
        while b"\n" not in answer:
            left = deadline - time.monotonic()
            if left <= 0:
                with contextlib.suppress(OSError):
                    os.killpg(process.pid, signal.SIGTERM)
                raise ToolError(f"the training process for {model} did not start within "
                                f"{DETACHED_START_TIMEOUT_S:g} s; it was stopped")
            if ready_file is not None:
                if ready_file.is_file():  # written whole (temporary file, then renamed)
                    answer = ready_file.read_bytes()
                    break
                if process.poll() is not None:
                    break
                time.sleep(min(left, 0.1))
                continue
            readable, _, _ = select.select([ready_read], [], [], min(left, 1.0))
            if readable:
                chunk = os.read(ready_read, 65536)
                if not chunk:
                    break
                answer += chunk
    finally:
        os.close(ready_read)
        if ready_folder is not None:
            ready_folder.cleanup()
    try:
        reply = json.loads(answer.decode("utf-8", errors="replace").splitlines()[0]) if answer.strip() else None
    except ValueError:
        reply = None
    if not isinstance(reply, dict) or not (reply.get("run_id") or reply.get("error")):
        try:
            code = process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            code = None
        early_output.seek(0)
        lines = [line for line in early_output.read()[-4000:].decode("utf-8", errors="replace").splitlines() if line.strip()]
        early_output.close()
        last = f": {lines[-1][:300]}" if lines else ""
        _close_fifo(events)
        raise ToolError(f"the training process for {model} exited (code {code}) before it started{last}")
    early_output.close()
    if reply.get("error"):
        _close_fifo(events)
        raise ToolError(str(reply["error"]))
    if events is not None:
        threading.Thread(target=_relay_progress, args=(process, events), name=f"progress-{reply['run_id']}",
                         daemon=True).start()
    return str(reply["run_id"])


def _progress_fifo() -> tuple[int, str] | None:
    """A FIFO in a private folder, opened for reading without waiting for a writer; None where
    there are no FIFOs (the run then trains without streaming its progress here)."""
    folder = tempfile.mkdtemp(prefix="taller-events-")
    try:
        os.mkfifo(Path(folder) / "events", 0o600)
        return os.open(Path(folder) / "events", os.O_RDONLY | os.O_NONBLOCK), folder
    except (OSError, AttributeError):
        shutil.rmtree(folder, ignore_errors=True)
        return None


def _close_fifo(events: tuple[int, str] | None) -> None:
    if events is not None:
        with contextlib.suppress(OSError):
            os.close(events[0])
        shutil.rmtree(events[1], ignore_errors=True)


def _relay_progress(process: subprocess.Popen, events: tuple[int, str]) -> None:
    """Publish the JSON lines rank 0 writes into the FIFO on this process's bus until the launch
    ends (then reap it). Before rank 0 opens the FIFO, and after it closes it, a read says end
    of file at once, hence the pause."""
    from taller.progress import bus

    fd, pending = events[0], b""
    try:
        while True:
            readable, _, _ = select.select([fd], [], [], 0.5)
            chunk = os.read(fd, 65536) if readable else b""
            if chunk:
                pending += chunk
                *lines, pending = pending.split(b"\n")
                for line in lines:
                    try:
                        event = json.loads(line)
                    except ValueError:
                        continue
                    if isinstance(event, dict):
                        bus.publish(event)
                continue
            if process.poll() is not None:
                break
            if readable:
                time.sleep(0.2)
    except OSError:
        pass
    finally:
        _close_fifo(events)


def _signal_other_process(run_id: str) -> bool:
    """SIGTERM to the process that trains ``run_id`` elsewhere, when it holds the run's lock."""
    from taller.locks import holder_of, is_locked
    from taller.trainers.checkpoints import list_runs, run_lock_path

    for status in list_runs():
        if status.get("run_id") != run_id:
            continue
        lock = run_lock_path(Path(status["path"]))
        holder = holder_of(lock) or {}
        pid = holder.get("pid")
        if status.get("state") != "running" or not is_locked(lock) or pid != status.get("pid") or pid == os.getpid():
            return False
        try:
            os.kill(pid, signal.SIGTERM)  # the trainer's process turns it into its cancel flag
        except OSError:
            return False
        return True
    return False


def cancel(run_id: str) -> bool:
    """Ask a running run to stop at its next step (it saves a checkpoint first). False if not running.

    A run trained by another process (a detached run, ``python -m taller.trainers.<model>``) is
    sent SIGTERM, which its process turns into the same cancel flag."""
    with _lock:
        active = _active.get(run_id)
    if active is None:
        return _signal_other_process(run_id)
    if not active.thread.is_alive():
        return False
    active.cancel_event.set()
    return True


def _describe(active: _ActiveRun) -> dict[str, Any]:
    status = active.run.status
    state = status.get("state", active.state)
    epoch = status.get("epoch")
    if active.thread.is_alive():
        state = "cancelling" if active.cancel_event.is_set() else "running"
        # status.json follows the checkpoints; this process knows the epochs trained since.
        epoch = max(int(epoch or 0), int(getattr(active.run, "completed_epochs", 0) or 0))
    return {
        "run_id": active.run_id,
        "model": active.model,
        "state": state,
        "epoch": epoch,
        "epochs": status.get("epochs"),
        "metrics": active.result if active.result is not None else status.get("metrics", {}),
        "error": active.error or status.get("error"),
        "created": status.get("created"),
        "finished": status.get("finished"),
        "device": status.get("device"),
        "path": status.get("path"),
        "world_size": status.get("world_size") or 1,
    }


def get(run_id: str) -> dict[str, Any]:
    """The state of one run (this process's or any on disk); ToolError if there is no such run."""
    with _lock:
        active = _active.get(run_id)
    if active is not None:
        return _describe(active)
    from taller.trainers.engine import list_runs

    for status in list_runs():
        if status.get("run_id") == run_id:
            return _from_disk(status)
    raise ToolError(f"no training run called {run_id!r}")


def _from_disk(status: dict[str, Any]) -> dict[str, Any]:
    return {
        "run_id": status.get("run_id"),
        "model": status.get("model"),
        "state": status.get("state"),
        "epoch": status.get("epoch"),
        "epochs": status.get("epochs"),
        "metrics": status.get("metrics", {}),
        "error": status.get("error"),
        "created": status.get("created"),
        "finished": status.get("finished"),
        "device": status.get("device"),
        "path": status.get("path"),
        "checkpoints": status.get("checkpoints", []),
        "pid": status.get("pid") if status.get("state") == "running" else None,
        "checkpoint": status.get("checkpoint"),
        "world_size": status.get("world_size") or 1,  # processes that trained it (torchrun)
    }


def list_all(model: str | None = None, problems: list[dict[str, str]] | None = None) -> list[dict[str, Any]]:
    """Running runs of this process and every run on disk, newest first.

    A run folder whose ``status.json`` is unusable is skipped; given a ``problems`` list, it is
    reported there as ``{"path", "problem"}`` (see :func:`taller.trainers.checkpoints.read_status`).
    """
    from taller.trainers.engine import list_runs

    with _lock:
        actives = dict(_active)
    rows = []
    for status in list_runs(model, problems=problems):
        active = actives.get(status.get("run_id"))
        row = _describe(active) if active is not None else _from_disk(status)
        row["checkpoints"] = status.get("checkpoints", [])
        rows.append(row)
    return rows


def wait(run_id: str, timeout: float | None = None) -> dict[str, Any]:
    """Block until the run ends (or ``timeout`` seconds pass); returns :func:`get`."""
    with _lock:
        active = _active.get(run_id)
    if active is not None:
        active.thread.join(timeout)
    return get(run_id)


def running() -> list[str]:
    """Run ids of this process's runs that are still training."""
    with _lock:
        return [run_id for run_id, active in _active.items() if active.thread.is_alive()]
