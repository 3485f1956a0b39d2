"""Differential fuzzing against PyTorch: random convolutions, forward and every gradient,
through every entry point (npconv.functional, npconv.conv, npconv.grad, npconv.nn modules)
with every applicable algorithm forced; and random settings, valid or not, where npconv must
refuse exactly what PyTorch refuses.

The example budget comes from the hypothesis profile (tests/conftest.py): 'ci' by default,
derandomized so every run draws the same cases; NPCONV_FUZZ=long (``make fuzz``) draws many
more, at random, and keeps failures in .hypothesis/.  A failure shrinks to a minimal Case:
add it to tests/test_fuzz_regressions.py.
"""

from hypothesis import event, example, given, settings

from fuzz_oracle import Case, check_case
from fuzz_refusals import check_refusal
from fuzz_strategies import cases, loose_cases


def budget(share: float) -> settings:
    """This test's share of the profile's examples (the profile sets the whole budget)."""
    return settings(max_examples=max(1, int(settings().max_examples * share)))


def _events(case: Case) -> None:
    """Statistics for --hypothesis-show-statistics: what the budget covered."""
    event(f"{'conv_transpose' if case.transposed else 'conv'}{case.n}d")
    event(f"entry={case.entry}")
    event(f"algorithm={case.algorithm or 'planner'}")
    event(f"padding={type(case.padding).__name__ if not isinstance(case.padding, str) else case.padding}")
    event(f"batch={case.batch}")
    event(f"dtype={case.dtype}")


# boundary cases worth running on every seed (each once found or feared)
@example(Case(n=2, transposed=False, in_channels=3, out_channels=6, groups=3, kernel=(3, 3), spatial=(5, 4),
              stride=2, padding="same", dilation=1, padding_mode="reflect", entry="module"))
@example(Case(n=1, transposed=False, in_channels=4, out_channels=4, groups=4, kernel=(5,), spatial=(9,),
              stride=1, padding="causal", dilation=2, padding_mode="circular", batch=None, entry="conv",
              algorithm="depthwise_direct"))
@example(Case(n=3, transposed=False, in_channels=2, out_channels=2, groups=1, kernel=(3, 3, 3), spatial=(4, 5, 3),
              padding=((1, 0), 1, (0, 2)), padding_mode="replicate", dtype="float32", algorithm="winograd_f2"))
@example(Case(n=2, transposed=False, in_channels=2, out_channels=3, groups=1, kernel=(1, 1), spatial=(7, 6),
              stride=(3, 2), padding=0, algorithm="pointwise", entry="conv"))
@budget(0.45)
@given(cases(transposed=False))
def test_conv_matches_torch(case):
    _events(case)
    check_case(case)


@example(Case(n=2, transposed=True, in_channels=4, out_channels=2, groups=2, kernel=(3, 2), spatial=(3, 4),
              stride=(2, 1), padding=((1, 2), 0), dilation=(1, 2), output_padding=(1, 1), entry="conv"))
@example(Case(n=1, transposed=True, in_channels=3, out_channels=3, groups=3, kernel=(3,), spatial=(5,),
              stride=1, padding=1, dilation=1, batch=None, entry="module", algorithm="depthwise_jit"))
@budget(0.35)
@given(cases(transposed=True))
def test_conv_transpose_matches_torch(case):
    _events(case)
    check_case(case)


@budget(0.20)
@given(loose_cases())
def test_refusals_agree_with_torch(case):
    event(f"{'conv_transpose' if case.transposed else 'conv'}{case.n}d-{case.entry}")
    event(f"both {check_refusal(case)}")
