"""The box check: is a box the detector drew a whole pill, or a logo, a letter, a ruler's digit, a part of a pill?

The detector scores what it sees inside a box; the MFDS logo beside its caption, the digits of a ruler, the
letters on a big tablet or a carton look like small round pills from inside. A small CNN (models/box_check.onnx)
sees each box at two contexts around it (CONTEXTS times its long side, grey outside the photo), with its size in the
photo and the detector's score, and gives the probability that it is one whole pill. A box is dropped when it scores
under KEEP_SURE and that probability is under CHECK_MIN (MODEL_CARD, "box_check.onnx").
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from pillcheck.inference.appearance import crop
from pillcheck.inference.detector import Detections
from pillcheck.inference.session import ModelError, create_session

SIDE = 64
CONTEXTS = (1.6, 4.0)  # the crop's side over the box's long side: the box with its rim, and its surroundings
FILL = 114  # what lies outside the photo (the detector's letterbox grey)
CHECK_MIN = 0.05
KEEP_SURE = 0.8  # boxes the detector is this sure of are never dropped (a missed pill is silent)
N_FEATURES = 3


def inputs(image: np.ndarray, xyxy: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The model's inputs for boxes of ``image``: crops (n, 3 * len(CONTEXTS), SIDE, SIDE) uint8, one RGB triple
    per context, and features (n, N_FEATURES): log width and height over the photo's short side, the score."""
    crops = [np.concatenate([crop(image, b, SIDE, (c - 1) / 2, FILL) for c in CONTEXTS], 2) for b in xyxy]
    tensor = np.stack(crops).transpose(0, 3, 1, 2) if crops else np.zeros((0, 3 * len(CONTEXTS), SIDE, SIDE))
    short = min(image.shape[:2])
    wh = np.maximum(xyxy[:, 2:4] - xyxy[:, 0:2], 1.0) / short
    return np.ascontiguousarray(tensor, np.uint8), np.column_stack([np.log(wh), scores]).astype(np.float32)


class BoxCheck:
    """``box_check.onnx``: (crops as float 0-255, features) -> one logit per box."""

    def __init__(self, path: Path, threads: int | None = None) -> None:
        self.session = create_session(Path(path), threads=threads)
        got = self.session.get_inputs()
        if len(got) != 2 or got[0].shape[1:] != [3 * len(CONTEXTS), SIDE, SIDE] or got[1].shape[-1] != N_FEATURES:
            raise ModelError(f"{Path(path).name}: expected crops [n, {3 * len(CONTEXTS)}, {SIDE}, {SIDE}] and "
                             f"features [n, {N_FEATURES}], got {[i.shape for i in got]}")
        self.names = (got[0].name, got[1].name)

    def probabilities(self, image: np.ndarray, det: Detections, batch: int = 64) -> np.ndarray:
        """The probability that each box is one whole pill."""
        crops, feats = inputs(image, det.xyxy, det.confidence)
        logits = [self.session.run(None, {self.names[0]: crops[i:i + batch].astype(np.float32),
                                          self.names[1]: feats[i:i + batch]})[0] for i in range(0, len(det), batch)]
        return 1 / (1 + np.exp(-np.concatenate(logits))) if logits else np.zeros(0, np.float32)

    def __call__(self, image: np.ndarray, det: Detections) -> Detections:
        """``det`` without the boxes under KEEP_SURE that are not pills (order kept)."""
        doubt = np.flatnonzero(det.confidence < KEEP_SURE)
        if not len(doubt):
            return det
        keep = np.ones(len(det), bool)
        keep[doubt] = self.probabilities(image, det[doubt]) >= CHECK_MIN
        return det[keep]
