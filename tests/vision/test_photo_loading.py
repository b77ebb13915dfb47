"""Reading awkward files: corrupt, not an image, huge, alpha, grayscale, 16-bit, EXIF rotation."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from taller.tools import run_tool
from taller.vision import images
from taller.vision.faces import analyze_faces
from taller.vision.images import ImageError, load_photo

ASTRONAUT_FACE_CENTRE = (175 + 45, 76 + 45)


def test_corrupt_png_is_a_clear_error(tmp_path, astronaut_path):
    broken = tmp_path / "broken.png"
    broken.write_bytes(astronaut_path.read_bytes()[:5000])  # header fine, pixel data cut
    with pytest.raises(ImageError, match="corrupt or truncated"):
        load_photo(broken)
    out = run_tool("analyze_face", {"image_path": str(broken)})
    assert "error" in out and "corrupt" in out["summary"]


def test_non_image_file_is_a_clear_error(tmp_path):
    fake = tmp_path / "notes.jpg"
    fake.write_text("this is not a photo\n" * 50)
    with pytest.raises(ImageError, match="not an image"):
        load_photo(fake)
    out = run_tool("analyze_face", {"image_path": str(fake)})
    assert out["summary"] == "notes.jpg is not an image file Taller can read"


def test_empty_file_is_a_clear_error(tmp_path):
    empty = tmp_path / "empty.png"
    empty.write_bytes(b"")
    with pytest.raises(ImageError):
        load_photo(empty)


def test_huge_photo_is_downscaled_not_a_crash(tmp_path, astronaut_rgb):
    # 6144x6144 (38 MP): above the display limit, so the annotated copy is shrunk too.
    huge = Image.fromarray(astronaut_rgb).resize((6144, 6144), Image.Resampling.NEAREST)
    path = tmp_path / "huge.jpg"
    huge.save(path, quality=85)
    del huge
    photo = load_photo(path)
    assert photo.original_size == (6144, 6144)
    assert max(photo.analysis.shape[:2]) == images.MAX_ANALYSIS_SIDE
    assert photo.display.shape[0] * photo.display.shape[1] <= images.MAX_DISPLAY_PIXELS
    out = analyze_faces(str(path))
    assert out["face_count"] == 1
    box = out["faces"][0]["box"]  # reported in the original photo's pixels (12x the 512 px one)
    centre = (box["x"] + box["w"] / 2, box["y"] + box["h"] / 2)
    assert abs(centre[0] - ASTRONAUT_FACE_CENTRE[0] * 12) < 300
    assert abs(centre[1] - ASTRONAUT_FACE_CENTRE[1] * 12) < 300
    assert out["image"]["width"] == 6144 and out["image"]["analysed_width"] == images.MAX_ANALYSIS_SIDE
    assert any("annotated copy" in note for note in out["notes"])
    assert any("may be missed" in note for note in out["notes"])  # 40 px faces shrink to 8 px
    with Image.open(out["annotated_image"]) as annotated:
        assert annotated.size == (photo.display.shape[1], photo.display.shape[0])


def test_too_many_pixels_is_refused(astronaut_path, monkeypatch):
    monkeypatch.setattr(images, "MAX_SOURCE_PIXELS", 100_000)
    with pytest.raises(ImageError, match="the limit is"):
        load_photo(astronaut_path)


def test_png_with_alpha_is_composited_on_white(tmp_path, astronaut_rgb):
    alpha = np.full(astronaut_rgb.shape[:2], 255, dtype=np.uint8)
    alpha[:, :100] = 0  # a transparent strip away from the face
    path = tmp_path / "alpha.png"
    Image.fromarray(np.dstack([astronaut_rgb, alpha]), mode="RGBA").save(path)
    photo = load_photo(path)
    assert photo.source_mode == "RGBA" and photo.display.shape == (512, 512, 3)
    assert (photo.display[:, :100] == 255).all()  # transparent became white, not black
    out = analyze_faces(str(path))
    assert out["face_count"] == 1
    assert out["image"]["mode"] == "RGBA"


def test_grayscale_photo(tmp_path, astronaut_rgb):
    path = tmp_path / "gray.png"
    Image.fromarray(astronaut_rgb).convert("L").save(path)
    photo = load_photo(path)
    assert photo.display.shape == (512, 512, 3)
    assert (photo.display[..., 0] == photo.display[..., 1]).all()
    out = analyze_faces(str(path))
    assert out["face_count"] == 1
    assert sum(out["faces"][0]["emotion"]["probabilities"].values()) == pytest.approx(1.0, abs=1e-3)


def test_sixteen_bit_grayscale_is_stretched_not_clipped(tmp_path, astronaut_rgb):
    gray = np.asarray(Image.fromarray(astronaut_rgb).convert("L"), dtype=np.uint16) * 257
    path = tmp_path / "gray16.png"
    Image.fromarray(gray).save(path)  # PIL stores uint16 as mode I;16
    photo = load_photo(path)
    assert photo.source_mode.startswith("I")
    # Without stretching, every pixel above 255 would be white.
    assert photo.display.std() > 30 and (photo.display < 250).mean() > 0.5


def test_exif_rotation_is_applied(tmp_path, hopper_path):
    upright = Image.open(hopper_path).convert("RGB")  # 512x600
    stored = upright.transpose(Image.Transpose.ROTATE_90)  # what a sideways camera writes
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 degrees clockwise to display"
    path = tmp_path / "sideways.jpg"
    stored.save(path, exif=exif.tobytes(), quality=95)
    photo = load_photo(path)
    assert photo.original_size == (512, 600)
    assert photo.display.shape == (600, 512, 3)
    difference = np.abs(photo.display.astype(int) - np.asarray(upright).astype(int)).mean()
    assert difference < 8  # only JPEG noise
    out = analyze_faces(str(path))
    assert out["face_count"] == 1  # the frontal detector only finds the upright face


def test_animated_gif_uses_first_frame(tmp_path, astronaut_rgb):
    frames = [Image.fromarray(astronaut_rgb).convert("P"), Image.new("P", (512, 512))]
    path = tmp_path / "anim.gif"
    frames[0].save(path, save_all=True, append_images=frames[1:])
    photo = load_photo(path)
    assert any("first" in note for note in photo.notes)
    assert photo.display.std() > 20  # the photo, not the blank second frame
