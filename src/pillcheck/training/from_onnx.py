"""Turn our exported detector ONNX back into a trainable ultralytics checkpoint.

Training runs (``work/``) do not survive a fresh machine, but ``models/detector.onnx`` is committed: this lets the
next training leg start from the shipped weights instead of from scratch. Export folded every BatchNorm into its
convolution (``w' = w * g / s``, ``b' = beta - g * m / s``); we unfold it so that the layer computes exactly the
same function in eval mode *and* stays close in train mode, where BatchNorm uses the batch's own statistics:
running mean/var are set to the measured mean/var of the convolution's output on real training images, and the
affine part is chosen to undo that normalisation (``gamma = sqrt(var + eps)``, ``beta = mean + b'``).
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import numpy as np

from pillcheck import images
from pillcheck.inference.detector import letterbox


def _calibration_batch(paths: list[Path], imgsz: int):
    """The photos as the detector sees them, padded to one square batch."""
    import torch

    tensors = []
    for p in paths:
        t, _, _ = letterbox(images.load(p), imgsz)
        t = np.pad(t, ((0, 0), (0, 0), (0, imgsz - t.shape[2]), (0, imgsz - t.shape[3])), constant_values=114 / 255)
        tensors.append(t)
    return torch.from_numpy(np.concatenate(tensors))


def checkpoint_from_onnx(onnx_path: Path, out: Path, calibration: list[Path], *, cfg: str = "yolov8n.yaml",
                         imgsz: int = 416) -> Path:
    """Write ``out`` (.pt) whose eval-mode outputs equal ``onnx_path``'s; returns ``out``."""
    import onnx
    import torch
    from onnx import numpy_helper
    from ultralytics import __version__
    from ultralytics.nn.modules.conv import Conv
    from ultralytics.nn.tasks import DetectionModel

    weights = {t.name: torch.from_numpy(numpy_helper.to_array(t).copy()) for t in onnx.load(str(onnx_path)).graph.initializer}
    model = DetectionModel(cfg, nc=1, verbose=False)
    convs = {name: m for name, m in model.named_modules() if isinstance(m, Conv)}
    state = model.state_dict()
    plain = [k for k in state if not any(k.startswith(f"{n}.") for n in convs) and state[k].is_floating_point()]
    shapes = {f"{n}.conv.weight": m.conv.weight.shape for n, m in convs.items()}
    shapes |= {f"{n}.conv.bias": m.bn.bias.shape for n, m in convs.items()} | {k: state[k].shape for k in plain}
    wrong = [k for k, shape in shapes.items() if k not in weights or weights[k].shape != shape]
    if wrong:
        raise ValueError(f"{onnx_path.name}: no weights for {wrong[:3]} (not an export of {cfg} with one class?)")
    with torch.no_grad():
        for name, m in convs.items():  # folded form first: BN as identity + bias
            m.conv.weight.copy_(weights[f"{name}.conv.weight"])
            m.bn.running_mean.zero_()
            m.bn.running_var.fill_(1 - m.bn.eps)
            m.bn.weight.fill_(1.0)
            m.bn.bias.copy_(weights[f"{name}.conv.bias"])
        for k in plain:  # the head's last 1x1 convolutions (never folded) and the DFL constant
            state[k].copy_(weights[k])

        stats: dict[str, tuple] = {}
        hooks = [m.conv.register_forward_hook(lambda mod, i, o, n=name: stats.__setitem__(
            n, (o.mean((0, 2, 3)), o.var((0, 2, 3), unbiased=False)))) for name, m in convs.items()]
        model.eval()
        model(_calibration_batch(calibration, imgsz))
        for h in hooks:
            h.remove()
        for name, m in convs.items():  # unfold: same function, real statistics
            mean, var = stats[name]
            m.bn.running_mean.copy_(mean)
            m.bn.running_var.copy_(var)
            m.bn.weight.copy_(torch.sqrt(var + m.bn.eps))
            m.bn.bias.copy_(mean + weights[f"{name}.conv.bias"])
    model.names = {0: "pill"}
    out.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"model": model.half(), "ema": None, "train_args": {}, "date": datetime.now().astimezone().isoformat(),
                "version": __version__, "source": str(onnx_path)}, out)
    return out
