"""Bidirectional LSTM: restore punctuation and capital letters of English and Spanish sentences.

The workshop's bidirectional-RNN lesson on a task that really needs the future: a Spanish
question opens with ``¿``, and only a model that has read to the end of the sentence knows it
is a question. Each word of a lower-cased, unpunctuated sentence gets three tags:

* ``before``: nothing, ``¿`` or ``¡`` (the Spanish opening marks),
* ``after``: nothing, ``,`` ``.`` ``?`` or ``!``,
* ``case``: ``lower``, ``capital`` (first letter) or ``upper`` (all letters).

The data are the sentences (both sides) of the Tatoeba/Anki ``spa-eng`` corpus, split by
sentence into train / validation / test with a fixed seed. The recurrent layer is one
forward and one backward LSTM whose outputs are merged with ``merge_mode`` (``concat``,
``sum``, ``mul``, ``ave``, as Keras' ``Bidirectional``); ``bidirectional=False`` gives the same
model with only the forward LSTM. ``compare=True`` trains both and reports per-label F1 side by
side. Other marks (``;`` ``:`` quotes, dashes) are dropped from
the input and not restored.

The lesson (``--lesson``, :mod:`taller.trainers.lessons`): "the bidirectional gain". The same
small tagger is trained twice on a subset of the sentences, once bidirectional and once
forward-only, and their test F1 is compared label by label. The claim is that the bidirectional
model's F1 on the sentence-final marks ``.`` and ``?`` is at least 0.2 higher: a forward LSTM
tagging a word has not read whether another word follows it, so it cannot know that the
sentence ends there. The plot (``lesson.png``) shows the per-label F1 of both models side by side.

    python -m taller.trainers.birnn --epochs 3 --compare
    python -m taller.trainers.birnn --lesson
    python -m taller.trainers.birnn --dry-run
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from taller.trainers import engine, lessons
from taller.trainers.text import Vocab, float32_rnn, recurrent_threads, is_word, load_pairs, pad_batch, sample, tokenize

MODEL_NAME = "birnn"
BEFORE = ["", "¿", "¡"]
AFTER = ["", ",", ".", "?", "!"]
CASE = ["lower", "capital", "upper"]
HEADS = {"before": BEFORE, "after": AFTER, "case": CASE}
# The labels whose F1 is reported (the "nothing" / "lower" classes are the easy majority).
REPORTED = [("before", "¿"), ("before", "¡"), ("after", ","), ("after", "."), ("after", "?"), ("after", "!"),
            ("case", "capital"), ("case", "upper")]
MERGE_MODES = ("concat", "sum", "mul", "ave")


@dataclass
class Config:
    epochs: int = 4
    batch_size: int = 128
    lr: float = 2e-3
    # Unique sentences drawn from both sides of the corpus (None = all, about 220,000).
    max_sentences: int | None = 60000
    max_words: int = 40  # longer sentences are cut (the tool truncates longer text with a note)
    embedding_dim: int = 128
    hidden_size: int = 128
    dropout: float = 0.2
    bidirectional: bool = True
    merge_mode: str = "concat"
    compare: bool = False  # also train the other direction and report both
    min_freq: int = 2
    max_vocab: int = 40000
    val_fraction: float = 0.05
    test_fraction: float = 0.05
    patience: int = 2
    seed: int = 0
    device: str = "auto"
    data_path: str | None = None
    dry_run: bool = False
    resume: bool = False
    lesson: bool = False  # run the lesson (bidirectional against forward-only) instead of one training


# --- data --------------------------------------------------------------------------------

def tag_sentence(sentence: str) -> tuple[list[str], list[int], list[int], list[int]]:
    """Split a punctuated sentence into lower-case words and their (before, after, case) tags."""
    words: list[str] = []
    before: list[int] = []
    after: list[int] = []
    case: list[int] = []
    pending_before = 0
    for token in tokenize(sentence):
        if token in ("¿", "¡"):
            pending_before = BEFORE.index(token)
        elif token in AFTER[1:]:
            # "?!" or "..." keep the first mark: the word already ended the sentence.
            if words and after[-1] == 0:
                after[-1] = AFTER.index(token)
        elif is_word(token):
            words.append(token.lower())
            before.append(pending_before)
            pending_before = 0
            after.append(0)
            letters = [c for c in token if c.isalpha()]
            if len(letters) > 1 and all(c.isupper() for c in letters):
                case.append(2)
            elif letters and token[0].isupper():
                case.append(1)
            else:
                case.append(0)
        # Any other mark (; : " - ...) is dropped: the model neither sees nor restores it.
    return words, before, after, case


def strip_text(text: str) -> list[str]:
    """The model's input for any text: its words, lower-cased, without punctuation."""
    return [token.lower() for token in tokenize(text) if is_word(token)]


def apply_tags(words: list[str], before: list[int], after: list[int], case: list[int]) -> str:
    out = []
    for word, b, a, c in zip(words, before, after, case):
        if c == 2:
            word = word.upper()
        elif c == 1:
            word = word[:1].upper() + word[1:]
        out.append(BEFORE[b] + word + AFTER[a])
    return " ".join(out)


@dataclass
class TaggedData:
    words: torch.Tensor  # [N, L] ids
    lengths: torch.Tensor  # [N]
    tags: torch.Tensor  # [N, L, 3] (before, after, case), -100 on padding

    def __len__(self) -> int:
        return len(self.lengths)


def encode_sentences(sentences: list[str], vocab: Vocab, max_words: int) -> TaggedData:
    rows, tags = [], []
    for sentence in sentences:
        words, before, after, case = tag_sentence(sentence)
        words, before, after, case = words[:max_words], before[:max_words], after[:max_words], case[:max_words]
        rows.append(vocab.encode(words))
        tags.append(list(zip(before, after, case)))
    ids, lengths = pad_batch(rows, vocab.pad_id, max_words)
    tag_tensor = torch.full((len(rows), max_words, 3), -100, dtype=torch.long)
    for row, sentence_tags in enumerate(tags):
        if sentence_tags:
            tag_tensor[row, : len(sentence_tags)] = torch.tensor(sentence_tags, dtype=torch.long)
    return TaggedData(ids, lengths, tag_tensor)


def load_data(config: Config) -> tuple[Vocab, dict[str, TaggedData], dict[str, list[str]]]:
    """Unique sentences of both languages, split by sentence; vocabulary from the train split."""
    pairs = load_pairs(config.data_path)
    # dict.fromkeys: unique sentences in corpus order (English repeats a lot: one source, many translations).
    sentences = list(dict.fromkeys(sentence for pair in pairs for sentence in pair))
    count = config.max_sentences
    if config.dry_run:
        count = min(count or 2000, 2000)
    # Sample before tokenising: tokenising all 220,000 sentences would cost more than training.
    sentences = [s for s in sample(sentences, count, config.seed) if strip_text(s)]
    n_test = max(1, int(len(sentences) * config.test_fraction))
    n_val = max(1, int(len(sentences) * config.val_fraction))
    splits = {
        "test": sentences[:n_test],
        "val": sentences[n_test : n_test + n_val],
        "train": sentences[n_test + n_val :],
    }
    vocab = Vocab.build((strip_text(s) for s in splits["train"]), config.min_freq, config.max_vocab)
    encoded = {name: encode_sentences(items, vocab, config.max_words) for name, items in splits.items()}
    return vocab, encoded, splits


# --- model -------------------------------------------------------------------------------

class Tagger(nn.Module):
    """Embedding → (bi)LSTM with a merge mode → three linear heads (before, after, case)."""

    def __init__(self, vocab_size: int, embedding_dim: int, hidden_size: int, bidirectional: bool = True,
                 merge_mode: str = "concat", dropout: float = 0.2, pad_id: int = 0):
        super().__init__()
        if merge_mode not in MERGE_MODES:
            raise ValueError(f"merge_mode must be one of {', '.join(MERGE_MODES)}, not {merge_mode!r}")
        self.bidirectional = bidirectional
        self.merge_mode = merge_mode
        self.hidden_size = hidden_size
        self.embedding = nn.Embedding(vocab_size, embedding_dim, padding_idx=pad_id)
        self.lstm = nn.LSTM(embedding_dim, hidden_size, batch_first=True, bidirectional=bidirectional)
        self.dropout = nn.Dropout(dropout)
        features = hidden_size * 2 if bidirectional and merge_mode == "concat" else hidden_size
        self.heads = nn.ModuleDict({name: nn.Linear(features, len(labels)) for name, labels in HEADS.items()})

    def forward(self, words: torch.Tensor, lengths: torch.Tensor) -> dict[str, torch.Tensor]:
        embedded = self.dropout(self.embedding(words))
        # Packing makes the backward LSTM start at each sentence's last word, not at padding.
        packed = pack_padded_sequence(embedded, lengths.clamp(min=1).cpu(), batch_first=True, enforce_sorted=False)
        output, _ = float32_rnn(self.lstm, packed)
        output, _ = pad_packed_sequence(output, batch_first=True, total_length=words.shape[1])
        if self.bidirectional:
            forward, backward = output[..., : self.hidden_size], output[..., self.hidden_size :]
            if self.merge_mode == "concat":
                output = output
            elif self.merge_mode == "sum":
                output = forward + backward
            elif self.merge_mode == "mul":
                output = forward * backward
            else:  # ave
                output = (forward + backward) / 2
        output = self.dropout(output)
        return {name: head(output) for name, head in self.heads.items()}


def build_model(config: Config, vocab_size: int, pad_id: int, bidirectional: bool | None = None) -> Tagger:
    return Tagger(vocab_size, config.embedding_dim, config.hidden_size,
                  config.bidirectional if bidirectional is None else bidirectional,
                  config.merge_mode, config.dropout, pad_id)


# --- train -------------------------------------------------------------------------------

def tagging_loss(logits: dict[str, torch.Tensor], tags: torch.Tensor) -> torch.Tensor:
    loss = 0.0
    for index, name in enumerate(HEADS):
        loss = loss + nn.functional.cross_entropy(
            logits[name].reshape(-1, logits[name].shape[-1]).float(), tags[..., index].reshape(-1), ignore_index=-100)
    return loss


def _trim(words: torch.Tensor, lengths: torch.Tensor, tags: torch.Tensor | None = None):
    """Cut a batch to its own longest sentence: most sentences are far shorter than max_words."""
    longest = int(lengths.max().item()) if len(lengths) else 1
    longest = max(longest, 1)
    if tags is None:
        return words[:, :longest], lengths
    return words[:, :longest], lengths, tags[:, :longest]


@torch.no_grad()
def evaluate(model: Tagger, data: TaggedData, device: torch.device, batch_size: int = 512) -> dict[str, Any]:
    """Loss and per-label precision/recall/F1 on a split (only real words count)."""
    model.eval()
    stats = {(head, label): [0, 0, 0] for head, label in REPORTED}  # true pos, false pos, false neg
    total_loss, batches = 0.0, 0
    for start in range(0, len(data), batch_size):
        words, lengths, tags = _trim(*(t[start : start + batch_size].to(device) for t in (data.words, data.lengths, data.tags)))
        with engine.autocast(device):
            logits = model(words, lengths)
        total_loss += float(tagging_loss(logits, tags))
        batches += 1
        mask = tags[..., 0] != -100
        for index, head in enumerate(HEADS):
            predicted = logits[head].argmax(-1)[mask]
            truth = tags[..., index][mask]
            for name, label in REPORTED:
                if name != head:
                    continue
                label_id = HEADS[head].index(label)
                stats[(head, label)][0] += int(((predicted == label_id) & (truth == label_id)).sum())
                stats[(head, label)][1] += int(((predicted == label_id) & (truth != label_id)).sum())
                stats[(head, label)][2] += int(((predicted != label_id) & (truth == label_id)).sum())
    f1 = {}
    support = {}
    for (head, label), (tp, fp, fn) in stats.items():
        precision = tp / (tp + fp) if tp + fp else 0.0
        recall = tp / (tp + fn) if tp + fn else 0.0
        f1[label] = round(2 * precision * recall / (precision + recall), 4) if precision + recall else 0.0
        support[label] = tp + fn
    present = [f1[label] for label in f1 if support[label] > 0]
    model.train()
    return {"loss": total_loss / max(batches, 1), "f1": f1, "support": support,
            "macro_f1": round(sum(present) / len(present), 4) if present else 0.0}


def train_one_epoch(model: Tagger, batches, optimizer, run: engine.Run, epoch: int, epochs: int,
                    device: torch.device, total: int, label: str) -> list[float]:
    """One pass over the tagged batches, at most ``total`` steps; returns the step losses."""
    model.train()
    step_losses = []
    for step, (words, lengths, tags) in run.steps(batches, limit=total):
        words, lengths, tags = _trim(words, lengths, tags)
        with engine.autocast(device):
            loss = tagging_loss(model(words, lengths), tags)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        step_losses.append(loss.detach())  # kept on the device: reading a loss every step would stall a GPU
        run.progress(epoch, epochs, step, total, loss.detach(), message=f"{label} epoch {epoch}/{epochs}")
    return torch.stack(step_losses).float().tolist() if step_losses else []


def fit(config: Config, run: engine.Run, vocab: Vocab, data: dict[str, TaggedData], device: torch.device,
        bidirectional: bool, checkpoints: bool) -> tuple[Tagger, dict[str, Any]]:
    """Train one tagger, early-stopped on validation macro-F1, and score its best weights on the test split.

    With ``checkpoints`` its checkpoints are the run's (``last.pt`` / ``best.pt``, resume); the
    other direction of a comparison is trained without.
    """
    label = "bidirectional" if bidirectional else "unidirectional"
    engine.seed_everything(config.seed)
    model = build_model(config, len(vocab), vocab.pad_id, bidirectional).to(device)
    optimizer = torch.optim.AdamW(model.parameters(), lr=config.lr)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=max(config.epochs, 1))
    stopper = engine.EarlyStopping(patience=config.patience, mode="max")
    train = data["train"]
    batches = engine.make_batches((train.words, train.lengths, train.tags), config.batch_size, device,
                                  shuffle=True, seed=config.seed)
    total = min(len(batches), 5) if config.dry_run else len(batches)
    run.track(model, optimizer, stopper=stopper, scheduler=scheduler, vocab=vocab.tokens, checkpoints=checkpoints)
    step_model = engine.prepare_model(model)  # DDP under torchrun
    history: list[float] = []
    for epoch in range(run.restore(), config.epochs + 1):
        losses = train_one_epoch(step_model, batches, optimizer, run, epoch, config.epochs, device, total, label)
        scheduler.step()
        history.extend(losses)
        val = evaluate(model, data["val"], device)
        metrics = {"train_loss": sum(losses) / max(len(losses), 1), "val_loss": val["loss"],
                   "val_macro_f1": val["macro_f1"], "val_f1_¿": val["f1"]["¿"], "direction": label}
        if run.end_epoch(epoch, config.epochs, metrics, monitor="val_macro_f1"):
            break
    run.load_best()
    return model, {"test": evaluate(model, data["test"], device), "train_losses": history}


def train(config: Config, run: "engine.Run | None" = None, cancel_event=None, on_progress=None) -> dict[str, Any]:
    """Train the tagger (and, with ``compare``, its other-direction twin); return test metrics."""
    if config.epochs < 1:
        raise ValueError("epochs must be at least 1")
    if config.merge_mode not in MERGE_MODES:
        raise ValueError(f"merge_mode must be one of {', '.join(MERGE_MODES)}, not {config.merge_mode!r}")
    if config.lesson:
        return lessons.run_lesson(MODEL_NAME, config, teach, run, cancel_event, on_progress, experiments=2,
                                  settings=LESSON_DRY_RUN if config.dry_run else LESSON)
    if config.dry_run:
        config.epochs = min(config.epochs, 1)
    run = run or engine.Run.create(MODEL_NAME, config, cancel_event=cancel_event, on_progress=on_progress)
    with run, contextlib.ExitStack() as stack:  # the stack restores CPU threads
        started = time.perf_counter()
        device = run.use_device(config.device)
        stack.enter_context(recurrent_threads(device))
        engine.seed_everything(config.seed)
        vocab, data, splits = load_data(config)
        (Path(run.dir) / "split.json").write_text(json.dumps({"test": splits["test"]}, ensure_ascii=False), encoding="utf-8")
        model, main = fit(config, run, vocab, data, device, config.bidirectional, checkpoints=True)
        label = "bidirectional" if config.bidirectional else "unidirectional"
        metrics: dict[str, Any] = {
            "direction": label, "merge_mode": config.merge_mode, "device": str(device),
            "test_macro_f1": main["test"]["macro_f1"], "test_f1": main["test"]["f1"],
            "test_support": main["test"]["support"], "vocab_size": len(vocab),
            "sentences": {name: len(d) for name, d in data.items()},
            "first_loss": main["train_losses"][0] if main["train_losses"] else None,
            "last_loss": main["train_losses"][-1] if main["train_losses"] else None,
        }
        if config.compare:
            other_label = "unidirectional" if config.bidirectional else "bidirectional"
            _, other = fit(config, run, vocab, data, device, not config.bidirectional, checkpoints=False)
            bi, uni = (main, other) if config.bidirectional else (other, main)
            metrics["comparison"] = {
                "bidirectional_f1": bi["test"]["f1"], "unidirectional_f1": uni["test"]["f1"],
                "gap": {k: round(bi["test"]["f1"][k] - uni["test"]["f1"][k], 4) for k in bi["test"]["f1"]},
                "bidirectional_macro_f1": bi["test"]["macro_f1"], "unidirectional_macro_f1": uni["test"]["macro_f1"],
                "trained_also": other_label,
            }
        examples = [s for s in splits["test"][:5]]
        metrics["examples"] = [{"input": " ".join(strip_text(s)), "restored": restore(model, vocab, s, device)[0], "reference": s}
                               for s in examples]
        metrics["wall_s"] = round(time.perf_counter() - started, 2)
        return run.finish(metrics)


# --- lesson ------------------------------------------------------------------------------

@dataclass(frozen=True)
class LessonSettings:
    """The sizes of the lesson: small enough for a laptop CPU, large enough for the gap to show."""

    sentences: int  # unique sentences drawn from both sides of the corpus
    epochs: int
    embedding_dim: int
    hidden_size: int
    batch_size: int
    lr: float
    test_fraction: float  # twice the trainer's default, so that "?" has a few hundred test examples


LESSON = LessonSettings(sentences=24000, epochs=3, embedding_dim=64, hidden_size=96, batch_size=64, lr=3e-3,
                        test_fraction=0.1)
LESSON_DRY_RUN = LessonSettings(sentences=600, epochs=1, embedding_dim=16, hidden_size=16, batch_size=32, lr=3e-3,
                                test_fraction=0.1)
FINAL_MARKS = (".", "?")  # the marks only a model that has read to the end of the sentence can place
LESSON_GAP = 0.2  # the claimed least F1 gain of the bidirectional model on each final mark


def lesson_config(config: Config) -> Config:
    """The training settings of the lesson's two models (the lesson's own sizes, the user's seed)."""
    settings = LESSON_DRY_RUN if config.dry_run else LESSON
    return dataclasses.replace(
        config, epochs=settings.epochs, max_sentences=settings.sentences, embedding_dim=settings.embedding_dim,
        hidden_size=settings.hidden_size, batch_size=settings.batch_size, lr=settings.lr,
        test_fraction=settings.test_fraction, merge_mode="concat", compare=False, patience=0)


def lesson_gaps(figures: dict[str, Any]) -> dict[str, float]:
    """Bidirectional minus forward-only test F1, per label."""
    bidirectional, forward = figures["bidirectional_f1"], figures["forward_f1"]
    return {label: round(bidirectional[label] - forward[label], 4) for label in bidirectional}


def lesson_claim_holds(figures: dict[str, Any]) -> bool:
    """Whether the bidirectional model beats the forward-only one by LESSON_GAP F1 on every final mark."""
    gaps = lesson_gaps(figures)
    return all(gaps[mark] >= LESSON_GAP for mark in FINAL_MARKS)


def teach(config: Config, notebook: lessons.Notebook, device: torch.device) -> lessons.Lesson:
    """The bidirectional gain: the same tagger trained bidirectional and forward-only, F1 per label."""
    settings = lesson_config(config)
    with recurrent_threads(device):
        engine.seed_everything(settings.seed)
        vocab, data, _ = load_data(settings)

        def train_direction(bidirectional: bool):
            def compute() -> dict[str, Any]:
                _, result = fit(settings, notebook.run, vocab, data, device, bidirectional, checkpoints=False)
                test = result["test"]
                return {"f1": test["f1"], "support": test["support"], "macro_f1": test["macro_f1"]}
            return compute

        bidirectional = notebook.experiment("bidirectional", train_direction(True))
        forward = notebook.experiment("forward-only", train_direction(False))

    figures: dict[str, Any] = {
        "bidirectional_f1": bidirectional["f1"], "forward_f1": forward["f1"],
        "bidirectional_macro_f1": bidirectional["macro_f1"], "forward_macro_f1": forward["macro_f1"],
        "test_support": bidirectional["support"],
        "sentences": {name: len(split) for name, split in data.items()}, "epochs": settings.epochs,
        "hidden_size": settings.hidden_size,
    }
    figures["gap"] = lesson_gaps(figures)
    held = lesson_claim_holds(figures)
    return lessons.Lesson(
        title="The bidirectional gain",
        claim=f"the bidirectional tagger's test F1 on each sentence-final mark ({' and '.join(FINAL_MARKS)}) is at "
              f"least {LESSON_GAP} higher than the forward-only tagger's",
        held=held, figures=figures, reading=lesson_reading(figures, held),
        plot=plot_lesson(figures, notebook.plot_path))


def lesson_reading(figures: dict[str, Any], held: bool) -> dict[str, str]:
    """Two sentences per language, from the measured F1."""
    bi, uni, gap = figures["bidirectional_f1"], figures["forward_f1"], figures["gap"]
    marks_en = " and ".join(f"'{m}' {bi[m]:.2f} against {uni[m]:.2f}" for m in FINAL_MARKS)
    marks_es = " y ".join(f"'{m}' {bi[m]:.2f} frente a {uni[m]:.2f}" for m in FINAL_MARKS)
    if held:
        first_en = (f"The bidirectional tagger places the sentence-final marks far better than the forward-only one "
                    f"({marks_en} F1), because a forward LSTM tagging a word has not yet read whether another word "
                    f"follows, so it cannot know that the sentence ends there.")
        first_es = (f"El etiquetador bidireccional coloca los signos de final de frase mucho mejor que el que solo lee "
                    f"hacia delante ({marks_es} de F1): una LSTM hacia delante que etiqueta una palabra aún no ha "
                    f"leído si la sigue otra, así que no puede saber que la frase termina ahí.")
    else:
        first_en = (f"This time the bidirectional tagger did not beat the forward-only one by {LESSON_GAP} F1 on every "
                    f"sentence-final mark ({marks_en}), although only it can read whether another word follows; "
                    f"the models may be too briefly trained to show it.")
        first_es = (f"Esta vez el etiquetador bidireccional no superó al que solo lee hacia delante en {LESSON_GAP} de "
                    f"F1 en todos los signos de final de frase ({marks_es}), aunque solo él puede leer si sigue otra "
                    f"palabra; quizá los modelos están demasiado poco entrenados para mostrarlo.")
    opening = f"{gap['¿']:+.2f} ({bi['¿']:.2f} against {uni['¿']:.2f})"
    opening_es = f"{gap['¿']:+.2f} ({bi['¿']:.2f} frente a {uni['¿']:.2f})"
    if gap["¿"] < min(gap[mark] for mark in FINAL_MARKS):
        second_en = (f"On the opening '¿' the gap is only {opening}: it sits on the first word, where the forward "
                     f"model already guesses from question words such as 'qué' or 'dónde', and without punctuation "
                     f"many yes/no questions read like statements to both models.")
        second_es = (f"En el '¿' inicial la diferencia es solo de {opening_es}: va en la primera palabra, donde el "
                     f"modelo hacia delante ya acierta a menudo por palabras como 'qué' o 'dónde', y sin puntuación "
                     f"muchas preguntas de sí o no se leen como afirmaciones para ambos modelos.")
    else:
        second_en = (f"On the opening '¿' the gap is {opening}, as large as on the final marks: the forward model "
                     f"must decide it at the first word, before it has read the rest of the question.")
        second_es = (f"En el '¿' inicial la diferencia es de {opening_es}, tan grande como en los signos finales: el "
                     f"modelo hacia delante debe decidirlo en la primera palabra, antes de leer el resto de la pregunta.")
    return {"en": f"{first_en} {second_en}", "es": f"{first_es} {second_es}"}


def plot_lesson(figures: dict[str, Any], path: Path) -> Path:
    """Grouped bars: test F1 per label, bidirectional against forward-only."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels = [label for _, label in REPORTED]
    names = {"capital": "Capital", "upper": "UPPER"}
    positions = list(range(len(labels)))
    width = 0.38
    figure, axes = plt.subplots(figsize=(6, 4))
    axes.bar([x - width / 2 for x in positions], [figures["bidirectional_f1"][label] for label in labels], width,
             label="bidirectional", color="tab:blue")
    axes.bar([x + width / 2 for x in positions], [figures["forward_f1"][label] for label in labels], width,
             label="forward-only", color="tab:orange")
    for mark in FINAL_MARKS:  # the lesson's point, written over its bars
        x = labels.index(mark)
        top = max(figures["bidirectional_f1"][mark], figures["forward_f1"][mark])
        axes.annotate(f"{figures['gap'][mark]:+.2f}", (x, top + 0.02), ha="center", fontsize=9)
    axes.set_xticks(positions, [names.get(label, label) for label in labels])
    axes.set_ylim(0, 1.05)
    axes.set_xlabel("label (opening mark, closing mark, case)")
    axes.set_ylabel("test F1")
    axes.set_title("Bidirectional vs forward-only LSTM: F1 per label")
    axes.legend(loc="upper left")
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return path


# --- use ---------------------------------------------------------------------------------

@torch.no_grad()
def restore(model: Tagger, vocab: Vocab, text: str, device: torch.device | str = "cpu",
            max_words: int = 200) -> tuple[str, bool]:
    """Punctuate and capitalise ``text``; returns (restored text, whether it was truncated)."""
    words = strip_text(text)
    truncated = len(words) > max_words
    words = words[:max_words]
    if not words:
        return "", False
    model.eval()
    ids = torch.tensor([vocab.encode(words)], dtype=torch.long, device=device)
    lengths = torch.tensor([len(words)], dtype=torch.long)
    logits = model(ids, lengths)
    tags = {name: logits[name][0].argmax(-1).tolist() for name in HEADS}
    return apply_tags(words, tags["before"], tags["after"], tags["case"]), truncated


def load(path: str | Path | None = None, device: str = "cpu") -> tuple[Tagger, Vocab, Config]:
    """The trained tagger from ``path`` or the newest ``best.pt`` run; FileNotFoundError when none."""
    state, config = engine.trained_checkpoint(MODEL_NAME, Config, path, "birnn model")
    vocab = Vocab(state["extra"]["vocab"])
    model = build_model(config, len(vocab), vocab.pad_id)
    model.load_state_dict(state["model"])
    model.to(device).eval()
    return model, vocab, config


if __name__ == "__main__":
    raise SystemExit(engine.cli(Config, train))
