"""``python -m taller.trainers.detached``: one background training run in a process of its own.

:func:`taller.trainers.runs.start` runs this, in a new session, when the process that asks for
the training is about to exit (``taller tool train_model``, ``taller ask``): a thread would die
with it. The process takes the run (the model's and the run's locks, ``status.json``), answers
the starter on ``--ready-fd`` with one JSON line — ``{"run_id", "path", "pid", "log"}`` or
``{"error"}`` — then writes everything else to ``train.log`` in the run folder and trains.
SIGTERM and SIGINT set the run's cancel flag (it stops at the next step and saves ``last.pt``);
SIGHUP is ignored, so closing the terminal does not stop it.

Under torchrun (the ``train_processes`` setting) this module runs in every worker: rank 0 takes
the run and answers in the file ``--ready-file`` names (torchrun passes no file descriptors on to
its workers); every worker writes to the run's ``train.log``, and only rank 0 reports progress.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import threading
import traceback
from typing import Any


def _answer(fd: int | None, path: str | None, reply: dict[str, Any]) -> None:
    from taller.trainers import distributed

    if not distributed.is_writer():
        return  # rank 0 answers for the launch
    line = json.dumps(reply, ensure_ascii=False) + "\n"
    try:
        if path:
            temporary = f"{path}.{os.getpid()}.tmp"
            with open(temporary, "w", encoding="utf-8") as out:
                out.write(line)
            os.replace(temporary, path)  # the starter never reads half an answer
            return
        if fd is not None:
            with os.fdopen(fd, "w", encoding="utf-8") as out:
                out.write(line)
    except OSError:  # the starter is gone: nothing to tell
        pass


def _log_event(event: dict[str, Any]) -> None:
    """Epoch ends, starts, resumes and endings go to train.log (every step would be too much)."""
    step, total = event.get("step"), event.get("total")
    if step is not None and step != total:
        return
    line = event.get("message") or ""
    if event.get("loss") is not None:
        line += f", loss {event['loss']:.4f}"
    if event.get("metric") is not None:
        line += f", {event.get('metric_name') or 'metric'} {event['metric']:.4f}"
    print(line, flush=True)


def _stream_events(path: str, bus: Any) -> None:
    """Write every progress event to the starter's FIFO (a long-lived process that relays them to
    its interfaces). Never blocks training: a line the reader has no room for is dropped, and
    when the starter has gone the stream stops."""
    import select

    from taller.trainers.checkpoints import jsonable

    try:
        fd: int | None = os.open(path, os.O_WRONLY | os.O_NONBLOCK)
    except OSError:  # no reader any more (ENXIO): nothing to stream to
        return
    holder = {"fd": fd}

    def send(event: dict[str, Any]) -> None:
        fd = holder["fd"]
        if fd is None:
            return
        data = (json.dumps(jsonable(event), ensure_ascii=False) + "\n").encode("utf-8")
        if len(data) > select.PIPE_BUF:
            return  # only a line up to PIPE_BUF bytes is written whole at once
        try:
            os.write(fd, data)
        except BlockingIOError:
            pass  # the reader is behind: this event is dropped, the next ones follow
        except OSError:  # the starter exited (EPIPE)
            holder["fd"] = None
            os.close(fd)

    bus.subscribe(send)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Train one model in a process of its own (see the module doc).")
    parser.add_argument("--model", required=True)
    parser.add_argument("--overrides", default="{}", help="Config fields as a JSON object (epochs, resume, ...)")
    ready = parser.add_mutually_exclusive_group(required=True)
    ready.add_argument("--ready-fd", type=int)
    ready.add_argument("--ready-file", help="under torchrun: rank 0 writes its answer to this file")
    parser.add_argument("--events-fifo", help="rank 0 also writes its progress events here, one JSON line each")
    args = parser.parse_args(argv)

    cancel = threading.Event()
    for number in (signal.SIGTERM, signal.SIGINT):
        signal.signal(number, lambda *_: cancel.set())
    signal.signal(signal.SIGHUP, signal.SIG_IGN)

    from taller.errors import TallerError
    from taller.progress import CancelledError, bus
    from taller.trainers import distributed
    from taller.trainers.engine import Run
    from taller.trainers.runs import build_config, trainer_module

    try:
        overrides = json.loads(args.overrides)
        module = trainer_module(args.model)
        config = build_config(args.model, **overrides)
        run = Run.create(args.model, config, cancel_event=cancel)
    except (TallerError, OSError, ValueError, TypeError) as exc:
        _answer(args.ready_fd, args.ready_file, {"error": str(exc)})
        return 2
    log = run.record_dir / "train.log"  # rank 0's folder; the other workers append to it too (one node)
    try:
        fd = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        os.dup2(fd, 1)
        os.dup2(fd, 2)
        os.close(fd)
    except OSError:
        pass  # no log (a full disk): the run's status still says how it went
    _answer(args.ready_fd, args.ready_file, {"run_id": run.run_id, "path": str(run.record_dir), "pid": os.getpid(),
                                             "log": str(log)})
    bus.subscribe(_log_event)
    if args.events_fifo and distributed.is_writer():
        _stream_events(args.events_fifo, bus)
    rank = f" (rank {distributed.rank()} of {distributed.world_size()})" if distributed.world_size() > 1 else ""
    print(f"training {args.model} as run {run.run_id} in process {os.getpid()}{rank}", flush=True)
    try:
        metrics = module.train(config, run=run, cancel_event=cancel)
    except CancelledError as exc:
        print(f"cancelled: {exc}", flush=True)
        return 130
    except BaseException as exc:  # the run's status says it too (the engine marks it failed)
        if run.status.get("state") == "running":
            run.fail(exc)
        traceback.print_exc()
        return 1
    if distributed.is_writer():  # one summary per run, not one per torchrun worker
        print(json.dumps({key: value for key, value in metrics.items() if not isinstance(value, (list, dict))},
                         ensure_ascii=False, default=str), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
