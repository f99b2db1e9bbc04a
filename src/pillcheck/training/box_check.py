"""Box check training (torch, `[train]` extra): the served detector's boxes on the detector's own training scenes,
labelled by their truth, teach a small CNN which boxes are whole pills.

Samples are what serving will show the check: every box the served detector (without the check) draws at
``HARVEST_CONF`` on the scenes of ``pillcheck train detector`` folders and on photos at the app's working size
(``SERVED_SCENES``; YOLO format, training products only), crops and features from ``box_check.inputs``. A box
matching a truth at IoU >= POSITIVE is a pill, one under NEGATIVE with every truth is not (a logo, a letter, a part
of a pill, a clump), those between are left out. Repeats of one real
photo (``--real-repeat``: pushin_1_..., pushin_2_...; the same photo in another folder) count once, and a heap
gives at most ``per_heap`` boxes (its pills are alike). One photo in about seven, by name, is held back to report
on.
"""

from __future__ import annotations

import json
import re
import sys
import time
import zlib
from pathlib import Path

import numpy as np

from pillcheck import images, metrics
from pillcheck.inference import models
from pillcheck.inference.box_check import CONTEXTS, N_FEATURES, SIDE, inputs
from pillcheck.training.scenes import read_yolo

HARVEST_CONF, POSITIVE, NEGATIVE = 0.2, 0.5, 0.3
# Photos at the app's working size (1600x1200) of the training products, drawn like the held-back sets
# (``build_real_world_sets(training=True)``): the scene folders' are 640x480, where print and logos are larger
SERVED_SCENES = {"printed": 1200, "official": 700, "large": 150, "closeups_synthetic": 150}
REPEAT = re.compile(r"^pushin_[1-9]\d*_")  # the second and later copies of a real photo


def _photos(folders: list[Path], heaps: int) -> list[Path]:
    """The folders' scene images, each real photo once (folders built from one set of photos share their names; a
    synthetic scene's name is only its number) and at most ``heaps`` heap scenes per folder."""
    seen, out = set(), []
    for folder in folders:
        n_heaps = 0
        for p in sorted((folder / "images").glob("*")):
            if REPEAT.match(p.name) or p.name in seen:
                continue
            if p.name.startswith("heap"):
                n_heaps += 1
                if n_heaps > heaps:
                    continue
            if p.name.startswith("pushin_"):
                seen.add(p.name)
            out.append(p)
    return out


def harvest(folders: list[Path], *, heaps: int = 250, per_heap: int = 40, seed: int = 0) -> dict[str, np.ndarray]:
    """Crops, features, labels (1 pill, 0 not) and photo names of the served detector's boxes on ``folders``."""
    det = models.detector(check=False)
    rng = np.random.default_rng(seed)
    out: dict[str, list] = {"crops": [], "features": [], "label": [], "photo": []}
    photos = _photos(folders, heaps)
    for i, p in enumerate(photos):
        photo = images.decode(p, min_side=images.WORKING_SIDE)
        d = det(photo.rgb, HARVEST_CONF)
        truth = read_yolo(p.parent.parent / "labels" / f"{p.stem}.txt", *photo.size) / photo.scale
        iou = metrics.iou_matrix(d.xyxy, truth).max(1) if len(truth) and len(d) else np.zeros(len(d))
        label = np.where(iou >= POSITIVE, 1, np.where(iou < NEGATIVE, 0, -1))
        idx = np.flatnonzero(label >= 0)
        if p.name.startswith("heap") and len(idx) > per_heap:
            idx = np.sort(rng.choice(idx, per_heap, replace=False))
        crops, feats = inputs(photo.rgb, d.xyxy[idx], d.confidence[idx])
        out["crops"].append(crops)
        out["features"].append(feats)
        out["label"].append(label[idx])
        out["photo"] += [p.name] * len(idx)
        if i % 200 == 0:
            print(f"harvest: {i} / {len(photos)} photos, {sum(map(len, out['label']))} boxes", file=sys.stderr,
                  flush=True)
    return {"crops": np.concatenate(out["crops"]), "features": np.concatenate(out["features"]),
            "label": np.concatenate(out["label"]).astype(np.float32), "photo": np.array(out["photo"])}


def held_back(photo_names: np.ndarray) -> np.ndarray:
    """One photo in about seven, by a hash of its name (a real photo's repeats would go together)."""
    return np.array([zlib.crc32(n.encode()) % 100 < 15 for n in photo_names])


def train(folders: list[Path], out: Path, *, heaps: int = 250, epochs: int = 10, seed: int = 0, threads: int = 2,
          samples: Path | None = None) -> dict:
    """Harvest (or load ``samples``, an .npz of an earlier harvest; written there when absent), train, export ONNX to
    ``out`` and its metrics beside it."""
    import torch
    import torch.nn as nn

    torch.manual_seed(seed)
    torch.set_num_threads(threads)
    t0 = time.time()
    if samples and samples.is_file():
        data = dict(np.load(samples))
    else:
        data = harvest(folders, heaps=heaps, seed=seed)
        if samples:
            np.savez(samples, **data)
    x, f, y = torch.from_numpy(data["crops"]), torch.from_numpy(data["features"]), data["label"]
    val = held_back(data["photo"])
    tr, va = np.flatnonzero(~val), np.flatnonzero(val)
    print(f"box check: {len(tr)} training boxes ({y[tr].mean():.2f} pills), {len(va)} held back "
          f"({time.time() - t0:.0f} s)", file=sys.stderr, flush=True)

    def block(i: int, o: int) -> nn.Module:
        return nn.Sequential(nn.Conv2d(i, o, 3, 2, 1, bias=False), nn.BatchNorm2d(o), nn.ReLU(),
                             nn.Conv2d(o, o, 3, 1, 1, bias=False), nn.BatchNorm2d(o), nn.ReLU())

    class Net(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.body = nn.Sequential(block(3 * len(CONTEXTS), 24), block(24, 48), block(48, 96), block(96, 128),
                                      nn.AdaptiveAvgPool2d(1), nn.Flatten())
            self.head = nn.Sequential(nn.Linear(128 + N_FEATURES, 64), nn.ReLU(), nn.Linear(64, 1))

        def forward(self, crops, feats):  # crops as served: float 0-255
            return self.head(torch.cat([self.body(crops / 255.0 - 0.5), feats], 1))[:, 0]

    def augmented(b):  # flips, quarter turns (both contexts alike: they share a centre), gain and offset per colour
        if torch.rand(1) < 0.5:
            b = b.flip(3)
        if torch.rand(1) < 0.5:
            b = b.flip(2)
        b = torch.rot90(b, int(torch.randint(4, (1,))), (2, 3))
        gain = torch.empty(len(b), 3, 1, 1).uniform_(0.75, 1.25).repeat(1, len(CONTEXTS), 1, 1)
        return (b * gain + torch.empty(len(b), 1, 1, 1).uniform_(-25, 25)).clamp(0, 255)

    net = Net()
    yt = torch.from_numpy(y)
    loss_fn = nn.BCEWithLogitsLoss(pos_weight=torch.tensor((1 - y[tr].mean()) / y[tr].mean()))
    opt = torch.optim.AdamW(net.parameters(), 2e-3, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, 3e-3, total_steps=epochs * (len(tr) // 128 + 1))
    for epoch in range(epochs):
        net.train()
        perm = torch.from_numpy(np.random.default_rng(seed * 1000 + epoch).permutation(tr))
        for i in range(0, len(tr), 128):
            j = perm[i:i + 128]
            feats = f[j].clone()
            feats[:, 2] += torch.randn(len(j)) * 0.03  # the score as another pass would give it
            loss = loss_fn(net(augmented(x[j].float()), feats), yt[j])
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
        print(f"box check: epoch {epoch + 1} / {epochs}, loss {loss.item():.3f} ({time.time() - t0:.0f} s)",
              file=sys.stderr, flush=True)
    net.eval()
    with torch.no_grad():
        p = torch.cat([torch.sigmoid(net(x[va[i:i + 512]].float(), f[va[i:i + 512]]))
                       for i in range(0, len(va), 512)]).numpy()
    yv = y[va]
    result = {"train_boxes": len(tr), "held_back_boxes": len(va), "held_back_pills": int(yv.sum()),
              "train_seconds": round(time.time() - t0), "epochs": epochs, "heaps": heaps,
              "held_back": {str(t): {"not_pills_dropped": round(float((p[yv == 0] < t).mean()), 4),
                                     "pills_dropped": round(float((p[yv == 1] < t).mean()), 4)}
                            for t in (0.02, 0.05, 0.1, 0.2)}}
    out.parent.mkdir(parents=True, exist_ok=True)
    torch.onnx.export(net, (torch.zeros(2, 3 * len(CONTEXTS), SIDE, SIDE), torch.zeros(2, N_FEATURES)), str(out),
                      input_names=["crops", "features"], output_names=["logit"],
                      dynamic_axes={"crops": {0: "n"}, "features": {0: "n"}, "logit": {0: "n"}}, opset_version=17,
                      dynamo=False)
    out.with_suffix(".metrics.json").write_text(json.dumps(result, indent=1))
    return result
