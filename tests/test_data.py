"""The data-set resolver, one test per step of its order:
explicit path → TALLER_DATA_DIR → the data folder's cache → download → a clear error."""

from __future__ import annotations

import gzip

import pytest

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
    assert not list(get_settings().cache_dir.glob("*.part")) if get_settings().cache_dir.exists() else True


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
