"""Detector latency, one run, same images, same trained model: ours (onnxruntime + numpy) vs ultralytics.

    python bench/bench_detector.py [--onnx models/detector.onnx] [--weights RUN/weights/best.pt]

Needs the `[train]` extra (ultralytics, torch) for the two reference paths; ours never imports them. Without
``--weights`` ultralytics runs the very weights of the ONNX, turned back into a checkpoint (training/from_onnx.py).
Decode is excluded everywhere (images are decoded once up front); pre- and post-processing are included.
Target (issue 3): ours >= 2x faster than ultralytics `YOLO(...).predict` (PyTorch) end to end.

Two sets of the same 10 real phone photos: as stored in the dataset (640x480) and resized to what a phone
camera sends (12 MP, long side 4032), where resizing the photo to the model's input is part of the cost.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from pathlib import Path

import cv2
import numpy as np

from pillcheck import config, images
from pillcheck.inference.detector import Detector


def timed(fns: list, frames: list, repeat: int) -> list[list[float]]:
    """Milliseconds per call for each path, interleaved (path order rotating each round) so that machine noise
    and one path's idle threads hit every path alike."""
    for fn in fns:
        fn(frames[0])  # warm-up
    out: list[list[float]] = [[] for _ in fns]
    for r in range(repeat):
        img = frames[r % len(frames)]
        for k in range(len(fns)):
            j = (k + r) % len(fns)
            t0 = time.perf_counter()
            fns[j](img)
            out[j].append((time.perf_counter() - t0) * 1000)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--weights", type=Path, default=None, help="the .pt the ONNX was exported from (default: "
                    "rebuilt from the ONNX)")
    ap.add_argument("--onnx", type=Path, default=config.MODELS_DIR / "detector.onnx")
    ap.add_argument("--images", type=Path,
                    default=config.REPO_ROOT.parent / "shared" / "data" / "photos" / "pushin-pill" / "images")
    ap.add_argument("--imgsz", type=int, default=None, help="input size (default: the one stored in the model)")
    ap.add_argument("--square", action=argparse.BooleanOptionalAction, default=None,
                    help="a square input (default: as stored in the model); ultralytics then too (rect=False)")
    ap.add_argument("--repeat", type=int, default=50)
    ap.add_argument("--threads", type=int, default=os.cpu_count() or 2)
    args = ap.parse_args()
    os.environ.setdefault("YOLO_OFFLINE", "1")
    os.environ.setdefault("YOLO_CONFIG_DIR", str(config.REPO_ROOT / "work" / ".ultralytics"))
    import torch
    import ultralytics.utils.torch_utils as tu
    from ultralytics import YOLO

    torch.set_num_threads(args.threads)
    tu.NUM_THREADS = args.threads
    paths = sorted(args.images.glob("*.jpg"))[:10]
    stored = [images.load(p) for p in paths]
    phone = [cv2.resize(x, None, fx=4032 / max(x.shape[:2]), fy=4032 / max(x.shape[:2]), interpolation=cv2.INTER_CUBIC)
             for x in stored]  # 12 MP, same orientation
    ours = Detector(args.onnx, imgsz=args.imgsz, square=args.square, threads=args.threads)
    args.imgsz = ours.imgsz  # the reference paths run at the same size
    if args.weights is None:
        from pillcheck.training.from_onnx import checkpoint_from_onnx

        args.weights = checkpoint_from_onnx(args.onnx, config.REPO_ROOT / "work" / "bench" / "detector.pt", paths,
                                            imgsz=ours.imgsz)
    pt, ox = YOLO(str(args.weights), task="detect"), YOLO(str(args.onnx), task="detect")
    kw = {"imgsz": args.imgsz, "conf": 0.35, "iou": 0.5, "verbose": False, "device": "cpu", "rect": not ours.square}
    print(f"{len(paths)} real photos, imgsz {args.imgsz} (ours {'square' if ours.square else 'padded to 32'}), "
          f"{args.threads} threads, providers {ours.providers}")
    for label, rgb in (("as stored", stored), ("at phone resolution", phone)):
        bgr = [np.ascontiguousarray(x[..., ::-1]) for x in rgb]  # ultralytics takes numpy images as BGR
        names = ["pillcheck Detector (onnxruntime)", "ultralytics predict (.pt, PyTorch)",
                 "ultralytics predict (.onnx backend)"]
        frames = list(zip(rgb, bgr))
        fns = [lambda f: ours(f[0], conf=0.35, iou=0.5), lambda f, k=kw: pt.predict(f[1], **k),
               lambda f, k=kw: ox.predict(f[1], **k)]
        rows = list(zip(names, timed(fns, frames, args.repeat)))
        base = statistics.median(rows[0][1])
        print(f"\n{label} ({rgb[0].shape[1]}x{rgb[0].shape[0]})")
        print(f"{'path':<38} {'p50 ms':>8} {'p95 ms':>8} {'vs ours':>8}")
        for name, t in rows:
            p50 = statistics.median(t)
            print(f"{name:<38} {p50:8.1f} {np.percentile(t, 95):8.1f} {p50 / base:7.2f}x")
        # Same boxes? (sanity: ours vs ultralytics on the same model)
        d = ours(rgb[0], conf=0.35, iou=0.5)
        r = pt.predict(bgr[0], **kw)[0].boxes
        print(f"boxes on image 0: ours {len(d)}, ultralytics {len(r)}")


if __name__ == "__main__":
    main()
