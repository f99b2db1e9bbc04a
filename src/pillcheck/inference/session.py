"""One onnxruntime session factory for every model: providers by preference, explicit threads, honest logs.

onnxruntime-gpu lists CUDA even on a machine without CUDA libraries and then falls back to the CPU, so the
providers that actually run are read from the session after it is created and logged.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Generic, TypeVar

import onnxruntime as ort

log = logging.getLogger(__name__)

PREFERENCE = ("CUDAExecutionProvider", "OpenVINOExecutionProvider", "CPUExecutionProvider")
_threads: int | None = None  # use_threads: the process's threads per model run (else $PILLCHECK_THREADS, else all)


class ModelError(RuntimeError):
    """A model file that is missing or unusable; the message says which and what to do."""


def providers(requested: list[str] | None = None) -> list[str]:
    """The preferred providers this onnxruntime build offers (PILLCHECK_PROVIDERS=CPU forces the CPU)."""
    available = set(ort.get_available_providers())
    env = os.environ.get("PILLCHECK_PROVIDERS")
    wanted = requested or ([f"{p.strip()}ExecutionProvider" if not p.strip().endswith("Provider") else p.strip()
                            for p in env.split(",")] if env else list(PREFERENCE))
    chosen = [p for p in wanted if p in available]
    return chosen or ["CPUExecutionProvider"]


def env_threads() -> int | None:
    """$PILLCHECK_THREADS, when set."""
    return int(os.environ.get("PILLCHECK_THREADS", 0)) or None


def use_threads(threads: int) -> None:
    """Threads per model run for the models this process loads from now on, and for OpenCV: a server running N
    analyses at once, or a Ray actor given one core, so they do not oversubscribe the cores."""
    import cv2

    global _threads
    _threads = threads
    cv2.setNumThreads(threads)


def create_session(path: Path, *, threads: int | None = None, requested: list[str] | None = None) -> ort.InferenceSession:
    path = Path(path)
    if not path.is_file():
        raise ModelError(f"model file not found: {path} (train it with `pillcheck train ...` or restore models/)")
    opts = ort.SessionOptions()
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    opts.intra_op_num_threads = threads or _threads or env_threads() or (os.cpu_count() or 1)
    opts.inter_op_num_threads = 1
    # Three models take turns with numpy work in between: idle threads spinning for the next run would take
    # the cores from whichever model or numpy step runs next (measured: the imprint reads took ~2x longer).
    opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
    opts.log_severity_level = 3
    chosen = providers(requested)
    try:
        # Without CUDA libraries onnxruntime-gpu logs an error and falls back to the CPU; that is expected here,
        # and what actually runs is logged below. Real failures still raise.
        ort.set_default_logger_severity(4 if "CUDAExecutionProvider" in chosen else 3)
        session = ort.InferenceSession(str(path), sess_options=opts, providers=chosen)
    except Exception as exc:  # onnxruntime raises its own Fail/InvalidProtobuf/... types
        raise ModelError(f"{path.name} is not a usable ONNX model ({exc.__class__.__name__}: "
                         f"{str(exc).splitlines()[0][:200]})") from exc
    finally:
        ort.set_default_logger_severity(2)
    log.info("%s: running on %s (%d threads)", path.name, ", ".join(session.get_providers()),
             opts.intra_op_num_threads)
    return session


T = TypeVar("T")


class Lazy(Generic[T]):
    """A model built once, on first use, behind a lock (many request threads, one load)."""

    def __init__(self, factory: Callable[[], T]) -> None:
        self._factory = factory
        self._value: T | None = None
        self._lock = threading.Lock()

    def get(self) -> T:
        if self._value is None:
            with self._lock:
                if self._value is None:
                    self._value = self._factory()
        return self._value
