"""Real face photos that ship inside installed packages, written once per test session.

* ``astronaut``: scikit-image's ``data.astronaut()`` (Eileen Collins, NASA, public domain),
  512x512 RGB, one smiling face at about x=175, y=76, 91x91 px (checked by eye).
* ``hopper``: matplotlib's ``sample_data/grace_hopper.jpg`` (US Navy photo, public domain),
  512x600 JPEG, one face of a woman then in her late seventies.
* ``coffee``: scikit-image's ``data.coffee()``, a cup of coffee: no face.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image


@pytest.fixture(scope="session")
def photo_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("photos")


@pytest.fixture(scope="session")
def astronaut_rgb() -> np.ndarray:
    from skimage import data

    return data.astronaut()


@pytest.fixture(scope="session")
def astronaut_path(photo_dir, astronaut_rgb) -> Path:
    path = photo_dir / "astronaut.png"
    Image.fromarray(astronaut_rgb).save(path)
    return path


@pytest.fixture(scope="session")
def hopper_path() -> Path:
    import matplotlib

    path = Path(matplotlib.get_data_path()) / "sample_data" / "grace_hopper.jpg"
    # matplotlib is a dependency of Taller and its wheels ship this sample: its absence is a
    # broken install, which must fail the tests that use it rather than skip them.
    if not path.is_file():
        pytest.fail(f"matplotlib's sample photo {path} is missing: reinstall matplotlib", pytrace=False)
    return path


@pytest.fixture(scope="session")
def coffee_path(photo_dir) -> Path:
    from skimage import data

    path = photo_dir / "coffee.png"
    Image.fromarray(data.coffee()).save(path)
    return path

