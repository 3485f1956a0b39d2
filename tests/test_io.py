"""Weight files: round trips, a PyTorch model's safetensors file, and refusals."""

import numpy as np
import pytest
import torch

import npconv
import npconv.nn as nn
from conftest import assert_matches
from helpers import require

torch_save_file = require("safetensors.torch", "reading a file the safetensors package wrote").save_file


@pytest.mark.parametrize("suffix", [".safetensors", ".npz"])
def test_round_trip(tmp_path, suffix):
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.ConvTranspose2d(4, 2, 2, stride=2, dtype=np.float64))
    path = tmp_path / f"model{suffix}"
    npconv.save(model.state_dict(), path)
    loaded = npconv.load(path)
    assert sorted(loaded) == sorted(model.state_dict())
    for key, value in model.state_dict().items():
        assert loaded[key].dtype == value.dtype
        np.testing.assert_array_equal(loaded[key], value)


def test_torch_safetensors_file_gives_torch_outputs(tmp_path):
    torch.manual_seed(0)
    theirs = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3, padding=1, padding_mode="reflect"), torch.nn.ReLU(),
                                 torch.nn.ConvTranspose2d(8, 4, 4, stride=2, padding=1, groups=2))
    path = tmp_path / "torch_model.safetensors"
    torch_save_file(theirs.state_dict(), str(path))
    ours = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1, padding_mode="reflect"), nn.ReLU(),
                         nn.ConvTranspose2d(8, 4, 4, stride=2, padding=1, groups=2))
    ours.load_state_dict(npconv.load(path))
    x = np.random.default_rng(0).standard_normal((2, 3, 9, 10)).astype(np.float32)
    with torch.no_grad():
        assert_matches(ours(x), theirs(torch.from_numpy(x)), np.float32)


def test_truncated_and_malformed_files_are_refused(tmp_path):
    good = tmp_path / "w.safetensors"
    npconv.save({"weight": np.ones((4, 4))}, good)
    data = good.read_bytes()
    for name, content in [("truncated.safetensors", data[: len(data) // 2]), ("noise.safetensors", b"\x07" * 64),
                          ("empty.safetensors", b"")]:
        (tmp_path / name).write_bytes(content)
        with pytest.raises(ValueError, match=f"{name}' is not a valid .safetensors file"):
            npconv.load(tmp_path / name)
    npz = tmp_path / "w.npz"
    npconv.save({"weight": np.ones((4, 4))}, npz)
    (tmp_path / "truncated.npz").write_bytes(npz.read_bytes()[:100])
    with pytest.raises(ValueError, match="is not a valid .npz file"):
        npconv.load(tmp_path / "truncated.npz")


def test_nothing_is_unpickled(tmp_path):
    path = tmp_path / "pickled.npz"
    np.savez(path, weight=np.array([{"evil": 1}], dtype=object))  # an object array needs pickle
    with pytest.raises(ValueError, match="is not a valid .npz file"):
        npconv.load(path)
    with pytest.raises(TypeError, match="object array"):
        npconv.save({"weight": np.array([{}], dtype=object)}, tmp_path / "x.npz")


def test_unknown_suffix_and_missing_file(tmp_path):
    with pytest.raises(ValueError, match="unknown format '.pt'"):
        npconv.save({"w": np.ones(1)}, tmp_path / "model.pt")
    with pytest.raises(FileNotFoundError):
        npconv.load(tmp_path / "absent.npz")
