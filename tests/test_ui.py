"""The web app: pure rendering, the handlers on a stand-in detector, and the real server driven by gradio_client.

The server tests start the real app in this process on a free loopback port and close it afterwards; the
photo test needs models/detector.onnx and the shared photos, and skips without them.
"""

from __future__ import annotations

import contextlib
import copy
import csv
import io
import json
import os
import re
import socket
import string
import subprocess
import sys
import time
import urllib.error
import urllib.request
import zipfile
from collections.abc import Iterator
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # gradio_client must not look up the Hugging Face hub
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

import cv2  # noqa: E402
import gradio as gr  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import zxingcpp  # noqa: E402
from PIL import Image  # noqa: E402

from pillcheck import config, images  # noqa: E402
from pillcheck.batch import photozip  # noqa: E402
from pillcheck.catalog.identify import Candidate, Identification  # noqa: E402
from pillcheck.pipeline import Pill, Pipeline, Report  # noqa: E402
from pillcheck.safety.dur import check  # noqa: E402
from pillcheck.ui import export, render, sheet  # noqa: E402
from pillcheck.ui.app import PillcheckApp, device_of, launch, local_time  # noqa: E402
from pillcheck.ui.i18n import STRINGS  # noqa: E402
from tests.conftest import SHARED, needs_shared  # noqa: E402

# Gradio's queue statistics use a pandas option that pandas 3 deprecates; not ours to fix.
pytestmark = pytest.mark.filterwarnings("ignore:.*(no_silent_downcasting|copy keyword).*")
PHOTOS = SHARED / "photos" / "pushin-pill" / "images"
DETECTOR = config.MODELS_DIR / "detector.onnx"
needs_detector = pytest.mark.skipif(not DETECTOR.is_file(), reason=f"{DETECTOR} not trained yet")
SECRET = "pillcheck-test-secret"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def serve_app(db: Path, pipeline: Pipeline | None = None) -> Iterator[str]:
    """The real app on a free loopback port for the duration of a block; closed (and its cache removed) after."""
    app = PillcheckApp(pipeline or Pipeline(db=db), secret=SECRET)
    demo = app.blocks()
    _, url, _ = launch(demo, host="127.0.0.1", port=free_port(), quiet=True, prevent_thread_lock=True)
    try:
        yield url
    finally:
        demo.close()


def jpeg(size: tuple[int, int] = (320, 240)) -> bytes:
    """A noisy photo (noise, so that cutting the file short really loses image data)."""
    buf = io.BytesIO()
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (size[1], size[0], 3), np.uint8)).save(buf, "JPEG")
    return buf.getvalue()


# ---------------------------------------------------------------------- a stand-in detector for the handlers
class TwoPills(Pipeline):
    """Decodes like the real pipeline, then 'finds' two demo pills: #1 sure (데모코나졸), #2 unsure (데모스타틴
    as the second choice; sure when a photo of its other side is given), so the handlers can be driven
    deterministically without a model."""

    def analyze(self, photo, my_meds=None, profile=None, *, conf=0.35, iou=0.5, confirmed=None,
                other_sides=None, history=None) -> Report:
        if not isinstance(photo, images.Decoded):
            photo = images.decode(photo, min_side=images.WORKING_SIDE)
        w, h = photo.size  # reports speak in full-size pixels

        def cand(seq: str, score: float) -> Candidate:
            return Candidate(seq, f"name {seq}", "company", score, "DS20", "원형", "분홍")

        pills = [Pill(1, [0.1 * w, 0.1 * h, 0.4 * w, 0.5 * h], 0.9,
                      Identification([cand("999900001", 0.95)], "sure", "DK100")),
                 Pill(2, [0.5 * w, 0.5 * h, 0.9 * w, 0.9 * h], 0.8,
                      Identification([cand("999900003", 0.5), cand("999900002", 0.4)], "unsure", "D520"))]
        if 2 in (other_sides or {}):  # its other side names it
            pills[1].identification = Identification([cand("999900003", 0.99)], "sure", "D520 // S3")
        items = [p.item_seq for p in pills if p.item_seq] + list(my_meds or [])
        return Report(w, h, pills, check(self.catalog.dur, items, profile), list(my_meds or []), self.catalog.data)


@pytest.fixture()
def two_pills(demo_db) -> PillcheckApp:
    return PillcheckApp(TwoPills(db=demo_db), secret=SECRET)


def upload(tmp_path: Path, data: bytes, name: str = "photo.jpg") -> dict:
    path = tmp_path / name
    path.write_bytes(data)
    return {"path": str(path), "orig_name": name}


# VIEW order in PillcheckApp.view: banner, status, warnings, result, cards, fix_box, pick, choice, meds_box, summary
BANNER, STATUS, WARNINGS, RESULT, CARDS, FIX, PICK, CHOICE, MEDS, SUMMARY = range(10)


def test_photo_then_correction_rechecks_at_once(two_pills, tmp_path):
    session, *view = two_pills.on_photo(upload(tmp_path, jpeg()), None, "ko", 0.35, 0.5)
    assert "데모 데이터" in view[BANNER] and "2개" in view[STATUS]
    assert "알약 #2" in view[WARNINGS] and "role='alert'" not in view[WARNINGS]  # #2 unsure: not checked, said so
    # ... and what it would mean if it is its second choice (0.4), as a condition, not a finding
    possible = view[WARNINGS][view[WARNINGS].index("pc-possible-list"):]
    assert "알약 #2이(가) [데모]데모스타틴정20밀리그램(데모스타틴)이라면 (보통)" in possible and "병용금기" in possible
    assert view[RESULT]["visible"] and view[RESULT]["value"].shape == (240, 320, 3)
    assert view[CARDS].count("pc-card ") == 2 and "확실하지 않음" in view[CARDS]
    assert view[PICK]["value"] == 2  # the first pill that needs the person
    tap = lambda x, y: two_pills.on_tap_photo(session, "ko", gr.SelectData(None, {"index": [x, y], "value": None}))  # noqa: E731
    pick, choice = tap(0.25 * 320, 0.3 * 240)  # inside pill #1's box: #1 is picked, its products offered
    assert pick["value"] == 1 and [v for _, v in choice["choices"]] == ["999900001"]
    assert tap(0.7 * 320, 0.7 * 240)[0]["value"] == 2 and tap(5, 230)[0] == {"__type__": "update"}  # no pill there
    assert "id='pc-card-2'" in view[CARDS]  # what the page scrolls to
    assert [v for _, v in view[CHOICE]["choices"]] == ["999900003", "999900002"]
    assert "data-pill='2' data-seq='999900002'" in view[CARDS]  # the card's own buttons (CARD_JS sends the tap)
    same = two_pills.on_card_choice(copy.deepcopy(session), {}, "en",
                                    gr.SelectData(None, {"index": 2, "value": "999900002"}))
    session, device, *view = two_pills.on_choose(session, 2, "999900002", {"save_corrections": True}, "en")
    assert all(same[2 + k] == view[k] for k in (WARNINGS, CARDS, SUMMARY))  # a tap == the picker
    assert device["history"] == ["999900002"]  # remembered on the device as one of this person's products
    assert "Danger · 병용금기" in view[WARNINGS] and "#1 [데모]데모코나졸" in view[WARNINGS]
    assert "Chosen by you" in view[CARDS] and "1 corrections collected" in view[STATUS]
    assert "1 new warning" in view[STATUS] and "pc-status-alert" in view[STATUS]  # raised by the choice: said
    _, _, *again = two_pills.on_choose(session, 2, "999900002", device, "en")
    assert "new warning" not in again[STATUS] and "Pill #2: set to" in again[STATUS]  # nothing new the second time
    odd = two_pills.on_card_choice(session, device, "en", gr.SelectData(None, {"index": "x", "value": None}))
    assert odd[0] is session and "Chosen by you" in odd[2 + CARDS]  # not a button's data: nothing changes
    report = two_pills.evaluate(session, device_of({}), "en").report()
    assert report["not_identified"] == [] and report["warnings"][0]["severity"] == "critical"
    session, *view = two_pills.on_rerun(session, None, "ko", 0.5, 0.45)  # the advanced sliders: detect again
    assert [p["status"] for p in session["pills"]] == ["sure", "unsure"] and session["corrections"] == []


def test_a_photo_of_the_other_side_names_the_pill(two_pills, tmp_path):
    session, *view = two_pills.on_photo(upload(tmp_path, jpeg()), None, "en", 0.35, 0.5)
    session, _, *view = two_pills.on_choose(session, 1, "999900002", {}, "en")  # the person corrects pill 1
    bad, *view = two_pills.on_other_side(upload(tmp_path, b"nope", "side.jpg"), session, 2, None, "en", 0.35, 0.5)
    assert bad is session and "error" in view[STATUS] and session["pills"][1]["status"] == "unsure"
    session, *view = two_pills.on_other_side(upload(tmp_path, jpeg(), "side.jpg"), session, 2, None, "en", 0.35, 0.5)
    assert [p["status"] for p in session["pills"]] == ["confirmed", "sure"]  # the choice for #1 is kept
    assert session["pills"][1]["imprint_read"] == "D520 // S3" and "Pill #2" in view[STATUS]
    assert view[-1]["value"] is None and "Next" not in view[STATUS]  # emptied for another side; none left to turn
    session, *view = two_pills.on_rerun(session, None, "en", 0.35, 0.5)  # new thresholds: sides are forgotten
    assert "sides" not in session and session["pills"][1]["status"] == "unsure"


def test_the_other_sides_are_asked_for_one_pill_after_another():
    """After one side photo: a pill still not named keeps the panel (choose it); a named one moves the panel to the
    next pill not named that has no side photo yet; with none left the message says only what was done."""
    pills = [{"index": i, "item_seq": seq} for i, seq in ((1, ""), (2, "A"), (3, ""), (4, ""))]
    message, pick = PillcheckApp.next_side(pills, {1: b"", 2: b""}, 2, "en")
    assert pick == 3 and "Pill #2" in message and "turn pill #3 over" in message
    message, pick = PillcheckApp.next_side(pills, {1: b""}, 1, "en")
    assert pick == 1 and "choose it below" in message
    message, pick = PillcheckApp.next_side(pills, {2: b"", 3: b"", 4: b"", 1: b""}, 2, "ko")
    assert pick == 2 and message == "알약 #2: 반대쪽 사진까지 함께 비교했습니다."


def test_my_medications_and_profile_join_every_check(two_pills, tmp_path):
    device, _, search_text, results, *view = two_pills.on_add_med("999900002", None, None, "ko")
    assert search_text == "" and results["choices"] == []
    assert device["meds"] == ["999900002"] and view[MEDS]["value"] == ["999900002"]
    session, *view = two_pills.on_photo(upload(tmp_path, jpeg()), device, "ko", 0.35, 0.5)
    assert "위험 · 병용금기" in view[WARNINGS] and "내 약: [데모]데모스타틴" in view[WARNINGS]
    assert "나이를 입력하면" in view[WARNINGS] and "임신 여부" in view[WARNINGS]  # neither said yet
    device, *view = two_pills.on_profile(8, "unknown", False, device, session, "ko")
    assert device["age"] == 8 and "0~130" not in view[STATUS]
    assert "나이를 입력하면" not in view[WARNINGS] and "임신 여부" in view[WARNINGS]  # the age is in, pregnancy not
    device, *view = two_pills.on_profile(70, "no", True, device, session, "ko")
    assert device["pregnant"] is False and "임신 여부" not in view[WARNINGS] and "수유 중" in view[WARNINGS]
    device, *view = two_pills.on_profile(70, "yes", False, device, session, "ko")
    assert device["pregnant"] is True and "나이와 맞지 않습니다" in view[STATUS]  # 70 and pregnant: asked
    device, *view = two_pills.on_profile(200, "no", False, device, session, "ko")
    assert "0~130" in view[STATUS]
    loaded = two_pills.on_load({**device, "pregnant": "yes?"})  # a browser's odd value is 'not said'
    assert loaded[3] == "unknown"
    device, again, *view, undo = two_pills.on_meds_edit([], device, session, "ko")
    assert device["meds"] == [] and "role='alert'" not in view[WARNINGS]  # left: #2's possible one only
    assert again is session and "다시 찾았습니다" in view[STATUS]  # the photo's pills were named again with the list
    assert "뺐습니다: [데모]데모스타틴" in view[STATUS] and undo["visible"] and device["undo"] == ["999900002"]
    assert "아직 추가한 약이 없습니다" in view[MEDS]["info"]
    device, again, *view, undo = two_pills.on_undo(device, again, "ko")  # one tap puts it back
    assert device["meds"] == ["999900002"] and device["undo"] == [] and not undo["visible"]
    assert "위험 · 병용금기" in view[WARNINGS] and view[MEDS]["info"] == ""
    assert "위험 1건" in view[SUMMARY] and "확인 필요 1알" in view[SUMMARY] and "내 약 1개" in view[SUMMARY]
    assert two_pills.search_choices("zzqqxx없는약", "ko")["info"].startswith("'zzqqxx없는약'에 맞는 약을 찾지 못했습니다")
    assert two_pills.search_choices("데모", "ko")["info"] == ""


@pytest.mark.parametrize("data, words, korean", [
    (b"", "empty", "빈 파일"),
    (b"%PDF-1.4 not a photo", "not a photo", "읽을 수 있는 사진이 아닙니다"),
    (jpeg()[: len(jpeg()) // 2], "damaged", "손상"),
])
def test_bad_photo_is_one_friendly_line(two_pills, tmp_path, data, words, korean):
    session, *view = two_pills.on_photo(upload(tmp_path, data), None, "en", 0.35, 0.5)
    assert session is None and words in view[STATUS] and "Traceback" not in view[STATUS]
    assert not view[RESULT]["visible"]
    session, *view = two_pills.on_photo(upload(tmp_path, data), None, "ko", 0.35, 0.5)
    text = re.sub(r"<[^>]+>", " ", view[STATUS])
    assert korean in text and not re.search(r"[a-z]{2,} [a-z]{2,}", text), text  # no English sentence
    device, *rest = two_pills.on_lang("en", {}, session)
    view = rest[len(two_pills.texts.items):]
    assert view[STATUS] == {"__type__": "update"} and "An aid" in view[BANNER]  # why it was refused stays said
    session, *_ = two_pills.on_photo(upload(tmp_path, jpeg()), None, "ko", 0.35, 0.5)
    device, *rest = two_pills.on_lang("en", {}, session)
    assert "Pills found: 2" in rest[len(two_pills.texts.items) + STATUS]  # with a photo: said again in English


def test_every_input_error_speaks_korean():
    for reason, english in images.MESSAGES.items():
        korean = STRINGS["ko"][f"input_{reason}"]
        fields = [{f for _, f, _, _ in string.Formatter().parse(x) if f} for x in (english, korean)]
        assert fields[0] == fields[1] and korean != english, reason


def test_missing_detector_is_a_friendly_line(demo_db, tmp_path):
    app = PillcheckApp(Pipeline(db=demo_db, models_dir=tmp_path / "no-models"), secret=SECRET)
    session, *view = app.on_photo(upload(tmp_path, jpeg()), None, "ko", 0.35, 0.5)
    assert session is None and "모델이 아직 준비되지" in view[STATUS] and "no-models" not in view[STATUS]


def test_report_and_corrections_files(two_pills, tmp_path):
    session, *_ = two_pills.on_photo(upload(tmp_path, jpeg((640, 480))), {"meds": ["999900008"]}, "ko", 0.35, 0.5)
    files, shown = two_pills.on_report(session, {"meds": ["999900008"]}, "ko")
    png, pdf, csv_path, _ = map(Path, files)
    assert shown["visible"] and shown["value"] == str(png)  # the picture is shown on the page, to save or share
    calm = np.asarray(Image.open(png).convert("RGB"))
    assert not (calm == sheet.SEVERITY_FILL["critical"][1]).all(axis=2).any()  # no danger found: no red bar
    rows = list(csv.DictReader(csv_path.read_text(encoding="utf-8-sig").splitlines()))
    assert [r["row"] for r in rows] == ["pill", "pill", "possible", "photo"]  # warnings once, not on every pill
    assert rows[2]["warning"].startswith("if #2 is 999900002 (0.40): 병용금기") and rows[2]["severity"] == "critical"
    assert rows[3]["found"] == "2" and rows[3]["not_checked"] == "#2 999900008"
    session, _, *_ = two_pills.on_choose(session, 2, "999900002", {"save_corrections": True}, "ko")
    png, pdf, csv_path, json_path = map(Path, two_pills.on_report(session, {"meds": ["999900008"]}, "ko")[0])
    picture = np.asarray(Image.open(png).convert("RGB"))
    assert picture.shape[1] == sheet.WIDTH and (picture == sheet.SEVERITY_FILL["critical"][1]).all(axis=2).any()
    assert (picture == render.STATUS_RGB["confirmed"]).all(axis=2).sum() > 100  # the photo, pill #2's box drawn in
    assert pdf.read_bytes().startswith(b"%PDF") and b"/Type /Page" in pdf.read_bytes()
    rows = list(csv.DictReader(csv_path.read_text(encoding="utf-8-sig").splitlines()))
    assert [r["row"] for r in rows] == ["pill", "pill", "warning", "photo"] and rows[1]["status"] == "confirmed"
    assert rows[2]["warning"].startswith("병용금기") and rows[2]["severity"] == "critical"  # found, no longer possible
    assert rows[2]["pills"] == "#1 #2" and rows[2]["data"] == "demo"
    payload = json.loads(json_path.read_text(encoding="utf-8"))
    assert payload["notice"].startswith("Demo data") and payload["reports"][0]["unchecked"] == ["999900008"]
    (zip_path,), _ = two_pills.on_corrections(session, "ko")
    with zipfile.ZipFile(zip_path) as zf:
        labels = list(csv.DictReader(io.StringIO(zf.read("pillcheck-corrections/labels.csv").decode())))
        assert list(labels[0]) == export.LABEL_FIELDS and labels[0]["item_seq"] == "999900002"
        crop = Image.open(io.BytesIO(zf.read("pillcheck-corrections/" + labels[0]["image"])))
        x1, y1, x2, y2 = (float(labels[0][k]) for k in ("x1", "y1", "x2", "y2"))
        assert 0 <= x1 < x2 <= crop.width and 0 <= y1 < y2 <= crop.height and labels[0]["subset"] == "user"


def test_batch_zip_is_validated(two_pills, tmp_path):
    path = tmp_path / "photos.zip"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("a.jpg", jpeg())
        zf.writestr("../../evil.jpg", jpeg())
        zf.writestr("notes.txt", "hello")
        zf.writestr("bomb.png", b"\0" * (8 * 2**20))  # 8 MB of zeros: ratio ~1000
        zf.writestr("broken.jpg", b"not a jpeg")
    names = {e.name: e.error and e.error.reason for e in photozip.PhotoZip(path)}
    assert names == {"a.jpg": None, "../../evil.jpg": "unsafe_name", "notes.txt": "not_photo_name",
                     "bomb.png": "zip_bomb", "broken.jpg": None}  # broken.jpg is refused when decoded
    files, status = two_pills.on_batch(str(path), {}, "en", 0.35, 0.5, progress=lambda *a, **k: None)
    rows = list(csv.DictReader(Path(files[0]).read_text(encoding="utf-8-sig").splitlines()))
    assert {r["image"] for r in rows} == set(names) and "Checked 1 of 5 files" in status
    assert "4 files could not be read" in status and "pc-status-error" in status
    errors = {r["image"]: r["error"] for r in rows}
    assert "not a photo pillcheck can read" in errors["broken.jpg"] and "zip bomb" in errors["bomb.png"]
    files, _ = two_pills.on_batch(str(path), {}, "ko", 0.35, 0.5, progress=lambda *a, **k: None)
    rows = list(csv.DictReader(Path(files[0]).read_text(encoding="utf-8-sig").splitlines()))
    errors = {r["image"]: r["error"] for r in rows}  # the person's language, in the file too
    assert "읽을 수 있는 사진이 아닙니다" in errors["broken.jpg"] and "zip 폭탄" in errors["bomb.png"]
    assert "안전하지 않은" in errors["../../evil.jpg"] and "확장자" in errors["notes.txt"]
    many = tmp_path / "many.zip"
    with zipfile.ZipFile(many, "w") as zf:
        for i in range(photozip.MAX_ENTRIES + 1):
            zf.writestr(f"{i}.jpg", b"x")
    with pytest.raises(images.InputError, match="limit"):
        photozip.PhotoZip(many)
    with pytest.raises(images.InputError, match="not a zip"):
        photozip.PhotoZip(upload(tmp_path, jpeg(), "fake.zip")["path"])


def test_batch_summary_never_reads_as_no_problem():
    """A photo whose only warning is a possible 병용금기 (a pill to confirm) is counted as a serious one."""
    clean = {"warnings": [{"severity": "caution"}], "possible_warnings": [], "not_identified": [],
             "pills": [{"status": "sure"}]}
    possible = {**clean, "possible_warnings": [{"p": 0.4}], "pills": [{"status": "unsure"}]}
    line = render.batch_summary([("a.jpg", clean, None), ("b.jpg", possible, None), ("c.txt", None, "x")], "ko")
    assert "파일 3개 중 사진 2장" in line and "위험 경고가 있는 사진 1장" in line and "확인해야 하는 사진 1장" in line
    assert "열지 못한 파일 1개" in line and "pc-status-error" in line
    calm = render.batch_summary([("a.jpg", clean, None)], "en")
    assert "0 photos with a serious warning" in calm and "pc-status-info" in calm


def test_render_pieces():
    rgb = np.full((200, 300, 3), 255, np.uint8)
    pills = [{"index": 7, "box": [20, 40, 120, 140], "status": "unsure", "candidates": [], "item_seq": None}]
    out = render.annotate(rgb, pills)
    assert tuple(out[90, 20]) == render.STATUS_RGB["unsure"]  # the box's left edge, in the status colour
    html = render.cards_html([{**pills[0], "candidates": [{"item_seq": "1", "name": "<b>x</b>", "score": 0.5,
                                                           "company": "c"}], "imprint_read": ""}], {}, "en")
    assert "&lt;b&gt;x&lt;/b&gt;" in html and "Not sure" in html and ">7<" in html
    assert "Turn the pill over" in html  # one side seen, not named: ask for the other
    # each candidate is a button on the card: what was tapped rides in data-*, the photo only from the MFDS site
    cands = [{"item_seq": f"{i}", "name": f"P{i}", "score": 0.3} for i in range(5)]
    info = {"0": {"image_url": "https://nedrug.mfds.go.kr/pbp/cmn/itemImageDownload/1", "imprint": "AB",
                  "shape": "원형", "colour": "하양"}, "1": {"image_url": "javascript:alert(1)"}}
    html = render.cards_html([{**pills[0], "candidates": cands, "imprint_read": ""}], info, "en")
    assert html.count("class='pc-cand'") == render.CARD_CHOICES and "data-pill='7' data-seq='0'" in html
    assert "src='https://nedrug.mfds.go.kr/pbp/cmn/itemImageDownload/1'" in html and "referrerpolicy='no-referrer'" in html
    assert html.count("<img") == 1 and "javascript" not in html and "AB · round · white" in html
    assert "pc-cand" not in render.cards_html([{**pills[0], "status": "sure", "item_seq": "0", "candidates": cands}],
                                              info, "en")
    both = render.cards_html([{**pills[0], "candidates": [], "imprint_read": "DK // 10"}], {}, "en")
    assert "Turn the pill over" not in both
    check_ = {"warnings": [{"severity": "caution", "kind": "SPLIT", "type_name": "분할주의", "items": ["a"],
                            "item_names": ["A"], "reason": "r", "notice_date": None},
                           {"severity": "critical", "kind": "CONTRAINDICATED", "type_name": "병용금기", "items": ["a", "b"],
                            "item_names": ["A", "B"], "reason": "r2", "notice_date": "20260101"}],
              "unchecked": ["b"], "unknown": [], "checks_skipped": ["AGE"]}
    panel = render.warnings_html(check_, {"a": "#1 A", "b": "my medication: B"}, [2], "en")
    assert panel.index("pc-critical") < panel.index("pc-cautions") and "#1 A + my medication: B" in panel
    # one product's cautions: one folded list, each reason its own line, never a card like the warnings
    doses = [{"severity": "caution", "kind": "DOSE", "type_name": "용량주의", "items": [s], "item_names": [s.upper()],
              "reason": f"1일 최대용량 {n}밀리그램", "notice_date": None} for s, n in (("a", 400), ("b", 10))]
    calm = render.warnings_html({**check_, "warnings": doses}, {"a": "#1 A", "b": "#2 B"}, [], "ko")
    assert "알려진 DUR 경고가 없습니다" in calm and "role='alert'" not in calm and "pc-warn pc-caution" not in calm
    assert "<details class='pc-cautions'>" in calm and "복용할 때 지킬 점 2건" in calm
    assert "400밀리그램</li><li><b>#2 B</b>" in calm
    assert "Pill #2: not identified" in panel and "no ingredient data" in panel and "not a guarantee" in panel
    assert "Nothing to check yet" in render.warnings_html(None, {}, [], "en")
    assert "No pill is identified yet" in render.warnings_html(None, {}, [1], "en")  # a photo, nothing named
    assert set(STRINGS["ko"]) == set(STRINGS["en"])
    possible = [{"warning": {**check_["warnings"][1], "items": ["a", "c"], "item_names": ["A", "C"]},
                 "if": {"2": "c"}, "p": 0.45}]
    panel = render.warnings_html(check_, {"a": "#1 A"}, [2], "en", possible, {"c": {"name": "<i>Cee</i>"}})
    found, maybe = panel.index("pc-critical'"), panel.index("pc-possible'")
    assert found < maybe < panel.index("Pill #2: not identified")  # found first, then what #2 could mean
    assert "If pill #2 is &lt;i&gt;Cee&lt;/i&gt; (medium)" in panel and "#1 A + #2 &lt;i&gt;Cee&lt;/i&gt;?" in panel
    assert panel.count("role='alert'") == 1  # the found serious warning only: #1's 분할주의 is in the folded list
    assert "<details class='pc-possible-list'>" in panel and "Confirm pill #2 below" in panel  # folded, quieter
    assert panel.count("pc-warn-do") == 1 and "Ask your pharmacist or doctor before taking" in panel  # found only
    faint = [*possible, {**possible[0], "p": 0.03}]  # a 3% one is counted, not shown
    panel = render.warnings_html(check_, {"a": "#1 A"}, [2], "en", faint, {"c": {"name": "C"}})
    assert "2 warnings that may apply" in panel and "1 less likely than 10% are not shown" in panel
    assert panel.count("pc-possible'") == 1
    assert "pc-possible" not in render.warnings_html(check_, {"a": "#1 A"}, [2], "en", [], {})


def test_cards_say_where_a_name_came_from():
    pill = {"index": 1, "box": [0, 0, 9, 9], "status": "sure", "item_seq": "1", "imprint_read": "LP80",
            "candidates": [{"item_seq": "1", "name": "리피논정80밀리그램", "score": 0.999, "company": "c"}]}
    assert "내 약: 리피논정80밀리그램과 일치" in render.cards_html([{**pill, "from_list": True}], {}, "ko")
    assert "내 약 목록에 없는 약" in render.cards_html([{**pill, "from_list": False}], {}, "ko")
    maybe = render.cards_html([{**pill, "status": "unsure", "from_list": True}], {}, "ko")
    assert "일 수 있습니다" in maybe and "일치" not in maybe  # the list's guess is not said as a match
    # the confidence word never contradicts the status: p 0.999 but not sure is not "매우 높음"
    assert "매우 높음" not in maybe and "높음" not in maybe.replace("보통", "") and "보통" in maybe
    assert "매우 높음" in render.cards_html([pill], {}, "ko")
    assert "Named from" not in render.cards_html([{**pill, "from_list": None}], {}, "en")  # no list, nothing said
    grouped = render.cards_html([{**pill, "from_list": True, "group": ["2", "3"]}], {}, "en")
    assert "Cannot be told from 2 other product(s) with the same ingredient" in grouped
    # named as a group without a list: the confidence is the group's, not its first product's half of it
    half = {**pill["candidates"][0], "score": 0.5, "evidence": {"group_probability": 0.999}}
    plain = render.cards_html([{**pill, "from_list": None, "group": ["2"], "candidates": [half]}], {}, "en")
    assert "Cannot be told from 1 other product(s)" in plain and "very high" in plain and "Named from" not in plain
    alone = render.cards_html([{**pill, "from_list": None, "candidates": [half]}], {}, "en")
    assert "very high" not in alone  # the group's probability speaks only for a group
    vowel = {**pill, "candidates": [{**pill["candidates"][0], "name": "판콜에이"}]}
    assert "판콜에이와 일치" in render.cards_html([{**vowel, "from_list": True}], {}, "ko")


def test_an_unsure_card_says_what_the_other_side_of_its_product_shows():
    cand = {"item_seq": "1", "name": "코바라탄정", "score": 0.6, "company": "c", "faces": ["HN", "VH16"],
            "evidence": {"face": "back"}}
    pill = {"index": 1, "box": [0, 0, 9, 9], "status": "unsure", "item_seq": None, "imprint_read": "VH16",
            "candidates": [cand]}
    assert "코바라탄정의 반대쪽 글자는 “HN”입니다" in render.cards_html([pill], {}, "ko")  # the face not read
    front = {**pill, "imprint_read": "HN", "candidates": [{**cand, "evidence": {"face": "front"}}]}
    assert "reads “VH16”" in render.cards_html([front], {}, "en")
    blank_back = {**pill, "candidates": [{**cand, "faces": ["VH16", ""], "evidence": {"face": "front"}}]}
    assert "has no imprint" in render.cards_html([blank_back], {}, "en")
    unread = {**pill, "imprint_read": "", "candidates": [{**cand, "faces": ["", "VH16"]}]}
    assert "reads “VH16”" in render.cards_html([unread], {}, "en")  # nothing read: the blank side is up
    # which side is up is not known (nothing read, both printed), both sides seen, or sure: nothing to say
    for quiet in ({**pill, "imprint_read": ""}, {**pill, "imprint_read": "VH16 // HN"}, {**pill, "status": "sure"}):
        assert "pc-other-side" not in render.cards_html([quiet], {}, "en")


def test_a_box_photo_adds_to_my_medications_or_says_why_not(two_pills, tmp_path):
    bars = np.array(zxingcpp.create_barcode("8806205000126", zxingcpp.BarcodeFormat.EAN13).to_image(scale=3))
    box = np.full((600, 800, 3), 235, np.uint8)
    box[200:200 + bars.shape[0], 200:200 + bars.shape[1]] = bars[..., None]
    ok, data = cv2.imencode(".jpg", box)
    device, _, *view, cleared = two_pills.on_scan(upload(tmp_path, data.tobytes(), "box.jpg"),
                                                  {"meds": ["999900008"]}, None, "ko")
    # the demo catalog has no reimbursement list: the code is read, the product is not known
    assert device["meds"] == ["999900008"] and "8806205000126" in view[STATUS] and cleared is None
    device, _, *view, _ = two_pills.on_scan(upload(tmp_path, jpeg(), "plain.jpg"), {}, None, "en")
    assert "No barcode could be read" in view[STATUS]
    device, _, *view, _ = two_pills.on_scan(upload(tmp_path, b"nope", "bad.jpg"), {}, None, "en")
    assert "error" in view[STATUS] and device["meds"] == []


def test_serve_command_arguments():
    import argparse

    from pillcheck.ui.serve import add_parser, parse_auth

    parser = argparse.ArgumentParser()
    add_parser(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["serve", "--port", "9000", "--share", "--auth", "ann:pa:ss"])
    assert (args.port, args.share, args.auth, args.host) == (9000, True, ("ann", "pa:ss"), None)
    with pytest.raises(argparse.ArgumentTypeError):
        parse_auth("nopassword")


def test_blocks_settings(demo_db):
    """Rear camera, not mirrored; personal state in the browser; one inference group of CONCURRENCY; private UI events."""
    from pillcheck.ui.app import CONCURRENCY, DELETE_CACHE, INFERENCE

    demo = PillcheckApp(Pipeline(db=demo_db), secret=SECRET).blocks()
    config_ = demo.get_config_file()
    for elem_id in ("pc-photo", "pc-other-side", "pc-scan"):  # rear camera, not mirrored: imprints and bars read
        (photo,) = [c["props"] for c in config_["components"] if c["props"].get("elem_id") == elem_id]
        assert photo["webcam_options"]["mirror"] is False and set(photo["sources"]) == {"upload", "webcam"}
        assert photo["webcam_options"]["constraints"]["video"]["facingMode"] == {"ideal": "environment"}
    (state,) = [c["props"] for c in config_["components"] if c["type"] == "browserstate"]
    assert state["storage_key"] == "pillcheck-device" and state["default_value"]["meds"] == []
    fns = {f.api_name: f for f in demo.fns.values()}
    assert {n for n, f in fns.items() if f.concurrency_id == INFERENCE} == {
        "on_photo", "on_rerun", "on_other_side", "on_batch", "analyze", "scan",
        "on_add_pill", "on_meds_edit", "on_undo", "on_add_med", "on_scan"}  # the list names the pills: it runs the models
    assert all(fns[n].concurrency_limit == CONCURRENCY for n in ("on_photo", "analyze"))
    assert {n for n, f in fns.items() if f.api_visibility == "public"} == {"analyze", "check", "search", "scan"}
    assert demo.delete_cache == DELETE_CACHE


# ---------------------------------------------------------------------- the real server, through gradio_client
@pytest.fixture(scope="module")
def client(demo_db):
    from gradio_client import Client

    with serve_app(demo_db) as url:
        yield Client(url, verbose=False)


def test_api_endpoints_are_named(client):
    assert set(client.view_api(print_info=False, return_format="dict")["named_endpoints"]) == {
        "/analyze", "/check", "/search", "/scan"}
    with urllib.request.urlopen(f"{client.src.rstrip('/')}/config", timeout=10) as r:
        served = json.load(r)
    assert served["max_file_size"] == 100 * 2**20 and served["analytics_enabled"] is False


def test_api_check_and_search(client):
    result = client.predict(items=["999900001", "999900002"], api_name="/check")
    (w,) = result["warnings"]
    assert (w["kind"], w["severity"], w["type_name"]) == ("CONTRAINDICATED", "critical", "병용금기")
    assert result["data"] == "demo" and result["notice"].startswith("Demo data")
    hits = client.predict(text="DS20", limit=3, api_name="/search")["results"]
    assert hits[0]["item_seq"] == "999900002"


def test_api_scan_reads_a_box(client, tmp_path):
    from gradio_client import handle_file

    bars = np.array(zxingcpp.create_barcode("8806205000126", zxingcpp.BarcodeFormat.EAN13).to_image(scale=3))
    box = tmp_path / "box.png"
    cv2.imwrite(str(box), np.pad(bars, 60, constant_values=255))
    (found,) = client.predict(photo=handle_file(str(box)), api_name="/scan")["products"]
    assert found["barcode"] == "8806205000126" and found["item_seq"] is None  # the demo catalog does not list it


def test_api_bad_uploads_are_friendly(client, tmp_path):
    from gradio.utils import get_upload_folder
    from gradio_client import handle_file
    from gradio_client.exceptions import AppError

    huge = tmp_path / "huge.png"
    Image.new("1", (10_000, 8_000)).save(huge)  # 80 MP, a few KB on disk
    cases = {"empty.jpg": b"", "notes.jpg": b"hello, not a photo", "cut.jpg": jpeg((800, 600))[:20_000],
             "huge.png": huge.read_bytes()}
    expected = {"empty.jpg": "empty", "notes.jpg": "not a photo", "cut.jpg": "damaged", "huge.png": "MP"}
    for name, data in cases.items():
        (tmp_path / name).write_bytes(data)
        with pytest.raises(AppError) as err:
            client.predict(photo=handle_file(str(tmp_path / name)), api_name="/analyze")
        assert expected[name] in str(err.value) and "Traceback" not in str(err.value), name
        assert not list(Path(get_upload_folder()).rglob(name)), f"{name}: the upload must be deleted once read"
    with pytest.raises(AppError, match="age"):
        client.predict(items=["999900001"], age=200, api_name="/check")
    assert client.predict(text="데모", limit=1, api_name="/search")["results"]  # still serving


@needs_detector
def test_api_odd_inputs_are_answered_and_the_server_keeps_serving(client, tmp_path):
    """The rest of the bad-input corpus through the real server: odd but valid photos are analysed; unknown
    codes, SQL-ish and extremely long text get an answer or one readable line, never a traceback."""
    from gradio_client import handle_file
    from gradio_client.exceptions import AppError

    base = Image.fromarray(np.random.default_rng(1).integers(0, 255, (240, 320, 3), np.uint8))
    gif = [base, base.transpose(Image.Transpose.FLIP_LEFT_RIGHT)]
    odd = {"grey.jpg": (base.convert("L"), "JPEG", {}), "cmyk.jpg": (base.convert("CMYK"), "JPEG", {}),
           "palette.png": (base.convert("P"), "PNG", {"transparency": 0}),
           "sixteen.png": (Image.fromarray(np.asarray(base.convert("L"), np.uint16) * 257), "PNG", {}),
           "alpha.png": (base.convert("RGBA"), "PNG", {}), "phone.heic": (base, "HEIF", {"quality": 80}),
           "moving.gif": (gif[0], "GIF", {"save_all": True, "append_images": gif[1:]})}
    for name, (img, fmt, kw) in odd.items():
        img.save(tmp_path / name, fmt, **kw)
        report = client.predict(photo=handle_file(str(tmp_path / name)), api_name="/analyze")
        assert (report["width"], report["height"]) == (320, 240) and isinstance(report["pills"], list), name
    result = client.predict(items=["123456789", "1' OR '1'='1"], api_name="/check")
    assert sorted(result["unknown"]) == ["1' OR '1'='1", "123456789"] and not result["warnings"]
    for items in (["9" * 5000], [str(i) for i in range(500)]):
        with pytest.raises(AppError, match="at most") as err:
            client.predict(items=items, api_name="/check")
        assert "Traceback" not in str(err.value)
    for text in ("'; DROP TABLE items; --", "%' OR 1=1 --", "가" * 100_000, "\x00\u202e" * 1000):
        assert isinstance(client.predict(text=text, limit=5, api_name="/search")["results"], list)
    assert client.predict(items=["999900001", "999900002"], api_name="/check")["warnings"]  # still serving


@needs_shared
@needs_detector
def test_api_analyze_a_photo(client):
    from gradio_client import handle_file
    from gradio_client.exceptions import AppError

    photo = sorted(PHOTOS.glob("*.jpg"))[0]
    report = client.predict(photo=handle_file(str(photo)), my_meds=["999900001", "999900002"], api_name="/analyze")
    assert report["pills"], "the detector found no pill on a real photo"
    pill = report["pills"][0]
    assert {"index", "box", "confidence", "status", "candidates", "item_seq"} <= set(pill)
    assert pill["status"] in ("sure", "unsure", "unknown") and len(pill["box"]) == 4
    assert report["warnings"][0]["severity"] == "critical" and report["data"] == "demo"
    both = client.predict(photo=handle_file(str(photo)), other_side=handle_file(str(photo)), other_pill=1,
                          api_name="/analyze")
    assert " // " in both["pills"][0]["imprint_read"]  # pill 1 was matched with the second photo too
    with pytest.raises(AppError, match="go together"):
        client.predict(photo=handle_file(str(photo)), other_pill=1, api_name="/analyze")


@needs_detector
def test_identical_photos_sent_at_once_are_all_answered(client, tmp_path):
    """Gradio stores byte-identical uploads as one file; the first request deletes it once read, the others are
    answered from the moment's memory (RecentUploads) instead of "send it again"; nothing stays on disk."""
    from gradio.utils import get_upload_folder
    from gradio_client import handle_file

    from pillcheck.training.scenes import table_with_pills

    img, _ = table_with_pills(640, 480)
    path = tmp_path / "same-photo.jpg"
    Image.fromarray(img).save(path, quality=90)
    jobs = [client.submit(photo=handle_file(str(path)), api_name="/analyze") for _ in range(4)]
    reports = [job.result(timeout=120) for job in jobs]
    assert all(len(r["pills"]) == 4 for r in reports)
    assert not list(Path(get_upload_folder()).rglob("same-photo.jpg"))


def test_an_upload_read_twice_at_once_is_in_memory_before_its_file_goes(monkeypatch, tmp_path):
    """Two requests for one uploaded file (two events at once): the one that finds the file already deleted by the
    other gets the bytes from memory, never "send it again" — the bytes are kept before the file is deleted."""
    from gradio.utils import get_upload_folder

    from pillcheck.ui import app as app_module

    folder = Path(get_upload_folder()) / f"race-{os.getpid()}"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "photo.jpg"
    path.write_bytes(jpeg())
    payload = {"path": str(path), "orig_name": "photo.jpg"}
    delete, seen = app_module.discard_upload, []

    def delete_then_read_again(p):  # the other request arrives right after this one deleted the file
        delete(p)
        if not seen:
            seen.append(None)
            seen[0] = app_module.read_upload(payload)[0]

    monkeypatch.setattr(app_module, "discard_upload", delete_then_read_again)
    data, _ = app_module.read_upload(payload)
    assert seen == [data] and not path.exists()
    folder.rmdir()


def test_recent_uploads_forget():
    from pillcheck.ui.app import RecentUploads

    recent = RecentUploads(ttl=0.2, max_bytes=10)
    recent.put("/up/a/x.jpg", b"12345")
    recent.put("/up/b/y.jpg", b"678")
    assert recent.get("/up/a/x.jpg") == b"12345" and recent.get("/up/c/z.jpg") is None
    recent.put("/up/c/z.jpg", b"abcd")  # over 10 bytes: the oldest goes first
    assert recent.get("/up/a/x.jpg") is None and recent.get("/up/c/z.jpg") == b"abcd"
    time.sleep(0.25)
    assert recent.get("/up/c/z.jpg") is None


def test_app_py_serves_with_login_and_share_falls_back(demo_db):
    """`python app.py` as deployed: prints the local URL, says when the share link cannot be made, serves
    behind the login given by --auth."""
    from gradio_client import Client

    port = free_port()
    env = {**os.environ, "PILLCHECK_BROWSER_SECRET": SECRET, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen([sys.executable, str(config.REPO_ROOT / "app.py"), "--db", str(demo_db), "--port", str(port),
                             "--host", "127.0.0.1", "--share", "--auth", "ann:pa:ss"], stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, env=env)
    try:
        lines: list[str] = []
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not any(x.startswith("pillcheck: public link") or "locally only" in x
                                                      for x in lines):
            line = proc.stdout.readline()
            if not line:
                break
            lines.append(line)
        text = "".join(lines)
        assert f"http://127.0.0.1:{port}" in text and "DEMO DATA" in text, text
        url = f"http://127.0.0.1:{port}/"
        with pytest.raises(urllib.error.HTTPError):
            urllib.request.urlopen(f"{url}config", timeout=10)  # no login, no app
        result = Client(url, auth=("ann", "pa:ss"), verbose=False).predict(items=["999900001", "999900002"],
                                                                          api_name="/check")
        assert result["warnings"][0]["severity"] == "critical"
    finally:
        proc.terminate()
        proc.wait(timeout=20)


def test_concurrency_setting_reaches_every_model_handler(demo_db, monkeypatch):
    """`serve --concurrency N`: every handler that runs the models (photo, batch, API analyze/scan) shares one
    group of N; threads per analysis split the cores so N analyses never oversubscribe them."""
    from pillcheck.ui.serve import split_cores

    monkeypatch.delenv("PILLCHECK_THREADS", raising=False)
    demo = PillcheckApp(Pipeline(db=demo_db), secret=SECRET, concurrency=3).blocks()
    groups = {(f.concurrency_id, f.concurrency_limit) for f in demo.fns.values() if f.concurrency_id == "inference"}
    named = {f.api_name for f in demo.fns.values() if f.concurrency_id == "inference"}
    assert groups == {("inference", 3)} and {"analyze", "scan"} <= named
    assert split_cores(None, None, cores=2) == (2, 1) and split_cores(1, None, cores=2) == (1, 2)
    assert split_cores(4, None, cores=2) == (4, 1) and split_cores(2, 3, cores=16) == (2, 3)
    monkeypatch.setenv("PILLCHECK_THREADS", "4")
    assert split_cores(2, None, cores=2) == (2, 4) and split_cores(2, 1, cores=2) == (2, 1)  # --threads first


def test_report_sheet_wraps_and_breaks_pages_between_rows(two_pills, tmp_path):
    """Long Korean names wrap inside the page; a report with many pills becomes several A4 pages, each holding
    whole rows (never a line cut in two); emoji are dropped (print fonts have none), Hangul kept."""
    assert sheet.plain("👉 복용 전에  ⚠️ 물어보세요") == "복용 전에 물어보세요"
    fnt = sheet.font(30)
    name = "[데모]아주긴이름의제품정" * 8
    lines = sheet.wrap(f"#1 {name} — 확인됨", fnt, 500)
    assert len(lines) > 2 and all(fnt.getlength(x) <= 500 for x in lines) and "".join(lines).replace(" ", "") == (
        f"#1{name}—확인됨")
    session, *_ = two_pills.on_photo(upload(tmp_path, jpeg((640, 480))), None, "en", 0.35, 0.5)
    many = [{**session["pills"][0], "index": i} for i in range(1, 41)]
    ev = two_pills.evaluate({**session, "pills": many}, device_of({}), "en")
    when = local_time("2026-12-03T09:30:00+09:00")  # the phone's clock, sent with the tap (LOCAL_TIME_JS)
    built = sheet.build(ev, None, "en", when, {"age": 72, "pregnant": False})
    assert "Made: 2026-12-03 09:30 (UTC+09:00)" in built.lines and "Age (years): 72 · Pregnancy: Not pregnant" in built.lines
    assert local_time("nonsense").tzinfo and local_time("2026-12-03T09:30:00").tzinfo  # no offset: the server's time
    pages = built.pages()
    room = sheet.PAGE_HEIGHT - 2 * sheet.MARGIN
    assert len(pages) >= 2 and all(p.size == (sheet.WIDTH, sheet.PAGE_HEIGHT) for p in pages)
    assert sum(r.height for r in built.rows) > room and max(r.height for r in built.rows) <= room
    assert built.image().height == sum(r.height for r in built.rows) + 2 * sheet.MARGIN
