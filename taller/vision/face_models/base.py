"""What every face model shares: the face box, the error type and load-once-under-a-lock.

Also the small pixel helpers the detectors and classifiers all use. Names with a leading
underscore are private to the ``face_models`` package, not to this module.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Sequence

import numpy as np

from taller.errors import ToolError


@dataclass(frozen=True)
class Detection:
    """One face box in the pixels of the image it was found in."""

    x: int
    y: int
    w: int
    h: int
    score: float  # the detector's own score (dlib SVM margin, Haar level weight): not a probability


class FaceModelError(ToolError):
    """A configured face model cannot be found or loaded."""


class _LazyModel:
    """Loads its weights once, on first use, under a lock; serialises inference."""

    name = "model"

    def __init__(self) -> None:
        self._lock = threading.RLock()
        self._loaded = False

    def ensure_loaded(self) -> None:
        if self._loaded:
            return
        with self._lock:
            if not self._loaded:
                self._load()
                self._loaded = True

    @property
    def loaded(self) -> bool:
        return self._loaded

    def _load(self) -> None:  # pragma: no cover - every subclass defines it
        raise NotImplementedError


def _clip_box(x: float, y: float, w: float, h: float, width: int, height: int) -> tuple[int, int, int, int]:
    left, top = max(0, int(round(x))), max(0, int(round(y)))
    right, bottom = min(width, int(round(x + w))), min(height, int(round(y + h)))
    return left, top, max(0, right - left), max(0, bottom - top)


def _face_crop(image: np.ndarray, box: Detection, margin: float) -> np.ndarray:
    """The box grown by ``margin`` of its size on each side, clipped to the image."""
    height, width = image.shape[:2]
    dx, dy = box.w * margin, box.h * margin
    left, top, w, h = _clip_box(box.x - dx, box.y - dy, box.w + 2 * dx, box.h + 2 * dy, width, height)
    return image[top : top + max(h, 1), left : left + max(w, 1)]


def _as_distribution(labels: Sequence[str], values: np.ndarray) -> dict[str, float]:
    """Label -> probability, renormalised after rounding drift so it sums to 1."""
    values = np.asarray(values, dtype=np.float64)
    values = values / values.sum()
    return {label: float(value) for label, value in zip(labels, values)}
