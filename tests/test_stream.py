"""npconv.stream (issue 18): chunk-by-chunk causal convolution against an independent offline
reference — the whole signal zero-padded by dilation*(k-1) before along time (nothing after),
then npconv.functional.convNd with the module's own padding on the other axes.  Random
chunkings over a grid of Conv1d/2d/3d modules, the state, reset and initial_state, a streamed
causal stack, Keras layers, and the refusals."""

import re

import numpy as np
import pytest

import npconv.functional as F
import npconv.keras as K
import npconv.nn as nn
from conftest import assert_matches
from npconv.stream import StreamingConv, StreamingSequential

CONV = {1: nn.Conv1d, 2: nn.Conv2d, 3: nn.Conv3d}
FUNCTIONAL = {1: F.conv1d, 2: F.conv2d, 3: F.conv3d}
REST = {1: (), 2: (5,), 3: (4, 3)}  # the sizes of the axes after time
# (C_in, C_out, groups): dense, grouped, depthwise, depthwise with a channel multiplier
CHANNELS = [(3, 4, 1), (4, 6, 2), (3, 3, 3), (2, 4, 2)]
MODES = ("zeros", "reflect", "replicate", "circular")
CHUNKINGS_PER_MODULE = 3
_RAN = {"pairs": 0}


def _other_pads(rng, size, k, d, mode):
    """A random (before, after) pad for one non-time axis that the mode allows at this size."""
    limit = size - 1 if mode == "reflect" else size  # reflect: pad < size; circular: pad <= size
    while True:
        pair = tuple(int(p) for p in rng.integers(0, 3, 2))
        if max(pair) <= limit and size + sum(pair) >= d * (k - 1) + 1:
            return pair


def _make_case(index):
    """The index-th module of the grid: a dict of its settings (the rng is seeded by index).
    1-D covers every (k, dilation, stride) in 1-5 x 1-4 x 1-3; 2-D/3-D draw them."""
    rng = np.random.default_rng(1000 + index)
    if index < 60:
        n, (k, d, s) = 1, (index % 5 + 1, index // 5 % 4 + 1, index // 20 + 1)
    else:
        n = 2 if index < 100 else 3
        k, d, s = int(rng.integers(1, 6)), int(rng.integers(1, 5)), int(rng.integers(1, 4))
    c_in, c_out, groups = CHANNELS[rng.integers(len(CHANNELS))]
    mode = "zeros" if rng.random() < 0.4 else MODES[rng.integers(4)]
    kernel, dilation, stride, pads = [k], [d], [s], []
    for size in REST[n]:
        ko, do, so = int(rng.integers(1, 3)), int(rng.integers(1, 3)), int(rng.integers(1, 3))
        kernel.append(ko), dilation.append(do), stride.append(so)
        pads.append(_other_pads(rng, size, ko, do, mode))
    # the time padding as the module states it; a mode other than zeros keeps it 0 here (the
    # causal forms with other modes are test_causal_padding_with_other_modes)
    form = "0" if mode != "zeros" else ("0", "pair", "causal")[rng.integers(3)]
    if form == "causal":  # 'causal' pads every axis before: the other axes' pads follow
        pads = [(do * (ko - 1), 0) for ko, do in zip(kernel[1:], dilation[1:])]
        if any(p > size or size + p < do * (ko - 1) + 1
               for (p, _), size, ko, do in zip(pads, REST[n], kernel[1:], dilation[1:])):
            form, pads = "pair", [_other_pads(rng, sz, ko, do, mode)
                                  for sz, ko, do in zip(REST[n], kernel[1:], dilation[1:])]
    time_pad = (d * (k - 1), 0) if form == "pair" else (0, 0)
    padding = "causal" if form == "causal" else (time_pad, *pads)
    return dict(n=n, c_in=c_in, c_out=c_out, groups=groups, kernel=tuple(kernel), dilation=tuple(dilation),
                stride=tuple(stride), padding=padding, other_pads=tuple(pads), mode=mode,
                bias=bool(rng.random() < 0.6), batched=bool(rng.random() < 0.7),
                dtype=np.float64 if index % 2 else np.float32, form=form, seed=index)


CASES = [_make_case(i) for i in range(120)]


def _case_id(c):
    return (f"{c['n']}d-k{c['kernel'][0]}-d{c['dilation'][0]}-s{c['stride'][0]}-g{c['groups']}-{c['mode']}"
            f"-{c['form']}-{'b' if c['bias'] else 'nob'}-{'N' if c['batched'] else 'unb'}"
            f"-{np.dtype(c['dtype']).name}")


def _module(c):
    module = CONV[c["n"]](c["c_in"], c["c_out"], c["kernel"], stride=c["stride"], padding=c["padding"],
                          dilation=c["dilation"], groups=c["groups"], bias=c["bias"], padding_mode=c["mode"],
                          dtype=np.dtype(c["dtype"]).name)
    rng = np.random.default_rng(c["seed"])
    module.weight[...] = rng.standard_normal(module.weight.shape)
    if module.bias is not None:
        module.bias[...] = rng.standard_normal(module.bias.shape)
    return module


def reference(module, signal, other_pads):
    """The module's convolution offline on the whole signal: dilation*(k-1) zeros before along
    time, nothing after; the other axes padded as the module pads them; computed in float64."""
    n = len(module.kernel_size)
    time = signal.ndim - n  # 2 batched, 1 unbatched
    reach = module.dilation[0] * (module.kernel_size[0] - 1)
    widths = [(0, 0)] * signal.ndim
    widths[time] = (reach, 0)
    padded = np.pad(np.asarray(signal, np.float64), widths)
    bias = None if module.bias is None else np.array(module.bias, np.float64)
    return FUNCTIONAL[n](padded, np.array(module.weight, np.float64), bias, stride=module.stride,
                         padding=((0, 0), *other_pads), dilation=module.dilation, groups=module.groups,
                         padding_mode=module.padding_mode)


def chunk_lengths(rng, total):
    """Chunk lengths drawn from {0, 1, 2, 3, 7, random} until they cover ``total``."""
    lengths = []
    while sum(lengths) < total:
        pick = int(rng.integers(6))
        lengths.append((0, 1, 2, 3, 7)[pick] if pick < 5 else int(rng.integers(1, total + 1)))
    lengths[-1] -= sum(lengths) - total
    return lengths


def stream(streamer, signal, lengths, time_axis, check_state=None):
    """Step the streamer through the signal in chunks of the given lengths; the outputs joined
    along time.  ``check_state(state)`` is called after every step when given."""
    outputs, start = [], 0
    for length in lengths:
        index = [slice(None)] * signal.ndim
        index[time_axis] = slice(start, start + length)
        chunk = signal[tuple(index)]
        start += length
        out = streamer.step(chunk)
        assert out.dtype == signal.dtype, f"step output dtype {out.dtype}, chunk {signal.dtype}"
        outputs.append(out)
        if check_state is not None:
            check_state(streamer.state)
    return np.concatenate(outputs, axis=time_axis)


def _chunkings(rng, total):
    return [chunk_lengths(rng, total), [1] * total, [0, total, 0]]


@pytest.mark.parametrize("case", CASES, ids=[_case_id(c) for c in CASES])
def test_random_chunkings_match_offline(case):
    module = _module(case)
    rng = np.random.default_rng(case["seed"] + 7)
    n, reach, stride = case["n"], case["dilation"][0] * (case["kernel"][0] - 1), case["stride"][0]
    total = int(rng.integers(1, 25))
    batch = (2,) if case["batched"] else ()
    signal = rng.standard_normal(batch + (case["c_in"], total) + REST[n]).astype(case["dtype"])
    time_axis = len(batch) + 1
    want = reference(module, signal, case["other_pads"])

    def check_state(state):
        assert state is not None
        assert state.shape[:time_axis] == signal.shape[:time_axis]
        assert state.shape[time_axis + 1:] == signal.shape[time_axis + 1:]
        held = state.shape[time_axis]  # stride 1: exactly d*(k-1); a stride: the next window's part
        assert held == reach if stride == 1 else 0 <= held < reach + stride, (held, reach, stride)

    chunkings = _chunkings(rng, total)
    assert len(chunkings) == CHUNKINGS_PER_MODULE
    for lengths in chunkings:
        streamer = StreamingConv(module)
        assert streamer.state is None
        got = stream(streamer, signal, lengths, time_axis, check_state)
        assert_matches(got, want.astype(case["dtype"]), case["dtype"])
        _RAN["pairs"] += 1
    assert_matches(StreamingConv(module).offline(signal), want.astype(case["dtype"]), case["dtype"])


@pytest.mark.parametrize("n,mode", [(2, "reflect"), (2, "replicate"), (3, "circular"), (2, "circular")])
@pytest.mark.parametrize("form", ["causal", "pair"])
def test_causal_padding_with_other_modes(n, mode, form):
    """A causal time padding stated on the module is zeros however the other axes are padded."""
    kernel, dilation = (3, 2, 2)[:n], (2, 1, 1)[:n]
    pads = [(1, 0)] * (n - 1)  # what 'causal' gives the other axes here: dilation*(k-1) before
    padding = "causal" if form == "causal" else ((4, 0), *pads)
    module = CONV[n](2, 4, kernel, padding=padding, dilation=dilation, padding_mode=mode, dtype="float64")
    rng = np.random.default_rng(5)
    signal = rng.standard_normal((1, 2, 11) + REST[n])
    got = stream(StreamingConv(module), signal, chunk_lengths(rng, 11), 2)
    assert_matches(got, reference(module, signal, pads), np.float64)


@pytest.mark.parametrize("padding", ["valid", "same"])
def test_string_paddings_with_no_time_pad(padding):
    """'valid', and 'same' with a time kernel of 1, pad nothing along time: they stream."""
    module = nn.Conv2d(2, 3, (1, 3), padding=padding, padding_mode="reflect", dtype="float64")
    signal = np.random.default_rng(3).standard_normal((2, 2, 9, 5))
    other = [(1, 1)] if padding == "same" else [(0, 0)]
    got = stream(StreamingConv(module), signal, [4, 0, 1, 4], 2)
    assert_matches(got, reference(module, signal, other), np.float64)


def test_state_before_and_after_steps():
    module = nn.Conv2d(3, 2, (3, 2), dilation=(2, 1), padding=((0, 0), (1, 0)), dtype="float64")
    streamer = StreamingConv(module)
    assert streamer.state is None
    streamer.step(np.ones((2, 3, 0, 5)))  # an empty first chunk: the history is the zeros
    for length in (0, 1, 3, 8):
        streamer.step(np.ones((2, 3, length, 5)))
        assert streamer.state.shape == (2, 3, 4, 5)
    unbatched = StreamingConv(nn.Conv1d(3, 3, 4, groups=3, dtype="float64"))
    unbatched.step(np.ones((3, 2)))
    assert unbatched.state.shape == (3, 3)
    np.testing.assert_array_equal(unbatched.state, [[0, 1, 1]] * 3)  # 1 zero of history, 2 samples


@pytest.mark.parametrize("batched", [True, False])
def test_reset_equals_a_fresh_streamer(batched):
    module = nn.Conv1d(4, 6, 3, dilation=3, stride=2, groups=2, dtype="float64")
    rng = np.random.default_rng(11)
    batch = (3,) if batched else ()
    first, second = (rng.standard_normal(batch + (4, t)) for t in (13, 17))
    axis = len(batch) + 1
    streamer = StreamingConv(module)
    stream(streamer, first, chunk_lengths(rng, 13), axis)
    streamer.reset()
    got = stream(streamer, second, chunk_lengths(rng, 17), axis)
    want = stream(StreamingConv(module), second, [17], axis)
    assert_matches(got, want, np.float64)  # pieces of other lengths: the same sums, in other GEMM blockings
    assert_matches(got, reference(module, second, []), np.float64)


@pytest.mark.parametrize("n,stride,prefix_len,batched", [
    (1, 1, 9, True), (1, 1, 2, False), (1, 2, 8, True), (2, 1, 7, True), (3, 3, 6, False)])
def test_initial_state_is_the_prefix_history(n, stride, prefix_len, batched):
    """Streaming the rest from the prefix's last d*(k-1) samples equals the tail of streaming
    prefix + rest (the prefix's length a multiple of the stride: the same output phase)."""
    kernel, dilation = (3, 2, 2)[:n], (3, 1, 1)[:n]
    reach = dilation[0] * (kernel[0] - 1)  # 6
    module = CONV[n](2, 3, kernel, stride=(stride, 1, 1)[:n], dilation=dilation, dtype="float64",
                     padding=((0, 0), *[(1, 0)] * (n - 1)))
    rng = np.random.default_rng(21)
    batch = (2,) if batched else ()
    axis = len(batch) + 1
    prefix, rest = (rng.standard_normal(batch + (2, t) + REST[n]) for t in (prefix_len, 10))
    whole = stream(StreamingConv(module), np.concatenate([prefix, rest], axis), [prefix_len + 10], axis)
    history = np.concatenate([np.zeros(batch + (2, reach) + REST[n]), prefix], axis)
    history = np.take(history, range(history.shape[axis] - reach, history.shape[axis]), axis=axis)
    streamer = StreamingConv(module, initial_state=history)
    np.testing.assert_array_equal(streamer.state, history)
    got = stream(streamer, rest, chunk_lengths(rng, 10), axis)
    tail = np.take(whole, range(prefix_len // stride, whole.shape[axis]), axis=axis)
    assert_matches(got, tail, np.float64)
    streamer.reset()  # back to the initial state, not to zeros
    assert_matches(stream(streamer, rest, [3, 0, 7], axis), tail, np.float64)


def _causal_stack(stride=1, dtype="float64"):
    rng = np.random.default_rng(31)
    layers = [nn.Conv1d(3, 5, 3, stride=stride, padding="causal", dtype=dtype), nn.ReLU(),
              nn.Conv1d(5, 5, 2, dilation=3, padding="causal", groups=5, dtype=dtype), nn.ReLU(),
              nn.Dropout(0.5).eval(), nn.Conv1d(5, 2, 4, padding=((3, 0),), dtype=dtype)]
    for layer in (layers[0], layers[2], layers[5]):
        layer.weight[...] = rng.standard_normal(layer.weight.shape)
        layer.bias[...] = rng.standard_normal(layer.bias.shape)
    return layers


def _stack_reference(layers, signal):
    out = signal
    for layer in layers:
        if isinstance(layer, nn.Conv1d):
            out = reference(layer, out, [])
        elif isinstance(layer, nn.ReLU):
            out = np.maximum(out, 0)  # Dropout in eval mode: the identity
    return out


@pytest.mark.parametrize("stride", [1, 2])
@pytest.mark.parametrize("wrap", ["layers", "sequential"])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_streaming_sequential_causal_stack(stride, wrap, dtype):
    layers = _causal_stack(stride, np.dtype(dtype).name)
    streamer = StreamingSequential(*layers) if wrap == "layers" else StreamingSequential(nn.Sequential(*layers))
    rng = np.random.default_rng(41)
    signal = rng.standard_normal((2, 3, 40)).astype(dtype)
    want = _stack_reference(layers, signal)
    for lengths in (chunk_lengths(rng, 40), [1] * 40):
        streamer.reset()
        assert_matches(stream(streamer, signal, lengths, 2), want.astype(dtype), dtype)
    assert_matches(streamer.offline(signal), want.astype(dtype), dtype)
    unbatched = stream(StreamingSequential(*layers), signal[1], chunk_lengths(rng, 40), 1)
    assert_matches(unbatched, want[1].astype(dtype), dtype)


@pytest.mark.parametrize("layer", [nn.MaxPool1d(2), nn.AvgPool1d(3), nn.Flatten(), nn.Dropout(0.5)],
                         ids=["maxpool", "avgpool", "flatten", "dropout-training"])
def test_streaming_sequential_refuses_layers_that_mix_time(layer):
    """A layer that is not element-wise (or is random, as Dropout in training) cannot be applied
    piece by piece: streamed and offline would differ, so it is refused up front."""
    _raises((ValueError, TypeError), r"element|stream|time|training|eval", StreamingSequential,
            nn.Conv1d(3, 4, 2), layer)


def test_keras_conv1d_causal_channels_last():
    layer = K.Conv1D(4, 3, padding="causal", dilation_rate=2, groups=2, dtype="float64")
    rng = np.random.default_rng(51)
    signal = rng.standard_normal((2, 23, 6))  # (N, T, C): Keras's channels_last
    want = layer(signal)  # builds the layer: it has its weights now
    for lengths in (chunk_lengths(rng, 23), [1] * 23):
        got = stream(StreamingConv(layer), signal, lengths, 1)
        assert_matches(got, want, np.float64)


def test_keras_conv2d_valid_channels_last():
    layer = K.Conv2D(3, (2, 2), strides=(2, 1), dtype="float64")
    rng = np.random.default_rng(52)
    signal = rng.standard_normal((1, 15, 5, 2))  # (N, T, W, C)
    layer(signal)
    want = layer(np.pad(signal, ((0, 0), (1, 0), (0, 0), (0, 0))))  # causal along time by hand
    got = stream(StreamingConv(layer), signal, chunk_lengths(rng, 15), 1)
    assert_matches(got, want, np.float64)


def _raises(kind, rule, call, *args, **kwargs):
    with pytest.raises(kind) as info:
        call(*args, **kwargs)
    assert re.search(rule, str(info.value), re.IGNORECASE), f"message {str(info.value)!r} lacks {rule!r}"


def test_chunk_differing_from_the_state_is_refused():
    streamer = StreamingConv(nn.Conv2d(3, 2, 3, padding=((0, 0), (1, 1)), dtype="float64"))
    streamer.step(np.ones((2, 3, 4, 5)))
    _raises(ValueError, "batch", streamer.step, np.ones((3, 3, 1, 5)))
    _raises(ValueError, "channel", streamer.step, np.ones((2, 4, 1, 5)))
    _raises(ValueError, r"size|shape|spatial|axis|axes", streamer.step, np.ones((2, 3, 1, 6)))
    _raises(ValueError, r"batch|dim|unbatched|shape", streamer.step, np.ones((3, 1, 5)))  # unbatched now
    _raises(ValueError, "channel", StreamingConv(nn.Conv1d(3, 2, 3)).step, np.ones((1, 4, 5), np.float32))
    history = StreamingConv(nn.Conv1d(3, 2, 3, dtype="float64"), initial_state=np.zeros((2, 3, 2)))
    _raises(ValueError, "batch", history.step, np.ones((1, 3, 4)))
    _raises(ValueError, "channel", history.step, np.ones((2, 5, 4)))


def test_bad_initial_state_is_refused():
    module = nn.Conv1d(3, 2, 3, dilation=2, dtype="float64")  # history of 4 samples
    _raises(ValueError, r"state|history|4", StreamingConv, module, initial_state=np.zeros((1, 3, 3)))
    with pytest.raises(ValueError) as info:  # at construction, or at the latest on the first step
        StreamingConv(module, initial_state=np.zeros((1, 2, 4))).step(np.ones((1, 3, 5)))
    assert "channel" in str(info.value), f"message {str(info.value)!r} lacks 'channel'"


@pytest.mark.parametrize("module", [nn.ConvTranspose1d(2, 3, 3), nn.ConvTranspose2d(2, 3, 3),
                                    nn.ConvTranspose3d(2, 2, 2)], ids=["1d", "2d", "3d"])
def test_transposed_module_is_refused(module):
    _raises((ValueError, TypeError), "transpose", StreamingConv, module)


@pytest.mark.parametrize("module", [
    nn.Conv1d(2, 2, 3, padding=1), nn.Conv1d(2, 2, 3, padding="same"), nn.Conv1d(2, 2, 3, padding=((2, 1),)),
    nn.Conv1d(2, 2, 3, padding=((1, 0),)), nn.Conv1d(2, 2, 3, padding=((0, 2),)),
    nn.Conv1d(2, 2, 3, dilation=2, padding=((2, 0),)), nn.Conv2d(2, 2, 3, padding=((1, 1), (1, 1))),
    nn.Conv3d(2, 2, 2, padding=1)], ids=["p1", "same", "2-1", "1-0", "0-2", "d2-2-0", "2d", "3d"])
def test_non_causal_time_padding_is_refused(module):
    _raises(ValueError, "causal", StreamingConv, module)


def test_keras_non_causal_padding_is_refused():
    layer = K.Conv1D(2, 3, padding="same")
    layer(np.zeros((1, 5, 2), np.float32))
    _raises(ValueError, "causal", StreamingConv, layer)


@pytest.mark.parametrize("chunk", [np.ones((1, 2, 3), np.clongdouble), np.full((1, 2, 3), "a")],
                         ids=["complex256", "str"])  # complex64/128 stream: tests/test_nn_complex.py
def test_non_float_chunk_is_refused(chunk):
    _raises(TypeError, r"complex|real|float|dtype|number", StreamingConv(nn.Conv1d(2, 2, 3)).step, chunk)


def test_pair_count():
    """How many (module, chunking) pairs the grid streams (printed; `pytest -s` shows it)."""
    planned = len(CASES) * CHUNKINGS_PER_MODULE
    print(f"\nstreaming grid: {len(CASES)} modules x {CHUNKINGS_PER_MODULE} chunkings = {planned} pairs; "
          f"{_RAN['pairs']} streamed in this run")
    assert planned >= 300 and _RAN["pairs"] <= planned


def test_initial_state_is_copied_and_yields_to_the_pieces_dtype():
    """The stream keeps its own copy of initial_state (and hands out copies of its state), and a
    float64 history does not turn float32 pieces' outputs into float64."""
    module = nn.Conv1d(1, 1, 3, dtype="float32")
    history = np.zeros((1, 1, 2))
    streamer = StreamingConv(module, initial_state=history)
    history[...] = 5.0
    assert not streamer.state.any()
    out = streamer.step(np.ones((1, 1, 3), np.float32))
    assert out.dtype == np.float32
    view = streamer.state
    view[...] = 100.0
    assert (streamer.state == 1.0).all()
