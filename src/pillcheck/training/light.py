"""How a room lights pills for a phone camera, and how a coated pill shines: shared by the realistic evaluation
set (``identify_set.realistic_scene``) and the training views of the colour models (``appearance.photo_like``)."""

from __future__ import annotations

import cv2
import numpy as np


def kelvin_gains(kelvin: float) -> np.ndarray:
    """RGB gains of a light at ``kelvin`` against daylight (6500 K = 1, 1, 1): warm below, blue above."""
    def rgb(k: float) -> np.ndarray:  # the blackbody's colour, a standard fit of Planck's law in sRGB
        t = k / 100
        r = 255.0 if t <= 66 else 329.7 * (t - 60) ** -0.1332
        g = 99.47 * np.log(t) - 161.1 if t <= 66 else 288.1 * (t - 60) ** -0.0755
        b = 255.0 if t >= 66 else 0.0 if t <= 19 else 138.5 * np.log(t - 10) - 305.0
        return np.clip([r, g, b], 1, 255)
    gains = rgb(kelvin) / rgb(6500)
    return (gains / gains[1]).astype(np.float32)


def room_light(img: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Room light the camera's white balance only half undoes: a colour temperature of 2,700-9,000 K with a
    green/magenta tint, often a second light of another colour across the scene (a window and a lamp), uneven
    level and vignetting."""
    h, w = img.shape[:2]
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    keep = rng.uniform(0.3, 1.0)  # the share of the cast the camera leaves
    first = kelvin_gains(rng.uniform(2700, 9000)) ** keep * [1, rng.uniform(0.92, 1.08), 1]
    if rng.random() < 0.5:
        a = rng.uniform(0, 2 * np.pi)
        t = np.clip(0.5 + ((xx - w / 2) * np.cos(a) + (yy - h / 2) * np.sin(a)) / max(w, h), 0, 1)[..., None]
        second = kelvin_gains(rng.uniform(2700, 9000)) ** keep
        gains = first * (1 - t) + second * t
    else:
        gains = np.broadcast_to(first, (h, w, 3))
    r2 = ((xx - w / 2) ** 2 + (yy - h / 2) ** 2) / (0.5 * np.hypot(w, h)) ** 2
    level = rng.uniform(0.6, 1.2) * (1 - rng.uniform(0, 0.35) * r2)
    return img * gains * level[..., None]


def shadow(img: np.ndarray, alpha: np.ndarray, ox: int, oy: int, rng: np.random.Generator) -> None:
    """A soft shadow of the pill about to be pasted at (ox, oy), cast a little to one side."""
    side = alpha.shape[0]
    d = rng.uniform(0.02, 0.08) * side
    a = rng.uniform(0, 2 * np.pi)
    m = np.float32([[1, 0, d * np.cos(a)], [0, 1, d * np.sin(a)]])
    shade = cv2.GaussianBlur(cv2.warpAffine(alpha.astype(np.float32) / 255, m, (side, side)), (0, 0), 0.03 * side + 1)
    region = img[oy: oy + side, ox: ox + side]
    region *= (1 - rng.uniform(0.2, 0.5) * shade)[..., None]


def gloss(sprite: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A coated pill's specular highlight: a soft white ellipse somewhere on its face."""
    alpha = sprite[..., 3] > 127
    ys, xs = np.nonzero(alpha)
    k = int(rng.integers(len(xs)))
    h, w = alpha.shape
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    size = max(h, w)
    sx, sy = size * rng.uniform(0.04, 0.15), size * rng.uniform(0.02, 0.08)
    t = rng.uniform(0, np.pi)
    u = (xx - xs[k]) * np.cos(t) + (yy - ys[k]) * np.sin(t)
    v = -(xx - xs[k]) * np.sin(t) + (yy - ys[k]) * np.cos(t)
    blob = rng.uniform(0.4, 0.95) * np.exp(-(u / sx) ** 2 / 2 - (v / sy) ** 2 / 2) * alpha
    out = sprite.copy()
    out[..., :3] = np.clip(sprite[..., :3] * (1 - blob[..., None]) + 255 * blob[..., None], 0, 255)
    return out
