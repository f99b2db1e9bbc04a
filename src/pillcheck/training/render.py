"""Draw a pill from its catalog record (shape, colours, size in mm, score line, imprint) as an RGBA sprite.

Used for products without a reference photo. The drawing aims at what a detector and an appearance model must
learn to see, not photorealism: the outline of every catalog shape, two-tone capsules and 투명 shells, a
bevel that darkens the rim, a specular spot, a score line, and debossed or printed imprint text.

Text is drawn in OpenCV's Hershey font, which has Latin letters and digits only. Given Korean fonts (``fonts``,
from ``hangul_fonts``: Debian's ``fonts-nanum``), imprints with Hangul are drawn whole in one of them, a capsule's
words one per half as printed capsules show them, and a third of the Latin ones too.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from pillcheck.catalog.normalize import normalize_imprint

MAX_LATIN = 8  # characters of a Latin imprint drawn (the rest is cut)
MAX_DRAWN = 12  # characters of an imprint with Hangul drawn
FONT_DIR = Path("/usr/share/fonts/truetype/nanum")  # Debian's fonts-nanum
# plain sans faces, as imprints are printed; the pen and brush scripts and the serif faces are left out
FONT_NAMES = ("NanumGothicBold", "NanumGothic", "NanumGothicExtraBold", "NanumBarunGothicBold", "NanumBarunGothic",
              "NanumSquareB", "NanumSquareR", "NanumSquareRoundB", "NanumSquareRoundR")

# Catalog colour names -> sRGB. Indoor light moves these a lot; the scene applies colour temperature on top.
COLOURS = {
    "하양": (244, 244, 238), "노랑": (238, 212, 84), "주황": (238, 138, 52), "분홍": (238, 168, 178),
    "빨강": (196, 42, 44), "갈색": (138, 88, 52), "연두": (172, 210, 96), "초록": (44, 138, 72),
    "청록": (42, 148, 150), "파랑": (62, 112, 198), "남색": (40, 52, 118), "자주": (150, 52, 118),
    "보라": (140, 102, 188), "회색": (150, 150, 150), "검정": (32, 32, 32), "투명": (226, 222, 200),
}
SHAPES = ("원형", "타원형", "장방형", "삼각형", "사각형", "마름모형", "오각형", "육각형", "팔각형", "반원형", "기타")


@dataclass
class PillSpec:
    shape: str
    colours: list[str]  # one per face/half: ["하양"] or capsule halves ["노랑", "투명"]
    long_mm: float
    short_mm: float
    capsule: bool = False
    score_line: bool = False
    imprint: str = ""


def colour_rgb(name: str, rng: np.random.Generator) -> np.ndarray:
    base = next((v for k, v in COLOURS.items() if k in name), COLOURS["하양"])
    rgb = np.array(base, np.float32)
    if "연" in name or "옅은" in name:
        rgb = rgb + (255 - rgb) * 0.45
    if "진" in name:
        rgb = rgb * 0.7
    return np.clip(rgb + rng.normal(0, 8, 3), 0, 255)


def _polygon(n: int, w: int, h: int, rot: float = -np.pi / 2) -> np.ndarray:
    t = rot + np.arange(n) * 2 * np.pi / n
    return np.stack([(np.cos(t) + 1) / 2 * (w - 1), (np.sin(t) + 1) / 2 * (h - 1)], 1).astype(np.int32)


def outline(shape: str, w: int, h: int, rng: np.random.Generator) -> np.ndarray:
    """Binary mask (h, w) of a pill outline filling the box."""
    m = np.zeros((h, w), np.uint8)
    c, ax = (w // 2, h // 2), (max(1, w // 2 - 1), max(1, h // 2 - 1))
    if shape in ("원형", "타원형"):
        cv2.ellipse(m, c, ax, 0, 0, 360, 255, -1)
    elif shape == "장방형":  # oblong with round ends (also every capsule)
        r = h // 2
        cv2.rectangle(m, (r, 0), (w - r - 1, h - 1), 255, -1)
        cv2.circle(m, (r, r), r, 255, -1)
        cv2.circle(m, (w - r - 1, r), r, 255, -1)
    elif shape == "사각형":
        r = max(1, int(min(w, h) * 0.15))
        cv2.rectangle(m, (r, 0), (w - r - 1, h - 1), 255, -1)
        cv2.rectangle(m, (0, r), (w - 1, h - r - 1), 255, -1)
        for x, y in ((r, r), (w - r - 1, r), (r, h - r - 1), (w - r - 1, h - r - 1)):
            cv2.circle(m, (x, y), r, 255, -1)
    elif shape == "반원형":
        cv2.ellipse(m, (w // 2, h - 1), (w // 2 - 1, h - 1), 0, 180, 360, 255, -1)
    else:
        n = {"삼각형": 3, "마름모형": 4, "오각형": 5, "육각형": 6, "팔각형": 8}.get(shape, int(rng.integers(5, 9)))
        rot = 0.0 if shape == "마름모형" else -np.pi / 2
        cv2.fillPoly(m, [_polygon(n, w, h, rot)], 255)
        m = cv2.GaussianBlur(m, (0, 0), max(1.0, min(w, h) * 0.04))  # rounded corners, as pills have
        m = np.where(m > 127, 255, 0).astype(np.uint8)
    return m


def hangul_fonts(font_dir: Path = FONT_DIR) -> list[Path]:
    """The Korean fonts to draw Hangul imprints with; a clear error when none is installed."""
    fonts = [font_dir / f"{name}.ttf" for name in FONT_NAMES if (font_dir / f"{name}.ttf").is_file()]
    if not fonts:
        raise FileNotFoundError(f"no Korean font in {font_dir}: install Debian's fonts-nanum to draw Hangul imprints")
    return fonts


def drawn_text(imprint: str, hangul: bool = False) -> str:
    """What ``render`` writes on a face for this imprint (normalised, unfolded): its Latin characters, at most
    MAX_LATIN; with Korean fonts (``hangul``), an imprint with Hangul whole, at most MAX_DRAWN characters."""
    text = normalize_imprint(imprint, fold=False)
    if hangul and not text.isascii():
        return text[:MAX_DRAWN]
    return "".join(ch for ch in text if ch.isascii())[:MAX_LATIN]


def _text_mask(words: list[str], font: Path, w: int, h: int, capsule: bool, rng: np.random.Generator) -> np.ndarray:
    """Anti-aliased text (float 0..1, h x w) in a TrueType font: one line centred, or on a capsule with two
    words, one word centred on each half. As tall as a quarter of the pill's width, never off its face."""
    from PIL import Image, ImageDraw, ImageFont

    slots = [(0.25 * w, 0.42 * w), (0.75 * w, 0.42 * w)] if capsule and len(words) == 2 else [(0.5 * w, 0.75 * w)]
    words = words if len(slots) == 2 else ["".join(words)]
    size = 100
    face = ImageFont.truetype(str(font), size)
    boxes = [face.getbbox(word) for word in words]
    k = min(rng.uniform(0.2, 0.3) * h / size, *(room / max(1, b[2] - b[0]) for (_, room), b in zip(slots, boxes)))
    face = ImageFont.truetype(str(font), max(6, int(size * k)))
    canvas = Image.new("L", (w, h), 0)
    draw = ImageDraw.Draw(canvas)
    for (cx, _), word in zip(slots, words):
        draw.text((cx, h / 2), word, fill=255, font=face, anchor="mm")
    return np.asarray(canvas, np.float32) / 255


def render(spec: PillSpec, px_per_mm: float, rng: np.random.Generator, fonts: list[Path] | None = None
           ) -> np.ndarray:
    """RGBA sprite of one pill face, long axis horizontal; the text it carries is ``drawn_text``."""
    w = max(6, int(round(spec.long_mm * px_per_mm)))
    h = max(6, int(round(spec.short_mm * px_per_mm)))
    shape = "장방형" if spec.capsule else spec.shape
    mask = outline(shape, w, h, rng)
    body = np.zeros((h, w, 3), np.float32)
    cols = [colour_rgb(c, rng) for c in (spec.colours or ["하양"])]
    if spec.capsule and len(cols) > 1:
        split = int(w * rng.uniform(0.45, 0.55))
        body[:, :split], body[:, split:] = cols[0], cols[1]
    else:
        body[:] = cols[0]
    # Bevel and light: darker towards the rim, a soft highlight towards a random light direction.
    dist = cv2.distanceTransform(mask, cv2.DIST_L2, 3)
    rim = np.clip(dist / max(1.0, 0.18 * min(w, h)), 0, 1)
    shade = 0.72 + 0.28 * rim
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    a = rng.uniform(0, 2 * np.pi)
    lx, ly = w / 2 + np.cos(a) * w * 0.25, h / 2 + np.sin(a) * h * 0.25
    spot = np.exp(-(((xx - lx) / (0.25 * w)) ** 2 + ((yy - ly) / (0.25 * h)) ** 2))
    img = body * shade[..., None] + 255 * rng.uniform(0.05, 0.35) * spot[..., None]
    if spec.capsule and rng.random() < 0.8:  # seam between the two halves
        x = int(w * rng.uniform(0.45, 0.55))
        img[:, max(0, x - 1): x + 1] *= 0.8
    img = np.clip(img, 0, 255).astype(np.uint8)  # OpenCV draws text on 8-bit images only
    if spec.score_line:
        cv2.line(img, (w // 2, int(h * 0.12)), (w // 2, int(h * 0.88)), tuple(float(v) * 0.7 for v in cols[0]),
                 max(1, int(px_per_mm * 0.25)))
    text = drawn_text(spec.imprint, fonts is not None)
    if text and fonts and (not text.isascii() or rng.random() < 0.3):
        words = [normalize_imprint(x, fold=False) for x in spec.imprint.split()]
        words = [x for x in words if x] if "".join(words) == text else [text]
        stroke = _text_mask(words, fonts[int(rng.integers(len(fonts)))], w, h, spec.capsule, rng)[..., None]
        if rng.random() < 0.6 or spec.capsule:  # printed ink: most Hangul imprints are printed on capsules
            ink = np.array((30, 30, 30) if cols[0].mean() > 100 or rng.random() < 0.3 else (235, 235, 235))
            img = (img * (1 - stroke) + ink * stroke).astype(np.uint8)
        else:  # debossed: a darker stroke with a light edge just below it
            below = np.roll(stroke, 1, axis=0)
            img = np.clip(img * (1 + 0.1 * below * (1 - stroke)) * (1 - 0.22 * stroke), 0, 255).astype(np.uint8)
    elif text:  # real imprints stand about a quarter of the pill's width tall, and never run off its face
        (tw1, th1), _ = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, 1.0, 1)
        scale = min(rng.uniform(0.2, 0.3) * min(w, h) / th1, 0.75 * max(w, h) / tw1)
        thick = max(1, round(scale * rng.uniform(1.2, 2.0)))
        (tw, th), _ = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, thick)
        org = ((w - tw) // 2, (h + th) // 2)
        printed = rng.random() < 0.25
        if printed:
            ink = (30, 30, 30) if cols[0].mean() > 100 else (235, 235, 235)
            cv2.putText(img, text, org, cv2.FONT_HERSHEY_SIMPLEX, scale, ink, thick, cv2.LINE_AA)
        else:  # debossed: a dark stroke with a light edge just below it
            base = tuple(float(v) * 0.78 for v in cols[0])
            cv2.putText(img, text, (org[0], org[1] + 1), cv2.FONT_HERSHEY_SIMPLEX, scale,
                        tuple(min(255.0, float(v) * 1.1) for v in cols[0]), thick, cv2.LINE_AA)
            cv2.putText(img, text, org, cv2.FONT_HERSHEY_SIMPLEX, scale, base, thick, cv2.LINE_AA)
    alpha = mask.astype(np.float32)
    if any("투명" in c for c in spec.colours):
        alpha *= 0.85
    return np.dstack([img, alpha.astype(np.uint8)])


def spec_from_record(rec: dict, rng: np.random.Generator, face: str = "front") -> PillSpec:
    """PillSpec from an ``appearance`` row (dict with shape/colours/sizes/imprints/form)."""
    form = rec.get("form") or ""
    capsule = "캡슐" in form
    c1 = rec.get("color_front") or "하양"
    colours = [c.strip() for c in c1.split(",") if c.strip()] or ["하양"]
    if not capsule and face == "back" and rec.get("color_back"):
        colours = [rec["color_back"]]
    long_mm = float(rec.get("leng_long") or rng.uniform(6, 14))
    short_mm = float(rec.get("leng_short") or long_mm)
    printed = rec.get("print_back") if face == "back" else rec.get("print_front")
    line = rec.get("line_back") if face == "back" else rec.get("line_front")
    shape = rec.get("shape") or "원형"
    if shape == "원형":
        short_mm = long_mm
    return PillSpec(shape, colours, long_mm, min(short_mm, long_mm), capsule,
                    bool(line and line not in ("-",)) or "분할선" in (printed or ""), printed or "")


def appearance_records(con) -> dict[str, dict]:
    """Every ``appearance`` row of a catalog connection as a dict, by ITEM_SEQ (the first row of a product)."""
    cur = con.execute("SELECT * FROM appearance")
    cols = [d[0] for d in cur.description]
    records: dict[str, dict] = {}
    for row in cur.fetchall():
        records.setdefault(row[0], dict(zip(cols, row)))
    return records
