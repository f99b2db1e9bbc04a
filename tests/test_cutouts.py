"""Cut-outs of the official photos are the training and evaluation material of every model: a face must be cut
whole, whatever its colour (white pills on the light grid are the hard case)."""

from __future__ import annotations

import cv2
import duckdb
import numpy as np
import pytest

from pillcheck.training.cutouts import PX_PER_MM_PER_WIDTH, extract, half_face, has_ruler
from tests.conftest import PHOTOS, needs_shared, white_ruler_photos


def _sides(rgba: np.ndarray) -> tuple[float, float]:
    (_, _), (w, h), _ = cv2.minAreaRect(cv2.findNonZero(rgba[..., 3]))
    return max(w, h), min(w, h)


@needs_shared
def test_white_pills_are_cut_whole(official_db):
    """60 white products: both faces of a pill have one size, and the long side at the ruler's scale is the
    catalog's (0.90-1.15). When the pale half of a face was lost: 53 of 57 pairs and 106 of 115 faces; now 56
    and 111."""
    rows = white_ruler_photos()[:60]
    with duckdb.connect(str(official_db), read_only=True) as con:
        length = dict(con.execute("SELECT item_seq, max(leng_long) FROM appearance GROUP BY 1").fetchall())
    pairs = agree = measured = right_length = 0
    for r in rows:
        cuts = extract(PHOTOS / r["file"])
        sides = [_sides(c.rgba) for c in cuts]
        if len(sides) == 2:
            pairs += 1
            agree += all(abs(a - b) < 0.05 * max(a, b) for a, b in zip(*sides))
        if length.get(r["item_seq"]):
            px_per_mm = int(r["width"]) * PX_PER_MM_PER_WIDTH
            for long_px, _ in sides:
                measured += 1
                right_length += 0.90 <= long_px / px_per_mm / float(length[r["item_seq"]]) <= 1.15
    assert pairs >= 55 and measured >= 100
    assert agree >= 0.95 * pairs
    assert right_length >= 0.95 * measured


@needs_shared
def test_a_pale_face_is_not_cut_in_half():
    """201103469 ('BIP', a white round tablet): the old threshold lost the duller side of both faces (150 x
    158 and 148 x 164 px); whole, each face is as wide as it is tall (159 x 163, 159 x 164)."""
    if not (PHOTOS / "images" / "201103469.jpg").is_file():
        pytest.skip("reference photo 201103469 not found")
    cuts = extract(PHOTOS / "images" / "201103469.jpg")
    assert [c.side for c in cuts] == ["front", "back"]
    for c in cuts:
        ys, xs = np.nonzero(c.rgba[..., 3])
        assert abs(np.ptp(xs) - np.ptp(ys)) <= 0.04 * np.ptp(ys)


def _catalog_aspect(db, item_seq: str) -> float:
    with duckdb.connect(str(db), read_only=True) as con:
        long, short = con.execute("SELECT max(leng_long), max(leng_short) FROM appearance WHERE item_seq = ?",
                                  [item_seq]).fetchone()
    return float(long) / float(short)


def _photo(name: str):
    if not (PHOTOS / "images" / name).is_file():
        pytest.skip(f"reference photo {name} not found")
    return PHOTOS / "images" / name


@needs_shared
def test_a_small_pale_pill_is_cut(official_db):
    """199200144 (스부롤정, small light-blue rounds 'HT' | 'SR'): its seeds were too small to count, so the photo gave
    no face until 2026-12-07 (77 of 2,223 photos gave none). Both faces now, each as round as the catalog says."""
    cuts = extract(_photo("199200144.jpg"))
    assert [c.side for c in cuts] == ["front", "back"]
    for c in cuts:
        long, short = _sides(c.rgba)
        assert abs(long / short - _catalog_aspect(official_db, "199200144")) < 0.1


@needs_shared
def test_half_of_a_white_pill_is_not_a_face(official_db):
    """200500629 and 200903830 (white tablets): a small seed on their shaded lower half grows no further; a face cut
    from it would be half a pill. Any face given has the catalog's proportions."""
    for name in ("200500629.jpg", "200903830.jpg"):
        aspect = _catalog_aspect(official_db, name.removesuffix(".jpg"))
        for c in extract(_photo(name)):
            long, short = _sides(c.rgba)
            assert abs(long / short - aspect) < 0.15 * aspect, name


@needs_shared
def test_two_touching_soft_capsules_are_two_faces(official_db):
    """200302374 (메가콘트로연질캡슐 'MGCT'): two big dark capsules lying across the centre line, touching, made one
    seed and one face holding both until 2026-12-07 (38 photos gave one face). Now the front and the back, each a
    capsule of the catalog's proportions, side by side."""
    cuts = extract(_photo("200302374.jpg"))
    assert [c.side for c in cuts] == ["front", "back"]
    aspect = _catalog_aspect(official_db, "200302374")
    for c in cuts:
        long, short = _sides(c.rgba)
        assert abs(long / short - aspect) < 0.15 * aspect
    (a0, _, a1, _), (b0, _, b1, _) = (c.box for c in cuts)
    assert a0 < b0 and a1 < b1


@needs_shared
def test_the_zoomed_style_without_a_ruler_keeps_its_faces_whole(official_db):
    """The zoomed style (138 of 2,223 photos: a plain blue background, the size drawn as dimension lines, no ruler)
    puts the back face high and to the right, where the grid photos have their rulers, and its two pills touch.
    Until 2026-12-07 the ruler bands were cut from it too: the back faces of these four came out flat on top or at
    the right (aspect 15-32% over the catalog's), and a front face could take a part of the back one (200811364's
    18% over). Both faces now have the catalog's proportions (within 4%) and one length; 201000674's dark red back
    face reaches into the ruler's band, where the ruler is told by its ticks, not by dark pixels."""
    for name in ("200811364.jpg", "200903579.jpg", "200904697.jpg", "200710782.jpg", "201000674.jpg"):
        assert not has_ruler(cv2.imread(str(_photo(name)))), name
        cuts = extract(_photo(name))
        assert [c.side for c in cuts] == ["front", "back"], name
        aspect = _catalog_aspect(official_db, name.removesuffix(".jpg"))
        sides = [_sides(c.rgba) for c in cuts]
        for long, short in sides:
            assert abs(long / short - aspect) < 0.1 * aspect, (name, long / short, aspect)
        assert abs(sides[0][0] - sides[1][0]) < 0.05 * max(sides[0][0], sides[1][0]), (name, sides)


@needs_shared
def test_the_grid_photos_have_a_ruler():
    """The ruler cut stays on the grid photos: the 60 white ruler photos of the first test are all seen as such."""
    for r in white_ruler_photos()[:60]:
        assert has_ruler(cv2.imread(str(PHOTOS / r["file"]))), r["file"]


def _catalog_sizes(db) -> dict[str, tuple[float, float]]:
    """Each product's long and short side in mm, read once."""
    with duckdb.connect(str(db), read_only=True) as con:
        rows = con.execute("SELECT item_seq, max(leng_long), max(leng_short) FROM appearance GROUP BY 1 "
                           "HAVING max(leng_long) > 0 AND max(leng_short) > 0").fetchall()
    return {seq: (float(long), float(short)) for seq, long, short in rows}


@needs_shared
def test_half_of_a_pale_pill_is_told_by_the_catalog(official_db):
    """The lit top of a pale pill on the grid can be lost whole: both faces of 200808280, the front of 201101755
    and the back of 201005549 are their lower halves (about twice as elongated as the catalog says, flat on top);
    their other faces are whole. ``half_face`` tells them apart, and calls few of the 60 white products' faces
    halves (none of their 118, measured)."""
    sizes = _catalog_sizes(official_db)
    for name, halves in (("200808280.jpg", [True, True]), ("201101755.jpg", [True, False]),
                         ("201005549.jpg", [False, True])):
        size = sizes[name.removesuffix(".jpg")]
        assert [half_face(c.rgba[..., 3], *size) for c in extract(_photo(name))] == halves, name
    faces = flagged = 0
    for r in white_ruler_photos()[:60]:
        size = sizes[r["item_seq"]]
        for c in extract(PHOTOS / r["file"]):
            faces += 1
            flagged += half_face(c.rgba[..., 3], *size)
    assert faces >= 100 and flagged <= 0.05 * faces, (faces, flagged)
