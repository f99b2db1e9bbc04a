"""Cut the two pill faces out of an official catalog photo (front | back on a plain grid with an mm ruler).

The photos share one layout: a light blue-grey grid, a ruler along the top and the right edge, the front face
in the left half and the back face in the right half. Classical segmentation is enough: seeds far from the
photo's median colour (Otsu), grown over the pixels that stand out from the background around them (white pills
differ from the light grid by a few Lab units only), a little morphology, then the convex hull (pills are
convex). Until 2026-12-02 the seeds alone were the faces: about 1 face in 7 lost its duller side (619 of 4,254
grew by more than 10% when regrown), nearly all white, the most common colour. On the plain ruler photos
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
    box: tuple[int, int, int, int] = (0, 0, 0, 0)  # where it was in the photo, xyxy pixels

    def scale_to(self, long_mm: float) -> None:
        """Set the scale from the catalog's long axis (mm) of this product."""
        ys, xs = np.nonzero(self.rgba[..., 3])
        self.px_per_mm = max(np.ptp(xs), np.ptp(ys)) / long_mm

    @property
    def size_mm(self) -> tuple[float, float]:
        ys, xs = np.nonzero(self.rgba[..., 3])
        return (np.ptp(xs) + 1) / self.px_per_mm, (np.ptp(ys) + 1) / self.px_per_mm


# Local-background distance (Lab) above which a pixel may belong to a pill: a white pill's shaded side differs
# from the light grid by ~11 (neutral vs bluish grey), the Otsu threshold on the global distance was ~22.
GROW_DISTANCE = 8.0
MIN_FILL = 0.85  # share of its convex hull a grown face must fill
# A seed may be a small part of a pale face (the grown face must reach ``min_area_frac``): seeds had to, until
# 2026-12-07, and 77 of 2,223 photos gave no face at all (46 now; MODEL_CARD)
SEED_SHARE = 0.25
SMALL_SEED_MIRROR = 0.85  # ... and its hull must mirror itself (``_mirrored``) this well: pentagons are lost, halves too
STRADDLE = 0.25  # a single seed with at least this share of it on each side of the centre line may be two faces
OVERLAP = 0.05  # ... whose hulls, once split, may share this share of the smaller one (touching, not stacked)
# The ruler: its ticks and digits make at least RULER_TICKS separate runs of columns with a dark pixel (grey <
# RULER_DARK) in the top RULER_BAND of the photo (10-29 on the grid photos; 0-9 on the zoomed style, whose only
# dark pixels there are a dark pill's)
RULER_BAND, RULER_DARK, RULER_TICKS = 0.10, 90, 10
JOINED_GROWTH = 1.10
HALF_ELONGATION = 1.25  # over the catalog's long / short: 84 of 4,188 faces, 68 of them not mirrored top to bottom
MAX_WIDTH = 0.75  # of the photo: the widest real faces (long capsules lying diagonally, zoomed style) span 0.67
# Grid lines and ruler ticks are thin: an opening removes them, a closing fills imprints and bevels; the blur
# before thresholding spreads each edge by ~2 px onto the background, which an erosion takes back.
_OPEN, _CLOSE, _EDGE = (cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (k, k)) for k in (7, 15, 5))


def has_ruler(bgr: np.ndarray) -> bool:
    """The grid photos have a black ruler along the top; the zoomed style (a plain blue background, the size
    drawn as dimension lines, 138 of 2,223 photos) has none, and its pills reach into the ruler's place."""
    top = cv2.cvtColor(bgr[: max(1, int(RULER_BAND * bgr.shape[0]))], cv2.COLOR_BGR2GRAY)
    columns = (top < RULER_DARK).any(axis=0).astype(np.int8)
    return int((np.diff(columns, prepend=0) == 1).sum()) >= RULER_TICKS


def _cut_rulers(mask: np.ndarray, ruler: bool) -> np.ndarray:
    h, w = mask.shape
    if ruler:
        mask[: int(0.16 * h)] = 0  # top ruler
        mask[:, int(0.90 * w):] = 0  # right ruler
    mask[int(0.86 * h):, int(0.70 * w):] = 0  # MFDS logo, bottom right
    return mask


def _seeds(lab: np.ndarray, ruler: bool) -> np.ndarray:
    """Pixels surely on a pill: far from the photo's median colour (Otsu). Precise, but it misses the duller
    parts of pale pills, which ``_grown`` then recovers."""
    dist = np.linalg.norm(lab - np.median(lab.reshape(-1, 3), axis=0), axis=2)
    dist = cv2.normalize(dist, None, 0, 255, cv2.NORM_MINMAX).astype(np.uint8)
    _, mask = cv2.threshold(dist, 0, 255, cv2.THRESH_BINARY + cv2.THRESH_OTSU)
    return _cut_rulers(cv2.morphologyEx(cv2.morphologyEx(mask, cv2.MORPH_OPEN, _OPEN), cv2.MORPH_CLOSE, _CLOSE),
                       ruler)


def _grown(lab: np.ndarray, ruler: bool) -> np.ndarray:
    """Pixels that differ from the background around them (its median over a window wider than a pill) by more
    than GROW_DISTANCE; full-width strips (the 약학정보원 text band) are not pills."""
    h, w = lab.shape[:2]
    small = cv2.resize(lab, (max(1, w // 4), max(1, h // 4)), interpolation=cv2.INTER_AREA).astype(np.uint8)
    bg = cv2.resize(np.dstack([cv2.medianBlur(np.ascontiguousarray(small[..., c]), 61) for c in range(3)]),
                    (w, h), interpolation=cv2.INTER_LINEAR).astype(np.float32)
    mask = (np.linalg.norm(lab - bg, axis=2) > GROW_DISTANCE).astype(np.uint8) * 255
    mask[mask.mean(axis=1) > 0.85 * 255] = 0
    return _cut_rulers(cv2.morphologyEx(mask, cv2.MORPH_OPEN, _OPEN), ruler)


def _faces(bgr: np.ndarray, min_area_frac: float) -> list[np.ndarray]:
    """One mask per pill face, left to right: the (at most two) largest seed regions, each grown over the pixels
    connected to it that stand out from the local background; where two grown faces touch (large capsules
    side by side), a watershed between their seeds splits them."""
    h, w = bgr.shape[:2]
    blurred = cv2.GaussianBlur(bgr, (5, 5), 0)
    lab = cv2.cvtColor(blurred, cv2.COLOR_BGR2LAB).astype(np.float32)
    ruler = has_ruler(bgr)
    seed = _seeds(lab, ruler)
    n, labels, stats, _ = cv2.connectedComponentsWithStats(seed)
    comps = [i for i in range(1, n) if stats[i, cv2.CC_STAT_AREA] >= SEED_SHARE * min_area_frac * h * w
             and stats[i, cv2.CC_STAT_HEIGHT] >= 0.05 * h  # the 약학정보원 text band is a thin strip
             and max(stats[i, 2], stats[i, 3]) <= 5 * min(stats[i, 2], stats[i, 3])]
    comps = sorted(sorted(comps, key=lambda i: -stats[i, cv2.CC_STAT_AREA])[:2], key=lambda i: stats[i, 0])
    if not comps:
        return []
    split = len(comps) == 1 and (second := _second_face(labels == comps[0])) is not None
    if split:
        labels[second] = n
        comps = [comps[0], n]
    _, region = cv2.connectedComponents(_grown(lab, ruler) | seed)
    ids = [np.setdiff1d(np.unique(region[labels == i]), [0]) for i in comps]
    faces = [np.isin(region, r) for r in ids]
    if len(faces) == 2 and np.intersect1d(*ids).size:  # grown into one region: split it between the two seeds
        markers = np.zeros((h, w), np.int32)
        for k, i in enumerate(comps):
            markers[labels == i] = k + 1
        cv2.watershed(blurred, markers)
        faces = [f & (markers == k + 1) for k, f in enumerate(faces)]
        if not split:  # two seeds of one colour touching (the zoomed style): the split may hand one face a part
            # of the other pill; a face that outgrew its seed's hull (widened by the rim the seed misses) by more
            # than JOINED_GROWTH is the seed's hull instead
            for k, i in enumerate(comps):
                core = cv2.dilate(_hull((labels == i).astype(np.uint8)), _EDGE) > 0
                if np.count_nonzero(_hull(faces[k].astype(np.uint8))) > JOINED_GROWTH * np.count_nonzero(core):
                    faces[k] = core
    out = []
    for i, face in zip(comps, faces):
        face = cv2.erode(cv2.morphologyEx(face.astype(np.uint8) * 255, cv2.MORPH_CLOSE, _CLOSE), _EDGE)
        # a pill fills its hull; grown pixels that do not (two capsules or the text band joined by a bridge of
        # shadow) are not one pill: the seed alone is then the better guess, if it is not a small part of one
        small = np.count_nonzero(labels == i) < min_area_frac * h * w
        if np.count_nonzero(face) < MIN_FILL * np.count_nonzero(_hull(face)):
            if small:
                continue
            face = cv2.morphologyEx(np.where(labels == i, 255, 0).astype(np.uint8), cv2.MORPH_CLOSE, _CLOSE)
        # from a small seed, a face grown over only the shaded half of a white pill is flat on one side: a pill
        # lying upright in these photos mirrors itself top to bottom
        if np.count_nonzero(face) >= min_area_frac * h * w and not (small and _mirrored(face) < SMALL_SEED_MIRROR):
            out.append(face)
    if split and len(out) == 2:
        hulls = [_hull(f) > 0 for f in out]
        if np.count_nonzero(hulls[0] & hulls[1]) > OVERLAP * min(np.count_nonzero(x) for x in hulls):
            return []  # one pill lying on the other (the zoomed photo style): no whole face to cut
    return out


def _second_face(seed: np.ndarray) -> np.ndarray | None:
    """The right-hand one of two faces joined in one seed (big capsules lying across the centre line, touching:
    the photos are always front | back), split between the two cores of the seed's distance map; None when the
    seed is one face."""
    w = seed.shape[1]
    total = np.count_nonzero(seed)
    if min(np.count_nonzero(seed[:, : w // 2]), np.count_nonzero(seed[:, w // 2:])) < STRADDLE * total:
        return None
    dist = cv2.distanceTransform(seed.astype(np.uint8), cv2.DIST_L2, 5)
    n, cores, stats, centres = cv2.connectedComponentsWithStats((dist > 0.5 * dist.max()).astype(np.uint8))
    if n < 3:
        return None
    a, b = sorted(np.argsort(-stats[1:, cv2.CC_STAT_AREA])[:2] + 1, key=lambda i: centres[i][0])
    if centres[a][0] >= w / 2 or centres[b][0] < w / 2:
        return None
    near = [cv2.distanceTransform((cores != i).astype(np.uint8), cv2.DIST_L2, 5) for i in (a, b)]
    return seed & (near[1] < near[0])


def _mirrored(face: np.ndarray) -> float:
    """IoU of a face's hull with itself flipped top to bottom (1 for an ellipse, ~0.65 for half of one)."""
    ys, xs = np.nonzero(_hull(face))
    m = np.zeros((ys.max() - ys.min() + 1, xs.max() - xs.min() + 1), bool)
    m[ys - ys.min(), xs - xs.min()] = True
    return float((m & m[::-1]).sum() / (m | m[::-1]).sum())


def half_face(alpha: np.ndarray, long_mm: float, short_mm: float) -> bool:
    """A face cut as half a pill: the lit top of a pale pill on the grid is lost, the shaded half left is more than
    HALF_ELONGATION times as elongated as the catalog says, and it does not mirror itself top to bottom. Only the
    callers that know the product's size can tell (MODEL_CARD, "The zoomed photo style's cut-outs")."""
    mask = (alpha > 0).astype(np.uint8)
    (_, _), (w, h), _ = cv2.minAreaRect(cv2.findNonZero(mask))
    return max(w, h) / max(min(w, h), 1.0) > HALF_ELONGATION * long_mm / short_mm and _mirrored(mask) < SMALL_SEED_MIRROR


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
    w = bgr.shape[1]
    rgb = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
    out = []
    for face in _faces(bgr, min_area_frac):
        alpha = _hull(face)
        ys, xs = np.nonzero(alpha)
        if len(xs) < 50 or np.ptp(xs) > MAX_WIDTH * w:  # the whole background grown (a face is in one half)
            continue
        sl = np.s_[ys.min(): ys.max() + 1, xs.min(): xs.max() + 1]
        rgba = np.dstack([rgb, alpha])[sl]
        side = "front" if (xs.min() + xs.max()) / 2 < w / 2 else "back"
        out.append(Cutout(np.ascontiguousarray(rgba), w * PX_PER_MM_PER_WIDTH, side,
                          (int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1)))
    return out
