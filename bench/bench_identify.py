"""Identification latency per pill crop (appearance model + imprint reader + ranking over the full catalog).

    python bench/bench_identify.py DATASET [--db PATH] [--n 40] [--eager-pairs]

DATASET is an identification set (labels.csv: image,x1,y1,x2,y2,item_seq), e.g. `eval build-identify-set
--realistic` for pills of 90-750 px. Times are printed for small (long side of the box < 200 px) and large
(>= 300 px) pills apart. Target (issue 25): <= 60 ms per pill, small and large. ``--eager-pairs`` alternates with
the reader as it was before the line pairs were read on demand (every pill's pairs run at once), in one run.
"""

from __future__ import annotations

import argparse
import csv
import statistics
import time
from pathlib import Path

import numpy as np

from pillcheck import config, images
from pillcheck.inference import models
from pillcheck.inference.detector import Detections
from pillcheck.pipeline import Pipeline


def size_group(box: list[float]) -> str:
    long = max(box[2] - box[0], box[3] - box[1])
    return "small (< 200 px)" if long < 200 else "large (>= 300 px)" if long >= 300 else "medium"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("dataset", type=Path)
    ap.add_argument("--db", type=Path, default=None)
    ap.add_argument("--n", type=int, default=40)
    ap.add_argument("--eager-pairs", action="store_true")
    args = ap.parse_args()
    pipe = Pipeline(db=args.db or config.default_db())
    with open(args.dataset / "labels.csv", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))[: args.n]
    frames = [(images.load(args.dataset / r["image"]), [float(r[k]) for k in ("x1", "y1", "x2", "y2")]) for r in rows]
    t0 = time.perf_counter()
    pipe.identify(frames[0][0], Detections([frames[0][1]], [1.0], [0]))  # loads the models and indexes
    print(f"cold (models + catalog index): {(time.perf_counter() - t0) * 1000:.0f} ms")
    reader = models.imprint(pipe.models_dir)
    lazy_read = reader.read

    def eager_read(crop):
        read = lazy_read(crop)
        read.lines  # noqa: B018 - runs the pairs now, as every read did before
        return read

    # alternating, so every case sees the same machine load
    others = sorted({r["item_seq"] for r in rows})[:9]
    cases = [("no list", None, lazy_read), ("with a 10-product list", others, lazy_read)]
    if args.eager_pairs:
        cases.append(("no list, pairs read eagerly (before)", None, eager_read))
    times: dict[str, dict[str, list[float]]] = {name: {} for name, _, _ in cases}
    for (rgb, box), row in zip(frames, rows):
        for name, others_, read in cases:
            reader.read = read
            mine = [row["item_seq"], *others_] if others_ else None
            t0 = time.perf_counter()
            pipe.identify(rgb, Detections([box], [1.0], [0]), mine=mine)
            ms = (time.perf_counter() - t0) * 1000
            for group in ("all", size_group(box)):
                times[name].setdefault(group, []).append(ms)
    reader.read = lazy_read
    base = statistics.median(times["no list"]["all"])
    for name, groups in times.items():
        for group, ts in sorted(groups.items()):
            p50 = statistics.median(ts)
            print(f"per pill, {name}, {group}: p50 {p50:.1f} ms, p95 {np.percentile(ts, 95):.1f} ms over {len(ts)} "
                  f"crops (target 60 ms, ratio {p50 / 60:.2f}; {p50 / base:.2f}x no list, all)")


if __name__ == "__main__":
    main()
