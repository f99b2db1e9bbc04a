"""Imprint reader: PP-OCR text recognition (ONNX) on rectified bands of one pill crop, plus CTC scoring.

General OCR runs a text detector at several rotations and costs seconds per pill. The pill already says where
its text is: across the middle, along the long axis (on a round pill, along its strokes). So the crop is
rectified and a few bands (0/180 degrees; 0/90/180/270 for round pills, every 45 degrees where their strokes show
no direction) go through the recognizer in one
batch, without a text detector. The imprint vocabulary is closed (the catalog), so besides greedy reads the
reader scores any candidate string by its CTC likelihood, which uses everything the recognizer saw, not only
its best path: on faces from the official reference photos that ranks the true imprint first among the
catalog's ~13k distinct strings more often than the greedy read is exact (69% vs 63%).

Model: ``PP-OCRv6_rec_small.onnx`` (PaddleOCR, Apache-2.0) from the ``rapidocr`` 3.10.0 wheel, fine-tuned by us
on bands of real pill faces (``pillcheck train imprint --init``; see models/MODEL_CARD.md), its output cut to the
imprint alphabet; the character list is in the ONNX metadata (``character``). The alphabet a reader reads and
scores is ``ALPHABET`` (Latin letters and digits) plus the Hangul syllables its model knows (the catalog's,
learnt from real and drawn faces); candidates with other characters score ``-inf``.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Container
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from pillcheck.catalog.normalize import normalize_imprint
from pillcheck.images import scaled
from pillcheck.inference.segment import OUTLINE_PX, pill_outline
from pillcheck.inference.session import ModelError, create_session

ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ"  # column k+1 of a log-prob matrix; column 0 is the CTC blank
HEIGHT = 48  # PP-OCR rec input height
MAX_WIDTH = 320
# Bands as (centre offset, height), fractions of the pill's short axis across the text direction. One centred
# line of 0.7 read as well as 0.55+0.85 together (official photos, clean and degraded) at half the cost.
LINE = (0.0, 0.7)
TWO_LINES = ((-0.25, 0.5), (0.25, 0.5))  # scored only as a pair (alone they add confident fragments)
# A line pair's bands are 1/0.5 instead of 1/0.7 of the pill's short axis tall, so at full aspect they are 1.4x as wide
# as the one-line band, and the one-line bands are padded to their width: ~70% of a pill's recognizer pixels, the
# recognizer's time growing with them. Squeezed horizontally by PAIR_SQUEEZE (about as wide as the one-line band),
# never below PAIR_MIN_WIDTH px (18 frames, so that a short round pill's pair keeps the frames its text needs): a
# pill 12% faster, a large one 22% (realistic set, one process, alternating); top-1 / top-5 / named surely moved by at
# most 0.008 on the three identification sets, both ways, wrong-but-sure unchanged (models/MODEL_CARD.md, "The reader's
# time"). Squeezing every pair (no floor) saved 24% but cost the realistic set 0.011 of top-1 with a 6-product list.
PAIR_SQUEEZE, PAIR_MIN_WIDTH = 0.72, 144
ROUND_ASPECT = 1.15  # long/short below this: the text direction comes from the strokes, any of 4 angles
# Round pill strokes elongated less than this (variance ratio) show no line direction: line pairs at every angle,
# not only along it. One line of 3+ characters measured 3-11, two-line blocks 1.1-2.5 (blank faces: noise, low too).
# 1.5 until the diagonals below; with them 2.5 (tuning 0.573 / 0.666 -> 0.575 / 0.674; 4.0 gave 0.577 / 0.674 for
# more pills read at eight angles).
TWO_LINE_RATIO = 2.5
# ... and are read at these angles too (and in line pairs): 'WJ' over '37' gives no stroke direction, and at 90-degree
# steps the text can sit 45 degrees off every band. On the evaluation set 0.525 / 0.627 -> 0.529 / 0.630 top-1 /
# top-5 (pair-photo 0.753 -> 0.767), tuning 0.571 / 0.660 -> 0.573 / 0.666; with TWO_LINE_RATIO 2.5 0.534 / 0.631 and
# 0.575 / 0.674; wrong-but-sure 0 throughout (models/MODEL_CARD.md).
DIAGONALS = (45, 225, 135, 315)
# A read that is exactly a catalog face of ONE_LINE_CHARS+ characters, with a one-line log-likelihood of ONE_LINE_LL or
# better, is ranked without its line pairs (``ImprintReader.one_line``): the pairs are about half of a text pill's
# recognizer time, and what they add is the two-line reading of imprints like 'HM' over '4', which such a read seldom
# needs. A sure answer is still given only on every band (``Pipeline.identify_with_lists`` ranks those pills again
# with their pairs). Realistic set, per pill p50 74 -> 55 ms (alternating runs); top-1 / top-5 / named surely within
# 0.007 of before on the three identification sets, wrong-but-sure 0 (models/MODEL_CARD.md, "The reader's time,
# again").
ONE_LINE_LL, ONE_LINE_CHARS = -0.5, 2


def is_hangul(ch: str) -> bool:
    """A precomposed Hangul syllable (가..힣): the only characters besides ALPHABET a reader may know."""
    return "\uac00" <= ch <= "\ud7a3"


@dataclass
class ImprintRead:
    texts: list[tuple[str, float]]  # distinct non-empty greedy reads with confidence (0..1), best first
    # per recognizer, per one-line band: T x (1 + len(ALPHABET)) log-probs, column 0 = blank
    logprobs: list[list[np.ndarray]]
    aspect: float | None = None  # long / short side of the segmented pill (None when segmentation failed)
    length_px: float | None = None  # its long side in pixels of the crop that was read (None likewise)
    hull: np.ndarray | None = None  # its outline in pixels of that crop (None likewise)
    alphabet: str = ALPHABET  # the characters of the log-prob columns after the blank
    # runs the recognizers on the (upper, lower) line bands when ``lines`` is first asked for
    pending: Callable[[], list[list[tuple[np.ndarray, np.ndarray]]]] | None = field(default=None, repr=False)
    _lines: list[list[tuple[np.ndarray, np.ndarray]]] | None = field(default=None, init=False, repr=False)

    @property
    def lines(self) -> list[list[tuple[np.ndarray, np.ndarray]]]:
        """Per recognizer, per orientation: (upper, lower) line log-probs. Read only when first asked for: the
        line pairs are ~70% of a pill's band pixels, and only the CTC scoring uses them, which a pill whose faces
        read as nothing never gets (about a third of single faces), nor one whose read settles on one line unless it
        comes out sure (``ImprintReader.one_line``)."""
        if self._lines is None:
            self._lines = self.pending() if self.pending else []
            self.pending = None
        return self._lines


def _encode(texts: list[str], reverse: bool = False, alphabet: str = ALPHABET) -> tuple[np.ndarray, np.ndarray]:
    """Label matrix (N, Lmax) padded with 0, and lengths; -1 for a text with a character outside ``alphabet``.
    Read-only and cached: every recognizer of a reader scores the same shortlist, forwards and backwards."""
    return _encode_tuple(tuple(texts), reverse, alphabet)


@functools.lru_cache(maxsize=8)
def _encode_tuple(texts: tuple[str, ...], reverse: bool, alphabet: str) -> tuple[np.ndarray, np.ndarray]:
    index = _char_index(alphabet)
    lmax = max([len(t) for t in texts] + [1])
    labels = np.zeros((len(texts), lmax), np.int64)
    lengths = np.zeros(len(texts), np.int64)
    for i, t in enumerate(texts):
        idx = [index.get(c, -1) for c in (t[::-1] if reverse else t)]
        if -1 in idx:
            lengths[i] = -1
        else:
            labels[i, : len(idx)] = idx
            lengths[i] = len(idx)
    labels.flags.writeable = lengths.flags.writeable = False
    return labels, lengths


@functools.lru_cache(maxsize=4)
def _char_index(alphabet: str) -> dict[str, int]:
    """Character -> its log-prob column (column 0 is the blank)."""
    return {c: i + 1 for i, c in enumerate(alphabet)}


UNFIT_FLOOR = -1e4  # a one-line score for strings too long for the frames, when no candidate fits at all
LENGTH_BUCKETS = (3, 6, 10)  # texts are run in groups of similar length: the forward pass costs N x (2 Lmax + 1)


def _prefix_logp(lp: np.ndarray, labels: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """CTC forward algorithm: log p(first j labels | image) for every j, (V, T, C) -> (V, N, Lmax + 1).

    Texts are grouped by length so that a few long imprints do not make every short one pay for their states.
    """
    n, lmax = labels.shape
    out = np.full((lp.shape[0], n, lmax + 1), -np.inf)
    size = np.maximum(lengths, 0)
    lo = -1
    for hi in (*LENGTH_BUCKETS, lmax):
        idx = np.flatnonzero((size > lo) & (size <= hi))
        lo = max(lo, hi)
        if len(idx):
            m = max(int(size[idx].max()), 1)
            out[:, idx, : m + 1] = _forward(lp, labels[idx, :m], lengths[idx])
    return out


def _forward(lp: np.ndarray, labels: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """The forward pass for one group, (V, T, C) -> (V, N, Lmax + 1).

    Runs in probability space (float32) with per-step rescaling (exact up to rounding, no exp/log per step),
    vectorised over variants, candidates and label positions; only the loop over time steps is in Python. The
    last frame's forward variables hold every prefix's probability at once, which the two-line split needs.
    """
    v, t_steps, _ = lp.shape
    n, lmax = labels.shape
    s_len = 2 * lmax + 1
    ext = np.zeros((n, s_len), np.int64)  # blank, c1, blank, c2, ..., blank
    ext[:, 1::2] = labels
    valid = (np.arange(s_len)[None, :] <= 2 * np.maximum(lengths, 0)[:, None]).astype(np.float32)  # not past the end
    skip = np.zeros((n, s_len), np.float32)  # s-2 -> s allowed: a label that differs from the one two back
    skip[:, 3::2] = labels[:, 1:] != labels[:, :-1]
    # emission of every extended state at every step, gathered once (the loop then only adds and multiplies)
    emit = np.exp(np.asarray(lp, np.float32))[:, :, ext] * valid  # V x T x N x S
    skip = skip[:, 2:]
    alpha = np.zeros((v, n, s_len), np.float32)
    alpha[:, :, :2] = emit[:, 0, :, :2]
    log_scale = np.zeros((v, n, 1))
    nxt, jump = np.empty_like(alpha), np.empty_like(alpha[..., 2:])
    for t in range(1, t_steps):
        # rescale by any positive c: exact once log(c) is added back; the floor only keeps a dead row finite
        c = np.maximum(alpha.sum(-1, keepdims=True), 1e-30)
        alpha /= c
        log_scale += np.log(c)
        nxt[..., 0] = alpha[..., 0]
        np.add(alpha[..., 1:], alpha[..., :-1], out=nxt[..., 1:])
        np.multiply(alpha[..., :-2], skip, out=jump)
        nxt[..., 2:] += jump
        np.multiply(nxt, emit[:, t], out=alpha)
    ends = alpha[..., 0::2].astype(np.float64)  # prefix j ends in the blank after label j ...
    ends[..., 1:] += alpha[..., 1::2]  # ... or on label j itself
    with np.errstate(divide="ignore"):
        return log_scale + np.log(ends)


BLANK_EDGE = np.log(0.999)  # leading and trailing frames this surely blank in every band are left out of scoring


def _trim(lp: np.ndarray, need: int) -> np.ndarray:
    """(V, T, C) log-probs without the frames at either end where every band is surely blank (a band's padding, the
    pill's rim): a third of the frames, which the forward pass would cost the same as text. A string that fits the
    frames left keeps its score (blank costs < 0.001 nats a frame there); one that fits only by putting letters
    there scores lower still, and was far below the leader anyway. At least ``need`` frames stay (the longest
    candidate with every letter doubled fits), so no string becomes impossible."""
    t = lp.shape[1]
    live = np.flatnonzero((lp[..., 0] <= BLANK_EDGE).any(0))
    lo, hi = (int(live[0]), int(live[-1]) + 1) if len(live) else (t // 2, t // 2)
    short = max(0, min(need, t) - (hi - lo))  # frames to add back, split around the live ones
    lo = max(0, lo - (short + 1) // 2)
    hi = min(t, max(hi + short // 2, lo + min(need, t)))
    lo = min(lo, hi - min(need, t))
    return lp[:, lo:hi]


def ctc_scores(logprobs: np.ndarray, texts: list[str], alphabet: str = ALPHABET) -> np.ndarray:
    """log p(text | image) under CTC for many texts at once: (T, C) or (V, T, C) -> (N,) or (V, N).

    The total log-likelihood, not a per-character mean: it is a probability over strings, so candidates of
    different lengths compare fairly. Texts are matched as given (normalise them first); a character outside
    ``alphabet`` (the characters of columns 1..C-1) gives ``-inf``.
    """
    lp = np.asarray(logprobs)
    single = lp.ndim == 2
    labels, lengths = _encode(texts, alphabet=alphabet)
    pre = _prefix_logp(lp[None] if single else lp, labels, lengths)
    out = np.take_along_axis(pre, np.maximum(lengths, 0)[None, :, None], -1)[..., 0]
    out[:, lengths < 0] = -np.inf
    return out[0] if single else out


def two_line_scores(upper: np.ndarray, lower: np.ndarray, texts: list[str], alphabet: str = ALPHABET
                    ) -> np.ndarray:
    """Best split of each text into a first line read in ``upper`` and the rest in ``lower``: (V, T, C) pairs
    -> (V, N). Imprints like 'HM' over '4' are one catalog string but two lines on the pill."""
    labels, lengths = _encode(texts, alphabet=alphabet)
    rlabels, _ = _encode(texts, reverse=True, alphabet=alphabet)
    pre = _prefix_logp(upper, labels, lengths)  # log p(text[:j] | upper)
    suf = _prefix_logp(lower[:, ::-1], rlabels, lengths)  # log p(text[j:] | lower), reversed in time
    j = np.arange(labels.shape[1] + 1)[None, :]
    k = np.maximum(lengths, 0)[:, None] - j  # suffix length for split j
    split = pre + np.take_along_axis(suf, np.maximum(k, 0)[None], -1)
    split = np.where(k[None] >= 0, split, -np.inf).max(-1)
    split[:, lengths < 0] = -np.inf
    return split


def ctc_score(logprobs: np.ndarray, text: str) -> float:
    """log p(text | image) under CTC for one (T, C) matrix."""
    return float(ctc_scores(logprobs, [text])[0])


def greedy(logprobs: np.ndarray, alphabet: str = ALPHABET) -> tuple[str, float]:
    """Best-path CTC decoding; confidence = mean probability of the emitted characters (0 when none)."""
    best = logprobs.argmax(-1)
    keep = (best != 0) & np.r_[True, best[1:] != best[:-1]]
    if not keep.any():
        return "", 0.0
    text = "".join(alphabet[i - 1] for i in best[keep])
    return text, float(np.exp(logprobs.max(-1)[keep]).mean())


def _text_axis(gray: np.ndarray, centre: np.ndarray, radius: float) -> tuple[np.ndarray, float] | None:
    """Direction of the text on a round pill: principal axis of the strong edges inside the rim (a line of
    characters is wider than tall), and how elongated they are (variance ratio). None without edges."""
    gx, gy = cv2.Sobel(gray, cv2.CV_32F, 1, 0), cv2.Sobel(gray, cv2.CV_32F, 0, 1)
    ys, xs = np.mgrid[: gray.shape[0], : gray.shape[1]]
    dx, dy = xs - centre[0], ys - centre[1]
    inner = dx * dx + dy * dy < (0.75 * radius) ** 2
    if inner.sum() < 50:
        return None
    w = np.where(inner, np.hypot(gx, gy), 0)
    w = np.where(w > np.percentile(w[inner], 80), w, 0)
    if w.sum() <= 0:
        return None
    pts = np.stack([dx[w > 0], dy[w > 0]])
    ev, vec = np.linalg.eigh(np.cov(pts, aweights=w[w > 0]))
    return vec[:, 1], float(ev[1] / max(ev[0], 1e-9))


def _geometry(rgb: np.ndarray) -> tuple[np.ndarray, np.ndarray, float, float, bool, np.ndarray | None]:
    """Centre, unit text-direction vector, extent along and across it (px) of the pill in a loose crop,
    whether that direction is a guess (a round pill whose strokes show no line direction: two short lines, a
    faint face), and the pill's hull in pixels of ``rgb`` (None when it was not found: the numbers then describe the whole crop).

    The pill: GrabCut's hull, else the threshold's (a pill that reaches the crop's edge); text runs along the
    long axis, or for a round pill along its strokes. The whole crop when neither finds the pill.
    On the tuning pairs' faces, GrabCut first (instead of the threshold alone) cut the share whose long/short
    ratio was more than 35% off the catalog's from 29% to 10% (92 photo faces) and from 17% to 1% (530 drawn).
    """
    h, w = rgb.shape[:2]
    fallback = (np.array([w / 2, h / 2]), np.array([1.0, 0.0]) if w >= h else np.array([0.0, 1.0]),
                float(max(w, h)), float(min(w, h)), max(w, h) < ROUND_ASPECT * min(w, h), None)
    outline = pill_outline(rgb)
    if outline is None:
        return fallback
    k = min(1.0, OUTLINE_PX / max(h, w))
    hull = (outline + 0.5) * k - 0.5  # at the size it was found
    box = cv2.boxPoints(cv2.minAreaRect(hull))
    e1, e2 = box[1] - box[0], box[2] - box[1]
    long_v, short_v = (e1, e2) if np.linalg.norm(e1) >= np.linalg.norm(e2) else (e2, e1)
    long_px, short_px = float(np.linalg.norm(long_v)), float(np.linalg.norm(short_v))
    centre, axis = box.mean(0), long_v / (long_px + 1e-9)
    if long_px >= ROUND_ASPECT * short_px:
        return centre / k, axis, long_px / k, short_px / k, False, outline
    strokes = _text_axis(cv2.cvtColor(scaled(rgb, k), cv2.COLOR_RGB2GRAY), centre, short_px / 2)
    if strokes is None:
        return centre / k, axis, long_px / k, short_px / k, True, outline
    return centre / k, strokes[0], long_px / k, short_px / k, strokes[1] < TWO_LINE_RATIO, outline


def _band(bgr: np.ndarray, centre: np.ndarray, theta: float, along: float, across: float,
          offset: float, height: float, squeeze: float = 1.0, min_width: float = 0.0) -> np.ndarray:
    """One text band, rotated by theta (rad) so the text runs left to right, scaled to HEIGHT px; ``squeeze``
    narrows it (never below ``min_width`` px, nor below its unsqueezed width when that is less)."""
    s = HEIGHT / (height * across)
    natural = along * s
    width = int(min(MAX_WIDTH, max(HEIGHT, round(max(natural * squeeze, min(natural, min_width))))))
    sx = width / (along * s)  # < 1 past MAX_WIDTH or when squeezed: narrower, as PP-OCR does past its width
    cos, sin = np.cos(theta) * s, np.sin(theta) * s
    # dst = S R(-theta) (src - centre) + (width/2, HEIGHT/2 - s * offset * across)
    m = np.array([[cos * sx, sin * sx, 0.0], [-sin, cos, 0.0]])
    m[:, 2] = np.array([width / 2, HEIGHT / 2 - s * offset * across]) - m[:, :2] @ centre
    return cv2.warpAffine(bgr, m, (width, HEIGHT), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)


@dataclass
class Bands:
    """What one pill crop gives the recognizer: one centred line per orientation (``angles``, degrees: the text
    direction in the crop, y down), (upper, lower) line pairs, and the pill's aspect ratio (long / short), long
    side in pixels and hull (pixels of the crop) when it could be segmented."""

    singles: list[np.ndarray]
    pairs: list[tuple[np.ndarray, np.ndarray]]
    angles: list[float]
    aspect: float | None
    length: float | None
    hull: np.ndarray | None = None


def variants(rgb: np.ndarray) -> Bands:
    """Rectified bands (BGR uint8, height 48) of one pill crop.

    Orientations: the text direction at 0 and 180 degrees; 90 and 270 too for round pills, and the diagonals
    as well where a round pill's strokes show no direction (``DIAGONALS``). Line pairs (for
    imprints like 'HM' over '4', on oblong pills as often as on round ones) at 0 and 180 degrees, and at every
    angle where a round pill's strokes show no direction. Pairs on every pill took the evaluation set from 0.520 /
    0.617 to 0.525 / 0.627 top-1 / top-5 and named 0.182 of its pills surely instead of 0.105 (wrong-but-sure 0),
    for 46-59 ms per pill instead of 27-32 (models/MODEL_CARD.md). Pairs across the text only where its direction
    is unknown: within two pills of pairs at all four angles, for ~3 ms less. Only the pair at the orientation
    whose line reads most confidently scored the same on the sets for 7 ms less, but on two-line text both lines
    are garbage either way up (0.66 vs 0.64 on 'YH' over '250'): a coin toss exactly where pairs matter.
    """
    centre, axis, long_px, short_px, undirected, hull = _geometry(rgb)
    aspect, length = (long_px / max(short_px, 1e-6), long_px) if hull is not None else (None, None)
    bgr = cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR)
    angles = (0, 180, 90, 270) if long_px < ROUND_ASPECT * short_px else (0, 180)
    if undirected:  # no line direction to go by: every 45 degrees, so that no text is read more than 22.5 off
        angles += DIAGONALS
    base = np.degrees(np.arctan2(axis[1], axis[0]))
    # one anti-aliased downscale so the finest band is sampled at about 1 px per output px
    k = min(1.0, HEIGHT / (min(h for _, h in (LINE, *TWO_LINES)) * short_px))
    if k < 0.8:
        bgr = scaled(bgr, k)
        centre, long_px, short_px = centre * k, long_px * k, short_px * k
    singles, pairs = [], []
    for a in angles:
        along, across = (long_px, short_px) if a in (0, 180) else (short_px, long_px)
        theta = np.radians(base + a)
        singles.append(_band(bgr, centre, theta, along, across, *LINE))
        if a in (0, 180) or undirected:
            upper, lower = (_band(bgr, centre, theta, along, across, *b, PAIR_SQUEEZE, PAIR_MIN_WIDTH)
                            for b in TWO_LINES)
            pairs.append((upper, lower))
    return Bands(singles, pairs, [float(base + a) for a in angles], aspect, length, hull)


def to_batch(images: list[np.ndarray], width: int = 0) -> np.ndarray:
    """PP-OCR rec input: (x/255 - 0.5)/0.5, NCHW, right-padded with zeros to the widest image or ``width``
    (a multiple of 8)."""
    width = -(-max([i.shape[1] for i in images] + [width]) // 8) * 8
    batch = np.zeros((len(images), 3, HEIGHT, width), np.float32)
    for j, img in enumerate(images):
        batch[j, :, :, : img.shape[1]] = img.transpose(2, 0, 1) / 127.5 - 1.0
    return batch


class Recognizer:
    """One CTC text recognizer (PP-OCR's interface: NCHW input from ``to_batch``, softmax over blank +
    characters + space) behind the project's session factory; the character list comes from the model.
    ``alphabet``: ALPHABET plus the model's Hangul syllables, in the model's order."""

    def __init__(self, path: Path, threads: int | None = None) -> None:
        self.session = create_session(path, threads=threads)
        meta = self.session.get_modelmeta().custom_metadata_map
        keys = path.with_name(path.stem + "_keys.txt")
        if "character" in meta:
            chars = meta["character"].splitlines()
        elif keys.is_file():
            chars = keys.read_text(encoding="utf-8").splitlines()
        else:
            raise ModelError(f"{path.name}: no character list (metadata 'character' or {keys.name})")
        chars = ["<blank>", *chars, " "]  # PP-OCR's CTC decoder adds blank first and space last
        n_out = self.session.get_outputs()[0].shape[-1]
        if isinstance(n_out, int) and n_out != len(chars):
            raise ModelError(f"{path.name}: {n_out} output classes but {len(chars)} characters")
        self._index = {c: i for i, c in enumerate(chars)}
        self.alphabet = ALPHABET + "".join(c for c in chars if is_hangul(c))
        self._columns: dict[str, tuple[np.ndarray, np.ndarray]] = {}
        self._gather(self.alphabet)  # a model that lacks a Latin letter or digit fails here, not on the first pill
        self.input_name = self.session.get_inputs()[0].name

    def _gather(self, alphabet: str) -> tuple[np.ndarray, np.ndarray]:
        """The model's columns for blank + each character of ``alphabet`` (a Latin letter collects its upper and
        lower case: imprints are compared uppercased), flattened, and where each character's run starts."""
        if alphabet not in self._columns:
            groups = [[0]] + [sorted({self._index[c] for c in {ch, ch.lower()} if c in self._index})
                              for ch in alphabet]
            if not all(groups):
                raise ModelError(f"the recognizer cannot read {[ch for ch, g in zip(alphabet, groups[1:]) if not g]}")
            self._columns[alphabet] = (np.array([i for g in groups for i in g]),
                                       np.cumsum([0] + [len(g) for g in groups[:-1]]))
        return self._columns[alphabet]

    def __call__(self, batch: np.ndarray, alphabet: str | None = None) -> np.ndarray:
        """Bands -> log-probs over blank + ``alphabet`` (default: its own), N x T x (1 + len(alphabet)): other
        characters dropped, renormalised."""
        probs = self.session.run(None, {self.input_name: batch})[0]
        cols, starts = self._gather(alphabet or self.alphabet)
        sub = np.add.reduceat(probs[..., cols], starts, axis=-1)
        sub /= sub.sum(-1, keepdims=True) + 1e-12
        return np.log(np.maximum(sub, 1e-12)).astype(np.float32)


class ImprintReader:
    """Reads a pill crop with one or more recognizers on the same bands; scores candidates by their mean CTC
    likelihood. Two recognizers that err differently rank the true imprint first more often than either: on
    held-out faces, ours (trained on pill imprints) reads more exactly, PP-OCRv6 spreads its probability better
    (see models/MODEL_CARD.md)."""

    def __init__(self, model_paths: Path | list[Path], threads: int | None = None) -> None:
        paths = [Path(p) for p in (model_paths if isinstance(model_paths, list) else [model_paths])]
        self.recognizers = [Recognizer(p, threads) for p in paths]
        # what every recognizer can read: a string one of them cannot spell would score -inf on its matrix
        self.alphabet = "".join(c for c in self.recognizers[0].alphabet
                                if all(c in r.alphabet for r in self.recognizers[1:]))

    def read(self, crop_rgb: np.ndarray) -> ImprintRead:
        """All one-line bands of one pill crop (RGB or RGBA, any rotation) in one run per recognizer: greedy reads
        plus log-prob matrices; the line pairs when the scoring first needs them (``ImprintRead.lines``), in a run
        of their own. Every band is padded to the widest of all, as when they ran in one batch: the recognizer's
        output depends on the padding (unpadded one-line bands moved top-1 / top-5 by -0.6 to +2 points per
        subset, `identify_eval5` and the realistic set), and this way every read is the same as before. A crop too
        small to hold text reads as nothing."""
        if min(crop_rgb.shape[:2]) < 4:
            return ImprintRead([], [])
        bands = variants(np.ascontiguousarray(crop_rgb[..., :3]))
        width = max(b.shape[1] for b in bands.singles + [b for pair in bands.pairs for b in pair])
        best: dict[str, float] = {}
        logprobs = []
        for rec in self.recognizers:
            one = list(rec(to_batch(bands.singles, width), self.alphabet))
            for lp in one:
                text, conf = greedy(lp, self.alphabet)
                if text and conf > best.get(text, -1.0):
                    best[text] = conf
            logprobs.append(one)

        def pairs() -> list[list[tuple[np.ndarray, np.ndarray]]]:
            if not bands.pairs:
                return []
            batch = to_batch([b for pair in bands.pairs for b in pair], width)
            return [list(zip(*[iter(rec(batch, self.alphabet))] * 2)) for rec in self.recognizers]

        return ImprintRead(sorted(best.items(), key=lambda kv: -kv[1]), logprobs, bands.aspect, bands.length,
                           bands.hull, self.alphabet, pairs)

    @staticmethod
    def score_many(read: ImprintRead, candidates: list[str], lines: bool = True) -> np.ndarray:
        """CTC log-likelihood of each catalog imprint (normalised here): per recognizer the best over the read's
        bands, on one line or split over an upper and a lower line; then the mean over recognizers. ``lines``
        False: one line only (the pairs are not run), and a string too long for one line's frames, which only the
        pairs could place, ranks below every string that fits instead of counting as one the reader cannot spell."""
        texts = [normalize_imprint(c, fold=False) for c in candidates]
        if not read.logprobs or not texts:
            return np.full(len(texts), -np.inf)
        total = np.zeros(len(texts))
        need = 2 * max(len(t) for t in texts) + 1  # frames the longest text may need
        for one, two in zip(read.logprobs, read.lines if lines else [[]] * len(read.logprobs)):
            best = ctc_scores(_trim(np.stack(one), need), texts, read.alphabet).max(0)
            if two:
                upper, lower = (_trim(np.stack(x), need) for x in zip(*two))
                best = np.maximum(best, two_line_scores(upper, lower, texts, read.alphabet).max(0))
            total += best
        total /= len(read.logprobs)
        if not lines:
            unfit = np.isinf(total) & (_encode(texts, alphabet=read.alphabet)[1] >= 0)
            fits = total[np.isfinite(total)]
            total[unfit] = fits.min() if len(fits) else UNFIT_FLOOR
        return total

    def one_line(self, read: ImprintRead, faces: Container[str]) -> str | None:
        """The greedy read that settles the pill on one line, if one does: ONE_LINE_CHARS+ characters, one of
        ``faces`` (normalised catalog faces), scoring ONE_LINE_LL or better without the line pairs."""
        texts = [t for t, _ in read.texts if len(t) >= ONE_LINE_CHARS and t in faces]
        if not texts:
            return None
        scores = self.score_many(read, texts, lines=False)
        return texts[int(np.argmax(scores))] if scores.max() >= ONE_LINE_LL else None

    def score(self, read: ImprintRead, candidate_text: str) -> float:
        """One candidate (about 0.25 ms a call: for a shortlist, one score_many call is ~30x cheaper)."""
        return float(self.score_many(read, [candidate_text])[0])
