"""Where the pill is in a loose crop of it: its convex hull (the imprint reader turns its text along the hull's
long axis and measures the pill's long/short ratio from it)."""

from __future__ import annotations

import cv2
import numpy as np

from pillcheck.images import scaled

# GrabCut: size (px), iterations, and the share of each side that starts as probable background (the crop has
# 8% margin around the box; at 6% a pill on two-coloured cloth kept part of the cloth at 64 px)
SEG_PX, SEG_ITERS, SEG_MARGIN = 64, 3, 0.1
# ... and a small ellipse at its centre (semi-axes this share of each side) is certainly pill: a detector box is
# tight around a convex pill, so its centre lies on the pill. Without it, GrabCut sometimes traded a white pill on a
# pale background for its shadowed rim (evaluation: a round 'SJ' face measured 2.4:1 and read as nothing), and
# the reader's bands then missed the text. Evaluation set 0.533 / 0.629 -> 0.538 / 0.634 top-1 / top-5 (pair-photo
# 0.773 -> 0.787), tuning 0.586 / 0.672 -> 0.590 / 0.674 (0.05 the same, 0.2: 0.583 / 0.672); wrong-but-sure 0.
SEG_CENTRE = 0.1  # 0: no sure centre
# The pill touches all four sides of its box, which spans 1 / 1.16 of a reader's crop (8% margin): a hull narrower
# than this share of the crop in either direction has lost part of the pill, and GrabCut runs again at RETRY_PX
# (about 9x the time of SEG_PX, paid only by those crops). White faces of official photos on photo-like backgrounds:
# hulls spanning < 70% of the box 10 -> 4 of 240 (every crop at 96 px: 6, at 128 px: 4). Evaluation set 0.538 /
# 0.634 -> 0.543 / 0.637 (pair-photo 0.787 -> 0.800, multi-photo 0.429 -> 0.450); tuning the same, 0.590 / 0.674.
SHORT_SPAN, RETRY_PX = 0.75, 128
OUTLINE_PX = 128  # the size a pill crop is segmented at by ``pill_outline``


def pill_hull(rgb: np.ndarray) -> np.ndarray | None:
    """Convex hull (N x 1 x 2, pixels of ``rgb``) of the pill in a loose crop: GrabCut's (a second, finer look when
    the first hull is too narrow to be the whole pill), else the threshold's (a pill that reaches the crop's edge);
    None when neither finds it."""
    hull = _grabcut_hull(rgb)
    span = _span(hull, rgb.shape) if hull is not None else 1.0
    if span < SHORT_SPAN:  # part of the pill: look again, closer
        again = _grabcut_hull(rgb, RETRY_PX)
        if again is not None and _span(again, rgb.shape) > span:
            hull = again
    return _threshold_hull(rgb) if hull is None else hull


def _span(hull: np.ndarray, shape: tuple[int, ...]) -> float:
    """The smaller of the hull's width and height, as a share of the crop's."""
    _, _, w, h = cv2.boundingRect(hull.astype(np.float32))
    return min(w / shape[1], h / shape[0])


def pill_outline(rgb: np.ndarray) -> np.ndarray | None:
    """``pill_hull`` of the crop shrunk to OUTLINE_PX px at most, in pixels of ``rgb``: the one segmentation of a
    pill that the imprint reader turns its text along and the measure model reads (in training and serving)."""
    k = min(1.0, OUTLINE_PX / max(rgb.shape[:2]))
    hull = pill_hull(scaled(rgb, k))
    return None if hull is None else (hull + 0.5) / k - 0.5


def _grabcut_hull(rgb: np.ndarray, px: int = SEG_PX) -> np.ndarray | None:
    """The pill's hull by GrabCut, None when it cannot be told from the rest.

    GrabCut at ``px`` pixels: the crop's outer ring is background, its inside probably pill and its very centre surely
    pill. Colour models of both beat a threshold on the distance to the border colour on busy backgrounds
    (multi-coloured cloth, shadows, a white pill on paper): see ``imprint._geometry``.
    """
    h, w = rgb.shape[:2]
    k = min(1.0, px / max(h, w))
    small = scaled(rgb, k)
    sh, sw = small.shape[:2]
    if min(sh, sw) < 8 or float(np.ptp(small.reshape(-1, 3), axis=0).max()) < 8:
        return None
    mask = np.full((sh, sw), cv2.GC_PR_BGD, np.uint8)
    my, mx = max(1, round(sh * SEG_MARGIN)), max(1, round(sw * SEG_MARGIN))
    mask[my: sh - my, mx: sw - mx] = cv2.GC_PR_FGD
    mask[[0, -1], :] = mask[:, [0, -1]] = cv2.GC_BGD
    if SEG_CENTRE > 0:
        axes = (max(1, round(sw * SEG_CENTRE)), max(1, round(sh * SEG_CENTRE)))
        cv2.ellipse(mask, (sw // 2, sh // 2), axes, 0, 0, 360, cv2.GC_FGD, -1)
    bg, fg = np.zeros((1, 65)), np.zeros((1, 65))
    cv2.setRNGSeed(0)  # GrabCut seeds its colour models with k-means on OpenCV's (per-thread) random stream
    try:
        cv2.grabCut(cv2.cvtColor(small, cv2.COLOR_RGB2BGR), mask, None, bg, fg, SEG_ITERS, cv2.GC_INIT_WITH_MASK)
    except cv2.error:  # a colour model with too few distinct pixels
        return None
    hull = _hull(((mask == cv2.GC_FGD) | (mask == cv2.GC_PR_FGD)).astype(np.uint8))
    return None if hull is None else (hull + 0.5) / k - 0.5


def _threshold_hull(rgb: np.ndarray) -> np.ndarray | None:
    """The pill as what is far (Lab) from the border colour, Otsu: for a pill that reaches the crop's edge
    (GrabCut then takes it for background)."""
    lab = cv2.cvtColor(cv2.GaussianBlur(rgb, (3, 3), 0), cv2.COLOR_RGB2LAB).astype(np.float32)
    border = np.concatenate([lab[:2].reshape(-1, 3), lab[-2:].reshape(-1, 3), lab[:, :2].reshape(-1, 3),
                             lab[:, -2:].reshape(-1, 3)])
    dist = np.linalg.norm(lab - np.median(border, axis=0), axis=2)
    if dist.max() < 8:
        return None
    _, mask = cv2.threshold((dist * (255 / dist.max())).astype(np.uint8), 0, 255,
                            cv2.THRESH_BINARY + cv2.THRESH_OTSU)
    return _hull(cv2.morphologyEx(mask, cv2.MORPH_OPEN, np.ones((3, 3), np.uint8)))


def _hull(mask: np.ndarray) -> np.ndarray | None:
    """Convex hull of the large parts of a foreground mask (pills are convex, and a capsule's clear half or a
    white band can match the background); None when it covers too little or nearly all of the crop."""
    n, labels, stats, _ = cv2.connectedComponentsWithStats(mask)
    if n < 2:
        return None
    areas = stats[1:, cv2.CC_STAT_AREA]
    keep = 1 + np.flatnonzero(areas >= 0.15 * areas.max())
    hull = cv2.convexHull(np.column_stack(np.nonzero(np.isin(labels, keep))[::-1]).astype(np.float32))
    return hull if 0.1 < cv2.contourArea(hull) / mask.size < 0.97 else None
