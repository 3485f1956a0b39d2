"""One convolution asked through four faces is one problem: one spec, one autotune entry.

``ConvSpec.op`` only labels messages, so F.conv2d, nn.Conv2d, keras.Conv2D and onnx.conv of
one shape build equal specs and the autotuner measures the shape once."""

import json

import numpy as np
import pytest

import npconv
from npconv import functional as F
from npconv import nn, onnx, select


@pytest.fixture
def tuned(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    select.forget_tuned()
    measured = []
    real = select.measure_candidates

    def counting(spec, *args, **kwargs):
        measured.append(spec)
        return real(spec, *args, **kwargs)

    monkeypatch.setattr(select, "measure_candidates", counting)
    npconv.set_autotune(True)
    yield measured
    npconv.set_autotune(False)
    select.forget_tuned()


def _four_faces(x, w, b):
    """The same 3x3, padding-1 convolution through each face, results in NCHW."""
    module = nn.Conv2d(4, 6, 3, padding=1)
    module.load_state_dict({"weight": w, "bias": b})
    layer = npconv.keras.Conv2D(6, 3, padding="same")
    layer.build(x.transpose(0, 2, 3, 1).shape)
    layer.set_weights([w.transpose(2, 3, 1, 0), b])
    return {"functional": F.conv2d(x, w, b, padding=1),
            "nn": module(x),
            "keras": layer(x.transpose(0, 2, 3, 1)).transpose(0, 3, 1, 2),
            "onnx": onnx.conv(x, w, b, pads=[1, 1, 1, 1])}


def test_four_faces_share_one_autotune_entry(tuned):
    rng = np.random.default_rng(7)
    x = rng.standard_normal((2, 4, 12, 12)).astype(np.float32)
    w = rng.standard_normal((6, 4, 3, 3)).astype(np.float32)
    b = rng.standard_normal(6).astype(np.float32)
    results = _four_faces(x, w, b)
    assert len(tuned) == 1, f"measured {len(tuned)} times: {tuned}"
    entries = json.loads(select.cache_path().read_text())
    assert len(entries) == 1 and list(entries.values())[0] in select.ALGORITHMS
    want = results["functional"]
    for face, got in results.items():
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5, err_msg=face)
