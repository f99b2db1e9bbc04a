"""pipeline.analyze end to end on the demo catalog with the shipped models, and the analyze CLI contract."""

from __future__ import annotations

import io
import json
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from pillcheck.images import InputError
from pillcheck.metrics import iou_matrix
from pillcheck.pipeline import Pipeline, reading_order
from pillcheck.safety.dur import Profile
from pillcheck.training.scenes import table_with_pills

from .conftest import SHARED, needs_shared
from .test_detector import TOY_CONF


@pytest.fixture(scope="module")
def photo() -> bytes:
    img, _ = table_with_pills()
    buf = io.BytesIO()
    Image.fromarray(img).save(buf, format="JPEG", quality=92)
    return buf.getvalue()


def test_analyze_finds_pills_and_never_checks_unsure_ones(demo_db, photo):
    report = Pipeline(db=demo_db).analyze(photo, conf=TOY_CONF)
    assert len(report.pills) == 4 and report.data == "demo"
    d = report.to_dict()
    assert [p["index"] for p in d["pills"]] == [1, 2, 3, 4]
    boxes = np.array([p["box"] for p in d["pills"]])
    assert (reading_order(boxes) == np.arange(4)).all()  # numbered as read: rows down, each left to right
    for p in d["pills"]:
        assert p["status"] in ("sure", "unsure", "unknown")
        assert p["candidates"] and all(0 <= c["score"] <= 1 for c in p["candidates"])
        if p["status"] != "sure":
            assert p["item_seq"] is None and p["index"] in d["not_identified"]
    assert set(d["timings_ms"]) == {"decode", "detect", "identify", "check"}


def test_reading_order_is_rows_then_left_to_right():
    """A 4x5 tray of pills, each a little off its grid point, listed in a shuffled (confidence) order."""
    rng = np.random.default_rng(3)
    grid = [(x, y) for y in range(4) for x in range(5)]
    boxes = np.array([[100 * x + dx, 100 * y + dy, 100 * x + dx + 60, 100 * y + dy + 40]
                      for (x, y), (dx, dy) in zip(grid, rng.uniform(-12, 12, (20, 2)))])
    shuffled = rng.permutation(20)
    order = reading_order(boxes[shuffled])
    assert [grid[i] for i in shuffled[order]] == grid
    assert len(reading_order(np.zeros((0, 4)))) == 0


def test_confirmed_pills_and_my_meds_join_the_check(demo_db, photo):
    report = Pipeline(db=demo_db).analyze(photo, my_meds=["999900002"], profile=Profile(age=70), conf=TOY_CONF,
                                          confirmed={1: "999900001"})
    kinds = {w.kind for w in report.check.warnings}
    assert "CONTRAINDICATED" in kinds and "ELDERLY" in kinds
    assert report.pills[0].item_seq == "999900001" and report.to_dict()["pills"][0]["status"] == "confirmed"


def test_empty_photo_and_bad_input(demo_db):
    buf = io.BytesIO()
    Image.fromarray(np.full((480, 640, 3), (150, 110, 70), np.uint8)).save(buf, format="PNG")
    report = Pipeline(db=demo_db).analyze(buf.getvalue())
    assert report.pills == [] and report.check.warnings == []
    with pytest.raises(InputError):
        Pipeline(db=demo_db).analyze(b"not an image")


def test_analyze_cli_keeps_going_after_a_bad_image(demo_db, photo, tmp_path):
    good, bad = tmp_path / "good.jpg", tmp_path / "bad.jpg"
    good.write_bytes(photo)
    bad.write_bytes(photo[:200])
    out = subprocess.run([sys.executable, "-m", "pillcheck.cli", "analyze", str(bad), str(good), "--json",
                          "--conf", str(TOY_CONF), "--db", str(demo_db)], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    first, second = json.loads(out.stdout)
    assert first["image"].endswith("bad.jpg") and "damaged" in first["error"]
    assert len(second["pills"]) == 4
    assert {"box", "confidence", "status", "imprint_read", "candidates"} <= set(second["pills"][0])
    assert {"item_seq", "name", "score"} <= set(second["pills"][0]["candidates"][0])
    assert "warnings" in second and "unchecked" in second


def test_12mp_photo_reported_in_full_size_pixels(demo_db):
    """The 12 MP JPEG is analysed at half size, but the report speaks in the photo's own pixels."""
    img, truth = table_with_pills(4000, 3000)
    buf = io.BytesIO()
    Image.fromarray(img).save(buf, format="JPEG", quality=90)
    report = Pipeline(db=demo_db).analyze(buf.getvalue(), conf=TOY_CONF)
    assert (report.width, report.height) == (4000, 3000)
    boxes = np.array([p.box for p in report.pills])
    assert len(boxes) == len(truth)
    assert (iou_matrix(truth, boxes).max(1) >= 0.5).all()


def test_small_pills_in_a_big_photo_are_read_at_full_size(demo_db, monkeypatch):
    """Detection runs on the half-size decode; pills that small there are identified on the full-size photo."""
    small, truth = table_with_pills(1000, 750)  # pills ~40-70 px at half size
    canvas = np.zeros((3000, 4000, 3), np.uint8)
    canvas[:] = small[5, 5]
    canvas[1000:1750, 1500:2500] = small
    buf = io.BytesIO()
    Image.fromarray(canvas).save(buf, format="JPEG", quality=90)
    pipe = Pipeline(db=demo_db)
    seen = []
    real = Pipeline.identify
    monkeypatch.setattr(Pipeline, "identify", lambda self, rgb, det, sides=None, mine=None: seen.append((rgb.shape, det.xyxy))
                        or real(self, rgb, det, sides, mine))
    report = pipe.analyze(buf.getvalue(), conf=TOY_CONF)
    (shape, boxes), = seen
    assert shape == (3000, 4000, 3)
    # boxes moved to full size (loosely: pills ~12 px wide at the detector's 416 px input are found, not tightly boxed)
    assert (iou_matrix(truth + [1500, 1000, 1500, 1000], boxes).max(1) >= 0.3).all()
    assert len(report.pills) == 4 and report.width == 4000
    big, _ = table_with_pills(4000, 3000)  # pills ~170 px at half size: read there
    seen.clear()
    buf = io.BytesIO()
    Image.fromarray(big).save(buf, format="JPEG", quality=90)
    pipe.analyze(buf.getvalue(), conf=TOY_CONF)
    assert seen[0][0] == (1500, 2000, 3)


def test_a_photo_of_the_other_side_joins_that_pill(demo_db, photo, tmp_path):
    main = tmp_path / "table.jpg"
    main.write_bytes(photo)
    report = Pipeline(db=demo_db).analyze(photo, conf=TOY_CONF)
    x1, y1, x2, y2 = (int(v) for v in report.pills[1].box)
    side = Image.open(io.BytesIO(photo)).crop((max(0, x1 - 30), max(0, y1 - 30), x2 + 30, y2 + 30))
    side.save(tmp_path / "side.jpg")  # a close-up of pill 2 (its "other side", here the same face)
    (tmp_path / "broken.jpg").write_bytes(photo[:300])

    def run(*extra: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "pillcheck.cli", "analyze", str(main), "--json", "--conf",
                               str(TOY_CONF), "--db", str(demo_db), *extra], capture_output=True, text=True, timeout=300)

    out = run("--other-side", f"2={tmp_path / 'side.jpg'}")
    assert out.returncode == 0, out.stderr
    pills = json.loads(out.stdout)[0]["pills"]
    assert " // " in pills[1]["imprint_read"] and all(" // " not in p["imprint_read"] for i, p in enumerate(pills) if i != 1)
    for extra, message in ((f"9={tmp_path / 'side.jpg'}", "no pill #9"), (f"2={tmp_path / 'broken.jpg'}", "damaged")):
        out = run("--other-side", extra)
        assert out.returncode == 0 and message in json.loads(out.stdout)[0]["error"], out.stdout + out.stderr
    out = run("--other-side", "two")
    assert out.returncode != 0 and "PILL=IMAGE" in out.stderr and "Traceback" not in out.stderr


@needs_shared
def test_concurrent_analyses_answer_as_one_at_a_time(official_db):
    """`serve --concurrency N` runs analyses in threads over one Pipeline (shared models, catalog indexes, one
    DuckDB connection's cursors): four real photos analysed four at once give the reports one at a time gives."""
    from concurrent.futures import ThreadPoolExecutor

    pipe = Pipeline(db=official_db)
    photos = [p.read_bytes() for p in sorted((SHARED / "photos" / "pushin-pill" / "images").glob("*.jpg"))[5::50][:4]]

    def report(data: bytes) -> dict:
        out = pipe.analyze(data, ["200000913"], Profile(age=70)).to_dict()
        out.pop("timings_ms")
        return out

    alone = [report(p) for p in photos]
    with ThreadPoolExecutor(4) as pool:
        together = list(pool.map(report, photos * 2))
    assert all(r["pills"] for r in alone)
    assert together == alone * 2


@needs_shared
def test_a_pill_read_on_one_line_is_named_surely_only_on_every_band(official_db, monkeypatch):
    """A sharp one-line code is ranked without the reader's line pairs; when that ranking is sure, the pill is ranked
    again with them, so a sure answer is exactly the one every band gives. Rendered official records: 'CAM2' (one
    product: sure) and 'GAS20' (one product, read with fragments: not sure, and its pairs never run). With a list,
    a settling read that is a part of a listed product's face ranks on every band from the start."""
    from pillcheck.inference import models
    from pillcheck.inference.detector import Detections
    from pillcheck.inference.imprint import ImprintReader
    from pillcheck.training.identify_set import place
    from pillcheck.training.render import render, spec_from_record

    pipe = Pipeline(db=official_db)
    con = pipe.catalog.cursor()
    cols = [d[0] for d in con.execute("SELECT * FROM appearance LIMIT 0").description]
    reader = models.imprint(pipe.models_dir)
    modes: list[bool] = []
    score_many = reader.score_many
    monkeypatch.setattr(reader, "score_many", lambda read, c, lines=True: modes.append(lines) or score_many(read, c, lines))

    def named(seq: str, mine: list[str] | None = None) -> tuple:
        rec = dict(zip(cols, con.execute("SELECT * FROM appearance WHERE item_seq = ?", [seq]).fetchone()))
        rng = np.random.default_rng(3)
        rgb, box = place(render(spec_from_record(rec, rng), 12.0, rng), rng, 220)
        modes.clear()
        (ident,) = pipe.identify(rgb, Detections([box], [1.0], [0]), mine=mine)
        return ident, set(modes)

    sure, sure_modes = named("198700581")
    unsure, unsure_modes = named("198600114")
    assert sure.status == "sure" and sure.best.item_seq == "198700581" and sure_modes == {False, True}
    assert unsure.status != "sure" and unsure.best.item_seq == "198600114" and unsure_modes == {False}
    monkeypatch.setattr(ImprintReader, "one_line", lambda self, read, faces: None)  # every pill on every band
    full, full_modes = named("198700581")
    assert full_modes == {True}
    assert [(c.item_seq, c.score) for c in full.candidates] == [(c.item_seq, c.score) for c in sure.candidates]
    # a settling read that is a part of a listed face ('CAM' of 'CAM2') may be one line of it: every band at once
    monkeypatch.setattr(ImprintReader, "one_line", lambda self, read, faces: "CAM")
    assert named("198600114")[1] == {False}
    assert named("198600114", mine=["198700581"])[1] == {True}
