"""Detector latency before and after issue 22 (pills at any size), one run, interleaved, same 12 MP photos.

    python bench/bench_detector_scale.py --before OLD.onnx [--after models/detector.onnx] [--repeat 40]

Rows: the previous model as it was served (one pass), the new model with one pass, and the new model as served
(one pass + the zoomed-out pass for close-ups, ``Detector.zoom_side``); with ``--heaps`` (the ``heaps`` set of
``pillcheck eval build-detect-sets``), the new model on those photos without and with the tile pass, which runs only
on what looks like a heap (``detector.heap_band``), read by the model itself and, when ``models/detector_heap.onnx`` is
beside it, by that heap model as served; with ``--closeups`` (the ``closeups`` or ``large`` set), those photos
without and with the close-up model (``models/detector_close.onnx``, run on photos of big pills); and when
``models/box_check.onnx`` is beside it, the 12 MP photos and the heaps without and with the box check. ``OLD.onnx``: e.g.
``git show 8d71087:models/detector.onnx > /tmp/old.onnx`` (the model before the issue). Decode excluded.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
from pathlib import Path

import cv2
import numpy as np

from pillcheck import config, images
from pillcheck.inference.box_check import BoxCheck
from pillcheck.inference.detector import Detector
from pillcheck.inference.models import CHECK_MODEL, CLOSE_MODEL, HEAP_MODEL
from pillcheck.training.scenes import table_with_pills

sys.path.insert(0, str(Path(__file__).parent))
from bench_detector import timed  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--before", type=Path, required=True, help="the previous detector ONNX")
    ap.add_argument("--after", type=Path, default=config.MODELS_DIR / "detector.onnx")
    ap.add_argument("--images", type=Path,
                    default=config.REPO_ROOT.parent / "shared" / "data" / "photos" / "pushin-pill" / "images")
    ap.add_argument("--heaps", type=Path, default=None, help="a folder of heap photos (images/*.jpg)")
    ap.add_argument("--closeups", type=Path, default=None, help="a folder of close-up photos (images/*.jpg)")
    ap.add_argument("--repeat", type=int, default=40)
    ap.add_argument("--threads", type=int, default=os.cpu_count() or 2)
    args = ap.parse_args()
    frames = [table_with_pills(4000, 3000)[0]]
    for p in sorted(args.images.glob("*.jpg"))[:5]:
        x = images.load(p)
        frames.append(cv2.resize(x, None, fx=4032 / max(x.shape[:2]), fy=4032 / max(x.shape[:2]),
                                 interpolation=cv2.INTER_CUBIC))  # 12 MP, as a phone sends it
    paths = {"before: previous model, one pass": Detector(args.before, threads=args.threads, zoom_side=0),
             "after: new model, one pass": Detector(args.after, threads=args.threads, zoom_side=0),
             "after: new model + zoomed-out pass (served)": Detector(args.after, threads=args.threads)}
    print(f"{len(frames)} photos at 12 MP ({frames[0].shape[1]}x{frames[0].shape[0]} ...), {args.threads} threads, "
          f"{args.repeat} rounds interleaved")
    print(f"{'path':<46} {'p50 ms':>8} {'p95 ms':>8} {'vs first':>10}")
    report(paths, frames, args.repeat)
    check = args.after.with_name(CHECK_MODEL)
    checked = {} if not check.is_file() else {
        "served, no box check": Detector(args.after, threads=args.threads),
        "served + box check": Detector(args.after, threads=args.threads,
                                       check=lambda: BoxCheck(check, threads=args.threads))}
    if checked:
        report(checked, frames, args.repeat)
    if args.heaps:
        heaps = [images.decode(p, min_side=images.WORKING_SIDE).rgb for p in sorted(args.heaps.glob("images/*.jpg"))[:6]]
        print(f"{len(heaps)} heap photos at the app's working size ({heaps[0].shape[1]}x{heaps[0].shape[0]} ...)")
        on_heaps = {"heaps: served without the tile pass": Detector(args.after, threads=args.threads, tiles=False),
                    "heaps: tile pass by the model itself": Detector(args.after, threads=args.threads)}
        if (heap := args.after.with_name(HEAP_MODEL)).is_file():
            on_heaps["heaps: served (tiles by the heap model)"] = Detector(
                args.after, threads=args.threads, heap=Detector(heap, threads=args.threads))
            if checked:
                on_heaps["heaps: served + box check"] = Detector(
                    args.after, threads=args.threads, heap=Detector(heap, threads=args.threads),
                    check=lambda: BoxCheck(check, threads=args.threads))
        report(on_heaps, heaps, args.repeat)
    close = args.after.with_name(CLOSE_MODEL)
    if args.closeups and close.is_file():
        near = [images.decode(p, min_side=images.WORKING_SIDE).rgb
                for p in sorted(args.closeups.glob("images/*.jpg"))[:6]]
        print(f"{len(near)} close-up photos at the app's working size ({near[0].shape[1]}x{near[0].shape[0]} ...)")
        report({"close-ups: served without the close-up model": Detector(args.after, threads=args.threads),
                "close-ups: served (close-up model)": Detector(
                    args.after, threads=args.threads, close=Detector(close, threads=args.threads))}, near, args.repeat)


def report(paths: dict[str, Detector], frames: list[np.ndarray], repeat: int) -> None:
    """The paths timed interleaved on the same frames: p50, p95 and the p50 against the first path's."""
    times = timed(list(paths.values()), frames, repeat)
    base = statistics.median(times[0])
    for name, t in zip(paths, times):
        p50 = statistics.median(t)
        print(f"{name:<46} {p50:8.1f} {np.percentile(t, 95):8.1f} {p50 / base:9.2f}x")


if __name__ == "__main__":
    main()
