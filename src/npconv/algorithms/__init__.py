"""Convolution algorithms: each computes the same thing from a validated spec
(npconv.algorithm_registry registers them with the shapes each applies to; npconv.select
chooses one per call).

- :mod:`.reference` — short loops over kernel taps, float64: the oracle of the tests, not planned;
- :mod:`.im2col_gemm` — strided windows + one BLAS GEMM per image and group (and, as
  ``gemm_col2im``, its adjoint for transposed convolution): the general algorithm;
- :mod:`.pointwise` — 1x1 convolutions as a GEMM on the data as it lies;
- :mod:`.depthwise` and :mod:`.depthwise_jit` — depthwise and few-channel grouped layers, in
  NumPy and compiled with Numba (``depthwise_jit_kernels``);
- :mod:`.direct_jit` — a compiled direct convolution (``direct_jit_kernels``);
- :mod:`.winograd` — Winograd F(2, 3) and F(4, 3) for 3x3 stride-1 layers (``winograd_jit_kernels``);
- :mod:`.fft` — FFT convolution for large kernels (:mod:`.fft_grad` its weight gradient,
  :mod:`.fft_spectra` the kept kernel spectra);
- :mod:`.polyphase` — strided transposed convolution as stride-1 phases;
- :mod:`.separable_passes` — 2-D filters of low rank as a vertical and a horizontal 1-D pass;
- ``maxpool_jit_kernels``, ``norm_jit_kernels``, ``gelu_jit_kernels`` — the compiled loops of
  :mod:`npconv.nn`'s MaxPool2d, LayerNorm/BatchNorm and GELU (whole networks spent more there
  than in some of their convolutions).

:mod:`.chunks` holds what the GEMM-based ones share.  Algorithms do not import one another;
the composite ones (polyphase, separable passes) run their sub-convolutions through
:func:`npconv.core.forward`, so the planner chooses for those too.
"""
