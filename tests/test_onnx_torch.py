"""Fine-tuning PP-OCR starts from the very model we serve: the torch replay of its ONNX graph must compute what
onnxruntime computes, and the cut-down output layer must read as the full one does (``[train]`` extra)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
onnx = pytest.importorskip("onnx")

from pillcheck import config  # noqa: E402
from pillcheck.inference.imprint import ALPHABET, Recognizer  # noqa: E402
from pillcheck.inference.session import create_session  # noqa: E402
from pillcheck.training.imprint import _pretrained, export  # noqa: E402
from pillcheck.training.onnx_torch import OnnxModule  # noqa: E402

PPOCR = config.MODELS_DIR / "imprint_rec.onnx"


@pytest.mark.parametrize("width", [48, 203])  # odd widths exercise the SAME_UPPER padding of the stem
def test_replay_matches_onnxruntime(width):
    module = OnnxModule(onnx.load(str(PPOCR))).eval()
    x = np.random.default_rng(width).uniform(-1, 1, (2, 3, 48, width)).astype(np.float32)
    ref = create_session(PPOCR, threads=1).run(None, {"x": x})[0]
    with torch.no_grad():
        out = module(torch.from_numpy(x)).numpy()
    assert out.shape == ref.shape
    assert np.abs(out - ref).max() < 1e-4
    with torch.no_grad():  # logits stop before the final softmax
        assert np.allclose(torch.softmax(module.logits(torch.from_numpy(x)), -1).numpy(), ref, atol=1e-4)


def test_cut_head_reads_like_the_full_model(tmp_path: Path):
    """Blank + A-Z0-9 + space only: the same probabilities over the alphabet as ``Recognizer`` takes from the
    full 18,710-way output (it also adds lower case, hence the small tolerance), and the same greedy reads."""
    out = tmp_path / "ft.onnx"
    export(_pretrained(PPOCR).eval(), out)
    model = onnx.load(str(out))
    assert {p.key: p.value for p in model.metadata_props}["character"].splitlines() == list(ALPHABET)
    assert model.graph.output[0].type.tensor_type.shape.dim[-1].dim_value == len(ALPHABET) + 2
    x = np.random.default_rng(0).uniform(-1, 1, (3, 3, 48, 120)).astype(np.float32)
    cut, full = Recognizer(out, threads=1)(x), Recognizer(PPOCR, threads=1)(x)
    assert cut.shape == full.shape
    assert np.abs(np.exp(cut) - np.exp(full)).max() < 0.02
    assert (cut.argmax(-1) == full.argmax(-1)).mean() > 0.98


def test_trained_weights_go_back_into_the_graph(tmp_path: Path):
    module = _pretrained(PPOCR)
    name = next(iter(module._keys))
    with torch.no_grad():
        module.parameter(name).mul_(0.0)
    model = module.to_onnx()
    weights = {t.name: onnx.numpy_helper.to_array(t) for t in model.graph.initializer}
    assert not weights[name].any()
    assert len(model.graph.node) == len(onnx.load(str(PPOCR)).graph.node)  # the same graph, new numbers


def test_unsupported_operator_is_named():
    node = onnx.helper.make_node("Gather", ["x", "i"], ["y"])
    graph = onnx.helper.make_graph([node], "g", [onnx.helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [2])],
                                   [onnx.helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, [1])],
                                   [onnx.helper.make_tensor("i", onnx.TensorProto.INT64, [1], [0])])
    with pytest.raises(NotImplementedError, match="Gather"):
        OnnxModule(onnx.helper.make_model(graph))
