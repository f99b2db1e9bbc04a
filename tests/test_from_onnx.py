"""The shipped detector ONNX turned back into a trainable checkpoint computes what the ONNX computes.

Needs the `[train]` extra (torch, ultralytics); CI installs only `[test]`, so there it skips. Run it in the
training environment: `.venv-train/bin/python -m pytest tests/test_from_onnx.py`.
"""

from __future__ import annotations

import numpy as np
import pytest

from pillcheck import config
from pillcheck.inference.session import create_session
from pillcheck.training.scenes import table_with_pills

pytest.importorskip("ultralytics")
torch = pytest.importorskip("torch")

MODEL = config.MODELS_DIR / "detector.onnx"


@pytest.fixture(scope="module")
def photos(tmp_path_factory) -> list:
    import cv2

    d = tmp_path_factory.mktemp("calib")
    paths = []
    for seed in range(6):
        img, _ = table_with_pills(640, 480, seed=seed)
        paths.append(d / f"{seed}.jpg")
        cv2.imwrite(str(paths[-1]), cv2.cvtColor(img, cv2.COLOR_RGB2BGR))
    return paths


def test_checkpoint_matches_onnx_in_eval_and_train_mode(tmp_path, photos) -> None:
    from pillcheck.training.detector import _ultralytics_offline

    _ultralytics_offline(tmp_path / ".ultralytics")
    from ultralytics.nn.tasks import load_checkpoint

    from pillcheck.training.from_onnx import _calibration_batch, checkpoint_from_onnx

    pt = checkpoint_from_onnx(MODEL, tmp_path / "det.pt", photos[:4])
    model, _ = load_checkpoint(str(pt))
    x = _calibration_batch(photos[4:], 416)
    expected = create_session(MODEL).run(None, {"images": x.numpy()})[0]
    model.eval()
    with torch.no_grad():
        got = model(x)[0].numpy()
    # weights are stored in fp16 like every ultralytics checkpoint: scores agree to ~1e-3, boxes to ~1 px
    assert np.abs(got[:, 4] - expected[:, 4]).max() < 0.01
    assert np.abs(got[:, :4] - expected[:, :4]).max() < 2.0
    # Train mode (BatchNorm on the batch's own statistics) must start from the same function, or the training leg
    # would start from broken weights: on the calibration batch, batch statistics = the stored ones, so the neck's
    # feature maps must agree between the two modes (checked: without the unfold step this fails).
    feats = {}
    model.model[-1].register_forward_hook(lambda m, inp, out: feats.__setitem__(m.training, [t.clone() for t in inp[0]]))
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.momentum = 0.0  # keep the stored statistics
    calib = _calibration_batch(photos[:4], 416)
    with torch.no_grad():
        model.eval()
        model(calib)
        model.train()
        model(calib)
    for e, t in zip(feats[False], feats[True]):
        assert torch.allclose(e, t, atol=0.05 * float(e.abs().max())), float((e - t).abs().max())


def test_wrong_architecture_is_a_clear_error(tmp_path, photos) -> None:
    from pillcheck.training.detector import _ultralytics_offline

    _ultralytics_offline(tmp_path / ".ultralytics")
    from pillcheck.training.from_onnx import checkpoint_from_onnx

    with pytest.raises(ValueError, match="no weights for"):
        checkpoint_from_onnx(MODEL, tmp_path / "det.pt", photos[:2], cfg="yolov8s.yaml")
