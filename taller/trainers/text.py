"""Text helpers shared by the sequence trainers: the spa-eng corpus, tokenisation, vocabularies.

Both ``birnn`` (punctuation restoration) and ``seq2seq`` (English→Spanish translation) read the
Tatoeba/Anki pairs in ``spa-eng.zip`` (``spa-eng/spa.txt``, one ``English<TAB>Spanish`` pair a
line). They need the same three things: the pairs, a tokeniser that keeps Spanish accents and
splits off punctuation (including the opening ``¿`` and ``¡``), and a word vocabulary that can be
saved inside a checkpoint as a plain list of strings. All three sequence trainers (``rnn`` too)
use :func:`recurrent_threads`.
"""

from __future__ import annotations

import contextlib
import io
import random
import re
import unicodedata
import zipfile
from collections import Counter
from pathlib import Path
from typing import Iterable, Sequence

from taller.data import resolve

PAD, UNK, BOS, EOS = "<pad>", "<unk>", "<s>", "</s>"
SPECIALS = (PAD, UNK, BOS, EOS)

# A token is a number (3.5, 10,000, 7:30), a word (with inner apostrophes or hyphens:
# don't, twenty-one, l'homme), or any single other non-space character (. , ¿ ¡ ? ! " ...).
_TOKEN = re.compile(r"\d+(?:[.,:]\d+)+|\w+(?:[-'’]\w+)*|[^\w\s]")
_NO_SPACE_BEFORE = set(".,!?;:)]}»%…")
_NO_SPACE_AFTER = set("¿¡([{«")


# --- corpus ------------------------------------------------------------------------------

def load_pairs(path: str | Path | None = None, limit: int | None = None) -> list[tuple[str, str]]:
    """The (English, Spanish) pairs of ``spa-eng.zip`` (or of a plain ``spa.txt``), in file order.

    Lines that do not hold at least two tab-separated fields are skipped (the Anki export adds
    a third attribution field in some versions; it is ignored).
    """
    source = Path(path) if path is not None else resolve("spa-eng")
    if source.suffix == ".zip":
        with zipfile.ZipFile(source) as archive:
            names = [n for n in archive.namelist() if n.endswith("spa.txt")]
            if not names:
                raise ValueError(f"{source} holds no spa.txt (expected spa-eng/spa.txt)")
            raw = archive.read(names[0])
    else:
        raw = source.read_bytes()
    pairs: list[tuple[str, str]] = []
    for line in io.StringIO(raw.decode("utf-8")):
        fields = line.rstrip("\n").split("\t")
        if len(fields) < 2 or not fields[0].strip() or not fields[1].strip():
            continue
        pairs.append((normalize(fields[0]), normalize(fields[1])))
        if limit is not None and len(pairs) >= limit:
            break
    return pairs


def normalize(text: str) -> str:
    """NFC Unicode (so ``é`` is one code point), curly quotes made straight, spaces collapsed."""
    text = unicodedata.normalize("NFC", text)
    text = text.replace("\u2019", "'").replace("\u2018", "'").replace("\u00a0", " ")
    return " ".join(text.split())


def sample(items: Sequence, count: int | None, seed: int) -> list:
    """A reproducible random subset (all items, shuffled, when ``count`` is None or too big)."""
    order = list(range(len(items)))
    random.Random(seed).shuffle(order)
    if count is not None:
        order = order[:count]
    return [items[i] for i in order]


# --- tokenisation ------------------------------------------------------------------------

def tokenize(text: str, lower: bool = False) -> list[str]:
    """Words, numbers and single punctuation marks: ``"¿Qué hora es?"`` → ``["¿", "Qué", "hora", "es", "?"]``."""
    text = normalize(text)
    if lower:
        text = text.lower()
    return _TOKEN.findall(text)


def is_word(token: str) -> bool:
    return bool(token) and (token[0].isalnum() or token[0] == "_")


def detokenize(tokens: Iterable[str], capitalize: bool = True) -> str:
    """Join tokens with the spacing rules of English and Spanish; capitalise the first letter."""
    out = ""
    previous = ""
    for token in tokens:
        if out and token not in _NO_SPACE_BEFORE and previous not in _NO_SPACE_AFTER:
            out += " "
        out += token
        previous = token
    if capitalize:
        for i, ch in enumerate(out):
            if ch.isalpha():
                out = out[:i] + ch.upper() + out[i + 1 :]
                break
    return out


# --- vocabulary --------------------------------------------------------------------------

class Vocab:
    """Token ↔ id map; ids 0–3 are ``<pad> <unk> <s> </s>``. Saved as ``vocab.tokens`` (a list)."""

    def __init__(self, tokens: Sequence[str]):
        self.tokens = list(tokens)
        self.index = {token: i for i, token in enumerate(self.tokens)}

    @classmethod
    def build(cls, sentences: Iterable[Sequence[str]], min_freq: int = 2, max_size: int | None = None) -> "Vocab":
        counts = Counter(token for sentence in sentences for token in sentence)
        # Most frequent first; ties broken alphabetically so the same data gives the same ids.
        ranked = sorted((t for t, c in counts.items() if c >= min_freq and t not in SPECIALS), key=lambda t: (-counts[t], t))
        if max_size is not None:
            ranked = ranked[: max(0, max_size - len(SPECIALS))]
        return cls([*SPECIALS, *ranked])

    def __len__(self) -> int:
        return len(self.tokens)

    def encode(self, tokens: Sequence[str]) -> list[int]:
        unk = self.index[UNK]
        return [self.index.get(token, unk) for token in tokens]

    def decode(self, ids: Iterable[int], strip_specials: bool = True) -> list[str]:
        out = []
        for i in ids:
            token = self.tokens[int(i)] if 0 <= int(i) < len(self.tokens) else UNK
            if token == EOS and strip_specials:
                break
            if strip_specials and token in (PAD, BOS):
                continue
            out.append(token)
        return out

    @property
    def pad_id(self) -> int:
        return self.index[PAD]

    @property
    def unk_id(self) -> int:
        return self.index[UNK]

    @property
    def bos_id(self) -> int:
        return self.index[BOS]

    @property
    def eos_id(self) -> int:
        return self.index[EOS]


def pad_batch(sequences: Sequence[Sequence[int]], pad_id: int = 0, length: int | None = None):
    """A ``[N, L]`` long tensor of right-padded id lists and the ``[N]`` tensor of their lengths."""
    import torch

    length = length or max((len(s) for s in sequences), default=1) or 1
    out = torch.full((len(sequences), length), pad_id, dtype=torch.long)
    lengths = torch.zeros(len(sequences), dtype=torch.long)
    for row, seq in enumerate(sequences):
        seq = list(seq)[:length]
        out[row, : len(seq)] = torch.tensor(seq, dtype=torch.long)
        lengths[row] = len(seq)
    return out, lengths


# --- CPU threads -------------------------------------------------------------------------

@contextlib.contextmanager
def recurrent_threads(device, threads: int = 1):
    """Run small recurrent models on ``threads`` CPU threads, then restore the setting.

    A recurrent step is a chain of tiny matrix products: splitting each over two OpenMP threads
    gains little, and on a busy machine the threads spin-wait for each other. Measured on the
    shared 2-core VM (birnn, batch 64, hidden 32): 0.034 s a step with one thread, 1.1 s with two.
    On a GPU this does nothing.
    """
    import torch

    if getattr(device, "type", str(device)) != "cpu":
        yield
        return
    previous = torch.get_num_threads()
    torch.set_num_threads(min(threads, previous))
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def float32_rnn(rnn, inputs, state=None):
    """Call a recurrent layer in float32 even inside bf16 autocast.

    cuDNN runs bf16 RNNs only from version 9.13 on, and PyTorch's non-cuDNN fallback has no bf16
    kernel, so the recurrent layers stay float32 on every GPU; the large matrix products around
    them (attention, the vocabulary projection) still run in bf16. On CPU autocast is off anyway.
    """
    import torch
    from torch.nn.utils.rnn import PackedSequence

    data = inputs.data if isinstance(inputs, PackedSequence) else inputs
    if data.device.type != "cuda":
        return rnn(inputs, state)
    with torch.autocast("cuda", enabled=False):
        if isinstance(inputs, PackedSequence):
            inputs = inputs._replace(data=inputs.data.float())
        else:
            inputs = inputs.float()
        if state is not None:
            state = tuple(s.float() for s in state) if isinstance(state, tuple) else state.float()
        return rnn(inputs, state)
