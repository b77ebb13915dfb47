"""ChromaDB access for every knowledge module.

By default a ``PersistentClient`` under ``$TALLER_HOME/chroma``; setting ``chroma_url``
(``http://host:8000``) switches to ``HttpClient`` with no other change. Collections are created
with cosine distance and embedded by :mod:`taller.embeddings` (the caller passes
embeddings explicitly, so Chroma never downloads its own default model).
"""

from __future__ import annotations

import threading
from typing import Any
from urllib.parse import urlparse

from taller.config import get_settings

_clients: dict[str, Any] = {}
_lock = threading.Lock()


def get_client() -> Any:
    """The process-wide Chroma client for the current settings."""
    import chromadb
    from chromadb.config import Settings as ChromaSettings

    settings = get_settings()
    key = settings.chroma_url or str(settings.chroma_dir)
    with _lock:
        if key not in _clients:
            chroma_settings = ChromaSettings(anonymized_telemetry=False, allow_reset=False)
            if settings.chroma_url:
                url = urlparse(settings.chroma_url)
                _clients[key] = chromadb.HttpClient(
                    host=url.hostname or "localhost", port=url.port or 8000,
                    ssl=url.scheme == "https", settings=chroma_settings)
            else:
                settings.chroma_dir.mkdir(parents=True, exist_ok=True)
                _clients[key] = chromadb.PersistentClient(path=str(settings.chroma_dir),
                                                          settings=chroma_settings)
        return _clients[key]


def get_collection(name: str, metadata: dict | None = None) -> Any:
    """Get or create a collection (cosine space); embeddings are supplied by the caller."""
    meta = {"hnsw:space": "cosine"}
    meta.update(metadata or {})
    return get_client().get_or_create_collection(name=name, metadata=meta, embedding_function=None)
