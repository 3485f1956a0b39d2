"""Keras's words for the spec's refusals: :data:`KERAS_WORDS` and :func:`keras_worded`.

:class:`npconv.spec.ConvSpec` raises a refusal (``npconv.spec_errors``) in PyTorch's words; the
Keras layers re-raise it here in Keras's (``keras.utils.standardize_tuple``'s wording, the
zero-or-negative output size, the channels that groups does not divide).
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Callable
from typing import Any

from .. import spec_errors

# Each takes the call's context (what the spec does not know: the argument as the user gave
# it, unknown sizes as None, the input's full shape) and the spec's refusal.

def _ntuple_message(context: dict[str, Any], error: spec_errors.ConvRule) -> str:
    """Keras's standardize_tuple wording, with the argument as given."""
    name, n = error.param, context["n"]
    message = f"The `{name}` argument must be a tuple of {n} integers. Received {name}={context['value']!r}"
    if error.rule != "positive":
        return message
    minimum = error.numbers["minimum"]
    bad = sorted({v for v in error.numbers["values"] if v < minimum})
    return f"{message}, including values {bad} that do not satisfy `value {'> 0' if minimum == 1 else '>= 0'}`"


def _as_value_error(error: spec_errors.ConvRule, message: str) -> spec_errors.ConvRuleError:
    """Keras refuses a wrong type with ValueError: the same refusal, as a ConvRuleError."""
    return spec_errors.ConvRuleError(message, rule=error.rule, param=error.param, op=error.op, dim=error.dim,
                                     numbers=error.numbers, nearest=error.nearest)


def _output_size_message(context: dict[str, Any], error: spec_errors.ConvRule) -> str:
    """A kernel larger than the (padded) input; with 'same' or 'causal' only an empty input is."""
    d, numbers = error.dim, error.numbers
    size, ek, s = numbers["size"], numbers["effective"], numbers["stride"][d]
    if context["padding"] == "valid":
        rule = f"floor(({size} - {ek}) / {s}) + 1 = {numbers['blocks'][d]} (effective kernel {ek} > input {size})"
    else:
        lo, hi = numbers["lo"], numbers["hi"]
        rule = f"padded input {numbers['padded']} = {size} + {lo} + {hi} < effective kernel {ek}"
    return (f"{error.op}: Computed output size would be zero or negative. Received input spatial shape "
            f"{tuple(context['in_spatial'])}, kernel_size={tuple(context['kernel_size'])}, dilation_rate="
            f"{tuple(context['dilation_rate'])}, strides={numbers['stride']}, padding={context['padding']!r}: "
            f"in dim {d}, {rule}")


def _input_channels_message(context: dict[str, Any], error: spec_errors.ConvRule) -> str:
    groups, channels = error.numbers["groups"], error.numbers["channels"]
    return (f"{error.op}: The number of input channels must be evenly divisible by the number of groups. "
            f"Received groups={groups}, but the input has {channels} channels (full input shape is "
            f"{tuple(context['input_shape'])}).")


#: rule -> function(context, error) -> Keras's message (or exception)
KERAS_WORDS: dict[str, Callable[[dict[str, Any], Any], Any]] = {
    "tuple_length": _ntuple_message,
    "tuple_type": lambda context, error: _as_value_error(error, _ntuple_message(context, error)),
    "positive": _ntuple_message,
    "kernel_fits": _output_size_message,
    "channels_groups": _input_channels_message,
}


def keras_worded(**context: Any) -> contextlib.AbstractContextManager[None]:
    """``spec_errors.worded`` in Keras's words, given this call's context.

    Parameters
    ----------
    **context
        What the spec does not know: the argument as given, unknown sizes, the input shape.

    Returns
    -------
    context manager
        Re-raises the spec's refusals inside it in Keras's words (:data:`KERAS_WORDS`).
    """
    words: spec_errors.Words = {rule: functools.partial(say, context) for rule, say in KERAS_WORDS.items()}
    return spec_errors.worded(words)
