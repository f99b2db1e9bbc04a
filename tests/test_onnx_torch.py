"""Fine-tuning PP-OCR replays its ONNX graph in torch: the replay must compute what onnxruntime computes, the
output layer must be cut to exactly the reader's alphabet, and the trained weights must land in the same graph
(``[train]`` extra)."""

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

SHIPPED = config.MODELS_DIR / "imprint_rec.onnx"  # PP-OCRv6 fine-tuned by us: the same graph


@pytest.mark.parametrize("width", [48, 203])  # odd widths exercise the SAME_UPPER padding of the stem
def test_replay_matches_onnxruntime(width):
    module = OnnxModule(onnx.load(str(SHIPPED))).eval()
    x = np.random.default_rng(width).uniform(-1, 1, (2, 3, 48, width)).astype(np.float32)
    ref = create_session(SHIPPED, threads=1).run(None, {"x": x})[0]
    with torch.no_grad():
        out = module(torch.from_numpy(x)).numpy()
    assert out.shape == ref.shape
    assert np.abs(out - ref).max() < 1e-4
    with torch.no_grad():  # logits stop before the final softmax
        assert np.allclose(torch.softmax(module.logits(torch.from_numpy(x)), -1).numpy(), ref, atol=1e-4)


def _wider(path: Path, out: Path) -> None:
    """The recognizer with extra characters (lower case, Hangul) mixed into its output layer, as PP-OCR has."""
    model = onnx.load(str(path))
    chars = {p.key: p.value for p in model.metadata_props}["character"].splitlines()
    wide = ["a", "가", *chars[::-1], "x", "é"]
    weights = {t.name: t for t in model.graph.initializer}
    w = onnx.numpy_helper.to_array(weights["linear_8.w_0"])
    b = onnx.numpy_helper.to_array(weights["linear_8.b_0"])
    rng = np.random.default_rng(0)
    cols = [0, *(1 + chars.index(c) if c in chars else -1 for c in wide), len(chars) + 1]
    w2 = np.stack([w[:, c] if c >= 0 else rng.normal(0, 0.1, w.shape[0]) for c in cols], 1).astype(np.float32)
    b2 = np.array([b[c] if c >= 0 else -1.0 for c in cols], np.float32)
    weights["linear_8.w_0"].CopyFrom(onnx.numpy_helper.from_array(w2, "linear_8.w_0"))
    weights["linear_8.b_0"].CopyFrom(onnx.numpy_helper.from_array(b2, "linear_8.b_0"))
    model.graph.output[0].type.tensor_type.shape.dim[-1].dim_value = len(cols)
    next(p for p in model.metadata_props if p.key == "character").value = "\n".join(wide)
    onnx.save(model, str(out))


def test_cut_head_keeps_exactly_the_alphabet(tmp_path: Path):
    """From a head with other characters in another order, the cut keeps blank + A-Z0-9 + space in the reader's
    order: the cut model computes what the shipped one does."""
    _wider(SHIPPED, tmp_path / "wide.onnx")
    width = Recognizer(SHIPPED, threads=1).session.get_outputs()[0].shape[-1]
    assert Recognizer(tmp_path / "wide.onnx", threads=1).session.get_outputs()[0].shape[-1] == width + 4
    out = tmp_path / "cut.onnx"
    export(_pretrained(tmp_path / "wide.onnx").eval(), out)
    model = onnx.load(str(out))
    assert {p.key: p.value for p in model.metadata_props}["character"].splitlines() == list(ALPHABET)
    assert model.graph.output[0].type.tensor_type.shape.dim[-1].dim_value == len(ALPHABET) + 2
    x = np.random.default_rng(0).uniform(-1, 1, (3, 3, 48, 120)).astype(np.float32)
    cut, shipped = Recognizer(out, threads=1)(x), Recognizer(SHIPPED, threads=1)(x, ALPHABET)
    assert np.abs(np.exp(cut) - np.exp(shipped)).max() < 1e-5


def test_trained_weights_go_back_into_the_graph(tmp_path: Path):
    module = _pretrained(SHIPPED)
    name = next(iter(module._keys))
    with torch.no_grad():
        module.parameter(name).mul_(0.0)
    model = module.to_onnx()
    weights = {t.name: onnx.numpy_helper.to_array(t) for t in model.graph.initializer}
    assert not weights[name].any()
    assert len(model.graph.node) == len(onnx.load(str(SHIPPED)).graph.node)  # the same graph, new numbers


def test_unsupported_operator_is_named():
    node = onnx.helper.make_node("Gather", ["x", "i"], ["y"])
    graph = onnx.helper.make_graph([node], "g", [onnx.helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [2])],
                                   [onnx.helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, [1])],
                                   [onnx.helper.make_tensor("i", onnx.TensorProto.INT64, [1], [0])])
    with pytest.raises(NotImplementedError, match="Gather"):
        OnnxModule(onnx.helper.make_model(graph))


def test_new_characters_start_below_the_known_ones(tmp_path: Path):
    """Syllables the model lacks get new output rows that start out unlikely, the rows it has are kept: the grown
    model reads what the shipped one read, and its character list (metadata) has the new syllables last."""
    shipped = Recognizer(SHIPPED, threads=1)
    alphabet = shipped.alphabet + "뷁뙇"  # in no catalog imprint
    out = tmp_path / "grown.onnx"
    export(_pretrained(SHIPPED, alphabet).eval(), out, alphabet)
    rec = Recognizer(out, threads=1)
    assert rec.alphabet == alphabet
    x = np.random.default_rng(1).uniform(-1, 1, (3, 3, 48, 160)).astype(np.float32)
    assert np.exp(rec(x))[..., -2:].sum(-1).max() < 0.05
    assert np.abs(np.exp(rec(x, shipped.alphabet)) - np.exp(shipped(x))).max() < 1e-5
