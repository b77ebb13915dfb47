"""``python -m taller.trainers.detached``: one background training run in a process of its own.

:func:`taller.trainers.runs.start` runs this, in a new session, when the process that asks for
the training is about to exit (``taller tool train_model``, ``taller ask``): a thread would die
with it. The process takes the run (the model's and the run's locks, ``status.json``), answers
the starter on ``--ready-fd`` with one JSON line — ``{"run_id", "path", "pid", "log"}`` or
``{"error"}`` — then writes everything else to ``train.log`` in the run folder and trains.
SIGTERM and SIGINT set the run's cancel flag (it stops at the next step and saves ``last.pt``);
SIGHUP is ignored, so closing the terminal does not stop it.
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


def _answer(fd: int, reply: dict[str, Any]) -> None:
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            out.write(json.dumps(reply, ensure_ascii=False) + "\n")
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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Train one model in a process of its own (see the module doc).")
    parser.add_argument("--model", required=True)
    parser.add_argument("--overrides", default="{}", help="Config fields as a JSON object (epochs, resume, ...)")
    parser.add_argument("--ready-fd", type=int, required=True)
    args = parser.parse_args(argv)

    cancel = threading.Event()
    for number in (signal.SIGTERM, signal.SIGINT):
        signal.signal(number, lambda *_: cancel.set())
    signal.signal(signal.SIGHUP, signal.SIG_IGN)

    from taller.errors import TallerError
    from taller.progress import CancelledError, bus
    from taller.trainers.engine import Run
    from taller.trainers.runs import build_config, trainer_module

    try:
        overrides = json.loads(args.overrides)
        module = trainer_module(args.model)
        config = build_config(args.model, **overrides)
        run = Run.create(args.model, config, cancel_event=cancel)
    except (TallerError, OSError, ValueError, TypeError) as exc:
        _answer(args.ready_fd, {"error": str(exc)})
        return 2
    log = run.dir / "train.log"
    try:
        fd = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        os.dup2(fd, 1)
        os.dup2(fd, 2)
        os.close(fd)
    except OSError:
        pass  # no log (a full disk): the run's status still says how it went
    _answer(args.ready_fd, {"run_id": run.run_id, "path": str(run.dir), "pid": os.getpid(), "log": str(log)})
    bus.subscribe(_log_event)
    print(f"training {args.model} as run {run.run_id} in process {os.getpid()}", flush=True)
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
    print(json.dumps({key: value for key, value in metrics.items() if not isinstance(value, (list, dict))},
                     ensure_ascii=False, default=str), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
