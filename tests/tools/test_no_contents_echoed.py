"""Errors name the file and what is wrong with it, never its contents (issue 16, point 2).

A credentials file given by mistake to every tool that takes a path (forecast's CSV, add_video's
.json/.vtt/.srt, the image tools, a database file): the secret never appears in the error or
the result. Image files that Pillow half-recognises are included: its own messages quote bytes
of the file ("Token too long in file header: <bytes>").
"""

from __future__ import annotations

import json
import sqlite3

import pytest

from taller.tools import run_tool

SECRET = "hunter2"
KEY = "wJalrXUtnFEMIK7MDENGbPxRfiCYEXAMPLEKEY"
CREDENTIALS = f"password={SECRET}\nAWS_SECRET_ACCESS_KEY={KEY}\n"


def _clean(out: dict) -> dict:
    text = json.dumps(out, ensure_ascii=False)
    assert SECRET not in text and KEY not in text and "AWS_SECRET" not in text, out
    return out


def _file(tmp_path, name: str, content: str | bytes):
    path = tmp_path / name
    path.write_bytes(content if isinstance(content, bytes) else content.encode("utf-8"))
    return str(path)


@pytest.mark.parametrize("name, content", [
    ("creds.csv", CREDENTIALS),
    ("creds.txt", CREDENTIALS),
    ("users.csv", f"user,password\nalice,{SECRET}\nbob,{KEY}\n"),
    ("pipes.csv", f"AWS_SECRET_ACCESS_KEY|{KEY}\npassword|{SECRET}\n"),
    ("binary.csv", b"\x00\xff" + KEY.encode() + b"\x00" * 10),
    ("huge-field.csv", f'"{KEY}{"x" * 200_000}"\n1\n'),
])
def test_forecast_never_echoes_a_file_that_is_no_series(tmp_path, name, content):
    out = _clean(run_tool("forecast", {"values": _file(tmp_path, name, content)}))
    assert "error" in out and name in out["error"]


def test_forecast_names_an_odd_header_by_position(tmp_path):
    # Numbers under a header that is a secret: the forecast runs, the header is not repeated.
    values = "\n".join(str(10 + i % 7) for i in range(14))
    out = _clean(run_tool("forecast", {"values": _file(tmp_path, "s.csv", f"AWS_SECRET_ACCESS_KEY={KEY}\n{values}\n"),
                                       "steps": 2}))
    assert "error" not in out and "column 1 of s.csv" in out["source"]
    good = run_tool("forecast", {"values": _file(tmp_path, "sales.csv", f"day,sales\n" + "\n".join(
        f"{i},{10 + i % 7}" for i in range(14))), "steps": 2})
    assert "column 'sales' of sales.csv" in good["source"], "a plain column name is still shown"


@pytest.mark.parametrize("name, content", [
    ("items.json", json.dumps([{"password": SECRET, "key": KEY}])),
    ("object.json", json.dumps({"password": SECRET, "key": KEY})),
    ("strings.json", json.dumps([SECRET, KEY])),
    ("nested.json", json.dumps([[{"password": SECRET}]])),
    ("bad-start.json", json.dumps([{"text": "hi", "start": SECRET}])),
    ("creds.json", CREDENTIALS),
    ("creds.vtt", f"WEBVTT\n\n{CREDENTIALS}"),
    ("creds.srt", f"1\n{SECRET} --> {KEY}\n{CREDENTIALS}"),
    ("binary.srt", b"\xff\xfe" + KEY.encode()),
])
def test_add_video_never_echoes_a_file_that_is_no_transcript(tmp_path, name, content):
    out = _clean(run_tool("add_video", {"url_or_path": _file(tmp_path, name, content)}))
    assert "error" in out


def test_a_json_that_is_no_transcript_says_what_is_expected(tmp_path):
    out = run_tool("add_video", {"url_or_path": _file(tmp_path, "keys.json", json.dumps({"password": SECRET}))})
    assert "must be a list of" in out["error"] and SECRET not in out["error"] and "password" not in out["error"]


# Text that Pillow takes for an image header (PPM "P6", PBM "P1") and then quotes in its error.
IMAGE_LOOKALIKES = [
    ("creds.png", CREDENTIALS),
    ("header.jpg", f"P6\n{SECRET}{SECRET}\n"),  # Pillow: "Token too long in file header: hunter2hun"
    ("bitmap.png", f"P1\n#x\nAAAA{SECRET}\n"),
    ("gif.gif", b"GIF89a" + KEY.encode()),
    ("png.png", b"\x89PNG\r\n\x1a\n" + b"\x00\x00\x00\x0dIHDR" + KEY.encode()),
]


@pytest.mark.parametrize("name, content", IMAGE_LOOKALIKES)
def test_image_tools_never_echo_a_file_that_is_no_image(tmp_path, name, content):
    path = _file(tmp_path, name, content)
    out = _clean(run_tool("analyze_face", {"image_path": path}))
    assert "error" in out and name in out["error"]
    # Without a trained model these answer "not trained" without reading the file; the loader
    # they use is checked directly.
    _clean(run_tool("classify_pet", {"image_path": path}))
    _clean(run_tool("generate_images", {"model": "pix2pix", "image_path": path}))
    from taller.trainers.images import open_image

    with pytest.raises(ValueError) as refused:
        open_image(path)
    assert SECRET not in str(refused.value) and KEY not in str(refused.value) and name in str(refused.value)


@pytest.mark.parametrize("name", ["creds.db", "creds.sqlite"])
def test_database_tools_never_echo_a_file_that_is_no_database(tmp_path, name):
    path = _file(tmp_path, name, CREDENTIALS)
    out = _clean(run_tool("describe_database", {"database": path}))
    assert "error" in out
    from taller.llm import FakeChatModel, use_chat_model

    with use_chat_model(FakeChatModel(responses=[], default={"sql": "SELECT 1"})):
        out = _clean(run_tool("query_database", {"question": "how many users?", "database": path}))
    assert "error" in out


def test_a_database_whose_values_are_secrets_still_answers_with_them(tmp_path):
    # Not an error: values a query asks for are the answer (the rule is about errors).
    path = tmp_path / "vault.sqlite"
    connection = sqlite3.connect(path)
    connection.execute("CREATE TABLE t (secret TEXT)")
    connection.execute("INSERT INTO t VALUES (?)", (SECRET,))
    connection.commit()
    connection.close()
    from taller.llm import FakeChatModel, use_chat_model

    with use_chat_model(FakeChatModel(responses=[], default={"sql": "SELECT secret FROM t"})):
        out = run_tool("query_database", {"question": "what is the secret?", "database": str(path)})
    assert out["rows"] == [[SECRET]]
