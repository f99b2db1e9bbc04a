"""The identification evaluation set: held-out products only, made photo-like.

Format (what `pillcheck eval identify` reads): ``DIR/labels.csv`` with columns
``image,x1,y1,x2,y2,item_seq,subset`` (one row per pill, boxes in pixels of ``DIR/<image>``), images beside it.
``subset`` is ``photo`` (a real face cut from an official photo of a product held out of all training) or
``rendered`` (a held-out product with no photo, drawn from its catalog record), one pill per image; or
``multi-photo`` / ``multi-rendered``: the same kinds of pills, 3-6 per image at their true relative sizes (as on
a table), where the sizes of the pills named first help name the others; or ``pair-photo`` / ``pair-rendered``:
both faces of one pill, each in its own photo (``image`` and ``other_image``), as when the person turns a pill
over and photographs its other side. Optional columns ``other_image,ox1,oy1,ox2,oy2`` (empty for one photo).
``real-like`` (``build_realistic``): real faces as a phone photographs them on a table, the way the renders above
are too kind about: 1-6 pills at 200-600 px and true relative size, strong and mixed light colour, glossy highlights,
shadows, coloured and textured tables, tilt and perspective, blur.
"""

from __future__ import annotations

import csv
from pathlib import Path

import cv2
import numpy as np

from pillcheck.training.light import gloss, room_light, shadow
from pillcheck.training.render import render, spec_from_record
from pillcheck.training.scenes import procedural_background
from pillcheck.training.splits import is_held_out


def _rotated(sprite: np.ndarray, rng: np.random.Generator, angle: float | None = None) -> np.ndarray:
    """The RGBA sprite turned counter-clockwise by ``angle`` degrees (random when None) on a transparent square
    that holds it whole."""
    h, w = sprite.shape[:2]
    m = cv2.getRotationMatrix2D((w / 2, h / 2), rng.uniform(0, 360) if angle is None else angle, 1.0)
    side = int(np.hypot(h, w)) + 4
    m[:, 2] += (side - w) / 2, (side - h) / 2
    return cv2.warpAffine(sprite, m, (side, side), borderValue=(0, 0, 0, 0))


def _paste(img: np.ndarray, sprite: np.ndarray, ox: int, oy: int) -> list[float]:
    """Alpha-blend ``sprite`` onto the float image at (ox, oy); the pill's tight box."""
    side_h, side_w = sprite.shape[:2]
    a = sprite[..., 3:4].astype(np.float32) / 255
    region = img[oy: oy + side_h, ox: ox + side_w]
    region[:] = region * (1 - a) + sprite[..., :3] * a
    ys, xs = np.nonzero(sprite[..., 3] > 127)
    return [float(ox + xs.min()), float(oy + ys.min()), float(ox + xs.max() + 1), float(oy + ys.max() + 1)]


def _camera(img: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Phone-like light colour and level, blur, noise and JPEG."""
    img = img * (np.array([rng.uniform(0.85, 1.15), 1.0, rng.uniform(0.85, 1.15)], np.float32) * rng.uniform(0.7, 1.15))
    img = np.clip(img, 0, 255).astype(np.uint8)
    if rng.random() < 0.5:
        img = cv2.GaussianBlur(img, (0, 0), rng.uniform(0.3, 1.2))
    img = np.clip(img + rng.normal(0, rng.uniform(1, 5), img.shape), 0, 255).astype(np.uint8)
    ok, enc = cv2.imencode(".jpg", cv2.cvtColor(img, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, int(rng.integers(60, 95))])
    return cv2.cvtColor(cv2.imdecode(enc, cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)


OTHER_COLUMNS = ["other_image", "ox1", "oy1", "ox2", "oy2"]


def _pair_row(out: Path, stem: str, shots: list[tuple[np.ndarray, list[float]]], item_seq: str, subset: str) -> list:
    """One labels.csv row for a pill photographed on both sides: two images, a box in each."""
    (img_a, box_a), (img_b, box_b) = shots
    return [_save(out, f"{stem}_a.jpg", img_a), *[round(v, 1) for v in box_a], item_seq, subset,
            _save(out, f"{stem}_b.jpg", img_b), *[round(v, 1) for v in box_b]]


def place(sprite: np.ndarray, rng: np.random.Generator, long_px: float, angle: float | None = None
          ) -> tuple[np.ndarray, list[float]]:
    """One pill on a background, rotated (by ``angle`` degrees counter-clockwise, random when None), at ``long_px``
    pixels long, with phone-like light, blur, noise, JPEG."""
    s = long_px / max(sprite.shape[:2])
    sprite = _rotated(cv2.resize(sprite, None, fx=s, fy=s, interpolation=cv2.INTER_AREA if s < 1 else cv2.INTER_LINEAR),
                      rng, angle)
    side = sprite.shape[0]
    size = int(side * rng.uniform(1.6, 2.4))
    img = procedural_background(size, size, rng).astype(np.float32)
    box = _paste(img, sprite, int(rng.integers(0, size - side)), int(rng.integers(0, size - side)))
    return _camera(img, rng), box


def table(sprites: list[np.ndarray], rng: np.random.Generator) -> tuple[np.ndarray, list[list[float]]]:
    """Several pills (RGBA, already at one common pixels-per-mm) apart from each other on one background, each
    in its own cell of a grid, rotated and jittered; with the camera effects of ``place``."""
    turned = [_rotated(s, rng) for s in sprites]
    cell = int(max(t.shape[0] for t in turned) * 1.15)
    cols = int(np.ceil(np.sqrt(len(turned))))
    rows = int(np.ceil(len(turned) / cols))
    img = procedural_background(rows * cell, cols * cell, rng).astype(np.float32)
    boxes = []
    for k, t in enumerate(turned):
        r, c = divmod(k, cols)
        slack = cell - t.shape[0]
        boxes.append(_paste(img, t, c * cell + int(rng.integers(0, slack + 1)), r * cell + int(rng.integers(0, slack + 1))))
    return _camera(img, rng), boxes


def _save(out: Path, name: str, img: np.ndarray) -> str:
    cv2.imwrite(str(out / name), cv2.cvtColor(img, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 95])
    return name


def _rgba(path: Path) -> np.ndarray:
    return cv2.cvtColor(cv2.imread(str(path), cv2.IMREAD_UNCHANGED), cv2.COLOR_BGRA2RGBA)


def build(out: Path, records: dict[str, dict], cut_dir: Path, *, n_photo: int = 300, n_rendered: int = 200,
          n_multi: int = 60, n_pairs: int = 150, n_realistic: int = 0, seed: int = 0,
          exclude: set[str] = frozenset()) -> Path:
    rng = np.random.default_rng(seed)
    out.mkdir(parents=True, exist_ok=True)
    with open(cut_dir / "index.csv", encoding="utf-8") as f:
        cuts = [r for r in csv.DictReader(f)
                if r["held_out"] == "1" and r["item_seq"] in records and r["item_seq"] not in exclude]
    photo_items = {r["item_seq"] for r in cuts}
    rows = []
    for k, i in enumerate(rng.choice(len(cuts), size=min(n_photo, len(cuts)), replace=False)):
        r = cuts[int(i)]
        img, box = place(_rgba(cut_dir / r["file"]), rng, rng.uniform(90, 260))
        rows.append([_save(out, f"photo_{k:04d}.jpg", img), *[round(v, 1) for v in box], r["item_seq"], "photo"])
    pool = sorted(s for s in records if is_held_out(s) and s not in photo_items and s not in exclude)
    for k, i in enumerate(rng.choice(len(pool), size=min(n_rendered, len(pool)), replace=False)):
        rec = records[pool[int(i)]]
        side = "front" if rng.random() < 0.6 else "back"
        img, box = place(render(spec_from_record(rec, rng, side), 16.0, rng), rng, rng.uniform(90, 260))
        rows.append([_save(out, f"rendered_{k:04d}.jpg", img), *[round(v, 1) for v in box], rec["item_seq"], "rendered"])
    multi_rng = np.random.default_rng(seed + 1)  # its own stream: the single-pill images stay as they were
    for k in range(n_multi):
        ppm = multi_rng.uniform(8, 16)  # pixels per mm of this photo
        sprites, labels = [], []
        for _ in range(int(multi_rng.integers(3, 7))):
            if multi_rng.random() < 0.6:
                r = cuts[int(multi_rng.integers(len(cuts)))]
                rgba = _rgba(cut_dir / r["file"])
                f = ppm / float(r["px_per_mm"])
                sprites.append(cv2.resize(rgba, None, fx=f, fy=f, interpolation=cv2.INTER_AREA))
                labels.append((r["item_seq"], "multi-photo"))
            else:
                rec = records[pool[int(multi_rng.integers(len(pool)))]]
                side = "front" if multi_rng.random() < 0.6 else "back"
                sprites.append(render(spec_from_record(rec, multi_rng, side), ppm, multi_rng))
                labels.append((rec["item_seq"], "multi-rendered"))
        img, boxes = table(sprites, multi_rng)
        name = _save(out, f"multi_{k:04d}.jpg", img)
        rows.extend([name, *[round(v, 1) for v in box], seq, subset] for box, (seq, subset) in zip(boxes, labels))
    pair_rng = np.random.default_rng(seed + 2)
    sides: dict[str, dict[str, dict]] = {}
    for r in cuts:
        sides.setdefault(r["item_seq"], {}).setdefault(r["side"], r)
    both = sorted(seq for seq, faces in sides.items() if len(faces) == 2)
    for k, i in enumerate(pair_rng.choice(len(both), size=min(n_pairs, len(both)), replace=False)):
        faces = sides[both[int(i)]]
        order = ["front", "back"] if pair_rng.random() < 0.5 else ["back", "front"]
        shots = [place(_rgba(cut_dir / faces[side]["file"]), pair_rng, pair_rng.uniform(90, 260)) for side in order]
        rows.append(_pair_row(out, f"pair_photo_{k:04d}", shots, both[int(i)], "pair-photo"))
    for k, i in enumerate(pair_rng.choice(len(pool), size=min(n_pairs, len(pool)), replace=False)):
        rec = records[pool[int(i)]]
        shots = []
        for side in ("front", "back") if pair_rng.random() < 0.5 else ("back", "front"):
            shots.append(place(render(spec_from_record(rec, pair_rng, side), 16.0, pair_rng), pair_rng,
                               pair_rng.uniform(90, 260)))
        rows.append(_pair_row(out, f"pair_rendered_{k:04d}", shots, rec["item_seq"], "pair-rendered"))
    rows += build_realistic(out, cuts, cut_dir, n_realistic, seed)
    with open(out / "labels.csv", "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["image", "x1", "y1", "x2", "y2", "item_seq", "subset", *OTHER_COLUMNS])
        w.writerows(row + [""] * (7 + len(OTHER_COLUMNS) - len(row)) for row in rows)
    return out / "labels.csv"


def realistic_scene(sprites: list[np.ndarray], rng: np.random.Generator) -> tuple[np.ndarray, list[list[float]]]:
    """Pills (RGBA, at one common pixels-per-mm) on a table as a phone photographs it (see ``light.room_light``,
    ``light.shadow``, ``light.gloss``, a tilted view, blur, noise, JPEG); each pill's tight box in the final image."""
    turned = [_rotated(gloss(s, rng) if rng.random() < 0.6 else s, rng) for s in sprites]
    cell = int(max(t.shape[0] for t in turned) * rng.uniform(1.1, 1.5))
    cols = int(np.ceil(np.sqrt(len(turned))))
    rows = int(np.ceil(len(turned) / cols))
    pad = cell // 3
    h, w = rows * cell + 2 * pad, cols * cell + 2 * pad
    img = procedural_background(h, w, rng).astype(np.float32)
    ids = np.zeros((h, w), np.uint8)
    for k, t in enumerate(turned):
        r, c = divmod(k, cols)
        slack = cell - t.shape[0]
        ox, oy = pad + c * cell + int(rng.integers(0, slack + 1)), pad + r * cell + int(rng.integers(0, slack + 1))
        shadow(img, t[..., 3], ox, oy, rng)
        _paste(img, t, ox, oy)
        ids[oy: oy + t.shape[0], ox: ox + t.shape[0]][t[..., 3] > 127] = k + 1
    d = rng.uniform(0, 0.07) * min(w, h)  # the phone held not quite flat
    src = np.float32([[0, 0], [w, 0], [w, h], [0, h]])
    m = cv2.getPerspectiveTransform(src, (src + rng.uniform(-d, d, (4, 2))).astype(np.float32))
    img = cv2.warpPerspective(img, m, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
    ids = cv2.warpPerspective(ids, m, (w, h), flags=cv2.INTER_NEAREST, borderValue=0)
    img = np.clip(room_light(img, rng), 0, 255)
    if rng.random() < 0.6:
        img = cv2.GaussianBlur(img, (0, 0), rng.uniform(0.4, 1.6))
    img = np.clip(img + rng.normal(0, rng.uniform(1, 6), img.shape), 0, 255).astype(np.uint8)
    ok, enc = cv2.imencode(".jpg", cv2.cvtColor(img, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, int(rng.integers(70, 93))])
    boxes = []
    for k in range(len(turned)):
        ys, xs = np.nonzero(ids == k + 1)
        boxes.append([float(xs.min()), float(ys.min()), float(xs.max() + 1), float(ys.max() + 1)])
    return cv2.cvtColor(cv2.imdecode(enc, cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB), boxes


def build_realistic(out: Path, cuts: list[dict], cut_dir: Path, n: int = 150, seed: int = 0) -> list[list]:
    """``n`` table photos of real held-out faces (``realistic_scene``), mostly four pills as in a drawer's
    handful, sometimes one to three (a close look) or five or six; the typical pill 200-500 px long. ``cuts``:
    rows of the cut-outs' index.csv. Rows for labels.csv."""
    rng = np.random.default_rng(seed + 3)
    rows = []
    for k in range(n):
        count = int(rng.choice([1, 2, 3, 4, 5, 6], p=[0.1, 0.08, 0.07, 0.6, 0.1, 0.05]))
        picked = [cuts[int(i)] for i in rng.choice(len(cuts), size=count, replace=False)]
        rgba = [_rgba(cut_dir / r["file"]) for r in picked]
        long_mm = [max(a.shape[:2]) / float(r["px_per_mm"]) for a, r in zip(rgba, picked)]
        ppm = rng.uniform(200, 500) / float(np.median(long_mm))
        ppm = min(ppm, 600 / max(long_mm))
        sprites = [cv2.resize(a, None, fx=ppm / float(r["px_per_mm"]), fy=ppm / float(r["px_per_mm"]),
                              interpolation=cv2.INTER_AREA if ppm < float(r["px_per_mm"]) else cv2.INTER_CUBIC)
                   for a, r in zip(rgba, picked)]
        img, boxes = realistic_scene(sprites, rng)
        name = _save(out, f"real_like_{k:04d}.jpg", img)
        rows.extend([name, *[round(v, 1) for v in box], r["item_seq"], "real-like"] for box, r in zip(boxes, picked))
    return rows
