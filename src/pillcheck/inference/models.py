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


IMPRINT_MODELS = ("imprint_crnn.onnx", "imprint_rec.onnx")  # ours (pill imprints), PP-OCRv6 (general text)


def imprint(models_dir: Path | None = None):
    """The imprint reader over whichever of ``IMPRINT_MODELS`` the folder holds (None without any)."""
    folder = Path(models_dir or config.MODELS_DIR).resolve()
    paths = [folder / name for name in IMPRINT_MODELS if (folder / name).is_file()]
    if not paths:
        if ("missing", folder) not in _cache:
            log.warning("no imprint model in %s: identification runs without reading imprints", folder)
            _cache[("missing", folder)] = True
        return None

    def load():
        from pillcheck.inference.imprint import ImprintReader  # numpy CTC code: imported only when used

        return ImprintReader(paths)

    return _load(("imprint", *paths), load)
