"""One road for every photo: decode -> detect -> identify each pill -> DUR check -> Report.

The Gradio UI, the CLI and the HTTP API all call ``Pipeline.analyze`` (or the module-level ``analyze``).
Only pills identified as *sure* (or confirmed by the person) join the DUR check with the saved medications;
the others are listed as not checked, so a missing warning is never mistaken for safety, and the serious
warnings their likely products would raise are listed apart, as possible (``safety.dur.possible_warnings``).
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from pillcheck import config, images
from pillcheck.barcode import read_codes
from pillcheck.catalog.db import Catalog, open_catalog
from pillcheck.catalog.identify import Face, Identification, ListPrior
from pillcheck.catalog.normalize import normalize_imprint
from pillcheck.catalog.status import by_barcode, describe, resolve_codes
from pillcheck.inference import measure, models
from pillcheck.inference.appearance import Appearance, crop
from pillcheck.inference.detector import Detections
from pillcheck.inference.imprint import ImprintRead
from pillcheck.inference.photo_advice import advise
from pillcheck.inference.segment import pill_outline
from pillcheck.safety.dur import CheckResult, Profile, check, possible_warnings


@dataclass
class Pill:
    index: int  # 1-based number shown on the photo
    box: list[float]  # xyxy, original pixels
    confidence: float
    identification: Identification
    confirmed: str | None = None  # ITEM_SEQ chosen by the person

    @property
    def item_seq(self) -> str | None:
        """The product this pill counts as in the DUR check: confirmed, or identified as sure."""
        if self.confirmed:
            return self.confirmed
        best = self.identification.best
        return best.item_seq if best and self.identification.status == "sure" else None

    def to_dict(self) -> dict:
        ident = self.identification
        return {"index": self.index, "box": [round(v, 1) for v in self.box], "confidence": round(self.confidence, 4),
                "status": "confirmed" if self.confirmed else ident.status, "imprint_read": ident.imprint_read,
                "item_seq": self.item_seq, "from_list": ident.from_list, "group": ident.group,
                "candidates": [c.to_dict() for c in ident.candidates],
                "appearance": ident.appearance}


@dataclass
class Report:
    width: int
    height: int
    pills: list[Pill]
    check: CheckResult
    my_meds: list[str]
    data: str
    timings_ms: dict[str, float] = field(default_factory=dict)
    possible: list[dict] = field(default_factory=list)  # what the pills not identified could mean
    products: dict[str, dict] = field(default_factory=dict)  # market status and recalls (catalog.status)
    advice: str | None = None  # what to change about the photo (photo_advice.advise), None when nothing

    @property
    def not_identified(self) -> list[int]:
        return [p.index for p in self.pills if p.item_seq is None]

    def to_dict(self) -> dict:
        chk = self.check.to_dict()
        return {"width": self.width, "height": self.height, "pills": [p.to_dict() for p in self.pills],
                "warnings": chk["warnings"], "unchecked": chk["unchecked"], "unknown": chk["unknown"],
                "not_identified": self.not_identified, "checks_run": chk["checks_run"],
                "checks_skipped": chk["checks_skipped"], "possible_warnings": self.possible, "my_meds": self.my_meds,
                "products": self.products, "advice": self.advice,
                "data": self.data, "timings_ms": self.timings_ms}


class Pipeline:
    """Holds the catalog and the models (each loaded once, lazily) for one process."""

    def __init__(self, db: Path | None = None, models_dir: Path | None = None) -> None:
        self.db = Path(db or config.default_db())
        self.models_dir = Path(models_dir or config.MODELS_DIR)

    @property
    def catalog(self) -> Catalog:
        return open_catalog(self.db)

    def identify(self, rgb: np.ndarray, det: Detections,
                 other_sides: dict[int, tuple[np.ndarray, np.ndarray]] | None = None,
                 mine: list[str] | None = None) -> list[Identification]:
        """Identify every detected pill: one batched appearance run, one imprint read per pill, then ranking.

        With several pills in one photo, their sizes are evidence too: pills lie at about the same distance from
        the camera, so the pills already named fairly surely give the photo's pixels per mm, and each pill is
        ranked again with the length that scale implies (5 mg and 15 mg tablets often share the front code).
        ``other_sides``: for some pills (0-based index), a photo of the pill's other side and the pill's box in
        it; both faces are then matched together. ``mine``: the person's medicines and past confirmations
        (ITEM_SEQ), a prior over the catalog (``CandidateIndex.list_prior``)."""
        return self.identify_with_lists(rgb, det, other_sides, [mine])[0]

    def identify_with_lists(self, rgb: np.ndarray, det: Detections,
                            other_sides: dict[int, tuple[np.ndarray, np.ndarray]] | None,
                            lists: list[list[str] | None], pi: float | None = None,
                            margin: float | None = None) -> list[list[Identification]]:
        """``identify`` under several medication lists at once (one per entry of ``lists``; None: no list): the
        pills are looked at and read once, only the ranking runs per list (how `eval identify --lists` measures);
        ``pi``, ``margin``: the list's prior mass and sure margin (default ``LIST_PI``, ``LIST_MARGIN``)."""
        if not len(det):
            return [[] for _ in lists]
        other_sides = other_sides or {}
        order = sorted(other_sides)
        app_model = models.appearance(self.models_dir / "appearance.onnx")
        crops = [crop(rgb, box) for box in det.xyxy] + [crop(*other_sides[i]) for i in order]
        apps = app_model(crops) if app_model else [None] * len(crops)
        reader = models.imprint(self.models_dir)
        index = self.catalog.candidates
        pills = [imprint_crop(rgb, box) for box in det.xyxy] + [imprint_crop(*other_sides[i]) for i in order]
        reads = [reader.read(pixels) for pixels, _ in pills] if reader else []
        apps = self._measured(apps, [pixels for pixels, _ in pills], [r.hull for r in reads] if reader else None)
        priors = [index.list_prior(seqs, pi, margin) for seqs in lists]
        if not reader:
            return [[index.rank(app, [], prior=prior) for app in apps[: len(det)]] for prior in priors]
        lengths = [read.length_px / k if read.length_px else None for read, (_, k) in zip(reads, pills)]

        def face(app: Appearance | None, read: ImprintRead, lines: bool = True) -> Face:
            scored: dict[str, float] = {}  # CTC scores of this read, reused by the second pass

            def ctc(cands: list[str]) -> np.ndarray:
                todo = [c for c in cands if c not in scored]
                if todo:
                    scored.update(zip(todo, map(float, reader.score_many(read, todo, lines))))
                return np.array([scored[c] for c in cands])

            return Face(app, [t for t, _ in read.texts], ctc, read.aspect, [c for _, c in read.texts])

        faces = [face(app, read) for app, read in zip(apps, reads)]
        others = dict(zip(order, faces[len(det):]))
        # pills whose read settles on one line are ranked first without their line pairs (``ImprintReader.one_line``)
        settled = {i: text for i in range(len(det)) if (text := reader.one_line(reads[i], index.raw_faces))}
        quick = {i: face(apps[i], reads[i], lines=False) for i in settled}

        def rank(i: int, prior: ListPrior | None, size: tuple[float, float] | None = None,
                 full: frozenset[int] = frozenset()) -> Identification:
            f = quick[i] if i in quick and i not in full else faces[i]
            return index.rank(f.app, f.reads, f.ctc, aspect=reads[i].aspect, size=size, other=others.get(i),
                              confidence=f.confidence, prior=prior)

        def rank_photo(prior: ListPrior | None, full: frozenset[int], first: list[Identification] | None = None,
                       redo: frozenset[int] = frozenset()) -> tuple[list[Identification], list[Identification]]:
            """Each pill's ranking on its own (the pills of ``full`` on every band; given ``first``, only the pills of
            ``redo`` are ranked again), then again with the size the photo's other pills imply."""
            first = [rank(i, prior, full=full) if first is None or i in redo else first[i] for i in range(len(det))]
            out = list(first)
            for i in range(len(det)):
                scale = photo_scale(first, lengths, index, skip=i)
                if scale and lengths[i]:
                    out[i] = rank(i, prior, (lengths[i], scale), full)
            return first, out

        results = []
        for prior in priors:
            # a settling read that is a part of one of the person's products' faces may be one line of it ('100' of
            # 'F' over '100'): such a pill is ranked on every band from the start
            full = frozenset(i for i, text in settled.items()
                             if prior is not None and index.part_of([normalize_imprint(text)], prior.mine).any())
            first, out = rank_photo(prior, full)
            # sure only on every band: a pill named surely without its line pairs is ranked again with them; the
            # size pass runs again for all, since each pill's size evidence comes from the others' answers
            again = frozenset(i for i in quick if out[i].status == "sure") - full
            results.append(rank_photo(prior, full | again, first, again)[1] if again else out)
        return results

    def _measured(self, apps: list[Appearance | None], pixels: list[np.ndarray],
                  hulls: list[np.ndarray | None] | None) -> list[Appearance | None]:
        """The appearance with the colours and shape measured on the segmented pill (``inference/measure.py``);
        ``hulls``: the reader's segmentation of ``pixels`` (None: no reader ran, segment here)."""
        model = models.measure(self.models_dir / "measure.onnx")
        if model is None or any(app is None for app in apps):
            return apps
        if hulls is None:
            hulls = [pill_outline(p) for p in pixels]
        measured = model([measure.features(p, h) for p, h in zip(pixels, hulls)])
        return [measure.merge(app, colour, shape) for app, (colour, shape) in zip(apps, measured)]

    def analyze(self, photo: bytes | str | Path | np.ndarray | images.Decoded, my_meds: list[str] | None = None,
                profile: Profile | None = None, *, conf: float = 0.35, iou: float = 0.5,
                confirmed: dict[int, str] | None = None,
                other_sides: dict[int, bytes | str | Path | np.ndarray | images.Decoded] | None = None,
                history: list[str] | None = None) -> Report:
        """Boxes and sizes in the report are in full-resolution pixels of the upright photo, however it was decoded.
        ``other_sides``: pill number (1-based, as shown) -> a photo of that pill turned over. ``my_meds``: the
        person's medicines (ITEM_SEQ or package barcodes), checked with the pills and a prior for naming them;
        ``history``: products the person confirmed before, a prior only."""
        t = {"start": time.perf_counter()}
        meds = resolve_codes(self.catalog.cursor(), my_meds or [])
        mine = meds + [str(h) for h in history or () if h]
        photo = _decoded(photo)
        rgb = photo.rgb
        t["decode"] = time.perf_counter()
        detector = models.detector(self.models_dir / "detector.onnx")
        det = detector(rgb, conf=conf, iou=iou)
        det = det[reading_order(det.xyxy)]  # the numbers on the photo
        sides = {}
        for number, side_photo in (other_sides or {}).items():
            if not 1 <= number <= len(det):
                raise images.InputError("no_such_pill", number=number, found=len(det))
            side = _decoded(side_photo).rgb
            found = detector(side, conf=conf, iou=iou)
            # the most confident pill; a close-up the detector does not recognise is read whole
            box = (found.xyxy[int(np.argmax(found.confidence))] if len(found)
                   else np.array([0.0, 0.0, side.shape[1], side.shape[0]]))
            sides[number - 1] = (side, box)
        t["detect"] = time.perf_counter()
        if len(det) and photo.scale > 1 and (det.xyxy[:, 2:] - det.xyxy[:, :2]).min() < SMALL_PILL_PX:
            # small pills: their imprints are read from the full-size photo (the detector never needs it)
            sharp = photo.full().rgb
            idents = self.identify(sharp, det.scaled(sharp.shape[1] / rgb.shape[1]), sides, mine)
        else:
            idents = self.identify(rgb, det, sides, mine)
        t["identify"] = time.perf_counter()
        confirmed = confirmed or {}
        in_photo = det.scaled(photo.scale)  # full-size pixels
        pills = [Pill(i + 1, [float(v) for v in box], float(c), ident, confirmed.get(i + 1))
                 for i, (box, c, ident) in enumerate(zip(in_photo.xyxy, in_photo.confidence, idents))]
        items = [p.item_seq for p in pills if p.item_seq] + meds
        result = check(self.catalog.dur, items, profile)
        possible = possible_warnings(self.catalog.dur, items, unidentified([p.to_dict() for p in pills]), profile)
        best = [p.identification.best.item_seq for p in pills if p.identification.best]
        products = self.catalog.status.of(items + best)
        t["check"] = time.perf_counter()
        steps = ["decode", "detect", "identify", "check"]
        prev = t["start"]
        timings = {}
        for s in steps:
            timings[s] = round((t[s] - prev) * 1000, 1)
            prev = t[s]
        return Report(*photo.size, pills, result, meds, self.catalog.data, timings, possible, products,
                      advise(rgb, det))

    def products_for_barcode(self, code: str) -> list[dict]:
        """The product(s) a package barcode (표준코드) names; ``BarcodeError`` when the code is not one."""
        return by_barcode(self.catalog.cursor(), code)

    def scan_box(self, photo: bytes | str | Path | np.ndarray | images.Decoded) -> list[dict]:
        """The products whose package barcodes a photo of a box shows (EAN-13, GS1 DataMatrix), each with what its
        pill looks like, so the person can hold it against the pill; a code the catalog cannot name comes back with
        ``item_seq`` None; [] when no code can be read."""
        rgb = _decoded(photo).full().rgb  # bars need every pixel
        con = self.catalog.cursor()
        found = []
        for code in read_codes(rgb):
            found += by_barcode(con, code) or [{"item_seq": None, "name": None, "company": None, "barcode": code,
                                                "source": None}]
        looks = describe(con, [f["item_seq"] for f in found])
        return [{**f, **looks.get(f["item_seq"] or "", {})} for f in found]


def unidentified(pills: list[dict]) -> dict[int, list[tuple[str, float]]]:
    """The candidates (ITEM_SEQ, probability) of each reported pill not in the check, by pill number."""
    return {p["index"]: [(c["item_seq"], c["score"]) for c in p["candidates"]] for p in pills if not p["item_seq"]}


def _decoded(photo: bytes | str | Path | np.ndarray | images.Decoded) -> images.Decoded:
    """Any accepted form of a photo, upright and decoded at the working size (an array is taken as is)."""
    if isinstance(photo, np.ndarray):
        return images.Decoded(photo, (photo.shape[1], photo.shape[0]))
    if isinstance(photo, images.Decoded):
        return photo
    return images.decode(photo, min_side=images.WORKING_SIDE)


IMPRINT_MARGIN = 0.08  # around the detector box, each side, as a share of its width / height


def imprint_crop(rgb: np.ndarray, box: np.ndarray, margin: float = IMPRINT_MARGIN, max_side: int = 320
                 ) -> tuple[np.ndarray, float]:
    """The pill with a small margin around the detector box, at full resolution up to ``max_side`` pixels
    (the recognizer reads 48-px-high lines; a 600-px pill from a 12 MP photo only costs time), and the
    scale of the crop (its pixels per photo pixel)."""
    x1, y1, x2, y2 = box
    mx, my = (x2 - x1) * margin, (y2 - y1) * margin
    h, w = rgb.shape[:2]
    xa, ya, xb, yb = int(max(0, x1 - mx)), int(max(0, y1 - my)), int(min(w, x2 + mx)), int(min(h, y2 + my))
    out = rgb[ya:yb, xa:xb]
    k = max_side / max(out.shape[:2] + (1,))
    if k < 1:
        out = images.scaled(out, k)
    return np.ascontiguousarray(out), min(k, 1.0)


# A pill this small (short side of its box, px) in a photo decoded below full size is read at full size: at half
# size, pills of 45-130 px lost 5 points of top-1 and one became wrong-but-sure on the evaluation set.
SMALL_PILL_PX = 96
ANCHOR_P = 0.5  # a pill named at least this surely helps measure the photo's scale for the others


def reading_order(boxes: np.ndarray) -> np.ndarray:
    """Indices of ``boxes`` as a person reads them: rows top to bottom, each row left to right (not the
    detector's order of confidence, which scatters #1..#22 over the photo). Centres sorted top to bottom start
    a new row where the next one lies more than half a typical pill's height lower."""
    if not len(boxes):
        return np.zeros(0, np.int64)
    cx, cy = (boxes[:, 0] + boxes[:, 2]) / 2, (boxes[:, 1] + boxes[:, 3]) / 2
    tol = 0.5 * float(np.median(boxes[:, 3] - boxes[:, 1]))
    rows: list[list[int]] = []
    for i in np.argsort(cy, kind="stable"):
        if rows and cy[i] - cy[rows[-1][-1]] <= tol:
            rows[-1].append(int(i))
        else:
            rows.append([int(i)])
    return np.array([i for row in rows for i in sorted(row, key=lambda j: cx[j])], np.int64)


def photo_scale(idents: list[Identification], lengths: list[float | None], index, skip: int) -> float | None:
    """Pixels per mm of the photo from the other pills' best candidates (weighted median of length_px / mm),
    None without any. The pill being ranked never measures its own scale."""
    pairs = []
    for j, (ident, length) in enumerate(zip(idents, lengths)):
        best = ident.best
        if j == skip or not length or best is None or best.score < ANCHOR_P:
            continue
        mm = index.length_of(best.item_seq)
        if mm:
            pairs.append((length / mm, best.score))
    if not pairs:
        return None
    pairs.sort()
    weights = np.cumsum([w for _, w in pairs])
    return float(pairs[int(np.searchsorted(weights, weights[-1] / 2))][0])


_default: Pipeline | None = None
_default_lock = threading.Lock()


def default() -> Pipeline:
    global _default
    with _default_lock:
        if _default is None:
            _default = Pipeline()
        return _default


def analyze(photo, my_meds: list[str] | None = None, profile: Profile | None = None, **kw) -> Report:
    """``Pipeline.analyze`` on the process-wide pipeline (catalog from $PILLCHECK_DB, models from models/)."""
    return default().analyze(photo, my_meds, profile, **kw)


def products_for_barcode(code: str) -> list[dict]:
    """``Pipeline.products_for_barcode`` on the process-wide pipeline: 표준코드 (EAN-13 / GS1) -> product(s)."""
    return default().products_for_barcode(code)


def scan_box(photo) -> list[dict]:
    """``Pipeline.scan_box`` on the process-wide pipeline: a photo of a medicine box -> its product(s)."""
    return default().scan_box(photo)
