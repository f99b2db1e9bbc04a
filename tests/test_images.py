"""Every kind of photo (and non-photo) a person may send: an upright RGB array or a clear InputError."""

from __future__ import annotations

import io
import struct
import zlib

import numpy as np
import pytest
from PIL import Image

from pillcheck import images
from pillcheck.images import InputError


def encode(img: Image.Image, fmt: str, **kw) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format=fmt, **kw)
    return buf.getvalue()


def marked(w: int = 120, h: int = 80) -> Image.Image:
    """Red in the top-left corner, so orientation is checkable."""
    a = np.full((h, w, 3), 255, np.uint8)
    a[: h // 4, : w // 4] = (255, 0, 0)
    return Image.fromarray(a)


def png_header_only(w: int, h: int) -> bytes:
    """A PNG that claims w x h pixels (a decompression bomb needs no more than its header)."""
    ihdr = struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0)
    chunk = lambda t, d: struct.pack(">I", len(d)) + t + d + struct.pack(">I", zlib.crc32(t + d))  # noqa: E731
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\x00" * 100)) + chunk(b"IEND", b"")


@pytest.mark.parametrize("orientation,corner", [(1, (0, 0)), (3, (-1, -1)), (6, (0, -1)), (8, (-1, 0))])
def test_exif_rotation_is_applied(orientation, corner):
    img = marked()
    exif = Image.Exif()
    exif[0x0112] = orientation
    rgb = images.load(encode(img, "JPEG", exif=exif, quality=95))
    assert rgb.shape == ((80, 120, 3) if orientation in (1, 3) else (120, 80, 3))
    y, x = corner
    assert rgb[y, x, 0] > 200 and rgb[y, x, 1] < 60  # the red corner moved where the phone meant it


@pytest.mark.parametrize(
    "make",
    [
        lambda: encode(marked().convert("L"), "PNG"),
        lambda: encode(marked().convert("P"), "PNG"),
        lambda: encode(marked().convert("CMYK"), "JPEG"),
        lambda: encode(marked(), "WEBP"),
        lambda: encode(marked(), "BMP"),
        lambda: encode(marked(), "TIFF"),
        lambda: encode(marked(), "HEIF", quality=90),
        lambda: encode(Image.fromarray(np.asarray(marked().convert("L"), np.uint16) * 257), "PNG"),
    ],
    ids=["grey", "palette", "cmyk", "webp", "bmp", "tiff", "heic", "16bit"],
)
def test_formats_decode_to_rgb(make):
    rgb = images.load(make())
    assert rgb.dtype == np.uint8 and rgb.shape == (80, 120, 3)
    assert rgb[-1, -1].min() > 200  # white stays white


def test_alpha_is_composited_on_white():
    rgba = Image.new("RGBA", (64, 64), (0, 0, 0, 0))
    rgb = images.load(encode(rgba, "PNG"))
    assert rgb.min() == 255


def test_animated_gif_uses_first_frame():
    frames = [Image.new("RGB", (64, 64), c) for c in ((255, 0, 0), (0, 0, 255))]
    buf = io.BytesIO()
    frames[0].save(buf, format="GIF", save_all=True, append_images=frames[1:])
    rgb = images.load(buf.getvalue())
    assert rgb[10, 10, 0] > 200 and rgb[10, 10, 2] < 60


@pytest.mark.parametrize(
    "data,message",
    [
        (b"", "empty"),
        (b"%PDF-1.4 not an image", "not a photo"),
        (encode(marked(), "JPEG")[:300], "damaged"),
        (encode(marked(), "PNG")[:100], "damaged"),
        (png_header_only(100_000, 100_000), "MP"),
        (encode(Image.new("RGB", (8, 8)), "PNG"), "8x8"),
    ],
    ids=["empty", "pdf", "truncated-jpeg", "truncated-png", "bomb", "tiny"],
)
def test_bad_input_gives_a_clear_message(data, message):
    with pytest.raises(InputError, match=message):
        images.load(data)


def test_a_108_or_200_mp_jpeg_is_shrunk_not_refused():
    """Phones' 108/200 MP modes: libjpeg decodes them at 1/2-1/8, which is their full size from then on; a PNG
    that large cannot be shrunk while decoding and is refused with what to do."""
    data = encode(Image.new("RGB", (16_000, 12_000), (200, 180, 160)), "JPEG")  # 192 MP, ~3 MB
    photo = images.decode(data)
    assert photo.size == (8000, 6000) and photo.rgb.shape == (6000, 8000, 3) and photo.scale == 1
    small = images.decode(data, min_side=images.WORKING_SIDE)
    assert small.size == (8000, 6000) and small.rgb.shape == (1500, 2000, 3) and small.full().rgb.shape[0] == 6000
    with pytest.raises(InputError, match="lower resolution") as err:
        images.load(encode(Image.new("1", (9000, 8000)), "PNG"))
    assert err.value.reason == "too_many_pixels" and err.value.params["mp"] == 72


def test_size_limit_and_missing_path(tmp_path):
    with pytest.raises(InputError, match="limit"):
        images.load(b"x" * 100, max_bytes=10)
    with pytest.raises(InputError, match="not found"):
        images.load(tmp_path / "nope.jpg")
