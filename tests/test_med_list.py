"""The person's own medication list as evidence, and filling it from the box's barcode.

Ranking tests use the full official catalog with imprint reads given directly (no models needed); the pipeline
test renders a real catalog pill and runs the shipped models; barcode tests read generated EAN-13 and GS1
DataMatrix images, one of them printed on a carton photographed at an angle on a real phone photo's desk.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections import Counter

import cv2
import numpy as np
import pytest
import zxingcpp

from pillcheck import config
from pillcheck.barcode import read_codes
from pillcheck.catalog.normalize import normalize_imprint
from pillcheck.catalog.status import resolve_codes
from pillcheck.pipeline import Pipeline

from .conftest import SHARED, needs_shared

pytestmark = needs_shared


@pytest.fixture(scope="module")
def index(official):
    return official.candidates


def _twins(index, n: int) -> tuple[str, list[str]]:
    """A Latin front code printed on exactly ``n`` products (the first in code order), and those products."""
    products: dict[str, set[str]] = {}
    for seq, front in zip(index.item_seq, index.front):
        if 3 <= len(front) <= 6 and front.isascii() and front.isalnum():
            products.setdefault(front, set()).add(str(seq))
    code = min(c for c, s in products.items() if len(s) == n and Counter(index.front)[c] == n)
    return code, sorted(products[code])


def _reader(code: str):
    """A reader's CTC score that is sure the face says ``code`` (what the shipped reader gives a sharp imprint)."""
    return lambda texts: np.array([0.0 if normalize_imprint(t) == code else -30.0 for t in texts])


def test_the_list_ranks_look_alikes_but_does_not_make_them_sure(index):
    code, twins = _twins(index, 3)
    rank = lambda prior=None: index.rank(None, [code], _reader(code), prior=prior)  # noqa: E731
    plain = rank()
    assert plain.from_list is None and plain.best.item_seq in twins
    assert plain.status != "sure"  # three products carry this code: the pill alone cannot say which
    other = next(t for t in twins if t != plain.best.item_seq)
    mine = rank(index.list_prior([other, "200000913"]))
    assert mine.best.item_seq == other and mine.from_list is True  # fails if the list is ignored
    assert mine.best.evidence["my_list"] and mine.best.score > 0.9
    # ... but the other two look the same and are not the same medicine: the person is asked, not told
    assert mine.status != "sure" and mine.group == []
    both = rank(index.list_prior(twins[:2]))
    assert both.best.item_seq in twins[:2] and both.status != "sure"


def _code_pairs(index, same_kin: bool) -> list[str]:
    """Imprint codes on a face of exactly two products (one record each) with one 주성분코드 (ingredient, strength,
    form), and the same 분할주의 status as well (``same_kin``) or not."""
    by_code: dict[str, set[int]] = {}
    for i, faces in enumerate(zip(index.front, index.back)):
        for face in set(faces):
            if 3 <= len(face) <= 6 and face.isascii() and face.isalnum():
                by_code.setdefault(face, set()).add(i)
    return sorted(c for c, rows in by_code.items() if len({str(index.item_seq[i]) for i in rows}) == len(rows) == 2
                  and len({index.gnl[i] for i in rows}) == 1 and index.gnl[min(rows)]
                  and (len({index.dur_kin[i] for i in rows}) == 1) == same_kin)


def test_interchangeable_look_alikes_are_named_as_one_group(index):
    """The only two products with an imprint code on a face, interchangeable for every DUR check: the list names one
    of them surely, with the other as its group; without a list the pill is named surely as that group too (the
    person's medicine is one of the two, and the check is the same whichever)."""
    code = _code_pairs(index, same_kin=True)[0]
    a, b = sorted(str(index.item_seq[i]) for i, f in enumerate(zip(index.front, index.back)) if code in f)
    ident = index.rank(None, [code], _reader(code), prior=index.list_prior([a]))
    assert ident.best.item_seq == a and ident.status == "sure" and ident.group == [b]
    plain = index.rank(None, [code], _reader(code))
    assert plain.status == "sure" and plain.from_list is None
    assert sorted([plain.best.item_seq, *plain.group]) == [a, b]
    assert plain.best.score < 0.9  # sure as the group, not as the product shown first
    assert index.rank(None, [code]).status != "sure"  # a fuzzy read alone, no reader's CTC: not sure either way


def test_a_group_needs_every_check_the_same(index):
    """Two products with one code and one 주성분코드, but only one of them may not be split (분할주의): not a group, so
    the pill is not sure without the list; and a code shared with a product of another ingredient is not one."""
    code = _code_pairs(index, same_kin=False)[0]
    ident = index.rank(None, [code], _reader(code))
    assert ident.status != "sure" and ident.group == []
    code3, twins = _twins(index, 3)
    kin = {index.dur_kin[index.first_record[t]] for t in twins}
    assert len(kin) > 1 or "" in kin  # not one interchangeable group
    assert index.rank(None, [code3], _reader(code3)).status != "sure"


def test_a_list_match_against_contrary_imprint_evidence_is_not_sure(index):
    code, (product,) = _twins(index, 1)
    far = next(str(s) for s, f in zip(index.item_seq, index.front) if f and f[0] != code[0] and len(f) >= 3)
    # evidence weak enough (the fuzzy read alone, no reader's CTC) for the list to rank its product first: never sure
    weak = index.rank(None, [code], prior=index.list_prior([far]))
    assert weak.best.item_seq == far and weak.from_list is True and weak.status != "sure"
    # a sharp read of the pill's own code overrules the list: named from the whole catalog, and it says so
    sharp = index.rank(None, [code], _reader(code), prior=index.list_prior([far]))
    assert sharp.best.item_seq == product and sharp.from_list is False
    blank = index.rank(None, [], prior=index.list_prior([far]))  # nothing read at all
    assert blank.status != "sure"


def test_a_near_read_of_my_medicines_imprint_names_it_surely_and_only_with_the_list(index):
    """A read one letter off a listed product's code ('FLUL50JI' for 'FLU-50 JI'): sure with the list (nothing off the
    list comes close), never without it, and not on a read too short or too far from the code to say it."""
    code, (product,) = _twins(index, 1)
    vocab = set(index.front) | set(index.back)
    near = next(q for q in (code[:-1] + c for c in "QXZ7") if q not in vocab)
    other = next(str(s) for s, f in zip(index.item_seq, index.front) if f and f[0] != code[0] and len(f) >= 3)
    ctc = lambda texts: np.array([-3.0 if normalize_imprint(t) == code else -30.0 for t in texts])  # noqa: E731
    mine = index.list_prior([product, other])
    listed = index.rank(None, [near], ctc, prior=mine)
    assert listed.best.item_seq == product and listed.from_list is True and listed.status == "sure"
    assert index.rank(None, [near], ctc).status != "sure"  # off the list an exact read stays the rule
    assert index.rank(None, [near[-2:]], ctc, prior=mine).status != "sure"  # two characters say too little
    # ... also beside a long read that is not near the code: the length that counts is the near read's own
    assert index.rank(None, [code[:2], code[2:] + "WWW"], ctc, prior=mine).status != "sure"
    far = "".join("W" if ch != "W" else "M" for ch in code)
    assert index.rank(None, [far], ctc, prior=mine).status != "sure"


def test_a_logo_read_as_a_letter_is_my_medicine_not_a_product_with_that_letter(index):
    """A listed product whose front is a logo (마크) and nothing else; the pill is read as one letter, which is
    exactly the face of products off the list. The logo can look like that letter: the listed product leads (it
    lost to the letter's products before), never surely; without the list, or on a longer read, the letter wins."""
    letter = "S"
    exact = {str(s) for s, f, b in zip(index.item_seq, index.front, index.back) if letter in (f, b)}
    logo = next(str(s) for s, row, f, b in zip(index.item_seq, index.rows, index.front, index.back)
                if row[4] == "마크" and not f and b and letter not in b)
    mine = index.list_prior([logo, "200000913"])
    listed = index.rank(None, [letter], _reader(letter), prior=mine)
    assert listed.best.item_seq == logo and listed.from_list is True
    assert listed.status != "sure" and listed.best.evidence["imprint_similarity"] == 0
    assert index.rank(None, [letter], _reader(letter)).best.item_seq in exact  # no list: the letter's products
    code, (product,) = _twins(index, 1)  # a read of three or more characters is not a logo's
    assert index.rank(None, [code], _reader(code), prior=mine).best.item_seq == product


def test_a_read_that_is_part_of_my_medicines_face_names_it_not_surely(index):
    """The pill is read as a part of a listed product's face ('K' of 'KWJ': the rest worn, turned or out of
    focus), and that part is exactly the face of products off the list. The listed product leads, never surely
    (lost to the part's products before); without the list, or with a list that does not hold it, they win."""
    faces = Counter(index.front) + Counter(index.back)
    product, part = next((str(s), f[:2]) for s, f, b in zip(index.item_seq, index.front, index.back)
                         if 4 <= len(f) <= 6 and f.isascii() and f.isalpha() and not b and faces[f] == 1
                         and faces[f[:2]] >= 3)
    exact = {str(s) for s, f, b in zip(index.item_seq, index.front, index.back) if part in (f, b)}
    listed = index.rank(None, [part], _reader(part), prior=index.list_prior([product, "200000913"]))
    assert listed.best.item_seq == product and listed.from_list is True
    assert listed.status != "sure"
    assert index.rank(None, [part], _reader(part)).best.item_seq in exact  # no list: the part's products
    other = index.list_prior(["200000913"])
    assert index.rank(None, [part], _reader(part), prior=other).best.item_seq in exact


def test_a_pill_that_is_none_of_my_medicines_says_so(index):
    code, (product,) = _twins(index, 1)
    rng = np.random.default_rng(0)
    others = [str(s) for s in rng.choice(sorted(set(map(str, index.item_seq)) - {product}), 10, replace=False)]
    ident = index.rank(None, [code], _reader(code), prior=index.list_prior(others))
    assert ident.best.item_seq == product and ident.from_list is False
    assert index.list_prior(["123456789"]) is None  # a list of unknown codes changes nothing


@pytest.mark.skipif(not (config.MODELS_DIR / "imprint_rec.onnx").is_file(), reason="models not trained yet")
def test_the_pipeline_ranks_with_my_medicines(official_db):
    from pillcheck.inference.detector import Detections
    from pillcheck.training.identify_set import place
    from pillcheck.training.render import render, spec_from_record

    pipe = Pipeline(db=official_db)
    index = pipe.catalog.candidates
    code, twins = _twins(index, 2)
    con = pipe.catalog.cursor()
    cols = [d[0] for d in con.execute("SELECT * FROM appearance LIMIT 0").description]
    rec = dict(zip(cols, con.execute("SELECT * FROM appearance WHERE item_seq = ?", [twins[1]]).fetchone()))
    rng = np.random.default_rng(3)
    rgb, box = place(render(spec_from_record(rec, rng), 12.0, rng), rng, 220)
    det = Detections([box], [1.0], [0])
    (alone,) = pipe.identify(rgb, det)
    (mine,) = pipe.identify(rgb, det, mine=[twins[1], "200000913"])
    p = lambda ident: next((c.score for c in ident.candidates if c.item_seq == twins[1]), 0.0)  # noqa: E731
    assert alone.from_list is None and mine.from_list is True
    assert mine.best.item_seq == twins[1] and p(mine) > p(alone)


# ---------------------------------------------------------------- barcodes
def _ean_image(code: str, scale: int = 3) -> np.ndarray:
    return np.array(zxingcpp.create_barcode(code, zxingcpp.BarcodeFormat.EAN13).to_image(scale=scale))


def _listed(official) -> tuple[str, str]:
    return official.cursor().execute("""SELECT std_cd, item_seq FROM hira_products WHERE item_seq IN
        (SELECT item_seq FROM appearance) ORDER BY std_cd LIMIT 1""").fetchone()


def _carton_photo(bars: np.ndarray) -> np.ndarray:
    """A white carton with print and the barcode, tilted in perspective on a real desk photo (pushin-pill)."""
    desks = sorted((SHARED / "photos" / "pushin-pill").rglob("*.jpg"))
    desk = cv2.cvtColor(cv2.imread(str(desks[0])), cv2.COLOR_BGR2RGB) if desks else np.full((640, 480, 3), 120, np.uint8)
    desk = cv2.resize(desk, (1800, 2400))
    carton = np.full((700, 1100, 3), 240, np.uint8)
    cv2.putText(carton, "10 mg x 30", (50, 150), cv2.FONT_HERSHEY_SIMPLEX, 3, (20, 70, 150), 7)
    bars = cv2.cvtColor(bars, cv2.COLOR_GRAY2RGB)
    carton[380:380 + bars.shape[0], 500:500 + bars.shape[1]] = bars
    src = np.float32([[0, 0], [1100, 0], [1100, 700], [0, 700]])
    dst = np.float32([[300, 700], [1500, 900], [1400, 1700], [250, 1450]])  # ~12 degrees, one side nearer
    m = cv2.getPerspectiveTransform(src, dst)
    warped = cv2.warpPerspective(carton, m, (1800, 2400))
    mask = cv2.warpPerspective(np.ones(carton.shape[:2], np.uint8), m, (1800, 2400)).astype(bool)
    desk[mask] = warped[mask]
    ok, jpeg = cv2.imencode(".jpg", desk, [cv2.IMWRITE_JPEG_QUALITY, 85])
    return cv2.imdecode(jpeg, cv2.IMREAD_COLOR)


def test_barcodes_are_read_from_generated_ean13_and_gs1_datamatrix():
    code = "8806205000126"
    assert read_codes(_ean_image(code)) == [code]
    gs1 = zxingcpp.create_barcode(f"(01)0{code}(17)281231(10)A1B2", zxingcpp.BarcodeFormat.DataMatrix, gs1=True)
    assert read_codes(np.array(gs1.to_image(scale=6))) == [code]
    blank = np.full((400, 400, 3), 255, np.uint8)
    assert read_codes(blank) == []
    lot = np.array(zxingcpp.create_barcode("LOT12345", zxingcpp.BarcodeFormat.Code128).to_image(scale=3))
    assert read_codes(lot) == []  # a lot number is no package code


def test_a_box_photographed_at_an_angle_adds_its_product(official, official_db):
    code, seq = _listed(official)
    photo = _carton_photo(_ean_image(code))
    ok, jpeg = cv2.imencode(".jpg", cv2.cvtColor(photo, cv2.COLOR_RGB2BGR))
    found = Pipeline(db=official_db).scan_box(jpeg.tobytes())
    assert [f["item_seq"] for f in found] == [seq]
    assert found[0]["name"] and "imprint" in found[0] and found[0]["shape"]  # to hold against the pill


def test_barcodes_in_my_medicines_name_their_products(official, tmp_path):
    code, seq = _listed(official)
    con = official.cursor()
    assert resolve_codes(con, [code, "200000913", f"(01)0{code}", "8800000000006", " "]) == [seq, "200000913",
                                                                                               "8800000000006"]
    run = lambda *a: subprocess.run([sys.executable, "-m", "pillcheck.cli", *a, "--db", str(official.path)],  # noqa: E731
                                    capture_output=True, text=True, timeout=120)
    out = json.loads(run("check", code, "200000913", "--json").stdout)
    assert out["unknown"] == [] and seq in out["products"]
    box = tmp_path / "box.jpg"
    cv2.imwrite(str(box), cv2.cvtColor(_carton_photo(_ean_image(code)), cv2.COLOR_RGB2BGR))
    scanned = run("scan", str(box), "--json")
    assert scanned.returncode == 0, scanned.stderr
    assert [p["item_seq"] for p in json.loads(scanned.stdout)[0]["products"]] == [seq]
    empty = tmp_path / "empty.jpg"
    cv2.imwrite(str(empty), np.full((300, 300, 3), 200, np.uint8))
    text = run("scan", str(empty))
    assert text.returncode == 0 and "no package barcode could be read" in text.stdout


def test_simulated_lists_hold_what_they_say(index):
    from pillcheck.training.med_lists import ABSENT, HELD, Lookalikes, simulated_lists

    looks = Lookalikes(index)
    code, twins = _twins(index, 3)
    photo = [twins[0]]  # its only look-alikes are the other two twins
    lists = simulated_lists("photo-1.jpg", photo, looks)
    assert lists == simulated_lists("photo-1.jpg", photo, looks)  # reproducible per image
    assert lists["none"] is None and len(lists["own+6-random"]) == len(photo) + 6
    for k in HELD:
        held = lists[f"own+{k}"]
        assert held[:1] == photo and len(set(held)) == len(photo) + k
        assert set(twins[1:]) <= set(held)  # half of the others are look-alikes: both twins are among them
    for case in (f"absent{ABSENT}", f"absent{ABSENT}-lookalike"):
        assert len(lists[case]) == ABSENT and not set(lists[case]) & set(photo)
    assert set(looks.of(twins[0])) >= set(twins[1:])
