"""Tools over the sequence trainers: forecast a series, restore punctuation, translate.

* ``forecast`` fits a small GRU on the given series on the fly (seconds on a CPU; no trained
  model needed) and, for series of 30+ values, back-tests it on the series' own tail against
  the naive "repeat the last value" forecast.
* ``punctuate`` and ``translate`` use the newest trained ``birnn`` / ``seq2seq`` checkpoint.
  Without one they say so and offer to train it; they never invent an answer.

Heavy imports (torch, the trainers) happen inside the functions.
"""

from __future__ import annotations

import re
import threading
import time
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field

from taller.tools.base import ToolError, check_input_path, result
from taller.tools.registry import langchain_tool

MAX_PUNCTUATE_WORDS = 200
MAX_TRANSLATE_SENTENCES = 8
MAX_TRANSLATE_TOKENS = 40  # per sentence; the model was trained on sentences of up to 20 tokens

_cache: dict[str, tuple[float, Any]] = {}
_cache_lock = threading.Lock()


class ForecastArgs(BaseModel):
    values: list[float] | str = Field(
        description="The series so far (numbers, oldest first), or the path of a CSV file (its last numeric column is used)."
    )
    steps: int = Field(default=5, ge=1, le=365, description="How many future values to predict.")


class PunctuateArgs(BaseModel):
    text: str = Field(description="English or Spanish text without punctuation or capitals.")


class TranslateArgs(BaseModel):
    text: str = Field(description="English text to translate into Spanish.")
    beam_size: int = Field(default=4, ge=1, le=16, description="Beam search width (1 = greedy).")


# --- helpers -----------------------------------------------------------------------------

def _cached(kind: str, checkpoint: Path, loader):
    """Load a model once per checkpoint file (reloaded when the file changes)."""
    key = f"{kind}:{checkpoint}"
    stamp = checkpoint.stat().st_mtime
    with _cache_lock:
        hit = _cache.get(key)
        if hit is not None and hit[0] == stamp:
            return hit[1]
    loaded = loader(checkpoint)
    with _cache_lock:
        _cache[key] = (stamp, loaded)
    return loaded


def _offer_training(model: str, what: str) -> dict[str, Any]:
    return result(
        f"There is no trained {what} model yet, so I cannot answer without guessing. "
        f"I can train one: train_model(model='{model}') (it runs in the background).",
        available=False,
        trained=False,
        suggestion={"tool": "train_model", "args": {"model": model}},
    )


def _series(values: list[float] | str) -> tuple[list[float], str]:
    """Numbers from a list, from a string of numbers ("1, 2, 3"), or from a CSV file path."""
    if isinstance(values, list):
        return [float(v) for v in values], f"{len(values)} given values"
    text = values.strip()
    if not text:
        raise ToolError("no values were given: pass a list of numbers or the path of a CSV file")
    numbers = re.split(r"[\s,;]+", text.strip("[]() "))
    try:
        return [float(n) for n in numbers if n], f"{len(numbers)} given values"
    except ValueError:
        pass
    from taller.trainers.series import read_csv_column

    path = check_input_path(text)
    try:
        series, column = read_csv_column(path)
    except UnicodeError:
        raise ToolError(f"{path.name} is not a readable text CSV file") from None
    except ValueError as exc:  # its message names the file and the problem, never the contents
        raise ToolError(str(exc)) from None
    except OSError as exc:
        raise ToolError(f"cannot read {path.name}: {exc.strerror or type(exc).__name__}") from None
    label = column if re.fullmatch(r"column \d+", column) else f"column {column!r}"  # "column 2": by position
    return series, f"{label} of {path.name} ({len(series)} values)"


def _fmt(value: float) -> str:
    return f"{value:.4g}" if abs(value) < 1e5 else f"{value:.4e}"


def _plot_forecast(history: list[float], predictions: list[float], path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    shown = history[-200:]
    start = len(history) - len(shown)
    figure, axes = plt.subplots(figsize=(7, 3.2))
    axes.plot(range(start, len(history)), shown, label="series")
    axes.plot(range(len(history) - 1, len(history) + len(predictions)), [history[-1], *predictions],
              marker="o", label="forecast")
    axes.legend()
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=100)
    plt.close(figure)
    return path


def _stamp() -> str:
    return time.strftime("%Y%m%d-%H%M%S") + f"-{int(time.time() * 1000) % 1000:03d}"


# --- tools -------------------------------------------------------------------------------

@langchain_tool("forecast", ForecastArgs)
def forecast(values: list[float] | str, steps: int = 5) -> dict:
    from taller.config import get_settings
    from taller.trainers.rnn import MIN_SERIES, forecast_values

    series, source = _series(values)
    if len(series) < MIN_SERIES:
        raise ToolError(f"a forecast needs at least {MIN_SERIES} values; got {len(series)}")
    try:
        out = forecast_values(series, steps)
    except ValueError as exc:
        raise ToolError(str(exc)) from None
    predictions = out["predictions"]
    summary = f"Next {steps} value{'s' if steps > 1 else ''}: {', '.join(_fmt(v) for v in predictions[:10])}"
    summary += "…" if steps > 10 else ""
    summary += f" ({out['method']}, from {source})."
    backtest = out.get("backtest")
    if backtest:
        verdict = "better than" if backtest["model_beats_naive"] else "no better than"
        summary += (f" On the last {backtest['horizon']} known values it was {verdict} repeating the last value "
                    f"(mean abs. error {_fmt(backtest['model_mae'])} vs {_fmt(backtest['naive_mae'])}).")
    else:
        summary += " The series is too short (under 30 values) to check it against a naive forecast."
    picture = _plot_forecast(series, predictions, get_settings().outputs_dir / f"forecast-{_stamp()}.png")
    return result(summary, predictions=predictions, steps=steps, source=source, backtest=backtest,
                  naive_forecast=out["naive"], method=out["method"], note=out.get("note"), images=[str(picture)])


@langchain_tool("punctuate", PunctuateArgs)
def punctuate(text: str) -> dict:
    from taller.trainers import birnn, engine

    if not text or not text.strip():
        raise ToolError("no text to punctuate: give an English or Spanish sentence")
    words = birnn.strip_text(text)
    if not words:
        raise ToolError("the text has no words to punctuate (only symbols or punctuation)")
    checkpoint = engine.latest_checkpoint(birnn.MODEL_NAME, "best.pt")
    if checkpoint is None:
        return _offer_training("birnn", "punctuation (birnn)")
    model, vocab, _config = _cached("birnn", checkpoint, lambda path: birnn.load(path))
    restored, truncated = birnn.restore(model, vocab, text, "cpu", MAX_PUNCTUATE_WORDS)
    unknown = sorted({w for w in words[:MAX_PUNCTUATE_WORDS] if w not in vocab.index})
    notes = []
    if truncated:
        notes.append(f"the text was cut to its first {MAX_PUNCTUATE_WORDS} words")
    if unknown and len(unknown) == len(set(words[:MAX_PUNCTUATE_WORDS])):
        notes.append("none of its words are in the model's English/Spanish vocabulary, so the marks are a guess")
    elif unknown:
        notes.append(f"{len(unknown)} word(s) unknown to the model")
    summary = f"Restored: {restored}" + (f" (Note: {'; '.join(notes)}.)" if notes else "")
    return result(summary, text=restored, truncated=truncated, words=len(words), unknown_words=unknown[:20],
                  notes=notes, checkpoint=str(checkpoint))


_SENTENCE_END = re.compile(r"(?<=[.!?])\s+")


@langchain_tool("translate", TranslateArgs)
def translate(text: str, beam_size: int = 4) -> dict:
    from taller.config import get_settings
    from taller.trainers import engine, seq2seq
    from taller.trainers.text import detokenize

    if not text or not text.strip():
        raise ToolError("no text to translate: give an English sentence")
    checkpoint = engine.latest_checkpoint(seq2seq.MODEL_NAME, "best.pt")
    if checkpoint is None:
        return _offer_training("seq2seq", "English→Spanish translation (seq2seq)")
    translator = _cached("seq2seq", checkpoint, lambda path: seq2seq.load(path))
    sentences = [s for s in _SENTENCE_END.split(text.strip()) if s.strip()]
    notes = []
    if len(sentences) > MAX_TRANSLATE_SENTENCES:
        notes.append(f"only the first {MAX_TRANSLATE_SENTENCES} of {len(sentences)} sentences were translated")
        sentences = sentences[:MAX_TRANSLATE_SENTENCES]
    outputs, unknown, picture = [], [], None
    for sentence in sentences:
        tokens = translator.source_tokens(sentence)
        if len(tokens) > MAX_TRANSLATE_TOKENS:
            notes.append(f"a sentence was cut to its first {MAX_TRANSLATE_TOKENS} words")
            tokens = tokens[:MAX_TRANSLATE_TOKENS]
        words = [t for t in tokens if t[:1].isalnum()]
        missing = translator.unknown_words(tokens)
        unknown.extend(missing)
        if not words or len(missing) == len(words):
            # Every word is unknown: the decoder would only produce a plausible-looking guess.
            notes.append(f"skipped {sentence[:40]!r}: none of its words are known to the model")
            continue
        output, weights = translator.translate_tokens(tokens, beam_size)
        outputs.append(detokenize(output))
        if picture is None:
            picture = seq2seq.plot_attention(tokens, output + ["</s>"], weights,
                                             get_settings().outputs_dir / f"attention-{_stamp()}.png")
    if not outputs:
        raise ToolError("none of the words are known to the translation model (it translates English into "
                        "Spanish, learned from the Tatoeba sentences); I will not guess a translation")
    if unknown:
        notes.append(f"words unknown to the model: {', '.join(sorted(set(unknown))[:10])}")
    translation = " ".join(outputs)
    summary = f"Spanish: {translation}" + (f" (Note: {'; '.join(notes)}.)" if notes else "")
    return result(summary, translation=translation, source=text if len(text) < 2000 else text[:2000] + "…",
                  beam_size=beam_size, notes=notes, unknown_words=sorted(set(unknown))[:20],
                  images=[str(picture)] if picture else [], checkpoint=str(checkpoint))
