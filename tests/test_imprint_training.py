"""The recognizer's training samples: the right label for each face, and the band that runs along the text."""

from __future__ import annotations

import numpy as np
import pytest

from pillcheck.training.imprint import face_label, upright_band


@pytest.mark.parametrize(("rec", "side", "label"), [
    ({"print_front": "마크분할선C8", "print_back": None}, "front", "C8"),
    ({"print_front": "T/A ER", "print_back": None}, "front", "TAER"),  # unfolded: O and 0 stay apart for training
    ({"print_front": "YF", "print_back": None}, "back", ""),  # no back imprint: a blank face
    ({"print_front": "YF", "print_back": "분할선"}, "back", ""),
    ({"print_front": "YO1", "print_back": "ck"}, "back", "CK"),
    ({"print_front": "에이프록센", "print_back": None}, "front", None),  # Hangul: outside the reader's alphabet
    ({"print_front": None, "print_back": "AB"}, "front", None),  # the catalog does not say
])
def test_face_label(rec, side, label):
    assert face_label(rec, side) == label


def _marked_sprite() -> np.ndarray:
    """An orange oblong pill (RGBA, upright, 3:1) with a dark mark, like a first character, at its left end."""
    h, w = 60, 180
    sprite = np.zeros((h, w, 4), np.uint8)
    sprite[..., :3] = (235, 140, 50)
    sprite[..., 3] = 255
    sprite[18:42, 20:50, :3] = 40
    return sprite


def test_upright_band_runs_along_the_text_at_any_angle():
    """The band picked for training starts where the upright sprite starts (its darkest column, the mark, is
    on the left), for random turns: a sign error in the angle convention picks the wrong band most of the time."""
    rng = np.random.default_rng(3)
    bands = [b for b in (upright_band(_marked_sprite(), rng) for _ in range(30)) if b is not None]
    assert len(bands) >= 25
    mark_left = [int(np.argmin(b.mean(axis=(0, 2)))) < b.shape[1] / 2 for b in bands]
    assert sum(mark_left) >= 0.8 * len(bands)  # the rest: a background patch darker than the mark
