"""Image data for the trainers: MNIST-style IDX files, CIFAR-10 python batches, image files, PNG grids.

Everything here reads the official formats directly (no torchvision, which cannot be installed
here) and returns uint8 NumPy arrays; trainers turn them into float tensors on their device.
"""

from __future__ import annotations

import gzip
import io
import pickle
import struct
import tarfile
from pathlib import Path

import numpy as np

from taller.data import DataNotFoundError, resolve

CIFAR_CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")

# --- IDX (MNIST, Fashion-MNIST) ------------------------------------------------------------------

_IDX_TYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


def read_idx(path: Path) -> np.ndarray:
    """Read one IDX file (gzip-compressed or not) into an array of its declared shape."""
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as handle:
            data = handle.read()
    except (OSError, EOFError) as exc:
        raise ValueError(f"{path} is not a readable IDX file: {exc}") from exc
    if len(data) < 4 or data[0] != 0 or data[1] != 0 or data[2] not in _IDX_TYPES:
        raise ValueError(f"{path} is not an IDX file (bad magic number)")
    dims = data[3]
    shape = struct.unpack(f">{dims}I", data[4 : 4 + 4 * dims])
    array = np.frombuffer(data, dtype=_IDX_TYPES[data[2]], offset=4 + 4 * dims)
    expected = int(np.prod(shape))
    if array.size != expected:
        raise ValueError(f"{path} is truncated: {array.size} values for shape {shape}")
    return array.reshape(shape)


def _idx_file(folder: Path, stem: str) -> Path:
    for name in (f"{stem}.gz", stem):
        if (folder / name).is_file():
            return folder / name
    raise DataNotFoundError(f"{folder} has no {stem}.gz: the folder must hold the four official IDX files")


def load_idx_dataset(name: str = "mnist", path: str | Path | None = None) -> dict[str, np.ndarray]:
    """MNIST or Fashion-MNIST: ``train_images`` (N,28,28) uint8, ``train_labels``, ``test_*``."""
    folder = resolve(name, explicit=path)
    return {
        "train_images": read_idx(_idx_file(folder, "train-images-idx3-ubyte")),
        "train_labels": read_idx(_idx_file(folder, "train-labels-idx1-ubyte")).astype(np.int64),
        "test_images": read_idx(_idx_file(folder, "t10k-images-idx3-ubyte")),
        "test_labels": read_idx(_idx_file(folder, "t10k-labels-idx1-ubyte")).astype(np.int64),
    }


# --- CIFAR-10 python batches ----------------------------------------------------------------------


class _CifarUnpickler(pickle.Unpickler):
    """The CIFAR batches are pickles; a user's tarball could hold anything, so only the few
    NumPy constructors the official files use may be loaded (no arbitrary code)."""

    _ALLOWED = {
        ("numpy.core.multiarray", "_reconstruct"),
        ("numpy._core.multiarray", "_reconstruct"),
        ("numpy.core.multiarray", "scalar"),
        ("numpy._core.multiarray", "scalar"),
        ("numpy", "ndarray"),
        ("numpy", "dtype"),
        ("_codecs", "encode"),
    }

    def find_class(self, module: str, name: str):  # noqa: D401 - pickle API
        if (module, name) in self._ALLOWED:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"refusing to load {module}.{name} from a CIFAR batch")


def _unpickle(data: bytes) -> dict:
    return _CifarUnpickler(io.BytesIO(data), encoding="bytes").load()


def load_cifar10(path: str | Path | None = None, classes: tuple[int, ...] | None = None) -> dict[str, np.ndarray]:
    """CIFAR-10 from the official ``cifar-10-python.tar.gz`` (or the same-format subset, or the
    extracted ``cifar-10-batches-py`` folder): images (N,32,32,3) uint8 and labels, train and test.

    With ``classes`` only those classes are kept and labels are renumbered 0..len(classes)-1 in
    the given order (``(3, 5)`` → cat 0, dog 1).
    """
    source = resolve("cifar10", explicit=path)
    batches: dict[str, bytes] = {}
    if source.is_dir():
        folder = source / "cifar-10-batches-py" if (source / "cifar-10-batches-py").is_dir() else source
        for item in folder.iterdir():
            if item.name.startswith(("data_batch_", "test_batch")):
                batches[item.name] = item.read_bytes()
    else:
        try:
            with tarfile.open(source, "r:*") as archive:
                for member in archive.getmembers():
                    base = member.name.rsplit("/", 1)[-1]
                    if member.isfile() and base.startswith(("data_batch_", "test_batch")):
                        handle = archive.extractfile(member)
                        if handle is not None:
                            batches[base] = handle.read()
        except (tarfile.TarError, OSError, EOFError) as exc:
            raise ValueError(f"{source} is not a readable CIFAR-10 tarball: {exc}") from exc
    train_names = sorted(n for n in batches if n.startswith("data_batch_"))
    if not train_names or "test_batch" not in batches:
        raise ValueError(f"{source} does not hold cifar-10-batches-py/data_batch_* and test_batch")

    def decode(names: list[str]) -> tuple[np.ndarray, np.ndarray]:
        images, labels = [], []
        for name in names:
            try:
                batch = _unpickle(batches[name])
                data = np.asarray(batch[b"data"], dtype=np.uint8)
                images.append(data.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1))
                labels.append(np.asarray(batch[b"labels"], dtype=np.int64))
            except (pickle.UnpicklingError, KeyError, ValueError, EOFError) as exc:
                raise ValueError(f"{source}: {name} is not a CIFAR-10 batch ({exc})") from exc
        return np.concatenate(images), np.concatenate(labels)

    train_images, train_labels = decode(train_names)
    test_images, test_labels = decode(["test_batch"])
    if classes is not None:
        mapping = {c: i for i, c in enumerate(classes)}

        def keep(images: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
            mask = np.isin(labels, list(classes))
            return images[mask], np.array([mapping[int(l)] for l in labels[mask]], dtype=np.int64)

        train_images, train_labels = keep(train_images, train_labels)
        test_images, test_labels = keep(test_images, test_labels)
    return {
        "train_images": train_images,
        "train_labels": train_labels,
        "test_images": test_images,
        "test_labels": test_labels,
        "source": np.array(str(source)),
    }


# --- image files ----------------------------------------------------------------------------------


def open_image(path: str | Path, mode: str = "RGB"):
    """Open any image file with PIL, fully decoded; ValueError for a corrupt or non-image file."""
    from PIL import Image, UnidentifiedImageError

    name = Path(path).name if isinstance(path, (str, Path)) else "the image"
    try:
        with Image.open(path) as image:
            image.load()
            return image.convert(mode)
    except UnidentifiedImageError:
        raise ValueError(f"{name} is not a readable image (not an image format Taller knows)") from None
    except (OSError, SyntaxError, ValueError, EOFError) as exc:
        # Only the kind of failure: Pillow's messages can quote bytes of the file.
        raise ValueError(f"{name} is not a readable image (the decoder raised {type(exc).__name__})") from None
    except Image.DecompressionBombError as exc:
        raise ValueError(f"{name} is too large to open safely") from exc


def image_to_array(path: str | Path, size: tuple[int, int], mode: str = "RGB") -> np.ndarray:
    """An image file resized to ``size`` (width, height) as uint8 (H,W,C) or (H,W) for "L"."""
    from PIL import Image

    image = open_image(path, mode)
    return np.array(image.resize(size, Image.BILINEAR), dtype=np.uint8)  # a writable copy for torch


# --- PNG grids ------------------------------------------------------------------------------------


def to_uint8(images: np.ndarray) -> np.ndarray:
    """Float images in [0, 1] (or uint8) → uint8, channels last."""
    array = np.asarray(images)
    if array.dtype != np.uint8:
        array = (np.clip(array, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)
    return array


def save_grid(rows: list[np.ndarray], path: str | Path, scale: int = 2, pad: int = 2, labels: list[str] | None = None) -> Path:
    """Save rows of images as one PNG: each row an array (N,H,W) or (N,H,W,3) in [0,1] or uint8.

    ``labels`` name each row (drawn on the left), e.g. "original" / "reconstruction".
    """
    from PIL import Image, ImageDraw

    rows = [to_uint8(r) for r in rows]
    rows = [np.repeat(r[..., None], 3, axis=-1) if r.ndim == 3 else r for r in rows]
    height, width = rows[0].shape[1:3]
    columns = max(len(r) for r in rows)
    label_width = 0
    if labels:  # in grid pixels: the text is drawn after scaling, about 6 screen pixels a letter
        label_width = -(-(10 + 6 * max(len(label) for label in labels)) // scale)
    canvas = np.full(
        (pad + len(rows) * (height + pad), label_width + pad + columns * (width + pad), 3), 255, dtype=np.uint8
    )
    for r, row in enumerate(rows):
        for c, image in enumerate(row):
            top = pad + r * (height + pad)
            left = label_width + pad + c * (width + pad)
            canvas[top : top + height, left : left + width] = image
    picture = Image.fromarray(canvas)
    if scale != 1:
        picture = picture.resize((picture.width * scale, picture.height * scale), Image.NEAREST)
    if labels:
        draw = ImageDraw.Draw(picture)
        for r, label in enumerate(labels):
            draw.text((4, (pad + r * (height + pad)) * scale + 2), label, fill=(0, 0, 0))
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    picture.save(path)
    return path
