"""The synthetic scene generator: a pile is many touching, overlapping pills, unlike an ordinary scene."""

from __future__ import annotations

import cv2
import numpy as np

from pillcheck.metrics import iou_matrix
from pillcheck.training.render import PillSpec, render
from pillcheck.training.scenes import PillSource, closeup, compose, compose_heap, compose_spread, printed_page


def source() -> PillSource:
    rng = np.random.default_rng(0)
    sprites = [(render(PillSpec(shape, [colour], 10, 6 if shape == "장방형" else 10), 20.0, rng), 20.0)
               for shape, colour in (("원형", "하양"), ("장방형", "노랑"), ("타원형", "분홍"))]
    return PillSource(sprites, [])


def stats(pile: bool) -> tuple[list[int], int]:
    """Pills per scene and how many of them overlap another, over the same six seeds."""
    src, counts, touching = source(), [], 0
    for i in range(6):
        scene = compose(src, np.random.default_rng([7, i]), pile=pile)
        counts.append(len(scene.boxes))
        iou = iou_matrix(scene.boxes, scene.boxes)
        np.fill_diagonal(iou, 0)
        touching += int((iou > 0).any(1).sum())
    return counts, touching


def test_piles_are_many_overlapping_pills():
    counts, touching = stats(pile=True)
    assert min(counts) >= 8, counts  # 10-30 placed; a pill hidden under others loses its box
    assert touching >= sum(counts) // 2, (touching, counts)
    plain_counts, plain_touching = stats(pile=False)
    assert sum(plain_counts) < sum(counts) and plain_touching < touching


def test_a_further_round_redraws_only_training_scenes():
    """--scenes-round N: new training scenes, the very same validation and held-back dense scenes (a later leg is
    measured on what the earlier ones were)."""
    from pathlib import Path

    from pillcheck.training.detector import DatasetConfig, scene_rng

    def draw(round_: int, split: str, k: int) -> bytes:
        cfg = DatasetConfig(shared=Path("."), db=Path("."), out=Path("."), scenes_round=round_)
        return scene_rng(cfg, split, k, 3).bytes(16)

    assert draw(0, "train", 0) == bytes(np.random.default_rng([0, 0, 3]).bytes(16))  # round 0: the old stream
    assert draw(1, "train", 0) != draw(0, "train", 0) and draw(1, "train", 3) != draw(0, "train", 3)  # scenes, piles
    assert draw(1, "train", 0) != draw(2, "train", 0)
    for split, k in (("val", 1), ("test_dense", 2)):
        assert draw(1, split, k) == draw(0, split, k)


def test_pills_mirrored_in_at_the_edges_are_labelled():
    """The camera's perspective step fills beyond the frame by reflection: every red pixel of the result (the pills
    and their mirror images) lies in a labelled pill, and a mirrored copy apart from its pill is a pill of its own."""
    from pillcheck.training.scenes import _camera

    h, w = 240, 320
    mirrored = 0
    for seed in range(12):
        img = np.full((h, w, 3), 128, np.uint8)
        ids = np.zeros((h, w), np.int32)
        for pid, (x, y) in enumerate(((10, 120), (160, 20), (298, 218)), 1):  # on the left edge; near top, corner
            disc = np.zeros((h, w), np.uint8)
            cv2.circle(disc, (x, y), 14, 1, -1)
            img[disc > 0], ids[disc > 0] = (230, 20, 20), pid
        out, out_ids = _camera(img, ids, np.random.default_rng(seed))
        red = (out[..., 0].astype(int) - out[..., 1] > 60) & (out[..., 0] > 90)
        labelled = cv2.dilate((out_ids > 0).astype(np.uint8), np.ones((7, 7), np.uint8)) > 0
        assert np.count_nonzero(red & ~labelled) <= 3, seed
        mirrored += int(out_ids.max() > 3)
    assert mirrored >= 3  # some warps did mirror a disc in, apart from its pill


def test_spread_scenes_hold_pills_from_tiny_to_filling_the_frame():
    src = source()
    sides = []
    for i in range(40):
        scene = compose_spread(src, np.random.default_rng([22, i]), printed=0.5)
        assert len(scene.boxes) >= 1
        sides += list((scene.boxes[:, 2:] - scene.boxes[:, :2]).max(1) / 480)
    assert min(sides) < 0.04 and max(sides) > 0.5, (min(sides), max(sides))  # close-ups and trays alike


def test_a_heap_is_one_product_many_pills_some_mostly_hidden():
    scene = compose_heap(source(), np.random.default_rng(5), count=(80, 80))
    assert len(scene.boxes) >= 60  # nearly all placed and labelled
    iou = iou_matrix(scene.boxes, scene.boxes)
    np.fill_diagonal(iou, 0)
    assert (iou > 0).any(1).mean() > 0.8  # nearly every pill touches or lies on another


def test_printed_matter_has_no_pill_box():
    for i in range(5):
        scene = printed_page((800, 600), np.random.default_rng(i))
        assert scene.boxes.shape == (0, 4) and scene.image.std() > 5  # something is printed there


def test_a_closeup_keeps_real_pixels_and_moves_the_boxes_with_them():
    rng = np.random.default_rng(0)
    img = np.full((480, 640, 3), 90, np.uint8)
    boxes = np.array([[100, 100, 160, 140], [400, 300, 430, 330]], np.float32)
    img[100:140, 100:160] = 250
    img[300:330, 400:430] = 200
    for i in range(10):
        scene = closeup(img, boxes, np.random.default_rng([3, i]), long_side=(1200, 1200))
        assert scene is not None and max(scene.image.shape[:2]) == 1200
        for x1, y1, x2, y2 in scene.boxes.astype(int):  # the box still frames the bright pill
            inner = scene.image[y1 + 4: y2 - 4, x1 + 4: x2 - 4]
            assert inner.mean() > 190, (i, inner.mean())
    assert closeup(img, boxes[:0], rng) is None
