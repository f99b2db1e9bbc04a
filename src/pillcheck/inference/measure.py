"""What the segmented pill's own pixels and outline say: its colours and its shape (``models/measure.onnx``).

The appearance CNN sees the whole crop, table included, and its colour head stays weak: on held-out crops its
most probable colour is one of the catalog's for 0.67 of them. Measured inside the pill's hull instead (Lab
percentiles, a chroma-weighted hue histogram, the two halves along the long axis, since capsules are two-tone,
and the table around it for the light's cast) a small MLP gets 0.80-0.82. The hull's outline (aspect, how it
fills its rectangle, circle and triangle, polygon vertices, Hu moments) names the shape a little more often than
the CNN (0.85 vs 0.82), and the two together better still (0.87): the shape is their geometric mean.
models/MODEL_CARD.md has the numbers.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import cv2
import numpy as np

from pillcheck.images import scaled
from pillcheck.inference.appearance import COLOURS, SHAPES, Appearance
from pillcheck.inference.session import ModelError, create_session

HUE_BINS = 12
N_COLOUR = 6 * 3 + 2 * 3 + HUE_BINS + 4
N_SHAPE = 14
N_FEATURES = N_COLOUR + N_SHAPE
OUTPUTS = ("colour", "shape")
_PERCENTILES = (10, 25, 50, 75, 90)
_MIN_PIXELS = 30
MEASURE_SIDE = 128


def _pill_mask(shape: tuple[int, int], hull: np.ndarray | None) -> np.ndarray:
    """The pill's pixels, its rim eroded (edges mix pill and table); the crop's centre when it was not found."""
    h, w = shape
    mask = np.zeros((h, w), np.uint8)
    if hull is not None:
        cv2.fillConvexPoly(mask, np.round(hull).astype(np.int32).reshape(-1, 2), 1)
        r = max(1, round(0.025 * min(h, w)))
        inner = cv2.erode(mask, np.ones((2 * r + 1, 2 * r + 1), np.uint8))
        if inner.sum() >= _MIN_PIXELS:
            mask = inner
    if mask.sum() < _MIN_PIXELS:
        mask[:] = 0
        mask[h // 4: 3 * h // 4, w // 4: 3 * w // 4] = 1
    return mask


def colour_features(rgb: np.ndarray, hull: np.ndarray | None) -> np.ndarray:
    """Colour statistics (N_COLOUR) of the pill inside ``hull`` and of the table around it."""
    h, w = rgb.shape[:2]
    mask = _pill_mask((h, w), hull)
    lab = cv2.cvtColor(rgb.astype(np.float32) * np.float32(1 / 255), cv2.COLOR_RGB2LAB)
    px = lab[mask > 0]
    r = max(1, round(0.035 * min(h, w)))
    outside = cv2.dilate(mask, np.ones((2 * r + 1, 2 * r + 1), np.uint8)) == 0
    table = lab[outside] if outside.sum() >= _MIN_PIXELS else np.concatenate([lab[0], lab[-1]])
    stats = [*np.percentile(px, _PERCENTILES, axis=0), np.median(table, axis=0)]
    # the two halves along the long axis, darker first (a capsule's cap and body)
    ys, xs = np.nonzero(mask)
    pts = np.column_stack([xs, ys]).astype(np.float32)
    pts -= pts.mean(0)
    side = pts @ np.linalg.svd(pts, full_matrices=False)[2][0] > 0
    halves = [np.median(px[s], axis=0) if s.any() else np.median(px, axis=0) for s in (side, ~side)]
    stats += sorted(halves, key=lambda v: float(v[0]))
    chroma = np.hypot(px[:, 1], px[:, 2])
    hue = np.arctan2(px[:, 2], px[:, 1])
    bins = np.floor((hue + np.pi) * (HUE_BINS / (2 * np.pi))).astype(int) % HUE_BINS
    hist = np.bincount(bins, weights=np.minimum(chroma, 60), minlength=HUE_BINS) / (60 * len(px))
    extra = [np.mean(chroma < 8), np.mean(chroma > 25), np.mean(px[:, 0] > 92), np.median(chroma) / 50]
    return np.concatenate([np.concatenate(stats) / 50, hist, extra]).astype(np.float32)


def shape_features(hull: np.ndarray | None) -> np.ndarray:
    """Scale-free descriptors (N_SHAPE) of the pill's outline; zeros when it was not found."""
    if hull is None or len(hull) < 3:
        return np.zeros(N_SHAPE, np.float32)
    pts = hull.reshape(-1, 1, 2).astype(np.float32)
    area, perimeter = cv2.contourArea(pts), cv2.arcLength(pts, True)
    _, (w, h), _ = cv2.minAreaRect(pts)
    _, radius = cv2.minEnclosingCircle(pts)
    triangle, _ = cv2.minEnclosingTriangle(pts)
    f = [max(w, h) / max(min(w, h), 1e-3), area / max(w * h, 1e-3), area / (np.pi * radius ** 2 + 1e-3),
         4 * np.pi * area / (perimeter ** 2 + 1e-3), area / max(triangle, 1e-3)]
    f += [len(cv2.approxPolyDP(pts, e * perimeter, True)) / 8 for e in (0.01, 0.02, 0.04, 0.07)]
    hu = cv2.HuMoments(cv2.moments(pts)).ravel()[:5]
    f += list(-np.sign(hu) * np.log10(np.abs(hu) + 1e-12) / 10)
    return np.array(f, np.float32)


def features(rgb: np.ndarray, hull: np.ndarray | None) -> np.ndarray:
    """Everything the model reads (N_FEATURES, float32): ``hull`` is the pill's outline in pixels of ``rgb``
    (``segment.pill_outline``; None: not found, then the crop's centre stands for the pill). Colours are measured
    at MEASURE_SIDE px at most (a 320-px crop took 9.6 ms at full size, 3.0 ms capped; statistics need no more)."""
    k = min(1.0, MEASURE_SIDE / max(rgb.shape[:2]))
    small = scaled(rgb, k) if k < 1 else rgb
    inner = None if hull is None else (hull + 0.5) * k - 0.5
    return np.concatenate([colour_features(small, inner), shape_features(hull)])


class MeasureModel:
    """``features`` -> independent colour probabilities and shape probabilities (ONNX MLP, normalisation inside)."""

    def __init__(self, path: Path, threads: int | None = None) -> None:
        self.session = create_session(Path(path), threads=threads)
        inp, outs = self.session.get_inputs()[0], self.session.get_outputs()
        names = tuple(o.name for o in outs)
        if inp.shape[-1] != N_FEATURES or names != OUTPUTS:
            raise ModelError(f"{Path(path).name}: expected {N_FEATURES} features -> {OUTPUTS}, "
                             f"got {inp.shape[-1]} -> {names}")
        self.input_name = inp.name

    def __call__(self, feats: list[np.ndarray]) -> list[tuple[dict[str, float], dict[str, float]]]:
        """(colour, shape) probabilities for each feature vector."""
        if not feats:
            return []
        colour, shape = self.session.run(None, {self.input_name: np.stack(feats).astype(np.float32)})
        pc = 1 / (1 + np.exp(-colour))
        ps = np.exp(shape - shape.max(1, keepdims=True))
        ps /= ps.sum(1, keepdims=True)
        return [(dict(zip(COLOURS, map(float, c))), dict(zip(SHAPES, map(float, s)))) for c, s in zip(pc, ps)]


def merge(app: Appearance, colour: dict[str, float], shape: dict[str, float]) -> Appearance:
    """The CNN's appearance with the measured colours, and the shape as the normalised geometric mean of both."""
    mean = {s: float(np.sqrt(app.shape[s] * shape[s])) for s in SHAPES}
    total = sum(mean.values()) or 1.0
    return replace(app, colour=colour, shape={s: v / total for s, v in mean.items()})
