"""Detection metrics in numpy (no torch at evaluation time): precision/recall at an operating point, AP, mAP; and
what an identification's reads were worth against the truth."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from pillcheck.catalog.normalize import normalize_imprint
from pillcheck.inference.detector import areas, intersections

IOU_THRESHOLDS = np.round(np.arange(0.5, 0.96, 0.05), 2)


def iou_matrix(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    if len(a) == 0 or len(b) == 0:
        return np.zeros((len(a), len(b)), np.float32)
    inter = intersections(a, b)
    return inter / (areas(a)[:, None] + areas(b)[None, :] - inter + 1e-9)


def match(pred: np.ndarray, scores: np.ndarray, gt: np.ndarray, thr: float) -> np.ndarray:
    """Greedy by score: True for each prediction that claims a still-free ground truth at IoU >= thr."""
    tp = np.zeros(len(pred), bool)
    if len(pred) == 0 or len(gt) == 0:
        return tp
    ious = iou_matrix(pred, gt)
    free = np.ones(len(gt), bool)
    for i in np.argsort(-scores):
        cand = np.where(free & (ious[i] >= thr))[0]
        if cand.size:
            j = cand[np.argmax(ious[i, cand])]
            free[j] = False
            tp[i] = True
    return tp


def average_precision(tp: np.ndarray, scores: np.ndarray, n_gt: int) -> float:
    """COCO-style 101-point interpolated AP."""
    if n_gt == 0:
        return float("nan")
    order = np.argsort(-scores)
    tp = tp[order]
    ctp, cfp = np.cumsum(tp), np.cumsum(~tp)
    recall = ctp / n_gt
    precision = ctp / np.maximum(ctp + cfp, 1)
    precision = np.maximum.accumulate(precision[::-1])[::-1] if len(precision) else precision
    ap = 0.0
    for r in np.linspace(0, 1, 101):
        idx = np.searchsorted(recall, r, side="left")
        ap += precision[idx] if idx < len(precision) else 0.0
    return ap / 101


def evaluate(preds: list[tuple[np.ndarray, np.ndarray]], gts: list[np.ndarray], conf: float = 0.25) -> dict:
    """preds: per image (boxes xyxy, scores) at a low threshold; gts: per image boxes. Single class."""
    n_gt = int(sum(len(g) for g in gts))
    scores = np.concatenate([s for _, s in preds]) if preds else np.zeros(0)
    out: dict = {"images": len(gts), "boxes": n_gt}
    aps = []
    for thr in IOU_THRESHOLDS:
        tp = np.concatenate([match(b, s, g, thr) for (b, s), g in zip(preds, gts)]) if preds else np.zeros(0, bool)
        aps.append(average_precision(tp, scores, n_gt))
        if thr == 0.5:
            tp50 = tp
    out["mAP50"] = round(float(aps[0]), 4)
    out["mAP50-95"] = round(float(np.nanmean(aps)), 4)
    sel = scores >= conf
    tp_at = int(tp50[sel].sum())
    out["conf"] = conf
    out["precision"] = round(tp_at / max(int(sel.sum()), 1), 4)
    out["recall"] = round(tp_at / max(n_gt, 1), 4)
    out["false_boxes"] = int(sel.sum()) - tp_at
    # photos where every pill is found and nothing else (an official photo: its two faces, no ruler or logo box)
    exact, start = 0, 0
    for (_, s), g in zip(preds, gts):
        here, ok = tp50[start: start + len(s)], s >= conf
        exact += int(here[ok].all() and int(here[ok].sum()) == len(g))
        start += len(s)
    out["photos_exact"] = round(exact / max(len(gts), 1), 4)
    # the best recall reachable while precision stays >= 97 %, and the threshold that gives it
    order = np.argsort(-scores)
    ctp = np.cumsum(tp50[order])
    prec = ctp / np.arange(1, len(order) + 1)
    ok = np.where(prec >= 0.97)[0]
    if ok.size:
        k = ok[np.argmax(ctp[ok])]
        out["recall_at_p97"] = round(float(ctp[k] / max(n_gt, 1)), 4)
        out["conf_at_p97"] = round(float(scores[order][k]), 4)
    else:
        out["recall_at_p97"], out["conf_at_p97"] = 0.0, None
    return out


def evaluate_detector(det, pairs: list[tuple[Path, Path]], iou: float = 0.5, conf: float = 0.25) -> dict:
    """``evaluate`` of a served ``Detector`` on (image, YOLO label) pairs, each photo decoded as the app decodes it
    and boxes compared in its full-size pixels."""
    from pillcheck import images
    from pillcheck.training.scenes import read_yolo

    preds, gts = [], []
    for img_path, lbl in pairs:
        photo = images.decode(img_path, min_side=images.WORKING_SIDE)
        d = det(photo.rgb, conf=0.001, iou=iou).scaled(photo.scale)
        preds.append((d.xyxy, d.confidence))
        gts.append(read_yolo(lbl, *photo.size))
    return evaluate(preds, gts, conf=conf)


def read_kind(imprint_read: str, truth: set[str], leader: set[str]) -> tuple[str, bool]:
    """How a pill's reads (``Identification.imprint_read``) stand to its product's catalog faces ``truth`` (each
    face normalised, and both as one string): ``read:nothing``, ``read:exact`` (a read is one of them) or
    ``read:other``; and whether the leading product (faces ``leader``) carries an exact read too, so that the read
    could not tell them apart. Where identification loses differs by kind: nothing read (mostly a blank face shown)
    leaves colour and shape alone among thousands; an exact read of a code other products share leaves them to
    settle it."""
    reads = {normalize_imprint(t) for t in re.split(r"\||//", imprint_read)} - {""}
    if not reads:
        return "read:nothing", False
    exact = reads & truth
    return ("read:exact" if exact else "read:other"), bool(exact & leader)


def product_faces(index) -> dict[str, set[str]]:
    """Each product's catalog faces (``CandidateIndex``), normalised, and both faces as one string: the ``truth`` and
    ``leader`` of ``read_kind``."""
    faces: dict[str, set[str]] = {}
    for seq, front, back in zip(index.item_seq, index.front, index.back):
        faces.setdefault(str(seq), set()).update({front, back, front + back} - {""})
    return faces


def sure_answer(truth: str, leader: str | None, group: list[str], status: str) -> str:
    """What a pill's answer was worth: ``not_sure``; ``right`` (sure, and the product named first is the pill's);
    ``right_in_group`` (sure as a group of interchangeable products that holds the pill's, shown after another);
    ``wrong`` (sure, and the pill's product is neither the one named nor in its group: the answer that must not
    happen)."""
    if status != "sure":
        return "not_sure"
    if truth == leader:
        return "right"
    return "right_in_group" if truth in group else "wrong"
