"""The seed project's path: emotion and age models saved with Hugging Face ``transformers``.

They are never downloaded: :func:`locate_hf_model` finds a saved model in a folder or in the
local Hugging Face cache, or reports that there is none. Age models come as regression heads
or as age-band classifiers; :func:`age_from_outputs` reads both.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from taller.vision.face_models.base import Detection, FaceModelError, _as_distribution, _face_crop, _LazyModel

# The two models the seed project used.
SEED_EMOTION_REPO = "dima806/facial_emotions_image_detection"
SEED_AGE_REPO = "Robys01/facial_age_estimator"


def locate_hf_model(spec: str, cache_dir: str | Path | None = None) -> Path | None:
    """A local folder with a saved model for ``spec`` (folder or repo id), never downloading.

    ``cache_dir`` overrides the Hugging Face cache (``HF_HUB_CACHE``) for this lookup.
    """
    candidate = Path(spec).expanduser()
    if candidate.is_dir():
        return candidate if (candidate / "config.json").is_file() else None
    if not re.fullmatch(r"[\w.-]+/[\w.-]+", spec):
        return None
    try:
        from huggingface_hub import snapshot_download

        folder = Path(snapshot_download(spec, local_files_only=True, cache_dir=cache_dir))
    except Exception:  # not in the cache (or hub library missing): simply not available
        return None
    return folder if (folder / "config.json").is_file() else None


class HFImageClassifier(_LazyModel):
    """An image-classification (or one-output regression) model saved with ``transformers``."""

    def __init__(self, folder: Path, name: str) -> None:
        super().__init__()
        self.folder = folder
        self.name = f"transformers:{name}"

    def _load(self) -> None:
        try:
            import torch
            from transformers import AutoImageProcessor, AutoModelForImageClassification

            self._processor = AutoImageProcessor.from_pretrained(self.folder, local_files_only=True, use_fast=False)
            self._model = AutoModelForImageClassification.from_pretrained(self.folder, local_files_only=True)
        except Exception as exc:
            raise FaceModelError(f"cannot load the transformers model in {self.folder}: {exc}") from exc
        self._model.eval()
        self._torch = torch
        id2label = getattr(self._model.config, "id2label", None) or {}
        self.labels = [str(id2label.get(i, id2label.get(str(i), i))).lower() for i in range(self._model.config.num_labels)]

    def outputs(self, rgb: np.ndarray, boxes: Sequence[Detection], margin: float = 0.1) -> np.ndarray:
        from PIL import Image

        self.ensure_loaded()
        crops = [Image.fromarray(np.ascontiguousarray(_face_crop(rgb, box, margin))) for box in boxes]
        inputs = self._processor(images=crops, return_tensors="pt")
        with self._lock, self._torch.inference_mode():
            logits = self._model(**inputs).logits
        return logits.double().numpy()


class HFEmotionModel(HFImageClassifier):
    def predict(self, rgb: np.ndarray, boxes: Sequence[Detection]) -> list[dict[str, float]]:
        if not boxes:
            return []
        logits = self.outputs(rgb, boxes)
        exp = np.exp(logits - logits.max(axis=1, keepdims=True))
        return [_as_distribution(self.labels, row) for row in exp]


_RANGE_LABEL = re.compile(r"(\d+)\s*(?:-|–|to|_|,)\s*(\d+)")
_OPEN_LABEL = re.compile(r"(\d+)\s*\+|(?:over|more than|>)\s*(\d+)")


def parse_age_label(label: str) -> tuple[float, float] | None:
    """Age bounds of a class label: ``"20-29"`` or ``"(25, 32)"`` -> (20, 29) / (25, 32), ``"70+"`` -> (70, 90), ``"35"`` -> (35, 35)."""
    text = str(label).strip().lower()
    match = _RANGE_LABEL.search(text)
    if match:
        low, high = float(match.group(1)), float(match.group(2))
        return (min(low, high), max(low, high))
    match = _OPEN_LABEL.search(text)
    if match:
        low = float(match.group(1) or match.group(2))
        return (low, max(low + 20.0, 90.0))  # an open band: assume it ends at 90
    match = re.fullmatch(r"\D*(\d+)\D*", text)
    if match:
        value = float(match.group(1))
        return (value, value)
    return None


def age_from_outputs(outputs: np.ndarray, labels: Sequence[str]) -> dict[str, Any]:
    """Turn one model output row into the ``age`` result (regression or age classes)."""
    outputs = np.asarray(outputs, dtype=np.float64).reshape(-1)
    if outputs.size == 1:  # regression head: the value is the age in years, no range given
        return {"value": round(float(outputs[0]), 1)}
    bounds = [parse_age_label(label) for label in labels]
    if any(bound is None for bound in bounds):
        raise FaceModelError(f"cannot read ages from the model's class labels {list(labels)}")
    exp = np.exp(outputs - outputs.max())
    probabilities = exp / exp.sum()
    midpoints = np.asarray([(low + high) / 2 for low, high in bounds])
    best = int(np.argmax(probabilities))
    low, high = bounds[best]
    return {
        "value": round(float(np.dot(midpoints, probabilities)), 1),
        "band": str(labels[best]),
        "band_probability": round(float(probabilities[best]), 4),
        "range": [int(low), int(high)],
    }


class HFAgeModel(HFImageClassifier):
    def predict(self, rgb: np.ndarray, boxes: Sequence[Detection]) -> list[dict[str, Any]]:
        if not boxes:
            return []
        return [age_from_outputs(row, self.labels) for row in self.outputs(rgb, boxes)]
