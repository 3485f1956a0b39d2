"""Streaming convolution: a signal that arrives in pieces, convolved piece by piece exactly as offline.

A causal convolution's output at time t reads the inputs t - dilation*(k-1) ... t (its k taps,
``dilation`` apart), so a stream only needs to remember the last ``dilation*(k-1)`` inputs of
every channel: :class:`StreamingConv` keeps them as its :attr:`~StreamingConv.state` and, at each
:meth:`~StreamingConv.step`, emits every output whose window the new piece completes.  The outputs
of all steps, joined along time, are the module applied offline to the whole signal with causal
padding along time (``dilation*(k-1)`` zeros before, none after) and the module's own padding on
its other axes.

Time is the first spatial axis of an ``npconv.nn`` module's input ``(N, C, T, *rest)``, and of a
Keras layer's ``(N, T, *rest, C)``.  With a stride, outputs fall on the stride's phase (output j
reads padded samples ``j*stride`` ...), and the state also holds the samples of the next window
that have arrived.  A step's cost is proportional to its piece, not to the history: the taps of
the pending outputs are gathered from the state (k slices of the piece's length) and convolved
with the taps ``length`` apart, however large the dilation.  A complex signal streams through
an ``npconv.nn`` module as its forward takes it (not through a Keras layer: Keras has no complex).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt

from . import core
from .arrays import as_array, as_real_array, compute_dtypes
from .spec import ConvSpec

__all__ = ["StreamingConv", "StreamingSequential"]


def _causal_spec(module: Any, op: str) -> ConvSpec:
    """The module's spec, refused where it cannot stream: transposed, or padded along time other
    than causally (0 before the first step's history, or exactly dilation*(k-1) before, 0 after)."""
    spec = getattr(module, "spec", None)
    if not isinstance(spec, ConvSpec):
        raise TypeError(f"{op}: expected an npconv.nn Conv1d/2d/3d or a Keras Conv1D/2D/3D layer, "
                        f"got {type(module).__name__}")
    if spec.transposed:
        raise ValueError(f"{op}: a transposed convolution cannot stream (each input spreads into later "
                         f"outputs it has already emitted); stream its forward counterpart instead")
    history = spec.dilation[0] * (spec.kernel_size[0] - 1)
    if spec.same_rule is not None or spec.padding[0] not in ((0, 0), (history, 0)):
        time_pads = spec.same_rule or spec.padding[0]
        raise ValueError(f"{op}: padding along time must be causal to stream: (dilation*(k-1), 0) = "
                         f"({history}, 0), 'causal' or 0 (the stream supplies the causal pad), got {time_pads!r}; "
                         f"a window that reads later inputs cannot be emitted when its time comes")
    return spec


class StreamingConv:
    """An ``npconv.nn`` Conv1d/2d/3d (or a Keras Conv1D/2D/3D layer) run on a signal piece by piece.

    Parameters
    ----------
    module : npconv.nn.Conv1d, Conv2d, Conv3d, or npconv.keras Conv1D/2D/3D
        Not transposed; its padding along time must be 0, 'causal' or (dilation*(k-1), 0).  A
        Keras layer must be built (called once, or ``build``); its pieces are channels_last as
        its data (``data_format='channels_first'`` layers take channels-first pieces).
    initial_state : array_like, optional
        The history before the signal, ``(N, C, dilation*(k-1), *rest)`` (unbatched without N;
        a Keras layer's in its data_format); default zeros.

    Attributes
    ----------
    state : numpy.ndarray or None
        The input samples kept for the next windows, ``(N, C, S, *rest)`` (unbatched without N),
        ``S = dilation*(k-1)`` with stride 1; with a stride, also the next window's samples that
        have arrived (``S < dilation*(k-1) + stride``).  None before the first step when no
        ``initial_state`` was given.

    Examples
    --------
    >>> import numpy as np, npconv
    >>> from npconv.stream import StreamingConv
    >>> conv = npconv.nn.Conv1d(1, 1, 3, dilation=2, bias=False)
    >>> conv.weight[...] = 1.0
    >>> stream = StreamingConv(conv)
    >>> x = np.arange(1.0, 9.0).reshape(1, 1, 8)
    >>> parts = [stream.step(x[..., :3]), stream.step(x[..., 3:4]), stream.step(x[..., 4:])]
    >>> [p.shape[-1] for p in parts], stream.state.shape          # outputs per step; 4 samples kept
    ([3, 1, 4], (1, 1, 4))
    >>> np.concatenate(parts, axis=-1)[0, 0]                        # x[t] + x[t-2] + x[t-4], zeros before
    array([ 1.,  2.,  4.,  6.,  9., 12., 15., 18.])
    """

    def __init__(self, module: Any, *, initial_state: npt.ArrayLike | None = None) -> None:
        self._channels_last, self._keras = _is_keras_channels_last(module), hasattr(module, "get_config")
        self.module = _as_module(module)
        self._spec = _causal_spec(self.module, "StreamingConv")
        self._history = self._spec.dilation[0] * (self._spec.kernel_size[0] - 1)
        self._initial = None if initial_state is None else self._checked_history(
            self._from_layout(np.array(self._read(initial_state, "initial_state", "StreamingConv"))))
        self.reset()

    # ---- the public face ---------------------------------------------------------------
    @property
    def state(self) -> np.ndarray | None:
        return None if self._buffer is None else self._to_layout(self._shaped(self._buffer)).copy()

    def reset(self) -> None:
        """Forget the stream: back to the zeros history (or ``initial_state``)."""
        self._buffer: np.ndarray | None = None
        self._skip = 0  # inputs to drop before the next window (a stride longer than the window)
        self._batched: bool | None = None
        if self._initial is not None:
            self._batched = self._initial.ndim == self._spec.ndim + 2
            self._buffer = (self._initial if self._batched else self._initial[None]).copy()
        self._from_initial = self._initial is not None  # its dtype yields to the first piece's

    def step(self, chunk: npt.ArrayLike) -> np.ndarray:
        """The outputs that the next piece of the signal completes.

        Parameters
        ----------
        chunk : array_like
            ``(N, C, T, *rest)`` or unbatched ``(C, T, *rest)`` (a Keras layer's: its data_format),
            any ``T >= 0``; batch, channels and the other axes as the earlier pieces'.

        Returns
        -------
        numpy.ndarray
            ``(N, C_out, T_out, *rest_out)``: the outputs whose windows are now complete (``T_out``
            may be 0).

        Raises
        ------
        ValueError
            A piece whose rank, batch, channels or other axes differ from the stream's.
        TypeError
            A piece that is not real or complex numbers (a Keras layer's: not real numbers).
        """
        x = self._accepted(self._read(chunk, "chunk", "StreamingConv.step"))
        x = self._skipped(x)
        if self._from_initial and self._buffer is not None:
            # a complex history keeps its imaginary part: the piece's precision, complex
            dtype = np.result_type(x.dtype, np.complex64) if np.iscomplexobj(self._buffer) else x.dtype
            self._buffer, self._from_initial = self._buffer.astype(dtype), False
        self._buffer = x if self._buffer is None else np.concatenate([self._buffer, x.astype(
            np.result_type(self._buffer, x), copy=False)], axis=2)
        stride, span = self._spec.stride[0], self._history + 1
        count = (self._buffer.shape[2] - span) // stride + 1 if self._buffer.shape[2] >= span else 0
        out = self._windows(self._buffer, count)
        consumed = count * stride
        if count:  # a stride longer than the window: the next window starts past what has arrived
            self._skip = max(consumed - self._buffer.shape[2], 0)
        self._buffer = self._buffer[:, :, min(consumed, self._buffer.shape[2]):]
        return self._to_layout(self._shaped(out))

    def offline(self, signal: npt.ArrayLike) -> np.ndarray:
        """The module on a whole signal with causal padding along time: what the steps add up to."""
        x = self._from_layout(self._read(signal, "signal", "StreamingConv.offline"))
        batched = x.ndim == self._spec.ndim + 2
        x = x if batched else x[None]
        pads = ((0, 0), (0, 0), (self._history, 0)) + ((0, 0),) * (self._spec.ndim - 1)
        out = self._windows(np.pad(x, pads), None)
        return self._to_layout(out if batched else out[0])

    # ---- the arithmetic ------------------------------------------------------------------
    def _windows(self, buffer: np.ndarray, count: int | None) -> np.ndarray:
        """The module's outputs for the first ``count`` windows of ``buffer`` (None: all), the taps
        gathered first so that the work is proportional to ``count`` whatever the dilation."""
        spec, k, d, s = self._spec, self._spec.kernel_size[0], self._spec.dilation[0], self._spec.stride[0]
        if count is None:
            count = (buffer.shape[2] - self._history - 1) // s + 1
        rest = buffer.shape[3:]
        other_pads = spec.pads((1,) + rest)[1:]
        weight, bias = np.asarray(self.module.weight), self.module.bias
        if count <= 0:
            return np.zeros(self._out_shape(buffer, rest, other_pads), compute_dtypes(buffer, weight, bias)[1])
        length = (count - 1) * s + 1
        if spec.ndim == 1:  # a sequence: the taps as columns, one small GEMM per group (no planner per step)
            return self._sequence_windows(buffer, count, weight, bias)
        taps = np.concatenate([buffer[:, :, i * d:i * d + length] for i in range(k)], axis=2)
        return core.conv(taps, weight, bias, stride=spec.stride, padding=((0, 0),) + other_pads,
                         dilation=(length,) + spec.dilation[1:], groups=spec.groups, padding_mode=spec.padding_mode)

    def _sequence_windows(self, buffer: np.ndarray, count: int, weight: np.ndarray, bias: Any) -> np.ndarray:
        """1-D: columns (N, G, C/G * k, count) of the taps, times each group's weight (C_out/G, C/G * k)."""
        spec, k, d, s = self._spec, self._spec.kernel_size[0], self._spec.dilation[0], self._spec.stride[0]
        dtype = compute_dtypes(buffer, weight, bias)[0]
        n, channels, groups = buffer.shape[0], buffer.shape[1], spec.groups
        taps = np.stack([buffer[:, :, i * d:i * d + (count - 1) * s + 1:s] for i in range(k)], axis=2)
        columns = taps.astype(dtype, copy=False).reshape(n, groups, channels // groups * k, count)
        matrices = np.asarray(weight, dtype).reshape(groups, -1, channels // groups * k)
        out = np.matmul(matrices, columns).reshape(n, -1, count)
        if bias is not None:
            out += np.asarray(bias, dtype)[:, None]
        return out.astype(compute_dtypes(buffer, weight, bias)[1], copy=False)

    def _out_shape(self, buffer: np.ndarray, rest: tuple[int, ...], other_pads: Any) -> tuple[int, ...]:
        """(N, C_out, 0, *rest_out): an empty step's output."""
        spec = self._spec
        rest_out = tuple((size + lo + hi - ek) // st + 1 for size, (lo, hi), ek, st in
                         zip(rest, other_pads, spec.effective_kernel[1:], spec.stride[1:]))
        return (buffer.shape[0], np.shape(self.module.weight)[0], 0) + rest_out

    # ---- checks and layouts --------------------------------------------------------------
    def _read(self, value: npt.ArrayLike, name: str, op: str) -> np.ndarray:
        """npconv's dtype policy: complex streams through an npconv.nn conv (as its forward takes
        it), not through a Keras layer (Keras has no complex convolution)."""
        if self._keras:
            return as_real_array(value, name, op, why="Keras has no complex convolution")
        return as_array(value, name, op)

    def _checked_history(self, history: np.ndarray) -> np.ndarray:
        """``initial_state``: (N, C, dilation*(k-1), *rest) or unbatched, C the module's channels."""
        n, channels = self._spec.ndim, np.shape(self.module.weight)[1] * self._spec.groups
        if history.ndim not in (n + 1, n + 2):
            raise ValueError(f"StreamingConv: initial_state must be (N, C, {self._history}{', ...' * (n - 1)}) or "
                             f"unbatched, with {n} spatial axes, got shape {history.shape}")
        batched = history if history.ndim == n + 2 else history[None]
        if batched.shape[1] != channels or batched.shape[2] != self._history:
            raise ValueError(f"StreamingConv: initial_state must hold the module's {channels} channels and "
                             f"dilation*(k-1) = {self._history} samples along time, got {batched.shape[1]} channels "
                             f"and {batched.shape[2]} samples (shape {history.shape})")
        return history

    def _accepted(self, chunk: np.ndarray) -> np.ndarray:
        """The piece as (N, C, T, *rest), checked against the stream's batch, channels and axes."""
        x = self._from_layout(chunk)
        n = self._spec.ndim
        if x.ndim not in (n + 1, n + 2):
            raise ValueError(f"StreamingConv.step: a piece must be ({'N, ' if self._batched is not False else ''}"
                             f"C, T{', ...' * (n - 1)}) with {n} spatial axes, got shape {chunk.shape}")
        batched = x.ndim == n + 2
        if self._batched is not None and batched != self._batched:
            raise ValueError(f"StreamingConv.step: the stream is {'batched' if self._batched else 'unbatched'}; "
                             f"got a piece of shape {chunk.shape}")
        self._batched = batched
        x = x if batched else x[None]
        channels = np.shape(self.module.weight)[1] * self._spec.groups
        if x.shape[1] != channels:
            raise ValueError(f"StreamingConv.step: the module takes {channels} channels, got a piece with "
                             f"{x.shape[1]} (shape {chunk.shape})")
        if self._buffer is not None and (x.shape[0], *x.shape[3:]) != (self._buffer.shape[0], *self._buffer.shape[3:]):
            raise ValueError(f"StreamingConv.step: a piece must match the stream's batch and non-time axes "
                             f"{(self._buffer.shape[0], *self._buffer.shape[3:])}, got {(x.shape[0], *x.shape[3:])} "
                             f"(piece shape {chunk.shape})")
        if self._buffer is None:  # the zeros history, in this stream's batch and axes
            self._buffer = np.zeros(x.shape[:2] + (self._history,) + x.shape[3:], x.dtype)
        return x

    def _skipped(self, x: np.ndarray) -> np.ndarray:
        """Drop the inputs no window reads (a stride longer than the window)."""
        if not self._skip:
            return x
        dropped = min(self._skip, x.shape[2])
        self._skip -= dropped
        return x[:, :, dropped:]

    def _shaped(self, array: np.ndarray) -> np.ndarray:
        return array if self._batched is not False else array[0]

    def _from_layout(self, array: np.ndarray) -> np.ndarray:
        return np.moveaxis(array, -1, -self._spec.ndim - 1) if self._channels_last else array

    def _to_layout(self, array: np.ndarray) -> np.ndarray:
        return np.moveaxis(array, -self._spec.ndim - 1, -1) if self._channels_last else array


def _is_keras_channels_last(layer: Any) -> bool:
    return getattr(layer, "data_format", None) == "channels_last" and hasattr(layer, "get_config")


def _as_module(layer: Any) -> Any:
    """An npconv.nn module as it is; a Keras layer as the npconv.nn module computing the same."""
    if not hasattr(layer, "get_config"):
        return layer
    from .convert.keras import keras_to_torch
    module = keras_to_torch(layer)
    if not hasattr(module, "spec"):
        raise ValueError(f"StreamingConv: a Keras {type(layer).__name__} with an activation is a conv and an "
                         f"activation; stream the conv (activation=None) and apply the activation to each step's output")
    return module


def _elementwise(layer: Any) -> Any:
    """A layer that acts on each time step alone (ReLU; Dropout in eval mode), else refused:
    pooling, Flatten, Linear or training-mode Dropout would mix or resample time differently
    piece by piece than over the whole signal."""
    from .nn import Dropout, ReLU
    if isinstance(layer, ReLU) or (isinstance(layer, Dropout) and not layer.training):
        return layer
    state = " in training mode" if isinstance(layer, Dropout) else ""
    raise ValueError(f"StreamingSequential: {type(layer).__name__}{state} cannot stream: only causal convolutions "
                     f"and element-wise layers (ReLU, Dropout in eval mode) give piece by piece what they give "
                     f"over the whole signal")


class StreamingSequential:
    """Layers stepped in turn: convs through :class:`StreamingConv`, element-wise layers (ReLU,
    Dropout in eval mode, ...) applied to each step's output.

    Parameters
    ----------
    *layers : npconv.nn modules, or one npconv.nn.Sequential
        Conv1d/2d/3d (causal along time) and element-wise layers.

    Examples
    --------
    >>> import numpy as np, npconv
    >>> from npconv.stream import StreamingSequential
    >>> _ = npconv.manual_seed(0)
    >>> net = StreamingSequential(npconv.nn.Conv1d(2, 4, 2), npconv.nn.ReLU(), npconv.nn.Conv1d(4, 3, 2, dilation=2))
    >>> x = np.random.default_rng(0).standard_normal((1, 2, 50))
    >>> streamed = np.concatenate([net.step(x[..., i:i + 7]) for i in range(0, 50, 7)], axis=-1)
    >>> bool(np.allclose(streamed, net.offline(x), rtol=0, atol=1e-12))
    True
    """

    def __init__(self, *layers: Any) -> None:
        if len(layers) == 1 and hasattr(layers[0], "_modules") and not hasattr(layers[0], "spec"):
            layers = tuple(layers[0])
        self.layers = [StreamingConv(layer) if hasattr(layer, "spec") or hasattr(layer, "get_config")
                       else _elementwise(layer) for layer in layers]

    def step(self, chunk: npt.ArrayLike) -> np.ndarray:
        """The stack's outputs that this piece completes."""
        x: Any = chunk
        for layer in self.layers:
            x = layer.step(x) if isinstance(layer, StreamingConv) else layer(x)
        return np.asarray(x)

    def offline(self, signal: npt.ArrayLike) -> np.ndarray:
        """The stack on a whole signal, each conv causally padded along time."""
        x: Any = signal
        for layer in self.layers:
            x = layer.offline(x) if isinstance(layer, StreamingConv) else layer(x)
        return np.asarray(x)

    def reset(self) -> None:
        """Forget the stream in every layer."""
        for layer in self.layers:
            if isinstance(layer, StreamingConv):
                layer.reset()
