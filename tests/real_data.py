"""The real data sets the tests read, and the check that fails a test when one is missing.

The tests train and query on real data (``../shared/data`` beside the checkout, or the folder
``TALLER_DATA_DIR`` names), never on synthetic stand-ins. When that data is missing, a test
that needs it must fail, not skip: a skipped suite looks green in CI while testing nothing.
So the fixtures in ``conftest.py`` call :func:`require`, which fails everywhere (in CI and on
a developer's machine alike) with a message naming each missing file and the folder searched.

This is a plain module rather than part of ``conftest.py`` so that ``tests/test_data.py`` can
import and test it: ``conftest`` itself is not importable by name (``tests/vision`` has one too).
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from taller.data import DATASETS

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"

# The data sets the suite reads (names of taller.data.DATASETS): MNIST for the autoencoder and
# the VAE, the CIFAR-10 subset for the classifier and pix2pix, the Tatoeba pairs for the
# sequence models, Chinook for NL→SQL. The shared folder holds every one of them.
REQUIRED = ("mnist", "cifar10", "spa-eng", "chinook")


def data_folder() -> Path:
    """The folder the tests read real data from: ``TALLER_DATA_DIR`` when set, else ../shared/data.

    A ``TALLER_DATA_DIR`` that does not exist is kept, not replaced by the default: whoever
    set it meant that folder, and the check should say it is missing.
    """
    configured = os.environ.get("TALLER_DATA_DIR")
    return Path(configured).expanduser() if configured else SHARED_DATA


def missing(folder: Path, names: tuple[str, ...] = REQUIRED) -> list[str]:
    """What ``folder`` lacks of the data sets ``names``, each as the path to supply there."""
    absent = []
    for name in names:
        spec = DATASETS[name]
        if spec.is_folder:
            absent += [f"{spec.filename}/{file}" for file in spec.files if not (folder / spec.filename / file).is_file()]
        elif not any((folder / candidate).is_file() for candidate in (spec.filename, *spec.alternatives)):
            alternatives = f" (or {', '.join(spec.alternatives)})" if spec.alternatives else ""
            absent.append(spec.filename + alternatives)
    return absent


def require(names: tuple[str, ...] = REQUIRED) -> Path:
    """The real data folder, or a test failure naming each missing file and the folder."""
    folder = data_folder()
    source = "TALLER_DATA_DIR" if os.environ.get("TALLER_DATA_DIR") else "the default ../shared/data"
    fix = (
        "Tests that need the real data sets fail rather than skip when they are missing: "
        "point TALLER_DATA_DIR at the folder that holds them (../shared/data on CI machines)."
    )
    if not folder.is_dir():
        pytest.fail(f"real data folder {folder} ({source}) does not exist. {fix}", pytrace=False)
    absent = missing(folder, names)
    if absent:
        pytest.fail(f"real data missing in {folder} ({source}): {'; '.join(absent)}. {fix}", pytrace=False)
    return folder
