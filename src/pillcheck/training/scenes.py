"""Synthetic phone photos of pills, with exact boxes, for training the detector (YOLO format).

A scene is a background (a real phone-photo crop that holds no pill, or a procedural table, cloth, paper, palm or
pill-organiser texture), 1-30 pills (real cut-outs from the official photos at their true relative size, or
pills drawn from catalog records), shadows, touching and overlapping pills, then what a phone camera does:
perspective, uneven light, colour temperature, blur, noise and JPEG. Everything follows one seeded
``numpy.random.Generator``: the same seed gives the same image and boxes.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from pillcheck.training.render import PillSpec, render, spec_from_record


@dataclass
class Scene:
    image: np.ndarray  # RGB uint8
    boxes: np.ndarray  # (n, 4) xyxy pixels


# ---------------------------------------------------------------- backgrounds
def _noise(h: int, w: int, rng: np.random.Generator, scale: float) -> np.ndarray:
    small = rng.normal(0, 1, (max(2, int(h / scale)), max(2, int(w / scale)))).astype(np.float32)
    return cv2.resize(small, (w, h), interpolation=cv2.INTER_CUBIC)


def procedural_background(h: int, w: int, rng: np.random.Generator) -> np.ndarray:
    kind = rng.choice(["solid", "wood", "cloth", "paper", "palm", "organiser", "tiles"])
    base = rng.uniform(30, 235, 3)
    img = np.ones((h, w, 3), np.float32) * base
    if kind == "wood":
        yy = np.arange(h, dtype=np.float32)[:, None]
        grain = np.sin(yy / rng.uniform(3, 12) + _noise(h, w, rng, 40) * 3)
        img = img * (0.85 + 0.12 * grain[..., None]) + _noise(h, w, rng, 4)[..., None] * 6
    elif kind == "cloth":
        period = rng.uniform(3, 10)
        yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
        weave = np.sin(xx / period) * np.sin(yy / period)
        img = img * (0.9 + 0.08 * weave[..., None])
        if rng.random() < 0.5:  # checks / stripes
            img[((xx // rng.integers(20, 80)) % 2 == 0)] *= 0.8
    elif kind == "paper":
        img = np.ones((h, w, 3), np.float32) * rng.uniform(200, 250) + _noise(h, w, rng, 2)[..., None] * 4
    elif kind == "palm":
        skin = np.array([rng.uniform(120, 235), rng.uniform(80, 190), rng.uniform(60, 160)], np.float32)
        cv2.ellipse(img, (int(w * rng.uniform(0.3, 0.7)), int(h * rng.uniform(0.4, 0.7))),
                    (int(w * rng.uniform(0.3, 0.55)), int(h * rng.uniform(0.35, 0.6))), rng.uniform(0, 180), 0, 360,
                    skin.tolist(), -1)
        img += _noise(h, w, rng, 8)[..., None] * 8
    elif kind == "organiser":
        cols, rows = int(rng.integers(2, 5)), int(rng.integers(1, 4))
        for i in range(cols + 1):
            cv2.line(img, (int(i * w / cols), 0), (int(i * w / cols), h), (base * 0.6).tolist(), int(rng.integers(4, 12)))
        for j in range(rows + 1):
            cv2.line(img, (0, int(j * h / rows)), (w, int(j * h / rows)), (base * 0.6).tolist(), int(rng.integers(4, 12)))
    elif kind == "tiles":
        step = int(rng.integers(30, 120))
        img[::step] *= 0.7
        img[:, ::step] *= 0.7
    img += _noise(h, w, rng, 60)[..., None] * rng.uniform(5, 25)  # uneven surface
    # clutter: a few non-pill objects (pens, paper corners, coins) that must not become detections
    for _ in range(int(rng.integers(0, 4))):
        colour = rng.uniform(0, 255, 3).tolist()
        if rng.random() < 0.5:
            p1 = (int(rng.integers(0, w)), int(rng.integers(0, h)))
            p2 = (int(p1[0] + rng.normal(0, w / 3)), int(p1[1] + rng.normal(0, h / 3)))
            cv2.line(img, p1, p2, colour, int(rng.integers(3, 14)))
        else:
            pts = rng.integers(0, [w, h], (4, 2)).astype(np.int32)
            cv2.fillPoly(img, [cv2.convexHull(pts)], colour)
    return np.clip(img, 0, 255).astype(np.uint8)


def print_clutter(img: np.ndarray, rng: np.random.Generator) -> None:
    """Printed matter that is not a pill, drawn in place on a float RGB image: lines of text (a leaflet, a
    carton), a ruler with numbers, a round logo with letters, an empty blister's foil and bubbles. Real photos and
    the official ones put pills on such things; the detector must leave them out."""
    h, w = img.shape[:2]
    canvas = np.clip(img, 0, 255).astype(np.uint8)  # OpenCV draws text on 8-bit images only
    for _ in range(int(rng.integers(1, 4))):
        kind = rng.choice(["text", "ruler", "logo", "foil"], p=[0.45, 0.2, 0.2, 0.15])
        x0, y0 = int(rng.integers(0, max(1, w - 40))), int(rng.integers(0, max(1, h - 40)))
        ink = rng.uniform(0, 90, 3).tolist() if rng.random() < 0.7 else rng.uniform(0, 255, 3).tolist()
        scale = float(np.exp(rng.uniform(np.log(0.3), np.log(2.5)))) * min(w, h) / 480
        font = int(rng.choice([cv2.FONT_HERSHEY_SIMPLEX, cv2.FONT_HERSHEY_DUPLEX, cv2.FONT_HERSHEY_COMPLEX,
                               cv2.FONT_HERSHEY_TRIPLEX]))
        thick = max(1, int(scale * rng.uniform(1, 3)))
        if kind == "text":
            if rng.random() < 0.5:  # on a label or a carton panel
                pw, ph = int(rng.uniform(0.2, 0.8) * w), int(rng.uniform(0.1, 0.5) * h)
                cv2.rectangle(canvas, (x0, y0), (x0 + pw, y0 + ph), rng.uniform(180, 255, 3).tolist(), -1)
            step = int(30 * scale) + 4
            for j in range(int(rng.integers(1, 8))):
                word = "".join(rng.choice(list(_PRINT_CHARS), int(rng.integers(2, 14))))
                cv2.putText(canvas, word, (x0, y0 + (j + 1) * step), font, scale, ink, thick, cv2.LINE_AA)
        elif kind == "ruler":
            gap = max(4, int(rng.uniform(4, 14) * min(w, h) / 480))
            length = int(rng.uniform(0.3, 1.0) * w)
            cv2.line(canvas, (x0, y0), (x0 + length, y0), ink, max(1, thick // 2))
            for k, x in enumerate(range(x0, x0 + length, gap)):
                tick = gap * (2.5 if k % 10 == 0 else 1.6 if k % 5 == 0 else 1.0)
                cv2.line(canvas, (x, y0), (x, int(y0 + tick)), ink, 1)
                if k % 10 == 0:
                    cv2.putText(canvas, str(k // 10), (x + 2, int(y0 + tick + 12 * scale)), font, scale * 0.5, ink, 1,
                                cv2.LINE_AA)
        elif kind == "logo":
            r = int(rng.uniform(0.03, 0.15) * min(w, h))
            cv2.circle(canvas, (x0 + r, y0 + r), r, ink, max(1, r // 8))
            word = "".join(rng.choice(list(_PRINT_CHARS[:26]), int(rng.integers(2, 6))))
            cv2.putText(canvas, word, (x0 + r // 3, y0 + r + r // 4), font, r / 40, ink, max(1, r // 15), cv2.LINE_AA)
        else:  # foil with the empty bubbles of a blister pack
            pw, ph = int(rng.uniform(0.2, 0.6) * w), int(rng.uniform(0.15, 0.4) * h)
            grey = rng.uniform(150, 230)
            cv2.rectangle(canvas, (x0, y0), (x0 + pw, y0 + ph), [grey, grey, grey * rng.uniform(0.95, 1.05)], -1)
            r = max(4, int(min(pw, ph) / rng.uniform(4, 8)))
            for by in range(y0 + r + 2, y0 + ph - r, 2 * r + 6):
                for bx in range(x0 + r + 2, x0 + pw - r, 2 * r + 6):
                    cv2.circle(canvas, (bx, by), r, [grey * 0.75] * 3, 2)
                    cv2.circle(canvas, (bx - r // 3, by - r // 3), max(1, r // 4), [min(255, grey * 1.15)] * 3, -1)
    img[:] = canvas


_PRINT_CHARS = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789 .,-/%()mg"


class PhotoBackgrounds:
    """Crops of real phone photos that contain no labelled pill (hands, desks, floors)."""

    def __init__(self, images: list[Path], labels_dir: Path) -> None:
        self.regions: list[tuple[Path, tuple[int, int, int, int]]] = []
        for img in images:
            im = cv2.imread(str(img))
            if im is None:
                continue
            h, w = im.shape[:2]
            boxes = read_yolo(labels_dir / (img.stem + ".txt"), w, h)
            free = np.ones((h, w), bool)
            for x1, y1, x2, y2 in boxes.astype(int):
                free[max(0, y1 - 8): y2 + 8, max(0, x1 - 8): x2 + 8] = False
            # the largest free horizontal band and vertical band
            rows = np.where(free.all(1))[0]
            cols = np.where(free.all(0))[0]
            for idx, axis in ((rows, 0), (cols, 1)):
                runs = np.split(idx, np.where(np.diff(idx) != 1)[0] + 1) if len(idx) else []
                for run in runs:
                    if len(run) >= 120:
                        self.regions.append((img, (run[0], run[-1] + 1, 0, w) if axis == 0 else (0, h, run[0], run[-1] + 1)))

    def sample(self, h: int, w: int, rng: np.random.Generator) -> np.ndarray | None:
        if not self.regions:
            return None
        path, (y0, y1, x0, x1) = self.regions[int(rng.integers(len(self.regions)))]
        im = cv2.cvtColor(cv2.imread(str(path)), cv2.COLOR_BGR2RGB)[y0:y1, x0:x1]
        if rng.random() < 0.5:
            im = im[:, ::-1]
        return cv2.resize(im, (w, h), interpolation=cv2.INTER_LINEAR)


def read_yolo(path: Path, w: int, h: int) -> np.ndarray:
    """YOLO label file -> (n, 4) xyxy pixels (every class counts as a pill)."""
    if not path.exists():
        return np.zeros((0, 4), np.float32)
    rows = [list(map(float, ln.split()[1:5])) for ln in path.read_text().splitlines() if len(ln.split()) >= 5]
    if not rows:
        return np.zeros((0, 4), np.float32)
    a = np.array(rows, np.float32)
    return np.stack([(a[:, 0] - a[:, 2] / 2) * w, (a[:, 1] - a[:, 3] / 2) * h,
                     (a[:, 0] + a[:, 2] / 2) * w, (a[:, 1] + a[:, 3] / 2) * h], 1)


# ---------------------------------------------------------------- pills
class PillSource:
    """Pills to paste: real cut-outs (RGBA + px/mm) and catalog records to draw."""

    def __init__(self, cutouts: list[tuple[np.ndarray, float]], records: list[dict]) -> None:
        self.cutouts, self.records = cutouts, records

    def sample(self, px_per_mm: float, rng: np.random.Generator, real_fraction: float) -> np.ndarray:
        if self.cutouts and (rng.random() < real_fraction or not self.records):
            rgba, ppm = self.cutouts[int(rng.integers(len(self.cutouts)))]
            s = px_per_mm / ppm
            return cv2.resize(rgba, None, fx=s, fy=s, interpolation=cv2.INTER_AREA if s < 1 else cv2.INTER_LINEAR)
        rec = self.records[int(rng.integers(len(self.records)))]
        return render(spec_from_record(rec, rng, "front" if rng.random() < 0.6 else "back"), px_per_mm, rng)

    def one(self, rng: np.random.Generator, real_fraction: float):
        """Sprites of one product (a heap poured from one bottle): ``draw(px_per_mm)``, either face."""
        if self.cutouts and (rng.random() < real_fraction or not self.records):
            rgba, ppm = self.cutouts[int(rng.integers(len(self.cutouts)))]

            def cut(px_per_mm: float) -> np.ndarray:
                s = px_per_mm / ppm
                out = cv2.resize(rgba, None, fx=s, fy=s, interpolation=cv2.INTER_AREA if s < 1 else cv2.INTER_LINEAR)
                return out[:, ::-1].copy() if rng.random() < 0.5 else out
            return cut
        rec = self.records[int(rng.integers(len(self.records)))]
        return lambda px_per_mm: render(spec_from_record(rec, rng, "front" if rng.random() < 0.5 else "back"),
                                        px_per_mm, rng)


def _rotate(rgba: np.ndarray, angle: float) -> np.ndarray:
    h, w = rgba.shape[:2]
    m = cv2.getRotationMatrix2D((w / 2, h / 2), angle, 1.0)
    cos, sin = abs(m[0, 0]), abs(m[0, 1])
    nw, nh = int(h * sin + w * cos) + 2, int(h * cos + w * sin) + 2
    m[0, 2] += nw / 2 - w / 2
    m[1, 2] += nh / 2 - h / 2
    return cv2.warpAffine(rgba, m, (nw, nh), flags=cv2.INTER_LINEAR, borderValue=(0, 0, 0, 0))


# ---------------------------------------------------------------- scene
def compose(source: PillSource, rng: np.random.Generator, size: tuple[int, int] = (640, 480),
            backgrounds: PhotoBackgrounds | None = None, real_fraction: float = 0.6, pile: bool = False) -> Scene:
    """One scene; ``pile`` forces a heap of 10-30 touching, overlapping pills (the detector's hardest case)."""
    w, h = size
    img = _background(h, w, rng, backgrounds)
    ids = np.zeros((h, w), np.int32)  # which pill each pixel shows (0 = background)
    n = int(rng.choice([rng.integers(1, 7), rng.integers(7, 16), rng.integers(16, 31)], p=[0.55, 0.3, 0.15]))
    dense = rng.random() < 0.35 or pile  # a pile: pills touch and overlap
    if pile:  # drawn after the others, so the scenes of a seed stay the same with or without piles
        n = max(n, int(rng.integers(10, 31)))
    # scale: a 10 mm pill is 4-16 % of the short side; more pills -> smaller on average
    px_per_mm = min(w, h) * rng.uniform(0.004, 0.016) * (1.0 if n < 10 else 0.75)
    centre = (rng.uniform(0.3, 0.7) * w, rng.uniform(0.3, 0.7) * h)
    _paste(img, ids, rng, lambda: source.sample(px_per_mm * rng.uniform(0.9, 1.1), rng, real_fraction), n,
           px_per_mm, centre if dense else None, (0.12 * w, 0.12 * h), 0.25 if dense else 0.02)
    return _finish(img, ids, rng)


def compose_spread(source: PillSource, rng: np.random.Generator, size: tuple[int, int] = (640, 480),
                   backgrounds: PhotoBackgrounds | None = None, real_fraction: float = 0.6,
                   fraction: tuple[float, float] = (0.015, 0.9), count: tuple[int, int] | None = None,
                   printed: float = 0.3) -> Scene:
    """Pills at any size people photograph them: a 10 mm pill spans ``fraction`` of the short side, drawn
    log-uniformly (a close-up of one pill to a tray of thirty); the bigger they are, the fewer fit. Printed
    matter (text, rulers, logos, blister foil) lies under them in a share ``printed`` of the scenes, never labelled."""
    w, h = size
    img = _background(h, w, rng, backgrounds)
    if rng.random() < printed:
        print_clutter(img, rng)
    f = float(np.exp(rng.uniform(np.log(fraction[0]), np.log(fraction[1]))))
    px_per_mm = f * min(w, h) / 10
    if count is None:
        count = (1, int(np.clip(0.3 / f ** 2, 1, 30)))
    n = int(rng.integers(count[0], count[1] + 1))
    ids = np.zeros((h, w), np.int32)

    def sprite() -> np.ndarray:
        s = source.sample(px_per_mm * rng.uniform(0.9, 1.1), rng, real_fraction)
        k = min(1.0, 0.95 * min(w, h) / max(s.shape[:2]))  # a capsule longer than the frame: as big as fits
        return s if k == 1.0 else cv2.resize(s, None, fx=k, fy=k, interpolation=cv2.INTER_AREA)

    _paste(img, ids, rng, sprite, n, px_per_mm, None, (0.0, 0.0), 0.02)
    return _finish(img, ids, rng)


def compose_heap(source: PillSource, rng: np.random.Generator, size: tuple[int, int] = (640, 480),
                 backgrounds: PhotoBackgrounds | None = None, real_fraction: float = 0.6,
                 count: tuple[int, int] = (20, 150), hidden: float = 0.6) -> Scene:
    """A heap of one product, as a bottle poured out: ``count`` pills touching and lying on each other, each with
    up to ``hidden`` of it covered by the pills above (what real piles look like; ``compose(pile=True)`` stops at
    a quarter)."""
    w, h = size
    img = _background(h, w, rng, backgrounds)
    n = int(rng.integers(count[0], count[1] + 1))
    one = source.one(rng, real_fraction)
    # a 10 mm pill of s px: n of them, overlapping, cover ~0.6 n s^2 -> a heap that fits in the frame
    s_max = 0.42 * min(w, h) * np.sqrt(np.pi / (0.6 * n))
    px_per_mm = max(1.2, rng.uniform(0.5, 1.0) * s_max / 10)
    radius = np.sqrt(0.6 * n * (10 * px_per_mm) ** 2 / np.pi)
    centre = (rng.uniform(0.35, 0.65) * w, rng.uniform(0.35, 0.65) * h)
    ids = np.zeros((h, w), np.int32)
    _paste(img, ids, rng, lambda: one(px_per_mm * rng.uniform(0.93, 1.07)), n, px_per_mm, centre,
           (0.5 * radius, 0.5 * radius), hidden, cumulative=True, tries=30)
    return _finish(img, ids, rng)


def _background(h: int, w: int, rng: np.random.Generator, backgrounds: PhotoBackgrounds | None) -> np.ndarray:
    bg = backgrounds.sample(h, w, rng) if backgrounds and rng.random() < 0.45 else None
    return (bg if bg is not None else procedural_background(h, w, rng)).astype(np.float32)


def _paste(img: np.ndarray, ids: np.ndarray, rng: np.random.Generator, draw, n: int, px_per_mm: float,
           centre: tuple[float, float] | None, spread: tuple[float, float], limit: float, cumulative: bool = False,
           tries: int = 12) -> None:
    """Paste ``n`` rotated sprites from ``draw()`` with shadows; ``centre``: clustered around it (normal, sd
    ``spread`` pixels in x and y), else anywhere. A new pill may cover at most ``limit`` of one already there (of
    what it still shows; ``cumulative``: of its whole area, over all the pills above it)."""
    h, w = ids.shape
    areas: dict[int, int] = {}
    placed = 0
    for _attempt in range(n * tries):
        if placed == n:
            break
        sprite = _rotate(draw(), rng.uniform(0, 360))
        sh, sw = sprite.shape[:2]
        if sh >= h or sw >= w or sh < 4 or sw < 4:
            continue
        if centre is not None:
            x = int(np.clip(rng.normal(centre[0], spread[0]), 0, w - sw))
            y = int(np.clip(rng.normal(centre[1], spread[1]), 0, h - sh))
        else:
            x, y = int(rng.integers(0, w - sw)), int(rng.integers(0, h - sh))
        alpha = sprite[..., 3].astype(np.float32) / 255
        hard = alpha > 0.5
        region = ids[y: y + sh, x: x + sw]
        covered = region[hard]
        # never hide more than ``limit`` of a pill already there, and touching is fine
        if covered.size and np.any(covered > 0):
            bad = False
            for pid in np.unique(covered[covered > 0]):
                hide = np.count_nonzero(covered == pid)
                if (cumulative and np.count_nonzero(ids == pid) - hide < (1 - limit) * areas[pid]) or \
                        (not cumulative and hide > limit * areas[pid]):
                    bad = True
                    break
            if bad:
                continue
        # shadow
        off = int(max(1, px_per_mm * rng.uniform(0.2, 0.8)))
        shadow = cv2.GaussianBlur(alpha, (0, 0), max(1.0, px_per_mm * 0.5)) * rng.uniform(0.25, 0.55)
        ys0, xs0 = min(h, y + off + sh), min(w, x + off + sw)
        img[y + off: ys0, x + off: xs0] *= (1 - shadow[: ys0 - y - off, : xs0 - x - off])[..., None]
        patch = img[y: y + sh, x: x + sw]
        patch[:] = patch * (1 - alpha[..., None]) + sprite[..., :3].astype(np.float32) * alpha[..., None]
        placed += 1
        region[hard] = placed
        areas[placed] = int(hard.sum())


def _finish(img: np.ndarray, ids: np.ndarray, rng: np.random.Generator) -> Scene:
    """The camera's steps, then one box per pill over what of it still shows."""
    img, ids = _camera(np.clip(img, 0, 255).astype(np.uint8), ids, rng)
    boxes = []
    for pid in np.unique(ids[ids > 0]):
        ys, xs = np.nonzero(ids == pid)
        if len(xs) >= 12:
            boxes.append([xs.min(), ys.min(), xs.max() + 1, ys.max() + 1])
    return Scene(img, np.array(boxes, np.float32).reshape(-1, 4))


def closeup(image: np.ndarray, boxes: np.ndarray, rng: np.random.Generator, fill: tuple[float, float] = (0.15, 0.6),
            long_side: tuple[int, int] = (1200, 2400)) -> Scene | None:
    """A close-up made of a real photo's pixels: the neighbourhood of one labelled pill, cut so that the pill
    spans ``fill`` of the frame's short side, enlarged to ``long_side`` pixels (a 1-4 MP phone close-up).
    Pills the cut leaves at least half of keep their (clipped) box; a cut through a pill that would leave less
    is redrawn (10 tries), as it is neither clearly a pill nor clearly not. None when the photo has no pill."""
    h, w = image.shape[:2]
    if not len(boxes):
        return None
    for _ in range(10):
        x1, y1, x2, y2 = boxes[int(rng.integers(len(boxes)))]
        aspect = 4 / 3 if rng.random() < 0.7 else 3 / 4  # width / height
        short = max(x2 - x1, y2 - y1) / rng.uniform(*fill)
        cw, ch = (short * aspect, short) if aspect > 1 else (short, short / aspect)
        k = min(1.0, w / cw, h / ch)  # the photo's edges bound the cut
        cw, ch = int(cw * k), int(ch * k)
        if cw < x2 - x1 or ch < y2 - y1:
            continue
        x0 = int(rng.uniform(max(0, x2 - cw), min(x1, w - cw) + 1e-3))
        y0 = int(rng.uniform(max(0, y2 - ch), min(y1, h - ch) + 1e-3))
        clipped = np.clip(boxes - [x0, y0, x0, y0], 0, [cw, ch, cw, ch])
        area = np.prod(boxes[:, 2:] - boxes[:, :2], axis=1)
        kept = np.prod(clipped[:, 2:] - clipped[:, :2], axis=1) / np.maximum(area, 1)
        if np.any((kept > 0.02) & (kept < 0.5)):
            continue
        z = rng.uniform(*long_side) / max(cw, ch)
        big = cv2.resize(image[y0: y0 + ch, x0: x0 + cw], None, fx=z, fy=z, interpolation=cv2.INTER_CUBIC)
        return Scene(big, (clipped[kept >= 0.5] * z).astype(np.float32))
    return None


def official_photo(path: Path) -> Scene | None:
    """An official catalog photo as it is (front and back of one pill on the ruler grid, the MFDS logo): its two
    faces are the pills, the ruler, grid and logo are not."""
    from pillcheck.training.cutouts import extract

    bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
    cuts = extract(path) if bgr is not None else []
    if not cuts:
        return None
    return Scene(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB), np.array([c.box for c in cuts], np.float32))


def printed_page(size: tuple[int, int], rng: np.random.Generator) -> Scene:
    """No pill at all: a table or paper under a leaflet, a carton, a ruler, a logo, blister foil."""
    w, h = size
    img = procedural_background(h, w, rng).astype(np.float32)
    for _ in range(int(rng.integers(1, 4))):
        print_clutter(img, rng)
    return _finish(img, np.zeros((h, w), np.int32), rng)


def _mirrored_pills(ids: np.ndarray, inside: np.ndarray) -> np.ndarray:
    """The perspective step fills the frame beyond its edges by reflection, so a pill near an edge shows again,
    mirrored: a pill in the photo like any other (left unlabelled, it taught and scored "no pill"). Each mirrored
    copy apart from its pill gets an id of its own; one joined to its pill (a pill cut by the edge) stays one."""
    ids = ids.copy()
    next_id = int(ids.max())
    for pid in np.unique(ids[(inside == 0) & (ids > 0)]):
        mask = ids == pid
        n, parts = cv2.connectedComponents(mask.astype(np.uint8), connectivity=8)
        own = set(np.unique(parts[mask & (inside > 0)]).tolist())
        for part in range(1, n):
            if part not in own:
                next_id += 1
                ids[parts == part] = next_id
    return ids


def _camera(img: np.ndarray, ids: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Perspective, light, white balance, blur, noise and JPEG, as a phone would add them."""
    h, w = img.shape[:2]
    if rng.random() < 0.7:
        d = 0.08 * min(w, h)
        src = np.float32([[0, 0], [w, 0], [w, h], [0, h]])
        dst = (src + rng.uniform(-d, d, (4, 2))).astype(np.float32)
        m = cv2.getPerspectiveTransform(src, dst)
        img = cv2.warpPerspective(img, m, (w, h), borderMode=cv2.BORDER_REFLECT)
        inside = cv2.warpPerspective(np.ones((h, w), np.uint8), m, (w, h), flags=cv2.INTER_NEAREST,
                                     borderMode=cv2.BORDER_CONSTANT, borderValue=0)
        ids = cv2.warpPerspective(ids.astype(np.float32), m, (w, h), flags=cv2.INTER_NEAREST,
                                  borderMode=cv2.BORDER_REFLECT).astype(np.int32)
        ids = _mirrored_pills(ids, inside)
    f = img.astype(np.float32)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    a = rng.uniform(0, 2 * np.pi)
    grad = ((xx - w / 2) * np.cos(a) + (yy - h / 2) * np.sin(a)) / max(w, h)
    f *= (rng.uniform(0.6, 1.2) + rng.uniform(0, 0.5) * grad)[..., None]
    f *= np.array([rng.uniform(0.85, 1.15), 1.0, rng.uniform(0.8, 1.2)], np.float32)  # colour temperature
    if rng.random() < 0.3:  # specular glare
        gx, gy = rng.uniform(0, w), rng.uniform(0, h)
        f += 120 * rng.uniform(0.2, 1) * np.exp(-((xx - gx) ** 2 + (yy - gy) ** 2) / (2 * (0.08 * w) ** 2))[..., None]
    img = np.clip(f, 0, 255).astype(np.uint8)
    r = rng.random()
    if r < 0.35:
        img = cv2.GaussianBlur(img, (0, 0), rng.uniform(0.5, 1.8))
    elif r < 0.5:
        k = int(rng.integers(3, 8))
        kernel = np.zeros((k, k), np.float32)
        kernel[k // 2] = 1.0 / k
        m = cv2.getRotationMatrix2D((k / 2, k / 2), rng.uniform(0, 180), 1.0)
        img = cv2.filter2D(img, -1, cv2.warpAffine(kernel, m, (k, k)))
    img = np.clip(img.astype(np.float32) + rng.normal(0, rng.uniform(1, 8), img.shape), 0, 255).astype(np.uint8)
    ok, enc = cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, int(rng.integers(40, 96))])
    return cv2.imdecode(enc, cv2.IMREAD_UNCHANGED), ids


# ---------------------------------------------------------------- datasets
def write_yolo(path_img: Path, path_lbl: Path, image_rgb: np.ndarray, boxes: np.ndarray) -> None:
    h, w = image_rgb.shape[:2]
    cv2.imwrite(str(path_img), cv2.cvtColor(image_rgb, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 92])
    lines = [f"0 {(x1 + x2) / 2 / w:.6f} {(y1 + y2) / 2 / h:.6f} {(x2 - x1) / w:.6f} {(y2 - y1) / h:.6f}"
             for x1, y1, x2, y2 in boxes]
    path_lbl.write_text("\n".join(lines) + ("\n" if lines else ""))


def pushin_split(pushin: Path, val_fraction: float = 0.25, seed: int = 0) -> tuple[list[Path], list[Path]]:
    """Train / held-out split of the real phone photos by original (the part before '.rf.'), never by file."""
    images = sorted((pushin / "images").glob("*.jpg"))
    groups = sorted({p.name.split(".rf.")[0] for p in images})
    rng = np.random.default_rng(seed)
    val = set(rng.choice(groups, size=max(1, int(len(groups) * val_fraction)), replace=False))
    return ([p for p in images if p.name.split(".rf.")[0] not in val],
            [p for p in images if p.name.split(".rf.")[0] in val])


def reference_photos(root: Path) -> list[tuple[Path, str]]:
    """(photo, item_seq) for the catalog reference photos, exact duplicates (same sha1) removed."""
    out, seen = [], set()
    for labels in sorted(root.glob("*/labels.csv")):
        with open(labels, encoding="utf-8") as f:
            for row in csv.DictReader(f):
                if row["sha1"] in seen:
                    continue
                seen.add(row["sha1"])
                out.append((labels.parent / row["file"], row["item_seq"]))
    return out


def table_with_pills(w: int = 640, h: int = 480, seed: int = 3) -> tuple[np.ndarray, np.ndarray]:
    """A plain brown table with four drawn pills at known places (tests and benchmarks): image and true boxes."""
    rng = np.random.default_rng(seed)
    img = np.full((h, w, 3), (150, 110, 70), np.uint8)
    img = np.clip(img + rng.normal(0, 4, img.shape), 0, 255).astype(np.uint8)
    specs = [PillSpec("원형", ["하양"], 9, 9), PillSpec("장방형", ["노랑"], 16, 6.5),
             PillSpec("타원형", ["분홍"], 14, 7), PillSpec("삼각형", ["파랑"], 9, 9)]
    spots = [(0.2, 0.3), (0.65, 0.3), (0.3, 0.72), (0.75, 0.75)]
    boxes = []
    ppm = min(w, h) / 480 * 6.0
    for spec, (fx, fy) in zip(specs, spots):
        sprite = render(spec, ppm, rng)
        sh, sw = sprite.shape[:2]
        x, y = int(fx * w - sw / 2), int(fy * h - sh / 2)
        a = sprite[..., 3:4] / 255.0
        img[y: y + sh, x: x + sw] = (img[y: y + sh, x: x + sw] * (1 - a) + sprite[..., :3] * a).astype(np.uint8)
        ys, xs = np.nonzero(sprite[..., 3] > 127)
        boxes.append([x + xs.min(), y + ys.min(), x + xs.max() + 1, y + ys.max() + 1])
    return img, np.array(boxes, np.float32)
