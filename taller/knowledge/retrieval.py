"""Retrieval over a Chroma collection of transcript chunks: dense top-k, BM25 hybrid, de-dup.

* Dense: Chroma's nearest neighbours of the query embedding (cosine), optionally filtered by a
  metadata ``where`` (one video).
* Hybrid: BM25 from the persistent SQLite FTS5 index of the same chunks
  (:mod:`taller.knowledge.fulltext`, one table per collection name, kept in step by the
  library's write paths); its top chunks join the dense candidates and every candidate scores
  ``cosine + LEXICAL_WEIGHT * bm25 / best bm25``, so an exact name or number in the question
  ("1,200 tractors", "Marshall Plan") can lift its chunk when the embedding is vague. Nothing
  is rebuilt when a video is added.
* De-duplication: overlapping time windows of the same video and near-identical texts (the same
  talk added twice) would fill the context with the same words; only the best of them is kept.

Every hit keeps its dense cosine similarity in ``score``; that (not the fused rank) is what the
"the transcript does not say" decision compares with a threshold, because it is calibrated
across questions while BM25 scores are not.
"""

from __future__ import annotations

import logging
import re
import sqlite3
from dataclasses import dataclass, field
from typing import Any, Sequence

from taller.knowledge.language import fold

log = logging.getLogger(__name__)

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

def tokenize(text: str) -> list[str]:
    """Lower-case words without accents or stop words ("Económica" and "economica" match)."""
    return [word for word in re.findall(r"\w+", fold(text)) if word not in _STOPWORDS]


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


def _video_filter(where: dict | None) -> tuple[bool, str | None]:
    """``(understood, video)`` for a Chroma ``where``: no filter, ``{"video": key}`` or
    ``{"video": {"$eq": key}}`` are understood by the full-text index; anything else is not."""
    if not where:
        return True, None
    if list(where) == ["video"]:
        value = where["video"]
        if isinstance(value, dict) and list(value) == ["$eq"]:
            value = value["$eq"]
        if isinstance(value, str):
            return True, value
    return False, None


def search(collection: Any, query: str, query_embedding: Sequence[float], k: int = 5,
           where: dict | None = None, hybrid: bool = True, candidates: int | None = None,
           max_overlap: float = 0.5, lexical_weight: float = LEXICAL_WEIGHT, prefix: int = 0) -> list[Hit]:
    """The ``k`` best chunks for ``query``: dense (plus BM25 when ``hybrid``), de-duplicated.

    ``lexical_weight`` is how much BM25 (divided by this query's best BM25 score) adds to the
    cosine similarity when ranking; 0 gives the dense order over the same candidates.

    The BM25 side reads the full-text index table named after the collection
    (``collection.name``, :mod:`taller.knowledge.fulltext`). Chunks written straight into
    Chroma should be written there too (:func:`taller.knowledge.fulltext.add`); a collection
    whose index is missing or whose row count differs is reconciled once, here, from Chroma.
    A ``where`` other than one video keeps the dense candidates and their BM25 scores but adds
    no BM25-only chunks (the index filters by video only). ``prefix`` > 0 matches words by their
    first ``prefix`` letters (:func:`taller.knowledge.fulltext.match_query`)."""
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
    for chunk_id, document, metadata, distance in zip(found["ids"][0], found["documents"][0],
                                                      found["metadatas"][0], found["distances"][0]):
        # Chroma's cosine distance is 1 - cosine similarity.
        hits[chunk_id] = Hit(chunk_id, document or "", dict(metadata or {}), score=1.0 - float(distance))

    lexical: dict[str, float] = {}
    top: list[tuple[str, float]] = []
    if hybrid:
        from taller.knowledge import fulltext

        name = collection.name
        try:
            fulltext.sync(collection, total)  # a no-op unless the index is missing or out of step
            understood, video = _video_filter(where)
            top = fulltext.search(name, query, candidates, video=video, prefix=prefix) if understood else []
            lexical = dict(top)
            # Dense candidates outside the BM25 top-N keep their real BM25 score (one more
            # query), as when every chunk was scored in memory: recall does not change.
            unscored = [chunk_id for chunk_id in hits if chunk_id not in lexical]
            if unscored:
                lexical.update(fulltext.scores(name, query, unscored, prefix=prefix))
        except sqlite3.Error as exc:
            # The index is derived data: a damaged or locked file costs the BM25 side of this
            # question, not the answer (deleting the file rebuilds it from Chroma).
            log.warning("full-text index %s unusable, dense retrieval only: %s", fulltext.index_path(), exc)
            top, lexical = [], {}
        missing = [chunk_id for chunk_id, _ in top if chunk_id not in hits]
        if missing:
            # BM25-only hits: text and metadata from Chroma, and their dense similarity for the
            # no-answer threshold. An id Chroma no longer holds (deleted since) is dropped.
            stored = collection.get(ids=missing, include=["documents", "metadatas", "embeddings"])
            for chunk_id, document, metadata, vector in zip(stored["ids"], stored["documents"],
                                                            stored["metadatas"], stored["embeddings"]):
                score = float(np.dot(np.asarray(vector, dtype=np.float32), query_vector)) \
                    if vector is not None else -1.0
                hits[chunk_id] = Hit(chunk_id, document or "", dict(metadata or {}), score=score)
    # This query's best BM25 score: the index's top hit (with a filter the index does not
    # understand, the best candidate).
    best = max(lexical.values(), default=0.0)
    for chunk_id, hit in hits.items():
        hit.lexical = lexical.get(chunk_id, 0.0) if best > 0 else 0.0
        # Convex-style fusion: the cosine similarity plus BM25 relative to this query's best
        # BM25 score. Reciprocal-rank fusion was measured first and lost more recall (0.80 vs
        # 0.87, docs/benchmarks.md): it lets any chunk both lists hold outrank a clearly better
        # dense match.
        hit.fused = hit.score + lexical_weight * (hit.lexical / best if best > 0 else 0.0)
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


def stems(words: Sequence[str], prefix: int = 0) -> set[str]:
    """``words`` cut to their first ``prefix`` letters (all of them when ``prefix`` is 0)."""
    return {word[:prefix] if prefix else word for word in words}


def add_evidence(hits: Sequence[Hit], query_vector: Sequence[float], embed_fn: Any,
                 query: str = "", word_weight: float = 0.0, prefix: int = 0) -> None:
    """Score each hit by its best short passage and locate that passage in time.

    A fact said in one sentence is diluted in a minute-long chunk's embedding (a planted
    sentence scores ~0.3 as a chunk, ~0.7 as a passage), so the "is it in the transcript"
    decision uses ``evidence = max(chunk score, best passage score)``; ``moment`` is the start of
    that passage, interpolated by character position inside the chunk, for a precise citation.
    With ``word_weight`` the *choice* of passage also counts the share of ``query``'s words it
    holds (for text the embedding model does not read well, e.g. Spanish with English MiniLM);
    ``evidence`` stays the cosine, which the no-answer threshold is calibrated on. ``prefix``
    compares words by their first letters, as the word search does (:func:`search`).
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
    vectors = embed_fn(texts)
    scores = vectors @ query_vector
    query_words = stems(tokenize(query), prefix) if word_weight else set()
    for hit, (begin, end) in zip(hits, spans):
        # Kept so the answer can find the passage that says what the model wrote, unembedded.
        hit.extra["passages"] = (texts[begin:end], offsets[begin:end], vectors[begin:end])
        choice = scores[begin:end]
        if word_weight and query_words:
            choice = choice + word_weight * np.asarray(
                [len(query_words & stems(tokenize(text), prefix)) / len(query_words) for text in texts[begin:end]])
        best = begin + int(np.argmax(choice))
        hit.extra["evidence"] = max(hit.score, float(np.max(scores[begin:end])))
        hit.extra["passage"] = texts[best]
        hit.extra["passage_offset"] = offsets[best]
        share = offsets[best] / max(1, len(hit.text))
        hit.extra["moment"] = hit.start + (hit.end - hit.start) * share
