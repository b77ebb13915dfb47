"""Face detectors: dlib's HOG frontal-face detector and OpenCV's Haar cascade.

Neither needs a weight file to download: dlib's detector is compiled into ``dlib-bin`` and the
cascade ``haarcascade_frontalface_default.xml`` ships in ``opencv-python-headless<5``. The
``face_detector`` setting picks one by its key in :data:`DETECTORS`.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from taller.vision.face_models.base import Detection, FaceModelError, _clip_box, _LazyModel

# dlib's default SVM threshold (0.0) accepts too much once the image is upsampled: on
# skimage's astronaut photo a mission patch scores 0.12 while the real face scores 1.16.
DLIB_SCORE_THRESHOLD = 0.3


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
