"""The containers (Sequential with names, Residual, Concat) and the Module plumbing (buffers,
named_modules, deep copies) against torch.nn built with the same weights."""

import copy
from collections import OrderedDict

import numpy as np
import pytest
import torch

import npconv.nn as nn
from conftest import assert_matches


def _load_from_torch(ours, theirs):
    ours.load_state_dict({k: v.detach().numpy() for k, v in theirs.state_dict().items()})


class TorchBlock(torch.nn.Module):
    """A ResNet basic block without normalisation, written as torchvision writes it."""

    def __init__(self, c_in, c_out, stride):
        super().__init__()
        self.conv1 = torch.nn.Conv2d(c_in, c_out, 3, stride, 1)
        self.relu = torch.nn.ReLU()
        self.conv2 = torch.nn.Conv2d(c_out, c_out, 3, 1, 1)
        self.downsample = (torch.nn.Sequential(torch.nn.Conv2d(c_in, c_out, 1, stride))
                           if stride != 1 or c_in != c_out else None)

    def forward(self, x):
        out = self.conv2(self.relu(self.conv1(x)))
        return self.relu(out + (x if self.downsample is None else self.downsample(x)))


def _our_block(c_in, c_out, stride, dtype):
    body = OrderedDict(conv1=nn.Conv2d(c_in, c_out, 3, stride, 1, dtype=dtype), relu=nn.ReLU(),
                       conv2=nn.Conv2d(c_out, c_out, 3, 1, 1, dtype=dtype))
    shortcut = ({"downsample": nn.Sequential(nn.Conv2d(c_in, c_out, 1, stride, dtype=dtype))}
                if stride != 1 or c_in != c_out else None)
    return nn.Residual(body, shortcut, after=nn.ReLU())


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("c_in,c_out,stride", [(3, 3, 1), (3, 5, 2)])
def test_residual_block_matches_torch_forward_and_backward(c_in, c_out, stride, dtype, rng):
    torch.manual_seed(0)
    theirs = TorchBlock(c_in, c_out, stride).to(torch.float64 if dtype == np.float64 else torch.float32)
    ours = _our_block(c_in, c_out, stride, dtype)
    assert list(ours.state_dict()) == list(theirs.state_dict())
    _load_from_torch(ours, theirs)
    net, torch_net = nn.Sequential(nn.Conv2d(2, c_in, 1, dtype=dtype), ours), torch.nn.Sequential(
        torch.nn.Conv2d(2, c_in, 1), theirs).to(theirs.conv1.weight.dtype)
    _load_from_torch(net, torch_net)
    x = rng.standard_normal((2, 2, 7, 6)).astype(dtype)
    tx = torch.from_numpy(x).requires_grad_()
    y, y_t = net(x), torch_net(tx)
    assert_matches(y, y_t, dtype, "output")
    gy = rng.standard_normal(y.shape).astype(dtype)
    y_t.backward(torch.from_numpy(gy))
    assert_matches(net.backward(gy), tx.grad, dtype, "input grad")
    for (name, p), (_, tp) in zip(net.named_parameters(), torch_net.named_parameters()):
        assert_matches(p.grad, tp.grad, dtype, name)


def test_concat_matches_torch_and_keeps_channels_last(rng):
    torch.manual_seed(1)
    t_branches = [torch.nn.Conv2d(3, 4, 1).double(), torch.nn.Conv2d(3, 2, 3, padding=1).double()]
    ours = nn.Concat({"branch1x1": nn.Conv2d(3, 4, 1, dtype=np.float64),
                      "branch3x3": nn.Conv2d(3, 2, 3, padding=1, dtype=np.float64)})
    assert list(ours.state_dict())[:2] == ["branch1x1.weight", "branch1x1.bias"]
    ours.load_state_dict({f"{name}.{k}": v.detach().numpy() for name, b in zip(("branch1x1", "branch3x3"), t_branches)
                          for k, v in b.state_dict().items()})
    x = rng.standard_normal((2, 3, 5, 4))
    tx = torch.from_numpy(x).requires_grad_()
    y_t = torch.cat([b(tx) for b in t_branches], 1)
    channels_last = np.moveaxis(np.ascontiguousarray(np.moveaxis(x, 1, -1)), -1, 1)
    y = ours(channels_last)
    assert np.moveaxis(y, 1, -1).flags.c_contiguous
    assert_matches(y, y_t, np.float64)
    gy = rng.standard_normal(y.shape)
    y_t.backward(torch.from_numpy(gy))
    assert_matches(ours.backward(gy), tx.grad, np.float64)
    assert repr(ours).startswith("Concat(\n  dim=1\n  (branch1x1): Conv2d(3, 4")


def test_sequential_takes_an_ordered_dict_and_names_modules_as_torch():
    ours = nn.Sequential(OrderedDict(conv=nn.Conv2d(1, 2, 3), act=nn.ReLU(), inner=nn.Sequential(nn.Linear(2, 2))))
    theirs = torch.nn.Sequential(OrderedDict(conv=torch.nn.Conv2d(1, 2, 3), act=torch.nn.ReLU(),
                                             inner=torch.nn.Sequential(torch.nn.Linear(2, 2))))
    assert [n for n, _ in ours.named_modules()] == [n for n, _ in theirs.named_modules()]
    assert [n for n, _ in ours.named_children()] == [n for n, _ in theirs.named_children()]
    assert list(ours.state_dict()) == list(theirs.state_dict())
    seen = []
    ours.apply(lambda m: seen.append(type(m).__name__))
    assert seen == ["Conv2d", "ReLU", "Linear", "Sequential", "Sequential"]


class WithBuffers(nn.Module):
    def __init__(self):
        super().__init__()
        self.weight = nn.Parameter(np.ones(2))
        self.register_buffer("running", np.zeros(2))
        self.register_buffer("scratch", np.zeros(3), persistent=False)
        self.child = nn.Linear(2, 1)


def test_buffers_are_state_in_torch_order_and_deep_copies_are_independent():
    module = WithBuffers()
    assert list(module.state_dict()) == ["weight", "running", "child.weight", "child.bias"]
    assert [n for n, _ in module.named_buffers()] == ["running", "scratch"]
    module.running = np.array([1.0, 2.0])  # assignment replaces the buffer, as in torch
    assert module.state_dict()["running"].tolist() == [1.0, 2.0]
    module.load_state_dict({"weight": [3.0, 4.0], "running": [5.0, 6.0], "child.weight": [[1.0, 1.0]],
                            "child.bias": [0.0]})
    assert module.running.tolist() == [5.0, 6.0]
    module.weight.grad = np.ones(2)
    twin = copy.deepcopy(module)
    twin.running[...] = 0
    twin.weight[...] = 0
    assert module.running.tolist() == [5.0, 6.0] and module.weight.tolist() == [3.0, 4.0]
    assert isinstance(twin.weight, nn.Parameter) and twin.weight.grad.tolist() == [1.0, 1.0]
    with pytest.raises(ValueError, match=r"size mismatch for running"):
        module.load_state_dict({**module.state_dict(), "running": np.zeros(3)})
    with pytest.raises(KeyError, match="already exists"):
        module.register_buffer("weight", np.zeros(1))


def test_containers_refuse_what_is_not_a_module():
    with pytest.raises(TypeError, match="'0' is of type int, not an npconv.nn.Module"):
        nn.Sequential(3)
    with pytest.raises(ValueError, match="at least one module"):
        nn.Concat([])


def test_one_module_in_two_places_is_refused_and_tied_parameters_count_once():
    shared = nn.Linear(2, 2)
    with pytest.raises(ValueError, match=r"module '2' \(Linear\) is already at '0'"):
        nn.Sequential(shared, nn.Tanh(), shared)
    with pytest.raises(ValueError, match=r"module '1.0' \(Linear\) is already at '0.0'"):
        nn.Sequential(nn.Sequential(shared), nn.Sequential(shared))
    with pytest.raises(ValueError, match="already at"):
        nn.Residual({"a": shared}, {"b": shared})
    first, second = nn.Linear(2, 2), nn.Linear(2, 2)
    second.weight = first.weight  # tied weights, as torch allows: one parameter, stepped once
    model = nn.Sequential(first, second)
    assert [name for name, _ in model.named_parameters()] == ["0.weight", "0.bias", "1.bias"]


@pytest.mark.parametrize("layer,torch_layer", [
    (lambda: nn.LayerNorm(6, elementwise_affine=False), lambda: torch.nn.LayerNorm(6, elementwise_affine=False)),
    (lambda: nn.GroupNorm(2, 4, affine=False), lambda: torch.nn.GroupNorm(2, 4, affine=False)),
    (lambda: nn.Tanh(), lambda: torch.nn.Tanh()), (lambda: nn.Sigmoid(), lambda: torch.nn.Sigmoid())],
    ids=["LayerNorm", "GroupNorm", "Tanh", "Sigmoid"])
def test_an_inplace_layer_after_cannot_change_what_backward_reads(layer, torch_layer, rng):
    x = rng.standard_normal((3, 4, 5, 6))
    ours = nn.Sequential(layer(), nn.SiLU(inplace=True))
    theirs = torch.nn.Sequential(torch_layer(), torch.nn.SiLU()).double()  # torch refuses the in-place form
    tx = torch.from_numpy(x).requires_grad_()
    y_t = theirs(tx)
    y = ours(x)
    assert_matches(y, y_t, np.float64)
    gy = rng.standard_normal(y.shape)
    y_t.backward(torch.from_numpy(gy))
    assert_matches(ours.backward(gy), tx.grad, np.float64)


def test_concat_promotes_as_torch_cat():
    mixed = nn.Concat([nn.Conv2d(1, 1, 1), nn.Conv2d(1, 1, 1, dtype=np.float64)])
    assert mixed(np.ones((1, 1, 2, 2), np.float32)).dtype == np.float64
