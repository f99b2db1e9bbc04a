"""Detector training end to end: dataset (synthetic + real cut-outs + real phone photos) -> ultralytics -> ONNX.

Only this module (and the `[train]` extra) imports torch/ultralytics, and only inside ``train``/``export``.
Run it as ``pillcheck train detector`` (see models/MODEL_CARD.md for the exact command of the shipped model).
"""

from __future__ import annotations

import csv
import json
import os
import shutil
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import cv2
import numpy as np

from pillcheck.training.cutouts import extract, half_face
from pillcheck.training.scenes import (
    PhotoBackgrounds,
    PillSource,
    closeup,
    compose,
    compose_heap,
    compose_spread,
    official_photo,
    printed_page,
    pushin_split,
    read_yolo,
    reference_photos,
    write_yolo,
)
from pillcheck.training.splits import is_held_out


@dataclass
class DatasetConfig:
    shared: Path
    db: Path
    out: Path
    synthetic: int = 1200
    synthetic_val: int = 150
    piles: int = 0  # extra training scenes that are piles of 10-30 touching pills
    spread: int = 0  # scenes with pills of any size, 1.5-90% of the short side (close-ups to trays)
    heaps: int = 0  # heaps of 20-150 pills of one product, up to 60% of each hidden
    printed: int = 0  # pill-free scenes of printed matter (text, rulers, logos, foil)
    closeups: int = 0  # close-ups cut from the real training photos
    official: int = 0  # official catalog photos of training products (two faces; ruler and logo are not pills)
    dense_test: int = 100
    pushin_repeat: int = 2
    real_fraction: float = 0.6
    seed: int = 0
    scenes_round: int = 0  # > 0: fresh training scenes (another random stream); validation and held-back unchanged
    size: tuple[int, int] = (640, 480)


def _progress(label: str, i: int, n: int) -> None:
    if i == n or i % max(1, n // 50) == 0:
        print(f"\r{label:<22} {i}/{n}", end="\n" if i == n else "", file=sys.stderr, flush=True)


def build_cutouts(shared: Path, cache: Path, db: Path) -> list[dict]:
    """Cut every reference photo once (cached as PNG + index.csv), scaled by the catalog's size in mm."""
    import duckdb

    index = cache / "index.csv"
    if index.exists():
        with open(index, encoding="utf-8") as f:
            return list(csv.DictReader(f))
    cache.mkdir(parents=True, exist_ok=True)
    with duckdb.connect(str(db), read_only=True) as con:
        sizes = {seq: (float(long or 0), float(short or 0)) for seq, long, short in
                 con.execute("SELECT item_seq, max(leng_long), max(leng_short) FROM appearance GROUP BY 1").fetchall()}
    rows = []
    photos = reference_photos(shared / "photos" / "catalog_reference")
    for i, (path, seq) in enumerate(photos, 1):
        long, short = sizes.get(seq, (0.0, 0.0))
        for k, cut in enumerate(extract(path)):
            if long and short and half_face(cut.rgba[..., 3], long, short):
                continue  # half a pill is not a pill to draw
            if long:
                cut.scale_to(long)
            name = f"{path.parent.parent.name}_{path.stem}_{k}.png"
            cv2.imwrite(str(cache / name), cv2.cvtColor(cut.rgba, cv2.COLOR_RGBA2BGRA))
            rows.append({"file": name, "item_seq": seq, "side": cut.side, "px_per_mm": f"{cut.px_per_mm:.4f}",
                         "held_out": int(is_held_out(seq))})
        _progress("cutting reference", i, len(photos))
    with open(index, "w", newline="", encoding="utf-8") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    return rows


def _records(db: Path, held_out: bool) -> list[dict]:
    import duckdb

    with duckdb.connect(str(db), read_only=True) as con:
        cur = con.execute("SELECT * FROM appearance")
        cols = [d[0] for d in cur.description]
        rows = [dict(zip(cols, r)) for r in cur.fetchall()]
    return [r for r in rows if is_held_out(r["item_seq"]) == held_out]


def scene_rng(cfg: DatasetConfig, split: str, k: int, i: int) -> np.random.Generator:
    """The random stream of scene ``i`` of plan row ``k``: a further round redraws only training scenes, so a
    model trained on them is still measured on the same validation and held-back scenes."""
    fresh = split == "train" and cfg.scenes_round > 0
    return np.random.default_rng([cfg.seed, k, i, cfg.scenes_round] if fresh else [cfg.seed, k, i])


def _sources(cfg: DatasetConfig, cuts: list[dict], cut_dir: Path) -> tuple[PillSource, PillSource]:
    """Pills of the training products, and of the products held out of all training."""
    def load(rows):
        return [(cv2.cvtColor(cv2.imread(str(cut_dir / r["file"]), cv2.IMREAD_UNCHANGED), cv2.COLOR_BGRA2RGBA),
                 float(r["px_per_mm"])) for r in rows]

    return (PillSource(load([r for r in cuts if r["held_out"] == "0"]), _records(cfg.db, False)),
            PillSource(load([r for r in cuts if r["held_out"] == "1"]), _records(cfg.db, True)))


def _official(shared: Path, held_out: bool) -> list[Path]:
    return [p for p, seq in reference_photos(shared / "photos" / "catalog_reference") if is_held_out(seq) == held_out]


def _write(folder: Path, stem: str, scene) -> None:
    write_yolo(folder / "images" / f"{stem}.jpg", folder / "labels" / f"{stem}.txt", scene.image, scene.boxes)


def _photo_closeup(pushin: Path, photo: Path, rng: np.random.Generator, **kw):
    """A close-up cut from one labelled phone photo (real pixels around one pill)."""
    img = cv2.cvtColor(cv2.imread(str(photo)), cv2.COLOR_BGR2RGB)
    return closeup(img, read_yolo(pushin / "labels" / f"{photo.stem}.txt", img.shape[1], img.shape[0]), rng, **kw)


def build_dataset(cfg: DatasetConfig) -> Path:
    """Write the YOLO dataset; returns its data.yaml. Products held out (splits.py) only appear in `dense_test`."""
    out = cfg.out
    cuts = build_cutouts(cfg.shared, out.parent / "cutouts", cfg.db)
    train_src, test_src = _sources(cfg, cuts, out.parent / "cutouts")
    pushin = cfg.shared / "photos" / "pushin-pill"
    p_train, p_val = pushin_split(pushin)
    backgrounds = PhotoBackgrounds(p_train, pushin / "labels")
    for split in ("train", "val", "test_dense", "real_val"):
        (out / split / "images").mkdir(parents=True, exist_ok=True)
        (out / split / "labels").mkdir(parents=True, exist_ok=True)
    plan = [("train", "train", cfg.synthetic, train_src, None), ("val", "val", cfg.synthetic_val, train_src, None),
            ("test_dense", "test_dense", cfg.dense_test, test_src, "dense"),
            ("train", "pile", cfg.piles, train_src, "pile"),
            # added 2026-12-03: later rows, so the streams of the rows above are unchanged
            ("train", "spread", cfg.spread, train_src, "spread"), ("train", "heap", cfg.heaps, train_src, "heap"),
            ("train", "printed", cfg.printed, train_src, "printed"),
            ("train", "closeup", cfg.closeups, train_src, "closeup"),
            ("train", "official", cfg.official, train_src, "official")]
    official = _official(cfg.shared, held_out=False)
    for k, (split, stem, n, src, mode) in enumerate(plan):
        for i in range(n):
            rng = scene_rng(cfg, split, k, i)
            if mode == "spread":
                scene = compose_spread(src, rng, cfg.size, backgrounds, cfg.real_fraction)
            elif mode == "heap":
                scene = compose_heap(src, rng, cfg.size, backgrounds, cfg.real_fraction)
            elif mode == "printed":
                scene = printed_page(cfg.size, rng)
            elif mode == "closeup":
                scene = _photo_closeup(pushin, p_train[int(rng.integers(len(p_train)))], rng, long_side=(640, 900))
            elif mode == "official":
                scene = official_photo(official[int(rng.integers(len(official)))])
            else:
                scene = compose(src, rng, cfg.size, None if split == "test_dense" else backgrounds, cfg.real_fraction,
                                pile=mode == "pile")
            if mode == "dense":  # many pills
                for _ in range(20):
                    if len(scene.boxes) >= 10:
                        break
                    scene = compose(src, rng, cfg.size, None, cfg.real_fraction)
            if scene is not None:
                _write(out / split, f"{stem}_{i:05d}", scene)
            _progress(f"scenes {stem}", i + 1, n)
    for split, photos, repeat in (("train", p_train, cfg.pushin_repeat), ("real_val", p_val, 1)):
        for p in photos:
            img = cv2.imread(str(p))
            h, w = img.shape[:2]
            boxes = read_yolo(pushin / "labels" / f"{p.stem}.txt", w, h)
            for r in range(repeat):
                write_yolo(out / split / "images" / f"pushin_{r}_{p.stem}.jpg",
                           out / split / "labels" / f"pushin_{r}_{p.stem}.txt", cv2.cvtColor(img, cv2.COLOR_BGR2RGB), boxes)
    data = out / "data.yaml"
    data.write_text(f"path: {out}\ntrain: train/images\nval: val/images\nnames:\n  0: pill\n")
    (out / "config.json").write_text(json.dumps({**asdict(cfg), "shared": str(cfg.shared), "db": str(cfg.db),
                                                 "out": str(out)}, indent=1))
    return data


# The held-back sets that look like the photos people take (issue 22), each ROOT/<name>/{images,labels}:
# name -> what it holds. Products held out of all training, phone photos never trained on.
REAL_WORLD_SETS = {
    "closeups": "close-ups cut from the held-back real phone photos (one pill's neighbourhood, 15-60% of the "
                "frame, enlarged to 1-4 MP)",
    "closeups_synthetic": "1-4 pills of held-out products, each 7-80% of the short side, 1600x1200",
    "large": "3-4 large tablets (a 10 mm pill 27-47% of the short side, ~20-35% of the width), 1600x1200",
    "official": "official catalog photos of held-out products: exactly their two faces (no ruler or logo box)",
    "heaps": "heaps of 20-150 pills of one held-out product, up to 60% of each hidden, 1600x1200",
    "printed": "no pill: printed text, rulers, logos, blister foil (every box is a false alarm)",
}


def build_real_world_sets(cfg: DatasetConfig, root: Path, n: int = 100, *,
                          counts: dict[str, int] | None = None, training: bool = False) -> dict[str, int]:
    """Write REAL_WORLD_SETS under ``root`` (seeded by ``cfg.seed``); returns the photos written per set.
    ``training``: the same kinds of photo drawn from the training products (another random stream, the real
    close-ups left out), ``counts`` photos of each named kind: the box check's photos at the app's working size."""
    cuts = build_cutouts(cfg.shared, cfg.out.parent / "cutouts", cfg.db)
    train_src, test_src = _sources(cfg, cuts, cfg.out.parent / "cutouts")
    src = train_src if training else test_src
    pushin = cfg.shared / "photos" / "pushin-pill"
    _, p_val = pushin_split(pushin)
    official = _official(cfg.shared, held_out=not training)
    big = (1600, 1200)
    counts = counts or {name: {"official": min(n, len(official)), "printed": n // 2, "heaps": n // 2}.get(name, n)
                        for name in REAL_WORLD_SETS}
    written: dict[str, int] = {}
    for k, name in enumerate(REAL_WORLD_SETS):
        if name not in counts or (training and name == "closeups"):
            continue
        folder = root / name
        (folder / "images").mkdir(parents=True, exist_ok=True)
        (folder / "labels").mkdir(parents=True, exist_ok=True)
        count = counts[name]
        written[name] = 0
        for i in range(count):
            rng = np.random.default_rng([cfg.seed, 2201 if training else 1022, k, i])
            if name == "closeups":
                scene = _photo_closeup(pushin, p_val[i % len(p_val)], rng)
            elif name == "closeups_synthetic":
                scene = compose_spread(src, rng, big, None, fraction=(0.07, 0.8), count=(1, 4), printed=0.2)
            elif name == "large":
                scene = compose_spread(src, rng, big, None, fraction=(0.27, 0.47), count=(3, 4), printed=0.2)
            elif name == "official":
                scene = official_photo(official[int(len(official) * i / count)])
            elif name == "heaps":
                scene = compose_heap(src, rng, big, None)
            else:
                scene = printed_page(big, rng)
            if scene is not None:
                _write(folder, f"{name}_{i:04d}", scene)
                written[name] += 1
            _progress(name, i + 1, count)
    return written


def _ultralytics_offline(config_dir: Path) -> None:
    """ultralytics' settings for a machine with no network (TOOLCHAIN.md): set before the first import."""
    config_dir.mkdir(parents=True, exist_ok=True)
    os.environ.update({"YOLO_OFFLINE": "1", "YOLO_AUTOINSTALL": "0", "YOLO_CONFIG_DIR": str(config_dir)})
    font = config_dir / "Ultralytics" / "Arial.ttf"
    if not font.exists():
        import matplotlib

        font.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(Path(matplotlib.get_data_path()) / "fonts" / "ttf" / "DejaVuSans.ttf", font)


def train(data: Path, run_dir: Path, *, model: str = "yolov8n.yaml", imgsz: int = 416, epochs: int = 30,
          batch: int = 16, threads: int = 2, resume: bool = False, device: str = "cpu", lr0: float | None = None,
          close_mosaic: int = 3, workers: int = 0, hours: float | None = None, cache: bool = False,
          init: str | None = None) -> Path:
    """Train from scratch (no downloadable weights here), or continue from our own ``.pt`` or exported ``.onnx``
    (``models/detector.onnx``: runs do not survive a fresh machine, the shipped model does) given as ``model``.

    Returns best.pt. ``resume`` continues an interrupted run from its last.pt with its original settings.
    ``lr0`` fine-tunes: AdamW at that rate, decaying linearly, no warm-up (ultralytics' warm-up starts the biases
    at 0.1, which undid much of a trained model in the first epochs: real-photo mAP50-95 0.55 -> 0.39 by epoch 3).
    On a shared 2-core machine use ``threads=1``: two OpenMP threads on two busy cores stall each other.
    ``close_mosaic``: the last epochs without mosaic (``>= epochs``: none, every epoch on whole frames as served).
    ``workers`` loader processes (0 on the 2-core machine; a GPU is fed by several), ``hours`` a wall-clock budget that
    replaces ``epochs`` (ultralytics re-plans the epochs and the learning-rate decay after the first one: a lent GPU's
    minutes are fixed, its speed is not known in advance), ``cache`` decoded images held in RAM.
    ``init``: weights (ours, ``.pt`` or ``.onnx``) for the layers of a ``model`` yaml that match them by name and
    shape: another head (``yolov8n-p2.yaml``, stride 4 for small pills) on the trained backbone.
    """
    run_dir = run_dir.resolve()  # ultralytics puts a relative project under its own runs/detect/
    _ultralytics_offline(run_dir.parent / ".ultralytics")
    import ultralytics.utils.torch_utils as tu
    from ultralytics import YOLO

    tu.NUM_THREADS = threads
    last = run_dir / "weights" / "last.pt"
    t0 = time.time()
    if resume and last.exists():
        YOLO(str(last)).train(resume=True)
    else:
        model = _checkpoint(model, data, run_dir.parent / f"{run_dir.name}_from_onnx.pt", imgsz)
        init = init and _checkpoint(init, data, run_dir.parent / f"{run_dir.name}_init_from_onnx.pt", imgsz)
        tune = {"optimizer": "AdamW", "lr0": lr0, "warmup_epochs": 0} if lr0 else {}
        if hours:
            tune["time"] = hours
        YOLO(model).train(
            **tune, data=str(data), imgsz=imgsz, epochs=epochs, batch=batch, device=device, workers=workers,
            cache="ram" if cache else False,
            project=str(run_dir.parent), name=run_dir.name, exist_ok=True,
            pretrained=init or model.endswith(".pt"),
            plots=False, amp=False, seed=0, deterministic=False, mosaic=1.0, close_mosaic=close_mosaic, degrees=180.0,
            flipud=0.5, fliplr=0.5, scale=0.5, hsv_h=0.03, patience=100,
        )
    (run_dir / "train_seconds.txt").write_text(f"{time.time() - t0:.0f}\n")
    return run_dir / "weights" / "best.pt"


def _checkpoint(path: str, data: Path, out: Path, imgsz: int) -> str:
    """``path`` as ultralytics loads it: an exported ``.onnx`` of ours becomes a checkpoint at ``out`` (its batch
    norms unfolded with statistics from 64 training images, ``from_onnx``), anything else is returned as it is."""
    if not path.endswith(".onnx"):
        return path
    from pillcheck.training.from_onnx import checkpoint_from_onnx

    calibration = sorted((data.parent / "train" / "images").glob("*.jpg"))[::16][:64]
    return str(checkpoint_from_onnx(Path(path), out, calibration, imgsz=imgsz))


def export(weights: Path, out: Path, imgsz: int = 416, opset: int = 18, serve_imgsz: int | None = None,
           serve_square: bool = False) -> Path:
    """ONNX, dynamic batch and size, raw head output [b, 4+1, anchors] (NMS is ours, in numpy).

    ``serve_imgsz`` (default ``imgsz``) and ``serve_square`` are stored in the file: how the detector is served.
    """
    _ultralytics_offline(weights.parent.parent.parent / ".ultralytics")
    from ultralytics import YOLO

    path = Path(YOLO(str(weights)).export(format="onnx", imgsz=imgsz, opset=opset, dynamic=True, simplify=True))
    out.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy(path, out)
    return set_serving_size(out, serve_imgsz or imgsz, serve_square)


def set_serving_size(onnx_path: Path, imgsz: int | None, square: bool = False) -> Path:
    """Record in the model the input size it is served at and whether on a square (read by
    ``inference.detector.Detector``); None / False remove them (the detector then runs at its defaults)."""
    import onnx

    from pillcheck.inference.detector import IMGSZ_KEY, PAD_KEY

    model = onnx.load(str(onnx_path))
    props = [p for p in model.metadata_props if p.key not in (IMGSZ_KEY, PAD_KEY)]
    del model.metadata_props[:]
    model.metadata_props.extend(props)
    if imgsz:
        model.metadata_props.add(key=IMGSZ_KEY, value=str(imgsz))
    if square:
        model.metadata_props.add(key=PAD_KEY, value="square")
    onnx.save(model, str(onnx_path))
    return onnx_path
