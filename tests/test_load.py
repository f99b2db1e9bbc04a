"""Load: 20 concurrent gradio_client sessions x 10 analyze requests against a local server (loopback only, bounded,
stops by itself). Asserts no errors, reports p50/p95, and that no uploaded photo is left on disk afterwards."""

from __future__ import annotations

import statistics
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from pillcheck.training.scenes import table_with_pills

from .test_ui import needs_detector, serve_app

SESSIONS, REQUESTS = 20, 10  # 200 analyses, CONCURRENCY at a time: ~2 min on 2 cores
pytestmark = [pytest.mark.slow, pytest.mark.filterwarnings("ignore:.*(no_silent_downcasting|copy keyword).*")]


@needs_detector
def test_concurrent_sessions_all_answered(demo_db, tmp_path):
    from gradio.utils import get_upload_folder
    from gradio_client import Client, handle_file

    img, _ = table_with_pills(640, 480)
    one_pill = np.ascontiguousarray(img[:240, :320])

    def photo(session: int, request: int) -> Path:
        """Every phone photo is different: one changed pixel makes each upload its own file on the server
        (Gradio stores uploads by content, so byte-identical photos sent at once share one file)."""
        frame = one_pill.copy()
        frame[-1, -1] = (session, request, 7)
        path = tmp_path / f"load-{session}-{request}.png"
        Image.fromarray(frame).save(path)
        return path

    with serve_app(demo_db) as url:
        def session(k: int) -> list[float]:
            client = Client(url, verbose=False)
            times = []
            for r in range(REQUESTS):
                t0 = time.perf_counter()
                report = client.predict(photo=handle_file(str(photo(k, r))), my_meds=["999900001"], api_name="/analyze")
                times.append(time.perf_counter() - t0)
                assert report["pills"] and report["data"] == "demo"
            return times

        t0 = time.perf_counter()
        with ThreadPoolExecutor(SESSIONS) as pool:
            results = list(pool.map(session, range(SESSIONS), timeout=600))
        wall = time.perf_counter() - t0
    latencies = sorted(t for r in results for t in r)
    assert len(latencies) == SESSIONS * REQUESTS  # every request answered, none raised
    p50, p95 = statistics.median(latencies), latencies[int(0.95 * (len(latencies) - 1))]
    print(f"\nload: {len(latencies)} analyze requests from {SESSIONS} sessions in {wall:.0f} s; "
          f"latency p50 {p50 * 1000:.0f} ms, p95 {p95 * 1000:.0f} ms (queued, CONCURRENCY analyses at a time)")
    assert not list(Path(get_upload_folder()).rglob("load-*.png")), "an uploaded photo was left on disk"
