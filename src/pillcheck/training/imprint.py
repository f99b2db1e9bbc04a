"""Imprint recognizer training (torch, `[train]` extra): a small CRNN that reads the catalog's imprint alphabet.

A general OCR model has never seen a debossed pill; ours sees nothing else. Each sample is made the way the
pipeline will later see a pill: a real face cut from an official photo (upright there, so its text direction
is known) or a pill drawn from its catalog record, turned by a known angle, pasted on a background with
phone-like light, blur, noise and JPEG, boxed with detector-like jitter, then rectified by the reader's own
``variants``. The band whose direction matches the known angle is the training image, the imprint of that face
(normalised, unfolded) its label. Products are split by ``splits.is_held_out``: held-out products only
evaluate. The ONNX model speaks PP-OCR's interface (input NCHW from ``to_batch``, output softmax over blank +
characters + space, characters in the ``character`` metadata), so ``ImprintReader`` loads it unchanged.

``init``: instead of the CRNN from scratch, fine-tune a pretrained PP-OCR recognizer (ONNX) on the same bands:
its output layer is cut to blank + the alphabet + space (the rows of the upper-case letters and digits, so it
starts as the same model with the other characters dropped, as ``Recognizer`` reads it) and the trained weights
go back into its own graph (``onnx_torch``).
"""

from __future__ import annotations

import csv
import json
import sys
import time
from pathlib import Path

import cv2
import numpy as np

from pillcheck.catalog.normalize import normalize_imprint
from pillcheck.inference.imprint import ALPHABET, HEIGHT, MAX_WIDTH, greedy, to_batch, variants
from pillcheck.pipeline import imprint_crop
from pillcheck.training.identify_set import place
from pillcheck.training.render import render, spec_from_record
from pillcheck.training.splits import is_held_out

ANGLE_TOLERANCE = 25.0  # degrees between a band's direction and the true text direction to count as upright


def face_label(rec: dict, side: str) -> str | None:
    """What one face says, in the reader's alphabet ('' for a face without text); None when it holds characters
    the alphabet lacks (Hangul) or the catalog does not say. The catalog puts both halves of a capsule and
    one-sided tablets under ``print_front``; an absent ``print_back`` is a blank back."""
    raw = rec.get("print_back") if side == "back" else rec.get("print_front")
    if side == "front" and raw is None:
        return None
    text = normalize_imprint(raw, fold=False)
    return text if all(c in ALPHABET for c in text) else None


def upright_band(sprite: np.ndarray, rng: np.random.Generator) -> np.ndarray | None:
    """One training band from an upright RGBA sprite: turned, pasted, degraded, boxed with jitter, rectified;
    None when no band runs along the text (the reader would not read it either)."""
    angle = rng.uniform(0, 360)
    img, box = place(sprite, rng, rng.uniform(45, 300), angle)
    b = np.array(box, np.float32)
    size = b[2:] - b[:2]
    b += rng.normal(0, 0.04, 4).astype(np.float32) * np.r_[size, size]
    crop, _ = imprint_crop(img, b, margin=rng.uniform(0.0, 0.15))
    if min(crop.shape[:2]) < 8:
        return None
    bands = variants(crop)
    # a counter-clockwise turn by `angle` sends the text direction (1, 0) to angle -`angle` in image coordinates
    gaps = [abs((a + angle + 180) % 360 - 180) for a in bands.angles]
    k = int(np.argmin(gaps))
    return bands.singles[k] if gaps[k] <= ANGLE_TOLERANCE else None


def build_samples(cut_dir: Path, records: dict[str, dict], held_out: bool, views: int, rendered: int,
                  rng: np.random.Generator) -> tuple[list[np.ndarray], list[str], list[str]]:
    """(bands, labels, kinds) for one split: real faces x views, then ``rendered`` drawn faces."""
    with open(cut_dir / "index.csv", encoding="utf-8") as f:
        cuts = [r for r in csv.DictReader(f) if (r["held_out"] == "1") == held_out and r["item_seq"] in records]
    bands, labels, kinds = [], [], []
    for r in cuts:
        label = face_label(records[r["item_seq"]], r["side"])
        if label is None:
            continue
        rgba = cv2.cvtColor(cv2.imread(str(cut_dir / r["file"]), cv2.IMREAD_UNCHANGED), cv2.COLOR_BGRA2RGBA)
        for _ in range(views):
            band = upright_band(rgba, rng)
            if band is not None:
                bands.append(band)
                labels.append(label)
                kinds.append("photo")
    pool = sorted(seq for seq in records if is_held_out(seq) == held_out)
    for i in rng.choice(len(pool), size=min(rendered, len(pool)), replace=False):
        rec = records[pool[int(i)]]
        side = "front" if rng.random() < 0.6 else "back"
        spec = spec_from_record(rec, rng, side)
        sprite = render(spec, 16.0, rng)
        band = upright_band(sprite, rng)
        if band is not None:  # the renderer draws the ASCII part of the imprint, at most 8 characters
            bands.append(band)
            labels.append("".join(c for c in normalize_imprint(spec.imprint, fold=False) if c.isascii())[:8])
            kinds.append("rendered")
    print(f"{'held-out' if held_out else 'train'} bands: {len(bands)} ({kinds.count('photo')} photo)",
          file=sys.stderr, flush=True)
    return bands, labels, kinds


def _net():
    import torch.nn as nn

    def conv(cin: int, cout: int, pool: tuple[int, int] | None) -> list[nn.Module]:
        layers: list[nn.Module] = [nn.Conv2d(cin, cout, 3, 1, 1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True)]
        return layers + ([nn.MaxPool2d(pool)] if pool else [])

    class CRNN(nn.Module):
        """48 x W band -> W/4 steps of softmax over blank + ALPHABET + space (PP-OCR's layout)."""

        def __init__(self) -> None:
            super().__init__()
            self.cnn = nn.Sequential(*conv(3, 24, (2, 2)), *conv(24, 48, (2, 2)), *conv(48, 64, None),
                                     *conv(64, 64, (2, 1)), *conv(64, 96, (2, 1)), *conv(96, 128, (3, 1)))
            self.rnn = nn.LSTM(128, 96, batch_first=True, bidirectional=True)
            self.fc = nn.Linear(192, len(ALPHABET) + 2)

        def logits(self, x):
            f = self.cnn(x).squeeze(2).transpose(1, 2)  # N x T x 128
            return self.fc(self.rnn(f)[0])

        def forward(self, x):
            return self.logits(x).softmax(-1)

    return CRNN()


def _pretrained(path: Path):
    """A PP-OCR recognizer as a trainable module whose output layer covers blank + ALPHABET + space only."""
    import onnx

    from pillcheck.training.onnx_torch import OnnxModule

    model = onnx.load(str(path))
    meta = {p.key: p.value for p in model.metadata_props}
    if "character" not in meta:
        raise ValueError(f"{path}: no character list in the ONNX metadata")
    chars = ["<blank>", *meta["character"].splitlines(), " "]
    keep = [0, *(chars.index(c) for c in ALPHABET), len(chars) - 1]
    matmul = next(n for n in reversed(model.graph.node) if n.op_type == "MatMul")
    add = next(n for n in model.graph.node if n.op_type == "Add" and matmul.output[0] in n.input)
    weight, bias = matmul.input[1], next(i for i in add.input if i != matmul.output[0])
    module = OnnxModule(model)
    module.replace(weight, module.parameter(weight)[:, keep])
    module.replace(bias, module.parameter(bias)[keep])
    return module


def _batches(bands: list[np.ndarray], labels: list[str], batch: int, rng: np.random.Generator):
    """Batches of similar width (less padding to compute), in random order."""
    order = np.argsort([b.shape[1] + rng.uniform(0, 24) for b in bands])
    groups = [order[i: i + batch] for i in range(0, len(order), batch)]
    for j in rng.permutation(len(groups)):
        idx = groups[j]
        yield to_batch([bands[i] for i in idx]), [labels[i] for i in idx]


def _targets(labels: list[str]):
    import torch

    flat = [ALPHABET.index(c) + 1 for t in labels for c in t]
    return torch.tensor(flat, dtype=torch.long), torch.tensor([len(t) for t in labels], dtype=torch.long)


def evaluate(model, bands: list[np.ndarray], labels: list[str], kinds: list[str]) -> dict:
    """Exact greedy reads per kind of face (photo / rendered), and over faces with text only."""
    import torch

    model.eval()
    hits: dict[str, list[bool]] = {}
    with torch.no_grad():
        for i in range(0, len(bands), 64):
            probs = model(torch.from_numpy(to_batch(bands[i: i + 64]))).numpy()
            for p, label, kind in zip(probs, labels[i: i + 64], kinds[i: i + 64]):
                text = greedy(np.log(np.maximum(p[:, : len(ALPHABET) + 1], 1e-12)))[0]
                hits.setdefault(kind, []).append(text == label)
                if label:
                    hits.setdefault(f"{kind}_with_text", []).append(text == label)
    return {f"exact_{k}": round(float(np.mean(v)), 4) for k, v in sorted(hits.items())} | {
        "faces": {k: len(v) for k, v in sorted(hits.items())}}


def train(cut_dir: Path, records: dict[str, dict], out: Path, *, epochs: int = 10, views: int = 5,
          rendered: int = 10000, seed: int = 0, threads: int = 1, batch: int = 48, init: Path | None = None,
          lr: float | None = None) -> dict:
    """Train (or, with ``init``, fine-tune) and export to ``out``; the weights after each epoch go to
    ``out``.pt. ``lr``: peak learning rate (default 2e-3 from scratch, 3e-4 fine-tuning)."""
    import torch
    import torch.nn.functional as F

    torch.manual_seed(seed)
    torch.set_num_threads(threads)
    rng = np.random.default_rng(seed)
    t0 = time.time()
    train_set = build_samples(cut_dir, records, False, views, rendered, rng)
    test_set = build_samples(cut_dir, records, True, 1, rendered // 10, rng)
    print(f"samples built in {time.time() - t0:.0f} s", file=sys.stderr, flush=True)
    model = _net() if init is None else _pretrained(init)
    if init is not None:
        print(f"{init.name} before fine-tuning: held-out {evaluate(model, *test_set)}", file=sys.stderr, flush=True)
    lr = lr or (2e-3 if init is None else 3e-4)
    steps = epochs * -(-len(train_set[0]) // batch)
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=steps, pct_start=0.1)
    for epoch in range(epochs):
        model.train()
        total, n = 0.0, 0
        for x, labels in _batches(train_set[0], train_set[1], batch, rng):
            logp = F.log_softmax(model.logits(torch.from_numpy(x)), -1).transpose(0, 1)  # T x N x C
            targets, lengths = _targets(labels)
            sizes = torch.full((len(labels),), logp.shape[0], dtype=torch.long)
            loss = F.ctc_loss(logp, targets, sizes, lengths, blank=0, zero_infinity=True)
            opt.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 5.0)
            opt.step()
            sched.step()
            total += loss.item() * len(labels)
            n += len(labels)
        print(f"epoch {epoch + 1}/{epochs} loss {total / n:.3f} held-out {evaluate(model, *test_set)} "
              f"({time.time() - t0:.0f} s)", file=sys.stderr, flush=True)
        torch.save(model.state_dict(), out.with_suffix(".pt"))
        export(model, out)  # usable after every epoch: a run cut short still leaves a model
    metrics = {"held_out_products": evaluate(model, *test_set), "train_bands": len(train_set[0]),
               "train_seconds": round(time.time() - t0), "epochs": epochs,
               **({"init": init.name, "lr": lr} if init is not None else {})}
    out.with_suffix(".metrics.json").write_text(json.dumps(metrics, indent=1))
    return metrics


def export(model, out: Path) -> None:
    """ONNX with dynamic batch and width; the character list goes into the metadata, as PP-OCR's models do.
    A fine-tuned graph is written back as itself, with its new weights."""
    import onnx
    import torch

    from pillcheck.training.onnx_torch import OnnxModule

    model.eval()
    out.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(model, OnnxModule):
        m = model.to_onnx(classes=len(ALPHABET) + 2)
        del m.metadata_props[:]
    else:
        torch.onnx.export(model, torch.zeros(1, 3, HEIGHT, MAX_WIDTH), str(out), input_names=["x"],
                          output_names=["probs"], dynamic_axes={"x": {0: "batch", 3: "width"},
                                                                "probs": {0: "batch", 1: "steps"}},
                          opset_version=17, dynamo=False)
        m = onnx.load(str(out))
    entry = m.metadata_props.add()
    entry.key, entry.value = "character", "\n".join(ALPHABET)
    onnx.save(m, str(out))
