"""npconv.models against the same architectures in torch.nn (tests/torch_zoo.py; torchvision's names).

Small inputs (batch 2, 64x64, 10 classes) keep this lean: state dict keys and shapes, eval outputs
with torch's random weights loaded (BatchNorm statistics randomised too), one training step's
gradients and running statistics, stochastic depth, reprs and a save/load round trip.
"""

import numpy as np
import pytest
import torch
import torch_zoo
from conftest import assert_matches, relative_error

import npconv
import npconv.models as models
from npconv.nn.loss import CrossEntropyLoss
from npconv.nn.norm import BatchNorm2d

NUM_CLASSES = 10
BUILDERS = {"resnet18": models.resnet18, "resnet50": models.resnet50, "mobilenet_v2": models.mobilenet_v2,
            "convnext_tiny": models.convnext_tiny}


def pair(name, dtype=np.float32, seed=0):
    """(npconv model, torch model) with the torch model's random weights and statistics loaded."""
    reference = torch_zoo.randomize(torch_zoo.build(name, NUM_CLASSES), seed)
    if dtype == np.float64:
        reference = reference.double()
    model = BUILDERS[name](num_classes=NUM_CLASSES, dtype=dtype)
    result = model.load_state_dict(torch_zoo.numpy_state_dict(reference))
    assert result.missing_keys == [] and result.unexpected_keys == []
    return model, reference


def images(rng, dtype, batch=2, size=64):
    return rng.standard_normal((batch, 3, size, size)).astype(dtype)


@pytest.mark.parametrize("name", list(BUILDERS))
def test_state_dict_keys_shapes_and_dtypes_are_torchvisions(name):
    ours = BUILDERS[name](num_classes=NUM_CLASSES).state_dict()
    theirs = torch_zoo.build(name, NUM_CLASSES).state_dict()
    assert list(ours) == list(theirs)
    assert [v.shape for v in ours.values()] == [tuple(v.shape) for v in theirs.values()]
    want_dtypes = [str(v.dtype).replace("torch.", "") for v in theirs.values()]
    assert [str(v.dtype) for v in ours.values()] == want_dtypes


@pytest.mark.parametrize("name", list(BUILDERS))
def test_eval_outputs_match_torch_float32(name, rng):
    model, reference = pair(name)
    x = images(rng, np.float32)
    want = reference.eval()(torch.from_numpy(x))
    got = model.eval()(x)
    assert_matches(got, want, np.float32, name)
    assert np.abs(want.detach().numpy()).max() > 0.1  # the logits are not trivially small


def test_eval_outputs_match_torch_float64_resnet50(rng):
    model, reference = pair("resnet50", np.float64, seed=1)
    x = images(rng, np.float64)
    want = reference.eval()(torch.from_numpy(x)).detach().numpy()
    got = model.eval()(x)
    assert got.dtype == np.float64 and relative_error(got, want) < 1e-10


def training_step(name, rng):
    """One forward + backward in training mode, float64, dropout off; both models after it."""
    model, reference = pair(name, np.float64, seed=2)
    if name == "mobilenet_v2":  # dropout draws differ between the libraries: switch it off on both
        model.classifier[0].p = reference.classifier[0].p = 0.0
    x = images(rng, np.float64)
    target = rng.integers(0, NUM_CLASSES, size=len(x))
    model.train()
    loss_fn = CrossEntropyLoss()
    loss = loss_fn(model(x), target)
    model.backward(loss_fn.backward())
    reference.train()
    want_loss = torch.nn.CrossEntropyLoss()(reference(torch.from_numpy(x)), torch.from_numpy(target))
    want_loss.backward()
    assert abs(float(loss) - want_loss.item()) <= 1e-10 * abs(want_loss.item())
    return model, reference


@pytest.mark.parametrize("name", ["resnet18", "mobilenet_v2"])
def test_training_step_gradients_and_running_stats_match_torch(name, rng):
    model, reference = training_step(name, rng)
    theirs = {key: param.grad.numpy() for key, param in reference.named_parameters()}
    # MobileNetV2's projection BN biases feed a 1x1 conv and a training-mode BN, which removes
    # any constant: their exact gradient is 0 and both libraries return rounding noise (~1e-15).
    # Such near-zero gradients are measured against 1e-4 of the network's largest gradient.
    floor = 1e-4 * max(np.abs(grad).max() for grad in theirs.values())
    for key, param in model.named_parameters():
        want = theirs[key]
        assert param.grad is not None and param.grad.shape == want.shape, key
        err = np.abs(param.grad - want).max() / max(np.abs(want).max(), floor)
        assert err <= 1e-8, f"{name} grad of {key}: relative error {err:.2e}"
    buffers = dict(reference.named_buffers())
    state = model.state_dict()
    for key in buffers:
        np.testing.assert_allclose(state[key], buffers[key].numpy(), rtol=1e-10, atol=1e-12, err_msg=key)
    assert int(state["bn1.num_batches_tracked" if name == "resnet18" else "features.0.1.num_batches_tracked"]) == 1


def assert_grads_match(ours, theirs, what):
    """Every parameter gradient of ``ours`` equals torch's at float64's tolerance."""
    grads = {key: param.grad for key, param in theirs.named_parameters()}
    for key, param in ours.named_parameters():
        assert_matches(param.grad, grads[key], np.float64, f"{what} grad of {key}")


def test_bottleneck_block_trains_like_torch(rng):
    """ResNet-50's block (strided, with a downsample): input and parameter gradients, float64."""
    downsample = torch.nn.Sequential(torch.nn.Conv2d(8, 16, 1, stride=2, bias=False), torch.nn.BatchNorm2d(16))
    theirs = torch_zoo.randomize(torch_zoo.Bottleneck(8, 4, 2, downsample), seed=6).double()
    ours = models.Bottleneck(8, 4, 2, npconv.nn.Sequential(npconv.nn.Conv2d(8, 16, 1, stride=2, bias=False,
                                                                               dtype=np.float64),
                                                              BatchNorm2d(16, dtype=np.float64)), dtype=np.float64)
    ours.load_state_dict(torch_zoo.numpy_state_dict(theirs))
    x = rng.standard_normal((2, 8, 6, 6))
    x_torch = torch.from_numpy(x).requires_grad_()
    y, want = ours(x), theirs(x_torch)
    assert_matches(y, want, np.float64, "Bottleneck forward")
    seed = rng.standard_normal(y.shape)
    (want * torch.from_numpy(seed)).sum().backward()
    assert_matches(ours.backward(seed), x_torch.grad, np.float64, "Bottleneck input grad")
    assert_grads_match(ours, theirs, "Bottleneck")


def test_small_convnext_trains_like_torch(rng):
    """Stem, LayerNorm2d, CNBlocks, downsample and head in training mode (no stochastic depth)."""
    setting = ((8, 16, 1), (16, None, 2))
    theirs = torch_zoo.randomize(torch_zoo.ConvNeXt(3, 0.0, setting=setting), seed=7).double()
    ours = models.ConvNeXt(setting, 0.0, num_classes=3, dtype=np.float64)
    ours.load_state_dict(torch_zoo.numpy_state_dict(theirs))
    x = rng.standard_normal((2, 3, 16, 16))
    y, want = ours.train()(x), theirs.train()(torch.from_numpy(x))
    assert_matches(y, want, np.float64, "ConvNeXt forward")
    seed = rng.standard_normal(y.shape)
    ours.backward(seed)
    (want * torch.from_numpy(seed)).sum().backward()
    assert_grads_match(ours, theirs, "ConvNeXt")


def test_cnblock_stochastic_depth_trains_like_torch_with_the_same_draws(rng):
    """Row-mode stochastic depth: each sample's branch kept (scaled 1/(1-p)) or dropped; the
    draws are npconv's, so torch is given the same mask; gradients must then agree."""
    dim, p = 8, 0.5
    theirs = torch_zoo.CNBlock(dim, 1e-6, p).double()
    torch_zoo.randomize(theirs, seed=3)
    ours = models.CNBlock(dim, 1e-6, p, dtype=np.float64)
    ours.load_state_dict(torch_zoo.numpy_state_dict(theirs))
    npconv.manual_seed(5)
    x = rng.standard_normal((16, dim, 6, 6))
    y = ours.train()(x)
    branch = theirs.layer_scale * theirs.block(torch.from_numpy(x))
    kept = np.array([np.abs(y[i] - x[i]).max() > 1e-12 for i in range(len(x))])
    assert 0 < kept.sum() < len(x)  # some rows dropped, some kept (seeded)
    mask = torch.from_numpy(kept.astype(np.float64) / (1 - p))[:, None, None, None]
    want = branch * mask + torch.from_numpy(x)
    assert_matches(y, want, np.float64, "CNBlock training forward")
    seed = rng.standard_normal(y.shape)
    grad_x = ours.backward(seed)
    x_torch = torch.from_numpy(x).requires_grad_()
    ((theirs.layer_scale * theirs.block(x_torch) * mask + x_torch) * torch.from_numpy(seed)).sum().backward()
    assert_matches(grad_x, x_torch.grad, np.float64, "CNBlock input grad")
    assert_grads_match(ours, theirs, "CNBlock")


def test_stochastic_depth_is_identity_in_eval_and_refuses_bad_settings():
    depth = models.StochasticDepth(0.9).eval()
    x = np.ones((4, 2))
    assert depth(x) is x and depth.backward(x) is x
    with pytest.raises(ValueError, match="between 0 and 1, but got 1.5"):
        models.StochasticDepth(1.5)
    with pytest.raises(ValueError, match="'batch' or 'row', but got col"):
        models.StochasticDepth(0.1, "col")


def test_convnext_stochastic_depth_rule_is_linear_up_to_0_1():
    model = models.convnext_tiny(num_classes=NUM_CLASSES)
    probs = [m.stochastic_depth.p for m in model.modules() if isinstance(m, models.CNBlock)]
    reference = torch_zoo.build("convnext_tiny", NUM_CLASSES)
    assert probs == [m.stochastic_depth.p for m in reference.modules() if isinstance(m, torch_zoo.CNBlock)]
    assert len(probs) == 18 and probs[0] == 0.0 and probs[-1] == pytest.approx(0.1)


def test_reprs_match_torchvisions():
    ours, theirs = models.convnext_tiny(num_classes=NUM_CLASSES), torch_zoo.build("convnext_tiny", NUM_CLASSES)
    assert repr(ours) == repr(theirs)
    ours_mobile, theirs_mobile = models.mobilenet_v2(), torch_zoo.build("mobilenet_v2")
    assert repr(ours_mobile.features) == repr(theirs_mobile.features)
    assert repr(ours_mobile.classifier) == repr(theirs_mobile.classifier)
    # BasicBlock: torchvision's children in order, plus the sum's ReLU as child 'after'
    ours_block, theirs_block = repr(models.resnet18().layer2[0]), repr(torch_zoo.build("resnet18").layer2[0])
    assert ours_block.replace("\n  (after): ReLU(inplace=True)", "") == theirs_block
    assert "(after): ReLU(inplace=True)" in ours_block


def test_float32_default_and_float64_dtype():
    assert models.resnet18().fc.weight.dtype == np.float32
    assert all(p.dtype == np.float64 for p in models.mobilenet_v2(dtype=np.float64).parameters())


def test_initialisation_follows_torchvision():
    npconv.manual_seed(0)
    resnet = models.resnet18()
    fan_out = 64 * 7 * 7
    assert np.std(resnet.conv1.weight) == pytest.approx(np.sqrt(2 / fan_out), rel=0.05)
    assert np.all(resnet.bn1.weight == 1) and np.all(resnet.bn1.bias == 0)
    mobile = models.mobilenet_v2()
    assert np.std(mobile.classifier[1].weight) == pytest.approx(0.01, rel=0.05)
    assert np.all(mobile.classifier[1].bias == 0)
    convnext = models.convnext_tiny()
    stem = convnext.features[0][0]
    assert np.std(stem.weight) == pytest.approx(0.02, rel=0.1) and np.all(stem.bias == 0)
    assert np.all(convnext.features[1][0].layer_scale == np.float32(1e-6))


@pytest.mark.parametrize("name", list(BUILDERS))
def test_pretrained_weights_are_refused_with_a_way_to_load_them(name):
    with pytest.raises(ValueError, match="architectures only.*load_state_dict"):
        BUILDERS[name](weights="IMAGENET1K_V1")


def test_save_load_round_trip(tmp_path, rng):
    model, reference = pair("mobilenet_v2", seed=4)
    path = tmp_path / "mobilenet_v2.safetensors"
    npconv.save(model.state_dict(), path)
    fresh = models.mobilenet_v2(num_classes=NUM_CLASSES)
    fresh.load_state_dict(npconv.load(path))
    for (key, got), want in zip(fresh.state_dict().items(), model.state_dict().values()):
        np.testing.assert_array_equal(got, want, err_msg=key)
    x = images(rng, np.float32, size=32)
    np.testing.assert_array_equal(fresh.eval()(x), model.eval()(x))
