"""Segmentation of a pill in its crop: the hull the reader measures, the background the appearance model loses."""

from __future__ import annotations

import cv2
import numpy as np

from pillcheck.inference.segment import GREY, mask_background, pill_hull


def cloth_pill(cloth: tuple[tuple[int, int, int], tuple[int, int, int]], pill=(235, 232, 225)) -> np.ndarray:
    """A 2:1 tablet on cloth of two colours, RGB."""
    img = np.full((160, 240, 3), cloth[0], np.uint8)
    cv2.fillPoly(img, [np.array([[0, 0], [150, 0], [60, 160], [0, 160]])], cloth[1])
    cv2.ellipse(img, (120, 80), (80, 40), 20, 0, 360, pill, -1)
    return img


def test_the_background_turns_grey_and_the_pill_is_kept():
    img = cloth_pill(((200, 60, 50), (40, 160, 70)))
    out = mask_background(img)
    inner = np.zeros(img.shape[:2], np.uint8)
    cv2.ellipse(inner, (120, 80), (76, 36), 20, 0, 360, 1, -1)
    outer = np.ones(img.shape[:2], np.uint8)
    cv2.ellipse(outer, (120, 80), (86, 46), 20, 0, 360, 0, -1)
    assert (out[inner > 0] == img[inner > 0]).all()
    assert (out[outer > 0] == GREY).mean() > 0.98


def test_the_same_pill_on_other_cloth_gives_the_same_crop():
    a = mask_background(cloth_pill(((200, 60, 50), (40, 160, 70))))
    b = mask_background(cloth_pill(((30, 40, 160), (220, 200, 40))))
    assert np.abs(a.astype(int) - b.astype(int)).mean() < 3


def test_nothing_to_find_leaves_the_crop_as_it_was():
    for img in (np.full((90, 90, 3), 200, np.uint8), np.zeros((4, 300, 3), np.uint8)):
        assert pill_hull(img) is None
        assert mask_background(img) is img


def test_a_pill_reaching_the_crop_edge_is_still_measured():
    """GrabCut takes the crop's outer ring for background, and this pill reaches it."""
    img = np.full((220, 340, 3), 120, np.uint8)
    cv2.ellipse(img, (170, 110), (130, 70), 60, 0, 360, (235, 230, 220), -1)
    (_, _), (a, b), _ = cv2.minAreaRect(pill_hull(img))
    assert 1.6 < max(a, b) / min(a, b) < 2.1
