"""Files a person downloads: the report as CSV/JSON, and (opt-in) their corrections as a labelled dataset.

Nothing here is kept: files are written to a private scratch folder that is pruned as new files are made and
removed when the process exits; Gradio serves its own copy, which ``delete_cache`` removes.
"""

from __future__ import annotations

import atexit
import csv
import io
import json
import shutil
import tempfile
import time
import zipfile
from pathlib import Path

import numpy as np
from PIL import Image

from pillcheck.batch.rows import FIELDS, as_text, report_rows
from pillcheck.ui.i18n import t

LABEL_FIELDS = ["image", "x1", "y1", "x2", "y2", "item_seq", "subset"]  # the evaluation set's labels.csv
CROP_MARGIN = 0.15


class Scratch:
    """A private folder for download files; entries older than ``max_age_s`` go when a new one is made."""

    def __init__(self, max_age_s: float = 1800) -> None:
        self.root = Path(tempfile.mkdtemp(prefix="pillcheck-ui-"))
        self.max_age_s = max_age_s
        atexit.register(shutil.rmtree, self.root, True)

    def new_dir(self) -> Path:
        now = time.time()
        for old in self.root.iterdir():
            if now - old.stat().st_mtime > self.max_age_s:
                shutil.rmtree(old, ignore_errors=True)
        return Path(tempfile.mkdtemp(dir=self.root))


def notice(data: str) -> str:
    """The banner every file carries when it was made from the demo catalog."""
    return t("en", "demo_banner") if data == "demo" else ""


def write_reports(folder: Path, stem: str, reports: list[tuple[str, dict | None, str | None]], data: str) -> list[Path]:
    """``stem``.csv (``batch.rows``: a row per pill, per warning, per photo) and ``stem``.json for (image name,
    report or None, error) triples."""
    folder.mkdir(parents=True, exist_ok=True)
    csv_path, json_path = folder / f"{stem}.csv", folder / f"{stem}.json"
    with open(csv_path, "w", newline="", encoding="utf-8-sig") as f:  # BOM: Excel opens Hangul correctly
        writer = csv.DictWriter(f, fieldnames=FIELDS)
        writer.writeheader()
        for image, report, error in reports:
            writer.writerows(map(as_text, report_rows(image, report, error)))
    payload = {"data": data, "notice": notice(data), "disclaimer": t("en", "disclaimer"),
               "reports": [{"image": image, **(report or {}), **({"error": error} if error else {})}
                           for image, report, error in reports]}
    json_path.write_text(json.dumps(payload, ensure_ascii=False, indent=1, default=str), encoding="utf-8")
    return [csv_path, json_path]


def crop_example(rgb: np.ndarray, box: list[float], margin: float = CROP_MARGIN) -> tuple[bytes, list[float]]:
    """A pill cut from the full-resolution photo with some margin (JPEG), and its box inside that crop."""
    h, w = rgb.shape[:2]
    x1, y1, x2, y2 = box
    mx, my = (x2 - x1) * margin, (y2 - y1) * margin
    xa, ya = int(max(0, x1 - mx)), int(max(0, y1 - my))
    xb, yb = int(min(w, x2 + mx)), int(min(h, y2 + my))
    buf = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(rgb[ya:yb, xa:xb])).save(buf, "JPEG", quality=92)
    inner = [round(x1 - xa, 1), round(y1 - ya, 1), round(min(x2, xb) - xa, 1), round(min(y2, yb) - ya, 1)]
    return buf.getvalue(), inner


def corrections_zip(folder: Path, corrections: list[dict]) -> Path:
    """The person's corrections in the evaluation dataset format (a folder with labels.csv and images/),
    ready for `pillcheck eval identify` or retraining: subset 'user'."""
    path = folder / "pillcheck-corrections.zip"
    text = io.StringIO()
    writer = csv.DictWriter(text, fieldnames=LABEL_FIELDS, lineterminator="\n")
    writer.writeheader()
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        for i, c in enumerate(corrections):
            name = f"images/{i:04d}_{c['item_seq']}.jpg"
            zf.writestr(f"pillcheck-corrections/{name}", c["jpeg"])
            writer.writerow({"image": name, **dict(zip(("x1", "y1", "x2", "y2"), c["box"])),
                             "item_seq": c["item_seq"], "subset": "user"})
        zf.writestr("pillcheck-corrections/labels.csv", text.getvalue())
    return path
