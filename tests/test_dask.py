"""npconv.dask against in-memory npconv (issue 17): a seeded grid of configurations, each run
under several chunkings of the Dask input, must compute what :func:`npconv.conv` computes on
the whole NumPy array, and must be lazy (a Dask array of the exact shape and dtype, built with
no computation); refusals come at call time with npconv.functional's words.

The grid: forward convs (1-D/2-D/3-D; dense, grouped, depthwise and depthwise-x2 channels;
stride 1-3, dilation 1-2, kernel 1-4; int, per-dim, per-side-pair, 'same' (also at stride > 1),
'valid', 'same_lower' and 'causal' padding; every padding_mode; with and without bias; float32 and
float64; batched and unbatched) and transposed ones (output_padding, groups, per-side pairs).
Each configuration is drawn from a seed and kept only if in-memory npconv accepts it.
"""

import numpy as np
import pytest

import npconv
import npconv.functional as F

from conftest import assert_matches
from helpers import CHANNELS, require

dask = require("dask", "npconv.dask's tests")
da = require("dask.array", "npconv.dask's tests")
ndask = require("npconv.dask", "npconv.dask's tests")

SIZES = {1: (13,), 2: (9, 8), 3: (6, 5, 6)}
PADDING_KINDS = ("int", "per-dim", "pairs", "same", "valid", "same_lower", "causal")
MODES = ("zeros", "reflect", "replicate", "circular")
N_FORWARD, N_TRANSPOSED = 42, 18
RUN = {"pairs": 0}  # (configuration, chunking) pairs checked in this session


# ---- the configurations ---------------------------------------------------------------------
def _draw_padding(kind, n, rng):
    if kind == "int":
        return int(rng.integers(0, 3))
    if kind == "per-dim":
        return tuple(int(p) for p in rng.integers(0, 3, n))
    if kind == "pairs":
        return tuple((int(lo), int(hi)) for lo, hi in rng.integers(0, 3, (n, 2)))
    return kind


def _as_setting(values):
    """An n-tuple of ints, passed as one int where all are equal (both forms get exercised)."""
    return values[0] if len(set(values)) == 1 else tuple(values)


def _forward_case(i):
    """Configuration i of the forward grid: (x, w, b, params, batched), drawn from seed i."""
    rng = np.random.default_rng(1000 + i)
    n, (c_in, c_out, groups) = (1, 2, 3)[i % 3], CHANNELS[list(CHANNELS)[(i // 3) % 4]]
    kind, dtype = PADDING_KINDS[i % 7], (np.float32, np.float64)[(i // 2) % 2]
    for _ in range(50):  # redraw until in-memory npconv accepts it
        stride = [int(s) for s in rng.integers(1, 4, n)]
        if kind.startswith("same") and i % 2 == 0:
            stride[0] = max(stride[0], 2)  # 'same' at stride > 1, npconv's extension
        params = dict(stride=_as_setting(stride), dilation=_as_setting([int(d) for d in rng.integers(1, 3, n)]),
                      padding=_draw_padding(kind, n, rng), groups=groups, padding_mode=MODES[i % 4])
        kernel = tuple(int(k) for k in rng.integers(1, 5, n))
        x = rng.standard_normal((int(rng.integers(2, 4)), c_in) + SIZES[n]).astype(dtype)
        w = rng.standard_normal((c_out, c_in // groups) + kernel).astype(dtype)
        b = rng.standard_normal(c_out).astype(dtype) if (i // 4) % 2 == 0 else None
        try:
            npconv.conv(x, w, b, **params)
        except npconv.ConvRuleError:
            continue
        return x, w, b, params, i % 5 != 4
    raise AssertionError(f"no valid draw for forward case {i}")


def _transposed_case(i):
    """Configuration i of the transposed grid (zeros padding only, as PyTorch's)."""
    rng = np.random.default_rng(5000 + i)
    n, (c_in, c_out, groups) = (1, 2, 3)[i % 3], CHANNELS[list(CHANNELS)[(i // 3) % 4]]
    dtype = (np.float32, np.float64)[(i // 2) % 2]
    for _ in range(50):
        stride = [int(s) for s in rng.integers(1, 4, n)]
        dilation = [int(d) for d in rng.integers(1, 3, n)]
        output_padding = [int(rng.integers(0, max(s, d))) for s, d in zip(stride, dilation)]
        params = dict(stride=_as_setting(stride), dilation=_as_setting(dilation), groups=groups,
                      padding=_draw_padding(("int", "per-dim", "pairs")[i % 3], n, rng),
                      output_padding=_as_setting(output_padding), transposed=True)
        kernel = tuple(int(k) for k in rng.integers(1, 5, n))
        x = rng.standard_normal((int(rng.integers(2, 4)), c_in) + tuple(s // 2 + 1 for s in SIZES[n]))
        w = rng.standard_normal((c_in, c_out // groups) + kernel)
        b = rng.standard_normal(c_out) if i % 2 == 0 else None
        x, w, b = x.astype(dtype), w.astype(dtype), None if b is None else b.astype(dtype)
        try:
            npconv.conv(x, w, b, **params)
        except npconv.ConvRuleError:
            continue
        return x, w, b, params, i % 4 != 3
    raise AssertionError(f"no valid draw for transposed case {i}")


# ---- the chunkings --------------------------------------------------------------------------
def _cuts(size, stride, rng):
    """An explicit chunk tuple for one dim, cut where a block edge is off the stride if it can be."""
    places = [c for c in range(1, size) if stride == 1 or c % stride] or list(range(1, size))
    cuts = sorted(set(int(c) for c in rng.choice(places, min(2, len(places)), replace=False))) if places else []
    edges = [0] + cuts + [size]
    return tuple(hi - lo for lo, hi in zip(edges, edges[1:]))


def chunkings(x, w, params, batched, seed):
    """{name: chunks} for the Dask input: one chunk; chunks of 1 along one spatial dim; a ragged
    last chunk; edges off the stride; chunks smaller than the halo; the batch and the channels
    split; every dim cut at random."""
    rng = np.random.default_rng(seed)
    lead, n = (2 if batched else 1), w.ndim - 2
    spatial, stride = x.shape[lead:], _per_dim(params.get("stride", 1), n)
    halo = [d * (k - 1) + 1 - s for k, s, d in zip(w.shape[2:], stride, _per_dim(params.get("dilation", 1), n))]
    whole = tuple(x.shape[:lead])
    one = int(rng.integers(n))
    ragged = tuple(max(2, s // 2 + 1) if s > 2 else s for s in spatial)
    out = {"single": x.shape,
           f"ones-dim{one}": whole + tuple(1 if d == one else s for d, s in enumerate(spatial)),
           "ragged": whole + ragged,
           "off-stride": whole + tuple(_cuts(s, st, rng) for s, st in zip(spatial, stride)),
           "under-halo": whole + tuple(max(1, h - 1) if h > 1 else 1 for h in halo),
           "channels": x.shape[:lead - 1] + (1,) + ragged,
           "mixed": tuple(_cuts(s, 2, rng) if s > 1 else s for s in x.shape)}
    if batched:
        out["batch"] = (1,) + x.shape[1:2] + ragged
    return out


def _per_dim(value, n):
    return tuple(value) if isinstance(value, tuple) else (value,) * n


# ---- the checks -----------------------------------------------------------------------------
def _refuse_compute(dsk, keys, **kwargs):
    """A Dask scheduler that fails: in force while npconv.dask builds a graph, which must not compute."""
    raise AssertionError("npconv.dask computed something while building the graph")


def _face_call(x, w, b, params, use_face):
    """npconv.dask.conv with npconv.conv's keywords, or the conv{n}d / conv_transpose{n}d face."""
    if not use_face:
        return ndask.conv(x, w, b, **params)
    n, p = w.ndim - 2, dict(params)
    if p.pop("transposed", False):
        return getattr(ndask, f"conv_transpose{n}d")(x, w, b, p["stride"], p["padding"], p["output_padding"],
                                                      p["groups"], p["dilation"])
    return getattr(ndask, f"conv{n}d")(x, w, b, p["stride"], p["padding"], p["dilation"], p["groups"],
                                       padding_mode=p["padding_mode"])


def check_lazy_and_equal(x_np, w, b, params, batched, chunks, use_face=False, scheduler="synchronous", **extra):
    """The Dask result: lazy, exact shape/dtype, N chunks as the input's, C_out in one chunk, and
    its compute equal to npconv.conv on the NumPy array."""
    x_np = x_np if batched else x_np[0]
    want = npconv.conv(x_np, w, b, **params)
    x = da.from_array(x_np, chunks=chunks)
    with dask.config.set(scheduler=_refuse_compute):
        y = _face_call(x, w, b, params, use_face) if not extra else ndask.conv(x, w, b, **params, **extra)
    assert isinstance(y, da.Array), type(y)
    assert (y.shape, y.dtype) == (want.shape, want.dtype), ((y.shape, y.dtype), (want.shape, want.dtype))
    if batched:
        assert y.chunks[0] == x.chunks[0], f"N chunks {y.chunks[0]}, input's {x.chunks[0]}"
    assert y.chunks[int(batched)] == (want.shape[int(batched)],), f"C_out chunks {y.chunks[int(batched)]}"
    with dask.config.set(scheduler=scheduler):
        got = y.compute()
    assert_matches(got, want, want.dtype)
    RUN["pairs"] += 1


def _check_every_chunking(case, index, use_face):
    x, w, b, params, batched = case
    failures = []
    for name, chunks in chunkings(x if batched else x[0], w, params, batched, index).items():
        scheduler = "threads" if index % 6 == 0 else "synchronous"
        try:
            check_lazy_and_equal(x, w, b, params, batched, chunks, use_face, scheduler)
        except Exception as error:  # collected: the report lists every failing chunking
            failures.append(f"{name} chunks={chunks}: {type(error).__name__}: {error}")
    assert not failures, f"{params} x{x.shape} w{w.shape} batched={batched}:\n" + "\n".join(failures)


def _case_id(case):
    x, w, b, params, batched = case
    p = {k: v for k, v in params.items() if k != "transposed"}
    return (f"{w.ndim - 2}d-{x.dtype}-k{w.shape[2:]}-" + "-".join(f"{k}={v}" for k, v in p.items())
            + ("-bias" if b is not None else "") + ("" if batched else "-unbatched")).replace(" ", "")


FORWARD = [_forward_case(i) for i in range(N_FORWARD)]
TRANSPOSED = [_transposed_case(i) for i in range(N_TRANSPOSED)]


@pytest.mark.parametrize("index", range(N_FORWARD), ids=[_case_id(c) for c in FORWARD])
def test_forward_grid_matches_in_memory_npconv_under_every_chunking(index):
    _check_every_chunking(FORWARD[index], index, use_face=index % 2 == 1)


@pytest.mark.parametrize("index", range(N_TRANSPOSED), ids=[_case_id(c) for c in TRANSPOSED])
def test_transposed_grid_matches_in_memory_npconv_under_every_chunking(index):
    _check_every_chunking(TRANSPOSED[index], index, use_face=index % 2 == 1)


@pytest.mark.parametrize("block", [1, 2, (3, 1), 100])
def test_block_keyword_changes_the_graph_not_the_values(block):
    x, w, b, params, _ = FORWARD[1]  # 2-D
    params = dict(params, padding_mode="reflect", padding=1)
    check_lazy_and_equal(x, w, b, params, True, (1, 2, 4, 3), block=block)
    xt, wt, bt, pt, _ = TRANSPOSED[1]
    check_lazy_and_equal(xt, wt, bt, pt, True, (1, 2, 2, 3), block=block)


@pytest.mark.parametrize("dtype,weight_dtype", [(np.float16, np.float16), (np.int32, np.float64),
                                                (np.int64, np.float32), (np.float16, np.float32),
                                                (np.bool_, np.float64)])
def test_dtype_policy_matches_in_memory_npconv(dtype, weight_dtype):
    """float16 is computed in float32 and returned float16; ints and bools become float64; the
    dtype is known before compute and is the computed one."""
    rng = np.random.default_rng(3)
    x = (rng.standard_normal((2, 3, 7, 6)) * 3).astype(dtype)
    w = rng.standard_normal((4, 3, 3, 2)).astype(weight_dtype)
    want = npconv.conv(x, w, stride=2, padding="same", padding_mode="reflect")
    y = ndask.conv(da.from_array(x, chunks=(1, 3, 3, 4)), w, stride=2, padding="same", padding_mode="reflect")
    assert y.dtype == want.dtype
    got = y.compute(scheduler="synchronous")
    assert got.dtype == want.dtype
    assert_matches(got, want, want.dtype)


def test_numpy_input_is_wrapped_and_gives_a_lazy_result():
    """npconv.dask takes a NumPy array (and an array-like) as one Dask array (documented)."""
    x, w, b, params, _ = FORWARD[4]
    for given in (x, x.tolist()):
        y = ndask.conv(given, w, b, **params)
        want = npconv.conv(given, w, b, **params)
        assert isinstance(y, da.Array) and (y.shape, y.dtype) == (want.shape, want.dtype)
        assert_matches(y.compute(scheduler="synchronous"), want, want.dtype)


# ---- refusals: at call time, with npconv.functional's words, nothing computed ---------------
ones = np.ones
REFUSALS = {
    "kernel-larger-than-padded-input": ("conv2d", ones((2, 3, 4, 4)), ones((4, 3, 5, 5)), dict(padding=0)),
    "groups-not-dividing-channels": ("conv2d", ones((2, 3, 6, 6)), ones((4, 1, 3, 3)), dict(groups=2)),
    "weight-channels-not-c-over-groups": ("conv2d", ones((2, 4, 6, 6)), ones((4, 3, 3, 3)), dict(groups=2)),
    "groups-not-dividing-out-channels": ("conv2d", ones((2, 4, 6, 6)), ones((3, 2, 3, 3)), dict(groups=2)),
    "unknown-padding-mode": ("conv2d", ones((1, 2, 6, 6)), ones((2, 2, 3, 3)), dict(padding=1, padding_mode="mirror")),
    "reflect-pad-over-size": ("conv1d", ones((1, 2, 3)), ones((2, 2, 3)), dict(padding=3, padding_mode="reflect")),
    "circular-pad-over-size": ("conv1d", ones((1, 2, 3)), ones((2, 2, 3)), dict(padding=4, padding_mode="circular")),
    "stride-zero": ("conv2d", ones((1, 2, 6, 6)), ones((2, 2, 3, 3)), dict(stride=0)),
    "negative-padding": ("conv2d", ones((1, 2, 6, 6)), ones((2, 2, 3, 3)), dict(padding=-1)),
    "unknown-padding-string": ("conv3d", ones((1, 2, 4, 4, 4)), ones((2, 2, 3, 3, 3)), dict(padding="full")),
    "float-stride": ("conv2d", ones((1, 2, 6, 6)), ones((2, 2, 3, 3)), dict(stride=1.5)),
    "bias-of-wrong-length": ("conv2d", ones((1, 2, 6, 6)), ones((4, 2, 3, 3)), dict(bias=ones(3))),
    "input-of-wrong-rank": ("conv2d", ones((1, 1, 2, 6, 6)), ones((2, 2, 3, 3)), {}),
    "weight-of-wrong-rank": ("conv2d", ones((1, 2, 6, 6)), ones((2, 2, 3)), {}),
    "complex256-input": ("conv2d", ones((1, 2, 6, 6), np.clongdouble), ones((2, 2, 3, 3)), {}),
    "complex256-weight": ("conv2d", ones((1, 2, 6, 6)), ones((2, 2, 3, 3), np.clongdouble), {}),
    "same-on-transposed": ("conv_transpose2d", ones((1, 2, 6, 6)), ones((2, 2, 3, 3)), dict(padding="same")),
    "output-padding-over-stride": ("conv_transpose2d", ones((1, 2, 6, 6)), ones((2, 2, 3, 3)),
                                   dict(stride=2, output_padding=2)),
    "transposed-output-below-one": ("conv_transpose1d", ones((1, 2, 1)), ones((2, 2, 1)), dict(padding=1)),
    "input-none": ("conv1d", None, ones((2, 2, 3)), {}),
    "weight-none": ("conv1d", ones((1, 2, 6)), None, {}),
    "weight-2d": ("conv1d", ones((1, 2, 6)), ones((2, 2)), {}),
}


def _lazy(x, chunks):
    return x if x is None else da.from_array(x, chunks=chunks)


def _raised(call):
    try:
        call()
    except Exception as error:
        return type(error), str(error)
    return None, "no error"


@pytest.mark.parametrize("face,x,w,kwargs", REFUSALS.values(), ids=REFUSALS.keys())
def test_refusals_match_functional_at_call_time(face, x, w, kwargs):
    want = _raised(lambda: getattr(F, face)(x, w, **kwargs))
    assert want[0] is not None and issubclass(want[0], (ValueError, TypeError)), want
    chunked = _lazy(x, (1,) * np.ndim(x))
    with dask.config.set(scheduler=_refuse_compute):
        got = _raised(lambda: getattr(ndask, face)(chunked, w, **kwargs))
    assert got == want


@pytest.mark.parametrize("name", ["groups-not-dividing-channels", "reflect-pad-over-size", "weight-of-wrong-rank",
                                  "complex256-input", "complex256-weight", "input-none", "weight-none", "weight-2d"])
def test_refusals_of_conv_match_npconv_conv(name):
    _, x, w, kwargs = REFUSALS[name]
    want = _raised(lambda: npconv.conv(x, w, **kwargs))
    with dask.config.set(scheduler=_refuse_compute):
        got = _raised(lambda: ndask.conv(_lazy(x, 2), w, **kwargs))
    assert want[0] is not None and got == want


def test_transposed_padding_mode_is_refused_as_npconv_conv_refuses_it():
    x, w = ones((1, 2, 6, 6)), ones((2, 2, 3, 3))
    want = _raised(lambda: npconv.conv(x, w, transposed=True, padding=1, padding_mode="reflect"))
    got = _raised(lambda: ndask.conv(da.from_array(x, chunks=3), w, transposed=True, padding=1,
                                     padding_mode="reflect"))
    assert want[0] is not None and got == want


def test_unbatched_input_keeps_its_form():
    x, w, b, params, _ = FORWARD[2]  # 3-D
    check_lazy_and_equal(x, w, b, params, False, (3, 2, 5, 4))
    xt, wt, bt, pt, _ = TRANSPOSED[0]
    check_lazy_and_equal(xt, wt, bt, pt, False, (1,) * (xt.ndim - 1))


def test_an_empty_batch_gives_an_empty_result_as_in_memory():
    x, w = np.ones((0, 2, 9, 9)), np.ones((3, 2, 3, 3))
    check_lazy_and_equal(x, w, None, dict(padding=1, padding_mode="reflect"), True, (1, 2, 4, 4))


def test_zz_grid_size():
    """Prints the grid's size: configurations x chunkings (the number of pairs checked)."""
    configured = sum(len(chunkings(c[0] if c[4] else c[0][0], c[1], c[3], c[4], i))
                     for cases in (FORWARD, TRANSPOSED) for i, c in enumerate(cases))
    print(f"\nnpconv.dask grid: {N_FORWARD} forward + {N_TRANSPOSED} transposed configurations, "
          f"{configured} (configuration, chunking) pairs; {RUN['pairs']} pairs checked in this run")
    assert configured >= 400


def test_the_callers_config_block_travels_to_pool_threads():
    """npconv.config set around the call is in effect in the tasks, which run in the threaded
    scheduler's pool threads (a new thread would otherwise start with the process defaults)."""
    import npconv.core
    seen = []
    original = npconv.core.conv

    def spy(*args, **kwargs):
        seen.append(npconv.settings.current().algorithm)
        return original(*args, **kwargs)

    x = np.random.default_rng(5).standard_normal((1, 2, 20, 20))
    w = np.ones((2, 2, 3, 3))
    with npconv.config(algorithm="fft"):
        y = npconv.dask.conv2d(da.from_array(x, chunks=(1, 2, 7, 7)), w, padding=1)
    with dask.config.set(scheduler="threads"):
        npconv.core.conv = spy
        try:
            got = y.compute()
        finally:
            npconv.core.conv = original
    assert seen and set(seen) == {"fft"}
    assert np.abs(got - npconv.functional.conv2d(x, w, padding=1)).max() <= 1e-12 * np.abs(got).max()


def test_big_chunks_cut_into_blocks_never_shorter_than_the_halo(monkeypatch):
    """A small block memory target with a long dilation: the cut blocks keep the halo's length
    (the review's case raised 'adjust_chunks specified with 4 blocks')."""
    monkeypatch.setattr(npconv.dask, "BLOCK_BYTES", 200)
    x = np.random.default_rng(8).standard_normal((1, 3, 700))
    w = np.random.default_rng(9).standard_normal((2, 3, 2))
    with dask.config.set(scheduler="synchronous"):
        got = npconv.dask.conv1d(da.from_array(x, chunks=(1, 3, 250)), w, dilation=90, padding=45).compute()
    want = F.conv1d(x, w, dilation=90, padding=45)
    assert np.abs(got - want).max() <= 1e-12 * np.abs(want).max()


def test_long_double_is_refused_before_the_graph():
    with pytest.raises(TypeError, match="must hold real numbers"):
        npconv.dask.conv1d(da.from_array(np.ones((1, 1, 5), np.longdouble)), np.ones((1, 1, 2)))
