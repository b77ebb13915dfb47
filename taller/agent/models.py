"""The embedded GGUF model: where it comes from, how it is assembled and verified.

Filled in by the foundation work; ``installed_model_path`` returns None until a model exists.
"""

from __future__ import annotations

from pathlib import Path

from taller.config import Settings


def installed_model_path(settings: Settings) -> Path | None:
    folder = settings.models_dir
    if not folder.is_dir():
        return None
    files = sorted(folder.glob("*.gguf"))
    return files[0] if files else None
