"""The planner as a table of expected choices, its measuring and autotuning modes, forcing,
the workspace cap, and the BLAS steering decision."""

import dataclasses
import json

import numpy as np
import pytest

import npconv
from npconv import autotune, select, workspace
from npconv.algorithms import depthwise_jit, fft
from npconv.cpu import tune_openblas_coretype
from npconv.spec import ConvSpec

JIT = "depthwise_jit" if depthwise_jit.available() else "depthwise_direct"
JIT_OR_GEMM = "depthwise_jit" if depthwise_jit.available() else "im2col_gemm"

# (spec arguments, input shape, weight shape, expected algorithm)
TABLE = [
    (dict(kernel_size=(1, 1)), (8, 64, 56, 56), (256, 64, 1, 1), "pointwise"),
    (dict(kernel_size=(1, 1), stride=2), (8, 512, 28, 28), (1024, 512, 1, 1), "pointwise"),
    (dict(kernel_size=(1, 1), padding=1), (1, 8, 5, 5), (4, 8, 1, 1), "im2col_gemm"),
    (dict(kernel_size=(3, 3), padding=1), (8, 64, 56, 56), (64, 64, 3, 3), "winograd_f4"),
    (dict(kernel_size=(3, 3), padding=1, padding_mode="reflect"), (8, 64, 128, 128), (64, 64, 3, 3), "winograd_f4"),
    (dict(kernel_size=(3, 3), padding=1), (8, 256, 14, 14), (256, 256, 3, 3), "winograd_f2"),
    (dict(kernel_size=(3, 3, 3), padding=1), (1, 64, 16, 56, 56), (128, 64, 3, 3, 3), "winograd_f2"),
    (dict(kernel_size=(3, 3), padding=1), (8, 512, 7, 7), (512, 512, 3, 3), "winograd_f2"),
    (dict(kernel_size=(3, 3), padding=1), (8, 512, 5, 5), (512, 512, 3, 3), "im2col_gemm"),
    (dict(kernel_size=(3, 3), padding=1), (8, 16, 32, 32), (16, 16, 3, 3), "im2col_gemm"),
    (dict(kernel_size=(3,), padding=1), (4, 64, 1000), (64, 64, 3), "im2col_gemm"),
    (dict(kernel_size=(3, 3), padding=2, dilation=2), (8, 64, 56, 56), (64, 64, 3, 3), "im2col_gemm"),
    (dict(kernel_size=(3, 3), padding=1, groups=144), (8, 144, 56, 56), (144, 1, 3, 3), JIT),
    (dict(kernel_size=(3, 3), padding=1, groups=96, stride=2), (8, 96, 112, 112), (96, 1, 3, 3), JIT),
    (dict(kernel_size=(7, 7), padding=3, groups=96), (8, 96, 56, 56), (96, 1, 7, 7),
     "depthwise_jit" if depthwise_jit.available() else "fft"),
    (dict(kernel_size=(31, 31), padding=15, groups=128), (1, 128, 56, 56), (128, 1, 31, 31), "fft"),
    (dict(kernel_size=(3, 3, 3), padding=1, groups=4), (1, 4, 8, 8, 8), (4, 1, 3, 3, 3), "depthwise_direct"),
    (dict(kernel_size=(3, 3), padding=1, groups=32), (8, 128, 56, 56), (128, 4, 3, 3), JIT_OR_GEMM),
    (dict(kernel_size=(3, 3), padding=1, groups=4), (8, 128, 56, 56), (128, 32, 3, 3), "winograd_f4"),
    (dict(kernel_size=(10,), stride=5), (4, 1, 16000), (512, 1, 10), "im2col_gemm"),
    (dict(kernel_size=(7, 7), stride=2, padding=3), (8, 3, 224, 224), (64, 3, 7, 7), JIT_OR_GEMM),
    (dict(kernel_size=(5, 20), stride=2), (4, 1, 161, 700), (32, 1, 5, 20), JIT_OR_GEMM),
    (dict(kernel_size=(4, 4), stride=4), (8, 3, 224, 224), (96, 3, 4, 4), "im2col_gemm"),
    (dict(kernel_size=(3, 3), stride=2, padding=1), (8, 128, 56, 56), (128, 128, 3, 3), "im2col_gemm"),
    (dict(kernel_size=(4, 4), stride=2, padding=1, transposed=True), (64, 256, 8, 8), (256, 128, 4, 4),
     "gemm_col2im"),
    (dict(kernel_size=(3, 3), stride=2, padding=1, groups=96, transposed=True), (8, 96, 56, 56), (96, 1, 3, 3),
     "polyphase"),
]


@pytest.mark.parametrize("args,x_shape,w_shape,expected", TABLE, ids=[t[3] + f"-{i}" for i, t in enumerate(TABLE)])
def test_planner_choices(args, x_shape, w_shape, expected):
    assert select.choose_algorithm(ConvSpec.build(**args), x_shape, w_shape) == expected


def test_measure_returns_timings_of_every_candidate():
    spec = ConvSpec.build((5, 5), padding=2, groups=4)
    name, timings = select.choose_algorithm(spec, (1, 4, 12, 12), (4, 1, 5, 5), measure=True)
    assert set(timings) == set(select.candidates(spec, (1, 4, 12, 12), (4, 1, 5, 5)))
    assert name == min(timings, key=timings.get) and all(t > 0 for t in timings.values())


def test_autotune_times_once_and_remembers_on_disk(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    monkeypatch.setattr(autotune, "_tuned", None)
    calls = []
    real = select.measure_candidates
    monkeypatch.setattr(select, "measure_candidates", lambda *a, **k: calls.append(a) or real(*a, **k))
    select.set_autotune(True)
    try:
        spec, shapes = ConvSpec.build((3, 3), padding=1), ((1, 4, 10, 10), (4, 4, 3, 3))
        first = select.choose_algorithm(spec, *shapes)
        assert select.choose_algorithm(spec, *shapes) == first and len(calls) == 1
        stored = json.loads((tmp_path / "npconv" / "autotune.json").read_text())
        assert list(stored.values()) == [first]
        monkeypatch.setattr(autotune, "_tuned", None)  # a new process reads the file
        assert select.choose_algorithm(spec, *shapes) == first and len(calls) == 1
    finally:
        select.set_autotune(False)


def test_forcing_an_algorithm(rng):
    x, w = rng.standard_normal((1, 4, 9, 9)), rng.standard_normal((4, 1, 3, 3))
    expected = npconv.conv(x, w, padding=1, groups=4)
    try:
        for name in ("fft", "im2col_gemm", "depthwise_direct"):
            select.set_algorithm(name)
            np.testing.assert_allclose(npconv.conv(x, w, padding=1, groups=4), expected, rtol=1e-12, atol=1e-12)
        select.set_algorithm("pointwise")  # does not apply to 3x3: the planner's choice stands
        assert select.choose_algorithm(ConvSpec.build((3, 3), padding=1, groups=4), x.shape, w.shape) != "pointwise"
    finally:
        select.set_algorithm(None)
    with pytest.raises(ValueError, match="unknown algorithm 'magic'"):
        select.set_algorithm("magic")


def test_workspace_cap_holds_for_a_c3d_sized_layer(monkeypatch):
    """The window buffer of one C3D clip is 347 MB; chunks keep every buffer under the cap."""
    from npconv.algorithms import im2col_gemm
    sizes = []
    real = im2col_gemm.im2col
    monkeypatch.setattr(im2col_gemm, "im2col", lambda *a, **k: sizes.append(real(*a, **k).nbytes) or real(*a, **k))
    monkeypatch.setattr(im2col_gemm, "CHUNK_TARGET_BYTES", 2**40)  # only the cap limits the chunks
    previous = workspace.set_workspace_limit(2 * 2**20)
    try:
        x = np.ones((1, 16, 8, 20, 20), np.float32)
        w = np.ones((8, 16, 3, 3, 3), np.float32)
        y = npconv.conv(x, w, padding=1)
    finally:
        workspace.set_workspace_limit(previous)
    assert max(sizes) <= 2 * 2**20 < 16 * 27 * 8 * 400 * 4 and y[0, 0, 3, 10, 10] == 16 * 27


def test_workspace_limit_refuses_nonsense():
    with pytest.raises(ValueError, match="at least 1 MiB"):
        workspace.set_workspace_limit(10)


@pytest.mark.parametrize("environ,vendor,flags,expected", [
    ({}, "AuthenticAMD", {"avx512f", "avx512bw", "avx512dq", "avx512vl", "avx512cd"}, "SKYLAKEX"),
    ({}, "AuthenticAMD", {"avx2", "fma"}, None),
    ({}, "GenuineIntel", {"avx512f", "avx512bw", "avx512dq", "avx512vl", "avx512cd"}, None),
    ({"OPENBLAS_CORETYPE": "Haswell"}, "AuthenticAMD", {"avx512f", "avx512bw", "avx512dq", "avx512vl", "avx512cd"},
     None),
    ({"NPCONV_KEEP_BLAS": "1"}, "AuthenticAMD", {"avx512f", "avx512bw", "avx512dq", "avx512vl", "avx512cd"}, None),
])
def test_openblas_steering_decision(monkeypatch, environ, vendor, flags, expected):
    import npconv.cpu
    monkeypatch.setattr(npconv.cpu, "cpu_flags", lambda: (vendor, flags))
    environ = dict(environ)
    assert tune_openblas_coretype(environ) == expected
    assert environ.get("OPENBLAS_CORETYPE") == (expected or environ.get("OPENBLAS_CORETYPE"))


def test_thread_cap_reaches_blas_and_numba_and_keeps_the_numbers(rng, monkeypatch):
    from threadpoolctl import threadpool_info

    seen = []
    real = select.ALGORITHMS["im2col_gemm"].forward

    def spy(*args):
        seen.append({lib["num_threads"] for lib in threadpool_info() if lib["user_api"] == "blas"})
        return real(*args)

    monkeypatch.setitem(select.ALGORITHMS, "im2col_gemm", dataclasses.replace(select.ALGORITHMS["im2col_gemm"],
                                                                               forward=spy))
    x, w = rng.standard_normal((2, 8, 9, 9)), rng.standard_normal((4, 8, 3, 3))  # im2col: 8 channels
    expected = npconv.conv(x, w, stride=2)
    assert npconv.set_num_threads(1) is None
    try:
        assert npconv.get_num_threads() == 1
        np.testing.assert_array_equal(npconv.conv(x, w, stride=2), expected)
        assert seen[-1] == {1}
        name, timings = npconv.choose_algorithm(ConvSpec.build((3, 3), stride=2), x.shape, w.shape, threads=1,
                                                measure=True)
        assert name in timings
    finally:
        npconv.set_num_threads(None)
    for bad in (0, -2, 1.5, True, "2"):
        with pytest.raises(ValueError, match="positive int"):
            npconv.set_num_threads(bad)


def test_top_level_names():
    for name in ("choose_algorithm", "set_algorithm", "set_autotune", "set_workspace_limit", "set_num_threads"):
        assert callable(getattr(npconv, name))


def test_scratch_buffers_are_reused_per_name_and_grown_on_demand():
    small = workspace.scratch("test", (4, 5), np.float32)
    again = workspace.scratch("test", (2, 3), np.float64)
    assert np.shares_memory(small, again) and again.shape == (2, 3) and again.dtype == np.float64
    other = workspace.scratch("test other", (4, 5), np.float32)
    assert not np.shares_memory(small, other)
    large = workspace.scratch("test", (1000,), np.float64)
    assert large.shape == (1000,) and not np.shares_memory(small, large)
    workspace.release()


def test_fft_is_no_candidate_when_its_spectra_exceed_the_cap():
    aspp = ConvSpec.build((3, 3), padding=12, dilation=12)
    assert "fft" not in select.candidates(aspp, (1, 2048, 33, 33), (256, 2048, 3, 3))  # 14.6 GiB of spectra
    large_kernel = ConvSpec.build((31, 31), padding=15, groups=128)
    assert "fft" in select.candidates(large_kernel, (1, 128, 56, 56), (128, 1, 31, 31))  # 15.6 MiB
    least = fft.min_workspace(large_kernel, (1, 128, 56, 56), (128, 1, 31, 31), 8)
    previous = workspace.set_workspace_limit(max(2**20, least - 1))
    try:
        assert least > 2**20
        assert "fft" not in select.candidates(large_kernel, (1, 128, 56, 56), (128, 1, 31, 31))
    finally:
        workspace.set_workspace_limit(previous)


def test_heuristic_never_chooses_fft_over_the_cap():
    """A large depthwise kernel goes to FFT only while its least layout (one image, one row of
    blocks) fits; above the cap the heuristic falls back to the direct kernels (it once
    returned 'fft' regardless)."""
    spec = ConvSpec.build((9, 9), padding=4, groups=64)
    x_shape, w_shape = (32, 64, 256, 256), (64, 1, 9, 9)
    least = fft.min_workspace(spec, x_shape, w_shape, 8)
    previous = workspace.set_workspace_limit(max(2**20, least - 1))
    try:
        _never_fft_over_the_cap(spec, x_shape, w_shape)
    finally:
        workspace.set_workspace_limit(previous)
    assert npconv.choose_algorithm(spec, (1, 64, 64, 64), w_shape) == "fft"  # small enough: still FFT


def _never_fft_over_the_cap(spec, x_shape, w_shape):
    assert "fft" not in select.candidates(spec, x_shape, w_shape)
    chosen = npconv.choose_algorithm(spec, x_shape, w_shape)
    assert chosen in select.candidates(spec, x_shape, w_shape)
    assert chosen == ("depthwise_jit" if depthwise_jit.available() else "depthwise_direct")
