"""The embedded GGUF model the real-model tests run on, when one is installed.

``TALLER_EMBEDDED_MODEL_PATH``, else the user's installed model (``taller model install`` puts it
in the default data folder, which the tests' temporary ``TALLER_HOME`` hides), the small 0.5B one
first when both are there.
"""

from __future__ import annotations

import os
from pathlib import Path

from taller.config import default_home


def installed_model() -> Path | None:
    """The GGUF file to test with, or None when no model is installed."""
    env = os.environ.get("TALLER_EMBEDDED_MODEL_PATH")
    if env and Path(env).is_file():
        return Path(env)
    # default_home() honours TALLER_HOME, which the test fixture points at a temp folder.
    saved = os.environ.pop("TALLER_HOME", None)
    try:
        folder = default_home() / "models"
    finally:
        if saved is not None:
            os.environ["TALLER_HOME"] = saved
    files = sorted(folder.glob("qwen2.5-coder-0.5b*.gguf")) or sorted(folder.glob("*.gguf"))
    return files[0] if files else None
