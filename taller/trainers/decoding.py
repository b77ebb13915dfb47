"""Decoding for the ``seq2seq`` translator: greedy decoding, beam search, BLEU / chrF, attention maps.

The decoders work with any encoder–decoder that has ``encode(src, src_len) -> (values, keys,
mask, state)`` and ``decoder.step(previous, state, values, keys, mask) -> (logits, state,
weights)`` (:class:`taller.trainers.seq2seq.Seq2Seq`). Token ids 0 and 2 are ``<pad>`` and
``<s>`` (:class:`taller.trainers.text.Vocab`) and are never produced. Kept apart from the
trainer, which imports every name it uses from here, so that ``seq2seq.py`` stays a readable
data / model / train file.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn


def max_decode_length(source_length: int) -> int:
    return 2 * source_length + 10


def _never(logits: torch.Tensor, first_step: bool = False, eos: int = 3) -> torch.Tensor:
    """Padding and ``<s>`` are never outputs, nor ``</s>`` as the first word (no empty translations)."""
    logits = logits.float()
    logits[:, 0] = float("-inf")
    logits[:, 2] = float("-inf")
    if first_step:
        logits[:, eos] = float("-inf")
    return logits


@torch.no_grad()
def greedy_decode(model: nn.Module, src: torch.Tensor, src_len: torch.Tensor, bos: int, eos: int,
                  max_len: int | None = None) -> tuple[list[list[int]], torch.Tensor]:
    """Batched greedy decoding → token ids per sentence (without ``</s>``) and weights [B, T, S]."""
    values, keys, mask, state = model.encode(src, src_len)
    max_len = max_len or max_decode_length(int(src_len.max()))
    previous = torch.full((src.shape[0],), bos, dtype=torch.long, device=src.device)
    done = torch.zeros(src.shape[0], dtype=torch.bool, device=src.device)
    steps, weights = [], []
    for t in range(max_len):
        logits, state, attention = model.decoder.step(previous, state, values, keys, mask)
        previous = _never(logits, t == 0, eos).argmax(-1)
        steps.append(previous)
        weights.append(attention)
        done |= previous == eos
        if bool(done.all()):
            break
    ids = torch.stack(steps, dim=1).tolist()
    out = []
    for row in ids:
        out.append(row[: row.index(eos)] if eos in row else row)
    return out, torch.stack(weights, dim=1)


def _select(state, index: torch.Tensor):
    if isinstance(state, tuple):
        return tuple(s.index_select(1, index) for s in state)
    return state.index_select(1, index)


@torch.no_grad()
def beam_search(model: nn.Module, src: torch.Tensor, src_len: torch.Tensor, bos: int, eos: int, beam_size: int = 4,
                length_penalty: float = 0.6, max_len: int | None = None) -> tuple[list[int], torch.Tensor]:
    """Beam search for one sentence (``src`` [1, S]) → best ids (without ``</s>``), weights [T, S].

    Finished hypotheses are ranked by log-probability / ((5 + length) / 6) ** length_penalty
    (GNMT). Only an ``</s>`` among the top ``beam_size`` candidates of a step ends a hypothesis,
    and the search stops once ``beam_size`` hypotheses have ended, so ``beam_size=1`` is exactly
    greedy decoding.
    """
    values, keys, mask, state = model.encode(src, src_len)
    max_len = max_len or max_decode_length(int(src_len.max()))
    tokens: list[list[int]] = [[]]
    history: list[list[torch.Tensor]] = [[]]
    scores = torch.zeros(1, device=src.device)
    previous = torch.tensor([bos], device=src.device)
    finished: list[tuple[float, list[int], list[torch.Tensor]]] = []

    def normalised(score: float, length: int) -> float:
        return score / (((5 + length) / 6) ** length_penalty)

    for t in range(max_len):
        count = len(tokens)
        logits, state, attention = model.decoder.step(
            previous, state, values.expand(count, -1, -1), keys.expand(count, -1, -1), mask.expand(count, -1))
        total = scores.unsqueeze(1) + torch.log_softmax(_never(logits, t == 0, eos), dim=-1)
        vocab_size = total.shape[1]
        top_scores, top_index = total.view(-1).topk(min(2 * beam_size, total.numel()))
        keep_beam, keep_token, keep_score = [], [], []
        for rank, (score, index) in enumerate(zip(top_scores.tolist(), top_index.tolist())):
            beam, token = divmod(index, vocab_size)
            if token == eos:
                if rank < beam_size:
                    finished.append((normalised(score, len(tokens[beam]) + 1), tokens[beam], history[beam] + [attention[beam]]))
            else:
                keep_beam.append(beam)
                keep_token.append(token)
                keep_score.append(score)
            if len(keep_beam) == beam_size:
                break
        if len(finished) >= beam_size or not keep_beam:
            break
        index = torch.tensor(keep_beam, device=src.device)
        state = _select(state, index)
        tokens = [tokens[b] + [t] for b, t in zip(keep_beam, keep_token)]
        history = [history[b] + [attention[b]] for b in keep_beam]
        scores = torch.tensor(keep_score, device=src.device)
        previous = torch.tensor(keep_token, device=src.device)
    if not finished:  # ran out of length: the live hypotheses compete as they are
        finished = [(normalised(float(s), len(t)), t, h) for s, t, h in zip(scores.tolist(), tokens, history)]
    _, best, weights = max(finished, key=lambda item: item[0])
    return best, torch.stack(weights) if weights else torch.zeros(0, src.shape[1])


@torch.no_grad()
def sequence_log_probabilities(model: nn.Module, src: torch.Tensor, src_len: torch.Tensor, outputs: list[list[int]],
                               bos: int, eos: int) -> torch.Tensor:
    """The model's log-probability of each output (its ids, then ``</s>``) given its source → [B].

    One teacher-forced pass over the outputs with the decoders' own rules (no ``<pad>`` or ``<s>``,
    no ``</s>`` first): the sum that beam search maximises before length normalisation, so that
    greedy and beam outputs of the same sentences can be compared on what each search looks for.
    """
    longest = max(len(ids) for ids in outputs) + 1
    inputs = torch.zeros(len(outputs), longest, dtype=torch.long, device=src.device)  # 0 is <pad>
    targets = torch.zeros_like(inputs)
    for row, ids in enumerate(outputs):
        inputs[row, : len(ids) + 1] = torch.tensor([bos, *ids])
        targets[row, : len(ids) + 1] = torch.tensor([*ids, eos])
    values, keys, mask, state = model.encode(src, src_len)
    logits = model.decoder.teacher_forced(inputs, state, values, keys, mask).float()
    logits[..., 0] = float("-inf")
    logits[..., 2] = float("-inf")
    logits[:, 0, eos] = float("-inf")
    chosen = torch.log_softmax(logits, dim=-1).gather(-1, targets.unsqueeze(-1)).squeeze(-1)
    # Padding positions hold -inf (the <pad> logit): leave them out with where, not a product (nan).
    return torch.where(targets != 0, chosen, torch.zeros_like(chosen)).sum(dim=1)


def score(hypotheses: list[str], references: list[list[str]]) -> dict[str, float]:
    """Corpus BLEU (lower-cased and cased) and chrF with sacrebleu; several references allowed."""
    from sacrebleu.metrics import BLEU, CHRF

    # sacrebleu wants reference *streams* of equal length: pad each sentence's list by
    # repeating its first reference (a repeated reference changes neither BLEU nor chrF).
    width = max(len(r) for r in references)
    streams = [[refs[i] if i < len(refs) else refs[0] for refs in references] for i in range(width)]
    return {
        "bleu": round(BLEU(lowercase=True).corpus_score(hypotheses, streams).score, 2),
        "bleu_cased": round(BLEU().corpus_score(hypotheses, streams).score, 2),
        "chrf": round(CHRF(lowercase=True).corpus_score(hypotheses, streams).score, 2),
    }


def plot_attention(source_tokens: list[str], target_tokens: list[str], weights: torch.Tensor, path: Path) -> Path:
    """Heat map of attention weights: one row per output word, one column per input word."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    weights = weights.detach().float().cpu()[: len(target_tokens), : len(source_tokens)]
    figure, axes = plt.subplots(figsize=(1.0 + 0.55 * len(source_tokens), 1.0 + 0.45 * len(target_tokens)))
    axes.imshow(weights.numpy(), cmap="viridis", aspect="auto", vmin=0.0, vmax=1.0)
    axes.set_xticks(range(len(source_tokens)), source_tokens, rotation=60, ha="right")
    axes.set_yticks(range(len(target_tokens)), target_tokens)
    axes.set_xlabel("English (input)")
    axes.set_ylabel("Spanish (output)")
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return path
