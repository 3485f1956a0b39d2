"""Hypothesis strategies for the fuzz suite: valid convolution cases (every one inside what
npconv promises) and loose ones, some valid and some not, for the refusal rules.

Sizes stay small (spatial <= 16 in 1-D, 12 in 2-D, 6 in 3-D; channels <= 8 per side before
a depthwise multiplier) so that one example, forward and backward through npconv and
PyTorch, takes milliseconds.
"""

from __future__ import annotations

from hypothesis import assume
from hypothesis import strategies as st

import npconv
from npconv import select
from fuzz_oracle import ENTRIES, Case, explicit_pads, per_dim

# per spatial dims: largest input size (conv, transposed), kernel and dilation
LIMITS = {1: dict(size=16, transposed_size=10, kernel=5, dilation=3),
          2: dict(size=12, transposed_size=7, kernel=4, dilation=3),
          3: dict(size=6, transposed_size=4, kernel=3, dilation=2)}
MODES = ("zeros", "reflect", "replicate", "circular")
# a third of the valid cases complex (torch's complex conv and autograd are the oracle there too)
VALID_DTYPES = ("float64", "float32", "float64", "float32", "complex128", "complex64")
GROUPINGS = ("dense", "grouped", "depthwise", "depthwise_multiplier")
BATCHES = (1, 1, 2, 3, None, None, 0)  # None: unbatched; 0: an empty batch
MAX_PAD = 3


def per_dim_value(n: int, low: int, high: int):
    """An int, a 1-tuple or an n-tuple: all three spellings PyTorch accepts."""
    value = st.integers(low, high)
    return st.one_of(value, st.tuples(value), st.tuples(*[value] * n))


@st.composite
def channels(draw, grouping: str):
    """(groups, in_channels, out_channels) for a grouping kind."""
    if grouping == "dense":
        return 1, draw(st.integers(1, 6)), draw(st.integers(1, 6))
    if grouping == "grouped":
        groups = draw(st.integers(2, 4))
        per_group = st.integers(1, max(1, 8 // groups))
        return groups, groups * draw(per_group), groups * draw(per_group)
    groups = draw(st.integers(1, 8 if grouping == "depthwise" else 4))
    multiplier = 1 if grouping == "depthwise" else draw(st.integers(2, 3))
    return groups, groups, groups * multiplier


def conv_paddings(n: int):
    side = st.integers(0, MAX_PAD)
    pair_or_int = st.one_of(side, st.tuples(side, side))
    return st.one_of(st.just(0), side, st.tuples(*[side] * n), st.tuples(side),  # 0 the commonest
                     st.sampled_from(["valid", "same", "same_lower", "causal"]),
                     st.tuples(*[pair_or_int] * n))


def transposed_paddings(n: int):
    side = st.integers(0, MAX_PAD)
    pair_or_int = st.one_of(side, st.tuples(side, side))
    return st.one_of(st.just(0), side, st.tuples(*[side] * n), st.just("valid"), st.tuples(*[pair_or_int] * n))


def _conv_size_fits(case: Case, dim: int, size: int) -> bool:
    """The kernel fits the padded input, and reflect/circular pads stay inside the input."""
    spatial = list(case.spatial)
    spatial[dim] = size
    lo, hi = explicit_pads(case, spatial)[dim]
    reach = per_dim(case.dilation, case.n)[dim] * (case.kernel[dim] - 1)
    if size + lo + hi < reach + 1:
        return False
    if case.padding_mode == "reflect":
        return max(lo, hi) < size
    return case.padding_mode != "circular" or max(lo, hi) <= size


def _transposed_size_fits(case: Case, dim: int, size: int) -> bool:
    lo, hi = explicit_pads(case)[dim]
    stride, dilation, output_padding = (per_dim(v, case.n)[dim] for v in
                                        (case.stride, case.dilation, case.output_padding))
    return (size - 1) * stride - lo - hi + dilation * (case.kernel[dim] - 1) + 1 + output_padding >= 1


@st.composite
def spatial_sizes(draw, case: Case):
    """Per dim, a size drawn among those the geometry accepts (pads may depend on the size)."""
    limit = LIMITS[case.n]["transposed_size" if case.transposed else "size"]
    fits = _transposed_size_fits if case.transposed else _conv_size_fits
    sizes = []
    for dim in range(case.n):
        valid = [s for s in range(1, limit + 1) if fits(case, dim, s)]
        assume(valid)
        sizes.append(draw(st.sampled_from(valid)))
    return tuple(sizes)


@st.composite
def output_paddings(draw, n: int, stride, dilation):
    """Up to PyTorch's limit, output_padding < max(stride, dilation), in each dim."""
    limits = [max(s, d) - 1 for s, d in zip(per_dim(stride, n), per_dim(dilation, n))]
    # the limit itself half the time: beyond the stride (dilation > stride) is where the
    # transposed weight gradient's plain-conv twin outgrows the input
    values = tuple(draw(st.one_of(st.just(limit), st.integers(0, limit))) for limit in limits)
    return values[0] if len(set(values)) == 1 and draw(st.booleans()) else values


@st.composite
def kernel_families(draw, n: int):
    """(kernel, stride, dilation): mostly anything, but often enough the shapes the special
    algorithms need (1x1 for pointwise, 3x3 at stride and dilation 1 for Winograd), which
    independent draws would reach once in hundreds of examples."""
    family = draw(st.sampled_from(("any", "any", "pointwise", "winograd")))
    ones = per_dim_value(n, 1, 1)  # 1 in each of its spellings
    if family == "winograd":
        return (3,) * n, draw(ones), draw(ones)
    limits = LIMITS[n]
    kernel = (1,) * n if family == "pointwise" else \
        tuple(draw(st.lists(st.integers(1, limits["kernel"]), min_size=n, max_size=n)))
    return kernel, draw(per_dim_value(n, 1, 3)), draw(per_dim_value(n, 1, limits["dilation"]))


@st.composite
def geometries(draw, transposed: bool, n: int | None = None) -> Case:
    """A valid case without its algorithm: dims, channels, kernel, stride, padding, sizes."""
    n = n or draw(st.integers(1, 3))
    limits = LIMITS[n]
    groups, in_channels, out_channels = draw(channels(draw(st.sampled_from(GROUPINGS))))
    kernel, stride, dilation = draw(kernel_families(n))
    case = Case(n=n, transposed=transposed, in_channels=in_channels, out_channels=out_channels, groups=groups,
                kernel=kernel, spatial=(1,) * n, stride=stride, dilation=dilation,
                padding=draw(transposed_paddings(n) if transposed else conv_paddings(n)),
                output_padding=draw(output_paddings(n, stride, dilation)) if transposed else 0,
                padding_mode="zeros" if transposed else draw(st.sampled_from(MODES)),
                batch=draw(st.sampled_from(BATCHES)), bias=draw(st.booleans()),
                dtype=draw(st.sampled_from(VALID_DTYPES)), entry=draw(st.sampled_from(ENTRIES)),
                seed=draw(st.integers(0, 2**16)))
    return Case(**{**case.__dict__, "spatial": draw(spatial_sizes(case))})


def applicable_algorithms(case: Case) -> list:
    """The algorithms npconv.select says compute this forward convolution.  A transposed case
    runs its forward as a plain convolution at stride 1 and its input gradient as one at every
    stride, so every algorithm is worth forcing there."""
    if case.transposed:
        return sorted(select.ALGORITHMS)
    spec = npconv.ConvSpec.build(case.kernel, case.stride, case.padding, case.dilation, case.groups,
                                 case.padding_mode, ndim=case.n)
    batched = case.input_shape if case.batch is not None else (1,) + case.input_shape
    return select.candidates(spec, batched, case.weight_shape)


@st.composite
def cases(draw, transposed: bool, n: int | None = None) -> Case:
    """A valid case and an algorithm to force (None: the planner's choice)."""
    case = draw(geometries(transposed, n))
    algorithm = draw(st.sampled_from([None] + applicable_algorithms(case)))
    return Case(**{**case.__dict__, "algorithm": algorithm})


# ---- loose cases: the refusal rules ------------------------------------------------------

MUTATIONS = ("none", "stride", "dilation", "groups", "negative_padding", "output_padding", "channels", "bias",
             "rank", "small_input", "large_padding", "padding_string", "tuple_length")


@st.composite
def loose_cases(draw) -> Case:
    """A case PyTorch can say (ints, n-tuples, 'valid', 'same' at stride 1), with one rule
    possibly broken: everything here has a PyTorch answer, accept or refuse."""
    transposed = draw(st.booleans())
    n = draw(st.integers(1, 3))
    mutation = draw(st.sampled_from(MUTATIONS))
    groups, in_channels, out_channels = draw(channels(draw(st.sampled_from(GROUPINGS))))
    case = Case(n=n, transposed=transposed, in_channels=in_channels, out_channels=out_channels, groups=groups,
                kernel=tuple(draw(st.lists(st.integers(1, 3), min_size=n, max_size=n))),
                spatial=tuple(draw(st.lists(st.integers(1, 5), min_size=n, max_size=n))),
                stride=draw(per_dim_value(n, 1, 3)), padding=draw(per_dim_value(n, 0, 2)),
                dilation=draw(per_dim_value(n, 1, 2)), output_padding=0,
                padding_mode="zeros" if transposed else draw(st.sampled_from(MODES)),
                batch=draw(st.sampled_from(BATCHES)), bias=draw(st.booleans()),
                dtype=draw(st.sampled_from(["float64", "float32"])), entry=draw(st.sampled_from(("functional", "module"))),
                algorithm=None, seed=draw(st.integers(0, 2**16)))
    return _mutate(draw, case, mutation)


PADDING_SPELLINGS = ("negative_padding", "padding_string", "tuple_length")


def _mutate(draw, case: Case, mutation: str) -> Case:
    n, changes = case.n, {}
    if mutation in PADDING_SPELLINGS and case.entry == "functional":
        # the functional oracle applies padding modes with F.pad, which reads any spelling it
        # can (negative pads crop, extra entries pad the channels): only zeros keeps PyTorch's rules
        changes["padding_mode"] = "zeros"
    if mutation in ("stride", "dilation"):
        changes[mutation] = draw(st.one_of(st.just(0), st.tuples(*[st.integers(0, 2)] * n)))
    elif mutation == "groups":
        changes["groups"] = draw(st.integers(0, 5))
    elif mutation == "negative_padding":
        changes.update(padding=draw(st.integers(-2, -1)), padding_mode="zeros")  # torch.nn's F.pad crops
    elif mutation == "output_padding" and case.transposed:
        changes["output_padding"] = draw(per_dim_value(n, 0, 3))
    elif mutation == "channels":
        changes["x_channels"] = case.in_channels + draw(st.sampled_from([-1, 1]))
    elif mutation == "bias" and case.entry == "functional":
        changes.update(bias=True, bias_size=case.out_channels + draw(st.sampled_from([-1, 1])))
    elif mutation == "rank":
        changes["rank_delta"] = draw(st.sampled_from([-1, 1]))
    elif mutation == "small_input":  # kernels that may not fit, outputs that may vanish
        changes.update(spatial=(1,) * n, kernel=tuple(draw(st.lists(st.integers(1, 4), min_size=n, max_size=n))))
    elif mutation == "large_padding":  # reflect/circular beyond the input, transposed outputs below 1
        changes["padding"] = draw(per_dim_value(n, 0, 6))
    elif mutation == "padding_string" and not case.transposed:
        changes.update(padding=draw(st.sampled_from(["valid", "same", "SAME", "full"])), stride=1)
    elif mutation == "tuple_length":
        name = draw(st.sampled_from(["stride", "padding", "dilation"]))
        changes[name] = (1,) * (n + 1)
    return Case(**{**case.__dict__, **changes})
