"""Identification latency per pill crop (appearance model + imprint reader + ranking over the full catalog).

    python bench/bench_identify.py DATASET [--db PATH] [--n 40]

DATASET is an identification set (labels.csv: image,x1,y1,x2,y2,item_seq). Target (issue 4): <= 60 ms per pill.
"""

from __future__ import annotations

import argparse
import csv
import statistics
import time
from pathlib import Path

import numpy as np

from pillcheck import config, images
from pillcheck.inference.detector import Detections
from pillcheck.pipeline import Pipeline


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("dataset", type=Path)
    ap.add_argument("--db", type=Path, default=None)
    ap.add_argument("--n", type=int, default=40)
    args = ap.parse_args()
    pipe = Pipeline(db=args.db or config.default_db())
    with open(args.dataset / "labels.csv", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))[: args.n]
    frames = [(images.load(args.dataset / r["image"]), [float(r[k]) for k in ("x1", "y1", "x2", "y2")]) for r in rows]
    t0 = time.perf_counter()
    pipe.identify(frames[0][0], Detections([frames[0][1]], [1.0], [0]))  # loads the models and indexes
    print(f"cold (models + catalog index): {(time.perf_counter() - t0) * 1000:.0f} ms")
    # alternating, so both see the same machine load: no list, and the pill's product + 9 others as the person's list
    others = sorted({r["item_seq"] for r in rows})[:9]
    times: dict[str, list[float]] = {"no list": [], "with a 10-product list": []}
    for (rgb, box), row in zip(frames, rows):
        for case, mine in (("no list", None), ("with a 10-product list", [row["item_seq"], *others])):
            t0 = time.perf_counter()
            pipe.identify(rgb, Detections([box], [1.0], [0]), mine=mine)
            times[case].append((time.perf_counter() - t0) * 1000)
    base = statistics.median(times["no list"])
    for case, ts in times.items():
        p50 = statistics.median(ts)
        print(f"per pill, {case}: p50 {p50:.1f} ms, p95 {np.percentile(ts, 95):.1f} ms over {len(ts)} crops "
              f"(target 60 ms, ratio {p50 / 60:.2f}; {p50 / base:.2f}x no list)")


if __name__ == "__main__":
    main()
