"""Run every trainer's lesson on this machine and print its figures, its time and whether its claim held.

Each lesson (:mod:`taller.trainers.lessons`) is a few short trainings that show what its model is
there to teach; its claim is checked on the figures of this very run. The issue's budget is ten
minutes per lesson on a laptop CPU, so the time is printed beside each one.

    python bench/lessons.py                          # all lessons, seed 0
    python bench/lessons.py --only rnn,vae --seed 1
    python bench/lessons.py --docs                   # also copy each plot to docs/images/lesson_<model>.png
    python bench/lessons.py --json /tmp/lessons.json

Exit status 1 when any lesson's claim did not hold (or a lesson failed). State goes to a
temporary TALLER_HOME unless one is set; the data sets resolve as everywhere (TALLER_DATA_DIR).
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib
import json
import os
import platform
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

BUDGET_S = 600  # the limit per lesson on a laptop CPU


def _machine() -> str:
    import torch

    if torch.cuda.is_available():
        return torch.cuda.get_device_name(0)
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{os.cpu_count()} CPU cores ({cpu}), torch threads {torch.get_num_threads()}"


def _figures(figures: dict, limit: int = 400) -> str:
    text = json.dumps(figures, ensure_ascii=False, default=str)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def run_one(model: str, seed: int) -> dict:
    from taller.trainers import MODELS

    module = importlib.import_module(MODELS[model].module)
    config = dataclasses.replace(module.Config(), lesson=True, seed=seed)
    started = time.perf_counter()
    try:
        metrics = module.train(config)
    except Exception as exc:  # one broken lesson must not hide the others' figures
        return {"model": model, "error": f"{type(exc).__name__}: {exc}", "seconds": round(time.perf_counter() - started, 1)}
    return {"model": model, "lesson": metrics["lesson"], "claim": metrics["claim"], "held": metrics["claim_held"],
            "figures": metrics["figures"], "reading": metrics["reading"], "seconds": round(time.perf_counter() - started, 1),
            "plot": (metrics.get("images") or [None])[0], "device": metrics.get("device")}


def main(argv: list[str] | None = None) -> int:
    from taller.trainers import lesson_names

    parser = argparse.ArgumentParser(description=__doc__.strip().splitlines()[0])
    parser.add_argument("--only", default="", help="comma-separated models (default: every model with a lesson)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--docs", action="store_true", help="copy each plot to docs/images/lesson_<model>.png")
    parser.add_argument("--json", default="", help="write the results to this file")
    args = parser.parse_args(argv)
    models = [m for m in args.only.split(",") if m] or list(lesson_names())
    unknown = sorted(set(models) - set(lesson_names()))
    if unknown:
        parser.error(f"no lesson for {', '.join(unknown)}; lessons: {', '.join(lesson_names())}")
    if not os.environ.get("TALLER_HOME"):
        os.environ["TALLER_HOME"] = tempfile.mkdtemp(prefix="taller-lessons-")
    print(f"# lessons on {_machine()}, seed {args.seed}, {time.strftime('%Y-%m-%d %H:%M')}", flush=True)
    results = []
    for model in models:
        print(f"## {model} …", flush=True)
        outcome = run_one(model, args.seed)
        results.append(outcome)
        if "error" in outcome:
            print(f"   FAILED after {outcome['seconds']} s: {outcome['error']}", flush=True)
            continue
        verdict = "HELD" if outcome["held"] else "DID NOT HOLD"
        over = "" if outcome["seconds"] <= BUDGET_S else f" (over the {BUDGET_S} s budget)"
        print(f"   {outcome['lesson']} — {outcome['seconds']} s{over} on {outcome['device']}", flush=True)
        print(f"   claim: {outcome['claim']} → {verdict}", flush=True)
        print(f"   figures: {_figures(outcome['figures'])}", flush=True)
        print(f"   reading: {outcome['reading']}", flush=True)
        if args.docs and outcome.get("plot"):
            target = ROOT / "docs" / "images" / f"lesson_{model}.png"
            shutil.copyfile(outcome["plot"], target)
            print(f"   plot → {target.relative_to(ROOT)}", flush=True)
    print("\n| lesson | claim held | seconds |\n|---|---|---:|")
    for outcome in results:
        held = "error" if "error" in outcome else ("yes" if outcome["held"] else "**no**")
        print(f"| {outcome['model']} | {held} | {outcome['seconds']} |")
    if args.json:
        Path(args.json).write_text(json.dumps({"machine": _machine(), "seed": args.seed, "results": results},
                                              indent=2, ensure_ascii=False, default=str))
    return 0 if all(outcome.get("held") for outcome in results) else 1


if __name__ == "__main__":
    raise SystemExit(main())
