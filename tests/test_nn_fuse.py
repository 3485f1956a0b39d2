"""npconv.nn.fuse: BatchNorm folded into the convolution before it, activations run in place.

Oracles: the unfused model (npconv's and torch.nn's, in eval mode, same weights),
torch.ao.quantization.fuse_modules (structure) and torch.nn.utils.fusion.fuse_conv_bn_eval
(folded weights)."""

from collections import OrderedDict

import numpy as np
import pytest
import torch
from conftest import assert_matches
from torch.ao.quantization import fuse_modules
from torch.nn.utils.fusion import fuse_conv_bn_eval

from npconv import nn
from npconv.nn import activation as act
from npconv.nn.fuse import ConvActivation, fuse
from npconv.nn.norm import BatchNorm1d, BatchNorm2d, BatchNorm3d

DTYPES = [np.float32, np.float64]
TORCH_DTYPE = {np.float32: torch.float32, np.float64: torch.float64}
BN = {1: BatchNorm1d, 2: BatchNorm2d, 3: BatchNorm3d}
CONV = {1: nn.Conv1d, 2: nn.Conv2d, 3: nn.Conv3d}


def randomize(model, rng):
    """Random weights, BatchNorm affine and running statistics (variances in [0.5, 2])."""
    for name, module in model.named_modules():
        if isinstance(module, tuple(BN.values())):
            module.weight[...] = rng.uniform(0.5, 2.0, module.num_features)
            module.bias[...] = rng.standard_normal(module.num_features)
            if not module.track_running_stats:
                continue
            module.running_mean = rng.standard_normal(module.num_features).astype(module.weight.dtype)
            module.running_var = rng.uniform(0.5, 2.0, module.num_features).astype(module.weight.dtype)
    return model


def torch_twin(model, twin, dtype):
    """``twin`` (a torch.nn module with the same keys) loaded with ``model``'s state, in eval mode."""
    state, twin = model.state_dict(), twin.to(TORCH_DTYPE[dtype])
    assert list(state) == list(twin.state_dict())
    twin.load_state_dict({key: torch.from_numpy(np.asarray(value)) for key, value in state.items()})
    return twin.eval()


def check_fused(model, twin, x, dtype):
    """fuse(model) matches the torch twin in eval mode and leaves ``model`` as it was."""
    before, training = model.state_dict(), model.training
    fused = fuse(model)
    with torch.no_grad():
        want = twin(torch.from_numpy(x))
    assert_matches(fused(x), want, dtype, "fused")
    assert not fused.training and model.training == training
    after = model.state_dict()
    assert list(after) == list(before) and all(np.array_equal(after[k], before[k]) for k in before)
    return fused


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("bias", [True, False])
def test_conv_bn_relu_matches_torch(rng, dtype, bias):
    model = randomize(nn.Sequential(nn.Conv2d(3, 8, 3, padding=1, bias=bias, dtype=dtype),
                                    BatchNorm2d(8, dtype=dtype), nn.ReLU()), rng).eval()
    twin = torch_twin(model, torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3, padding=1, bias=bias),
                                                 torch.nn.BatchNorm2d(8), torch.nn.ReLU()), dtype)
    x = rng.standard_normal((2, 3, 7, 6)).astype(dtype)
    reference = model(x)
    fused = check_fused(model, twin, x, dtype)
    assert_matches(fused(x), reference, dtype, "fused vs unfused npconv")
    assert isinstance(model[1], BatchNorm2d) and isinstance(model[2], nn.ReLU)
    torch_fused = fuse_modules(twin, [["0", "1", "2"]])
    assert repr(fused).replace("ConvActivation", "ConvReLU2d") == repr(torch_fused)
    assert list(fused.state_dict()) == list(torch_fused.state_dict()) == ["0.0.weight", "0.0.bias"]
    assert fused[0][0].weight.dtype == dtype and fused[0][0].bias.dtype == dtype


@pytest.mark.parametrize("dtype", DTYPES)
def test_folded_weights_match_torch_fuse_conv_bn_eval(rng, dtype):
    for conv, bn, twin_conv in [(nn.Conv2d(4, 6, 3, groups=2, dtype=dtype), BatchNorm2d(6, dtype=dtype),
                                 torch.nn.Conv2d(4, 6, 3, groups=2)),
                                (nn.ConvTranspose2d(3, 5, 2, stride=2, dtype=dtype), BatchNorm2d(5, dtype=dtype),
                                 torch.nn.ConvTranspose2d(3, 5, 2, stride=2))]:
        model = randomize(nn.Sequential(conv, bn), rng)
        twin = torch_twin(model, torch.nn.Sequential(twin_conv, torch.nn.BatchNorm2d(bn.num_features)), dtype)
        want = fuse_conv_bn_eval(twin[0], twin[1], transpose=conv.transposed)
        fused = fuse(model, activations=False)
        assert isinstance(fused[1], act.Identity) and isinstance(model[1], BatchNorm2d)
        assert_matches(fused[0].weight, want.weight, dtype, f"{type(conv).__name__} weight")
        assert_matches(fused[0].bias, want.bias, dtype, f"{type(conv).__name__} bias")


@pytest.mark.parametrize("dtype", DTYPES)
def test_grouped_depthwise_and_grouped_transposed(rng, dtype):
    model = randomize(nn.Sequential(
        nn.Conv2d(4, 6, 3, groups=2, dtype=dtype), BatchNorm2d(6, dtype=dtype), act.ReLU6(),
        nn.Conv2d(6, 6, 3, groups=6, padding=1, bias=False, dtype=dtype), BatchNorm2d(6, dtype=dtype),
        nn.ConvTranspose2d(6, 4, 3, groups=2, dtype=dtype), BatchNorm2d(4, dtype=dtype)), rng)
    twin = torch_twin(model, torch.nn.Sequential(
        torch.nn.Conv2d(4, 6, 3, groups=2), torch.nn.BatchNorm2d(6), torch.nn.ReLU6(),
        torch.nn.Conv2d(6, 6, 3, groups=6, padding=1, bias=False), torch.nn.BatchNorm2d(6),
        torch.nn.ConvTranspose2d(6, 4, 3, groups=2), torch.nn.BatchNorm2d(4)), dtype)
    fused = check_fused(model.eval(), twin, rng.standard_normal((2, 4, 6, 5)).astype(dtype), dtype)
    kinds = [type(m).__name__ for m in fused]
    assert kinds == ["ConvActivation", "Identity", "Identity", "Conv2d", "Identity", "ConvTranspose2d", "Identity"]


@pytest.mark.parametrize("n, dtype", [(1, np.float32), (1, np.float64), (3, np.float32), (3, np.float64)])
def test_conv1d_and_conv3d(rng, n, dtype):
    torch_conv = {1: torch.nn.Conv1d, 3: torch.nn.Conv3d}[n]
    torch_bn = {1: torch.nn.BatchNorm1d, 3: torch.nn.BatchNorm3d}[n]
    model = randomize(nn.Sequential(CONV[n](2, 4, 3, dtype=dtype), BN[n](4, dtype=dtype), act.Hardswish()), rng)
    twin = torch_twin(model, torch.nn.Sequential(torch_conv(2, 4, 3), torch_bn(4), torch.nn.Hardswish()), dtype)
    x = rng.standard_normal((2, 2) + (5,) * n).astype(dtype)
    fused = check_fused(model.eval(), twin, x, dtype)
    assert type(fused[0]) is ConvActivation and type(fused[0][0]) is CONV[n]


@pytest.mark.parametrize("dtype", DTYPES)
def test_every_in_place_activation(rng, dtype):
    pairs = [(nn.ReLU(), torch.nn.ReLU()), (act.ReLU6(), torch.nn.ReLU6()), (act.SiLU(), torch.nn.SiLU()),
             (act.Hardswish(), torch.nn.Hardswish()), (act.Hardsigmoid(), torch.nn.Hardsigmoid()),
             (act.Sigmoid(), torch.nn.Sigmoid()), (act.Tanh(), torch.nn.Tanh())]
    x = 3 * rng.standard_normal((2, 3, 6, 6)).astype(dtype)
    for ours, theirs in pairs:
        model = randomize(nn.Sequential(nn.Conv2d(3, 4, 3, dtype=dtype), BatchNorm2d(4, dtype=dtype), ours), rng)
        twin = torch_twin(model, torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.BatchNorm2d(4), theirs), dtype)
        fused = check_fused(model.eval(), twin, x, dtype)
        assert type(fused[0]) is ConvActivation and fused[0][1] is not ours, type(ours).__name__


def test_activation_runs_in_place_on_the_conv_output(rng):
    fused = fuse(nn.Sequential(nn.Conv2d(2, 3, 3), BatchNorm2d(3), act.SiLU()))
    conv, outputs = fused[0][0], []
    plain_forward = conv.forward
    conv.forward = lambda x: outputs.append(plain_forward(x)) or outputs[-1]
    x = rng.standard_normal((1, 2, 5, 5)).astype(np.float32)
    y = fused[0](x)
    assert y is outputs[0] and y.min() < 0  # SiLU's negative lobe, written into the conv's array
    with pytest.raises(RuntimeError, match="inference only"):
        fused[0].backward(np.ones_like(y))


def test_batchnorm_not_after_a_conv_stays(rng):
    model = randomize(nn.Sequential(BatchNorm2d(3), nn.Conv2d(3, 4, 1), nn.ReLU(), BatchNorm2d(4),
                                    nn.Conv2d(4, 4, 1), BatchNorm2d(4, track_running_stats=False),
                                    nn.Conv2d(4, 2, 1), act.GELU(), BatchNorm3d(2)), rng)
    model[-1].running_var[...] = 1.5
    fused = fuse(model)
    kinds = [type(m).__name__ for m in fused]
    assert kinds == ["BatchNorm2d", "ConvActivation", "Identity", "BatchNorm2d", "Conv2d", "BatchNorm2d",
                     "Conv2d", "GELU", "BatchNorm3d"]
    sub = nn.Sequential(*list(model)[:6]).eval()
    twin = torch_twin(sub, torch.nn.Sequential(
        torch.nn.BatchNorm2d(3), torch.nn.Conv2d(3, 4, 1), torch.nn.ReLU(), torch.nn.BatchNorm2d(4),
        torch.nn.Conv2d(4, 4, 1), torch.nn.BatchNorm2d(4, track_running_stats=False)), np.float32)
    check_fused(sub, twin, rng.standard_normal((3, 3, 4, 4)).astype(np.float32), np.float32)


def test_nested_sequential_and_training_mode_model(rng):
    model = randomize(nn.Sequential(OrderedDict([
        ("stem", nn.Sequential(nn.Conv2d(3, 4, 3), BatchNorm2d(4))), ("act", nn.ReLU()),
        ("features", nn.Sequential(nn.Sequential(nn.Conv2d(4, 5, 3, bias=False), BatchNorm2d(5), act.ReLU6())))])), rng)
    assert model.training
    inner = torch.nn.Sequential(torch.nn.Conv2d(4, 5, 3, bias=False), torch.nn.BatchNorm2d(5), torch.nn.ReLU6())
    twin = torch_twin(model, torch.nn.Sequential(OrderedDict([
        ("stem", torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.BatchNorm2d(4))), ("act", torch.nn.ReLU()),
        ("features", torch.nn.Sequential(inner))])), np.float32)
    x = rng.standard_normal((2, 3, 8, 8)).astype(np.float32)
    fused = check_fused(model, twin, x, np.float32)  # the training-mode model: its eval function
    assert type(fused.stem[1]) is act.Identity and type(fused.act) is nn.ReLU  # ReLU after a Sequential stays
    assert type(fused.features[0][0]) is ConvActivation
    assert model.training and all(m.training for m in model.modules())
    assert int(model.stem[1].num_batches_tracked) == 0
    assert repr(fuse(fused)) == repr(fused)  # fusing again changes nothing


class TorchBlock(torch.nn.Module):
    """torchvision's BasicBlock with a downsample, keyed as the npconv Residual below."""

    def __init__(self):
        super().__init__()
        self.conv1, self.bn1 = torch.nn.Conv2d(3, 4, 3, padding=1, bias=False), torch.nn.BatchNorm2d(4)
        self.relu = torch.nn.ReLU()
        self.conv2, self.bn2 = torch.nn.Conv2d(4, 4, 3, padding=1, bias=False), torch.nn.BatchNorm2d(4)
        self.downsample = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 1, bias=False), torch.nn.BatchNorm2d(4))
        self.after = torch.nn.ReLU()

    def forward(self, x):
        body = self.bn2(self.conv2(self.relu(self.bn1(self.conv1(x)))))
        return self.after(body + self.downsample(x))


@pytest.mark.parametrize("dtype", DTYPES)
def test_residual_body_and_shortcut_mappings(rng, dtype):
    body = OrderedDict([("conv1", nn.Conv2d(3, 4, 3, padding=1, bias=False, dtype=dtype)),
                        ("bn1", BatchNorm2d(4, dtype=dtype)), ("relu", nn.ReLU()),
                        ("conv2", nn.Conv2d(4, 4, 3, padding=1, bias=False, dtype=dtype)),
                        ("bn2", BatchNorm2d(4, dtype=dtype))])
    shortcut = {"downsample": nn.Sequential(nn.Conv2d(3, 4, 1, bias=False, dtype=dtype), BatchNorm2d(4, dtype=dtype))}
    model = randomize(nn.Residual(body, shortcut=shortcut, after=nn.ReLU()), rng).eval()
    x = rng.standard_normal((2, 3, 5, 5)).astype(dtype)
    fused = check_fused(model, torch_twin(model, TorchBlock(), dtype), x, dtype)
    assert [type(m).__name__ for _, m in fused.named_children()] == [
        "ConvActivation", "Identity", "Identity", "Conv2d", "Identity", "Sequential", "ReLU"]
    assert type(fused.downsample[1]) is act.Identity and type(model.bn1) is BatchNorm2d


def test_shared_conv_is_not_folded_and_refusals(rng):
    conv = nn.Conv2d(2, 2, 1)
    with pytest.raises(ValueError, match="module '2' \\(Conv2d\\) is already at '0'"):
        nn.Sequential(conv, BatchNorm2d(2), conv, BatchNorm2d(2))  # one instance in two places
    x = rng.standard_normal((1, 2, 3, 3)).astype(np.float32)
    tied = randomize(nn.Sequential(nn.Conv2d(2, 2, 1), BatchNorm2d(2), nn.Conv2d(2, 2, 1), BatchNorm2d(2)), rng)
    tied[2].weight = tied[0].weight
    assert [type(m).__name__ for m in fuse(tied)] == ["Conv2d", "BatchNorm2d", "Conv2d", "BatchNorm2d"]
    lazy = fuse(nn.Sequential(nn.LazyConv2d(2, 1), BatchNorm2d(2), nn.ReLU()))  # no weight yet: nothing to fold
    assert [type(m).__name__ for m in lazy] == ["LazyConv2d", "BatchNorm2d", "ReLU"]
    assert lazy(x).shape == (1, 2, 3, 3) and lazy(x).min() >= 0
    with pytest.raises(TypeError, match="fuse: model must be an npconv.nn.Module, got Conv2d"):
        fuse(torch.nn.Conv2d(1, 1, 1))
    with pytest.raises(TypeError, match="activation must be one of"):
        ConvActivation(nn.Conv2d(1, 1, 1), act.GELU())


def test_a_container_with_a_forward_of_its_own_is_left_as_it_is(rng):
    """A Sequential subclass that also hands on its convolution's output (a skip feature) would
    see the folded values there: fuse leaves such containers alone."""
    class WithSkip(nn.Sequential):
        def forward(self, x):
            feature = self[0](x)
            return self[2](self[1](feature)) + feature

    model = randomize(WithSkip(nn.Conv2d(2, 2, 1), BatchNorm2d(2), nn.ReLU()), rng).eval()
    x = rng.standard_normal((1, 2, 3, 3)).astype(np.float32)
    fused = fuse(model)
    assert [type(m).__name__ for m in fused] == ["Conv2d", "BatchNorm2d", "ReLU"]
    assert_matches(fused(x), model(x), np.float32)
