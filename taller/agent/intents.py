"""The router's intent classifier: which tool (or none) a request is for, with a probability.

A nearest-example match over English MiniLM embeddings was the first pre-router. It missed in
two ways that no example list fixes: one close example decides alone (a Spanish question about
transformers landed on a video-question example that says "transformers"), and MiniLM, trained
on English, places short Spanish sentences close together whatever they ask. So the router
learns instead, the way intent classifiers in dialogue systems do (Rasa's default pipeline):

* features: character n-grams (2–5, inside word boundaries, accents and case folded) and word
  n-grams (1–2) of the request, which read Spanish and typos as well as English, beside its
  MiniLM embedding, which carries paraphrase;
* a multinomial logistic regression trained on every example of the tool registry
  (:func:`taller.tools.registry.router_examples`), so each word weighs what it tells about the
  tool across all examples, and the probabilities say how sure the router is.

What a request *carries* is masked before both features (a quoted text, a file, a folder, a
link, a number series become placeholders): "translate 'the train leaves at six'" is about translating,
not training, and a photo's file name says nothing about the tool beyond being a photo.

Training takes well under a second; the examples' embeddings are cached under
``$TALLER_HOME/cache`` (keyed by the examples and the embedding model) so a new process does not
embed them again.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import threading
import unicodedata
from typing import Any, Sequence

log = logging.getLogger(__name__)

# Weaker regularisation than scikit-learn's default C=1: the examples are few per tool and the
# n-gram features many, so distinctive words ("subtítulos", "época") must be allowed to count.
# Chosen by 5-fold cross-validation on the examples themselves (bench/intents_cv.py), not on the
# routing benchmark: n-grams of characters and words beside the embedding, C=100, 94.1 %.
REGULARIZATION_C = 100.0

_QUOTED = re.compile(r"""(?<!\w)(["“«'‘])(.+?)(["”»'’])(?!\w)""")
_URL = re.compile(r"https?://\S+|\b(?:www\.)?youtu(?:\.be|be\.com)/\S+", re.I)
_FILE = re.compile(r"(?:~|\.{1,2}|/)?[\w./~-]*[\w-]\.(png|jpe?g|bmp|gif|webp|tiff?|vtt|srt|json|csv|sqlite|db)\b", re.I)
# A folder written with its final slash: what a request carries, like a file (a folder of transcripts).
_FOLDER = re.compile(r"(?<![\w/])(?:~|\.{1,2})?/?(?:[\w.~-]+/)+(?=[\s'\")?!,;:]|$)")
_NUMBER_RUN = re.compile(r"-?\d+(?:[.,]\d+)?(?:\s*[,;]?\s*(?:and|y)?\s*-?\d+(?:[.,]\d+)?){3,}")
_FILE_KINDS = {"png": "photo", "jpg": "photo", "jpeg": "photo", "bmp": "photo", "gif": "photo", "webp": "photo",
               "tif": "photo", "tiff": "photo", "vtt": "subtitles", "srt": "subtitles", "json": "transcript",
               "csv": "csvfile", "sqlite": "dbfile", "db": "dbfile"}


# An acknowledgement that opens a turn ("nice, can you summarize it?", "vale, ahora resúmelo"):
# it says how the last answer landed, not what this turn asks, and it weighs on the side of chat.
_ACKNOWLEDGEMENT = re.compile(
    r"^\s*(?:(?:nice|great|cool|ok|okay|thanks|thank you|thx|perfect|awesome|sweet|good|lol|haha|hmm+|oh|ah|wow|"
    r"vale|genial|perfecto|gracias|bueno|bien|estupendo|guay|jaja|ok[eé]y?)\s*[,.!]+\s*)+(?=\S)", re.I)


def masked(text: str) -> str:
    """``text`` with what it carries replaced by placeholders (quotes, links, files, number series)
    and without an opening acknowledgement (:data:`_ACKNOWLEDGEMENT`)."""
    text = _ACKNOWLEDGEMENT.sub("", text)
    text = _URL.sub(" youtubelink ", text)
    text = _FILE.sub(lambda match: f" {_FILE_KINDS[match.group(1).lower()]}file ", text)
    text = _FOLDER.sub(" transcriptfolder ", text)
    text = _NUMBER_RUN.sub(" numberseries ", text)
    text = _QUOTED.sub(" quotedtext ", text)
    return re.sub(r"\s+", " ", text).strip()


def _folded(text: str) -> str:
    text = unicodedata.normalize("NFKD", text.lower())
    return "".join(ch for ch in text if not unicodedata.combining(ch))


class IntentClassifier:
    """Probabilities over the labels of ``examples`` ({label: [request, ...]}) for a request."""

    def __init__(self, examples: dict[str, list[str]]) -> None:
        self.examples = examples
        self._vectorizers: tuple[Any, ...] = ()
        self._model: Any = None
        self._lock = threading.Lock()
        self._last: tuple[str, list[tuple[str, float]]] | None = None

    @property
    def labels(self) -> list[str]:
        return list(self.examples)

    def _embed(self, texts: Sequence[str]) -> Any:
        from taller.embeddings import embed

        return embed(list(texts))

    def _example_embeddings(self, texts: list[str]) -> Any:
        """The examples' embeddings, from the cache when the same examples were embedded before."""
        import numpy as np

        from taller.config import get_settings
        from taller.embeddings import model_location

        settings = get_settings()
        key = hashlib.sha256(json.dumps([model_location(), texts]).encode()).hexdigest()[:16]
        path = settings.cache_dir / f"router-examples-{key}.npy"
        if path.is_file():
            try:
                cached = np.load(path)
                if cached.shape[0] == len(texts):
                    return cached
            except (OSError, ValueError) as exc:  # a cut file: embed again, overwrite it
                log.warning("ignoring the router's cached embeddings %s: %s", path, exc)
        vectors = self._embed(texts)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            partial = path.with_suffix(".tmp.npy")
            np.save(partial, vectors)
            partial.replace(path)  # atomic: another process never reads half a file
        except OSError as exc:  # a read-only or full disk costs a few seconds per process, nothing more
            log.warning("could not cache the router's embeddings in %s: %s", path, exc)
        return vectors

    def _fit(self) -> None:
        from scipy.sparse import csr_matrix, hstack
        from sklearn.feature_extraction.text import TfidfVectorizer
        from sklearn.linear_model import LogisticRegression

        labels, texts = [], []
        for label, sentences in self.examples.items():
            labels += [label] * len(sentences)
            texts += [masked(sentence) for sentence in sentences]
        characters = TfidfVectorizer(analyzer="char_wb", ngram_range=(2, 5), preprocessor=_folded, sublinear_tf=True)
        words = TfidfVectorizer(analyzer="word", ngram_range=(1, 2), preprocessor=_folded, sublinear_tf=True)
        features = hstack([characters.fit_transform(texts), words.fit_transform(texts),
                           csr_matrix(self._example_embeddings(texts))]).tocsr()
        self._model = LogisticRegression(C=REGULARIZATION_C, max_iter=5000).fit(features, labels)
        self._vectorizers = (characters, words)

    def _ensure(self) -> None:
        with self._lock:
            if self._model is None:
                self._fit()

    def scores(self, text: str) -> list[tuple[str, float]]:
        """``[(label, probability), ...]``, most likely first; the probabilities sum to 1."""
        from scipy.sparse import csr_matrix, hstack

        self._ensure()
        with self._lock:  # plan() asks more than once for one request
            if self._last is not None and self._last[0] == text:
                return list(self._last[1])
        query = masked(text)
        features = hstack([*(vectorizer.transform([query]) for vectorizer in self._vectorizers),
                           csr_matrix(self._embed([query]))]).tocsr()
        probabilities = self._model.predict_proba(features)[0]
        ranked = sorted(zip(self._model.classes_.tolist(), probabilities.tolist()), key=lambda item: item[1], reverse=True)
        with self._lock:
            self._last = (text, ranked)
        return list(ranked)
