"""Appearance model training (torch, `[train]` extra): pill crop -> shape / colours / form / score line.

Data: the real faces cut from the official photos (products split by ``splits.is_held_out``) and pills drawn
from catalog records, each pasted on a random background, rotated, cropped as the detector would box it
(with its jitter), then degraded like a phone photo. Exported to ONNX with the four named outputs that
``inference/appearance.py`` reads.
"""

from __future__ import annotations

import csv
import json
import sys
import time
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np

from pillcheck.inference.appearance import COLOURS, FORMS, OUTPUTS, SHAPES, SIZE, colour_labels, crop, form_label
from pillcheck.training.light import gloss, room_light
from pillcheck.training.render import appearance_records, render, spec_from_record
from pillcheck.training.scenes import procedural_background
from pillcheck.training.splits import is_held_out

Cropper = Callable[[np.ndarray, np.ndarray], np.ndarray]  # (photo, xyxy box) -> the model's crop


def _label(rec: dict, side: str) -> tuple[int, np.ndarray, int, float] | None:
    if rec.get("shape") not in SHAPES:
        return None
    colour = rec.get("color_front") if side == "front" or not rec.get("color_back") else rec.get("color_back")
    cols = colour_labels(colour)
    if not cols:
        return None
    vec = np.zeros(len(COLOURS), np.float32)
    vec[[COLOURS.index(c) for c in cols]] = 1
    line = rec.get("line_front") if side == "front" else rec.get("line_back")
    printed = (rec.get("print_front") if side == "front" else rec.get("print_back")) or ""
    has_line = float(bool(line and line != "-") or "분할선" in printed)
    return SHAPES.index(rec["shape"]), vec, FORMS.index(form_label(rec.get("form"))), has_line


def photo_like(sprite: np.ndarray, rng: np.random.Generator, cropper: Cropper = crop, room: bool = False) -> np.ndarray:
    """Paste an RGBA pill on a background, rotate, box it with detector-like jitter, degrade, crop it the way a
    model's input is cropped (``cropper``: the appearance crop, SIZE px square, by default). ``room``: lit as a room
    lights it (``light.room_light``: strong and mixed casts, vignetting) with a coated pill's gloss, instead of the
    mild overall colour shift."""
    if room and rng.random() < 0.6:
        sprite = gloss(sprite, rng)
    h, w = sprite.shape[:2]
    scale = rng.uniform(60, 160) / max(h, w)
    sprite = cv2.resize(sprite, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
    h, w = sprite.shape[:2]
    m = cv2.getRotationMatrix2D((w / 2, h / 2), rng.uniform(0, 360), 1.0)
    side = int(np.hypot(h, w)) + 4
    m[:, 2] += (side - w) / 2, (side - h) / 2
    sprite = cv2.warpAffine(sprite, m, (side, side), borderValue=(0, 0, 0, 0))
    canvas = int(side * 1.5)
    bg = procedural_background(canvas, canvas, rng).astype(np.float32)
    off = (canvas - side) // 2
    alpha = sprite[..., 3:4].astype(np.float32) / 255
    region = bg[off: off + side, off: off + side]
    region[:] = region * (1 - alpha) + sprite[..., :3] * alpha
    ys, xs = np.nonzero(sprite[..., 3] > 127)
    box = np.array([xs.min(), ys.min(), xs.max(), ys.max()], np.float32) + off
    bw, bh = box[2] - box[0], box[3] - box[1]
    box += rng.normal(0, 0.05, 4).astype(np.float32) * [bw, bh, bw, bh]
    if room:
        img = room_light(bg, rng)
    else:
        img = bg * np.array([rng.uniform(0.8, 1.2), 1.0, rng.uniform(0.8, 1.2)], np.float32) * rng.uniform(0.6, 1.25)
    img = np.clip(img, 0, 255).astype(np.uint8)
    if rng.random() < 0.5:
        img = cv2.GaussianBlur(img, (0, 0), rng.uniform(0.3, 1.5))
    img = np.clip(img + rng.normal(0, rng.uniform(1, 6), img.shape), 0, 255).astype(np.uint8)
    out = cropper(img, box)
    ok, enc = cv2.imencode(".jpg", out, [cv2.IMWRITE_JPEG_QUALITY, int(rng.integers(45, 95))])
    return cv2.imdecode(enc, cv2.IMREAD_UNCHANGED)


def build_samples(cut_dir: Path, records: dict[str, dict], held_out: bool, views: int, rendered: int,
                  rng: np.random.Generator, cropper: Cropper = crop, room: float = 0.0) -> tuple[list[np.ndarray], list[tuple]]:
    """(crops, labels) for one split: real cut-outs x views, plus rendered pills; a share ``room`` of them lit as
    a room lights them (``photo_like``)."""
    def lit() -> bool:  # no draw at 0, so the samples (and models) of earlier runs stay what they were
        return room > 0 and rng.random() < room

    with open(cut_dir / "index.csv", encoding="utf-8") as f:
        cuts = [r for r in csv.DictReader(f) if (r["held_out"] == "1") == held_out]
    imgs, labels = [], []
    for r in cuts:
        rec = records.get(r["item_seq"])
        lab = _label(rec, r["side"]) if rec else None
        if lab is None:
            continue
        rgba = cv2.cvtColor(cv2.imread(str(cut_dir / r["file"]), cv2.IMREAD_UNCHANGED), cv2.COLOR_BGRA2RGBA)
        for _ in range(views):
            imgs.append(photo_like(rgba, rng, cropper, lit()))
            labels.append(lab)
    pool = [rec for seq, rec in records.items() if is_held_out(seq) == held_out]
    for i in rng.choice(len(pool), size=min(rendered, len(pool)), replace=False):
        rec = pool[int(i)]
        side = "front" if rng.random() < 0.6 else "back"
        lab = _label(rec, side)
        if lab is None:
            continue
        imgs.append(photo_like(render(spec_from_record(rec, rng, side), 12.0, rng), rng, cropper, lit()))
        labels.append(lab)
    print(f"{'held-out' if held_out else 'train'} samples: {len(imgs)}", file=sys.stderr)
    return imgs, labels


def _net():
    import torch.nn as nn

    def block(cin: int, cout: int) -> nn.Sequential:
        return nn.Sequential(nn.Conv2d(cin, cout, 3, 2, 1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True),
                             nn.Conv2d(cout, cout, 3, 1, 1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True))

    class Net(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.body = nn.Sequential(block(3, 24), block(24, 48), block(48, 96), block(96, 160),
                                      nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Dropout(0.2))
            self.shape, self.colour = nn.Linear(160, len(SHAPES)), nn.Linear(160, len(COLOURS))
            self.form, self.line = nn.Linear(160, len(FORMS)), nn.Linear(160, 1)

        def forward(self, x):
            f = self.body(x)
            return self.shape(f), self.colour(f), self.form(f), self.line(f)

    return Net()


def _tensors(imgs: list[np.ndarray], labels: list[tuple]):
    import torch

    x = torch.from_numpy(np.stack(imgs)).permute(0, 3, 1, 2).contiguous()  # uint8; scaled per batch
    return (x, torch.tensor([lab[0] for lab in labels]), torch.from_numpy(np.stack([lab[1] for lab in labels])),
            torch.tensor([lab[2] for lab in labels]), torch.tensor([lab[3] for lab in labels], dtype=torch.float32))


def evaluate(model, data) -> dict:
    import torch

    model.eval()
    x, ys, yc, yf, yl = data
    outs = [[], [], [], []]
    with torch.no_grad():
        for i in range(0, len(x), 256):
            for k, o in enumerate(model(x[i: i + 256].float() / 255)):
                outs[k].append(o)
    s, c, f, ln = (torch.cat(o) for o in outs)
    top3 = s.topk(3, 1).indices
    best_colour = torch.sigmoid(c).argmax(1)
    return {
        "samples": len(x),
        "shape_top1": round(float((s.argmax(1) == ys).float().mean()), 4),
        "shape_top3": round(float((top3 == ys[:, None]).any(1).float().mean()), 4),
        "colour_top1_in_labels": round(float(yc[torch.arange(len(yc)), best_colour].mean()), 4),
        "form_top1": round(float((f.argmax(1) == yf).float().mean()), 4),
        "line_acc": round(float(((ln.reshape(-1) > 0).float() == yl).float().mean()), 4),
    }


def start(db: Path, seed: int, threads: int) -> tuple[np.random.Generator, dict[str, dict]]:
    """Seed torch and numpy, set torch's threads, and read the catalog's appearance records: how a training
    run on the crops begins."""
    import duckdb
    import torch

    torch.manual_seed(seed)
    torch.set_num_threads(threads)
    with duckdb.connect(str(db), read_only=True) as con:
        return np.random.default_rng(seed), appearance_records(con)


def train(cut_dir: Path, db: Path, out: Path, *, epochs: int = 14, views: int = 2, rendered: int = 3000,
          seed: int = 0, threads: int = 2) -> dict:
    import torch
    import torch.nn.functional as F

    rng, records = start(db, seed, threads)
    t0 = time.time()
    train_data = _tensors(*build_samples(cut_dir, records, False, views, rendered, rng))
    test_data = _tensors(*build_samples(cut_dir, records, True, 1, rendered // 4, rng))
    model = _net()
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3, weight_decay=1e-4)
    steps = epochs * ((len(train_data[0]) + 63) // 64)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=3e-3, total_steps=steps)
    x, ys, yc, yf, yl = train_data
    for epoch in range(epochs):
        model.train()
        perm = torch.randperm(len(x))
        total = 0.0
        for i in range(0, len(x), 64):
            idx = perm[i: i + 64]
            xb = x[idx].float() / 255
            if torch.rand(1) < 0.5:  # crops are rotation-free: flips are free augmentation
                xb = xb.flip(3)
            s, c, f, ln = model(xb)
            loss = (F.cross_entropy(s, ys[idx], label_smoothing=0.05) + F.binary_cross_entropy_with_logits(c, yc[idx])
                    + F.cross_entropy(f, yf[idx]) + 0.5 * F.binary_cross_entropy_with_logits(ln.reshape(-1), yl[idx]))
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            total += float(loss) * len(idx)
        print(f"epoch {epoch + 1}/{epochs} loss {total / len(x):.3f} held-out {evaluate(model, test_data)}",
              file=sys.stderr, flush=True)
    metrics = {"train": evaluate(model, train_data), "held_out_products": evaluate(model, test_data),
               "train_seconds": round(time.time() - t0), "epochs": epochs}
    model.eval()
    out.parent.mkdir(parents=True, exist_ok=True)
    torch.onnx.export(model, torch.zeros(1, 3, SIZE, SIZE), str(out), input_names=["image"], output_names=list(OUTPUTS),
                      dynamic_axes={"image": {0: "batch"}, **{o: {0: "batch"} for o in OUTPUTS}}, opset_version=17,
                      dynamo=False)
    (out.with_suffix(".metrics.json")).write_text(json.dumps(metrics, indent=1))
    return metrics
