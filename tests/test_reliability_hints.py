"""Error hints stay instant whatever the numbers: a refused groups must never start a search
as long as the channel counts (Conv2d(2**40, 2**40, 3, groups=3) used to hang)."""

import time

import pytest

from npconv import nn
from npconv.spec_errors import HINT_SEARCH_STEPS, nearest_divisor

HANG_GUARD_S = 2.0  # not a speed test: the refusal takes microseconds, a scan took hours
MERSENNE_PRIME = 2**61 - 1


def refusal(call) -> str:
    start = time.perf_counter()
    with pytest.raises(ValueError) as caught:
        call()
    assert time.perf_counter() - start < HANG_GUARD_S
    return str(caught.value)


@pytest.mark.parametrize("call, hint", [
    (lambda: nn.Conv2d(2**40, 2**40, 3, groups=3), "nearest valid: groups=2"),
    (lambda: nn.ConvTranspose2d(2**40, 2**40, 3, groups=3), "nearest valid: groups=2"),
    (lambda: nn.Conv1d(MERSENNE_PRIME, MERSENNE_PRIME, 3, groups=3), "nearest valid: groups=1"),
    (lambda: nn.Conv3d(2**62, 2**62, 1, groups=2**63 + 1), f"nearest valid: groups={2**62}"),
])
def test_huge_channel_counts_are_refused_at_once_with_a_hint(call, hint):
    message = refusal(call)
    assert "in_channels must be divisible by groups" in message
    assert hint in message


def test_lazy_module_refuses_out_channels_at_once():
    message = refusal(lambda: nn.LazyConv2d(2**40, 3, groups=3))
    assert "out_channels must be divisible by groups" in message and "nearest valid: groups=2" in message


def test_no_divisor_near_groups_gives_the_rule_instead_of_a_search():
    message = refusal(lambda: nn.Conv2d(MERSENNE_PRIME, MERSENNE_PRIME, 3, groups=2**40))
    assert "in_channels must be divisible by groups" in message
    assert f"valid: groups=1 or any divisor of gcd(in_channels, out_channels) = {MERSENNE_PRIME}" in message


def test_small_numbers_keep_the_exact_nearest_divisor():
    for n in range(1, 300):
        divisors = [d for d in range(1, n + 1) if n % d == 0]
        for wanted in range(1, 70):
            assert nearest_divisor(n, wanted) == min(divisors, key=lambda d: (abs(d - wanted), d))


def test_the_window_search_finds_the_true_nearest_divisor():
    n = (2**13 + 1) * HINT_SEARCH_STEPS ** 2  # above the trial-division range: the window is used
    assert nearest_divisor(n, 4095) == 4096
    assert nearest_divisor(n, 2**60) == n


def test_the_documented_small_case_is_unchanged():
    assert "6 % 4 = 2; nearest valid: groups=3" in refusal(lambda: nn.Conv2d(6, 9, 3, groups=4))
