"""The data-set resolver, one test per step of its order:
explicit path → TALLER_DATA_DIR → the data folder's cache → download → a clear error.

Then the tests' own real-data check (tests/real_data.py): a test that needs the real data
sets fails, naming each missing file, when they are absent; it never skips.
"""

from __future__ import annotations

import gzip
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
import real_data

from taller import data
from taller.config import get_settings
from taller.data import DataNotFoundError, resolve


@pytest.fixture
def empty_data_dir(tmp_path, monkeypatch):
    folder = tmp_path / "datasets"
    folder.mkdir()
    monkeypatch.setenv("TALLER_DATA_DIR", str(folder))
    get_settings(reload=True)
    return folder


def test_explicit_path_wins(tmp_path, empty_data_dir):
    (empty_data_dir / "spa-eng.zip").write_bytes(b"in the data dir")
    mine = tmp_path / "my-copy.zip"
    mine.write_bytes(b"mine")
    assert resolve("spa-eng", explicit=mine) == mine


def test_explicit_missing_path_is_an_error_not_a_fallback(tmp_path, empty_data_dir):
    (empty_data_dir / "spa-eng.zip").write_bytes(b"in the data dir")
    with pytest.raises(DataNotFoundError, match="does not exist"):
        resolve("spa-eng", explicit=tmp_path / "nope.zip")


def test_data_dir_before_cache(empty_data_dir):
    cache = get_settings().cache_dir
    cache.mkdir(parents=True)
    (cache / "spa-eng.zip").write_bytes(b"cache")
    (empty_data_dir / "spa-eng.zip").write_bytes(b"data dir")
    assert resolve("spa-eng") == empty_data_dir / "spa-eng.zip"


def test_cache_when_data_dir_lacks_it(empty_data_dir):
    cache = get_settings().cache_dir
    cache.mkdir(parents=True)
    (cache / "spa-eng.zip").write_bytes(b"cache")
    assert resolve("spa-eng") == cache / "spa-eng.zip"


def test_alternative_file_in_the_same_format(empty_data_dir):
    (empty_data_dir / "cifar-10-subset-python.tar.gz").write_bytes(b"subset")
    assert resolve("cifar10").name == "cifar-10-subset-python.tar.gz"


def test_folder_dataset_needs_every_file(empty_data_dir):
    mnist = empty_data_dir / "mnist"
    mnist.mkdir()
    for name in data.DATASETS["mnist"].files[:3]:
        (mnist / name).write_bytes(gzip.compress(b"x"))
    with pytest.raises(DataNotFoundError, match="t10k-labels-idx1-ubyte.gz"):
        resolve("mnist", download=False)
    (mnist / data.DATASETS["mnist"].files[3]).write_bytes(gzip.compress(b"x"))
    assert resolve("mnist") == mnist


def test_download_into_the_cache(tmp_path, empty_data_dir, monkeypatch):
    source = tmp_path / "published" / "spa-eng.zip"
    source.parent.mkdir()
    source.write_bytes(b"published bytes")
    spec = data.DATASETS["spa-eng"]
    monkeypatch.setitem(data.DATASETS, "spa-eng", data.DatasetSpec(
        name=spec.name, filename=spec.filename, description=spec.description, url=source.as_uri()))
    path = resolve("spa-eng", download=True)
    assert path == get_settings().cache_dir / "spa-eng.zip"
    assert path.read_bytes() == b"published bytes"
    assert not list(path.parent.glob("*.part"))


def test_failed_download_names_file_and_folder(empty_data_dir, monkeypatch, tmp_path):
    spec = data.DATASETS["spa-eng"]
    monkeypatch.setitem(data.DATASETS, "spa-eng", data.DatasetSpec(
        name=spec.name, filename=spec.filename, description=spec.description,
        url=(tmp_path / "missing.zip").as_uri()))
    with pytest.raises(DataNotFoundError) as info:
        resolve("spa-eng", download=True)
    message = str(info.value)
    assert "spa-eng.zip" in message and str(empty_data_dir) in message and "Download failed" in message
    # The download was tried in the cache (the folder exists) and left nothing there: no
    # half-written spa-eng.zip and no temporary .part file.
    cache = get_settings().cache_dir
    assert cache.is_dir() and list(cache.iterdir()) == []


def test_offline_error_says_downloads_are_off(empty_data_dir):
    with pytest.raises(DataNotFoundError, match="Downloads are off"):
        resolve("facades")


def test_unknown_dataset():
    with pytest.raises(DataNotFoundError, match="unknown data set 'imagenet'"):
        resolve("imagenet")


def test_real_shared_data_is_found(data_dir, monkeypatch):
    monkeypatch.setenv("TALLER_DATA_DIR", str(data_dir))
    assert resolve("mnist") == data_dir / "mnist"
    assert resolve("chinook").name == "Chinook_Sqlite.sqlite"
    assert resolve("cifar10").parent == data_dir and resolve("spa-eng") == data_dir / "spa-eng.zip"


def test_spa_eng_fixture_gives_the_tatoeba_pairs(spa_eng_data):
    with zipfile.ZipFile(spa_eng_data / "spa-eng.zip") as archive:
        assert "spa-eng/spa.txt" in archive.namelist()


# --- the tests' real-data check ---------------------------------------------------------------


def test_missing_real_data_fails_naming_each_file(tmp_path, monkeypatch):
    folder = tmp_path / "datasets"
    monkeypatch.setenv("TALLER_DATA_DIR", str(folder))
    with pytest.raises(pytest.fail.Exception, match="does not exist") as info:
        real_data.require()
    assert str(folder) in str(info.value) and "TALLER_DATA_DIR" in str(info.value)

    mnist = folder / "mnist"
    mnist.mkdir(parents=True)
    for name in data.DATASETS["mnist"].files[:3]:
        (mnist / name).write_bytes(b"x")
    with pytest.raises(pytest.fail.Exception) as info:
        real_data.require()
    message = str(info.value)
    assert str(folder) in message
    for absent in ("mnist/t10k-labels-idx1-ubyte.gz", "cifar-10-python.tar.gz (or cifar-10-subset-python.tar.gz)",
                   "spa-eng.zip", "Chinook_Sqlite.sqlite"):
        assert absent in message
    assert "train-images" not in message  # only what is missing is named

    (mnist / data.DATASETS["mnist"].files[3]).write_bytes(b"x")
    for name in ("cifar-10-subset-python.tar.gz", "spa-eng.zip", "Chinook_Sqlite.sqlite"):
        (folder / name).write_bytes(b"x")
    assert real_data.require() == folder
    (folder / "Chinook_Sqlite.sqlite").unlink()
    assert real_data.require(("spa-eng",)) == folder  # a fixture asks only for what it reads
    with pytest.raises(pytest.fail.Exception, match="Chinook_Sqlite.sqlite"):
        real_data.require(("spa-eng", "chinook"))


def test_data_fixtures_fail_not_skip_in_ci_without_the_data(tmp_path):
    """A real pytest run in CI with an empty data folder: the tests that need data fail."""
    environment = {key: value for key, value in os.environ.items() if not key.startswith("PYTEST")}
    environment.update(CI="true", TALLER_DATA_DIR=str(tmp_path))
    tests = Path(__file__).resolve().parent
    finished = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-rfEs",
         f"{tests / 'test_data.py'}::test_real_shared_data_is_found",
         f"{tests / 'test_data.py'}::test_spa_eng_fixture_gives_the_tatoeba_pairs"],
        cwd=tests.parent, env=environment, capture_output=True, text=True, timeout=120,
    )
    output = finished.stdout + finished.stderr
    assert finished.returncode == 1, output
    assert "2 errors" in output and "skipped" not in output and "passed" not in output, output
    assert f"real data missing in {tmp_path} (TALLER_DATA_DIR)" in output, output
    assert "mnist/train-images-idx3-ubyte.gz" in output and "spa-eng.zip" in output, output
