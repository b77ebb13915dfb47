"""The tool contract: fixed names, pydantic schemas that reject bad arguments clearly, JSON results."""

from __future__ import annotations

import json

import pytest

from taller.tools import COSTLY_TOOLS, TOOL_NAMES, get_tool, run_tool, validate_args
from taller.tools.base import ToolError, check_input_path, to_json

EXPECTED = {
    "train_model": {"model", "epochs"}, "list_models": set(), "classify_pet": {"image_path"},
    "generate_images": {"model", "count", "image_path"}, "forecast": {"values", "steps"}, "punctuate": {"text"},
    "translate": {"text", "beam_size"}, "analyze_face": {"image_path"}, "add_video": {"url_or_path"},
    "ask_video": {"question", "video"}, "summarize_video": {"video"}, "query_database": {"question", "database"},
    "describe_database": {"database"}, "show_lesson": {"model"},
}

BAD_ARGUMENTS = [
    ("train_model", {"model": "resnet"}, "model"),
    ("train_model", {"model": "autoencoder", "epochs": 0}, "epochs"),
    ("train_model", {"model": "autoencoder", "epochs": -3}, "epochs"),
    ("train_model", {}, "model"),
    ("classify_pet", {}, "image_path"),
    ("classify_pet", {"image_path": ""}, "image_path"),
    ("generate_images", {"model": "seq2seq"}, "model"),
    ("generate_images", {"model": "vae", "count": 1000}, "count"),
    ("forecast", {"values": [1, 2, 3], "steps": 0}, "steps"),
    ("forecast", {"values": {"a": 1}}, "values"),
    ("punctuate", {"text": 42}, "text"),
    ("translate", {"text": "hi", "beam_size": 99}, "beam_size"),
    ("analyze_face", {"image_path": None}, "image_path"),
    ("add_video", {"url_or_path": ""}, "url_or_path"),
    ("ask_video", {}, "question"),
    ("summarize_video", {"video": 5}, "video"),
    ("query_database", {"question": ""}, "question"),
    ("describe_database", {"database": ["x"]}, "database"),
    ("show_lesson", {"model": "pix2pix"}, "model"),
]


def test_every_tool_has_the_fixed_name_and_arguments():
    assert set(TOOL_NAMES) == set(EXPECTED)
    for name, fields in EXPECTED.items():
        tool = get_tool(name)
        assert tool.name == name
        assert set(tool.args_schema.model_fields) == fields
        assert tool.description.strip(), f"{name} has no docstring for the LLM"
    assert COSTLY_TOOLS == {"train_model", "show_lesson"}


@pytest.mark.parametrize("name,args,field", BAD_ARGUMENTS)
def test_schemas_reject_bad_arguments_with_a_clear_message(name, args, field):
    with pytest.raises(ToolError) as info:
        validate_args(name, args)
    assert f"bad arguments for {name}" in str(info.value) and field in str(info.value)
    out = run_tool(name, args)
    assert out["error"].startswith(f"bad arguments for {name}") and out["summary"] == out["error"]


def test_unknown_tool_and_non_object_arguments():
    assert "unknown tool 'rm_rf'" in run_tool("rm_rf", {})["error"]
    assert "must be a JSON object" in run_tool("list_models", ["x"])["error"]


def test_a_crashing_tool_becomes_an_error_result(monkeypatch):
    tool = get_tool("describe_database")

    def boom(database=None):
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(tool, "func", boom)
    out = run_tool("describe_database", {})
    assert "describe_database failed unexpectedly" in out["error"] and "disk on fire" in out["error"]


def test_results_are_json(monkeypatch, tmp_path):
    tool = get_tool("list_models")
    monkeypatch.setattr(tool, "func", lambda: {"summary": "x", "path": tmp_path, "n": 3})
    out = run_tool("list_models", {})
    assert json.loads(to_json(out)) == {"summary": "x", "path": str(tmp_path), "n": 3}


def test_paths_from_the_llm_are_checked(tmp_path):
    image = tmp_path / "cat.png"
    image.write_bytes(b"\x89PNG")
    assert check_input_path(str(image)) == image.resolve()
    for bad, message in [("", "no file path"), ("/etc/passwd", "system folders"), ("/proc/self/environ", "system folders"),
                         (str(tmp_path / "missing.jpg"), "file not found"), (str(tmp_path), "not a regular file"),
                         ("a\x00b", "NUL")]:
        with pytest.raises(ToolError, match=message):
            check_input_path(bad)
    link = tmp_path / "innocent.png"
    link.symlink_to("/etc/hostname")
    with pytest.raises(ToolError, match="system folders"):
        check_input_path(str(link))
