"""Every benchmark in one process, one table: pillcheck's numbers and the targets they are held to.

    python bench/run.py [--data ../shared/data/mfds] [--repeat 20]

Rows: catalog import, DUR check (10 items), detector (ours; ultralytics predict as anchor when the `[train]`
extra is installed), per-pill identification, end-to-end 12 MP photo with 4 pills -> warnings, cold start
(a fresh process to its first answer) and peak RSS. Results and the machine go in bench/RESULTS.md.
"""

from __future__ import annotations

import argparse
import io
import os
import platform
import random
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

from pillcheck import config
from pillcheck.catalog.importer import import_dir
from pillcheck.pipeline import Pipeline
from pillcheck.safety.dur import Profile, check
from pillcheck.training.scenes import table_with_pills


def p50_p95(fn, repeat: int) -> tuple[float, float]:
    fn()
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t0) * 1000)
    return statistics.median(times), float(np.percentile(times, 95))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--data", type=Path, default=config.REPO_ROOT.parent / "shared" / "data" / "mfds")
    ap.add_argument("--repeat", type=int, default=20)
    args = ap.parse_args()
    rows: list[tuple[str, str, str, str]] = []
    tmp = Path(tempfile.mkdtemp())
    db = tmp / "bench.duckdb"
    t0 = time.perf_counter()
    import_dir(args.data, db)
    imp = time.perf_counter() - t0
    rows.append(("catalog import (all official files)", f"{imp:.1f} s", "30 s", f"{imp / 30:.2f}"))

    pipe = Pipeline(db=db)
    dur = pipe.catalog.dur
    pool = [s for s, (_, has) in dur.items.items() if has]
    rng = random.Random(7)
    p50, p95 = p50_p95(lambda: check(dur, rng.sample(pool, 10), Profile(age=70)), args.repeat * 10)
    rows.append(("DUR check, 10 items (p50 / p95)", f"{p50:.2f} / {p95:.2f} ms", "5 ms", f"{p50 / 5:.3f}"))

    img, _ = table_with_pills(4000, 3000)  # 12 MP, 4 pills
    buf = io.BytesIO()
    Image.fromarray(img).save(buf, format="JPEG", quality=90)
    photo = buf.getvalue()
    from pillcheck.inference import models

    det = models.detector()
    rgb = np.asarray(Image.open(io.BytesIO(photo)).convert("RGB"))
    d50, d95 = p50_p95(lambda: det(rgb), args.repeat)
    rows.append(("detector on the 12 MP photo, decode excluded", f"{d50:.1f} / {d95:.1f} ms", "-", "-"))
    try:
        os.environ.setdefault("YOLO_OFFLINE", "1")
        from ultralytics import YOLO

        from pillcheck.training.from_onnx import checkpoint_from_onnx

        # ultralytics runs the very weights we serve, turned back into a checkpoint
        calibration = sorted((args.data.parent / "photos" / "pushin-pill" / "images").glob("*.jpg"))[:10]
        weights = checkpoint_from_onnx(det.path, config.REPO_ROOT / "work" / "bench" / "detector.pt", calibration,
                                       imgsz=det.imgsz)
        yolo = YOLO(str(weights))
        bgr = np.ascontiguousarray(rgb[..., ::-1])
        u50, _ = p50_p95(lambda: yolo.predict(bgr, imgsz=det.imgsz, conf=0.35, verbose=False, device="cpu"), args.repeat)
        rows.append(("ultralytics predict (.pt), same photo", f"{u50:.1f} ms", "ours >= 2x faster", f"{u50 / d50:.2f}x"))
    except Exception as exc:  # the anchor needs the [train] extra (and the shared photos to calibrate with)
        rows.append(("ultralytics predict (.pt)", f"not measured ({exc.__class__.__name__})", "", ""))

    pipe.analyze(photo)  # first call loads the models and the catalog indexes (cold start is measured below)
    report = pipe.analyze(photo)
    per_pill = report.timings_ms["identify"] / max(1, len(report.pills))
    rows.append(("identification per pill (OCR included)", f"{per_pill:.1f} ms", "60 ms", f"{per_pill / 60:.2f}"))
    e50, e95 = p50_p95(lambda: pipe.analyze(photo, my_meds=["200400682"]), args.repeat)
    rows.append(("end to end: 12 MP JPEG, 4 pills -> warnings", f"{e50:.0f} / {e95:.0f} ms", "300 ms p50", f"{e50 / 300:.2f}"))

    jpg = tmp / "photo.jpg"
    jpg.write_bytes(photo)
    code = (f"import time; t=time.perf_counter(); from pillcheck.pipeline import Pipeline; "
            f"r=Pipeline(db={str(db)!r}).analyze({str(jpg)!r}); print(time.perf_counter()-t)")
    t0 = time.perf_counter()
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    cold = time.perf_counter() - t0
    rows.append(("cold start: new process -> first analysis", f"{cold:.1f} s", "5 s", f"{cold / 5:.2f}"))
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    rows.append(("peak RSS of this process", f"{rss:.0f} MB", "1,536 MB", f"{rss / 1536:.2f}"))
    if out.returncode:
        print(out.stderr[-500:], file=sys.stderr)

    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, {platform.python_version()}, "
          f"providers {det.providers}")
    print(f"| {'what':<46} | {'measured':<22} | {'target':<18} | {'ratio':<7} |")
    print(f"|{'-' * 48}|{'-' * 24}|{'-' * 20}|{'-' * 9}|")
    for r in rows:
        print(f"| {r[0]:<46} | {r[1]:<22} | {r[2]:<18} | {r[3]:<7} |")


if __name__ == "__main__":
    main()
