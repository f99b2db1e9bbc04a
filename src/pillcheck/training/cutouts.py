"""Cut the two pill faces out of an official catalog photo (front | back on a plain grid with an mm ruler).

The photos share one layout: a light blue-grey grid, a ruler along the top and the right edge, the front face
in the left half and the back face in the right half. Classical segmentation is enough: distance from the
background colour, Otsu, a little morphology, then the convex hull (pills are convex). On the plain ruler photos
the width fixes the scale (1299 px wide: 10 mm = 234 px); callers that know the product's catalog size in mm
should prefer it (``scale_to``), since the zoomed photo styles use other scales.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

# Measured on the rulers of both photo sizes (1299x709 and 780x426): pixels per mm = width / 55.5.
PX_PER_MM_PER_WIDTH = 1 / 55.5


@dataclass
class Cutout:
    rgba: np.ndarray  # H x W x 4, alpha 0/255
    px_per_mm: float
    side: str  # "front" (left half) or "back" (right half)

    def scale_to(self, long_mm: float) -> None:
        """Set the scale from the catalog's long axis (mm) of this product."""
        ys, xs = np.nonzero(self.rgba[..., 3])
        self.px_per_mm = max(np.ptp(xs), np.ptp(ys)) / long_mm

    @property
    def size_mm(self) -> tuple[float, float]:
        ys, xs = np.nonzero(self.rgba[..., 3])
        return (np.ptp(xs) + 1) / self.px_per_mm, (np.ptp(ys) + 1) / self.px_per_mm


def _foreground(bgr: np.ndarray) -> np.ndarray:
    h, w = bgr.shape[:2]
    lab = cv2.cvtColor(cv2.GaussianBlur(bgr, (5, 5), 0), cv2.COLOR_BGR2LAB).astype(np.float32)
    bg = np.median(lab.reshape(-1, 3), axis=0)
    dist = np.linalg.norm(lab - bg, axis=2)
    dist = cv2.normalize(dist, None, 0, 255, cv2.NORM_MINMAX).astype(np.uint8)
    _, mask = cv2.threshold(dist, 0, 255, cv2.THRESH_BINARY + cv2.THRESH_OTSU)
    # Grid lines and ruler ticks are thin: an opening removes them, a closing fills imprints and bevels.
    mask = cv2.morphologyEx(mask, cv2.MORPH_OPEN, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (7, 7)))
    mask = cv2.morphologyEx(mask, cv2.MORPH_CLOSE, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (15, 15)))
    mask[: int(0.16 * h)] = 0  # top ruler
    mask[:, int(0.90 * w):] = 0  # right ruler
    mask[int(0.86 * h):, int(0.70 * w):] = 0  # MFDS logo, bottom right
    return mask


def _hull(mask: np.ndarray) -> np.ndarray:
    """Pills are convex: the hull of the detected pixels restores faint white edges and pale capsule halves."""
    contours, _ = cv2.findContours(mask, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    out = np.zeros_like(mask)
    if contours:
        cv2.fillPoly(out, [cv2.convexHull(np.vstack(contours))], 255)
    return out


def extract(path: Path, min_area_frac: float = 0.004) -> list[Cutout]:
    """The pill faces in one catalog photo, left to right (usually two; one for some capsules)."""
    bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if bgr is None:
        return []
    h, w = bgr.shape[:2]
    mask = _foreground(bgr)
    n, labels, stats, _ = cv2.connectedComponentsWithStats(mask)
    comps = [i for i in range(1, n) if stats[i, cv2.CC_STAT_AREA] >= min_area_frac * h * w
             and stats[i, cv2.CC_STAT_HEIGHT] >= 0.05 * h  # the 약학정보원 text band is a thin strip
             and max(stats[i, 2], stats[i, 3]) <= 5 * min(stats[i, 2], stats[i, 3])]
    comps = sorted(comps, key=lambda i: -stats[i, cv2.CC_STAT_AREA])[:2]
    out = []
    for i in sorted(comps, key=lambda i: stats[i, cv2.CC_STAT_LEFT]):
        x, y, bw, bh = stats[i, :4]
        pad = 12
        x0, y0, x1, y1 = max(0, x - pad), max(0, y - pad), min(w, x + bw + pad), min(h, y + bh + pad)
        crop = bgr[y0:y1, x0:x1]
        rough = np.where(labels[y0:y1, x0:x1] == i, 255, 0).astype(np.uint8)
        alpha = _hull(rough)
        ys, xs = np.nonzero(alpha)
        if len(xs) < 50:
            continue
        sl = np.s_[ys.min(): ys.max() + 1, xs.min(): xs.max() + 1]
        rgba = np.dstack([cv2.cvtColor(crop, cv2.COLOR_BGR2RGB), alpha])[sl]
        side = "front" if x + bw / 2 < w / 2 else "back"
        out.append(Cutout(np.ascontiguousarray(rgba), w * PX_PER_MM_PER_WIDTH, side))
    return out
