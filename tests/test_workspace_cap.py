"""The workspace cap holds: every algorithm, forced, forward and backward, keeps the scratch it
holds at once (tracemalloc's peak beyond the array it returns) under npconv.set_workspace_limit,
or refuses before any work with a ValueError naming the smallest cap that would do.

NumPy reports its allocations to tracemalloc; Numba's and pocketfft's internal buffers are not
seen, so depthwise_jit's and FFT's accounting is checked on its own below.
"""

import math
import re
import tracemalloc

import numpy as np
import pytest
from helpers import on_ci

import npconv
import npconv.grad as G
from npconv import select, workspace
from npconv.algorithms import depthwise_jit, fft, fft_grad, winograd
from npconv.spec import ConvSpec

MiB = 2**20
CAPS = (1 * MiB, 8 * MiB, 64 * MiB, 256 * MiB)
# index tables, box and run objects, NumPy's ufunc buffers: measured up to 0.3 MiB
SLACK = MiB
REFUSAL = re.compile(r"workspace limit (\d+) bytes \(.+\) is too small for this convolution: (\w+) needs at "
                     r"least (\d+) bytes \(.+\).*; npconv\.set_workspace_limit\((\d+)\)$")


@pytest.fixture(autouse=True)
def restore_cap_and_planner():
    previous = workspace.limit()
    yield
    workspace.set_workspace_limit(previous)
    select.set_algorithm(None)
    workspace.release()


@pytest.fixture(scope="module", autouse=True)
def warm_up():
    """Every algorithm once on tiny operands: the modules they import on first use (SciPy's
    BLAS and FFT, Numba's compiled kernels) are not a call's scratch."""
    rng = np.random.default_rng(0)
    for x_shape, w_shape, kwargs in [((1, 4, 9, 9), (4, 1, 3, 3), dict(padding=1, groups=4)),
                                     ((1, 4, 9, 9), (4, 4, 3, 3), dict(padding=1)),
                                     ((1, 4, 9, 9), (4, 4, 1, 1), dict(stride=2)),
                                     ((1, 4, 9), (4, 4, 3), dict(padding=1, padding_mode="reflect")),
                                     ((1, 4, 9, 9), (4, 4, 3, 3), dict(stride=2, transposed=True))]:
        for name in [None, *select.ALGORITHMS]:
            select.set_algorithm(name)
            for run, _ in _runs(x_shape, w_shape, kwargs).values():
                run()
    select.set_algorithm(None)


def _allocation(array) -> np.ndarray:
    """The array a result is a view of: its bytes are the result's, not scratch."""
    while isinstance(array.base, np.ndarray):
        array = array.base
    return array


def traced(run):
    """(result or None, ValueError or None, peak traced bytes beyond the result) of ``run()``,
    with no scratch buffers kept from earlier calls."""
    workspace.release()
    tracemalloc.start()
    try:
        result, error = run(), None
    except ValueError as refusal:
        result, error = None, refusal
    finally:
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    return result, error, peak - (0 if result is None else _allocation(result).nbytes)


def assert_cap_holds(run, cap, allowance=0) -> int:
    """Scratch <= cap + SLACK + allowance; or a refusal, before any work, naming a cap under
    which it then holds.  Returns the scratch measured."""
    workspace.set_workspace_limit(cap)
    _, error, scratch = traced(run)
    if error is not None:
        match = REFUSAL.search(str(error))
        assert match and int(match.group(1)) == cap, error
        assert scratch <= SLACK, f"refused after {scratch / MiB:.2f} MiB of work"
        cap = int(match.group(4))
        assert cap > workspace.limit()
        workspace.set_workspace_limit(cap)
        _, error, scratch = traced(run)
        assert error is None, f"refused again at the cap it named: {error}"
    assert scratch <= cap + SLACK + allowance, f"{scratch / MiB:.2f} MiB of scratch under a {cap / MiB:.3g} MiB cap"
    return scratch


# ---- every algorithm, forced, on a grid of shapes and caps ------------------------------

def _f32(rng, shape):
    return rng.standard_normal(shape).astype(np.float32)


# (name, input shape, weight shape, keyword arguments of npconv.conv)
CASES = [
    ("dense 3x3", (2, 32, 40, 40), (48, 32, 3, 3), dict(padding=1)),
    ("strided 5x5", (1, 48, 33, 33), (64, 48, 5, 5), dict(stride=2, padding=2)),
    ("1x1 stride 2", (2, 96, 24, 24), (128, 96, 1, 1), dict(stride=2)),
    ("depthwise x2 reflect", (2, 24, 48, 48), (48, 1, 5, 5), dict(padding=2, groups=24, padding_mode="reflect")),
    ("grouped dilated circular", (2, 16, 30, 30), (32, 4, 3, 3),
     dict(padding=2, dilation=2, groups=4, padding_mode="circular")),
    ("1-D", (2, 16, 3000), (24, 16, 9), dict(padding=4)),
    ("3-D", (1, 8, 8, 12, 12), (16, 8, 3, 3, 3), dict(padding=1)),
    ("transposed stride 2", (1, 32, 20, 20), (32, 16, 4, 4), dict(stride=2, padding=1, transposed=True)),
    ("transposed stride 1", (1, 24, 20, 20), (24, 16, 3, 3), dict(padding=1, transposed=True)),
]


def _spec(w_shape, kwargs):
    return ConvSpec.build(w_shape[2:], kwargs.get("stride", 1), kwargs.get("padding", 0), kwargs.get("dilation", 1),
                          kwargs.get("groups", 1), kwargs.get("padding_mode", "zeros"),
                          kwargs.get("transposed", False), ndim=len(w_shape) - 2)


def _runs(x_shape, w_shape, kwargs):
    """{direction: (run, allowance)}: the forward and both gradients on fixed random operands.
    The allowance is core.as_forward_convolution's flipped copy of the weight, made where a
    stride-1 transposed convolution runs as a plain one (also the input gradient of a stride-1
    convolution); the copy belongs to the caller's operands, not to an algorithm."""
    rng = np.random.default_rng(len(x_shape) + sum(w_shape))
    x, w = _f32(rng, x_shape), _f32(rng, w_shape)
    gy = _f32(rng, npconv.conv(x, w, **kwargs).shape)
    stride_1, transposed = _spec(w_shape, kwargs).stride == (1,) * (len(w_shape) - 2), kwargs.get("transposed")
    flip = w.nbytes if stride_1 and kwargs.get("padding_mode", "zeros") == "zeros" else 0
    return {"forward": (lambda: npconv.conv(x, w, **kwargs), flip if transposed else 0),
            "input": (lambda: G.conv_input(x.shape, w, gy, **kwargs), 0 if transposed else flip),
            "weight": (lambda: G.conv_weight(x, w.shape, gy, **kwargs), 0)}


GRID = [(case, name, direction) for case in CASES
        for name in [None] + select.candidates(_spec(case[2], case[3]), case[1], case[2])
        for direction in ("forward", "input", "weight")]


@pytest.mark.parametrize("case,name,direction", GRID,
                         ids=[f"{c[0]}-{n or 'planner'}-{d}" for c, n, d in GRID])
def test_every_algorithm_keeps_its_scratch_under_every_cap(case, name, direction):
    _, x_shape, w_shape, kwargs = case
    run, allowance = _runs(x_shape, w_shape, kwargs)[direction]
    select.set_algorithm(name)
    for cap in CAPS:
        assert_cap_holds(run, cap, allowance)


# ---- the audit's cases ------------------------------------------------------------------

def test_transposed_stride_2_large_kernel_at_the_default_cap():
    """Full size: the whole image's columns (C_out * 121 per input position) took 505 MiB."""
    rng = np.random.default_rng(0)
    x, w = _f32(rng, (1, 64, 128, 128)), _f32(rng, (64, 64, 11, 11))
    scratch = assert_cap_holds(lambda: npconv.conv(x, w, stride=2, transposed=True), 256 * MiB)
    assert scratch <= 16 * MiB  # boxes of input rows near the cache-sized target


@pytest.mark.parametrize("direction", ["input", "weight"])
def test_backward_of_a_wide_strided_layer(direction):
    """Conv2d(512, 512, 7, stride=2): its input gradient (GEMM + col2im) held one image's
    columns, 486 MiB at 128 x 128; at 64 x 64 that is 137 MiB, here under a 64 MiB cap (and
    8 MiB for the input gradient: the weight gradient's boxes then each add into all 49 MiB of
    the gradient, which is slow rather than interesting)."""
    rng = np.random.default_rng(1)
    x, w = _f32(rng, (1, 512, 64, 64)), _f32(rng, (512, 512, 7, 7))
    gy = _f32(rng, npconv.conv(x, w, stride=2).shape)
    run = {"input": lambda: G.conv_input(x.shape, w, gy, stride=2),
           "weight": lambda: G.conv_weight(x, w.shape, gy, stride=2)}[direction]
    for cap in (64 * MiB, 8 * MiB)[:2 if direction == "input" else 1]:
        assert_cap_holds(run, cap)


def test_a_buffer_sized_by_c_out_is_counted():
    """3x3, 1 -> 256 channels on 64 x 4096 at 1 MiB: the windows are 36 bytes per output, the
    GEMM's result 1 KiB; the result used to be staged in a scratch of whole rows (31 MiB)."""
    rng = np.random.default_rng(2)
    x, w = _f32(rng, (1, 1, 64, 4096)), _f32(rng, (256, 1, 3, 3))
    for name in (None, "im2col_gemm"):
        select.set_algorithm(name)
        assert_cap_holds(lambda: npconv.conv(x, w, padding=1), MiB)


@pytest.mark.parametrize("name", [None, "im2col_gemm", "depthwise_direct", "depthwise_jit", "winograd_f2",
                                  "winograd_f4"])
def test_a_buffer_sized_by_c_out_is_counted_by_every_algorithm(name):
    """The same 1 -> 256 layer, every candidate forced (a smaller map: Winograd's 1 MiB chunks
    are a few tiles each), forward and weight gradient."""
    rng = np.random.default_rng(3)
    x, w = _f32(rng, (1, 1, 16, 1024)), _f32(rng, (256, 1, 3, 3))
    gy = _f32(rng, (1, 256, 16, 1024))
    select.set_algorithm(name)
    assert_cap_holds(lambda: npconv.conv(x, w, padding=1), MiB)
    assert_cap_holds(lambda: G.conv_weight(x, w.shape, gy, padding=1), MiB)


def test_a_single_output_row_larger_than_the_cap():
    """9x9, 64 channels on 9 x 4096 at 1 MiB: one output row's windows are 81 MiB, so boxes
    are runs of columns of that row (they were whole rows: 83 MiB)."""
    rng = np.random.default_rng(4)
    x, w = _f32(rng, (1, 64, 9, 4096)), _f32(rng, (64, 64, 9, 9))
    for name in [None] + select.candidates(_spec(w.shape, {}), x.shape, w.shape):
        select.set_algorithm(name)
        assert_cap_holds(lambda: npconv.conv(x, w), MiB)


@pytest.mark.parametrize("name", ["winograd_f2", "winograd_f4"])
def test_winograd_chunks_scale_with_c_out(name):
    """32 -> 512 channels at 8 MiB: chunks sized by C_in alone held products and outputs 16
    times larger (58 MiB)."""
    rng = np.random.default_rng(5)
    x, w = _f32(rng, (1, 32, 64, 64)), (_f32(rng, (512, 32, 3, 3)) / 17).astype(np.float32)
    select.set_algorithm(name)
    assert_cap_holds(lambda: npconv.conv(x, w, padding=1), 8 * MiB)
    m = int(name[-1])
    per_tile = winograd._tile_bytes(_spec(w.shape, {}), x.shape, w.shape, m, 4)
    assert per_tile > (m + 2) ** 2 * 512 * 4  # the product alone is a^n * C_out per tile


# ---- refusals ---------------------------------------------------------------------------

def test_refused_before_any_work_naming_the_smallest_cap():
    """4096 channels of 9x9: one output's windows are 1.3 MB, and no algorithm needs less."""
    rng = np.random.default_rng(6)
    x, w = _f32(rng, (1, 4096, 9, 9)), _f32(rng, (1, 4096, 9, 9))
    workspace.set_workspace_limit(MiB)
    _, error, scratch = traced(lambda: npconv.conv(x, w))
    match = REFUSAL.search(str(error))
    assert match and scratch <= 64 * 2**10, (error, scratch)
    least = int(match.group(4))
    assert least == int(match.group(3)) >= 4096 * 81 * 4
    workspace.set_workspace_limit(least - 1)
    with pytest.raises(ValueError, match=rf"npconv\.set_workspace_limit\({least}\)"):
        npconv.conv(x, w)
    workspace.set_workspace_limit(least)
    y, error, scratch = traced(lambda: npconv.conv(x, w))
    assert error is None and scratch <= least + SLACK
    np.testing.assert_allclose(y, np.einsum("nchw,ochw->no", x, w)[:, :, None, None], rtol=1e-4)


def test_the_refusal_names_every_algorithm_with_its_least():
    with pytest.raises(ValueError) as info:
        workspace.set_workspace_limit(MiB)
        workspace.require({"fft": 5 * MiB, "im2col_gemm": 3 * MiB})
    assert str(info.value) == ("workspace limit 1048576 bytes (1 MiB) is too small for this convolution: "
                               "im2col_gemm needs at least 3145728 bytes (3 MiB), fft 5 MiB; "
                               "npconv.set_workspace_limit(3145728)")
    workspace.require({"im2col_gemm": MiB})  # fits exactly: no refusal


# ---- the planner (select.py) leaves out what does not fit --------------------------------

def test_the_planner_falls_back_where_its_choice_does_not_fit():
    """Winograd's transformed 512 x 512 weight alone is 36 MiB: under 8 MiB the planner
    takes im2col + GEMM instead, and the layer runs within the cap."""
    rng = np.random.default_rng(7)
    spec = ConvSpec.build((3, 3), padding=1)
    x, w = _f32(rng, (1, 512, 32, 32)), _f32(rng, (512, 512, 3, 3))
    assert npconv.choose_algorithm(spec, x.shape, w.shape) == "winograd_f4"
    workspace.set_workspace_limit(8 * MiB)
    assert winograd.min_workspace_f4(spec, x.shape, w.shape, 4) > 8 * MiB
    assert npconv.choose_algorithm(spec, x.shape, w.shape) == "im2col_gemm"
    _, error, scratch = traced(lambda: npconv.conv(x, w, padding=1))
    assert error is None and scratch <= 8 * MiB + SLACK


@pytest.mark.skipif(not depthwise_jit.available() and not on_ci(), reason="Numba is not installed")
def test_the_compiled_depthwise_kernel_is_left_out_where_its_jobs_do_not_fit():
    """Every running job holds the rows of its planes that it reads: 65536-wide rows need 2.5 MiB."""
    spec = ConvSpec.build((3, 3), padding=1, groups=32)
    x_shape, w_shape = (1, 32, 64, 65536), (32, 1, 3, 3)
    assert npconv.choose_algorithm(spec, x_shape, w_shape) == "depthwise_jit"
    workspace.set_workspace_limit(MiB)
    assert depthwise_jit.min_workspace(spec, x_shape, w_shape, 4) > MiB
    assert npconv.choose_algorithm(spec, x_shape, w_shape) == "depthwise_direct"


@pytest.mark.skipif(not depthwise_jit.available() and not on_ci(), reason="Numba is not installed")
@pytest.mark.parametrize("grad", [False, True])
def test_the_compiled_kernels_row_chunks_keep_numbas_scratch_under_the_cap(grad):
    """Numba's tiles are invisible to tracemalloc: the chunking is checked on its accounting."""
    spec = ConvSpec.build((5, 5), padding=2, groups=8)
    x_shape, w_shape = (1, 8, 64, 32768), (8, 1, 5, 5)
    layout = depthwise_jit._layout(spec, x_shape)
    partial = 8 * 25 * 8 if grad else 0
    balanced = depthwise_jit._row_chunks((1, 8) + layout.out_hw, not grad)
    least = (depthwise_jit.weight_grad_min_workspace if grad else depthwise_jit.min_workspace)(
        spec, x_shape, w_shape, 4)
    assert MiB < least < 9 * MiB  # one-row jobs on every thread (and the gradient's sums)
    for cap in (least, 2 * least, 64 * MiB):
        workspace.set_workspace_limit(cap)
        chunks = depthwise_jit._chunks_under_cap(layout.out_hw[0], balanced, layout, 4, cap, partial)
        assert chunks >= balanced and (cap > least or chunks > balanced)
        assert depthwise_jit._jobs_bytes(layout, chunks, 4, partial) <= cap
    assert depthwise_jit._chunks_under_cap(layout.out_hw[0], balanced, layout, 4, 256 * MiB, partial) == balanced


def test_fft_counts_what_tracemalloc_sees_and_more():
    """FFT's planned workspace (the layout it picks under the cap: whole map or blocks, and the
    spectrum it keeps) is its largest stage, counted buffer by buffer: never below the measure,
    but for index tables and the like (64 KiB); min_workspace is the least layout's."""
    rng = np.random.default_rng(8)
    for x_shape, w_shape, kwargs in [((2, 16, 40, 40), (16, 1, 9, 9), dict(padding=4, groups=16)),
                                     ((2, 8, 40, 40), (12, 8, 7, 7), dict(padding=3, padding_mode="reflect")),
                                     ((2, 8, 3000), (16, 1, 31), dict(padding=15, dilation=2, groups=8))]:
        x, w = _f32(rng, x_shape), _f32(rng, w_shape)
        spec = _spec(w_shape, kwargs)
        select.set_algorithm("fft")
        _, error, scratch = traced(lambda: npconv.conv(x, w, **kwargs))
        assert error is None and scratch <= fft.planned_workspace(spec, x_shape, w_shape, 4) + 64 * 2**10
        assert fft.min_workspace(spec, x_shape, w_shape, 4) <= fft.planned_workspace(spec, x_shape, w_shape, 4)
        if kwargs.get("groups", 1) == x_shape[1]:
            gy = _f32(rng, npconv.conv(x, w, **kwargs).shape)
            _, error, scratch = traced(lambda: G.conv_weight(x, w.shape, gy, **kwargs))
            assert error is None and scratch <= fft_grad.planned_weight_grad_workspace(spec, x_shape, w_shape, 4) + 64 * 2**10


# ---- buffers kept between calls ---------------------------------------------------------

def test_kept_buffers_follow_the_cap():
    rng = np.random.default_rng(9)
    x, w = _f32(rng, (2, 64, 56, 56)), _f32(rng, (64, 64, 3, 3))
    workspace.release()
    npconv.conv(x, w, padding=1)  # Winograd under the default cap keeps a few MiB
    assert workspace.kept_bytes() > MiB
    workspace.set_workspace_limit(MiB)  # lowering the cap trims what is kept at once
    assert workspace.kept_bytes() <= MiB
    npconv.conv(x, w, padding=1)
    assert workspace.kept_bytes() <= MiB


def test_scratch_keeps_the_most_recent_buffers_under_the_cap():
    workspace.release()
    workspace.set_workspace_limit(MiB)
    first = workspace.scratch("first", (600 * 2**10,), np.uint8)
    second = workspace.scratch("second", (600 * 2**10,), np.uint8)
    assert workspace.kept_bytes() == second.nbytes  # "first" was dropped (still usable: first[:] is alive)
    first[:] = 1
    assert not np.shares_memory(workspace.scratch("first", (10,), np.uint8), first)
    big = workspace.scratch("big", (2 * MiB,), np.uint8)  # over the cap: handed out, never kept
    assert big.nbytes == 2 * MiB and "big" not in workspace._buffers()
    workspace.make_room(MiB - 100)
    assert workspace.kept_bytes() <= 100


def test_a_buffer_kept_under_a_larger_cap_is_not_reused_above_the_new_one():
    workspace.release()
    large = workspace.scratch("reused", (4 * MiB,), np.uint8)
    workspace.set_workspace_limit(2 * MiB)
    small = workspace.scratch("reused", (10,), np.uint8)
    assert not np.shares_memory(large, small) and workspace.kept_bytes() <= 2 * MiB


def test_boxes_cover_the_index_space_once():
    """The coarsest boxes: whole images, else runs of rows, else of columns, else cells."""
    for shape, budget in [((3, 5, 7), 7 * 4), ((3, 5, 7), 36 * 4), ((3, 5, 7), 3), ((2, 4, 6), 1000), ((0, 4), 1)]:
        boxes = workspace.boxes(shape, workspace.linear(4, budget))
        seen = np.zeros(shape, int)
        for box in boxes:
            seen[box] += 1
            assert math.prod(workspace.extents(box)) * 4 <= max(budget, 4)
        assert (seen == 1).all() and len(list(boxes)) == len(boxes)
    assert len(workspace.boxes((3, 5, 7), workspace.linear(4, 1000))) == 1
