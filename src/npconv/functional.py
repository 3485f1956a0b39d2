"""``torch.nn.functional``'s convolution family, on NumPy arrays.

Like PyTorch's, every convolution here is a cross-correlation: the kernel is not flipped
(:func:`conv2d` shows the relation to ``scipy.signal.correlate2d`` and ``convolve2d``).
Signatures, argument order and defaults are PyTorch's.  Extensions (keyword-only on the conv
functions, documented in the README):

- ``padding_mode=`` ('zeros', 'reflect', 'replicate', 'circular') on ``conv1d/2d/3d``; the
  padded values are gathered while the windows are built, the input is never copied padded;
- per-side padding pairs ``padding=((lo, hi), ...)`` (each entry an int or a pair);
- ``padding='same'`` at any stride (TensorFlow/ONNX SAME_UPPER: out = ceil(in / stride)),
  plus ``'same_lower'`` and ``'causal'``;
- ``unfold``/``fold`` for 1, 2 and 3 spatial dims (the count comes from the tuple arguments;
  a bare int means 2-D, as in PyTorch).
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from . import core
from .arrays import as_array
# unfold/fold (npconv.blocks) and pad (npconv.padding) live in their own modules; re-exported
# here, so npconv.functional.unfold, .fold, .pad (and .spatial_dims) stay where they were
from .blocks import fold, spatial_dims, unfold  # noqa: F401
from .padding import PAD_MODES, pad  # noqa: F401
from .spec import ConvSpec, IntOrTuple, Padding

__all__ = ["conv1d", "conv2d", "conv3d", "conv_transpose1d", "conv_transpose2d",
           "conv_transpose3d", "unfold", "fold", "pad"]


def _conv_nd(n: int, input: npt.ArrayLike, weight: npt.ArrayLike, bias: npt.ArrayLike | None,
             stride: IntOrTuple, padding: Padding, dilation: IntOrTuple, groups: int,
             padding_mode: str = "zeros", transposed: bool = False,
             output_padding: IntOrTuple = 0) -> np.ndarray:
    op = f"conv_transpose{n}d" if transposed else f"conv{n}d"
    w = as_array(weight, "weight", op)
    if w.ndim != n + 2:
        raise ValueError(f"{op}: weight must be {n + 2}-D (channels, channels, *kernel_size), "
                         f"got weight of size {list(w.shape)}")
    spec = ConvSpec.build(w.shape[2:], stride, padding, dilation, groups, padding_mode,
                          transposed, output_padding, ndim=n, op=op)
    return core.apply(spec, input, w, bias)


def conv1d(input: npt.ArrayLike, weight: npt.ArrayLike, bias: npt.ArrayLike | None = None,
           stride: IntOrTuple = 1, padding: Padding = 0, dilation: IntOrTuple = 1, groups: int = 1, *,
           padding_mode: str = "zeros") -> np.ndarray:
    """1-D convolution (a cross-correlation, as PyTorch's), as ``torch.nn.functional.conv1d``.

    Parameters
    ----------
    input : array_like
        (N, C_in, L), or unbatched (C_in, L).
    weight : array_like
        (C_out, C_in / groups, k).
    bias, stride, padding, dilation, groups, padding_mode
        As in :func:`conv2d`, with one entry per spatial dim (here one).

    Returns
    -------
    numpy.ndarray
        (N, C_out, L_out), ``L_out = floor((L + pad_lo + pad_hi - dilation * (k - 1) - 1) / stride) + 1``.

    Raises
    ------
    ConvRuleError, ConvRuleTypeError, TypeError, ValueError
        As :func:`conv2d`.

    Examples
    --------
    >>> import numpy as np
    >>> conv1d(np.array([[[1., 2., 4., 8.]]]), np.array([[[1., 0., -1.]]]), padding=1)
    array([[[-2., -3., -6.,  4.]]])
    """
    return _conv_nd(1, input, weight, bias, stride, padding, dilation, groups, padding_mode)


def conv2d(input: npt.ArrayLike, weight: npt.ArrayLike, bias: npt.ArrayLike | None = None,
           stride: IntOrTuple = 1, padding: Padding = 0, dilation: IntOrTuple = 1, groups: int = 1, *,
           padding_mode: str = "zeros") -> np.ndarray:
    """2-D convolution of a batch of images, as ``torch.nn.functional.conv2d``.

    Like PyTorch's "convolution" (and TensorFlow's and JAX's), this is a cross-correlation:
    the kernel slides over the input as it is, not flipped.  With ``groups=1`` each output
    channel is the bias plus a sum over the input channels of
    ``scipy.signal.correlate2d(x[n, c], weight[o, c], mode='valid')`` on the padded input.
    ``scipy.signal.convolve2d`` flips the kernel first, so it gives these numbers only for the
    flipped kernel ``weight[o, c, ::-1, ::-1]`` (see the examples).

    Parameters
    ----------
    input : array_like
        (N, C_in, H, W), or unbatched (C_in, H, W) (the output is then unbatched too).
        float16, float32 or float64; ints and bools are read as float64.
    weight : array_like
        (C_out, C_in / groups, kH, kW).
    bias : array_like, optional
        (C_out,): added to every position of its output channel.
    stride : int or tuple of 2 ints, default 1
        Step of the window along (H, W).
    padding : int, tuple or str, default 0
        Added around the input: an int for every side, (pH, pW), per-side pairs
        ((top, bottom), (left, right)), ``'valid'`` (none), ``'same'`` (at any stride:
        ``H_out = ceil(H / stride)``, an odd total's extra pad after), ``'same_lower'`` (the
        extra pad before) or ``'causal'`` (all of it before).
    dilation : int or tuple of 2 ints, default 1
        Spacing between kernel taps: the effective kernel is ``dilation * (k - 1) + 1``.
    groups : int, default 1
        Input and output channels are split into ``groups`` groups convolved separately;
        ``groups == C_in`` is a depthwise convolution.
    padding_mode : {'zeros', 'reflect', 'replicate', 'circular'}, default 'zeros'
        What the padding holds (keyword-only).

    Returns
    -------
    numpy.ndarray
        (N, C_out, H_out, W_out) with
        ``H_out = floor((H + pad_top + pad_bottom - dilation[0] * (kH - 1) - 1) / stride[0]) + 1``
        (W_out alike), in the operands' float dtype (float16 is computed in float32).

    Raises
    ------
    ConvRuleError
        A ``ValueError`` for a setting or shape that breaks a rule: a kernel larger than the
        padded input, C_in not ``weight.shape[1] * groups``, C_out not divisible by groups,
        a bias not of length C_out, a stride, dilation or groups below 1, negative padding,
        reflect padding not below the size.  The message names the rule, the numbers and the
        nearest valid setting.
    ConvRuleTypeError
        A ``TypeError`` for a parameter of the wrong type (a float stride, a dict padding).
    TypeError
        ``input``, ``weight`` or ``bias`` not real numbers (complex, strings, None).
    ValueError
        ``weight`` not 4-D, or an output larger than the memory this process can use.

    See Also
    --------
    conv_transpose2d : its adjoint.
    npconv.conv : the N-d primitive behind every face.

    Examples
    --------
    >>> import numpy as np
    >>> from scipy.signal import convolve2d, correlate2d
    >>> x = np.arange(36.).reshape(1, 1, 6, 6)
    >>> w = np.array([[[[1., 2., 0.], [0., 1., -1.], [3., 0., 1.]]]])
    >>> y = conv2d(x, w)
    >>> y.shape
    (1, 1, 4, 4)
    >>> np.allclose(y[0, 0], correlate2d(x[0, 0], w[0, 0], mode="valid"))
    True
    >>> np.allclose(y[0, 0], convolve2d(x[0, 0], w[0, 0, ::-1, ::-1], mode="valid"))
    True
    >>> np.allclose(y[0, 0], convolve2d(x[0, 0], w[0, 0], mode="valid"))  # the unflipped kernel
    False
    >>> conv2d(x, np.ones((1, 1, 3, 3)), stride=2)[0, 0]
    array([[ 63.,  81.],
           [171., 189.]])
    """
    return _conv_nd(2, input, weight, bias, stride, padding, dilation, groups, padding_mode)


def conv3d(input: npt.ArrayLike, weight: npt.ArrayLike, bias: npt.ArrayLike | None = None,
           stride: IntOrTuple = 1, padding: Padding = 0, dilation: IntOrTuple = 1, groups: int = 1, *,
           padding_mode: str = "zeros") -> np.ndarray:
    """3-D convolution (a cross-correlation, as PyTorch's), as ``torch.nn.functional.conv3d``.

    Parameters
    ----------
    input : array_like
        (N, C_in, D, H, W), or unbatched (C_in, D, H, W).
    weight : array_like
        (C_out, C_in / groups, kD, kH, kW).
    bias, stride, padding, dilation, groups, padding_mode
        As in :func:`conv2d`, with one entry per spatial dim (here three).

    Returns
    -------
    numpy.ndarray
        (N, C_out, D_out, H_out, W_out), each size by :func:`conv2d`'s rule.

    Raises
    ------
    ConvRuleError, ConvRuleTypeError, TypeError, ValueError
        As :func:`conv2d`.

    Examples
    --------
    >>> import numpy as np
    >>> conv3d(np.ones((1, 2, 4, 4, 4)), np.ones((3, 2, 2, 2, 2)), stride=2).shape
    (1, 3, 2, 2, 2)
    """
    return _conv_nd(3, input, weight, bias, stride, padding, dilation, groups, padding_mode)


def conv_transpose1d(input: npt.ArrayLike, weight: npt.ArrayLike, bias: npt.ArrayLike | None = None,
                     stride: IntOrTuple = 1, padding: Padding = 0, output_padding: IntOrTuple = 0,
                     groups: int = 1, dilation: IntOrTuple = 1) -> np.ndarray:
    """Transposed 1-D convolution, as ``torch.nn.functional.conv_transpose1d``.

    Parameters
    ----------
    input : array_like
        (N, C_in, L), or unbatched (C_in, L).
    weight : array_like
        (C_in, C_out / groups, k).
    bias, stride, padding, output_padding, groups, dilation
        As in :func:`conv_transpose2d`, with one entry per spatial dim (here one).

    Returns
    -------
    numpy.ndarray
        (N, C_out, L_out), ``L_out = (L - 1) * stride - 2 * padding + dilation * (k - 1) + output_padding + 1``.

    Raises
    ------
    ConvRuleError, ConvRuleTypeError, TypeError, ValueError
        As :func:`conv_transpose2d`.

    Examples
    --------
    >>> import numpy as np
    >>> conv_transpose1d(np.array([[[1., 2.]]]), np.array([[[1., 1., 1.]]]), stride=2)
    array([[[1., 1., 3., 2., 2.]]])
    """
    return _conv_nd(1, input, weight, bias, stride, padding, dilation, groups,
                    transposed=True, output_padding=output_padding)


def conv_transpose2d(input: npt.ArrayLike, weight: npt.ArrayLike, bias: npt.ArrayLike | None = None,
                     stride: IntOrTuple = 1, padding: Padding = 0, output_padding: IntOrTuple = 0,
                     groups: int = 1, dilation: IntOrTuple = 1) -> np.ndarray:
    """Transposed 2-D convolution (the adjoint of :func:`conv2d`), as PyTorch's.

    Each input value scatters a copy of the kernel, scaled by it, into the output, ``stride``
    apart; ``padding`` then crops that many rows and columns from each side.

    Parameters
    ----------
    input : array_like
        (N, C_in, H, W), or unbatched (C_in, H, W).
    weight : array_like
        (C_in, C_out / groups, kH, kW): the layout of the conv2d it is the adjoint of.
    bias : array_like, optional
        (C_out,).
    stride : int or tuple of 2 ints, default 1
        Spacing of the scattered kernels.
    padding : int, tuple or 'valid', default 0
        Rows and columns cropped from each side: an int, (pH, pW) or (lo, hi) pairs.
    output_padding : int or tuple of 2 ints, default 0
        Rows and columns added at the end (each below ``max(stride, dilation)``), to pick one
        of the sizes that conv2d maps to the same input size.
    groups : int, default 1
        As in :func:`conv2d`.
    dilation : int or tuple of 2 ints, default 1
        Spacing between kernel taps.

    Returns
    -------
    numpy.ndarray
        (N, C_out, H_out, W_out) with ``H_out = (H - 1) * stride - pad_top - pad_bottom +
        dilation * (kH - 1) + output_padding + 1`` (W_out alike).

    Raises
    ------
    ConvRuleError
        A ``ValueError`` for a broken rule: output_padding not below ``max(stride,
        dilation)``, an output size below one, C_in not ``weight.shape[0]``, a padding string
        other than 'valid', and :func:`conv2d`'s rules.
    ConvRuleTypeError, TypeError, ValueError
        As :func:`conv2d`.

    Examples
    --------
    >>> import numpy as np
    >>> conv_transpose2d(np.ones((1, 1, 2, 2)), np.ones((1, 1, 2, 2)), stride=1)[0, 0]
    array([[1., 2., 1.],
           [2., 4., 2.],
           [1., 2., 1.]])
    """
    return _conv_nd(2, input, weight, bias, stride, padding, dilation, groups,
                    transposed=True, output_padding=output_padding)


def conv_transpose3d(input: npt.ArrayLike, weight: npt.ArrayLike, bias: npt.ArrayLike | None = None,
                     stride: IntOrTuple = 1, padding: Padding = 0, output_padding: IntOrTuple = 0,
                     groups: int = 1, dilation: IntOrTuple = 1) -> np.ndarray:
    """Transposed 3-D convolution, as ``torch.nn.functional.conv_transpose3d``.

    Parameters
    ----------
    input : array_like
        (N, C_in, D, H, W), or unbatched (C_in, D, H, W).
    weight : array_like
        (C_in, C_out / groups, kD, kH, kW).
    bias, stride, padding, output_padding, groups, dilation
        As in :func:`conv_transpose2d`, with one entry per spatial dim (here three).

    Returns
    -------
    numpy.ndarray
        (N, C_out, D_out, H_out, W_out), each size by :func:`conv_transpose2d`'s rule.

    Raises
    ------
    ConvRuleError, ConvRuleTypeError, TypeError, ValueError
        As :func:`conv_transpose2d`.

    Examples
    --------
    >>> import numpy as np
    >>> conv_transpose3d(np.ones((1, 2, 2, 2, 2)), np.ones((2, 3, 3, 3, 3)), stride=2).shape
    (1, 3, 5, 5, 5)
    """
    return _conv_nd(3, input, weight, bias, stride, padding, dilation, groups,
                    transposed=True, output_padding=output_padding)
