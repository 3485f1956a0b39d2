"""ONNX's CausalConvWithState (opset 27): one chunk of a stateful causal depthwise conv.

The operator (used by Mamba and Gated DeltaNet to run their short convolution token by
token) fuses ONNX's Concat + Conv + Slice pattern:

- ``padded = concat(past_state, input)`` along time (``past_state`` zeros when absent);
- ``output = depthwise_conv(padded, weight) + bias`` with ``group = C`` and no padding, so
  output position t reads ``padded[t : t + k]``, i.e. inputs t-k+1 ... t; the output has the
  input's shape (N, C, L);
- then the fused activation: ``'none'``, or ``'silu'`` (and its alias ``'swish'``),
  ``y * sigmoid(y)``;
- ``present_state = padded[:, :, -(k - 1):]``, the last k-1 samples of ``padded``: past
  samples (or zeros) still count when L < k - 1.

Feeding each call's ``present_state`` to the next as ``past_state`` makes the chunks' outputs
the causal conv of the whole sequence, as :class:`npconv.stream.StreamingConv` over an
``nn.Conv1d(C, C, k, groups=C)`` with ``initial_state=past_state`` computes it.

Every operand is rank 3 (bias rank 1), as the spec, the onnx reference evaluator and ONNX
Runtime have it; for more axes the spec says to reshape into the batch or channel axis.
Dtypes: input, weight, bias and past_state share one float type T (float16, float32; npconv
also takes float64); the outputs have it.  float16 is convolved in float32 and rounded once,
then the activation is computed in float32 from that float16 value and rounded again, as the
onnx reference does; SiLU(-inf) is its limit -0 (the reference's formula gives NaN).  The
conv is npconv's engine (:func:`npconv.core.conv`); every refusal (``ValueError``/``TypeError``
naming the rule and the shapes) comes before any arithmetic.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from . import core
from .arrays import as_real_array

__all__ = ["causal_conv_with_state", "ACTIVATIONS"]

OP = "CausalConvWithState"
NO_COMPLEX = f"ONNX Runtime's {OP} takes float tensors only (its type T has no complex)"
#: The values ONNX allows for the ``activation`` attribute ('swish' is 'silu').
ACTIVATIONS = ("none", "silu", "swish")


def causal_conv_with_state(input: npt.ArrayLike, weight: npt.ArrayLike, bias: npt.ArrayLike | None = None,
                           past_state: npt.ArrayLike | None = None, *,
                           activation: str | bytes = "none") -> tuple[np.ndarray, np.ndarray]:
    """ONNX CausalConvWithState (opset 27): causal depthwise 1-D conv of a chunk, carrying state.

    Parameters
    ----------
    input : array_like
        (N, C, L), channels first; L may be 0.
    weight : array_like
        (C, 1, k), k >= 1: one kernel per channel (a depthwise ``Conv`` weight, group = C).
    bias : array_like, optional
        (C,).
    past_state : array_like, optional
        (N, C, k - 1): the k-1 samples before ``input``; default zeros.
    activation : {'none', 'silu', 'swish'}, default 'none'
        Fused activation; 'swish' is 'silu', ``y * sigmoid(y)`` (str or bytes, as protobufs
        hold it).

    Returns
    -------
    output : numpy.ndarray
        (N, C, L): ``output[n, c, t] = act(bias[c] + sum_i weight[c, 0, i] * padded[n, c, t + i])``
        with ``padded = concat(past_state, input)`` along time.
    present_state : numpy.ndarray
        (N, C, k - 1): the last k-1 samples of ``padded`` (a new array), the next call's
        ``past_state``.

    Raises
    ------
    ValueError
        An operand not of its rank, weight not (C, 1, k) with k >= 1 and C the input's channels,
        bias not (C,), past_state not (N, C, k - 1), an unknown activation.
    TypeError
        Operands not of one float type T, or not real numbers; activation not a string.

    Examples
    --------
    >>> import numpy as np
    >>> w = np.array([[[1., 10., 100.]]])                 # one channel, k = 3
    >>> y, state = causal_conv_with_state(np.array([[[1., 2., 3.]]]), w)
    >>> y, state                                          # zeros before the first sample
    (array([[[100., 210., 321.]]]), array([[[2., 3.]]]))
    >>> causal_conv_with_state(np.array([[[4.]]]), w, past_state=state)[0]  # the next token
    array([[[432.]]])
    """
    x = as_real_array(input, "input", OP, why=NO_COMPLEX)
    if x.ndim != 3:
        raise ValueError(f"{OP}: input must be rank 3 (batch_size, channels, length), got input of shape "
                         f"{list(x.shape)}")
    w = _of_input_type(x, "weight", weight)
    b = None if bias is None else _of_input_type(x, "bias", bias)
    state = None if past_state is None else _of_input_type(x, "past_state", past_state)
    act = _activation(activation)
    k = _check_shapes(x.shape, w.shape, None if b is None else b.shape, None if state is None else state.shape)
    n, c, length = x.shape
    if state is None:
        state = np.zeros((n, c, k - 1), dtype=x.dtype)
    padded = np.concatenate([state, x], axis=2)
    present = padded[:, :, length:].copy()
    if length == 0:  # nothing to convolve (the engine refuses a kernel longer than its input)
        return np.zeros(x.shape, dtype=x.dtype), present
    y = core.conv(padded, w, b, groups=c)  # no padding: output t reads padded[t : t + k]
    if act != "none":
        y = _silu(y)
    return y, present


def _of_input_type(x: np.ndarray, name: str, value: npt.ArrayLike) -> np.ndarray:
    """``value`` as an array of the input's type; a float array of another type is refused (ONNX's T)."""
    a = as_real_array(value, name, OP, why=NO_COMPLEX)
    if isinstance(value, np.ndarray) and value.dtype.kind == "f" and a.dtype != x.dtype:
        raise TypeError(f"{OP}: input, weight, bias and past_state must share one type T, got input "
                        f"{x.dtype} and {name} {a.dtype}")
    return a.astype(x.dtype, copy=False)


def _activation(value: object) -> str:
    """The activation attribute as one of ACTIVATIONS."""
    if isinstance(value, bytes):
        value = value.decode("utf-8", "replace")
    if not isinstance(value, str):
        raise TypeError(f"{OP}: activation must be a string, one of {list(ACTIVATIONS)}, got {value!r}")
    if value not in ACTIVATIONS:
        raise ValueError(f"{OP}: unsupported activation {value!r}; the spec allows {list(ACTIVATIONS)} "
                         f"(default 'none')")
    return value


def _check_shapes(x: tuple[int, ...], w: tuple[int, ...], b: tuple[int, ...] | None,
                  state: tuple[int, ...] | None) -> int:
    """The spec's shape rules (input (N, C, L), weight (C, 1, k), bias (C,), past_state
    (N, C, k - 1)); returns k."""
    n, c, _ = x
    if len(w) != 3 or w[1] != 1 or w[2] < 1:
        raise ValueError(f"{OP}: weight must be (channels, 1, k) with k >= 1 (a depthwise Conv weight, "
                         f"group = channels), got weight of shape {list(w)}")
    if w[0] != c:
        raise ValueError(f"{OP}: weight.shape[0] must be the input's channels: weight (channels, 1, k) = "
                         f"{list(w)} but input (batch_size, channels, length) = {list(x)} has {c} channels")
    k = w[2]
    if b is not None and b != (c,):
        raise ValueError(f"{OP}: bias must be (channels,) = ({c},), got bias of shape {list(b)}")
    if state is not None and state != (n, c, k - 1):
        raise ValueError(f"{OP}: past_state must be (batch_size, channels, k - 1) = [{n}, {c}, {k - 1}] for "
                         f"input of shape {list(x)} and weight of shape {list(w)}, got past_state of shape "
                         f"{list(state)}")
    return k


def _silu(y: np.ndarray) -> np.ndarray:
    """``y * sigmoid(y)`` in float32 for float16 (else in y's type), in y's type.  The sigmoid
    comes from ``exp(-|y|)``, so nothing overflows; -inf gives the limit -0 (not ``-inf * 0``,
    NaN, as the onnx reference's formula does), NaN stays NaN."""
    v = y.astype(np.float32) if y.dtype == np.float16 else y
    e = np.exp(-np.abs(v))
    sigmoid = np.where(v >= 0, 1 / (1 + e), e / (1 + e))
    with np.errstate(invalid="ignore"):  # -inf * 0, replaced below
        out = np.where(np.isneginf(v), -0.0, v * sigmoid)
    return out.astype(y.dtype, copy=False)
