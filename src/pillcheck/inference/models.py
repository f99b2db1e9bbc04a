"""The process's models: each loads once, lazily, behind a lock, from the models folder (or a given path).

The detector is required. The appearance model and the imprint reader add evidence: when one of their files is
absent the pipeline still runs on the other (and says less often "sure"); a file that exists but is damaged
is an error.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from pillcheck import config
from pillcheck.inference.appearance import AppearanceModel
from pillcheck.inference.detector import Detector

log = logging.getLogger(__name__)
T = TypeVar("T")
_cache: dict[tuple, object] = {}
_lock = threading.Lock()


def _load(key: tuple, factory: Callable[[], T]) -> T:
    if key not in _cache:
        with _lock:
            if key not in _cache:
                _cache[key] = factory()
    return _cache[key]  # type: ignore[return-value]


def detector(path: Path | None = None, imgsz: int = 416) -> Detector:
    p = Path(path or config.MODELS_DIR / "detector.onnx").resolve()
    return _load(("detector", p, imgsz), lambda: Detector(p, imgsz=imgsz))


def _optional(kind: str, path: Path, factory: Callable[[Path], T]) -> T | None:
    p = Path(path).resolve()
    if not p.is_file():
        if ("missing", p) not in _cache:
            log.warning("%s model not found at %s: identification runs without it", kind, p)
            _cache[("missing", p)] = True
        return None
    return _load((kind, p), lambda: factory(p))


def appearance(path: Path | None = None) -> AppearanceModel | None:
    return _optional("appearance", Path(path or config.MODELS_DIR / "appearance.onnx"), AppearanceModel)


def imprint(path: Path | None = None):
    def load(p: Path):
        from pillcheck.inference.imprint import ImprintReader  # numpy CTC code: imported only when used

        return ImprintReader(p)

    return _optional("imprint", Path(path or config.MODELS_DIR / "imprint_rec.onnx"), load)
