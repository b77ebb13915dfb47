"""The analyze_face tool: schema, registry path, JSON result, errors as results."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from PIL import Image

from taller.tools import run_tool, validate_args
from taller.tools.base import ToolError


@pytest.fixture(scope="module")
def astronaut(tmp_path_factory) -> Path:
    from skimage import data

    path = tmp_path_factory.mktemp("tool_photos") / "astronaut.jpg"
    Image.fromarray(data.astronaut()).save(path, quality=92)
    return path


def test_tool_returns_the_contract(astronaut):
    out = run_tool("analyze_face", {"image_path": str(astronaut)})
    assert "error" not in out, out.get("error")
    json.loads(json.dumps(out))
    assert out["summary"].startswith("Found 1 face")
    face = out["faces"][0]
    assert {"box", "emotion", "age", "backend"} <= set(face)
    assert {"label", "probabilities"} <= set(face["emotion"])
    assert "value" in face["age"] and "range" in face["age"]
    assert Path(out["annotated_image"]).is_file() and out["images"] == [out["annotated_image"]]
    assert Path(out["annotated_image"]).is_absolute()


def test_tool_accepts_a_home_relative_path(astronaut, monkeypatch):
    monkeypatch.setenv("HOME", str(astronaut.parent))
    out = run_tool("analyze_face", {"image_path": "~/astronaut.jpg"})
    assert out.get("face_count") == 1


@pytest.mark.parametrize("args", [{}, {"image_path": ""}, {"image_path": 3}, {"path": "x.jpg"}])
def test_schema_rejects_bad_arguments(args):
    with pytest.raises(ToolError, match="bad arguments for analyze_face"):
        validate_args("analyze_face", args)


def test_errors_come_back_as_results(tmp_path):
    missing = run_tool("analyze_face", {"image_path": str(tmp_path / "missing.png")})
    assert "not found" in missing["error"]
    folder = run_tool("analyze_face", {"image_path": str(tmp_path)})
    assert "not a regular file" in folder["error"]
    system = run_tool("analyze_face", {"image_path": "/proc/self/environ"})
    assert "off limits" in system["error"]
