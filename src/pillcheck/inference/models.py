"""The process's models: each loads once, lazily, behind a lock, from the models folder (or a given path)."""

from __future__ import annotations

import threading
from pathlib import Path

from pillcheck import config
from pillcheck.inference.detector import Detector

_cache: dict[tuple, object] = {}
_lock = threading.Lock()


def detector(path: Path | None = None, imgsz: int = 416) -> Detector:
    key = ("detector", Path(path or config.MODELS_DIR / "detector.onnx").resolve(), imgsz)
    if key not in _cache:
        with _lock:
            if key not in _cache:
                _cache[key] = Detector(key[1], imgsz=imgsz)
    return _cache[key]  # type: ignore[return-value]
