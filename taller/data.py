"""Where data sets come from: one resolver for every trainer and tool.

Order (DEVELOPERS.md): an explicit path → ``TALLER_DATA_DIR`` → the data folder's cache
(``$TALLER_HOME/cache``) → the canonical download URL (saved into the cache) → a
:class:`DataNotFoundError` that names the file to supply and where to put it.

A data set is a file (``spa-eng.zip``) or a folder of files (``mnist/`` with the four IDX files).
Some accept alternatives in the same format (the CIFAR-10 subset that CI ships).
"""

from __future__ import annotations

import os
import shutil
import tempfile
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from taller.config import get_settings


class DataNotFoundError(FileNotFoundError):
    """A data set could not be found or downloaded; the message says what to supply."""


@dataclass(frozen=True)
class DatasetSpec:
    """One data set: the name users give, what to look for, and where it is published."""

    name: str
    filename: str  # file, or folder name when ``files`` is set
    description: str
    url: str | None = None  # for a file; for a folder, a base URL that each file is appended to
    files: tuple[str, ...] = ()  # the files a folder data set must hold
    alternatives: tuple[str, ...] = field(default=())  # other names in the same format
    system_paths: tuple[str, ...] = field(default=())  # e.g. Debian packages' install folders

    @property
    def is_folder(self) -> bool:
        return bool(self.files)


DATASETS: dict[str, DatasetSpec] = {
    spec.name: spec
    for spec in [
        DatasetSpec(
            name="mnist",
            filename="mnist",
            description="MNIST handwritten digits, the four official IDX files",
            url="https://ossci-datasets.s3.amazonaws.com/mnist/",
            files=(
                "train-images-idx3-ubyte.gz",
                "train-labels-idx1-ubyte.gz",
                "t10k-images-idx3-ubyte.gz",
                "t10k-labels-idx1-ubyte.gz",
            ),
        ),
        DatasetSpec(
            name="fashion-mnist",
            filename="fashion-mnist",
            description="Fashion-MNIST, the four IDX files (Debian package dataset-fashion-mnist)",
            url="http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
            files=(
                "train-images-idx3-ubyte.gz",
                "train-labels-idx1-ubyte.gz",
                "t10k-images-idx3-ubyte.gz",
                "t10k-labels-idx1-ubyte.gz",
            ),
            system_paths=("/usr/share/fashion-mnist", "/usr/share/dataset-fashion-mnist"),
        ),
        DatasetSpec(
            name="cifar10",
            filename="cifar-10-python.tar.gz",
            description="CIFAR-10 in the official python pickle format",
            url="https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz",
            alternatives=("cifar-10-subset-python.tar.gz",),
        ),
        DatasetSpec(
            name="spa-eng",
            filename="spa-eng.zip",
            description="Tatoeba/Anki English-Spanish sentence pairs (spa-eng/spa.txt)",
            url="http://storage.googleapis.com/download.tensorflow.org/data/spa-eng.zip",
        ),
        DatasetSpec(
            name="facades",
            filename="facades",
            description="CMP Facades for pix2pix (facades/{train,val,test}/*.jpg, label|photo pairs)",
            url="http://efrosgans.eecs.berkeley.edu/pix2pix/datasets/facades.tar.gz",
            alternatives=("facades.tar.gz",),
        ),
        DatasetSpec(
            name="chinook",
            filename="Chinook_Sqlite.sqlite",
            description="Chinook sample sales database (SQLite)",
            url="https://github.com/lerocha/chinook-database/releases/download/v1.4.5/Chinook_Sqlite.sqlite",
        ),
    ]
}


def _candidates(spec: DatasetSpec, folder: Path) -> list[Path]:
    return [folder / name for name in (spec.filename, *spec.alternatives)]


def _complete(spec: DatasetSpec, path: Path) -> bool:
    """A file exists, or a folder exists and holds every required file."""
    if spec.is_folder and path.name == spec.filename:
        return path.is_dir() and all((path / f).is_file() for f in spec.files)
    if spec.name == "facades" and path.is_dir():
        return (path / "train").is_dir()
    return path.is_file() or (path.is_dir() and any(path.iterdir()))


def _download(url: str, target: Path, timeout: float = 20.0) -> None:
    """Download atomically: a partial file never looks like a finished one."""
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".part")
    try:
        with os.fdopen(fd, "wb") as out, urllib.request.urlopen(url, timeout=timeout) as resp:
            shutil.copyfileobj(resp, out, length=1 << 20)
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def resolve(name: str, explicit: str | os.PathLike | None = None, download: bool | None = None) -> Path:
    """Return the local path of data set ``name``, following the documented order.

    Args:
        name: a key of :data:`DATASETS` (``mnist``, ``cifar10``, ``spa-eng``, ...).
        explicit: a path the user gave; used as is when it exists, an error when it does not.
        download: allow the download step (default: unless the ``offline`` setting is on).
    """
    if name not in DATASETS:
        raise DataNotFoundError(f"unknown data set {name!r}; known: {', '.join(sorted(DATASETS))}")
    spec = DATASETS[name]
    settings = get_settings()

    # 1. An explicit path wins, and a wrong one is an error rather than a silent fallback.
    if explicit is not None:
        path = Path(explicit).expanduser()
        if path.exists():
            return path
        raise DataNotFoundError(f"{spec.description}: {path} does not exist")

    # 2. TALLER_DATA_DIR (the setting data_dir), 3. the data folder's cache, then system paths.
    folders: list[Path] = []
    env_dir = os.environ.get("TALLER_DATA_DIR")
    if env_dir:
        folders.append(Path(env_dir).expanduser())
    elif settings.data_dir:
        folders.append(Path(settings.data_dir))
    folders.append(settings.cache_dir)
    for folder in folders:
        for candidate in _candidates(spec, folder):
            if _complete(spec, candidate):
                return candidate
    for system in spec.system_paths:
        if _complete(spec, Path(system)) or Path(system).is_dir() and all(
            (Path(system) / f).is_file() for f in spec.files
        ):
            return Path(system)

    # 4. The canonical URL, into the cache.
    if download is None:
        download = not settings.offline
    error = None
    if download and spec.url:
        try:
            return _download_into_cache(spec, settings.cache_dir)
        except Exception as exc:  # network errors come in many types; all mean "not here"
            error = exc

    # 5. Say exactly what to supply and where.
    where = f"{Path(env_dir) if env_dir else settings.cache_dir}"
    what = f"the folder {spec.filename}/ with {', '.join(spec.files)}" if spec.is_folder else spec.filename
    message = (
        f"{spec.description} not found. Put {what} in {where}"
        + (" (or set TALLER_DATA_DIR to the folder that holds it)" if not env_dir else "")
        + (f"; it is published at {spec.url}" if spec.url else "")
    )
    if error is not None:
        message += f". Download failed: {error}"
    elif not download:
        message += ". Downloads are off (offline setting)"
    raise DataNotFoundError(message)


def _download_into_cache(spec: DatasetSpec, cache: Path) -> Path:
    if spec.is_folder:
        target = cache / spec.filename
        for f in spec.files:
            if not (target / f).is_file():
                _download(spec.url + f, target / f)
        return target
    if spec.url.endswith(".tar.gz") and not spec.filename.endswith(".tar.gz"):
        archive = cache / (spec.filename + ".tar.gz")
        _download(spec.url, archive)
        return archive
    target = cache / spec.filename
    _download(spec.url, target)
    return target


def available() -> dict[str, Path | None]:
    """Every data set's local path, or None, without downloading (for ``taller doctor``)."""
    found: dict[str, Path | None] = {}
    for name in DATASETS:
        try:
            found[name] = resolve(name, download=False)
        except DataNotFoundError:
            found[name] = None
    return found
