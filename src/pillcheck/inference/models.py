"""The process's models: each loads once, lazily, behind a lock, from the models folder (or a given path).

The detector is required. The appearance model and the imprint reader add evidence: when one of their files is
absent the pipeline still runs on the other (and says less often "sure"); a file that exists but is damaged
is an error. The detector's helpers beside it (the close-up and heap models, the box check) are used when their
files are there.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from pillcheck import config
from pillcheck.inference.appearance import AppearanceModel
from pillcheck.inference.box_check import BoxCheck
from pillcheck.inference.detector import Detector
from pillcheck.inference.measure import MeasureModel

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


CLOSE_MODEL = "detector_close.onnx"  # beside the detector: the model photos of big pills go to (detector.CLOSE_SURE)
HEAP_MODEL = "detector_heap.onnx"  # beside the detector: the model that reads a heap's tiles (detector.heap_band)
CHECK_MODEL = "box_check.onnx"  # beside the detector: is each box a whole pill (inference/box_check.py)


def detector(path: Path | None = None, imgsz: int | None = None, square: bool | None = None,
             zoom_side: int | None = None, tiles: bool = True, close: bool = True, heap: bool = True,
             check: bool = True) -> Detector:
    """The detector at ``path`` (default: the models folder's), with the close-up and heap models and the box check
    beside it when their files exist and ``close`` / ``heap`` / ``check`` (False: without it, to compare or to
    train the check); each loads on the first photo that needs it (most photos never need the helpers' memory)."""
    p = Path(path or config.MODELS_DIR / "detector.onnx").resolve()

    def beside(name: str, wanted: bool) -> Callable[[], Detector] | None:
        near = p.with_name(name)
        if not (wanted and near.is_file() and near != p):
            return None
        return lambda: _load((name, near, imgsz, square, zoom_side, tiles),
                             lambda: Detector(near, imgsz=imgsz, square=square, zoom_side=zoom_side, tiles=tiles))

    helpers = {"close": beside(CLOSE_MODEL, close), "heap": beside(HEAP_MODEL, heap)}
    near = p.with_name(CHECK_MODEL)
    checker = (lambda: _load((CHECK_MODEL, near), lambda: BoxCheck(near))) if check and near.is_file() else None
    return _load(("detector", p, imgsz, square, zoom_side, tiles, *(h is not None for h in helpers.values()),
                  checker is not None), lambda: Detector(p, imgsz=imgsz, square=square, zoom_side=zoom_side,
                                                          tiles=tiles, check=checker, **helpers))


def _optional(kind: str, candidates: list[Path], factory: Callable[[list[Path]], T]) -> T | None:
    """The model over whichever of ``candidates`` exist (None, with one warning, when none does)."""
    paths = [Path(c).resolve() for c in candidates if Path(c).is_file()]
    if not paths:
        key = ("missing", kind, *candidates)
        if key not in _cache:
            log.warning("%s model not found at %s: identification runs without it", kind,
                        " or ".join(map(str, candidates)))
            _cache[key] = True
        return None
    return _load((kind, *paths), lambda: factory(paths))


def appearance(path: Path | None = None) -> AppearanceModel | None:
    return _optional("appearance", [Path(path or config.MODELS_DIR / "appearance.onnx")],
                     lambda paths: AppearanceModel(paths[0]))


def measure(path: Path | None = None) -> MeasureModel | None:
    """Colours and shape measured on the segmented pill (refines the appearance model), None without its file."""
    return _optional("measure", [Path(path or config.MODELS_DIR / "measure.onnx")], lambda paths: MeasureModel(paths[0]))


IMPRINT_MODELS = ("imprint_crnn.onnx", "imprint_rec.onnx")  # our CRNN (optional), PP-OCRv6 fine-tuned on pills


def imprint(models_dir: Path | None = None):
    """The imprint reader over whichever of ``IMPRINT_MODELS`` the folder holds (None without any)."""
    def load(paths: list[Path]):
        from pillcheck.inference.imprint import ImprintReader  # numpy CTC code: imported only when used

        return ImprintReader(paths)

    folder = Path(models_dir or config.MODELS_DIR)
    return _optional("imprint", [folder / name for name in IMPRINT_MODELS], load)
