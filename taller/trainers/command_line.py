"""``python -m taller.trainers.<name>``: every trainer's command line, built from its Config.

Part of the training engine (:mod:`taller.trainers.engine` re-exports :func:`cli`).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import signal
import sys
import threading
from typing import Any, Callable

from taller.progress import CancelledError
from taller.trainers.checkpoints import jsonable


def cli(config_class: type, train: Callable[..., dict[str, Any]], argv: list[str] | None = None) -> int:
    """``python -m taller.trainers.<name>``: one flag per Config field, progress on stderr.

    SIGTERM (what another process's ``cancel`` sends) and a first Ctrl-C stop the run at its next
    step with a checkpoint. Under ``torchrun`` the same command runs in every process; rank 0 alone
    prints progress and the final metrics. Exit codes: 0 trained, 1 cancelled or failed (a full disk says so in one line),
    2 bad arguments or nothing to resume, 3 the model is already training elsewhere.
    """
    parser = argparse.ArgumentParser(description=(sys.modules[train.__module__].__doc__ or "").strip().splitlines()[0])
    for f in dataclasses.fields(config_class):
        flag = "--" + f.name.replace("_", "-")
        default = f.default if f.default is not dataclasses.MISSING else f.default_factory()  # type: ignore[misc]
        kind = f.type if isinstance(f.type, str) else getattr(f.type, "__name__", "str")
        if kind == "bool":
            parser.add_argument(flag, action=argparse.BooleanOptionalAction, default=default)
        elif kind.startswith("int"):
            parser.add_argument(flag, type=int, default=default)
        elif kind.startswith("float"):
            parser.add_argument(flag, type=float, default=default)
        elif kind.startswith("tuple") or kind.startswith("list"):
            parser.add_argument(flag, type=lambda s: tuple(int(x) for x in s.split(",")), default=default)
        else:
            parser.add_argument(flag, type=str, default=default)
    args = parser.parse_args(argv)
    config = config_class(**{f.name: getattr(args, f.name) for f in dataclasses.fields(config_class)})
    if getattr(config, "epochs", 1) < 1:
        parser.error("--epochs must be at least 1")

    def show(event: dict[str, Any]) -> None:
        if event.get("step") is not None and event.get("step") == event.get("total"):
            metric = f" {event['metric_name']}={event['metric']:.4f}" if event.get("metric") is not None else ""
            loss = f" loss={event['loss']:.4f}" if event.get("loss") is not None else ""
            print(f"epoch {event['epoch']}/{event['epochs']}{loss}{metric}", file=sys.stderr, flush=True)
        elif event.get("step") is None and event.get("message"):  # started on a device, resumed from…
            print(event["message"], file=sys.stderr, flush=True)

    from taller.locks import LockBusyError

    cancel = threading.Event()
    def interrupt(*_: Any) -> None:  # Ctrl-C: stop at the next step with a checkpoint; twice: at once
        if cancel.is_set():
            raise KeyboardInterrupt
        cancel.set()
        print("stopping at the next step with a checkpoint (Ctrl-C again to stop at once)", file=sys.stderr, flush=True)

    main_thread = threading.current_thread() is threading.main_thread()
    previous = (signal.signal(signal.SIGTERM, lambda *_: cancel.set()), signal.signal(signal.SIGINT, interrupt)) \
        if main_thread else None
    try:
        metrics = train(config, cancel_event=cancel, on_progress=show)
    except CancelledError as exc:
        print(f"cancelled: {exc}", file=sys.stderr)
        return 1
    except LockBusyError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 3
    except (FileNotFoundError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:  # a full disk: RunWriteError says what was being saved where
        print(f"error: {exc}", file=sys.stderr)
        return 1
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous[0])
            signal.signal(signal.SIGINT, previous[1])
    from taller.trainers import distributed

    if distributed.is_writer():  # under torchrun, one answer (rank 0's), not one per process
        print(json.dumps(jsonable(metrics), indent=2, ensure_ascii=False))
    return 0
