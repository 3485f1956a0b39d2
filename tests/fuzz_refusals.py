"""The refusal half of the fuzz oracle: random settings, valid or not, where npconv must refuse
(ValueError or TypeError) exactly what PyTorch refuses, and agree with it where both accept.

PyTorch's rules are read from PyTorch itself, with three of its paths corrected where they
skip a rule its main path enforces (each noted where it is handled): empty batches skip the
parameter checks, and the grouped transposed path skips the dilation and output-size checks.
"""

from __future__ import annotations

import dataclasses

import torch
import torch.nn.functional as TF

from fuzz_oracle import Case, assert_close, forced, new_torch_module, npconv_forward, operands, per_dim, quiet_torch


def torch_refusal_run(case: Case, x, w, b):
    """PyTorch's own reading of the case: the functional form (padding modes through F.pad, as
    torch.nn's modules do it) or the torch.nn module.  Raises where PyTorch refuses."""
    tx, tw = torch.from_numpy(x), torch.from_numpy(w)
    tb = None if b is None else torch.from_numpy(b)
    if case.entry == "module":
        if case.transposed:
            _check_dilation(case.dilation)
        module = new_torch_module(case, case.padding)
        return _nonempty(case, module(tx)).detach().numpy(), module
    if case.transposed:
        _check_dilation(case.dilation)
        conv = getattr(TF, f"conv_transpose{case.n}d")
        return _nonempty(case, conv(tx, tw, tb, case.stride, case.padding, case.output_padding, case.groups,
                              case.dilation)).numpy(), None
    conv = getattr(TF, f"conv{case.n}d")
    if case.padding_mode != "zeros":
        pads = per_dim(case.padding, case.n)
        tx = TF.pad(tx, [p for pad in reversed(pads) for p in (pad, pad)], mode=case.padding_mode)
        return conv(tx, tw, tb, case.stride, 0, case.dilation, case.groups).numpy(), None
    return conv(tx, tw, tb, case.stride, case.padding, case.dilation, case.groups).numpy(), None


def _check_dilation(dilation):
    """PyTorch's rule that every dilation is >= 1, which its grouped transposed path (oneDNN)
    skips: conv_transpose1d with groups=2 and dilation=0 returns an output, groups=1 refuses."""
    if isinstance(dilation, int) and dilation < 1 or not isinstance(dilation, int) and min(dilation) < 1:
        raise RuntimeError(f"dilation should be greater than zero, but got {dilation}")


def _nonempty(case: Case, output):
    """PyTorch's rule that a transposed output has at least one position per dim: its grouped
    and depthwise paths skip the check and return an empty output (groups=1 refuses the same
    sizes, and a pad one larger crashes in oneDNN), so an empty output counts as a refusal."""
    if 0 in output.shape[-case.n:]:
        raise RuntimeError(f"Output size is too small (calculated output {tuple(output.shape)})")
    return output


def _torch_verdict(case: Case, x, w, b):
    """(output, torch module or None, None) where PyTorch accepts, (None, None, error) where it refuses."""
    try:
        with quiet_torch():
            if case.batch == 0:  # PyTorch skips its parameter checks on an empty batch: ask with one image
                one = dataclasses.replace(case, batch=1)
                torch_refusal_run(one, *operands(one))
            return (*torch_refusal_run(case, x, w, b), None)
    except Exception as error:  # RuntimeError, ValueError, TypeError, NotImplementedError: PyTorch's choice
        return None, None, error


def check_refusal(case: Case) -> str:
    """npconv refuses (ValueError or TypeError, nothing else) exactly when PyTorch refuses;
    where both accept, the outputs agree.  Returns which it was: 'refused' or 'accepted'."""
    x, w, b = operands(case)
    want, torch_module_, torch_error = _torch_verdict(case, x, w, b)
    if case.entry == "module" and want is not None:  # the same weights in npconv's module
        w = torch_module_.weight.detach().numpy()
        b = None if torch_module_.bias is None else torch_module_.bias.detach().numpy()
    try:
        with forced(case.algorithm):
            got, _ = npconv_forward(case, x, w, b)
    except (ValueError, TypeError) as error:
        assert want is None, f"npconv refused what PyTorch accepts: {type(error).__name__}: {error}"
        return "refused"
    assert want is not None, f"npconv accepted what PyTorch refuses ({type(torch_error).__name__}: {torch_error})"
    assert_close("output", got, want, case.dtype)
    return "accepted"
