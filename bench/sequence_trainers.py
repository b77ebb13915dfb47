"""Sequence-trainer benchmark: rnn (memory + forecasting), birnn (uni vs bi) and seq2seq (BLEU).

``BENCHMARKS`` is a list of callables ``bench(args) -> list[dict]`` that ``bench/trainers.py``
includes in its table (``args`` is its ``argparse.Namespace``: ``epochs``, ``train_limit``,
``device``, ``only``); each row has ``trainer``, ``device``, ``metric``, ``engine_val``,
``engine_train_s`` and, where a plain loop is meaningful (birnn, seq2seq), ``plain_train_s``:
the same model and data trained with a textbook ``DataLoader`` loop (``.to(device)`` per batch,
``loss.item()`` every step, float32) for the same number of epochs.

Sizes: on CUDA the trainers' full defaults (all of spa-eng, the target BLEU ≥ 35 run); on a CPU
small subsets that finish in minutes, whose figures are honest but far from the targets.

    python bench/sequence_trainers.py                 # all, sizes for the current device
    python bench/sequence_trainers.py --only seq2seq --epochs 2 --train-limit 20000
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402
from torch.utils.data import DataLoader, TensorDataset  # noqa: E402

from taller.trainers import engine  # noqa: E402
from taller.trainers.text import recurrent_threads  # noqa: E402


def _wanted(args: argparse.Namespace, *names: str) -> bool:
    only = [n for n in (getattr(args, "only", "") or "").split(",") if n]
    return not only or any(name in only for name in names)


def _device(args: argparse.Namespace) -> torch.device:
    return engine.select_device(getattr(args, "device", "auto") or "auto")


def _plain_loop(model, tensors, batch_size: int, epochs: int, loss_of, device: torch.device, lr: float) -> float:
    """The textbook loop over the same tensors; returns its training wall time in seconds."""
    loader = DataLoader(TensorDataset(*tensors), batch_size=batch_size, shuffle=True)
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr)
    start = time.perf_counter()
    for _ in range(epochs):
        for batch in loader:
            batch = [t.to(device) for t in batch]
            loss = loss_of(model, *batch)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()
            loss.item()  # the per-step host sync of the usual loop
    return time.perf_counter() - start


def _timed_train(module, config, label: str | None = None) -> tuple[dict[str, Any], float]:
    """The trainer's own train() and its training-loop seconds: per epoch, from the first to the
    last step event (validation, test decoding and data loading excluded). ``label`` keeps only
    the events whose message contains it (birnn's compare mode trains two models)."""
    spans: dict[tuple[str, int], list[float]] = {}

    def on_progress(event: dict[str, Any]) -> None:
        if not event.get("step") or event.get("metric_name"):
            return  # data loading, or an end-of-epoch validation event
        message = event.get("message") or ""
        if label is not None and label not in message:
            return
        key = (message.split(" epoch")[0], int(event.get("epoch") or 0))
        spans.setdefault(key, []).append(time.perf_counter())

    metrics = module.train(config, on_progress=on_progress)
    return metrics, sum(times[-1] - times[0] for times in spans.values())


# --- rnn ---------------------------------------------------------------------------------------

def bench_rnn_memory(args: argparse.Namespace) -> list[dict[str, Any]]:
    """Recall at growing lags: vanilla RNN vs LSTM vs GRU (accuracy on fresh sequences)."""
    if not _wanted(args, "rnn", "rnn-memory"):
        return []
    from taller.trainers import rnn

    device = _device(args)
    gpu = device.type == "cuda"
    # CPU sizes: about 950 steps per model (in a trial at lag 30 with 1,200 steps a GRU and the
    # vanilla RNN reached 1.0 and an LSTM 0.27; lags of 100+ need the GPU sizes).
    config = rnn.Config(task="recall", compare=True, epochs=args.epochs or (30 if gpu else 15),
                        lengths=(10, 30, 60, 100) if gpu else (10, 30, 60),
                        train_size=args.train_limit or (8000 if gpu else 4000), device=str(device))
    started = time.perf_counter()
    metrics = rnn.train(config)
    wall = time.perf_counter() - started
    rows = []
    for length, accuracies in metrics["accuracy"].items():
        for cell, accuracy in accuracies.items():
            rows.append({"trainer": f"rnn recall ({cell}, lag {length})", "device": str(device), "metric": "test_accuracy",
                         "engine_val": accuracy, "chance": metrics["chance"], "epochs": config.epochs,
                         "train_count": config.train_size, "engine_train_s": None, "bench_wall_s": wall})
    print(metrics["table"], file=sys.stderr)
    return rows


def bench_rnn_forecast(args: argparse.Namespace) -> list[dict[str, Any]]:
    """Forecaster on held-out tails of synthetic series vs the naive last value (MAE)."""
    if not _wanted(args, "rnn", "rnn-forecast"):
        return []
    from taller.trainers import rnn

    device = _device(args)
    config = rnn.Config(task="forecast", cell="gru", epochs=args.epochs or 8, device=str(device))
    metrics, train_s = _timed_train(rnn, config)
    return [{"trainer": "rnn forecast (gru)", "device": str(device), "metric": "test_mae", "engine_val": metrics["test_mae"],
             "naive_mae": metrics["naive_mae"], "epochs": config.epochs, "engine_train_s": train_s,
             "mae_ratio_vs_naive": metrics["mae_ratio_vs_naive"]}]


# --- birnn -------------------------------------------------------------------------------------

def bench_birnn(args: argparse.Namespace) -> list[dict[str, Any]]:
    """Bidirectional vs unidirectional tagger: per-label F1 (¿ is the lesson), engine vs plain time."""
    if not _wanted(args, "birnn"):
        return []
    from taller.trainers import birnn

    device = _device(args)
    gpu = device.type == "cuda"
    config = birnn.Config(compare=True, epochs=args.epochs or (8 if gpu else 3),
                          max_sentences=args.train_limit or (None if gpu else 30000), device=str(device))
    metrics, engine_s = _timed_train(birnn, config, label="bidirectional")
    comparison = metrics["comparison"]
    # The plain loop: the same bidirectional model and data, DataLoader batches.
    engine.seed_everything(config.seed)
    vocab, data, _ = birnn.load_data(config)
    model = birnn.build_model(config, len(vocab), vocab.pad_id).to(device)
    train = data["train"]

    def loss_of(m, words, lengths, tags):
        words, lengths, tags = birnn._trim(words, lengths, tags)
        return birnn.tagging_loss(m(words, lengths), tags)

    with recurrent_threads(device):
        plain_s = _plain_loop(model, (train.words, train.lengths, train.tags), config.batch_size, config.epochs,
                              loss_of, device, config.lr)
    rows = []
    for label in ("¿", "?", "¡", ".", ","):
        rows.append({"trainer": f"birnn F1 {label}", "device": str(device), "metric": "test_f1",
                     "engine_val": comparison["bidirectional_f1"][label], "unidirectional": comparison["unidirectional_f1"][label],
                     "gap": comparison["gap"][label], "epochs": config.epochs, "train_count": len(train)})
    rows.append({"trainer": "birnn (bidirectional, concat)", "device": str(device), "metric": "test_macro_f1",
                 "engine_val": comparison["bidirectional_macro_f1"], "unidirectional": comparison["unidirectional_macro_f1"],
                 "epochs": config.epochs, "train_count": len(train), "engine_train_s": engine_s, "plain_train_s": plain_s,
                 "speedup": plain_s / engine_s if engine_s else None})
    return rows


# --- seq2seq -----------------------------------------------------------------------------------

def bench_seq2seq(args: argparse.Namespace) -> list[dict[str, Any]]:
    """Held-out BLEU / chrF (greedy and beam) and training time, engine vs plain loop."""
    if not _wanted(args, "seq2seq"):
        return []
    from taller.trainers import seq2seq

    device = _device(args)
    gpu = device.type == "cuda"
    if gpu:
        config = seq2seq.Config(epochs=args.epochs or 12, max_pairs=args.train_limit or None, device=str(device))
    else:
        config = seq2seq.Config(epochs=args.epochs or 3, max_pairs=args.train_limit or 20000, max_length=10,
                                embedding_dim=64, hidden_size=128, test_sources=500, val_sources=300,
                                beam_eval_sentences=100, device=str(device))
    started = time.perf_counter()
    metrics, train_s = _timed_train(seq2seq, config)
    wall = time.perf_counter() - started
    row = {"trainer": f"seq2seq ({config.cell}+{config.attention})", "device": str(device), "metric": "test_bleu_greedy",
           "engine_val": metrics["test_bleu_greedy"], "chrf_greedy": metrics["test_chrf_greedy"],
           f"bleu_beam{config.beam_size}": metrics[f"test_bleu_beam{config.beam_size}"],
           "bleu_greedy_same_subset": metrics["test_bleu_greedy_same_subset"], "beam_sentences": metrics["beam_sentences"],
           "test_sentences": metrics["test_sentences"], "epochs": config.epochs, "train_count": metrics["train_pairs"],
           "engine_train_s": train_s, "bench_wall_s": wall}
    # The plain loop: same model and data, DataLoader batches, float32, teacher forcing.
    engine.seed_everything(config.seed)
    data = seq2seq.prepare(config)
    model = seq2seq.Seq2Seq(len(data["src_vocab"]), len(data["tgt_vocab"]), config).to(device)
    criterion = torch.nn.CrossEntropyLoss(ignore_index=0, label_smoothing=config.label_smoothing)

    def loss_of(m, src, src_len, tgt_in, tgt_out):
        src, src_len, tgt_in, tgt_out = seq2seq._trim(src, src_len, tgt_in, tgt_out)
        logits = m(src, src_len, tgt_in)
        return criterion(logits.reshape(-1, logits.shape[-1]), tgt_out.reshape(-1))

    with recurrent_threads(device):
        row["plain_train_s"] = _plain_loop(model, data["train"], config.batch_size, config.epochs, loss_of, device, config.lr)
    row["speedup"] = row["plain_train_s"] / train_s if train_s else None
    print(json.dumps(metrics["examples"][:3], ensure_ascii=False), file=sys.stderr)
    return [row]


BENCHMARKS = [bench_rnn_memory, bench_rnn_forecast, bench_birnn, bench_seq2seq]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", default="", help="comma-separated: rnn (= rnn-memory + rnn-forecast), birnn, seq2seq")
    parser.add_argument("--epochs", type=int, default=0)
    parser.add_argument("--train-limit", type=int, default=0, help="sentences / pairs / sequences to use")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--json", default="")
    args = parser.parse_args(argv)
    os.environ.setdefault("TALLER_HOME", tempfile.mkdtemp(prefix="taller-bench-"))
    from taller.config import get_settings

    get_settings(reload=True)
    rows = []
    for bench in BENCHMARKS:
        out = bench(args)
        rows.extend(out)
        for row in out:
            print(json.dumps(row, ensure_ascii=False, default=str), flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=2, ensure_ascii=False, default=str))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
