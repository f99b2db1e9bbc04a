"""The hint a photo gets must fit its case: dark, washed out, blurred, a pill cut off (too close), pills tiny (too
far), or no pill; never "come closer" under a close-up."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from pillcheck import images
from pillcheck.inference.detector import Detections, intersections
from pillcheck.inference.photo_advice import advise, sharpness
from pillcheck.training.scenes import read_yolo, table_with_pills
from tests.conftest import SHARED

PUSHIN = SHARED / "photos" / "pushin-pill"


def test_a_clear_photo_with_its_pills_needs_no_change():
    img, boxes = table_with_pills(1600, 1200)
    assert advise(img, Detections(boxes, np.ones(len(boxes)), np.zeros(len(boxes)))) is None


def test_dark_washed_out_and_blurred():
    img, boxes = table_with_pills(1600, 1200)
    found = Detections(boxes, np.ones(len(boxes)), np.zeros(len(boxes)))
    assert advise((img * 0.2).astype(np.uint8), found) == "dark"
    assert advise(np.full_like(img, 250), Detections()) == "bright"
    assert advise(cv2.GaussianBlur(img, (0, 0), 6), Detections()) == "blurred"
    assert advise(img, Detections()) == "no_pill"  # sharp and lit: the hint says so, not "come closer"


def test_a_pill_cut_by_the_frame_says_step_back_and_tiny_pills_say_come_closer():
    img, _ = table_with_pills(1600, 1200)
    cut = Detections([[0, 300, 500, 800]], [0.9], [0])  # a third of the frame wide, at its left edge
    assert advise(img, cut) == "cut_off"
    tiny = Detections([[100, 100, 112, 110], [300, 300, 311, 312]], [0.9, 0.9], [0, 0])  # 10 px in 1200
    assert advise(img, tiny) == "too_far"
    inside = Detections([[400, 300, 900, 800]], [0.9], [0])  # a close-up's pill, whole: nothing to change
    assert advise(img, inside) is None


@pytest.mark.skipif(not PUSHIN.is_dir(), reason="needs ../shared/data")
def test_real_phone_photos_are_sharp_and_their_blurred_copies_are_not():
    photos = sorted((PUSHIN / "images").glob("*.jpg"))[::12]
    for p in photos:
        rgb = images.load(p)
        assert sharpness(rgb) > 20, p.name
        k = max(rgb.shape[:2]) / 800
        assert sharpness(cv2.GaussianBlur(rgb, (0, 0), 3 * k)) < 20, p.name
        h, w = rgb.shape[:2]
        boxes = read_yolo(PUSHIN / "labels" / f"{p.stem}.txt", w, h)
        if len(boxes):
            assert advise(rgb, Detections(boxes, np.ones(len(boxes)), np.zeros(len(boxes)))) in (None, "cut_off")


def test_the_report_carries_the_hint(demo_db):
    from pillcheck.pipeline import Pipeline

    rng = np.random.default_rng(0)
    table = np.clip(np.full((900, 1200, 3), (150, 110, 70), np.float32) + rng.normal(0, 6, (900, 1200, 3)), 0, 255)
    table = table.astype(np.uint8)
    cv2.line(table, (100, 100), (1100, 120), (40, 30, 20), 3)  # the table's edge: sharp, no pill
    report = Pipeline(db=demo_db).analyze(table)
    assert report.pills == [] and report.to_dict()["advice"] == "no_pill"
    assert Pipeline(db=demo_db).analyze(cv2.GaussianBlur(table, (0, 0), 8)).advice == "blurred"


def _apart(boxes: np.ndarray) -> np.ndarray:
    """The boxes that overlap no other: what the detector finds of a heap, its edge (issue 22's real piles)."""
    inter = intersections(boxes, boxes)
    np.fill_diagonal(inter, 0)
    return boxes[~(inter > 0).any(1)]


def _heap(n: int, spread: float, seed: int = 0, colours: tuple = ((205, 200, 180),)) -> tuple[np.ndarray, np.ndarray]:
    """``n`` oblong pills (40 x 16 px, ``colours`` in turn) on a brown table, around its middle (normal, sd ``spread``
    px; later pills lie on earlier ones) or on a grid when ``spread`` is 0; image and boxes."""
    rng = np.random.default_rng(seed)
    img = np.clip(np.full((900, 1200, 3), (150, 110, 70), np.float32) + rng.normal(0, 5, (900, 1200, 3)), 0, 255)
    img = img.astype(np.uint8)
    boxes = []
    for i in range(n):
        c = ((100 + 90 * (i % 12), 100 + 70 * (i // 12)) if not spread
             else tuple(rng.normal((600, 450), spread)))
        poly = cv2.ellipse2Poly((int(c[0]), int(c[1])), (20, 8), int(rng.uniform(0, 180)), 0, 360, 5)
        cv2.fillPoly(img, [poly], colours[i % len(colours)])
        cv2.polylines(img, [poly], True, (120, 110, 95), 1)  # the rim's shadow
        x, y, bw, bh = cv2.boundingRect(poly)
        boxes.append([x, y, x + bw, y + bh])
    return img, np.array(boxes, np.float32)


def _found(boxes: np.ndarray) -> Detections:
    return Detections(boxes, np.ones(len(boxes)), np.zeros(len(boxes)))


def test_a_heap_says_spread_them_out_even_when_only_its_edge_was_found():
    img, boxes = _heap(120, 120)
    edge = _apart(boxes)
    assert len(edge) >= 10  # a heap's edge pills lie apart, as the real piles' found ones did
    assert advise(img, _found(boxes)) == "pile"  # every pill found: they lie on each other
    assert advise(img, _found(edge)) == "pile"  # the edge alone: the rest of the heap is their colour, unboxed
    assert advise(img, _found(edge[:5])) == "pile"  # five of them: a small heap's edge
    img, boxes = _heap(48, 0)
    assert advise(img, _found(boxes)) is None  # the same pills laid out apart
    img, boxes = _heap(48, 0, colours=((235, 235, 230), (230, 200, 60), (230, 140, 160), (90, 120, 210)))
    assert advise(img, _found(boxes[::3])) is None  # a mixed handful: no one product's colour to look for


@pytest.mark.skipif(not PUSHIN.is_dir(), reason="needs ../shared/data")
def test_real_photos_of_many_pills_apart_are_not_a_heap():
    """The real phone photos with five pills or more (up to 22, on desks and in palms): their true boxes."""
    checked = 0
    for p in sorted((PUSHIN / "images").glob("*.jpg")):
        rgb = images.load(p)
        boxes = read_yolo(PUSHIN / "labels" / f"{p.stem}.txt", rgb.shape[1], rgb.shape[0])
        if len(boxes) >= 5:
            checked += 1
            assert advise(rgb, _found(boxes)) != "pile", p.name
    assert checked >= 60
