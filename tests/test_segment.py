"""Segmentation of a pill in its crop: the hull the reader turns its text along and measures."""

from __future__ import annotations

import cv2
import numpy as np

from pillcheck.inference import segment
from pillcheck.inference.segment import pill_hull, pill_outline
from pillcheck.pipeline import IMPRINT_MARGIN, imprint_crop
from pillcheck.training.cutouts import extract
from pillcheck.training.identify_set import place
from tests.conftest import PHOTOS, needs_shared, white_ruler_photos


def test_a_crop_with_nothing_to_find_gives_no_hull():
    for img in (np.full((90, 90, 3), 200, np.uint8), np.zeros((4, 300, 3), np.uint8)):
        assert pill_hull(img) is None


def test_a_pill_reaching_the_crop_edge_is_still_measured():
    """GrabCut takes the crop's outer ring for background, and this pill reaches it."""
    img = np.full((220, 340, 3), 120, np.uint8)
    cv2.ellipse(img, (170, 110), (130, 70), 60, 0, 360, (235, 230, 220), -1)
    (_, _), (a, b), _ = cv2.minAreaRect(pill_hull(img))
    assert 1.6 < max(a, b) / min(a, b) < 2.1


@needs_shared
def test_a_white_pill_on_a_pale_background_is_found_whole(monkeypatch):
    """The pill's box is tight around it, so the hull of the pill should span the box. White faces of 40 official
    photos, each placed three times on photo-like backgrounds: GrabCut without a sure centre sometimes kept only
    the shadowed rim of a white pill on a pale background (a round face measured 2.4:1 in the evaluation set, its
    text then missed). Seeding the centre as pill, and segmenting a hull that spans too little of its crop again at
    a finer size, leave 4 such hulls of 240 (spanning < 70%) against 14 (10 with the seed alone)."""
    faces = [c.rgba for r in white_ruler_photos()[-40:] for c in extract(PHOTOS / r["file"])]

    def short_hulls() -> int:
        rng = np.random.default_rng(0)
        short = 0
        for rgba in faces:
            for _ in range(3):
                img, box = place(rgba, rng, rng.uniform(120, 240))
                pixels, _ = imprint_crop(img, np.array(box))
                hull = pill_outline(pixels)
                inner = np.array(pixels.shape[1::-1]) / (1 + 2 * IMPRINT_MARGIN)  # the box, in crop pixels
                span = cv2.boundingRect(hull.astype(np.float32))[2:] / inner if hull is not None else np.zeros(2)
                short += span.min() < 0.7
        return short

    shipped = short_hulls()
    monkeypatch.setattr(segment, "SEG_CENTRE", 0.0)
    monkeypatch.setattr(segment, "SHORT_SPAN", 0.0)
    plain = short_hulls()
    assert shipped < plain and shipped <= 0.03 * len(faces) * 3, (shipped, plain)
