"""Reading photos safely for the vision tools.

Every photo that reaches a model goes through :func:`load_photo`, which turns whatever the
user gave (JPEG with an EXIF rotation, PNG with alpha, 16-bit grayscale, palette GIF, a
50-megapixel camera file) into two plain RGB arrays:

* ``display``: the upright photo at its original size, used for the annotated copy; only
  photos above :data:`MAX_DISPLAY_PIXELS` are shrunk (the result says so);
* ``analysis``: the same photo shrunk so its longer side is at most
  :data:`MAX_ANALYSIS_SIDE`, which is what the detectors and models see. Faces bigger
  than a few dozen pixels survive that, and detection time stays bounded.

Files that are not images, are truncated, or claim absurd dimensions raise
:class:`ImageError` (a :class:`~taller.tools.base.ToolError`) with a message for the user.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from taller.errors import ToolError

# Longer side of the image the detectors see. 1280 px keeps a 40 px face of a 4000 px
# photo at ~13 px, so very large photos lose their smallest faces: we say so in the notes.
MAX_ANALYSIS_SIDE = 1280
# The annotated copy keeps the original size up to this many pixels (a 16 MP phone photo
# still fits); beyond that it is shrunk so writing the PNG stays fast and small.
MAX_DISPLAY_PIXELS = 16_000_000
# Refuse to decode more than this: 120 MP is already ~360 MB of RGB pixels.
MAX_SOURCE_PIXELS = 120_000_000


class ImageError(ToolError):
    """The file cannot be used as a photo (not an image, corrupt, too large)."""


@dataclass
class Photo:
    """An upright RGB photo at display size plus the smaller copy the models see."""

    path: Path
    display: np.ndarray  # (H, W, 3) uint8, upright
    analysis: np.ndarray  # (h, w, 3) uint8, display shrunk to MAX_ANALYSIS_SIDE
    original_size: tuple[int, int]  # (width, height) after EXIF rotation
    source_mode: str  # PIL mode of the file ("RGB", "RGBA", "L", "I;16", ...)
    notes: list[str] = field(default_factory=list)

    @property
    def display_scale(self) -> float:
        """display pixels per original pixel (1.0 unless the photo was huge)."""
        return self.display.shape[1] / self.original_size[0]

    @property
    def analysis_scale(self) -> float:
        """analysis pixels per original pixel."""
        return self.analysis.shape[1] / self.original_size[0]


def _to_rgb(image: Image.Image) -> Image.Image:
    """Any PIL mode to 8-bit RGB; transparency is composited on white, not dropped to black."""
    mode = image.mode
    if mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        # High bit-depth grayscale: stretch to 0..255 by its own range; PIL's convert("L")
        # would clip everything above 255 to white.
        values = np.asarray(image, dtype=np.float64)
        low, high = float(np.nanmin(values)), float(np.nanmax(values))
        scaled = (values - low) / (high - low) * 255.0 if high > low else np.zeros_like(values)
        gray = np.nan_to_num(scaled).clip(0, 255).astype(np.uint8)
        return Image.fromarray(gray, mode="L").convert("RGB")
    has_alpha = mode in ("RGBA", "LA", "PA", "La", "RGBa") or (
        mode == "P" and "transparency" in image.info
    )
    if has_alpha:
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    return image.convert("RGB")


def _resize(image: Image.Image, scale: float, fast: bool = False) -> Image.Image:
    """Shrink by ``scale``; ``fast`` (bilinear) for the display copy, Lanczos for the models."""
    size = (max(1, round(image.width * scale)), max(1, round(image.height * scale)))
    # reducing_gap: box-reduce by an integer factor first, then filter the rest; several
    # times faster than a full Lanczos from 40 MP and visually the same.
    method = Image.Resampling.BILINEAR if fast else Image.Resampling.LANCZOS
    return image.resize(size, method, reducing_gap=2.0 if fast else 3.0)


def load_photo(path: Path | str) -> Photo:
    """Decode ``path`` into a :class:`Photo`; :class:`ImageError` for anything unusable.

    ``path`` must already have been checked (``check_input_path``) when it came from a user.
    """
    path = Path(path)
    notes: list[str] = []
    try:
        with warnings.catch_warnings():
            # We apply our own, stricter pixel limit below; PIL's warning would only be noise.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(path) as image:
                width, height = image.size
                if width < 1 or height < 1:
                    raise ImageError(f"{path.name} has no pixels ({width}x{height})")
                if width * height > MAX_SOURCE_PIXELS:
                    raise ImageError(
                        f"{path.name} is {width}x{height} ({width * height / 1e6:.0f} MP); "
                        f"the limit is {MAX_SOURCE_PIXELS / 1e6:.0f} MP. Shrink it first."
                    )
                source_mode = image.mode
                if getattr(image, "n_frames", 1) > 1:
                    notes.append("the file has several frames; only the first was analysed")
                if width * height > MAX_DISPLAY_PIXELS and image.format == "JPEG":
                    # Let libjpeg decode at 1/2, 1/4 or 1/8 scale: much faster and lighter
                    # than decoding 50 MP only to shrink it afterwards.
                    target = (MAX_DISPLAY_PIXELS / (width * height)) ** 0.5
                    image.draft("RGB", (int(width * target), int(height * target)))
                image.load()
                upright = ImageOps.exif_transpose(image)
                if upright is None:  # very old Pillow returns None when nothing changed
                    upright = image
                original_size = _original_upright_size(image, (width, height))
                rgb = _to_rgb(upright)
    except ImageError:
        raise
    except UnidentifiedImageError:
        raise ImageError(f"{path.name} is not an image file Taller can read") from None
    except Image.DecompressionBombError:
        raise ImageError(f"{path.name} is too large to decode safely") from None
    except (OSError, SyntaxError, ValueError, EOFError) as exc:
        # Only the kind of failure: Pillow's messages can quote bytes of the file ("Token too
        # long in file header: <bytes>"), and a file given by mistake may hold secrets.
        raise ImageError(f"{path.name} looks corrupt or truncated (the decoder raised {type(exc).__name__})") from None

    if rgb.width * rgb.height > MAX_DISPLAY_PIXELS:
        rgb = _resize(rgb, (MAX_DISPLAY_PIXELS / (rgb.width * rgb.height)) ** 0.5, fast=True)
    if rgb.size != original_size:
        notes.append(
            f"the photo is {original_size[0]}x{original_size[1]}; the annotated copy is "
            f"{rgb.width}x{rgb.height}"
        )
    display = np.asarray(rgb, dtype=np.uint8)
    longest = max(rgb.size)
    analysis_image = rgb if longest <= MAX_ANALYSIS_SIDE else _resize(rgb, MAX_ANALYSIS_SIDE / longest)
    analysis = np.ascontiguousarray(np.asarray(analysis_image, dtype=np.uint8))
    return Photo(
        path=path,
        display=np.ascontiguousarray(display),
        analysis=analysis,
        original_size=original_size,
        source_mode=source_mode,
        notes=notes,
    )


# EXIF orientations 5-8 swap width and height.
_SWAPPING_ORIENTATIONS = {5, 6, 7, 8}


def _original_upright_size(image: Image.Image, file_size: tuple[int, int]) -> tuple[int, int]:
    """Size of the upright photo in original pixels (``draft`` may have decoded it smaller)."""
    width, height = file_size
    try:
        orientation = image.getexif().get(0x0112, 1)
    except Exception:  # a broken EXIF block must not stop the analysis
        orientation = 1
    return (height, width) if orientation in _SWAPPING_ORIENTATIONS else (width, height)
