"""Sequence to sequence: English→Spanish translation with an attentional encoder–decoder.

The workshop's seq2seq lesson, complete: a bidirectional GRU (or LSTM) encoder, a decoder with
Luong ("general") or Bahdanau (additive) attention, trained with teacher forcing and label
smoothing on the Tatoeba/Anki pairs of ``spa-eng.zip``; decoded greedily or with beam search
and length normalisation; scored with corpus BLEU and chrF (``sacrebleu``) on a held-out split.

Data: both sides are lower-cased and split into words and punctuation (``¿`` ``¡`` are tokens);
the word vocabularies are saved inside the checkpoint. Tatoeba often gives several Spanish
translations of one English sentence, so the split is made by *English sentence*: no test
source is ever seen in training, and all its translations are its references. The split is
written to the run folder (``split.json``).

Scores: BLEU and chrF are computed against the original (cased, punctuated) references with
``lowercase=True`` because the model writes lower case (the first letter is capitalised on
output); ``bleu_cased`` is also reported. An attention heat map of a test sentence is saved as
``attention.png``. Greedy decoding, beam search, the scores and the heat map are in
:mod:`taller.trainers.decoding`.

The lesson (``--lesson``, :mod:`taller.trainers.lessons`): "beam vs greedy". A small translator
is trained on short pairs, then the same held-out English sentences are decoded greedily and
with beams of 2, 4 and 8 and each set of outputs is scored with BLEU and with the model's own
mean log-probability. The claim is that a beam of 4 scores more BLEU than greedy decoding: greedy
commits to the likeliest next word at every step, while a beam keeps several partial
translations and can still choose one whose first words looked less likely. The plot
(``lesson.png``) shows BLEU and the mean log-probability by beam size.

    python -m taller.trainers.seq2seq --epochs 10
    python -m taller.trainers.seq2seq --lesson
    python -m taller.trainers.seq2seq --dry-run
"""

from __future__ import annotations

import contextlib
import dataclasses
import random
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from taller.trainers import engine, lessons
from taller.trainers.decoding import beam_search, greedy_decode, plot_attention, score, sequence_log_probabilities
from taller.trainers.text import Vocab, float32_rnn, recurrent_threads, detokenize, is_word, load_pairs, pad_batch, tokenize

MODEL_NAME = "seq2seq"
CELLS = ("gru", "lstm")
ATTENTIONS = ("luong", "bahdanau")


@dataclass
class Config:
    epochs: int = 12
    batch_size: int = 128
    lr: float = 1e-3
    max_pairs: int | None = None  # None = the whole corpus (118,964 pairs)
    max_length: int = 20  # tokens per side; longer pairs are left out
    min_freq: int = 2
    max_vocab: int = 30000
    embedding_dim: int = 256
    hidden_size: int = 512
    cell: str = "gru"
    attention: str = "luong"
    dropout: float = 0.2
    teacher_forcing: float = 1.0  # probability of feeding the reference token (1 = always)
    label_smoothing: float = 0.1
    test_sources: int = 2000  # English sentences held out for the final scores
    val_sources: int = 1000  # English sentences for per-epoch validation (greedy BLEU)
    beam_size: int = 4
    length_penalty: float = 0.6  # GNMT's alpha: score / ((5 + length) / 6) ** alpha
    beam_eval_sentences: int = 500  # beam search is one sentence at a time: score this many
    patience: int = 3
    # On a CPU the full model takes hours: train on CPU_PAIRS pairs with hidden size CPU_HIDDEN
    # instead, so that a CPU run ends the same day; --no-cpu-small keeps the sizes above.
    cpu_small: bool = True
    seed: int = 0
    device: str = "auto"
    data_path: str | None = None
    dry_run: bool = False
    resume: bool = False
    lesson: bool = False  # run the lesson (beam search against greedy decoding) instead of one training


CPU_PAIRS, CPU_HIDDEN, CPU_EMBEDDING = 30000, 256, 128


# --- data --------------------------------------------------------------------------------

@dataclass
class Split:
    """Held-out English sentences with all their reference translations."""

    sources: list[str]
    references: list[list[str]]


def prepare(config: Config) -> dict[str, Any]:
    """Tokenise, filter by length, split by English sentence, build vocabularies and tensors."""
    pairs = load_pairs(config.data_path)
    rng = random.Random(config.seed)
    order = list(range(len(pairs)))
    rng.shuffle(order)
    limit = config.max_pairs
    if config.dry_run:
        limit = min(limit or 1500, 1500)
    groups: dict[str, list[int]] = {}
    tokenized: dict[int, tuple[list[str], list[str]]] = {}
    for index in order:
        english, spanish = pairs[index]
        src, tgt = tokenize(english, lower=True), tokenize(spanish, lower=True)
        if not src or not tgt or len(src) > config.max_length or len(tgt) > config.max_length:
            continue
        tokenized[index] = (src, tgt)
        groups.setdefault(" ".join(src), []).append(index)
        if limit is not None and len(tokenized) >= limit:
            break
    keys = list(groups)  # already in shuffled order
    n_test = min(config.test_sources, max(1, len(keys) // 10), 30 if config.dry_run else len(keys))
    n_val = min(config.val_sources, max(1, len(keys) // 10), 30 if config.dry_run else len(keys))
    split_keys = {"test": keys[:n_test], "val": keys[n_test : n_test + n_val], "train": keys[n_test + n_val :]}

    def held_out(names: list[str]) -> Split:
        return Split([pairs[groups[k][0]][0] for k in names], [[pairs[i][1] for i in groups[k]] for k in names])

    train_pairs = [tokenized[i] for k in split_keys["train"] for i in groups[k]]
    src_vocab = Vocab.build((s for s, _ in train_pairs), config.min_freq, config.max_vocab)
    tgt_vocab = Vocab.build((t for _, t in train_pairs), config.min_freq, config.max_vocab)
    val_pairs = [tokenized[i] for k in split_keys["val"] for i in groups[k]]
    return {
        "src_vocab": src_vocab,
        "tgt_vocab": tgt_vocab,
        "train": encode_pairs(train_pairs, src_vocab, tgt_vocab, config.max_length),
        "val_tensors": encode_pairs(val_pairs, src_vocab, tgt_vocab, config.max_length),
        "val": held_out(split_keys["val"]),
        "test": held_out(split_keys["test"]),
        "train_pairs": len(train_pairs),
        "split_sources": split_keys,  # tokenised English sentences of each split
    }


def encode_pairs(pairs, src_vocab: Vocab, tgt_vocab: Vocab, max_length: int) -> tuple[torch.Tensor, ...]:
    """(src ids, src lengths, decoder input ``<s> y``, decoder target ``y </s>``) tensors."""
    src, src_len = pad_batch([src_vocab.encode(s) for s, _ in pairs], src_vocab.pad_id, max_length)
    tgt_ids = [tgt_vocab.encode(t) for _, t in pairs]
    tgt_in, _ = pad_batch([[tgt_vocab.bos_id, *ids] for ids in tgt_ids], tgt_vocab.pad_id, max_length + 1)
    tgt_out, _ = pad_batch([[*ids, tgt_vocab.eos_id] for ids in tgt_ids], tgt_vocab.pad_id, max_length + 1)
    return src, src_len, tgt_in, tgt_out


def shrink_for_cpu(config: Config) -> None:
    """Cut the pairs and the model to the CPU sizes, in place, so that the checkpoint's config
    rebuilds the model that was trained."""
    config.max_pairs = min(config.max_pairs or CPU_PAIRS, CPU_PAIRS)
    config.hidden_size = min(config.hidden_size, CPU_HIDDEN)
    config.embedding_dim = min(config.embedding_dim, CPU_EMBEDDING)


def write_split(data: dict[str, Any], folder: Path) -> None:
    """``split.json``: the held-out English sentences with all their references."""
    engine.write_json_atomic(folder / "split.json", {
        "note": "held-out English sentences (never trained on) with all their Tatoeba translations",
        "test": {"sources": data["test"].sources, "references": data["test"].references},
        "val": {"sources": data["val"].sources, "references": data["val"].references},
    })


# --- model -------------------------------------------------------------------------------

def _top(state):
    """The decoder's hidden vector [B, H] from a GRU state or an LSTM (h, c) pair."""
    return (state[0] if isinstance(state, tuple) else state)[-1]


class Encoder(nn.Module):
    def __init__(self, vocab_size: int, embedding_dim: int, hidden_size: int, cell: str, dropout: float, pad_id: int):
        super().__init__()
        self.cell = cell
        self.embedding = nn.Embedding(vocab_size, embedding_dim, padding_idx=pad_id)
        rnn = nn.GRU if cell == "gru" else nn.LSTM
        self.rnn = rnn(embedding_dim, hidden_size, batch_first=True, bidirectional=True)
        # The decoder starts from both directions' final states, squeezed to its own size.
        self.bridge = nn.Linear(2 * hidden_size, hidden_size)
        self.bridge_cell = nn.Linear(2 * hidden_size, hidden_size) if cell == "lstm" else None
        self.dropout = nn.Dropout(dropout)

    def forward(self, src: torch.Tensor, src_len: torch.Tensor):
        embedded = self.dropout(self.embedding(src))
        packed = pack_padded_sequence(embedded, src_len.clamp(min=1).cpu(), batch_first=True, enforce_sorted=False)
        outputs, state = float32_rnn(self.rnn, packed)
        outputs, _ = pad_packed_sequence(outputs, batch_first=True, total_length=src.shape[1])

        def squeeze(final: torch.Tensor, layer: nn.Linear) -> torch.Tensor:
            both = torch.cat([final[0], final[1]], dim=-1)  # forward and backward directions
            return torch.tanh(layer(both)).unsqueeze(0)

        if self.cell == "lstm":
            h, c = state
            return outputs, (squeeze(h, self.bridge), squeeze(c, self.bridge_cell))
        return outputs, squeeze(state, self.bridge)


class Attention(nn.Module):
    """Luong "general" (score = h·W·e) or Bahdanau additive (score = v·tanh(W e + U h))."""

    def __init__(self, kind: str, hidden_size: int, encoder_size: int):
        super().__init__()
        self.kind = kind
        if kind == "luong":
            self.key = nn.Linear(encoder_size, hidden_size, bias=False)
        else:
            self.key = nn.Linear(encoder_size, hidden_size, bias=False)
            self.query = nn.Linear(hidden_size, hidden_size, bias=True)
            self.v = nn.Linear(hidden_size, 1, bias=False)

    def keys(self, encoder_outputs: torch.Tensor) -> torch.Tensor:
        """Project the encoder outputs once per sentence, not once per decoder step."""
        return self.key(encoder_outputs)

    def forward(self, query: torch.Tensor, keys: torch.Tensor, values: torch.Tensor, mask: torch.Tensor):
        """query [B, T, H], keys [B, S, H], values [B, S, 2H], mask [B, S] → context, weights [B, T, S]."""
        if self.kind == "luong":
            scores = torch.bmm(query, keys.transpose(1, 2))
        else:
            scores = self.v(torch.tanh(keys.unsqueeze(1) + self.query(query).unsqueeze(2))).squeeze(-1)
        scores = scores.float().masked_fill(~mask.unsqueeze(1), float("-inf"))
        weights = torch.softmax(scores, dim=-1)
        context = torch.bmm(weights.to(values.dtype), values)
        return context, weights


class Decoder(nn.Module):
    def __init__(self, vocab_size: int, embedding_dim: int, hidden_size: int, cell: str, attention: str,
                 dropout: float, pad_id: int):
        super().__init__()
        self.attention_kind = attention
        self.embedding = nn.Embedding(vocab_size, embedding_dim, padding_idx=pad_id)
        encoder_size = 2 * hidden_size
        # Bahdanau feeds the context into the recurrent cell; Luong attends after it.
        rnn_input = embedding_dim + (encoder_size if attention == "bahdanau" else 0)
        self.rnn = (nn.GRU if cell == "gru" else nn.LSTM)(rnn_input, hidden_size, batch_first=True)
        self.attention = Attention(attention, hidden_size, encoder_size)
        self.combine = nn.Linear(hidden_size + encoder_size, hidden_size)
        self.out = nn.Linear(hidden_size, vocab_size)
        self.dropout = nn.Dropout(dropout)

    def step(self, previous: torch.Tensor, state, values, keys, mask):
        """One decoding step for tokens ``previous`` [B] → logits [B, V], new state, weights [B, S]."""
        embedded = self.dropout(self.embedding(previous)).unsqueeze(1)
        if self.attention_kind == "bahdanau":
            context, weights = self.attention(_top(state).unsqueeze(1), keys, values, mask)
            output, state = float32_rnn(self.rnn, torch.cat([embedded, context], dim=-1), state)
        else:
            output, state = float32_rnn(self.rnn, embedded, state)
            context, weights = self.attention(output, keys, values, mask)
        logits = self.out(self.dropout(torch.tanh(self.combine(torch.cat([output, context], dim=-1)))))
        return logits.squeeze(1), state, weights.squeeze(1)

    def teacher_forced(self, inputs: torch.Tensor, state, values, keys, mask) -> torch.Tensor:
        """Logits [B, T, V] for a whole reference prefix at once (Luong) or step by step (Bahdanau)."""
        if self.attention_kind == "luong":
            # Without input feeding, every decoder state depends only on the reference prefix,
            # so one cuDNN call covers the whole sequence: same numbers as step(), far faster.
            embedded = self.dropout(self.embedding(inputs))
            output, _ = float32_rnn(self.rnn, embedded, state)
            context, _ = self.attention(output, keys, values, mask)
            return self.out(self.dropout(torch.tanh(self.combine(torch.cat([output, context], dim=-1)))))
        logits = []
        for t in range(inputs.shape[1]):
            step_logits, state, _ = self.step(inputs[:, t], state, values, keys, mask)
            logits.append(step_logits)
        return torch.stack(logits, dim=1)


class Seq2Seq(nn.Module):
    def __init__(self, src_vocab_size: int, tgt_vocab_size: int, config: Config, src_pad: int = 0, tgt_pad: int = 0):
        super().__init__()
        if config.cell not in CELLS:
            raise ValueError(f"cell must be one of {', '.join(CELLS)}, not {config.cell!r}")
        if config.attention not in ATTENTIONS:
            raise ValueError(f"attention must be one of {', '.join(ATTENTIONS)}, not {config.attention!r}")
        self.encoder = Encoder(src_vocab_size, config.embedding_dim, config.hidden_size, config.cell, config.dropout, src_pad)
        self.decoder = Decoder(tgt_vocab_size, config.embedding_dim, config.hidden_size, config.cell, config.attention,
                               config.dropout, tgt_pad)

    def encode(self, src: torch.Tensor, src_len: torch.Tensor):
        values, state = self.encoder(src, src_len)
        keys = self.decoder.attention.keys(values)
        mask = torch.arange(src.shape[1], device=src.device).unsqueeze(0) < src_len.to(src.device).unsqueeze(1)
        return values, keys, mask, state

    def forward(self, src, src_len, tgt_in, teacher_forcing: float = 1.0) -> torch.Tensor:
        values, keys, mask, state = self.encode(src, src_len)
        if teacher_forcing >= 1.0:
            return self.decoder.teacher_forced(tgt_in, state, values, keys, mask)
        # Scheduled sampling: at each step feed the reference or the model's own best guess.
        logits, previous = [], tgt_in[:, 0]
        for t in range(tgt_in.shape[1]):
            step_logits, state, _ = self.decoder.step(previous, state, values, keys, mask)
            logits.append(step_logits)
            if t + 1 < tgt_in.shape[1]:
                use_reference = random.random() < teacher_forcing
                previous = tgt_in[:, t + 1] if use_reference else step_logits.argmax(-1)
        return torch.stack(logits, dim=1)


# --- use (translation of new text) -------------------------------------------------------

class Translator:
    """A trained model with its vocabularies: ``translate("I am hungry.")``."""

    def __init__(self, model: Seq2Seq, src_vocab: Vocab, tgt_vocab: Vocab, config: Config, device="cpu"):
        self.model = model.to(device).eval()
        self.src_vocab, self.tgt_vocab, self.config = src_vocab, tgt_vocab, config
        self.device = torch.device(device)

    def source_tokens(self, text: str) -> list[str]:
        return tokenize(text, lower=True)

    def unknown_words(self, tokens: list[str]) -> list[str]:
        return [t for t in tokens if is_word(t) and t not in self.src_vocab.index]

    def _tensors(self, tokens: list[str]):
        src = torch.tensor([self.src_vocab.encode(tokens)], dtype=torch.long, device=self.device)
        return src, torch.tensor([len(tokens)], dtype=torch.long)

    @torch.no_grad()
    def translate_tokens(self, tokens: list[str], beam_size: int = 4) -> tuple[list[str], torch.Tensor]:
        src, src_len = self._tensors(tokens)
        bos, eos = self.tgt_vocab.bos_id, self.tgt_vocab.eos_id
        if beam_size <= 1:
            ids, weights = greedy_decode(self.model, src, src_len, bos, eos)
            ids, weights = ids[0], weights[0, : len(ids[0]) + 1]
        else:
            ids, weights = beam_search(self.model, src, src_len, bos, eos, beam_size, self.config.length_penalty)
        return self.tgt_vocab.decode(ids), weights

    def translate(self, text: str, beam_size: int = 4) -> str:
        output, _ = self.translate_tokens(self.source_tokens(text), beam_size)
        return detokenize(output)


def load(path: str | Path | None = None, device: str = "cpu") -> Translator:
    """The trained translator from ``path`` or the newest finished run; FileNotFoundError if none."""
    state, config = engine.trained_checkpoint(MODEL_NAME, Config, path, "seq2seq model")
    src_vocab, tgt_vocab = Vocab(state["extra"]["src_vocab"]), Vocab(state["extra"]["tgt_vocab"])
    model = Seq2Seq(len(src_vocab), len(tgt_vocab), config, src_vocab.pad_id, tgt_vocab.pad_id)
    model.load_state_dict(state["model"])
    return Translator(model, src_vocab, tgt_vocab, config, device)


# --- train -------------------------------------------------------------------------------

def _trim(src, src_len, tgt_in=None, tgt_out=None):
    """Cut a batch to its own longest sentences (most are far shorter than max_length)."""
    src = src[:, : max(int(src_len.max()), 1)]
    if tgt_in is None:
        return src, src_len
    longest = max(int((tgt_out != 0).sum(1).max()), 1)
    return src, src_len, tgt_in[:, :longest], tgt_out[:, :longest]


def decode_split(model: Seq2Seq, split: Split, src_vocab: Vocab, tgt_vocab: Vocab, device: torch.device,
                 beam_size: int = 1, length_penalty: float = 0.6, batch_size: int = 256,
                 limit: int | None = None) -> list[list[int]]:
    """Output token ids for a held-out split (batched greedy, or beam search one sentence at a time)."""
    model.eval()
    sources = split.sources[:limit] if limit else split.sources
    tokens = [tokenize(s, lower=True) for s in sources]
    outputs: list[list[int]] = []
    bos, eos = tgt_vocab.bos_id, tgt_vocab.eos_id
    for start in range(0, len(tokens), batch_size):
        chunk = tokens[start : start + batch_size]
        src, src_len = pad_batch([src_vocab.encode(t) for t in chunk], src_vocab.pad_id)
        src = src.to(device)
        with engine.autocast(device):
            if beam_size <= 1:
                ids, _ = greedy_decode(model, src, src_len, bos, eos)
            else:
                ids = [beam_search(model, src[i : i + 1, : len(chunk[i])], src_len[i : i + 1], bos, eos, beam_size,
                                   length_penalty)[0] for i in range(len(chunk))]
        outputs.extend(ids)
    model.train()
    return outputs


def translate_split(model: Seq2Seq, split: Split, src_vocab: Vocab, tgt_vocab: Vocab, device: torch.device,
                    beam_size: int = 1, length_penalty: float = 0.6, batch_size: int = 256,
                    limit: int | None = None) -> list[str]:
    """Translations of a held-out split (batched greedy, or beam search one sentence at a time)."""
    ids = decode_split(model, split, src_vocab, tgt_vocab, device, beam_size, length_penalty, batch_size, limit)
    return [detokenize(tgt_vocab.decode(row)) for row in ids]


def output_log_probabilities(model: Seq2Seq, split: Split, src_vocab: Vocab, tgt_vocab: Vocab,
                             outputs: list[list[int]], device: torch.device, batch_size: int = 256) -> list[float]:
    """The model's log-probability of each output of :func:`decode_split` given its source sentence."""
    model.eval()
    tokens = [tokenize(s, lower=True) for s in split.sources[: len(outputs)]]
    values: list[float] = []
    for start in range(0, len(tokens), batch_size):
        chunk = slice(start, start + batch_size)
        src, src_len = pad_batch([src_vocab.encode(t) for t in tokens[chunk]], src_vocab.pad_id)
        with engine.autocast(device):
            log_probabilities = sequence_log_probabilities(model, src.to(device), src_len, outputs[chunk],
                                                           tgt_vocab.bos_id, tgt_vocab.eos_id)
        values.extend(log_probabilities.tolist())
    return values


@torch.no_grad()
def validation_loss(model: Seq2Seq, tensors, criterion, device: torch.device, batch_size: int = 512) -> float:
    model.eval()
    total, count = 0.0, 0
    for start in range(0, len(tensors[0]), batch_size):
        src, src_len, tgt_in, tgt_out = _trim(*(t[start : start + batch_size].to(device) for t in tensors))
        with engine.autocast(device):
            logits = model(src, src_len, tgt_in)
        total += float(criterion(logits.float().reshape(-1, logits.shape[-1]), tgt_out.reshape(-1))) * len(src)
        count += len(src)
    model.train()
    return total / max(count, 1)


def train_one_epoch(model: Seq2Seq, batches, optimizer, criterion, run: engine.Run, epoch: int, epochs: int,
                    device: torch.device, total: int, teacher_forcing: float) -> list[float]:
    """One pass over the training pairs, at most ``total`` steps; returns the step losses."""
    model.train()
    step_losses = []
    for step, (src, src_len, tgt_in, tgt_out) in run.steps(batches, limit=total):
        src, src_len, tgt_in, tgt_out = _trim(src, src_len, tgt_in, tgt_out)
        with engine.autocast(device):
            logits = model(src, src_len, tgt_in, teacher_forcing)
        loss = criterion(logits.float().reshape(-1, logits.shape[-1]), tgt_out.reshape(-1))
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        step_losses.append(loss.detach())  # kept on the device: no sync per step
        run.progress(epoch, epochs, step, total, loss.detach())
    return torch.stack(step_losses).float().tolist() if step_losses else []


def test_scores(model: Seq2Seq, data: dict[str, Any], config: Config, device: torch.device, folder: Path) -> dict[str, Any]:
    """Greedy scores on the whole test split, beam against greedy on a subset, examples, attention.png."""
    src_vocab, tgt_vocab, test = data["src_vocab"], data["tgt_vocab"], data["test"]
    greedy = translate_split(model, test, src_vocab, tgt_vocab, device)
    greedy_scores = score(greedy, test.references)
    limit = min(config.beam_eval_sentences, len(test.sources), 10 if config.dry_run else len(test.sources))
    beam = translate_split(model, test, src_vocab, tgt_vocab, device, config.beam_size, config.length_penalty, limit=limit)
    beam_scores = score(beam, test.references[:limit])
    example_tokens = tokenize(test.sources[0], lower=True)
    output_tokens, weights = Translator(model, src_vocab, tgt_vocab, config, device).translate_tokens(
        example_tokens, config.beam_size)
    picture = plot_attention(example_tokens, output_tokens + ["</s>"], weights, folder / "attention.png")
    return {
        "test_bleu_greedy": greedy_scores["bleu"], "test_chrf_greedy": greedy_scores["chrf"],
        "test_bleu_cased_greedy": greedy_scores["bleu_cased"], "test_sentences": len(test.sources),
        f"test_bleu_beam{config.beam_size}": beam_scores["bleu"], f"test_chrf_beam{config.beam_size}": beam_scores["chrf"],
        "test_bleu_greedy_same_subset": score(greedy[:limit], test.references[:limit])["bleu"], "beam_sentences": limit,
        "images": [str(picture)],
        "examples": [{"source": s, "translation": h, "references": r[:3]}
                     for s, h, r in zip(test.sources[:5], beam[:5], test.references[:5])],
    }


def fit(config: Config, run: engine.Run, data: dict[str, Any], device: torch.device,
        checkpoints: bool) -> tuple[Seq2Seq, list[float], float | None]:
    """Train a translator on ``data`` (:func:`prepare`) and keep its best validation-BLEU weights.

    Returns the model (in eval mode), the step losses and the best validation BLEU. With
    ``checkpoints`` its checkpoints are the run's (``last.pt`` / ``best.pt``, resume); a lesson's
    model is trained without.
    """
    src_vocab, tgt_vocab = data["src_vocab"], data["tgt_vocab"]
    batches = engine.make_batches(data["train"], config.batch_size, device, shuffle=True, seed=config.seed)
    total = min(len(batches), 5) if config.dry_run else len(batches)

    engine.seed_everything(config.seed)
    model = Seq2Seq(len(src_vocab), len(tgt_vocab), config, src_vocab.pad_id, tgt_vocab.pad_id).to(device)
    optimizer = torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=1e-5)
    scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(optimizer, mode="max", factor=0.5, patience=1)
    criterion = nn.CrossEntropyLoss(ignore_index=tgt_vocab.pad_id, label_smoothing=config.label_smoothing)
    stopper = engine.EarlyStopping(config.patience, mode="max")
    run.track(model, optimizer, stopper=stopper, scheduler=scheduler, src_vocab=src_vocab.tokens,
              tgt_vocab=tgt_vocab.tokens, checkpoints=checkpoints)
    step_model = engine.prepare_model(model)  # DDP under torchrun
    history: list[float] = []
    for epoch in range(run.restore(), config.epochs + 1):
        losses = train_one_epoch(step_model, batches, optimizer, criterion, run, epoch, config.epochs, device, total,
                                 config.teacher_forcing)
        history.extend(losses)
        val_loss = validation_loss(model, data["val_tensors"], criterion, device)
        val_scores = score(translate_split(model, data["val"], src_vocab, tgt_vocab, device), data["val"].references)
        scheduler.step(val_scores["bleu"])
        metrics = {"train_loss": sum(losses) / max(len(losses), 1), "val_loss": val_loss,
                   "val_bleu_greedy": val_scores["bleu"], "val_chrf_greedy": val_scores["chrf"],
                   "lr": optimizer.param_groups[0]["lr"]}
        if run.end_epoch(epoch, config.epochs, metrics, monitor="val_bleu_greedy"):
            break

    run.load_best()
    model.eval()
    return model, history, stopper.best


def train(config: Config, run: "engine.Run | None" = None, cancel_event=None, on_progress=None) -> dict[str, Any]:
    """Train the translator, keep the best validation-BLEU weights, score the test split."""
    if config.epochs < 1:
        raise ValueError("epochs must be at least 1")
    if config.cell not in CELLS or config.attention not in ATTENTIONS:
        raise ValueError(f"cell must be one of {CELLS} and attention one of {ATTENTIONS}")
    if config.lesson:
        return lessons.run_lesson(MODEL_NAME, config, teach, run, cancel_event, on_progress, experiments=1,
                                  settings=LESSON_DRY_RUN if config.dry_run else LESSON)
    if config.dry_run:
        config.epochs = 1
    run = run or engine.Run.create(MODEL_NAME, config, cancel_event=cancel_event, on_progress=on_progress)
    with run, contextlib.ExitStack() as stack:  # the stack restores CPU threads
        started = time.perf_counter()
        device = run.use_device(config.device)
        stack.enter_context(recurrent_threads(device))
        if device.type == "cpu" and config.cpu_small and not config.dry_run:
            shrink_for_cpu(config)
        engine.seed_everything(config.seed)
        data = prepare(config)
        write_split(data, run.dir)
        model, history, best_val_bleu = fit(config, run, data, device, checkpoints=True)
        src_vocab, tgt_vocab = data["src_vocab"], data["tgt_vocab"]
        metrics = test_scores(model, data, config, device, run.dir)
        metrics.update({
            "train_pairs": data["train_pairs"], "src_vocab": len(src_vocab), "tgt_vocab": len(tgt_vocab),
            "first_loss": history[0] if history else None, "last_loss": history[-1] if history else None,
            "best_val_bleu": best_val_bleu, "device": str(device), "hidden_size": config.hidden_size,
            "wall_s": round(time.perf_counter() - started, 2),
        })
        return run.finish(metrics)


# --- lesson ------------------------------------------------------------------------------

@dataclass(frozen=True)
class LessonSettings:
    """The sizes of the lesson: a translator that learns short sentences on a laptop CPU in minutes."""

    pairs: int  # pairs of at most max_length tokens on both sides
    max_length: int
    epochs: int
    embedding_dim: int
    hidden_size: int
    batch_size: int
    lr: float
    test_sources: int  # held-out English sentences, decoded at every beam size
    val_sources: int  # held-out English sentences for the per-epoch validation BLEU
    beam_sizes: tuple[int, ...]  # 1 is greedy decoding


LESSON = LessonSettings(pairs=30000, max_length=6, epochs=5, embedding_dim=96, hidden_size=128, batch_size=64,
                        lr=3e-3, test_sources=600, val_sources=300, beam_sizes=(1, 2, 4, 8))
LESSON_DRY_RUN = LessonSettings(pairs=600, max_length=6, epochs=1, embedding_dim=16, hidden_size=16, batch_size=32,
                                lr=3e-3, test_sources=20, val_sources=20, beam_sizes=(1, 2, 4, 8))
LESSON_BEAM = 4  # the beam size the claim is about
LESSON_GAIN = 1.0  # the claimed least BLEU gain of that beam over greedy decoding


def lesson_config(config: Config) -> Config:
    """The training settings of the lesson's translator (the lesson's own sizes, the user's seed)."""
    settings = LESSON_DRY_RUN if config.dry_run else LESSON
    return dataclasses.replace(
        config, max_pairs=settings.pairs, max_length=settings.max_length, epochs=settings.epochs,
        embedding_dim=settings.embedding_dim, hidden_size=settings.hidden_size, batch_size=settings.batch_size,
        lr=settings.lr, test_sources=settings.test_sources, val_sources=settings.val_sources, cpu_small=False)


def decode_at_beam_sizes(model: Seq2Seq, data: dict[str, Any], config: Config, device: torch.device,
                         beam_sizes: tuple[int, ...]) -> dict[str, Any]:
    """The same held-out sentences decoded at each beam size: BLEU, chrF, mean log-probability, length."""
    src_vocab, tgt_vocab, test = data["src_vocab"], data["tgt_vocab"], data["test"]
    figures: dict[str, Any] = {"beam_sizes": list(beam_sizes), "bleu": [], "chrf": [], "mean_log_probability": [],
                               "mean_length": [], "changed_from_greedy": []}
    greedy: list[list[int]] | None = None
    translations: dict[int, list[str]] = {}
    for beam_size in beam_sizes:
        outputs = decode_split(model, test, src_vocab, tgt_vocab, device, beam_size, config.length_penalty)
        greedy = outputs if greedy is None else greedy
        translations[beam_size] = [detokenize(tgt_vocab.decode(row)) for row in outputs]
        scores = score(translations[beam_size], test.references)
        log_probabilities = output_log_probabilities(model, test, src_vocab, tgt_vocab, outputs, device)
        figures["bleu"].append(scores["bleu"])
        figures["chrf"].append(scores["chrf"])
        figures["mean_log_probability"].append(round(sum(log_probabilities) / len(log_probabilities), 4))
        # Tokens (words and marks) per translation: the beam ranks by log-probability per length.
        figures["mean_length"].append(round(sum(len(row) for row in outputs) / len(outputs), 3))
        figures["changed_from_greedy"].append(round(sum(a != b for a, b in zip(outputs, greedy)) / len(outputs), 4))
    first, chosen = beam_sizes[0], LESSON_BEAM if LESSON_BEAM in beam_sizes else beam_sizes[-1]
    differing = [i for i in range(len(test.sources)) if translations[first][i] != translations[chosen][i]]
    figures["examples"] = [{"source": test.sources[i], "greedy": translations[first][i],
                            f"beam{chosen}": translations[chosen][i]} for i in differing[:5]]
    figures["sentences"] = len(test.sources)
    return figures


def lesson_claim_holds(figures: dict[str, Any]) -> bool:
    """Whether beam LESSON_BEAM scores at least LESSON_GAIN BLEU more than greedy decoding."""
    bleu = dict(zip(figures["beam_sizes"], figures["bleu"]))
    return bleu[LESSON_BEAM] - bleu[1] >= LESSON_GAIN


def teach(config: Config, notebook: lessons.Notebook, device: torch.device) -> lessons.Lesson:
    """Beam vs greedy: one small translator, the same held-out sentences decoded at several beam sizes."""
    settings = LESSON_DRY_RUN if config.dry_run else LESSON
    training = lesson_config(config)

    def compute() -> dict[str, Any]:
        # One experiment: a lesson keeps no checkpoint, so the model lives only until it is decoded.
        engine.seed_everything(training.seed)
        data = prepare(training)
        model, history, best_val_bleu = fit(training, notebook.run, data, device, checkpoints=False)
        figures = decode_at_beam_sizes(model, data, training, device, settings.beam_sizes)
        figures.update({"train_pairs": data["train_pairs"], "best_val_bleu": best_val_bleu, "epochs": training.epochs,
                        "max_length": training.max_length, "hidden_size": training.hidden_size,
                        "first_loss": history[0] if history else None, "last_loss": history[-1] if history else None})
        return figures

    with recurrent_threads(device):
        figures = notebook.experiment("train and decode", compute)
    held = lesson_claim_holds(figures)
    return lessons.Lesson(
        title="Beam search against greedy decoding",
        claim=f"beam search of size {LESSON_BEAM} scores at least {LESSON_GAIN:g} BLEU point more than greedy decoding "
              f"on the same {figures['sentences']} held-out sentences",
        held=held, figures=figures, reading=lesson_reading(figures, held),
        plot=plot_lesson(figures, notebook.plot_path))


def lesson_reading(figures: dict[str, Any], held: bool) -> dict[str, str]:
    """Two sentences per language, from the measured BLEU and log-probabilities."""
    by_size = {size: index for index, size in enumerate(figures["beam_sizes"])}
    greedy, beam = by_size[1], by_size[LESSON_BEAM]
    bleu, log_probability = figures["bleu"], figures["mean_log_probability"]
    gain = bleu[beam] - bleu[greedy]
    changed = 100 * figures["changed_from_greedy"][beam]
    count = figures["sentences"]
    first_en = (f"On the same {count} held-out sentences, a beam of {LESSON_BEAM} scored {bleu[beam]:.1f} BLEU against "
                f"{bleu[greedy]:.1f} for greedy decoding ({gain:+.1f}; the claim needs +{LESSON_GAIN:g}, so it "
                f"{'held' if held else 'did not hold'}) and changed {changed:.0f} % of the translations.")
    first_es = (f"Sobre las mismas {count} frases reservadas, un haz de {LESSON_BEAM} obtuvo {bleu[beam]:.1f} de BLEU "
                f"frente a {bleu[greedy]:.1f} de la decodificación voraz ({gain:+.1f}; la afirmación pide "
                f"+{LESSON_GAIN:g}, así que {'se cumplió' if held else 'no se cumplió'}) y cambió el {changed:.0f} % "
                f"de las traducciones.")
    if log_probability[beam] > log_probability[greedy]:
        second_en = (f"Greedy decoding commits to the likeliest next word at each step, while the beam keeps several "
                     f"partial translations and finds outputs the model itself rates likelier (mean log-probability "
                     f"{log_probability[beam]:.2f} against {log_probability[greedy]:.2f}).")
        second_es = (f"La decodificación voraz se queda en cada paso con la palabra más probable, mientras que el haz "
                     f"guarda varias traducciones parciales y encuentra salidas que el propio modelo juzga más probables "
                     f"(log-probabilidad media {log_probability[beam]:.2f} frente a {log_probability[greedy]:.2f}).")
    else:
        second_en = (f"The beam's outputs are not likelier by the model's own sum of log-probabilities "
                     f"({log_probability[beam]:.2f} against {log_probability[greedy]:.2f}): its length normalisation "
                     f"ranks finished translations by log-probability per length, which favours longer ones.")
        second_es = (f"Las salidas del haz no son más probables según la suma de log-probabilidades del modelo "
                     f"({log_probability[beam]:.2f} frente a {log_probability[greedy]:.2f}): su normalización por "
                     f"longitud ordena las traducciones terminadas por log-probabilidad por longitud, lo que favorece "
                     f"las más largas.")
    return {"en": f"{first_en} {second_en}", "es": f"{first_es} {second_es}"}


def plot_lesson(figures: dict[str, Any], path: Path) -> Path:
    """Two panels by beam size (1 = greedy): BLEU, and the model's mean log-probability of its outputs."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    sizes = figures["beam_sizes"]
    positions = list(range(len(sizes)))
    names = ["greedy" if size == 1 else str(size) for size in sizes]
    figure, (left, right) = plt.subplots(1, 2, figsize=(9, 4))
    left.plot(positions, figures["bleu"], marker="o", color="tab:blue")
    left.axhline(figures["bleu"][0], color="grey", linestyle="--", linewidth=1, label="greedy")
    left.set_ylabel("BLEU (held-out sentences)")
    left.set_title(f"BLEU on the same {figures['sentences']} sentences")
    left.legend(loc="lower right")
    right.plot(positions, figures["mean_log_probability"], marker="o", color="tab:green")
    right.set_ylabel("mean log-probability of the outputs")
    right.set_title("The model's own score of its outputs")
    for axes in (left, right):
        axes.set_xticks(positions, names)
        axes.set_xlabel("beam size")
    figure.suptitle("Beam search against greedy decoding")
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return path


if __name__ == "__main__":
    raise SystemExit(engine.cli(Config, train))
