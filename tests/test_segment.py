"""Segmentation of a pill in its crop: the hull the reader turns its text along and measures."""

from __future__ import annotations

import cv2
import numpy as np

from pillcheck.inference.segment import pill_hull


def test_a_crop_with_nothing_to_find_gives_no_hull():
    for img in (np.full((90, 90, 3), 200, np.uint8), np.zeros((4, 300, 3), np.uint8)):
        assert pill_hull(img) is None


def test_a_pill_reaching_the_crop_edge_is_still_measured():
    """GrabCut takes the crop's outer ring for background, and this pill reaches it."""
    img = np.full((220, 340, 3), 120, np.uint8)
    cv2.ellipse(img, (170, 110), (130, 70), 60, 0, 360, (235, 230, 220), -1)
    (_, _), (a, b), _ = cv2.minAreaRect(pill_hull(img))
    assert 1.6 < max(a, b) / min(a, b) < 2.1
