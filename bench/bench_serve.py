"""Serving many people at once, and batches: one run, printed side by side (issue 27).

    python bench/bench_serve.py [--db CATALOG] [--clients 20] [--requests 5] [--photos 60] [--photo FILE]

1. `pillcheck serve` in a child process for each (concurrency, threads) setting, 20 gradio_client sessions x 5
   `/analyze` requests each (real phone photos, each session its own), p50/p95 latency, throughput, errors.
2. The same 60 real photos through `pillcheck batch --engine local` and `--engine ray` (a local Ray with the
   machine's cores; Ray's start is included, as a person running the command waits for it), photos/s and ratio.
`--photo FILE`: every request sends that one photo (e.g. three people sending a 22-pill photo at once:
`--clients 3 --requests 1 --photo IMG_6078...jpg --skip-batch`); up to 10 requests, each one's wait is printed.
"""

from __future__ import annotations

import argparse
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from pillcheck import config

PHOTOS = config.REPO_ROOT.parent / "shared" / "data" / "photos" / "pushin-pill" / "images"
SETTINGS = [(1, 2), (2, 1), (3, 1), (2, 2)]  # (analyses at once, threads each)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def serve(db: Path, concurrency: int, threads: int) -> tuple[subprocess.Popen, str]:
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "pillcheck.cli", "serve", "--db", str(db), "--port", str(port),
                             "--concurrency", str(concurrency), "--threads", str(threads)],
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    line = proc.stdout.readline()
    assert "serving" in line, line
    return proc, f"http://127.0.0.1:{port}/"


def load(url: str, photos: list[Path], clients: int, requests: int) -> dict:
    from gradio_client import Client, handle_file

    def session(k: int) -> tuple[list[float], int]:
        client = Client(url, verbose=False)
        times, errors = [], 0
        for r in range(requests):
            t0 = time.perf_counter()
            try:
                client.predict(photo=handle_file(str(photos[(k * requests + r) % len(photos)])), api_name="/analyze")
            except Exception:  # counted, not raised: the point is how many
                errors += 1
            times.append(time.perf_counter() - t0)
        return times, errors

    # warm-up: models load on the first request
    Client(url, verbose=False).predict(photo=handle_file(str(photos[0])), api_name="/analyze")
    t0 = time.perf_counter()
    with ThreadPoolExecutor(clients) as pool:
        results = list(pool.map(session, range(clients)))
    wall = time.perf_counter() - t0
    lat = sorted(t for times, _ in results for t in times)
    return {"p50": statistics.median(lat), "p95": lat[int(0.95 * (len(lat) - 1))], "n": len(lat),
            "errors": sum(e for _, e in results), "per_s": len(lat) / wall, "waits": lat}


def batch(db: Path, folder: Path, engine: str) -> float:
    out = Path(tempfile.mkdtemp()) / "rows.csv"
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-m", "pillcheck.cli", "batch", str(folder), "--out", str(out), "--db", str(db),
                    "--engine", engine, "--quiet"], check=True, capture_output=True)
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--db", type=Path, default=config.default_db())
    ap.add_argument("--clients", type=int, default=20)
    ap.add_argument("--requests", type=int, default=5)
    ap.add_argument("--photos", type=int, default=60)
    ap.add_argument("--photo", type=Path, help="send this one photo in every request")
    ap.add_argument("--skip-serve", action="store_true")
    ap.add_argument("--skip-batch", action="store_true")
    args = ap.parse_args()
    photos = [args.photo] if args.photo else sorted(PHOTOS.glob("*.jpg"))[::3][: max(args.photos,
                                                                                         args.clients * args.requests)]
    print(f"{os.cpu_count()} cores; {len(photos)} real phone photo(s) ({args.photo or PHOTOS})")
    if not args.skip_serve:
        print(f"\n`serve`: {args.clients} concurrent clients x {args.requests} /analyze requests")
        print("| analyses at once x threads | p50 | p95 | requests/s | errors |\n|---|---|---|---|---|")
        base = None
        for conc, threads in SETTINGS:
            proc, url = serve(args.db, conc, threads)
            try:
                r = load(url, photos, args.clients, args.requests)
            finally:
                proc.terminate()
                proc.wait(30)
            base = base or r
            waits = f" waits {', '.join(f'{w:.1f}' for w in r['waits'])} s" if r["n"] <= 10 else ""
            print(f"| {conc} x {threads} | {r['p50']:.2f} s | {r['p95']:.2f} s | {r['per_s']:.2f} "
                  f"({r['per_s'] / base['per_s']:.2f}x) | {r['errors']} of {r['n']} |{waits}", flush=True)
    if not args.skip_batch:
        folder = Path(tempfile.mkdtemp())
        for p in photos[: args.photos]:
            shutil.copy(p, folder / p.name)
        print(f"\n`batch`: {args.photos} photos")
        local = batch(args.db, folder, "local")
        ray = batch(args.db, folder, "ray")
        print(f"| engine | wall | photos/s |\n|---|---|---|\n| local | {local:.1f} s | {args.photos / local:.2f} |\n"
              f"| ray (local, {os.cpu_count()} CPUs) | {ray:.1f} s | {args.photos / ray:.2f} "
              f"({local / ray:.2f}x local) |")


if __name__ == "__main__":
    main()
