"""Appearance model: a pill crop -> probabilities for shape, colours, form and score line (one ONNX model).

The crop is taken the same way in training and serving (``crop``): the detector box with a margin, squared,
resized to ``SIZE``. Label vocabularies are the catalog's own words, so probabilities join the catalog directly.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from pillcheck.inference.session import ModelError, create_session

SIZE = 96
SHAPES = ("원형", "타원형", "장방형", "삼각형", "사각형", "마름모형", "오각형", "육각형", "팔각형", "반원형", "기타")
COLOURS = ("하양", "노랑", "주황", "분홍", "빨강", "갈색", "연두", "초록", "청록", "파랑", "남색", "자주", "보라", "회색",
           "검정", "투명")
FORMS = ("tablet", "hard_capsule", "soft_capsule")
OUTPUTS = ("shape", "colour", "form", "line")


def colour_labels(text: str | None) -> list[str]:
    """Catalog colour text ('노랑, 투명', '연분홍', '진한 갈색') -> base colour names, in COLOURS order."""
    return [c for c in COLOURS if text and c in text]


def form_label(form: str | None) -> str:
    f = form or ""
    if "연질캡슐" in f:
        return "soft_capsule"
    return "hard_capsule" if "캡슐" in f else "tablet"  # 경질캡슐제, 서방성캡슐제, 장용성캡슐제 ...


def crop(image: np.ndarray, box: np.ndarray | list[float], size: int = SIZE, margin: float = 0.12,
         fill: int | None = None) -> np.ndarray:
    """Square crop around an xyxy box (plus margin, edge-replicated outside the image, or grey ``fill``: what
    lies outside is shown as outside), resized to size."""
    x1, y1, x2, y2 = [float(v) for v in box]
    cx, cy = (x1 + x2) / 2, (y1 + y2) / 2
    half = max(x2 - x1, y2 - y1, 1.0) * (0.5 + margin)
    h, w = image.shape[:2]
    m = np.float32([[size / (2 * half), 0, size / 2 - cx * size / (2 * half)],
                    [0, size / (2 * half), size / 2 - cy * size / (2 * half)]])
    interp = cv2.INTER_AREA if 2 * half > size else cv2.INTER_LINEAR
    border = cv2.BORDER_REPLICATE if fill is None else cv2.BORDER_CONSTANT
    return cv2.warpAffine(image, m, (size, size), flags=interp, borderMode=border, borderValue=(fill or 0,) * 3)


def to_tensor(crops: list[np.ndarray]) -> np.ndarray:
    return np.ascontiguousarray(np.stack(crops).transpose(0, 3, 1, 2), dtype=np.float32) / 255.0


@dataclass
class Appearance:
    shape: dict[str, float]
    colour: dict[str, float]  # independent probabilities (a capsule has two colours)
    form: dict[str, float]
    line: float

    def to_dict(self) -> dict:
        top = lambda d: dict(sorted(d.items(), key=lambda kv: -kv[1])[:3])  # noqa: E731
        return {"shape": top(self.shape), "colour": top(self.colour), "form": top(self.form), "line": round(self.line, 3)}


def _softmax(x: np.ndarray) -> np.ndarray:
    e = np.exp(x - x.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


class AppearanceModel:
    def __init__(self, path: Path, threads: int | None = None) -> None:
        self.session = create_session(Path(path), threads=threads)
        names = [o.name for o in self.session.get_outputs()]
        if names != list(OUTPUTS):
            raise ModelError(f"{Path(path).name}: expected outputs {OUTPUTS}, got {names}")
        self.input_name = self.session.get_inputs()[0].name

    def __call__(self, crops: list[np.ndarray]) -> list[Appearance]:
        """Batch of RGB crops (from ``crop``) -> one Appearance each."""
        if not crops:
            return []
        shape, colour, form, line = self.session.run(None, {self.input_name: to_tensor(crops)})
        ps, pf = _softmax(shape), _softmax(form)
        pc, pl = 1 / (1 + np.exp(-colour)), 1 / (1 + np.exp(-line.reshape(-1)))
        return [Appearance(dict(zip(SHAPES, map(float, ps[i]))), dict(zip(COLOURS, map(float, pc[i]))),
                           dict(zip(FORMS, map(float, pf[i]))), float(pl[i])) for i in range(len(crops))]
