"""What to change about a photo when its pills were not found well: too dark, blurred, a pill cut off by the frame
(too close), pills too small to read (too far), or no pill at all.

A hint that points the wrong way is worse than none: "come closer" under a close-up of one pill (the case that used
to fail) makes the next photo worse. So each hint rests on something measured in the photo and the boxes, and
"too far" is said only of pills actually found small.
"""

from __future__ import annotations

import cv2
import numpy as np

from pillcheck.inference.detector import Detections

DARK = 45  # mean luma (0-255) below which a photo is too dark to judge colours and imprints
BRIGHT = 235  # ... above which it is washed out
# The sharpest part of a photo (90th percentile of the Laplacian's variance over 8x8 tiles at 800 px): a sharp
# photo has edges somewhere, even a white pill on a white table (pill rims, imprints); measured on the real phone
# photos (pushin-pill: min 35, 10th percentile 83; the official photos: min 275), the same blurred with sigma 3 at
# 800 px (max 8.4); sigma 1.5 (median 15) is soft but often still readable.
SHARP = 20.0
EDGE = 0.01  # a box this close to the frame's edge (share of the side) touches it
CUT_SIDE = 0.25  # ... and a pill that large there is cut off: step back
SMALL = 0.015  # pills whose median short side is under this share of the photo's short side are too far to read


def sharpness(rgb: np.ndarray) -> float:
    """The 90th percentile over 8x8 tiles of the Laplacian variance of the photo at 800 px long side."""
    h, w = rgb.shape[:2]
    k = 800 / max(h, w)
    grey = cv2.cvtColor(cv2.resize(rgb, (max(8, round(w * k)), max(8, round(h * k))), interpolation=cv2.INTER_AREA),
                        cv2.COLOR_RGB2GRAY)
    lap = cv2.Laplacian(grey, cv2.CV_32F)
    th, tw = lap.shape[0] // 8, lap.shape[1] // 8
    tiles = lap[: th * 8, : tw * 8].reshape(8, th, 8, tw).transpose(0, 2, 1, 3).reshape(64, -1)
    return float(np.percentile(tiles.var(axis=1), 90))


def advise(rgb: np.ndarray, det: Detections) -> str | None:
    """One hint key (``dark``, ``bright``, ``blurred``, ``cut_off``, ``too_far``, ``no_pill``) or None when the
    photo needs no change. ``det`` in the pixels of ``rgb``."""
    h, w = rgb.shape[:2]
    luma = float(cv2.cvtColor(rgb[::4, ::4], cv2.COLOR_RGB2GRAY).mean())
    if luma < DARK:
        return "dark"
    if luma > BRIGHT and not len(det):
        return "bright"
    if sharpness(rgb) < SHARP:
        return "blurred"
    if not len(det):
        return "no_pill"
    x1, y1, x2, y2 = det.xyxy.T
    short = np.minimum(x2 - x1, y2 - y1)
    touches = (x1 <= EDGE * w) | (y1 <= EDGE * h) | (x2 >= (1 - EDGE) * w) | (y2 >= (1 - EDGE) * h)
    if np.any(touches & (short >= CUT_SIDE * min(h, w))):
        return "cut_off"
    if float(np.median(short)) < SMALL * min(h, w):
        return "too_far"
    return None
