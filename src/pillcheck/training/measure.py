"""Measure model training (torch, `[train]` extra): the segmented pill's colour and outline statistics -> catalog
colours and shape.

The samples are the appearance model's (``appearance.build_samples``: real faces of the training products and
drawn pills, photo-like, split by product), cropped as served (the reader's crop), segmented by
``segment.pill_hull`` at the crop's own size (serving segments at 128 px, ``pill_outline``: training that way
measured slightly lower, models/MODEL_CARD.md) and described by ``measure.features``. A two-layer MLP with two
heads; the feature normalisation is folded into its first layer, so the ONNX takes the raw features.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import numpy as np

from pillcheck.inference.appearance import COLOURS, SHAPES, AppearanceModel, crop
from pillcheck.inference.measure import N_FEATURES, OUTPUTS, features, merge
from pillcheck.inference.segment import pill_hull
from pillcheck.pipeline import IMPRINT_MARGIN, imprint_crop
from pillcheck.training.appearance import build_samples, start


def _reader_crop(img: np.ndarray, box: np.ndarray) -> np.ndarray:
    """The crop the pipeline measures: the imprint reader's (``pipeline.imprint_crop``)."""
    return imprint_crop(img, box)[0]


def _box_in(reader_crop: np.ndarray) -> np.ndarray:
    """The detector box inside a reader crop (its margin taken off), for the appearance CNN's own crop."""
    h, w = reader_crop.shape[:2]
    m = IMPRINT_MARGIN / (1 + 2 * IMPRINT_MARGIN)
    return np.array([m * w, m * h, (1 - m) * w, (1 - m) * h])


def evaluate(colour: np.ndarray, shape: np.ndarray, y_colour: np.ndarray, y_shape: np.ndarray) -> dict:
    """The most probable colour is one of the record's; shape top-1; mean cross-entropies."""
    q = np.clip(colour, 1e-4, 1 - 1e-4)
    rows = np.arange(len(y_shape))
    return {"samples": len(y_shape),
            "colour_top1_in_labels": round(float(y_colour[rows, colour.argmax(1)].mean()), 4),
            "colour_bce": round(float(-(y_colour * np.log(q) + (1 - y_colour) * np.log(1 - q)).mean()), 4),
            "shape_top1": round(float((shape.argmax(1) == y_shape).mean()), 4),
            "shape_nll": round(float(-np.log(np.clip(shape[rows, y_shape], 1e-4, 1)).mean()), 4)}


def train(cut_dir: Path, db: Path, out: Path, *, appearance: Path | None = None, epochs: int = 60, views: int = 2,
          rendered: int = 3000, hidden: int = 64, seed: int = 0, threads: int = 2, room: float = 0.0) -> dict:
    """Train, export ONNX to ``out`` and its metrics beside it. ``room``: the share of training views lit as a room
    lights them (strong and mixed casts, ``appearance.photo_like``); the metrics give the held-out products both
    ways. With ``appearance`` (the CNN's ONNX), the metrics also give the CNN alone and the shape as served
    (geometric mean of both)."""
    import torch
    import torch.nn as nn
    import torch.nn.functional as F

    rng, records = start(db, seed, threads)
    t0 = time.time()
    sets = {}
    for name, held_out, n_views, n_rendered, lit in (("train", False, views, rendered, room),
                                                     ("held_out_products", True, 1, rendered // 4, 0.0),
                                                     ("held_out_room_light", True, 1, rendered // 4, 1.0)):
        imgs, labels = build_samples(cut_dir, records, held_out, n_views, n_rendered, rng, _reader_crop, lit)
        x = np.stack([features(im, pill_hull(im)) for im in imgs])
        sets[name] = (x, np.stack([lab[1] for lab in labels]).astype(np.float32),
                      np.array([lab[0] for lab in labels]), imgs)
        print(f"{name}: {len(imgs)} crops measured ({time.time() - t0:.0f} s)", file=sys.stderr, flush=True)
    x, y_colour, y_shape, _ = sets["train"]
    mu, sd = x.mean(0), x.std(0) + 1e-6
    xt = torch.from_numpy((x - mu) / sd)
    yc, ys = torch.from_numpy(y_colour), torch.from_numpy(y_shape)

    class Net(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.body = nn.Sequential(nn.Linear(N_FEATURES, hidden), nn.ReLU(), nn.Dropout(0.2),
                                      nn.Linear(hidden, hidden), nn.ReLU())
            self.colour, self.shape = nn.Linear(hidden, len(COLOURS)), nn.Linear(hidden, len(SHAPES))

        def forward(self, f):
            h = self.body(f)
            return self.colour(h), self.shape(h)

    net = Net()
    opt = torch.optim.AdamW(net.parameters(), lr=3e-3, weight_decay=1e-3)
    for _ in range(epochs):
        net.train()
        perm = torch.randperm(len(xt))
        for i in range(0, len(xt), 128):
            idx = perm[i: i + 128]
            c, s = net(xt[idx])
            loss = F.binary_cross_entropy_with_logits(c, yc[idx]) + F.cross_entropy(s, ys[idx], label_smoothing=0.05)
            opt.zero_grad()
            loss.backward()
            opt.step()
    net.eval()
    with torch.no_grad():  # fold (x - mu) / sd into the first layer
        first = net.body[0]
        first.bias -= first.weight @ torch.from_numpy(mu / sd)
        first.weight /= torch.from_numpy(sd)[None, :]

    cnn = AppearanceModel(appearance) if appearance and Path(appearance).is_file() else None
    metrics: dict = {}
    for name, (fx, fc, fs, imgs) in sets.items():
        with torch.no_grad():
            c, s = net(torch.from_numpy(fx))
        pc, ps = torch.sigmoid(c).numpy(), torch.softmax(s, 1).numpy()
        metrics[name] = evaluate(pc, ps, fc, fs)
        if cnn is not None:
            crops = [crop(im, _box_in(im)) for im in imgs]
            apps = [a for i in range(0, len(crops), 256) for a in cnn(crops[i: i + 256])]
            merged = [merge(a, dict(zip(COLOURS, map(float, ci))), dict(zip(SHAPES, map(float, si))))
                      for a, ci, si in zip(apps, pc, ps)]
            table = lambda rows, key, names: np.array([[getattr(r, key)[n] for n in names] for r in rows])  # noqa: E731
            metrics[name]["cnn_alone"] = evaluate(table(apps, "colour", COLOURS), table(apps, "shape", SHAPES), fc, fs)
            metrics[name]["served"] = evaluate(table(merged, "colour", COLOURS), table(merged, "shape", SHAPES), fc, fs)
    metrics.update(train_seconds=round(time.time() - t0), epochs=epochs, views=views, hidden=hidden, room=room)
    out.parent.mkdir(parents=True, exist_ok=True)
    torch.onnx.export(net, torch.zeros(1, N_FEATURES), str(out), input_names=["features"], output_names=list(OUTPUTS),
                      dynamic_axes={"features": {0: "batch"}, **{o: {0: "batch"} for o in OUTPUTS}}, opset_version=17,
                      dynamo=False)
    out.with_suffix(".metrics.json").write_text(json.dumps(metrics, indent=1))
    return metrics
