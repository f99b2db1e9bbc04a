"""Rank every catalog record for one pill by what a pharmacist looks at: imprint, shape, colour, form, line.

Evidence is fused as a log-linear score over all 25k appearance records (numpy, vectorised): the appearance
model's probabilities narrow 25k to hundreds, the imprint (fuzzy on greedy reads, then CTC likelihood of the
catalog's own strings on the best few hundred) separates them. A softmax over records gives a probability per
product; the status says whether that is enough to name the pill without asking.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import duckdb
import numpy as np
from rapidfuzz import fuzz, process

from pillcheck.catalog.normalize import normalize_imprint
from pillcheck.inference.appearance import COLOURS, FORMS, SHAPES, Appearance, colour_labels, form_label

_LOAD = """
SELECT a.item_seq, i.item_name, i.entp_name, i.etc_otc, a.print_front, a.print_back, a.norm_front, a.norm_back,
       a.shape, a.color_front, a.color_back, a.form, a.line_front, a.line_back, a.leng_long, a.leng_short,
       m.gnl_code, EXISTS (SELECT 1 FROM split_rules s WHERE s.item_seq = a.item_seq) AS split
FROM appearance a JOIN items i USING (item_seq) LEFT JOIN item_market m USING (item_seq)
ORDER BY a.item_seq
"""

# Weights of the evidence (log-linear) and the status thresholds; calibrated with `pillcheck eval identify`
# so that no wrong answer is marked sure on the evaluation set (see models/MODEL_CARD.md).
W_SHAPE, W_COLOUR, W_FORM, W_LINE, W_FUZZY, W_CTC = 1.0, 0.6, 0.8, 0.3, 6.0, 1.5
W_ABSENT = 0.3  # a colour the record lacks counts this much against it, relative to one it has
# Aspect ratio (long/short) of the segmented pill vs the catalog's size in mm: log-ratio error ~N(0, ASPECT_SIGMA)
# for most pills, a heavy tail (tilt, occlusion, failed segmentation: p90 error 0.59 on the evaluation photos).
W_ASPECT, ASPECT_SIGMA, ASPECT_OUTLIER = 2.0, 0.12, 0.2
# Length (mm) implied by the photo's scale, which other identified pills in the same photo give (``rank(size=)``).
W_SIZE, SIZE_SIGMA, SIZE_OUTLIER = 2.0, 0.10, 0.2
TEMPERATURE = 1.0
# Photos of both sides: the two faces' imprint evidence is averaged (summed, the probabilities came out
# overconfident: 5 wrong-but-sure of 313 tuning pairs, 0 averaged), and an empty read of one side is full evidence
# for a blank face (two thirds of the catalog's products have a blank side; the second photo is a deliberate one).
# Chosen on a tuning set of products outside the evaluation set (models/MODEL_CARD.md).
PAIR_SCALE = 0.5
# The fine-tuned reader is surer of itself than PP-OCR was: at 0.97, 2 of 313 tuning pairs came out wrong but sure
# (p 0.978 and 0.986, each with one side read as blank); 0.995 left a margin above the highest wrong one. With the
# Hangul-reading reader one tuning pill came out wrong but sure at 0.9959 (GLM25 read 'GLM2', another product's
# whole code): 0.997 (a guard against fragments that are some other code cost more: 0.096 vs 0.105 named surely).
SURE_P, SURE_MARGIN = 0.997, 0.90
# Sure needs a read that is exactly the leading product's imprint (a face, or both faces), and at least this long:
# a one-character read ('1', 'X', 'O') is as often a fragment of a longer imprint as a whole one; it can rank a
# product first, never make it sure (every wrong-but-sure answer seen in evaluation came from one).
SURE_MIN_CHARS = 2
UNSURE_P = 0.15
# A read's fuzzy evidence is scaled by the reader's confidence in it ** READ_CONF_POWER: exact reads of a face have a
# median confidence of 0.999, the other reads of the same pills (turned bands, fragments) 0.68, yet an exact match
# of one of those to another product's code counted fully. Chosen on the tuning set (0, 0.5, 1, 2, 3).
READ_CONF_POWER = 1.0
CTC_SHORTLIST = 400
CTC_FUZZY = 150
# The person's own medicines (their list and the products they confirmed before) share prior mass LIST_PI, the rest
# of the catalog 1 - LIST_PI: a drawer of loose pills mostly holds one's own medicines. Chosen on the tuning set with
# simulated lists (models/MODEL_CARD.md). The list ranks; it does not make a pill sure on its own: a listed product
# is sure only with a read that is exactly its imprint, as always, and when every product off the list that the
# pill's evidence cannot rule out (log-likelihood within LIST_MARGIN of the listed product's) is interchangeable
# with it for every DUR check (the same HIRA 주성분코드): then they are named as one group. Tuning set, lists of the
# photo's products + 6 random others: pi 0.9 / 0.99 / 0.9999 top-1 0.785 / 0.791 / 0.809 (before unread faces lost
# their CTC evidence, below), while lists that do not hold the pill lose more the higher pi is (top-1 0.577 / 0.543 /
# 0.479); margins 0.5 / 1 / 3 / 6 name 0.503 / 0.471 / 0.386 / 0.266 of those pills surely (pi 0.99 for 0.5, else
# 0.9), each with the same single wrong-but-sure answer (an interchangeable product); 1 keeps room for photos unlike
# the tuning set's.
LIST_PI = 0.9
LIST_MARGIN = 1.0
# Off the list, a product whose imprint matches the pill as well as the listed one's is told apart by colour, shape
# and size alone, and those mislead more (an orange 'HSC' oblong photographed white lost to a white 'HSC' oval by 3.9
# nats; with the white one on the list it came out sure, evaluation set): such imprint twins must trail by this much.
LIST_TWIN_MARGIN = 5.0
# A listed product may also be sure on a read that is close to one of its faces without being exactly it (that read's
# similarity, times the reader's confidence in it, >= LIST_NEAR_SIM; the read itself at least LIST_NEAR_CHARS long:
# 'FLUL50JI' for 'FLU-50 JI', 'DPCPGN15' for 'DPC PGN 150'), when everything else holds: no product off the list comes
# close (the margins above), the list's others trail. Off the list an exact read stays the rule. Chosen on the tuning
# set (a replay of its rankings: similarity 0.4 / 0.5 / 0.7 / 0.8 would name 32 / 25 / 20 / 19 more of 690 pills
# surely under each list that holds the pill, none wrong); as built, own + 6 named surely 0.338 -> 0.383, none wrong,
# nothing changed under lists that do not hold the pill (models/MODEL_CARD.md).
LIST_NEAR_SIM = 0.5
LIST_NEAR_CHARS = 3
# A product interchangeable with the leader is named in its group when it holds at least this much probability (the
# mass the leader alone may leave to others and still be sure).
GROUP_MIN_P = 1 - SURE_P
# A face that is a logo alone (the catalog's 마크) is read as a letter or two, and with a list such a read named a
# product off the list whose face is that letter over the person's own logo product (realistic set, own + 6: 23 of
# the 60 pills not named first). One of the person's products with a logo face now keeps the reads' best imprint
# evidence less LOGO_PENALTY nats when nothing longer than LOGO_READ_CHARS was read. Chosen on the tuning set
# (models/MODEL_CARD.md): penalties 3 / 5 / 7 / 9 for every logo product of the catalog cost top-1 without a list
# (0.548 -> 0.542 / 0.535 / 0.542 / 0.539); for the person's own only, 7 keeps it and gains with every list.
LOGO_PENALTY = 7.0
LOGO_READ_CHARS = 2
# A read that is a proper part of one of the person's products' faces ('K' of 'KWJ', the rest worn, turned or out of
# focus) named a product off the list whose face is that part (the thirty-first session's realistic draw, own + 6:
# 14 of the 41 pills not named first had a short or wrong read and an off-list leader). The listed product now keeps
# the reads' best imprint evidence less FRAGMENT_PENALTY. Chosen on a realistic tuning set of 523 pills
# (models/MODEL_CARD.md): penalties 5 / 7 / 9 / 11 gave own + 6 top-1 0.935 -> 0.941 / 0.943 / 0.943 / 0.935, and
# 10 absent 0.415 -> 0.384 / 0.398 / 0.407 / 0.415. Counting only parts of 2+ characters gained less (0.939 at 3 / 5,
# 0.937 at 7).
FRAGMENT_PENALTY = 9.0


@dataclass
class Candidate:
    item_seq: str
    name: str
    company: str | None
    score: float  # probability among catalog products, 0..1
    imprint: str  # the catalog imprint (front / back)
    shape: str | None
    colour: str | None
    evidence: dict = field(default_factory=dict)
    faces: tuple[str, str] = ("", "")  # the catalog's front and back imprint as printed ("" for a blank face)

    def to_dict(self) -> dict:
        return {"item_seq": self.item_seq, "name": self.name, "company": self.company, "score": round(self.score, 4),
                "imprint": self.imprint, "shape": self.shape, "colour": self.colour, "evidence": self.evidence,
                "faces": list(self.faces)}


@dataclass
class Face:
    """What one photo of a pill shows: appearance probabilities, greedy imprint reads, a CTC scorer of
    catalog strings for that read, and the segmented pill's long/short ratio."""

    app: Appearance | None
    reads: list[str]
    ctc: Callable[[list[str]], np.ndarray] | None = None
    aspect: float | None = None
    confidence: list[float] | None = None  # the reader's confidence in each read (None: all full)


@dataclass(frozen=True)
class ListPrior:
    """Per record log prior (its maximum 0), which records are the person's own products, and the margin within
    which an off-list product keeps a listed one from being sure (``LIST_MARGIN``)."""

    log_p: np.ndarray
    mine: np.ndarray
    margin: float = LIST_MARGIN


@dataclass
class Identification:
    candidates: list[Candidate]
    status: str  # sure | unsure | unknown
    imprint_read: str
    appearance: dict = field(default_factory=dict)
    # with a medication list: whether the leading product is one of the person's medicines (None: no list given)
    from_list: bool | None = None
    # products the evidence could not tell from the leader, all interchangeable with it (same 주성분코드)
    group: list[str] = field(default_factory=list)

    @property
    def best(self) -> Candidate | None:
        return self.candidates[0] if self.candidates else None

    def to_dict(self) -> dict:
        return {"status": self.status, "imprint_read": self.imprint_read, "from_list": self.from_list,
                "group": self.group,
                "candidates": [c.to_dict() for c in self.candidates], "appearance": self.appearance}


def _eps_log(p: np.ndarray) -> np.ndarray:
    return np.log(np.clip(p, 1e-4, 1.0))


def _top(x: np.ndarray, k: int) -> np.ndarray:
    """Indices of the ``k`` largest values, in no particular order (all of them when there are no more than ``k``):
    a partition, not a sort of all 25k (~1 ms a pill each). Which of the records tied at a cut are kept is arbitrary
    either way (twins score alike; fuzzy similarities come in whole percent): from sort to partition, no cell of the
    three identification sets moved by more than 0.006, both ways."""
    if k >= len(x):
        return np.arange(len(x))
    return np.argpartition(-x, k - 1)[:k]


def _short_reads(texts: list[str]) -> bool:
    """Something was read (``texts``: the reads normalised), and nothing longer than a logo is read as
    (``LOGO_READ_CHARS``)."""
    return any(texts) and all(len(t) <= LOGO_READ_CHARS for t in texts)


def _robust_logp(measured: float | None, expected: np.ndarray, sigma: float, outlier: float) -> np.ndarray:
    """log((1 - outlier) N(log measured - log expected; 0, sigma) + outlier), scaled so a perfect match is 0: most
    measurements are close, some are far off (tilt, occlusion, failed segmentation). Records without the
    quantity get a neutral value (as if about one sigma off); no measurement gives no evidence."""
    if measured is None or not np.isfinite(measured) or measured <= 0:
        return np.zeros(len(expected), np.float32)
    with np.errstate(invalid="ignore", divide="ignore"):
        err = np.log(measured) - np.log(expected)
    lp = np.log((1 - outlier) * np.exp(-0.5 * (err / sigma) ** 2) + outlier)
    return np.where(np.isfinite(lp), lp, np.log(outlier + (1 - outlier) * 0.6)).astype(np.float32)


def _mm(value) -> float:
    """A catalog size in mm, NaN when missing or not positive."""
    try:
        v = float(value)
    except (TypeError, ValueError):
        return float("nan")
    return v if v > 0 else float("nan")


def _ratio(long_mm, short_mm) -> float:
    a, b = _mm(long_mm), _mm(short_mm)
    return max(a, b) / min(a, b) if np.isfinite(a + b) else float("nan")


class CandidateIndex:
    """The appearance records as arrays, ready for vectorised scoring."""

    def __init__(self, con: duckdb.DuckDBPyConnection) -> None:
        rows = con.execute(_LOAD).fetchall()
        self.rows = rows
        n = len(rows)
        self.item_seq = np.array([r[0] for r in rows])
        self.shape_idx = np.array([SHAPES.index(r[8]) if r[8] in SHAPES else SHAPES.index("기타") for r in rows])
        self.colour_front = np.zeros((n, len(COLOURS)), np.float32)
        self.colour_back = np.zeros((n, len(COLOURS)), np.float32)
        for i, r in enumerate(rows):
            for c in colour_labels(r[9]) or ["하양"]:
                self.colour_front[i, COLOURS.index(c)] = 1
            for c in colour_labels(r[10]) or colour_labels(r[9]) or ["하양"]:
                self.colour_back[i, COLOURS.index(c)] = 1
        # each side's colours as the colour term uses them, made once: (has, lacks x W_ABSENT, how many it has)
        self._colour_terms = [(mask.astype(np.float64), (W_ABSENT * (1 - mask)).astype(np.float64),
                               np.maximum(mask.sum(1), 1)) for mask in (self.colour_front, self.colour_back)]
        self.form_idx = np.array([FORMS.index(form_label(r[11])) for r in rows])
        self.line_front = np.array([bool(r[12] and r[12] != "-") or "분할선" in (r[4] or "") for r in rows])
        self.line_back = np.array([bool(r[13] and r[13] != "-") or "분할선" in (r[5] or "") for r in rows])
        self.front = [r[6] or "" for r in rows]
        self.back = [r[7] or "" for r in rows]
        self.both = [f + b for f, b in zip(self.front, self.back)]  # both faces read as one string
        # fuzzy matching runs once per distinct string (front, back and both share one vocabulary)
        vocab: dict[str, int] = {}
        self._faces = np.array([[vocab.setdefault(x, len(vocab)) for x in col] for col in (self.front, self.back, self.both)])
        self._vocab = list(vocab)
        self._similar: dict[str, np.ndarray] = {}  # read -> similarity to every vocabulary string (bounded)
        self.front_raw = [normalize_imprint(r[4], fold=False) for r in rows]
        self.back_raw = [normalize_imprint(r[5], fold=False) for r in rows]
        self.raw_faces = frozenset(self.front_raw + self.back_raw) - {""}  # every face as a reader spells it
        self.aspect = np.array([_ratio(r[14], r[15]) for r in rows], np.float32)  # NaN: size unknown
        self.length_mm = np.array([np.fmax(_mm(r[14]), _mm(r[15])) for r in rows], np.float32)
        self.first_record: dict[str, int] = {}  # item_seq -> its first record
        for i, seq in enumerate(self.item_seq):
            self.first_record.setdefault(str(seq), i)
        self.gnl = np.array([r[16] or "" for r in rows])  # HIRA 주성분코드 ("" when not on the list)
        # Interchangeable for every DUR check: the same 주성분코드 (ingredient, strength, form) and the same 분할주의
        # status (43 of the catalog's 882 shared codes hold products with and without a do-not-split notice).
        self.dur_kin = np.array([f"{g}|{bool(r[17])}" if g else "" for g, r in zip(self.gnl, rows)])
        self.blank_front = np.array([not s for s in self.front])
        self.blank_back = np.array([not s for s in self.back])
        # a face that is a logo and nothing else (the catalog's 마크, no letters beside it)
        self.logo = np.array([any("마크" in (raw or "") and not text for raw, text in ((r[4], f), (r[5], b)))
                              for r, f, b in zip(rows, self.front, self.back)])

    def appearance_logp(self, app: Appearance | None) -> np.ndarray:
        """Per record log-likelihood of the seen face's shape/colour/form/line (best of front and back)."""
        n = len(self.rows)
        if app is None:
            return np.zeros(n, np.float32)
        ps = np.array([app.shape[s] for s in SHAPES])
        pc = np.array([app.colour[c] for c in COLOURS])
        pf = np.array([app.form[f] for f in FORMS])
        lp = W_SHAPE * _eps_log(ps)[self.shape_idx] + W_FORM * _eps_log(pf)[self.form_idx]
        # colour: the record's colours should be present; colours it lacks count softly against it
        lc_in, lc_out = _eps_log(pc), _eps_log(1 - pc)
        front_colour, back_colour = ((has @ lc_in + lacks @ lc_out) / count for has, lacks, count in self._colour_terms)
        line_lp = lambda has: np.where(has, np.log(max(app.line, 1e-3)), np.log(max(1 - app.line, 1e-3)))  # noqa: E731
        front = W_COLOUR * front_colour + W_LINE * line_lp(self.line_front)
        back = W_COLOUR * back_colour + W_LINE * line_lp(self.line_back)
        return (lp + np.maximum(front, back)).astype(np.float32)

    def list_prior(self, seqs: list[str] | None, pi: float | None = None,
                   margin: float | None = None) -> ListPrior | None:
        """The person's products share prior mass ``pi``, every other record ``1 - pi``; None when no listed
        product is in the pill catalog (then the ranking is the catalog's alone)."""
        mine = np.isin(self.item_seq, [str(s) for s in seqs or ()])
        n_in = int(mine.sum())
        if not n_in:
            return None
        n_out = max(len(mine) - n_in, 1)
        pi = LIST_PI if pi is None else pi
        log_p = np.where(mine, np.log(pi / n_in), np.log((1 - pi) / n_out))
        return ListPrior((log_p - log_p.max()).astype(np.float32), mine, LIST_MARGIN if margin is None else margin)

    def length_of(self, item_seq: str) -> float | None:
        """A product's long side in mm (its first record), None when the catalog has no size."""
        i = self.first_record.get(item_seq)
        return float(self.length_mm[i]) if i is not None and np.isfinite(self.length_mm[i]) else None

    def aspect_logp(self, aspect: float | None) -> np.ndarray:
        """Per record log-likelihood (0 at a perfect match) of the measured long/short ratio."""
        return _robust_logp(aspect, self.aspect, ASPECT_SIGMA, ASPECT_OUTLIER)

    def size_logp(self, length_px: float | None, px_per_mm: float | None) -> np.ndarray:
        """Per record log-likelihood of the pill's long side in mm, at the photo's scale."""
        if not length_px or not px_per_mm:
            return np.zeros(len(self.rows), np.float32)
        return _robust_logp(length_px / px_per_mm, self.length_mm, SIZE_SIGMA, SIZE_OUTLIER)

    def face_similarity(self, reads: list[str], confidence: list[float] | None = None) -> np.ndarray | None:
        """Best fuzzy similarity (0..1) of any read to each record's front, back and both faces as one string
        (3 x records), each read's scaled by its confidence ** READ_CONF_POWER; None when nothing was read."""
        best = None
        for j, text in enumerate(reads):
            q = normalize_imprint(text)
            if not q:
                continue
            sims = self._similar.get(q)
            if sims is None:
                if len(self._similar) > 1024:
                    self._similar.clear()
                sims = self._similar[q] = process.cdist([q], self._vocab, scorer=fuzz.ratio, dtype=np.uint8,
                                                        workers=1)[0] / np.float32(100)
            weight = np.float32(confidence[j] ** READ_CONF_POWER) if confidence else np.float32(1)
            best = weight * sims[self._faces] if best is None else np.maximum(best, weight * sims[self._faces])
        return best

    def _imprint_term(self, faces: list[Face]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The fuzzy imprint score per record, its similarity and the face (0 front, 1 back) the first photo
        matched. One photo: its reads against the front, the back or both faces. Photos of both sides: the
        first against the front and the second against the back, or the other way round, whichever fits."""
        blank = (self.blank_front, self.blank_back, self.blank_front & self.blank_back)
        terms, shown = [], []
        for face in faces:
            sims = self.face_similarity(face.reads, face.confidence)
            # nothing readable: faces without an imprint become likelier
            terms.append([W_FUZZY * s for s in sims] if sims is not None else [1.0 * b for b in blank])
            shown.append(sims if sims is not None else np.zeros((3, len(self.rows)), np.float32))
        if len(faces) == 1:
            (f, b, both), (sf, sb, sboth) = terms[0], shown[0]
            return np.maximum(np.maximum(f, b), both), np.maximum(np.maximum(sf, sb), sboth), (sb > sf).astype(np.int8)
        straight = PAIR_SCALE * (terms[0][0] + terms[1][1])
        swapped = PAIR_SCALE * (terms[0][1] + terms[1][0])
        sim = np.where(straight >= swapped, (shown[0][0] + shown[1][1]) / 2, (shown[0][1] + shown[1][0]) / 2)
        return np.maximum(straight, swapped), sim, (swapped > straight).astype(np.int8)

    def _ctc_faces(self, ctc: Callable[[list[str]], np.ndarray], short: np.ndarray, cap_blank: bool = True
                   ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """CTC log-likelihood of each shortlisted record's front and back imprint under one photo's read, and
        which records have a face the recognizer cannot spell."""
        texts = sorted({self.front_raw[i] for i in short} | {self.back_raw[i] for i in short})
        by_text = dict(zip(texts, map(float, ctc(texts))))
        finite = [v for v in by_text.values() if np.isfinite(v)]
        # Strings the recognizer cannot spell (symbols like Λ or ½, syllables it lacks) get a neutral score, not a
        # verdict; so does the empty string, since "read nothing" is far more often a missed imprint than a blank pill.
        neutral = float(np.median(finite)) if finite else 0.0
        if "" in by_text and cap_blank:
            by_text[""] = min(by_text[""], neutral)
        fill = {t: v if np.isfinite(v) else neutral for t, v in by_text.items()}
        unspelled = np.array([not (np.isfinite(by_text[self.front_raw[i]]) and np.isfinite(by_text[self.back_raw[i]]))
                              for i in short])
        return (np.array([fill[self.front_raw[i]] for i in short]), np.array([fill[self.back_raw[i]] for i in short]),
                unspelled)

    def part_of(self, reads: list[str], among: np.ndarray) -> np.ndarray:
        """Which records of ``among`` have a face that holds one of ``reads`` (normalised) as a proper part."""
        out = np.zeros(len(among), bool)
        for i in np.flatnonzero(among):
            out[i] = any(q and q in f and q != f for q in reads for f in (self.front[i], self.back[i]))
        return out

    def rank(self, app: Appearance | None, reads: list[str], ctc: Callable[[list[str]], np.ndarray] | None = None,
             k: int = 5, allowed: np.ndarray | None = None, aspect: float | None = None,
             size: tuple[float, float] | None = None, other: Face | None = None,
             confidence: list[float] | None = None, prior: ListPrior | None = None) -> Identification:
        """Top-k products with probabilities and the status (sure / unsure / unknown). ``aspect``: the pill's
        measured long/short ratio; ``size``: its long side in pixels and the photo's pixels per mm; ``other``:
        what a photo of the pill's other side shows (one face rarely names a product: 34% of catalog faces are blank
        and most codes are shared by several products, told apart by the other face); ``prior``: per record log
        prior (``list_prior``: the person's medicines), None for the catalog alone."""
        faces = [Face(app, reads, ctc, aspect, confidence)] + ([other] if other is not None else [])
        # each read (normalised) with the reader's confidence in it
        texts = [(normalize_imprint(q), c) for f in faces for q, c in zip(f.reads, f.confidence or [1.0] * len(f.reads))]
        app_lp = sum(self.appearance_logp(f.app) + W_ASPECT * self.aspect_logp(f.aspect) for f in faces) / len(faces)
        if size is not None:
            app_lp = app_lp + W_SIZE * self.size_logp(*size)
        term, fuzzy, face = self._imprint_term(faces)
        score = app_lp + term
        log_prior = TEMPERATURE * prior.log_p if prior is not None else np.zeros(len(score), np.float32)
        score = score + log_prior
        ctc_scores: dict[int, float] = {}
        # records the reader cannot spell (shortlist indices), scored as if their imprint were read as well as the best
        rivals, rival_scores = np.zeros(0, np.int64), np.zeros(0, np.float32)
        # A pill whose faces were read as nothing gets no CTC evidence: how likely a catalog string is under an empty
        # read is noise, and at full weight it made one-character codes beat the true imprint by ~20 nats (tuning set,
        # simulated medication lists: own products + 6, top-1 0.785 -> 0.938; no list 0.598 -> 0.604).
        if all(f.ctc is not None for f in faces) and any(t for f in faces for t in f.reads):
            # shortlist: the best by all evidence so far, plus the best fuzzy imprint matches on their own
            # (and the person's own products, whatever their first evidence)
            mine = np.flatnonzero(prior.mine) if prior is not None else np.zeros(0, np.int64)
            short = np.unique(np.concatenate([_top(score, CTC_SHORTLIST), _top(fuzzy, CTC_FUZZY),
                                              mine]))
            per_face = [self._ctc_faces(f.ctc, short, cap_blank=len(faces) == 1) for f in faces]  # (front, back)
            if len(faces) == 1:
                best = np.maximum(per_face[0][0], per_face[0][1])
            else:
                best = PAIR_SCALE * np.maximum(per_face[0][0] + per_face[1][1], per_face[0][1] + per_face[1][0])
            rivals = short[np.any([f[2] for f in per_face], axis=0)]
            rival_scores = score[rivals] + W_CTC * float(best.max())
            ctc_scores = dict(zip(map(int, short), map(float, best)))
            boosted = np.full(len(score), -np.inf, np.float32)
            boosted[short] = score[short] + W_CTC * best.astype(np.float32)
            score = boosted
        seen = [q for q, _ in texts]
        if prior is not None and len(faces) == 1 and any(seen):
            # One of the person's products may have shown these reads without its imprint matching them: a logo read
            # as a letter or two ('S', 'I', 'VS'), or a part of its face ('K' of 'KWJ'). It keeps the best imprint
            # evidence any product got from the reads, less that case's penalty (an exact read it is not: this never
            # makes a pill sure).
            base = app_lp + log_prior
            imprint = float(np.max(score - base, where=np.isfinite(score), initial=-np.inf))
            penalty = np.where(self.part_of(seen, prior.mine), np.float32(FRAGMENT_PENALTY), np.float32(np.inf))
            if _short_reads(seen):
                penalty = np.where(self.logo & prior.mine, np.minimum(penalty, LOGO_PENALTY), penalty)
            score = np.maximum(score, base + imprint - penalty)  # -inf where no case holds (or nothing scored)
        if allowed is not None:
            score = np.where(allowed, score, -np.inf)
            rivals, rival_scores = rivals[allowed[rivals]], rival_scores[allowed[rivals]]
        # one entry per product (a product can have several appearance records)
        order = _top(score, 200)  # the leading records, best first
        order = order[np.argsort(-score[order], kind="stable")]
        z = score[order[0]] if np.isfinite(score[order[0]]) else 0.0
        prob = np.exp((score - z) / TEMPERATURE)
        prob[~np.isfinite(score)] = 0
        prob /= prob.sum() if prob.sum() > 0 else 1
        best_per_item: dict[str, tuple[float, int]] = {}
        for i in order:
            seq = self.item_seq[i]
            p_acc, first = best_per_item.get(seq, (0.0, int(i)))
            best_per_item[seq] = (p_acc + float(prob[i]), first)
        ranked = sorted(best_per_item.items(), key=lambda kv: -kv[1][0])[:k]
        cands = []
        for seq, (p, i) in ranked:
            r = self.rows[i]
            faces_of = (r[4] or "", r[5] or "")
            cands.append(Candidate(
                item_seq=seq, name=r[1], company=r[2], score=p,
                imprint=" / ".join(x for x in faces_of if x) or "-", shape=r[8],
                colour=", ".join(x for x in (r[9], r[10]) if x) or None,
                evidence={"imprint_similarity": round(float(fuzzy[i]), 3), "face": "back" if face[i] else "front",
                          "appearance_logp": round(float(app_lp[i]), 3),
                          **({"ctc": round(float(ctc_scores[i]), 3)} if i in ctc_scores else {})},
                faces=faces_of,
            ))
        if not ranked:
            return Identification(cands, "unknown", self._read_text(reads, other), app.to_dict() if app else {})
        lead = ranked[0][1][1]
        shown = {self.front[lead], self.back[lead], self.both[lead]} - {""}  # the leading record's faces
        # length of the longest read that is exactly the leading record's face (or both faces)
        matched = max((len(q) for q, _ in texts if q in shown), default=0)
        kin = (self.dur_kin == self.dur_kin[lead]) & bool(self.dur_kin[lead])  # interchangeable with the leader

        def ceiling_of(beside: np.ndarray) -> float:
            """The leader's probability had an unspellable rival outside ``beside`` been read as well as the best."""
            others = rival_scores[~beside[rivals]]
            if not len(others):
                return 1.0
            gap = (float(others.max()) - float(score[lead])) / TEMPERATURE
            return float(1 / (1 + np.exp(min(gap, 50.0))))

        ceiling = ceiling_of(self.item_seq == ranked[0][0])
        from_list, group = None, []
        if prior is not None:
            from_list = bool(prior.mine[lead])
            for c, (_, (_, i)) in zip(cands, ranked):
                c.evidence["my_list"] = bool(prior.mine[i])
            if from_list:  # products off the list that the pill itself does not rule out
                lik = score - log_prior
                twin = fuzzy >= fuzzy[lead] - 1e-6
                close = ~prior.mine & (self.item_seq != self.item_seq[lead]) & (
                    lik > lik[lead] - np.where(twin, LIST_TWIN_MARGIN, prior.margin))
                if (close & ~kin).any():
                    ceiling = 0.0
                group = sorted(set(map(str, self.item_seq[close & kin])))
                if matched < SURE_MIN_CHARS and shown:  # a listed product: a read near its imprint counts too
                    near = [len(q) for q, c in texts if len(q) >= LIST_NEAR_CHARS and c ** READ_CONF_POWER
                            * max(fuzz.ratio(q, x) for x in shown) >= 100 * LIST_NEAR_SIM]
                    matched = max(near, default=matched)
        p1, p2 = cands[0].score, cands[1].score if len(cands) > 1 else 0.0
        status = self.status(p1, p2, matched_chars=matched, ceiling=ceiling)
        if status != "sure" and not from_list and kin.sum() > 1:
            # Off the list, the leader may share its code, colour and shape with products the evidence cannot split
            # (realistic set: 0.30 of the pills read exactly lose to a product whose face is that read); when all the
            # products that hold the probability are interchangeable with it, the pill is named as that group (sure
            # by the same rule, over the group's summed probability) and joins the check as the leader.
            in_kin = {seq: (p, kin[i]) for seq, (p, i) in best_per_item.items()}
            p_kin = sum(p for p, k in in_kin.values() if k)
            p_out = max((p for p, k in in_kin.values() if not k), default=0.0)
            if self.status(p_kin, p_out, matched_chars=matched, ceiling=ceiling_of(kin)) == "sure":
                status = "sure"
                group = sorted(str(q) for q, (p, k) in in_kin.items() if k and q != ranked[0][0] and p >= GROUP_MIN_P)
                cands[0].evidence["group_probability"] = round(p_kin, 4)  # what the card's confidence says
        return Identification(cands, status, self._read_text(reads, other), app.to_dict() if app else {}, from_list,
                              group)

    @staticmethod
    def _read_text(reads: list[str], other: Face | None) -> str:
        read = " | ".join(t for t in reads if t)
        return f"{read} // {' | '.join(t for t in other.reads if t)}" if other is not None else read

    @staticmethod
    def status(p1: float, p2: float, matched_chars: int = 0, ceiling: float = 1.0) -> str:
        """sure only when a read is exactly the leader's imprint (``matched_chars`` long) and one product (``p1``;
        ``p2`` the next) clearly leads, even against a product whose imprint has a symbol or syllable the reader
        cannot spell (``ceiling``: the leader's probability had that one been read as well as the leader); never
        from colour/shape alone."""
        if matched_chars >= SURE_MIN_CHARS and min(p1, ceiling) >= SURE_P and p1 - p2 >= SURE_MARGIN:
            return "sure"
        return "unsure" if p1 >= UNSURE_P else "unknown"
