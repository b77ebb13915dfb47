"""Retrieval over a Chroma collection of transcript chunks: dense top-k, BM25 hybrid, de-dup.

* Dense: Chroma's nearest neighbours of the query embedding (cosine), optionally filtered by a
  metadata ``where`` (one video).
* Hybrid: BM25 (``rank-bm25``'s Okapi BM25) over the same chunks; its top chunks join the
  dense candidates and every candidate scores ``cosine + LEXICAL_WEIGHT * bm25 / best bm25``,
  so an exact name or number in the question ("1,200 tractors", "Marshall Plan") can lift its
  chunk when the embedding is vague. The BM25 index is built once per (collection, filter) and
  rebuilt when the collection changes.
* De-duplication: overlapping time windows of the same video and near-identical texts (the same
  talk added twice) would fill the context with the same words; only the best of them is kept.

Every hit keeps its dense cosine similarity in ``score``; that (not the fused rank) is what the
"the transcript does not say" decision compares with a threshold, because it is calibrated
across questions while BM25 scores are not.
"""

from __future__ import annotations

import re
import threading
import unicodedata
from dataclasses import dataclass, field
from typing import Any, Sequence

# Weight of BM25 (scaled to [0, 1] per query) added to the cosine similarity; measured on the
# bench question set (docs/benchmarks.md).
LEXICAL_WEIGHT = 0.3

# Function words in English and Spanish carry no topic; dropping them sharpens BM25.
_STOPWORDS = frozenset("""
a an and are as at be but by for from has have he her his i if in into is it its me my no not of on
or our she so than that the their them then there these they this to us was we were what when where
which who why will with would you your do does did been being can could should about how all any
el la los las un una unos unas y o de del al en con por para que se es son fue lo le les su sus mi
tu nos como mas pero si no ya muy este esta estos estas ese esa eso hay ha han era ser
""".split())

_generation = 0
_generation_lock = threading.Lock()


def bump_generation() -> None:
    """Mark every cached lexical index stale (call after adding or deleting chunks)."""
    global _generation
    with _generation_lock:
        _generation += 1


def tokenize(text: str) -> list[str]:
    """Lower-case words without accents or stop words ("Económica" and "economica" match)."""
    folded = unicodedata.normalize("NFKD", text.lower())
    folded = "".join(ch for ch in folded if not unicodedata.combining(ch))
    return [word for word in re.findall(r"\w+", folded) if word not in _STOPWORDS]


@dataclass
class Hit:
    """One retrieved chunk."""

    id: str
    text: str
    metadata: dict[str, Any]
    score: float  # dense cosine similarity to the question, in [-1, 1]
    lexical: float = 0.0  # BM25 score (0 when hybrid is off or the chunk has no query word)
    fused: float = 0.0  # the ranking score actually used
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def video(self) -> str:
        return str(self.metadata.get("video", ""))

    @property
    def start(self) -> float:
        return float(self.metadata.get("start", 0.0))

    @property
    def end(self) -> float:
        return float(self.metadata.get("end", self.start))


class LexicalIndex:
    """BM25 over every chunk matching one filter, with their ids, texts and metadata."""

    def __init__(self, ids: list[str], documents: list[str], metadatas: list[dict]) -> None:
        from rank_bm25 import BM25Okapi

        self.ids = ids
        self.position = {chunk_id: i for i, chunk_id in enumerate(ids)}
        self.documents = documents
        self.metadatas = metadatas
        tokenized = [tokenize(document) or ["_"] for document in documents]
        self.bm25 = BM25Okapi(tokenized) if tokenized else None

    def top(self, query: str, n: int) -> list[tuple[int, float]]:
        """Indexes and scores of the ``n`` best chunks that share a word with the query."""
        return self.top_of(self.scores(query), n)

    def scores(self, query: str) -> "Any":
        """BM25 score of every chunk for ``query`` (a numpy array; empty without query words)."""
        import numpy as np

        terms = tokenize(query)
        if self.bm25 is None or not terms:
            return np.zeros(0)
        return self.bm25.get_scores(terms)

    @staticmethod
    def top_of(scores: "Any", n: int) -> list[tuple[int, float]]:
        import numpy as np

        if not len(scores) or n <= 0:
            return []
        n = min(n, len(scores))
        best = np.argpartition(-scores, n - 1)[:n]
        best = best[np.argsort(-scores[best])]
        return [(int(i), float(scores[i])) for i in best if scores[i] > 0]


PAGE = 5000
_lexical_cache: dict[tuple, tuple[int, LexicalIndex]] = {}
_lexical_lock = threading.Lock()


def lexical_index(collection: Any, where: dict | None) -> LexicalIndex:
    """The cached BM25 index of the chunks matching ``where`` (rebuilt after any change)."""
    key = (collection.name, repr(sorted((where or {}).items())))
    with _lexical_lock:
        cached = _lexical_cache.get(key)
        stamp = _generation * 1_000_003 + collection.count()
        if cached and cached[0] == stamp:
            return cached[1]
    ids: list[str] = []
    documents: list[str] = []
    metadatas: list[dict] = []
    # Page through the collection: one get() of ~100k chunks fails in Chroma's SQLite layer
    # ("too many SQL variables").
    while True:
        page = collection.get(where=where, include=["documents", "metadatas"], limit=PAGE, offset=len(ids))
        ids.extend(page["ids"])
        documents.extend(page["documents"] or [])
        metadatas.extend(page["metadatas"] or [])
        if len(page["ids"]) < PAGE:
            break
    index = LexicalIndex(ids, documents, metadatas)
    with _lexical_lock:
        _lexical_cache[key] = (stamp, index)
    return index


def clear_cache() -> None:
    with _lexical_lock:
        _lexical_cache.clear()


def _overlap_fraction(a: Hit, b: Hit) -> float:
    """Shared time of two chunks of the same video, as a fraction of the shorter one."""
    if a.video != b.video:
        return 0.0
    shared = min(a.end, b.end) - max(a.start, b.start)
    shorter = max(1e-6, min(a.end - a.start, b.end - b.start))
    return max(0.0, shared) / shorter


def _jaccard(a: str, b: str) -> float:
    left, right = set(tokenize(a)), set(tokenize(b))
    if not left or not right:
        return 0.0
    return len(left & right) / len(left | right)


def deduplicate(hits: Sequence[Hit], k: int, max_overlap: float = 0.5,
                max_similarity: float = 0.8) -> list[Hit]:
    """The first ``k`` hits (in order) that neither overlap a kept one in time by more than
    ``max_overlap`` of the shorter chunk nor repeat its words (Jaccard above ``max_similarity``)."""
    kept: list[Hit] = []
    for hit in hits:
        if any(_overlap_fraction(hit, other) > max_overlap for other in kept):
            continue
        if any(_jaccard(hit.text, other.text) > max_similarity for other in kept):
            continue
        kept.append(hit)
        if len(kept) == k:
            break
    return kept


def search(collection: Any, query: str, query_embedding: Sequence[float], k: int = 5,
           where: dict | None = None, hybrid: bool = True, candidates: int | None = None,
           max_overlap: float = 0.5, lexical_weight: float = LEXICAL_WEIGHT) -> list[Hit]:
    """The ``k`` best chunks for ``query``: dense (plus BM25 when ``hybrid``), de-duplicated.

    ``lexical_weight`` is how much BM25 (divided by this query's best BM25 score) adds to the
    cosine similarity when ranking; 0 gives the dense order over the same candidates."""
    import numpy as np

    total = collection.count()
    if total == 0 or k <= 0:
        return []
    # Extra candidates leave room for de-duplication and for the two rankings to disagree.
    candidates = min(total, candidates or max(4 * k, 20))
    query_vector = np.asarray(query_embedding, dtype=np.float32)
    kwargs: dict[str, Any] = {"query_embeddings": [query_vector.tolist()], "n_results": candidates,
                              "include": ["documents", "metadatas", "distances"]}
    if where:
        kwargs["where"] = where
    found = collection.query(**kwargs)
    hits: dict[str, Hit] = {}
    dense_order: list[str] = []
    for chunk_id, document, metadata, distance in zip(found["ids"][0], found["documents"][0],
                                                      found["metadatas"][0], found["distances"][0]):
        # Chroma's cosine distance is 1 - cosine similarity.
        hits[chunk_id] = Hit(chunk_id, document or "", dict(metadata or {}), score=1.0 - float(distance))
        dense_order.append(chunk_id)

    lexical_norm: dict[str, float] = {}
    if hybrid:
        index = lexical_index(collection, where)
        bm25_scores = index.scores(query)
        top_bm25 = float(bm25_scores.max()) if len(bm25_scores) else 0.0
        missing: list[str] = []
        for position, bm25 in index.top_of(bm25_scores, candidates):
            chunk_id = index.ids[position]
            if chunk_id not in hits:
                hits[chunk_id] = Hit(chunk_id, index.documents[position], dict(index.metadatas[position] or {}),
                                     score=float("nan"))
                missing.append(chunk_id)
        for chunk_id, hit in hits.items():
            position = index.position.get(chunk_id)
            hit.lexical = float(bm25_scores[position]) if position is not None and top_bm25 > 0 else 0.0
            lexical_norm[chunk_id] = hit.lexical / top_bm25 if top_bm25 > 0 else 0.0
        if missing:
            # BM25-only hits still need their dense similarity for the no-answer threshold.
            vectors = collection.get(ids=missing, include=["embeddings"])
            for chunk_id, vector in zip(vectors["ids"], vectors["embeddings"]):
                hits[chunk_id].score = float(np.dot(np.asarray(vector, dtype=np.float32), query_vector))
    for chunk_id, hit in hits.items():
        if hit.score != hit.score:  # NaN: an embedding Chroma did not return
            hit.score = -1.0
        # Convex-style fusion: the cosine similarity plus BM25 relative to this query's best
        # BM25 score. Reciprocal-rank fusion was measured first and lost more recall (0.80 vs
        # 0.87, docs/benchmarks.md): it lets any chunk both lists hold outrank a clearly better
        # dense match.
        hit.fused = hit.score + lexical_weight * lexical_norm.get(chunk_id, 0.0)
    ranked = sorted(hits.values(), key=lambda h: (h.fused, h.score), reverse=True)
    return deduplicate(ranked, k, max_overlap=max_overlap)


# --- passage-level evidence --------------------------------------------------------------------

def passages(text: str, sentences_per_passage: int = 2, max_words: int = 40) -> list[tuple[int, str]]:
    """(character offset, text) of short passages of a chunk: each sentence and each pair of
    consecutive sentences; runs of ``max_words`` words stand for sentences where captions have
    no punctuation (YouTube's automatic captions)."""
    pieces: list[tuple[int, str]] = []
    for match in re.finditer(r"[^.!?…]+(?:[.!?…]+|$)", text):
        sentence = match.group(0)
        if not sentence.strip():
            continue
        words = list(re.finditer(r"\S+", sentence))
        for begin in range(0, len(words), max_words):
            group = words[begin:begin + max_words]
            pieces.append((match.start() + group[0].start(), sentence[group[0].start():group[-1].end()]))
    if len(pieces) <= 1:
        return pieces or [(0, text)]
    # Single sentences locate a fact precisely; pairs catch one that spans two sentences.
    joined = [(pieces[i][0], " ".join(p[1] for p in pieces[i:i + sentences_per_passage]))
              for i in range(0, len(pieces) - sentences_per_passage + 1)] if sentences_per_passage > 1 else []
    return pieces + joined


def add_evidence(hits: Sequence[Hit], query_vector: Sequence[float], embed_fn: Any) -> None:
    """Score each hit by its best short passage and locate that passage in time.

    A fact said in one sentence is diluted in a minute-long chunk's embedding (a planted
    sentence scores ~0.3 as a chunk, ~0.7 as a passage), so the "is it in the transcript"
    decision uses ``evidence = max(chunk score, best passage score)``; ``moment`` is the start of
    that passage, interpolated by character position inside the chunk, for a precise citation.
    """
    import numpy as np

    query_vector = np.asarray(query_vector, dtype=np.float32)
    spans: list[tuple[int, int]] = []
    texts: list[str] = []
    offsets: list[int] = []
    for hit in hits:
        found = passages(hit.text)
        spans.append((len(texts), len(texts) + len(found)))
        texts.extend(p[1] for p in found)
        offsets.extend(p[0] for p in found)
    if not texts:
        return
    scores = embed_fn(texts) @ query_vector
    for hit, (begin, end) in zip(hits, spans):
        best = begin + int(np.argmax(scores[begin:end]))
        hit.extra["evidence"] = max(hit.score, float(scores[best]))
        share = offsets[best] / max(1, len(hit.text))
        hit.extra["moment"] = hit.start + (hit.end - hit.start) * share
