"""The only place that decodes user bytes: any photo in, an upright RGB array out, or a clear InputError.

Phones send JPEG/PNG/WebP/HEIC with EXIF orientation; people also send screenshots with alpha, 16-bit PNGs,
CMYK JPEGs, GIFs and things that are not images at all. Pillow (+ pillow-heif) decodes, ``exif_transpose``
turns the pixels upright, and every failure becomes an InputError whose message a person can act on.
"""

from __future__ import annotations

import contextlib
import io
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

try:  # HEIC/HEIF from iPhones
    from pillow_heif import register_heif_opener

    register_heif_opener()
except ImportError:  # pragma: no cover - pillow-heif is a runtime dependency; keep decoding the rest
    pass

MAX_BYTES = 64 * 1024 * 1024  # a 48 MP phone JPEG is ~25 MB, a 200 MP one up to ~60 MB
MAX_PIXELS = 60_000_000  # decoded pixels at most: a larger JPEG is decoded shrunk, other formats are refused
MIN_SIDE = 32
# Analysis needs no more than this short side: the detector sees 416 px and an imprint crop is read at <= 320 px
# per pill, so a 12 MP JPEG is decoded at half size by libjpeg's DCT scaling (4x fewer pixels, ~5x faster).
WORKING_SIDE = 1500


# Why a file cannot be used, by reason: the English message (the CLI's). The app shows each in the person's
# language (``ui/i18n.py``, key ``input_<reason>``, the same placeholders), so a Korean page has no English sentence.
MESSAGES = {
    "not_found": "{name}: file not found",
    "too_large": "the file is {mb} MB; the limit is {limit} MB",
    "empty": "the file is empty (0 bytes)",
    "too_many_pixels": "the photo is {w}x{h} ({mp} MP); the limit is {limit} MP: save it at a lower resolution "
                       "(e.g. the camera's 12 MP setting) or as a JPEG",
    "not_image": "this is not a photo pillcheck can read (JPEG, PNG, WebP, HEIC, GIF, BMP, TIFF)",
    "bomb": "the photo has too many pixels to decode safely (over {limit} MP)",
    "damaged": "the photo is damaged or cut short and cannot be decoded ({kind})",
    "too_small": "the photo is only {w}x{h} pixels; pills cannot be seen at that size",
    "camera_damaged": "the camera picture arrived damaged; please take it again",
    "no_file": "no file was received",
    "upload_gone": "the upload is no longer on the server; please send the photo again",
    "no_such_pill": "there is no pill #{number} in the photo ({found} found)",
    "not_zip": "this is not a zip file",
    "zip_damaged": "the zip file is damaged ({kind})",
    "zip_entries": "the zip holds {n} files; the limit is {limit}",
    "zip_total": "the zip unpacks to {mb} MB; the limit is {limit} MB",
    "unsafe_name": "unsafe file name (absolute path or '..'): refused",
    "encrypted": "encrypted entry: refused",
    "not_photo_name": "not a photo (by its extension): skipped",
    "entry_large": "{mb} MB; the limit is {limit} MB per photo",
    "zip_bomb": "compression ratio is suspicious (zip bomb?): refused",
    "unpack": "cannot be unpacked ({kind})",
    "header_lies": "larger than its header says: refused",
}


class InputError(ValueError):
    """A file we cannot use, and why: ``reason`` (a key of MESSAGES) and its ``params``; ``str(err)`` is the
    English message, ``ui.i18n.input_message`` the person's language."""

    def __init__(self, reason: str, **params: object) -> None:
        self.reason, self.params = reason, params
        super().__init__(MESSAGES[reason].format(**params))


@dataclass(frozen=True)
class Decoded:
    """An upright RGB photo, possibly decoded below full resolution; ``size`` is the full upright (width, height)."""

    rgb: np.ndarray
    size: tuple[int, int]
    data: bytes | None = field(default=None, repr=False)  # the encoded photo, to decode it again at full size

    @property
    def scale(self) -> float:
        """Full-resolution pixels per pixel of ``rgb`` (1.0 when decoded at full size)."""
        return self.size[0] / self.rgb.shape[1]

    def full(self) -> Decoded:
        """The photo at full resolution (itself when it already is, or when its bytes were not kept)."""
        return decode(self.data) if self.scale > 1 and self.data is not None else self


def load(source: bytes | str | Path, **kw) -> np.ndarray:
    """Decode ``source`` (bytes or a path) to an upright RGB uint8 array (H, W, 3); see ``decode``."""
    return decode(source, **kw).rgb


def decode(source: bytes | str | Path, *, min_side: int | None = None, max_bytes: int = MAX_BYTES,
           max_pixels: int = MAX_PIXELS) -> Decoded:
    """Decode ``source`` upright; a JPEG whose short side is at least twice ``min_side`` is decoded at 1/2, 1/4
    or 1/8 scale (never below ``min_side``), which is where most of a 12 MP photo's decoding time goes."""
    if isinstance(source, (str, Path)):
        path = Path(source)
        if not path.is_file():
            raise InputError("not_found", name=path.name)
        size = path.stat().st_size
        if size > max_bytes:
            raise InputError("too_large", mb=round(size / 2**20), limit=round(max_bytes / 2**20))
        data = path.read_bytes()
    else:
        data = bytes(source)
    if not data:
        raise InputError("empty")
    if len(data) > max_bytes:
        raise InputError("too_large", mb=round(len(data) / 2**20), limit=round(max_bytes / 2**20))
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            Image.MAX_IMAGE_PIXELS = max_pixels * 64  # a JPEG up to 64x the limit is decoded shrunk, below
            img = Image.open(io.BytesIO(data))
            w, h = img.size
            # a 108/200 MP phone photo is decoded at 1/2, 1/4 or 1/8 by libjpeg (never the full pixels): that is
            # its full size from here on; other formats have no shrunk decoding and are refused above the limit
            k = _jpeg_shrink(w, h, max_pixels) if img.format == "JPEG" else 1 if w * h <= max_pixels else None
            if k is None:
                raise InputError("too_many_pixels", w=w, h=h, mp=round(w * h / 1e6), limit=round(max_pixels / 1e6))
            request = (w // k, h // k)
            w, h = -(-w // k), -(-h // k)
            if min_side and img.format == "JPEG" and min(w, h) >= 2 * min_side:
                short = min(w, h)  # libjpeg picks the smallest scale that stays at or above the requested size
                request = min(request[0], w * min_side // short), min(request[1], h * min_side // short)
            if request != img.size:
                img.draft("RGB", request)
            img.load()
    except InputError:
        raise
    except (UnidentifiedImageError, Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        if isinstance(exc, UnidentifiedImageError):
            raise InputError("not_image") from exc
        raise InputError("bomb", limit=round(max_pixels / 1e6)) from exc
    except (OSError, SyntaxError, ValueError, EOFError) as exc:
        raise InputError("damaged", kind=exc.__class__.__name__) from exc
    decoded_w = img.size[0]
    rgb = to_rgb(img)
    turned = rgb.shape[1] != decoded_w  # EXIF rotated it by 90 degrees
    return Decoded(rgb, (h, w) if turned else (w, h), data)


def _jpeg_shrink(w: int, h: int, max_pixels: int) -> int | None:
    """The smallest libjpeg scale denominator (1, 2, 4, 8) that brings a w x h JPEG within ``max_pixels``."""
    return next((k for k in (1, 2, 4, 8) if -(-w // k) * -(-h // k) <= max_pixels), None)


def to_rgb(img: Image.Image) -> np.ndarray:
    """Upright 8-bit RGB: EXIF rotation applied, alpha composited on white, 16-bit/CMYK/palette/grey converted."""
    if getattr(img, "is_animated", False):
        img.seek(0)  # first frame of a GIF/WebP animation
    with contextlib.suppress(OSError, ValueError, SyntaxError):  # a broken EXIF block must not lose the photo
        ImageOps.exif_transpose(img, in_place=True)  # in place: a 12 MP copy costs ~20 ms
    if img.mode in ("I;16", "I;16B", "I;16L", "I"):
        arr = np.asarray(img, dtype=np.float64)
        peak = 65535.0 if arr.max() > 255 else 255.0
        img = Image.fromarray((arr / peak * 255).clip(0, 255).astype(np.uint8))
    if img.mode in ("RGBA", "LA", "PA") or (img.mode == "P" and "transparency" in img.info):
        rgba = img.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        img = Image.alpha_composite(white, rgba)
    rgb = np.asarray(img if img.mode == "RGB" else img.convert("RGB"))
    h, w = rgb.shape[:2]
    if min(h, w) < MIN_SIDE:
        raise InputError("too_small", w=w, h=h)
    return np.ascontiguousarray(rgb)


def scaled(img: np.ndarray, k: float) -> np.ndarray:
    """``img`` shrunk by the factor ``k`` (area-averaged, so fine strokes do not alias), each side at least 1 px."""
    h, w = img.shape[:2]
    return cv2.resize(img, (max(1, round(w * k)), max(1, round(h * k))), interpolation=cv2.INTER_AREA)
