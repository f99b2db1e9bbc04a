"""The recognizer's training samples: the right label for each face, and the band that runs along the text."""

from __future__ import annotations

import numpy as np
import pytest

from pillcheck.inference.imprint import ALPHABET
from pillcheck.training.imprint import catalog_syllables, face_label, upright_band
from pillcheck.training.render import FONT_DIR, PillSpec, drawn_text, hangul_fonts, render


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


def test_face_label_with_hangul_in_the_alphabet():
    rec = {"print_front": "MTS 이탄탄큐", "print_back": "마크"}
    alphabet = ALPHABET + catalog_syllables({"1": rec, "2": {"print_front": "에이프록센", "print_back": "AB"}})
    assert catalog_syllables({"1": rec}) == "".join(sorted("이탄큐"))  # 마크 is the logo token, not an imprint
    assert face_label(rec, "front", alphabet) == "MTS이탄탄큐"
    assert face_label(rec, "back", alphabet) == ""
    assert face_label({"print_front": "현대", "print_back": None}, "front", alphabet) is None  # 현, 대 unknown


@pytest.mark.parametrize(("imprint", "hangul", "text"), [
    ("MTS 이탄탄큐", False, "MTS"),  # the Hershey font has no Hangul: only the Latin part is drawn
    ("MTS 이탄탄큐", True, "MTS이탄탄큐"),
    ("마크분할선C8", True, "C8"),
    ("ABCDEFGHIJ", True, "ABCDEFGH"),  # Latin imprints are cut at 8 characters either way
    ("현대약품 마이녹실S 가나", True, "현대약품마이녹실S가나"[:12]),
])
def test_drawn_text(imprint, hangul, text):
    assert drawn_text(imprint, hangul) == text


@pytest.mark.skipif(not FONT_DIR.is_dir(), reason="Debian's fonts-nanum is not installed")
def test_hangul_is_drawn_in_a_korean_font_one_word_per_capsule_half():
    """A capsule with two words carries one on each half: ink on both halves, not across the seam."""
    spec = PillSpec("장방형", ["노랑"], 20.0, 7.0, capsule=True, imprint="알리코 폴리아린")
    fonts = hangul_fonts()
    inked = []
    for seed in range(6):
        sprite = render(spec, 16.0, np.random.default_rng(seed), fonts)
        ink = np.abs(sprite[..., :3].astype(int) - np.median(sprite[20:-20, 30:-30, :3], (0, 1))).max(-1) > 60
        cols = ink[sprite.shape[0] // 3: -sprite.shape[0] // 3].any(0)
        w = sprite.shape[1]
        inked.append(cols[int(0.1 * w): int(0.45 * w)].sum() > 0.1 * w and cols[int(0.55 * w): int(0.9 * w)].sum()
                     > 0.1 * w and not cols[int(0.48 * w): int(0.52 * w)].all())
    assert all(inked)


def test_no_font_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="fonts-nanum"):
        hangul_fonts(tmp_path)


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
