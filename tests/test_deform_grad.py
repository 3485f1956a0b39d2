"""Gradients of deformable convolution (issue 16): ``npconv.ops.deform_conv2d_backward``'s five
fields against float64 central differences of ``sum(grad_output * deform_conv2d(...))``.

Sampling is bilinear in each unit cell, with kinks on the integer lines and at the -1 / H, -1 / W
borders; the cases draw offsets whose fractional part stays ``MARGIN`` away from 0 and 1 (every
base coordinate is an integer), so a perturbation of ``EPS`` stays inside one smooth piece and the
central difference is exact but for rounding.  Input, offset and mask carry a batch axis: their
perturbations are stacked along it and evaluated in one forward call.  Each tensor is checked
entry by entry (all entries, or a random subset of the big ones) and along random directions.

Run with ``-s`` to see the worst relative error per gradient (kept in :data:`WORST`).
"""

import numpy as np
import pytest

from conftest import relative_error
from deform_reference import DeformCase, as_pair, random_deform_case, torch_deform_conv2d
from npconv import ops

EPS = 1e-6
MARGIN = 1e-2  # >> EPS * the largest direction entry (~4e-6)
FD_TOLERANCE = 1e-6  # max |fd - grad| <= FD_TOLERANCE * max |grad|
MAX_ENTRIES = 400  # per tensor; more than this: a random subset (the directions cover the rest)
FIELDS = ("input", "offset", "mask", "weight", "bias")
WORST: dict[str, float] = {}  # "field" / "field (direction)" -> worst relative error so far

SEEDS = range(8)
CASES = {seed: random_deform_case(np.random.default_rng(4000 + seed), masked=seed % 2 == 0,
                                  with_bias=seed % 3 != 2, offset_scale=2.0, margin=MARGIN, max_size=6)
         for seed in SEEDS}
IDS = [f"{seed}-{CASES[seed].label}" for seed in SEEDS]


def grad_output(case: DeformCase) -> np.ndarray:
    n, c_out = case.input.shape[0], case.weight.shape[0]
    return np.random.default_rng(7).standard_normal((n, c_out) + case.out_size)


def backward(case: DeformCase, gy: np.ndarray):
    return ops.deform_conv2d_backward(gy, case.input, case.offset, case.weight, **case.kwargs())


def sample_points(case: DeformCase) -> tuple[np.ndarray, np.ndarray]:
    """(y, x) of every tap's sample, each (N, G, kh*kw, oh, ow)."""
    kh, kw = case.weight.shape[2:]
    (sh, sw), (ph, pw), (dh, dw) = as_pair(case.stride), as_pair(case.padding), as_pair(case.dilation)
    oh, ow = case.out_size
    n, g = case.offset.shape[0], case.offset_groups
    off = case.offset.reshape(n, g, kh * kw, 2, oh, ow)
    i, j = np.divmod(np.arange(kh * kw), kw)
    y = (np.arange(oh) * sh - ph)[:, None] + (i * dh)[:, None, None] + off[:, :, :, 0]
    x = (np.arange(ow) * sw - pw)[None, :] + (j * dw)[:, None, None] + off[:, :, :, 1]
    return y, x


def record(name: str, error: float) -> float:
    WORST[name] = max(WORST.get(name, 0.0), error)
    return error


# ---- central differences ------------------------------------------------------------------------
def objective(case: DeformCase, gy: np.ndarray, **replaced) -> float:
    arrays = dict(input=case.input, offset=case.offset, weight=case.weight, **case.kwargs())
    arrays.update(replaced)
    return float(np.sum(gy * ops.deform_conv2d(**arrays)))


def fd_batched(case: DeformCase, gy: np.ndarray, name: str, entries: np.ndarray) -> np.ndarray:
    """Central differences wrt ``case.<name>`` (input, offset or mask) at flat ``entries``: batch
    element k of one forward call holds sample n_k of every operand with entry k moved by
    +EPS (the first half) or -EPS (the second)."""
    tensor = getattr(case, name)
    where = np.unravel_index(entries, tensor.shape)
    rows = np.concatenate([where[0], where[0]])  # the sample each batch element copies
    batched = {key: None if getattr(case, key) is None else getattr(case, key)[rows].copy()
               for key in ("input", "offset", "mask")}
    k = np.arange(len(entries))
    sign = np.concatenate([np.full(len(k), EPS), np.full(len(k), -EPS)])
    batched[name][(np.concatenate([k, k + len(k)]),) + tuple(np.concatenate([w, w]) for w in where[1:])] += sign
    out = ops.deform_conv2d(batched["input"], batched["offset"], case.weight, case.bias, case.stride,
                            case.padding, case.dilation, batched["mask"])
    f = np.sum(out * gy[rows], axis=(1, 2, 3))
    return (f[:len(k)] - f[len(k):]) / (2 * EPS)


def fd_looped(case: DeformCase, gy: np.ndarray, name: str, entries: np.ndarray) -> np.ndarray:
    """Central differences wrt ``case.<name>`` (weight or bias) at flat ``entries``, one pair of
    forward calls each."""
    tensor, out = getattr(case, name), []
    for entry in entries:
        step = np.zeros(tensor.size)
        step[entry] = EPS
        step = step.reshape(tensor.shape)
        out.append((objective(case, gy, **{name: tensor + step}) - objective(case, gy, **{name: tensor - step}))
                   / (2 * EPS))
    return np.array(out)


def chosen_entries(size: int, seed: int) -> np.ndarray:
    if size <= MAX_ENTRIES:
        return np.arange(size)
    return np.sort(np.random.default_rng(seed).choice(size, MAX_ENTRIES, replace=False))


@pytest.mark.parametrize("seed", SEEDS, ids=IDS)
@pytest.mark.parametrize("field", FIELDS)
def test_gradient_entries_match_central_differences(seed, field):
    case = CASES[seed]
    gy = grad_output(case)
    grad = getattr(backward(case, gy), field)
    if getattr(case, field) is None:
        assert grad is None
        return
    entries = chosen_entries(grad.size, seed)
    fd = (fd_looped if field in ("weight", "bias") else fd_batched)(case, gy, field, entries)
    scale = max(np.abs(grad).max(), 1e-300)
    error = record(field, float(np.abs(grad.reshape(-1)[entries] - fd).max() / scale))
    assert error <= FD_TOLERANCE, f"{field}: max |fd - grad| = {error:.2e} * max |grad|"


@pytest.mark.parametrize("seed", SEEDS, ids=IDS)
def test_gradients_along_random_directions(seed):
    """d/dt sum(gy * f(p + t v)) at t = 0 == <grad_p, v> for a random v over each whole tensor."""
    case = CASES[seed]
    gy = grad_output(case)
    grads = backward(case, gy)
    rng = np.random.default_rng(seed)
    for field in FIELDS:
        value = getattr(case, field)
        if value is None:
            continue
        v = rng.standard_normal(value.shape)
        plus, minus = objective(case, gy, **{field: value + EPS * v}), objective(case, gy, **{field: value - EPS * v})
        fd = (plus - minus) / (2 * EPS)
        want = float(np.sum(getattr(grads, field) * v))
        error = record(f"{field} (direction)", abs(fd - want) / max(np.sum(np.abs(getattr(grads, field) * v)), 1e-300))
        assert error <= FD_TOLERANCE, f"{field}: directional derivative {fd} vs <grad, v> {want}"


# ---- the cases are the ones promised ------------------------------------------------------------
def test_cases_cover_groups_geometry_and_outside_samples():
    cases = list(CASES.values())
    assert any(c.groups > 1 for c in cases) and any(c.offset_groups > 1 for c in cases)
    assert any(as_pair(c.stride) != (1, 1) for c in cases) and any(as_pair(c.padding) != (0, 0) for c in cases)
    assert any(as_pair(c.dilation) != (1, 1) for c in cases)
    assert any(c.mask is None for c in cases) and any(c.mask is not None for c in cases)
    outside = 0
    for c in cases:
        y, x = sample_points(c)
        height, width = c.input.shape[2:]
        outside += int(np.any((y <= -1) | (y >= height) | (x <= -1) | (x >= width)))
        frac = np.concatenate([(y - np.floor(y)).ravel(), (x - np.floor(x)).ravel()])
        assert frac.min() >= MARGIN - 1e-12 and frac.max() <= 1 - MARGIN + 1e-12  # one smooth piece
    assert outside == len(cases)  # every case has samples outside the image


# ---- a second oracle: torch's autograd through grid_sample ---------------------------------------
@pytest.mark.parametrize("seed", SEEDS, ids=IDS)
def test_gradients_match_grid_sample_autograd(seed):
    """On these smooth pieces torch's grid_sample derivatives are the same functions: every entry."""
    import torch
    case = CASES[seed]
    gy = grad_output(case)
    leaves = {f: None if getattr(case, f) is None else torch.tensor(getattr(case, f), requires_grad=True)
              for f in FIELDS}
    out = torch_deform_conv2d(leaves["input"], leaves["offset"], leaves["weight"], leaves["bias"], case.stride,
                              case.padding, case.dilation, leaves["mask"])
    out.backward(torch.from_numpy(gy))
    grads = backward(case, gy)
    for field in FIELDS:
        if leaves[field] is not None:
            assert relative_error(getattr(grads, field), leaves[field].grad.numpy()) <= 1e-12, field


# ---- torchvision's convention at integer sample coordinates ------------------------------------
def test_offset_gradient_at_integer_points_is_the_floor_side():
    """Zero offsets and no padding: every sample sits on a pixel inside the image; the offset
    gradient is the derivative on the floor cell's side, the forward difference."""
    rng = np.random.default_rng(5)
    case = DeformCase(rng.standard_normal((1, 4, 6, 5)), np.zeros((1, 2 * 2 * 6, 4, 4)),
                      rng.standard_normal((3, 4, 3, 2)), None, rng.uniform(0.5, 1.5, (1, 2 * 6, 4, 4)),
                      1, 0, 1, 1, 2)
    gy = grad_output(case)
    grad = backward(case, gy).offset
    base, h, sides_differ = objective(case, gy), 1e-7, 0
    for entry in range(0, grad.size, 7):
        step = np.zeros(grad.size)
        step[entry] = h
        forward = (objective(case, gy, offset=case.offset + step.reshape(grad.shape)) - base) / h
        backward_difference = (base - objective(case, gy, offset=case.offset - step.reshape(grad.shape))) / h
        assert abs(forward - grad.reshape(-1)[entry]) <= 1e-6 * np.abs(grad).max(), entry
        sides_differ += abs(forward - backward_difference) > 1e-3 * np.abs(grad).max()
    assert sides_differ > 10  # the side matters: the check can tell the conventions apart


# ---- fields, shapes, dtypes, and float32 ---------------------------------------------------------
@pytest.mark.parametrize("dtype", [np.float64, np.float32], ids=["f64", "f32"])
@pytest.mark.parametrize("seed", [0, 2, 5])
def test_fields_shapes_and_dtypes(seed, dtype):
    case = CASES[seed].astype(dtype)
    grads = backward(case, grad_output(case).astype(dtype))
    assert isinstance(grads, ops.DeformConvGrads) and grads._fields == FIELDS
    for field in FIELDS:
        value, grad = getattr(case, field), getattr(grads, field)
        if value is None:
            assert grad is None, f"{field} gradient without a {field}"
        else:
            assert grad.shape == value.shape and grad.dtype == np.dtype(dtype), field


F32_TOLERANCE = 1e-5  # float32 gradients vs float64 ones of the same float32 values


@pytest.mark.parametrize("seed", SEEDS, ids=IDS)
def test_float32_gradients_close_to_float64(seed):
    case32 = CASES[seed].astype(np.float32)
    gy = grad_output(case32).astype(np.float32)
    case64 = case32.astype(np.float64)
    g32, g64 = backward(case32, gy), backward(case64, gy.astype(np.float64))
    for field in FIELDS:
        if getattr(case32, field) is not None:
            error = record(f"{field} (float32)", relative_error(getattr(g32, field), getattr(g64, field)))
            assert error <= F32_TOLERANCE, field


def corner_rule_gradient(image: np.ndarray, y: float, x: float) -> tuple[float, float]:
    """d(sample)/dy, d(sample)/dx by torchvision's get_coordinate_weight: the derivative of the
    floor cell's bilinear form, corners outside the image being 0, with no -1 < y < H test (so a
    point exactly on y = -1 or x = -1 has a gradient from row / column 0, though it samples 0)."""
    height, width = image.shape
    y0, x0 = int(np.floor(y)), int(np.floor(x))
    ly, lx = y - y0, x - x0
    v = [[image[r, c] if 0 <= r < height and 0 <= c < width else 0.0 for c in (x0, x0 + 1)] for r in (y0, y0 + 1)]
    return ((1 - lx) * (v[1][0] - v[0][0]) + lx * (v[1][1] - v[0][1]),
            (1 - ly) * (v[0][1] - v[0][0]) + ly * (v[1][1] - v[1][0]))


@pytest.mark.parametrize("y", [-1.0, -0.75, 0.0, 2.0, 3.0, 3.25, 4.0, 5.5])
def test_offset_gradient_at_borders_and_integers(y):
    """A 1x1 tap whose output (0, 0) samples (y, x): at the kinks (integers, the -1 / H and
    -1 / W borders) and outside, the offset gradient is torchvision's floor-cell derivative,
    zero for a point outside."""
    image = np.random.default_rng(9).standard_normal((4, 5))  # H = 4, W = 5
    gy = np.zeros((1, 1, 4, 5))
    gy[0, 0, 0, 0] = 1.0  # only output (0, 0) counts
    for x in (-1.0, -0.5, 0.0, 2.0, 4.0, 4.5, 5.0):
        offset = np.zeros((1, 2, 4, 5))
        offset[0, :, 0, 0] = y, x
        grads = ops.deform_conv2d_backward(gy, image[None, None], offset, np.ones((1, 1, 1, 1)))
        got = grads.offset[0, :, 0, 0]
        assert np.allclose(got, corner_rule_gradient(image, y, x), rtol=0, atol=1e-14), (y, x, got)


def test_report_worst_errors():
    """Prints the worst relative error per gradient over the tests run before it (``-s``)."""
    for name in sorted(WORST):
        print(f"deform grad {name:22s} worst relative error {WORST[name]:.2e}")
    assert all(error <= FD_TOLERANCE for name, error in WORST.items() if "float32" not in name)
