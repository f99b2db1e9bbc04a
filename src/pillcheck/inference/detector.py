"""Pill detector: letterbox -> onnxruntime -> decode -> NMS -> boxes in original pixels. numpy/cv2 only."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import FunctionType

import cv2
import numpy as np

from pillcheck.inference.session import ModelError, create_session

STRIDE = 32
ZOOM_SIDE = 200  # long side of the photo in the zoomed-out pass (0: off): close-ups and big tablets (MODEL_CARD)
ZOOM_CANVAS = 320  # ... in a grey square of this side: ~1/3 of the first pass's pixels at 544
ZOOM_MIN_SIDE = 0.2  # its boxes count when their short side is at least this share of the photo's short side
ZOOM_SURE = 0.25  # boxes below this score take no part in the merge
CONTAINED = 0.8  # a first-pass box this much inside a zoomed-out one is a part of that pill, if less sure
# ... or even if surer, when the zoomed-out box is at least WHOLE_SURE and holds at most WHOLE_PARTS such boxes, each
# under PART_SHARE of its area: letters, a logo or a score line of one big pill (more, or bigger: pills in a heap or
# a palm stand). Measured on the held-back sets (MODEL_CARD, eleventh session): large tablets, official photos and
# synthetic close-ups gain, real photos, real close-ups, heaps and printed matter are unchanged
WHOLE_SURE, PART_SHARE, WHOLE_PARTS = 0.5, 0.25, 2
# A heap: many small, alike, sure boxes. The model sees the photo again in 2x2 overlapping tiles (TILE_OVERLAP of the
# short side), pills hidden among the others at ~1.7x the resolution. It runs only when at least TILE_MIN boxes score
# TILE_SURE, their median short side is under TILE_SMALL of the photo's, their sizes vary by at most TILE_SPREAD
# (std / mean: letters on a page vary more) and their median score is TILE_CONFIDENT; a tile box counts when its short
# side is within TILE_BAND of that median and scores no higher than that median score (it never outranks the pills
# the photo showed). Measured on the held-back sets (MODEL_CARD, sixteenth session): heaps gain, the others unchanged
TILE_MIN, TILE_SURE, TILE_SMALL, TILE_SPREAD, TILE_CONFIDENT = 10, 0.35, 0.08, 0.3, 0.6
TILE_OVERLAP, TILE_BAND = 0.12, 1.3
# A photo of big pills (a close-up, large tablets, an official photo on its ruler grid) goes to the close-up model when
# one is served (``Detector.close``, models/detector_close.onnx): its zoomed-out pass shows a pill of at least
# ZOOM_MIN_SIDE of the photo at CLOSE_SURE or above (so any threshold up to CLOSE_SURE routes the same). That model was
# trained on more big pills, printed matter and official photos and boxes their letters and rulers far less, but it
# misses more small pills in ordinary photos and scenes, which stay with this one (MODEL_CARD, twenty-fourth session)
CLOSE_SURE = 0.5
# ... and this model's sure big pills that the close-up model left out (none of its boxes scoring JOIN_SURE, the served
# threshold, overlaps them by LEFT_OUT of either box) join its answer: a missed pill is silent, a false box is shown
# for the person to dismiss (large tablets: 5 more pills of 342 found, 2 more false boxes; MODEL_CARD)
LEFT_OUT, JOIN_SURE = 0.3, 0.35
DEFAULT_IMGSZ = 416
IMGSZ_KEY = "pillcheck_imgsz"  # ONNX metadata: the input size the model was chosen to be served at (MODEL_CARD)
PAD_KEY = "pillcheck_pad"  # ONNX metadata: "square" for a model served on square letterboxes, as it was trained


@dataclass
class Detections:
    """Boxes for one image, in original-image pixels (xyxy), with confidence and class id; validated."""

    xyxy: np.ndarray = field(default_factory=lambda: np.zeros((0, 4), np.float32))
    confidence: np.ndarray = field(default_factory=lambda: np.zeros((0,), np.float32))
    class_id: np.ndarray = field(default_factory=lambda: np.zeros((0,), np.int32))

    def __post_init__(self) -> None:
        self.xyxy = np.asarray(self.xyxy, np.float32).reshape(-1, 4)
        self.confidence = np.asarray(self.confidence, np.float32).reshape(-1)
        self.class_id = np.asarray(self.class_id, np.int32).reshape(-1)
        n = len(self.xyxy)
        if len(self.confidence) != n or len(self.class_id) != n:
            raise ValueError(f"Detections: {n} boxes but {len(self.confidence)} scores, {len(self.class_id)} ids")
        if n and (np.any(self.xyxy[:, 2] < self.xyxy[:, 0]) or np.any(self.xyxy[:, 3] < self.xyxy[:, 1])):
            raise ValueError("Detections: boxes must be x1<=x2, y1<=y2")

    def __len__(self) -> int:
        return len(self.xyxy)

    def __getitem__(self, idx) -> Detections:
        return Detections(self.xyxy[idx], self.confidence[idx], self.class_id[idx])

    def scaled(self, k: float) -> Detections:
        """The same boxes in an image ``k`` times larger (a photo decoded below full size -> full pixels)."""
        return Detections(self.xyxy * k, self.confidence, self.class_id)


def letterbox(image: np.ndarray, size: int, square: bool = False, canvas: int | None = None
              ) -> tuple[np.ndarray, float, tuple[int, int]]:
    """Resize the long side to ``size`` and pad the short side to a multiple of 32, or to ``size`` (``square``:
    models trained on square mosaics lean on the grey bars, see MODEL_CARD), or both sides to ``canvas`` (the
    photo small in the middle of a larger grey square: the zoomed-out pass).

    Returns the NCHW float32 tensor, the scale, and the (left, top) padding, to map boxes back.
    """
    h, w = image.shape[:2]
    scale = size / max(h, w)
    nw, nh = max(1, round(w * scale)), max(1, round(h * scale))
    if scale < 0.5:  # a 12 MP photo: a cheap linear step to twice the size, then area averaging (no aliasing)
        image = cv2.resize(image, (2 * nw, 2 * nh), interpolation=cv2.INTER_LINEAR)
    resized = cv2.resize(image, (nw, nh), interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR)
    if canvas:
        pw, ph = canvas - nw, canvas - nh
    else:
        pw, ph = (size - nw, size - nh) if square else ((-nw) % STRIDE, (-nh) % STRIDE)
    left, top = pw // 2, ph // 2
    padded = cv2.copyMakeBorder(resized, top, ph - top, left, pw - left, cv2.BORDER_CONSTANT, value=(114, 114, 114))
    tensor = np.ascontiguousarray(padded.transpose(2, 0, 1)[None], dtype=np.float32) / 255.0
    return tensor, scale, (left, top)


def intersections(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Intersection areas of xyxy boxes, ``a`` in rows and ``b`` in columns: NMS, the zoom merge and IoU share it."""
    w = np.minimum(a[:, None, 2], b[None, :, 2]) - np.maximum(a[:, None, 0], b[None, :, 0])
    h = np.minimum(a[:, None, 3], b[None, :, 3]) - np.maximum(a[:, None, 1], b[None, :, 1])
    return np.clip(w, 0, None) * np.clip(h, 0, None)


def areas(boxes: np.ndarray) -> np.ndarray:
    return (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])


def nms(boxes: np.ndarray, scores: np.ndarray, iou: float) -> np.ndarray:
    """Greedy NMS (numpy): indices kept, best first."""
    order = np.argsort(-scores)
    keep = []
    area = areas(boxes)
    while order.size:
        i = order[0]
        keep.append(i)
        rest = order[1:]
        inter = intersections(boxes[i:i + 1], boxes[rest])[0]
        order = rest[inter / (area[i] + area[rest] - inter + 1e-9) <= iou]
    return np.array(keep, np.int64)


class Detector:
    """YOLO-family ONNX detector with raw head output [1, 4 + classes, anchors] (cx, cy, w, h, scores...)."""

    def __init__(self, path: Path, imgsz: int | None = None, square: bool | None = None,
                 threads: int | None = None, zoom_side: int | None = None, zoom_canvas: int = ZOOM_CANVAS,
                 tiles: bool = True, close: Detector | Callable[[], Detector] | None = None,
                 heap: Detector | Callable[[], Detector] | None = None,
                 check: Callable[[np.ndarray, Detections], Detections] | None = None) -> None:
        """``imgsz`` (long side of the input) and ``square`` (pad to a square) default to what the model stores,
        else DEFAULT_IMGSZ and stride padding; ``zoom_side`` (default ZOOM_SIDE) 0 turns the zoomed-out pass off,
        ``tiles`` False the heap's tile pass; ``close``: the detector that photos of big pills go to (CLOSE_SURE),
        ``heap``: the one that reads a heap's tiles (else this one); ``check``: the box check the answer passes
        through last (``box_check.BoxCheck``). Each may be given as a function that loads it on the first photo that
        needs it."""
        self.path = Path(path)
        self.zoom_side, self.zoom_canvas = ZOOM_SIDE if zoom_side is None else zoom_side, zoom_canvas
        self.tiles, self._helpers = tiles, {"close": close, "heap": heap, "check": check}
        self.session = create_session(self.path, threads=threads)
        meta = self.session.get_modelmeta().custom_metadata_map
        stored = meta.get(IMGSZ_KEY, "")
        self.imgsz = imgsz or (int(stored) if stored.isdigit() else DEFAULT_IMGSZ)
        self.square = meta.get(PAD_KEY) == "square" if square is None else square
        inp = self.session.get_inputs()[0]
        if len(inp.shape) != 4:
            raise ModelError(f"{self.path.name}: expected an image input [b,3,h,w], got {inp.shape}")
        self.input_name = inp.name
        fixed = [d for d in inp.shape[2:] if isinstance(d, int)]
        if len(fixed) == 2 and fixed[0] == fixed[1]:  # a fixed-size export needs exactly its square
            self.imgsz, self.square = fixed[0], True

    def _helper(self, name: str):
        """A helper model (loaded now if it was given as a function that loads it)."""
        got = self._helpers[name]
        if isinstance(got, FunctionType):
            got = self._helpers[name] = got()
        return got

    @property
    def close(self) -> Detector | None:
        """The close-up model."""
        return self._helper("close")

    @property
    def heap(self) -> Detector | None:
        """The model for a heap's tiles."""
        return self._helper("heap")

    @property
    def check(self) -> Callable[[np.ndarray, Detections], Detections] | None:
        """The box check."""
        return self._helper("check")

    @property
    def providers(self) -> list[str]:
        return self.session.get_providers()

    def __call__(self, image: np.ndarray, conf: float = 0.35, iou: float = 0.5, max_det: int = 300) -> Detections:
        det, check = self._detect(image, conf, iou, max_det), self.check
        return check(image, det) if check is not None and len(det) else det

    def _detect(self, image: np.ndarray, conf: float, iou: float, max_det: int) -> Detections:
        """The boxes before the box check: the passes, the close-up and heap models, merged."""
        h, w = image.shape[:2]
        if self.zoom_side:
            # the photo shrunk into a grey square: a close-up's pill at the sizes the model knows. Only its large
            # boxes count (small pills are the first pass's)
            b2, s2, c2 = self._pass(image, self.zoom_side, conf, square=False, canvas=self.zoom_canvas)
            big = (_short(b2) >= ZOOM_MIN_SIDE * min(w, h)) & (s2 >= ZOOM_SURE)
            b2, s2, c2 = b2[big], s2[big], c2[big]
            # big pills: the close-up model's photo (the check on the loader, so a photo of small pills never loads it)
            if self._helpers["close"] is not None and (sure := s2 >= CLOSE_SURE).any():
                return _joined(self.close(image, conf, iou, max_det), _clipped(b2[sure], w, h), s2[sure], c2[sure],
                               max_det)
        boxes, scores, cls = self._pass(image, self.imgsz, conf, self.square)
        if self.zoom_side and len(b2):
            # (first pass, zoomed out); boxes under ZOOM_SURE take no part, so any threshold above it sees the
            # same merge (evaluations run at 0.001)
            inside = (_contained(boxes, b2) >= CONTAINED) & (scores >= ZOOM_SURE)[:, None]
            best_inside = np.where(inside, scores[:, None], 0).max(0) if len(boxes) else np.zeros(len(b2))
            # a zoomed-out box surer than every first-pass box inside it is one big pill (a letter or logo was
            # boxed); one less sure is a clump of pills seen from afar (a heap, a palm): the pills stand
            one = s2 > best_inside
            part = inside & (areas(boxes)[:, None] < PART_SHARE * areas(b2)[None, :])
            surer = inside & (scores[:, None] >= s2[None, :])
            one |= (s2 >= WHOLE_SURE) & ~(surer & ~part).any(0) & ((surer & part).sum(0) <= WHOLE_PARTS)
            keep = ~inside[:, one].any(1)
            boxes, scores, cls = (np.concatenate([boxes[keep], b2[one]]), np.concatenate([scores[keep], s2[one]]),
                                  np.concatenate([cls[keep], c2[one]]))
        if not len(boxes):
            return Detections()
        idx = nms(boxes, scores, iou)
        boxes, scores, cls = boxes[idx], scores[idx], cls[idx]
        if self.tiles and (band := heap_band(boxes, scores, min(w, h))) is not None:
            tb, ts, tc = self._tiles(image, conf)
            short = _short(tb)
            keep = (short > band[0] / TILE_BAND) & (short < band[0] * TILE_BAND)
            boxes, scores, cls = (np.concatenate([boxes, tb[keep]]), np.concatenate([scores, np.minimum(ts[keep], band[1])]),
                                  np.concatenate([cls, tc[keep]]))
            idx = nms(boxes, scores, iou)
            boxes, scores, cls = boxes[idx], scores[idx], cls[idx]
        return Detections(_clipped(boxes[:max_det], w, h), scores[:max_det], cls[:max_det])

    def _tiles(self, image: np.ndarray, conf: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The first pass on 2x2 overlapping tiles (by the heap model when there is one), in the photo's pixels; a box
        touching a tile's inner edge is a cut pill (the neighbouring tile holds it whole) and is dropped."""
        model = self.heap or self
        h, w = image.shape[:2]
        th, tw = int(h / 2 + TILE_OVERLAP * min(h, w)), int(w / 2 + TILE_OVERLAP * min(h, w))
        out = []
        for y0 in (0, h - th):
            for x0 in (0, w - tw):
                b, s, c = model._pass(image[y0:y0 + th, x0:x0 + tw], model.imgsz, conf, model.square)
                m = 0.01 * max(th, tw)
                cut = (((b[:, 0] <= m) & (x0 > 0)) | ((b[:, 1] <= m) & (y0 > 0))
                       | ((b[:, 2] >= tw - m) & (x0 + tw < w)) | ((b[:, 3] >= th - m) & (y0 + th < h)))
                out.append((b[~cut] + np.array([x0, y0, x0, y0], np.float32), s[~cut], c[~cut]))
        return tuple(np.concatenate([o[i] for o in out]) for i in range(3))  # type: ignore[return-value]

    def _pass(self, image: np.ndarray, size: int, conf: float, square: bool, canvas: int | None = None
              ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """One run of the model: boxes (in the image's pixels), scores and classes above ``conf``, before NMS.
        The photo's long side becomes ``size``, padded as ``letterbox`` pads (``square``, or a ``canvas`` square)."""
        tensor, scale, (left, top) = letterbox(image, size, square=square, canvas=canvas)
        out = self.session.run(None, {self.input_name: tensor})[0][0]  # (4 + nc, anchors)
        scores_all = out[4:]
        cls = scores_all.argmax(0)
        scores = scores_all[cls, np.arange(scores_all.shape[1])]
        keep = scores >= conf
        cx, cy, bw, bh = out[:4, keep]
        boxes = np.stack([cx - bw / 2, cy - bh / 2, cx + bw / 2, cy + bh / 2], 1).reshape(-1, 4)
        boxes = (boxes - np.array([left, top, left, top], np.float32)) / scale
        return boxes.astype(np.float32), scores[keep], cls[keep]


def _short(boxes: np.ndarray) -> np.ndarray:
    return np.minimum(boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1])


def size_spread(boxes: np.ndarray) -> float:
    """How much the boxes' short sides vary (std / mean): pills of one product are alike, letters on a page are not."""
    short = _short(boxes)
    return float(np.std(short) / max(float(np.mean(short)), 1e-9))


def heap_band(boxes: np.ndarray, scores: np.ndarray, short_side: int) -> tuple[float, float] | None:
    """(median short side, median score) of the sure boxes when they look like a heap of one product (the TILE_
    rule above), else None: the tile pass runs only then."""
    sure = scores >= TILE_SURE
    if sure.sum() < TILE_MIN:
        return None
    short = _short(boxes[sure])
    med, score = float(np.median(short)), float(np.median(scores[sure]))
    if med >= TILE_SMALL * short_side or size_spread(boxes[sure]) > TILE_SPREAD or score < TILE_CONFIDENT:
        return None
    return med, score


def _joined(det: Detections, boxes: np.ndarray, scores: np.ndarray, cls: np.ndarray, max_det: int) -> Detections:
    """``det`` with those of ``boxes`` (NMS at 0.5 among themselves) that no box of it scoring JOIN_SURE overlaps by
    LEFT_OUT of either (so any threshold up to JOIN_SURE sees the same join)."""
    idx = nms(boxes, scores, 0.5)
    boxes, scores, cls = boxes[idx], scores[idx], cls[idx]
    mine = det.xyxy[det.confidence >= JOIN_SURE]
    if len(mine):
        free = ~((_contained(boxes, mine) >= LEFT_OUT) | (_contained(mine, boxes).T >= LEFT_OUT)).any(1)
        boxes, scores, cls = boxes[free], scores[free], cls[free]
    order = np.argsort(-np.concatenate([det.confidence, scores]), kind="stable")[:max_det]
    return Detections(np.concatenate([det.xyxy, boxes])[order], np.concatenate([det.confidence, scores])[order],
                      np.concatenate([det.class_id, cls])[order])


def _clipped(boxes: np.ndarray, w: int, h: int) -> np.ndarray:
    """The boxes cut to the photo (a pass on a padded canvas can box past its edges)."""
    return np.stack([boxes[:, 0].clip(0, w), boxes[:, 1].clip(0, h), boxes[:, 2].clip(0, w), boxes[:, 3].clip(0, h)],
                    1).reshape(-1, 4)


def _contained(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Share of each box of ``a`` (rows) that lies inside each box of ``b`` (columns)."""
    return intersections(a, b) / np.maximum(areas(a)[:, None], 1e-9)
