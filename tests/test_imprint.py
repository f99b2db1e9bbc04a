"""Imprint reader: rectified bands through the PP-OCR recognizer, and CTC scores of closed-vocabulary strings."""

from __future__ import annotations

import csv
import itertools
import random
from collections import defaultdict

import cv2
import numpy as np
import pytest

from pillcheck import config
from pillcheck.catalog.normalize import normalize_imprint
from pillcheck.inference.imprint import (
    ALPHABET,
    ImprintReader,
    ctc_score,
    ctc_scores,
    greedy,
    two_line_scores,
    variants,
)
from pillcheck.inference.session import ModelError

from .conftest import PHOTOS, needs_shared

MODEL = config.MODELS_DIR / "imprint_rec.onnx"
needs_model = pytest.mark.skipif(not MODEL.is_file(), reason=f"imprint model not found at {MODEL}")


@pytest.fixture(scope="module")
def reader() -> ImprintReader:
    if not MODEL.is_file():
        pytest.skip(f"imprint model not found at {MODEL}")
    return ImprintReader(MODEL, threads=1)


def pill(text: str, angle: float = 0.0, axes: tuple[int, int] = (130, 70)) -> np.ndarray:
    """A light oblong tablet with dark text on a grey table, rotated by angle (degrees), RGB."""
    img = np.full((220, 340, 3), 120, np.uint8)
    cv2.ellipse(img, (170, 110), axes, 0, 0, 360, (235, 230, 220), -1)
    if text:
        (tw, th), _ = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, 1.6, 4)
        cv2.putText(img, text, (170 - tw // 2, 110 + th // 2), cv2.FONT_HERSHEY_SIMPLEX, 1.6, (90, 85, 80), 4,
                    cv2.LINE_AA)
    if angle:
        img = cv2.warpAffine(img, cv2.getRotationMatrix2D((170, 110), angle, 1.0), (340, 220),
                             borderMode=cv2.BORDER_REPLICATE)
    return img


def two_line_pill(top: str, bottom: str, angle: float = 0.0) -> np.ndarray:
    """A light oblong tablet with two lines of dark text, rotated by angle (degrees), RGB."""
    img = np.full((220, 340, 3), 120, np.uint8)
    cv2.ellipse(img, (170, 110), (140, 62), 0, 0, 360, (235, 230, 220), -1)
    for text, y in ((top, 95), (bottom, 150)):
        (tw, _), _ = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, 1.5, 4)
        cv2.putText(img, text, (170 - tw // 2, y), cv2.FONT_HERSHEY_SIMPLEX, 1.5, (90, 85, 80), 4, cv2.LINE_AA)
    if angle:
        img = cv2.warpAffine(img, cv2.getRotationMatrix2D((170, 110), angle, 1.0), (340, 220),
                             borderMode=cv2.BORDER_REPLICATE)
    return img


def distractors(n: int = 300, seed: int = 0) -> list[str]:
    rng = random.Random(seed)
    near = ["AB13", "A812", "AB1", "B12", "AB12A", "4B12", "ABI2", "AD12", "BA12"]
    return near + ["".join(rng.choices(ALPHABET, k=rng.randint(1, 6))) for _ in range(n - len(near))]


@needs_model
@pytest.mark.parametrize("angle", [0, 180, 30, -120])
def test_rendered_imprint_reads_at_any_rotation(reader, angle):
    read = reader.read(pill("AB12", angle))
    scores = reader.score_many(read, ["AB12", *distractors()])
    assert read.texts and read.texts[0][0] == "AB12"
    assert int(np.argmax(scores)) == 0


@pytest.mark.parametrize("angle", [0, 15, 30, 160])
@pytest.mark.parametrize("split", [100, 150, 200])
def test_a_pill_on_two_coloured_cloth_is_measured_without_the_cloth(angle, split):
    """A 2:1 tablet on cloth of two strong colours: the border's median colour is one of them, so a threshold on
    the distance to it takes the other colour for pill too (ratio ~1.25); the pill alone must be measured."""
    img = np.full((160, 240, 3), (200, 60, 50), np.uint8)
    cv2.fillPoly(img, [np.array([[0, 0], [split, 0], [split - 90, 160], [0, 160]])], (40, 160, 70))
    cv2.ellipse(img, (120, 80), (80, 40), angle, 0, 360, (235, 232, 225), -1)
    assert variants(img).aspect == pytest.approx(2.0, rel=0.08)


def test_a_round_pill_without_a_line_direction_is_read_every_45_degrees():
    """Strokes that show no line direction (a blank face here; on photos mostly two short lines, 'WJ' over '37'):
    bands every 45 degrees, so text is never more than 22.5 degrees off one of them. One line of text gives its
    direction: four angles; an oblong pill, two."""
    def steps(img: np.ndarray) -> list[float]:
        angles = variants(img).angles
        return sorted(round(a - angles[0]) % 360 for a in angles)

    assert steps(pill("", axes=(80, 80))) == list(range(0, 360, 45))
    assert steps(pill("AB1234", axes=(90, 90))) == [0, 90, 180, 270]
    assert steps(pill("AB12")) == [0, 180]


@needs_model
def test_round_pill_and_rgba_crop(reader):
    crop = pill("K5", angle=90, axes=(80, 80))
    rgba = np.dstack([crop, np.full(crop.shape[:2], 255, np.uint8)])
    read = reader.read(rgba)
    assert reader.score(read, "K5") == max(reader.score_many(read, ["K5", "KS", "5K", "K", "X5", "K55"]))


@needs_model
def test_blank_crops_give_no_confident_read(reader):
    for crop in (pill(""), np.full((90, 90, 3), 200, np.uint8), np.zeros((8, 300, 3), np.uint8)):
        read = reader.read(crop)
        assert all(conf < 0.5 for _, conf in read.texts), read.texts
    tiny = reader.read(np.zeros((2, 2, 3), np.uint8))
    assert tiny.texts == [] and reader.score(tiny, "AB12") == -np.inf


@needs_model
def test_catalog_strings_are_normalised_and_unknown_characters_cannot_match(reader):
    read = reader.read(pill("AB12"))
    assert reader.score(read, "마크AB-12") == pytest.approx(reader.score(read, "AB12"))
    assert "에" in reader.alphabet and reader.score(read, "에이12") < reader.score(read, "AB12") - 5
    assert "뷁" not in reader.alphabet and reader.score(read, "뷁12") == -np.inf  # no catalog imprint has it


@needs_model
@pytest.mark.parametrize("angle", [0, 180, 35])
def test_two_lines_on_an_oblong_pill_score_as_one_imprint(reader, angle):
    """'YH' over '250' on an oblong tablet: the catalog's 'YH250' outscores its lines alone and its fragments
    (one band across both lines favours '250')."""
    texts = ["YH250", "250", "YH", "YH25", "H250", "250YH", *distractors(100)]
    scores = reader.score_many(reader.read(two_line_pill("YH", "250", angle)), texts)
    assert texts[int(np.argmax(scores))] == "YH250"


def _brute_force(lp: np.ndarray) -> dict[str, float]:
    """p(text) by summing every path of a tiny (T, C) matrix through the CTC collapse."""
    totals: dict[str, float] = defaultdict(float)
    for path in itertools.product(range(lp.shape[1]), repeat=lp.shape[0]):
        labels = [c for i, c in enumerate(path) if c != 0 and (i == 0 or c != path[i - 1])]
        totals["".join(ALPHABET[c - 1] for c in labels)] += float(np.exp(lp[np.arange(len(path)), path].sum()))
    return totals


def _tiny(seed: int, t: int = 5, c: int = 4) -> np.ndarray:
    """Log-probs over blank + '0','1','2'; the rest of ALPHABET impossible."""
    lp = np.full((t, 1 + len(ALPHABET)), -np.inf)
    lp[:, :c] = np.log(np.random.default_rng(seed).dirichlet(np.ones(c), size=t))
    return lp


def test_ctc_score_matches_brute_force():
    lp = _tiny(0)
    truth = _brute_force(lp[:, :4])
    assert sum(truth.values()) == pytest.approx(1.0)
    texts = ["", "0", "00", "01", "010", "0120", "11", "212"]
    for text, got in zip(texts, ctc_scores(lp, texts)):
        assert got == pytest.approx(np.log(truth[text]), abs=1e-5), text  # float32 forward pass
    assert ctc_score(lp, "0120") == pytest.approx(np.log(truth["0120"]))
    assert ctc_score(lp, "00000") == -np.inf  # needs 9 frames
    assert ctc_score(lp, "A") == -np.inf  # impossible character
    assert ctc_score(lp, "0가") == -np.inf  # outside the alphabet


def test_hangul_is_spelt_in_a_reader_alphabet_that_has_it():
    """With two syllables after ALPHABET, their columns score and decode like any letter; without them in the
    alphabet the same strings are impossible."""
    alphabet = ALPHABET + "가나"
    lp = np.full((5, 1 + len(alphabet)), -np.inf)
    cols = [0, 1, len(ALPHABET) + 1, len(ALPHABET) + 2]  # blank, '0', '가', '나'
    lp[:, cols] = np.log(np.random.default_rng(4).dirichlet(np.ones(4), size=5))
    truth = _brute_force(lp[:, cols])  # over blank, '0', '1', '2': read '1' as '가', '2' as '나'
    for text, plain in [("가나", "12"), ("0가", "01"), ("나나", "22")]:
        assert ctc_scores(lp, [text], alphabet)[0] == pytest.approx(np.log(truth[plain]), abs=1e-5)
        assert ctc_scores(lp[:, : 1 + len(ALPHABET)], [text])[0] == -np.inf
    best = np.full((4, 1 + len(alphabet)), -9.0)
    best[[0, 1, 2, 3], [len(ALPHABET) + 1, 0, len(ALPHABET) + 2, 11]] = -0.01
    assert greedy(best, alphabet)[0] == "가나A"


def test_two_line_score_is_the_best_split():
    upper, lower = _tiny(1), _tiny(2)
    for text in ["012", "1", "2102"]:
        splits = [ctc_score(upper, text[:j]) + ctc_score(lower, text[j:]) for j in range(len(text) + 1)]
        assert two_line_scores(upper[None], lower[None], [text])[0, 0] == pytest.approx(max(splits))


def test_missing_or_corrupt_model_raises_model_error(tmp_path):
    with pytest.raises(ModelError):
        ImprintReader(tmp_path / "absent.onnx")
    bad = tmp_path / "imprint_rec.onnx"
    bad.write_bytes(b"not an onnx model")
    with pytest.raises(ModelError):
        ImprintReader(bad)


LATIN_FACES = {"201005027": "front", "201107543": "front", "201000866": "front", "201002803": "back",
               "201107232": "front"}
# printed Hangul brand names on soft capsules of held-out products (never trained on)
HANGUL_FACES = dict.fromkeys(("200904935", "201210739", "201306861", "200904560", "201200812", "201306491"), "front")


@needs_shared
@needs_model
@pytest.mark.parametrize(("cases", "least"), [(LATIN_FACES, 4), (HANGUL_FACES, 5)], ids=["latin", "hangul"])
def test_official_photos_rank_their_imprint_first(reader, cases, least):
    """Faces with clear imprints from the official reference photos: each imprint outscores every other imprint
    of the photo set (about 2,500 strings, Latin and Hangul)."""
    from pillcheck.training.cutouts import extract

    if not PHOTOS.is_dir():
        pytest.skip(f"reference photos not found at {PHOTOS}")
    with open(PHOTOS / "labels.csv", encoding="utf-8") as f:
        rows = {r["item_seq"]: r for r in csv.DictReader(f)}
    vocab = sorted({normalize_imprint(r[k], fold=False) for r in rows.values() for k in ("print_front", "print_back")}
                   - {""})
    hits = 0
    for item, side in cases.items():
        face = next(c for c in extract(PHOTOS / rows[item]["file"]) if c.side == side)
        alpha = face.rgba[..., 3:] / 255
        rgb = (face.rgba[..., :3] * alpha + 150 * (1 - alpha)).astype(np.uint8)
        rgb = cv2.copyMakeBorder(rgb, 20, 20, 20, 20, cv2.BORDER_CONSTANT, value=(150, 150, 150))
        scores = reader.score_many(reader.read(rgb), vocab)
        hits += vocab[int(np.argmax(scores))] == normalize_imprint(rows[item][f"print_{side}"], fold=False)
    assert hits >= least


@needs_model
def test_several_recognizers_average_their_likelihoods(reader):
    """Two recognizers score the mean of their CTC log-likelihoods: the same model twice changes nothing, and
    each keeps its own log-prob matrices."""
    twice = ImprintReader([MODEL, MODEL], threads=1)
    crop = pill("AB12", 30)
    one, two = reader.read(crop), twice.read(crop)
    texts = ["AB12", *distractors(20)]
    assert len(two.logprobs) == 2 and two.texts == one.texts
    np.testing.assert_allclose(twice.score_many(two, texts), reader.score_many(one, texts), rtol=1e-5)


def _with_syllables(path, out, extra: str) -> None:
    """The recognizer's Latin letters and digits, then rows for ``extra`` (copies of its '0', '1'... rows)."""
    onnx = pytest.importorskip("onnx")
    model = onnx.load(str(path))
    meta = next(p for p in model.metadata_props if p.key == "character")
    chars = meta.value.splitlines()
    weights = {t.name: t for t in model.graph.initializer}
    w = onnx.numpy_helper.to_array(weights["linear_8.w_0"])
    b = onnx.numpy_helper.to_array(weights["linear_8.b_0"])
    latin = [1 + chars.index(c) for c in ALPHABET]
    cols = [0, *latin, *latin[: len(extra)], len(chars) + 1]  # blank, ALPHABET, extra, space
    weights["linear_8.w_0"].CopyFrom(onnx.numpy_helper.from_array(w[:, cols], "linear_8.w_0"))
    weights["linear_8.b_0"].CopyFrom(onnx.numpy_helper.from_array(b[cols], "linear_8.b_0"))
    model.graph.output[0].type.tensor_type.shape.dim[-1].dim_value = len(cols)
    meta.value = "\n".join([*ALPHABET, *extra])
    onnx.save(model, str(out))


@needs_model
def test_a_recognizer_with_hangul_reads_and_scores_it(tmp_path):
    """A model whose character list has syllables reads over ALPHABET + them (its '가' row is its '0' row here,
    so a '0' reads as either, and '나' is its '1'); with a Latin-only model beside it, the reader keeps what both
    can read."""
    _with_syllables(MODEL, tmp_path / "hangul.onnx", "가나")
    wide = ImprintReader(tmp_path / "hangul.onnx", threads=1)
    assert wide.alphabet == ALPHABET + "가나"
    read = wide.read(pill("0B0"))
    assert read.alphabet == wide.alphabet and read.logprobs[0][0].shape[-1] == 1 + len(ALPHABET) + 2
    scores = wide.score_many(read, ["0B0", "가B가", "나B나", "XYZ"])
    assert np.isfinite(scores[:3]).all() and scores[2] < scores[1] - 2 and scores[3] < scores[1] - 2
    assert abs(scores[0] - scores[1]) < 1.0  # the same row: equally likely
    _with_syllables(MODEL, tmp_path / "latin.onnx", "")
    both = ImprintReader([tmp_path / "hangul.onnx", tmp_path / "latin.onnx"], threads=1)
    assert both.alphabet == ALPHABET
    assert both.score_many(both.read(pill("0B0")), ["가B가"])[0] == -np.inf


def test_line_pairs_are_squeezed_to_the_one_line_width_but_keep_the_frames_a_short_pill_needs():
    """A pair's half-height bands would be 1.4x as wide as the one-line band (and the one-line bands padded to them);
    on a long pill they are about as wide as it, while a short pill's pairs stay as they are (at most 144 px)."""
    long = variants(pill("AB12", axes=(150, 50)))
    assert long.pairs[0][0].shape[1] <= 1.05 * long.singles[0].shape[1]
    for axes in [(60, 58), (100, 80)]:  # round, short oblong: unsqueezed they are under 144 px
        short = variants(pill("AB12", axes=axes))
        assert short.pairs[0][0].shape[1] >= 1.35 * short.singles[0].shape[1]
    middle = variants(pill("AB12", axes=(130, 70)))  # unsqueezed ~170 px: squeezed, but not below 144
    assert middle.pairs[0][0].shape[1] == 144 and middle.pairs[0][1].shape == middle.pairs[0][0].shape


@needs_model
def test_scoring_leaves_out_blank_edge_frames_without_moving_the_contenders(reader):
    """The frames at the band's ends that are surely blank in every band (padding, rim) are not scored, yet the
    leading strings keep their scores (0.02 nats) and their order; a string too long for the frames left stays
    possible (finite), and two-line scores hold the same way."""
    from pillcheck.inference.imprint import _trim

    def contenders(cut: np.ndarray, full: np.ndarray) -> None:
        lead = np.argsort(-full, kind="stable")[:8]
        assert full[lead[-1]] > full.max() - 25  # the test is about something: strings that compete
        np.testing.assert_allclose(cut[lead], full[lead], atol=0.02)
        assert (np.diff(cut[lead]) <= 0.02).all()

    full = np.stack(reader.read(pill("AB12")).logprobs[0])
    texts = ["AB12", "AB13", "B12", "", "A", *distractors(200)]
    need = 2 * max(map(len, texts)) + 1
    cut = _trim(full, need)
    assert need <= cut.shape[1] < full.shape[1]  # frames were left out
    contenders(ctc_scores(cut, texts).max(0), ctc_scores(full, texts).max(0))
    tiny = _trim(full, 5)
    assert tiny.shape[1] >= 5 and np.isfinite(ctc_scores(tiny, ["AB"])).all()
    upper, lower = (np.stack(x) for x in zip(*reader.read(two_line_pill("YH", "250")).lines[0]))
    lines = ["YH250", "YH", "250", "YH25", "H250", *distractors(200)]
    need = 2 * max(map(len, lines)) + 1
    assert _trim(upper, need).shape[1] < upper.shape[1]
    contenders(two_line_scores(_trim(upper, need), _trim(lower, need), lines).max(0),
               two_line_scores(upper, lower, lines).max(0))


@needs_model
def test_line_pairs_run_only_when_scored_and_read_as_one_batch_would(reader):
    """The pairs (~70% of a pill's band pixels) run on the first score that needs them, never for a read that
    only gives its greedy texts; and every band's log-probs equal those of the one batch all bands used to share."""
    from pillcheck.inference.imprint import to_batch

    rec = reader.recognizers[0]
    runs = []
    original = rec.session.run
    rec.session.run = lambda *a, **k: runs.append(a[1][rec.input_name].shape) or original(*a, **k)
    try:
        crop = two_line_pill("YH", "250", 35)
        read = reader.read(crop)
        assert len(runs) == 1 and read.texts  # the one-line bands only
        reader.score_many(read, ["YH250", "250"])
        reader.score_many(read, ["YH"])
        assert len(runs) == 2  # the pairs once, then kept
    finally:
        rec.session.run = original
    bands = variants(crop)
    together = rec(to_batch(bands.singles + [b for pair in bands.pairs for b in pair]), reader.alphabet)
    n = len(bands.singles)
    np.testing.assert_allclose(np.stack(read.logprobs[0]), together[:n], atol=1e-4)
    np.testing.assert_allclose(np.stack([x for pair in read.lines[0] for x in pair]), together[n:], atol=1e-4)


@needs_model
def test_a_read_that_settles_on_one_line_is_scored_without_its_pairs(reader):
    """A sharp one-line face that is a catalog code settles on one line: scored without the line pairs (no second
    recognizer run) it still ranks its code first, and a string too long for one line's frames ranks last instead
    of counting as one the reader cannot spell (-inf). A read that is no catalog face does not settle."""
    rec = reader.recognizers[0]
    runs = []
    original = rec.session.run
    rec.session.run = lambda *a, **k: runs.append(1) or original(*a, **k)
    try:
        read = reader.read(pill("AB12"))
        assert reader.one_line(read, {"AB12", "XY9"}) == "AB12"
        assert reader.one_line(read, {"XY9"}) is None
        texts = ["AB12", *distractors(100), "AB12" * 30]
        quick = reader.score_many(read, texts, lines=False)
        assert len(runs) == 1  # the one-line bands only
    finally:
        rec.session.run = original
    assert texts[int(np.argmax(quick))] == "AB12"
    assert np.isfinite(quick[-1]) and quick[-1] == quick[:-1].min()
    assert np.isneginf(reader.score_many(read, ["AB12" * 30])[0])  # with the pairs: impossible on either, as before
