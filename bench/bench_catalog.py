"""Catalog benchmark: import of all official files, and DUR check latency for 2/10/30 products.

    python bench/bench_catalog.py [--data ../shared/data/mfds] [--repeat 200]

Targets (issue 2, 2 cores): import <= 30 s, 10-item check <= 5 ms p50.
"""

from __future__ import annotations

import argparse
import random
import statistics
import tempfile
import time
from pathlib import Path

from pillcheck import config
from pillcheck.catalog.db import Catalog
from pillcheck.catalog.importer import import_dir
from pillcheck.safety.dur import Profile, check


def pct(values: list[float], p: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(round(p / 100 * (len(values) - 1))))]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--data", type=Path, default=config.REPO_ROOT.parent / "shared" / "data" / "mfds")
    ap.add_argument("--repeat", type=int, default=200)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        db = Path(tmp) / "bench.duckdb"
        t0 = time.perf_counter()
        counts = import_dir(args.data, db)
        import_s = time.perf_counter() - t0
        print(f"import of {args.data}: {import_s:.2f} s (target 30 s, ratio {import_s / 30:.2f}) {counts}")
        cat = Catalog(db)
        t0 = time.perf_counter()
        idx = cat.dur
        print(f"DUR index load (once per process): {(time.perf_counter() - t0) * 1000:.0f} ms")
        con = cat.cursor()
        pool = [r[0] for r in con.execute(
            "SELECT DISTINCT item_seq FROM item_ingredients WHERE ingr_code IS NOT NULL").fetchall()]
        rng = random.Random(7)
        print(f"{'items':>5} {'p50 ms':>8} {'p95 ms':>8} {'warnings/check':>15}")
        for n in (2, 10, 30):
            times, warns = [], []
            for _ in range(args.repeat):
                items = rng.sample(pool, n)
                t0 = time.perf_counter()
                result = check(idx, items, Profile(age=70, pregnant=True))
                times.append((time.perf_counter() - t0) * 1000)
                warns.append(len(result.warnings))
            line = f"{n:>5} {statistics.median(times):8.3f} {pct(times, 95):8.3f} {statistics.mean(warns):15.1f}"
            if n == 10:
                line += f"   (target 5 ms p50, ratio {statistics.median(times) / 5:.3f})"
            print(line)
        cat.close()


if __name__ == "__main__":
    main()
