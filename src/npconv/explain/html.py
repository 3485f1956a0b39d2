"""One self-contained interactive HTML page that teaches Conv2d's parameters.

:func:`page` returns the page (``page.html``, shipped as package data); :func:`write_page`
writes it with chosen starting values.  The page loads nothing from the network: no CDN,
no web fonts, no external script; CSS and JS are inline.

The JS restates the engine's index rule (a browser cannot call NumPy): output ``o`` reads
padded position ``p = o * stride + k * dilation - pad_lo`` through tap ``k``, the padding
mode maps ``p`` to an input index (reflect/replicate/circular) or to a zero, and a
transposed convolution's output ``q`` is made of the pairs ``(i, k)`` with
``q = i * stride + k * dilation - pad_lo``.  ``tests/test_page_chromium.py`` drives the page
in headless Chromium and checks every highlighted cell, the output values, the shape
formula and the refusals against :mod:`npconv.explain.footprint` and :mod:`npconv.spec`.

The input is numbered ``0 .. H*W-1`` row-major (the same numbers in every channel), every
weight is 1, so each output cell shows the sum of the numbers it reads and hovering it shows
the engine's ``Explanation.sum_line()`` (padded values in brackets, zero padding left out).

DOM contract (the tests rely on it):

- controls: ``#in_h #in_w #k_h #k_w #stride #padding #dilation #groups #c_in #c_out
  #out_pad`` (number inputs), ``#mode`` (select: zeros/reflect/replicate/circular),
  ``#transposed`` (checkbox).  Setting a value and dispatching ``input`` or ``change`` on
  the control re-renders; ``#out_pad`` is disabled (and read as 0) unless transposed.
  Each number input's ``max`` attribute is the page's drawing limit (:data:`PAGE_LIMITS`).
- input grids: one ``.chan`` box per input channel inside ``#input``; every cell, the
  padding ring included, has ``data-pos="r,c"`` (padded-frame coordinates relative to the
  input origin: with padding 1 the top-left cell is ``"-1,-1"``), ``data-src="r,c"`` (the
  input element it holds under the padding mode) or ``data-src=""`` (zero padding), and
  ``data-ch`` (its input channel).  Transposed convolution draws no ring (its padding crops
  the output), so there ``data-pos == data-src``.
- output grids: one ``.chan`` box per output channel inside ``#output``; every cell has
  ``data-out="r,c"`` and ``data-ch``; its text is the output value (all weights 1).
- hovering (``mouseover``) or focusing an output cell gives it and the input cells it
  reads (padded positions included, only in its group's channels) the class ``hl``; real
  input cells whose value a padded tap copies get ``echo``.  The highlight stays until
  another output cell is hovered.  (The legend's sample cells carry these classes too but no
  ``data-*`` attributes; select within ``#input``/``#output``/``#zero``.)
- ``#formula``: the shape rule, then per dim the rule with the actual numbers, e.g.
  ``H_out = floor((5 + 1 + 1 - 2*(3-1) - 1) / 2) + 1 = 2`` (transposed:
  ``H_out = (3 - 1)*2 - 2*1 + 1*(3-1) + 1 + 1 = 6``).  An invalid setting adds
  ``#error`` inside ``#formula`` with the refusal in the engine's wording and arithmetic
  (e.g. ``padded input 2 = 2 + 0 + 0 < effective kernel 5 = 2*(3-1)+1``); the output
  grids are then empty.  Nothing throws.
- ``#detail``: the hovered output's reading rule and ``sum_line()``.
- ``#title`` (the heading) and ``document.title`` name the layer the controls describe:
  ``Conv2d, cell by cell``, or ``ConvTranspose2d, cell by cell`` while ``#transposed`` is ticked.
- transposed only: ``#zero`` holds the zero-inserted picture (the same output as a stride-1
  convolution with the flipped kernel over the input with ``stride - 1`` zeros between
  cells and ``dilation*(k-1) - padding`` zeros around); its cells have ``data-z="r,c"``
  and ``data-zsrc="r,c"`` for real input cells (``""`` for inserted or padding zeros), and
  the hovered output's window gets ``hl`` there too.
- the starting values live in ``<script id="npconv-initial" type="application/json">``,
  keyed by control id; :func:`write_page` fills it.
"""

from __future__ import annotations

import json
import os
import pathlib
from importlib import resources
from typing import Any, Sequence

from ..spec import ConvSpec, ntuple
from ..spec_errors import ConvRule, worded

# The page's drawing limits per control (also each number input's max attribute).
PAGE_LIMITS = {"in_h": 16, "in_w": 16, "k_h": 7, "k_w": 7, "stride": 4, "padding": 4,
               "dilation": 4, "groups": 8, "c_in": 8, "c_out": 8, "out_pad": 3}
MAX_OUT_SIDE = 40  # the largest output side the page draws

_SLOT = '<script id="npconv-initial" type="application/json">{}</script>'
_KEYS = ("input_size", "kernel_size", "stride", "padding", "dilation", "groups", "padding_mode",
         "transposed", "output_padding", "in_channels", "out_channels")
# PyTorch's defaults for every parameter (a 5x5 input and a 3x3 kernel to start drawing with)
DEFAULTS = {"input_size": (5, 5), "kernel_size": (3, 3), "stride": 1, "padding": 0, "dilation": 1,
            "groups": 1, "padding_mode": "zeros", "transposed": False, "output_padding": 0}


def page() -> str:
    """The page's HTML text, starting from a 5x5 input, a 3x3 kernel and PyTorch's defaults.

    Returns
    -------
    str
        The whole page: one file with its CSS and JS inline (stride 1, padding 0, dilation 1,
        groups 1, zero padding, not transposed until a control changes).
    """
    return resources.files("npconv.explain").joinpath("page.html").read_text(encoding="utf-8")


def write_page(path: str | os.PathLike[str] = "npconv_visualize.html", **initial: Any) -> pathlib.Path:
    """Write the interactive page (one self-contained HTML file) with chosen starting controls.

    The page has a control for every Conv2d parameter; hovering an output cell highlights the
    input cells (padding included) and weights that make it.  It loads nothing from the
    network.  Unset values start at PyTorch's defaults (stride 1, padding 0, dilation 1,
    groups 1, zero padding), on a 5x5 input with a 3x3 kernel.

    Parameters
    ----------
    path : str or os.PathLike, default 'npconv_visualize.html'
        Where to write the page.
    **initial
        Starting values: ``input_size, kernel_size, stride, padding, dilation, groups,
        padding_mode, transposed, output_padding, in_channels, out_channels`` (channels
        default to ``groups``).  The page has one control per parameter, so ``stride``,
        ``padding``, ``dilation`` and ``output_padding`` must be the same in both dims.

    Returns
    -------
    pathlib.Path
        ``path``.

    Raises
    ------
    ValueError
        A setting the convolution refuses (the engine's message), or one beyond the page's
        drawing limits (:data:`PAGE_LIMITS`, output sides up to :data:`MAX_OUT_SIDE`);
        nothing is written.
    TypeError
        An unknown starting value.

    Examples
    --------
    >>> import tempfile, os
    >>> p = write_page(os.path.join(tempfile.mkdtemp(), "c.html"), kernel_size=3, stride=2)
    >>> '"stride": 2' in p.read_text()
    True
    """
    controls = initial_controls(**initial)
    blob = json.dumps(controls).replace("<", "\\u003c")
    text = page().replace(_SLOT, _SLOT.replace("{}", blob), 1)
    path = pathlib.Path(path)
    path.write_text(text, encoding="utf-8")
    return path


def initial_controls(**initial: Any) -> dict[str, Any]:
    """The validated starting values, keyed by the page's control ids.

    >>> initial_controls(input_size=(7, 6), stride=2)["in_w"]
    6
    """
    unknown = sorted(set(initial) - set(_KEYS))
    if unknown:
        raise TypeError(f"write_page: unknown starting value(s) {unknown}; known: {list(_KEYS)}")
    v = {**DEFAULTS, **initial}
    spec = ConvSpec.build(v["kernel_size"], v["stride"], v["padding"], v["dilation"], v["groups"],
                          v["padding_mode"], v["transposed"], v["output_padding"], ndim=2)
    size = ntuple(v["input_size"], 2, "input_size", spec.op)
    out = spec.out_spatial(size) if min(size) >= 1 else None
    c_in, c_out = (int(v.get(k, spec.groups)) for k in ("in_channels", "out_channels"))
    controls = _as_controls(spec, size, c_in, c_out)
    _check_page(spec, controls, out)
    return controls


def _as_controls(spec: ConvSpec, size: tuple[int, ...], c_in: int, c_out: int) -> dict[str, Any]:
    pads = spec.pads(size)
    return {"in_h": size[0], "in_w": size[1], "k_h": spec.kernel_size[0], "k_w": spec.kernel_size[1],
            "stride": _one("stride", spec.stride), "padding": _one("padding", sum(pads, ())),
            "dilation": _one("dilation", spec.dilation), "groups": spec.groups,
            "c_in": c_in, "c_out": c_out, "mode": spec.padding_mode,
            "transposed": spec.transposed, "out_pad": _one("output_padding", spec.output_padding)}


def _one(name: str, values: Sequence[int]) -> int:
    if len(set(values)) != 1:
        raise ValueError(f"write_page: the page has one {name} control for both dims and both "
                         f"sides, got {name}={tuple(values)}")
    return int(values[0])


def _multiple_of_groups(error: ConvRule) -> str:
    name = {"in_channels": "c_in", "out_channels": "c_out"}[error.param]
    c, g = error.numbers["channels"], error.numbers["groups"]
    return f"{error.op}: {name} must be a positive multiple of groups: {c} % {g} = {c % g}"


PAGE_WORDS = {"channels_groups": _multiple_of_groups}  # the page's control names


def _check_page(spec: ConvSpec, controls: dict[str, Any], out: tuple[int, ...] | None) -> None:
    if out is None:
        raise ValueError(f"{spec.op}: every spatial size of the input must be >= 1, "
                         f"got input_size=({controls['in_h']}, {controls['in_w']})")
    for name in ("c_in", "c_out"):
        if controls[name] < 1:
            raise ValueError(f"{spec.op}: {name} must be a positive multiple of groups, got {name}={controls[name]}")
    with worded(PAGE_WORDS):
        spec.check_channels(controls["c_in"], controls["c_out"])
    over = {k: v for k, v in controls.items() if k in PAGE_LIMITS and v > PAGE_LIMITS[k]}
    if over or max(out) > MAX_OUT_SIDE:
        raise ValueError(f"write_page: the page draws small examples only: limits {PAGE_LIMITS} "
                         f"and output sides <= {MAX_OUT_SIDE}; got {over or {'output': out}}")
