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

``hangul``: the alphabet grows by the Hangul syllables of the catalog's imprints (691 products, mostly brand names
printed on soft capsules; PP-OCR has none). Their output rows start new; they learn from the real Hangul faces
(each seen 3x as often as a Latin one) and from ``hangul`` extra drawn faces, half with the product's own imprint,
half with random syllables so that rare ones are seen too, drawn in a Korean font (``render.hangul_fonts``).
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
from pillcheck.inference.imprint import ALPHABET, HEIGHT, MAX_WIDTH, Recognizer, greedy, is_hangul, to_batch, variants
from pillcheck.pipeline import imprint_crop
from pillcheck.training.identify_set import place
from pillcheck.training.render import drawn_text, hangul_fonts, render, spec_from_record
from pillcheck.training.splits import is_held_out

ANGLE_TOLERANCE = 25.0  # degrees between a band's direction and the true text direction to count as upright


def face_label(rec: dict, side: str, alphabet: str = ALPHABET) -> str | None:
    """What one face says, in the reader's alphabet ('' for a face without text); None when it holds characters
    the alphabet lacks (Hangul) or the catalog does not say. The catalog puts both halves of a capsule and
    one-sided tablets under ``print_front``; an absent ``print_back`` is a blank back."""
    raw = rec.get("print_back") if side == "back" else rec.get("print_front")
    if side == "front" and raw is None:
        return None
    text = normalize_imprint(raw, fold=False)
    return text if all(c in alphabet for c in text) else None


def catalog_syllables(records: dict[str, dict]) -> str:
    """The Hangul syllables of the catalog's imprints (normalised), in code-point order."""
    return "".join(sorted({c for rec in records.values() for side in ("print_front", "print_back")
                           for c in normalize_imprint(rec.get(side), fold=False) if is_hangul(c)}))


def _hangul_face(rec: dict) -> str | None:
    """The face of a record whose imprint has Hangul, None without one."""
    return next((side for side in ("front", "back")
                 if any(is_hangul(c) for c in normalize_imprint(rec.get(f"print_{side}"), fold=False))), None)


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
                  rng: np.random.Generator, alphabet: str = ALPHABET, hangul: int = 0
                  ) -> tuple[list[np.ndarray], list[str], list[str]]:
    """(bands, labels, kinds) for one split: real faces x views (x 3 with Hangul), then ``rendered`` drawn faces,
    then ``hangul`` drawn faces with Hangul imprints (only when ``alphabet`` has Hangul)."""
    with open(cut_dir / "index.csv", encoding="utf-8") as f:
        cuts = [r for r in csv.DictReader(f) if (r["held_out"] == "1") == held_out and r["item_seq"] in records]
    fonts = hangul_fonts() if alphabet != ALPHABET else None
    bands, labels, kinds = [], [], []

    def add(sprite: np.ndarray, label: str, kind: str) -> None:
        band = upright_band(sprite, rng)
        if band is not None:
            bands.append(band)
            labels.append(label)
            kinds.append(kind)

    for r in cuts:
        label = face_label(records[r["item_seq"]], r["side"], alphabet)
        if label is None:
            continue
        rgba = cv2.cvtColor(cv2.imread(str(cut_dir / r["file"]), cv2.IMREAD_UNCHANGED), cv2.COLOR_BGRA2RGBA)
        for _ in range(views * (3 if any(is_hangul(c) for c in label) else 1)):
            add(rgba, label, "photo")
    pool = sorted(seq for seq in records if is_held_out(seq) == held_out)
    for i in rng.choice(len(pool), size=min(rendered, len(pool)), replace=False):
        rec = records[pool[int(i)]]
        side = "front" if rng.random() < 0.6 else "back"
        spec = spec_from_record(rec, rng, side)
        # the alphabet holds every catalog syllable, so whatever is drawn can be spelt
        add(render(spec, 16.0, rng, fonts), drawn_text(spec.imprint, fonts is not None), "rendered")
    syllables = [c for c in alphabet if is_hangul(c)]
    faces = {seq: side for seq in pool if (side := _hangul_face(records[seq]))} if syllables else {}
    pool = sorted(faces)
    for _ in range(hangul if pool else 0):
        seq = pool[int(rng.integers(len(pool)))]
        spec = spec_from_record(records[seq], rng, faces[seq])
        if rng.random() < 0.5:  # random syllables (a capsule's two halves as two words)
            words = [rng.choice(syllables, int(rng.integers(1, 5))) for _ in range(1 + (spec.capsule and rng.random() < 0.5))]
            spec.imprint = " ".join("".join(w) for w in words)
        add(render(spec, 16.0, rng, fonts), drawn_text(spec.imprint, True), "hangul")
    print(f"{'held-out' if held_out else 'train'} bands: {len(bands)} ({kinds.count('photo')} photo, "
          f"{kinds.count('hangul')} drawn Hangul)", file=sys.stderr, flush=True)
    return bands, labels, kinds


def _net(alphabet: str = ALPHABET):
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
            self.fc = nn.Linear(192, len(alphabet) + 2)

        def logits(self, x):
            f = self.cnn(x).squeeze(2).transpose(1, 2)  # N x T x 128
            return self.fc(self.rnn(f)[0])

        def forward(self, x):
            return self.logits(x).softmax(-1)

    return CRNN()


def _pretrained(path: Path, alphabet: str = ALPHABET):
    """A PP-OCR recognizer as a trainable module whose output layer covers blank + ``alphabet`` + space only.
    Characters the model lacks get new rows: small random weights and a bias below every known character's, so
    the model starts out reading what it read before."""
    import onnx
    import torch

    from pillcheck.training.onnx_torch import OnnxModule

    model = onnx.load(str(path))
    meta = {p.key: p.value for p in model.metadata_props}
    if "character" not in meta:
        raise ValueError(f"{path}: no character list in the ONNX metadata")
    chars = ["<blank>", *meta["character"].splitlines(), " "]
    index = {c: i for i, c in enumerate(chars)}
    keep = [0, *(index.get(c, -1) for c in alphabet), len(chars) - 1]
    if -1 in keep[1:len(ALPHABET) + 1]:
        raise ValueError(f"{path}: the model cannot read every character of {ALPHABET}")
    matmul = next(n for n in reversed(model.graph.node) if n.op_type == "MatMul")
    add = next(n for n in model.graph.node if n.op_type == "Add" and matmul.output[0] in n.input)
    weight, bias = matmul.input[1], next(i for i in add.input if i != matmul.output[0])
    module = OnnxModule(model)
    w, b = module.parameter(weight).detach(), module.parameter(bias).detach()
    new = [j for j, k in enumerate(keep) if k < 0]
    cols = torch.tensor([max(k, 0) for k in keep])
    w2, b2 = w[:, cols].clone(), b[cols].clone()
    if new:
        known = [k for k in keep[1:-1] if k >= 0]
        gen = torch.Generator().manual_seed(0)
        w2[:, new] = torch.randn(w.shape[0], len(new), generator=gen) * 0.5 * float(w[:, known].std())
        b2[new] = float(b[known].min()) - 1.0
    module.replace(weight, w2)
    module.replace(bias, b2)
    return module


def _batches(bands: list[np.ndarray], labels: list[str], batch: int, rng: np.random.Generator):
    """Batches of similar width (less padding to compute), in random order."""
    order = np.argsort([b.shape[1] + rng.uniform(0, 24) for b in bands])
    groups = [order[i: i + batch] for i in range(0, len(order), batch)]
    for j in rng.permutation(len(groups)):
        idx = groups[j]
        yield to_batch([bands[i] for i in idx]), [labels[i] for i in idx]


def _targets(labels: list[str], alphabet: str = ALPHABET):
    import torch

    index = {c: i + 1 for i, c in enumerate(alphabet)}
    flat = [index[c] for t in labels for c in t]
    return torch.tensor(flat, dtype=torch.long), torch.tensor([len(t) for t in labels], dtype=torch.long)


def evaluate(model, bands: list[np.ndarray], labels: list[str], kinds: list[str], alphabet: str = ALPHABET) -> dict:
    """Exact greedy reads per kind of face (photo / rendered / hangul), over faces with text only, and over
    faces with Hangul."""
    import torch

    model.eval()
    hits: dict[str, list[bool]] = {}
    with torch.no_grad():
        for i in range(0, len(bands), 64):
            probs = model(torch.from_numpy(to_batch(bands[i: i + 64]))).numpy()
            for p, label, kind in zip(probs, labels[i: i + 64], kinds[i: i + 64]):
                text = greedy(np.log(np.maximum(p[:, : len(alphabet) + 1], 1e-12)), alphabet)[0]
                hits.setdefault(kind, []).append(text == label)
                if label:
                    hits.setdefault(f"{kind}_with_text", []).append(text == label)
                if any(is_hangul(c) for c in label) and kind != "hangul":
                    hits.setdefault(f"{kind}_with_hangul", []).append(text == label)
    return {f"exact_{k}": round(float(np.mean(v)), 4) for k, v in sorted(hits.items())} | {
        "faces": {k: len(v) for k, v in sorted(hits.items())}}


def train(cut_dir: Path, records: dict[str, dict], out: Path, *, epochs: int = 10, views: int = 5,
          rendered: int = 10000, seed: int = 0, threads: int = 1, batch: int = 48, init: Path | None = None,
          lr: float | None = None, hangul: int = 0) -> dict:
    """Train (or, with ``init``, fine-tune) and export to ``out``; the weights after each epoch go to
    ``out``.pt. ``lr``: peak learning rate (default 2e-3 from scratch, 3e-4 fine-tuning). ``hangul``: drawn
    Hangul faces; with any, or an ``init`` that reads Hangul, the alphabet has the catalog's syllables."""
    import torch
    import torch.nn.functional as F

    torch.manual_seed(seed)
    torch.set_num_threads(threads)
    rng = np.random.default_rng(seed)
    t0 = time.time()
    known = Recognizer(init, threads=1).alphabet[len(ALPHABET):] if init is not None else ""
    syllables = "".join(sorted(set(known) | set(catalog_syllables(records)))) if hangul or known else ""
    alphabet = ALPHABET + syllables
    train_set = build_samples(cut_dir, records, False, views, rendered, rng, alphabet, hangul)
    test_set = build_samples(cut_dir, records, True, 1, rendered // 10, rng, alphabet, hangul // 10)
    print(f"samples built in {time.time() - t0:.0f} s", file=sys.stderr, flush=True)
    model = _net(alphabet) if init is None else _pretrained(init, alphabet)
    if init is not None:
        print(f"{init.name} before fine-tuning: held-out {evaluate(model, *test_set, alphabet)}", file=sys.stderr,
              flush=True)
    lr = lr or (2e-3 if init is None else 3e-4)
    steps = epochs * -(-len(train_set[0]) // batch)
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=steps, pct_start=0.1)
    for epoch in range(epochs):
        model.train()
        total, n = 0.0, 0
        for x, labels in _batches(train_set[0], train_set[1], batch, rng):
            logp = F.log_softmax(model.logits(torch.from_numpy(x)), -1).transpose(0, 1)  # T x N x C
            targets, lengths = _targets(labels, alphabet)
            sizes = torch.full((len(labels),), logp.shape[0], dtype=torch.long)
            loss = F.ctc_loss(logp, targets, sizes, lengths, blank=0, zero_infinity=True)
            opt.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 5.0)
            opt.step()
            sched.step()
            total += loss.item() * len(labels)
            n += len(labels)
        print(f"epoch {epoch + 1}/{epochs} loss {total / n:.3f} held-out {evaluate(model, *test_set, alphabet)} "
              f"({time.time() - t0:.0f} s)", file=sys.stderr, flush=True)
        out.parent.mkdir(parents=True, exist_ok=True)
        torch.save(model.state_dict(), out.with_suffix(".pt"))
        export(model, out, alphabet)  # usable after every epoch: a run cut short still leaves a model
    metrics = {"held_out_products": evaluate(model, *test_set, alphabet), "train_bands": len(train_set[0]),
               "train_seconds": round(time.time() - t0), "epochs": epochs, "alphabet": len(alphabet),
               **({"init": init.name, "lr": lr} if init is not None else {}), **({"hangul": hangul} if hangul else {})}
    out.with_suffix(".metrics.json").write_text(json.dumps(metrics, indent=1))
    return metrics


def export(model, out: Path, alphabet: str = ALPHABET) -> None:
    """ONNX with dynamic batch and width; the character list goes into the metadata, as PP-OCR's models do.
    A fine-tuned graph is written back as itself, with its new weights."""
    import onnx
    import torch

    from pillcheck.training.onnx_torch import OnnxModule

    model.eval()
    out.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(model, OnnxModule):
        m = model.to_onnx(classes=len(alphabet) + 2)
        del m.metadata_props[:]
    else:
        torch.onnx.export(model, torch.zeros(1, 3, HEIGHT, MAX_WIDTH), str(out), input_names=["x"],
                          output_names=["probs"], dynamic_axes={"x": {0: "batch", 3: "width"},
                                                                "probs": {0: "batch", 1: "steps"}},
                          opset_version=17, dynamo=False)
        m = onnx.load(str(out))
    entry = m.metadata_props.add()
    entry.key, entry.value = "character", "\n".join(alphabet)
    onnx.save(m, str(out))
