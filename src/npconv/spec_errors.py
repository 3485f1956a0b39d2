"""Refusals as data: which rule a setting breaks, where, the numbers, and the nearest valid one.

:class:`npconv.spec.ConvSpec` owns every shape rule; when a setting breaks one it raises a
:class:`ConvRuleError` (a ``ValueError``) or :class:`ConvRuleTypeError` (a ``TypeError``)
whose message is PyTorch's wording.  Other faces do not check the rule again: they catch the
refusal and say it in their own words with :func:`worded`::

    with worded(KERAS_WORDS):        # {rule: function(error) -> message}
        spec.out_spatial(in_spatial)

A face that has no words for a rule passes PyTorch's message through unchanged.

The rules (``error.rule``) and the numbers each carries (``error.numbers``):

===========================  ===============================================================
rule                         numbers
===========================  ===============================================================
``tuple_length``             n, values
``tuple_type``               n, value
``positive``                 values, minimum
``groups_type``              value
``padding_string``           value
``padding_type``             value
``padding_length``           n, values
``same_transposed``          value
``negative_padding``         value
``padding_mode``             value
``transposed_padding_mode``  value
``output_padding_negative``  values
``output_padding_conv``      values
``output_padding_limit``     values, stride, dilation, output_padding, limit (dim set)
``kernel_fits``              size, lo, hi, padded, kernel, dilation, effective (in dim), and the
                             tuples in_spatial, pads, padded_spatial, kernel_size, dilations,
                             stride, effective_kernel, blocks (dim set)
``reflect_pad``              size, lo, hi (dim set)
``circular_pad``             size, lo, hi (dim set)
``output_size``              size, stride, lo, hi, kernel, dilation, output_padding, out, full,
                             in_spatial, out_spatial (dim set)
``input_rank``               n, shape
``spatial_size``             shape
``weight_rank``              n, shape
``weight_groups``            groups, shape, input_shape
``input_channels``           groups, channels, expected, weight_shape, input_shape
``bias_shape``               out_channels, shape, weight_shape
``channels_groups``          channels, groups, in_channels, out_channels
``fold_channels``            channels, kernel, volume
``fold_blocks``              columns, blocks, total
===========================  ===============================================================

Deformable convolution adds the ``deform_*`` rules of its offset and mask (their table:
:mod:`npconv.ops.deform_spec`); its plain geometry is ConvSpec's, refused as above.
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Any, Callable, Iterator, Mapping, Sequence

# the refusal types and how a face re-words them; the message builders below serve ConvSpec
__all__ = ["ConvRule", "ConvRuleError", "ConvRuleTypeError", "Words", "rendered", "worded"]


class ConvRule(Exception):
    """What every refusal carries; raised as :class:`ConvRuleError` or :class:`ConvRuleTypeError`.

    Parameters
    ----------
    message : str
        The words shown (PyTorch's, or a face's).
    rule, param, op, dim, numbers, nearest
        Keyword-only: stored as the attributes below.

    Attributes
    ----------
    rule : str
        The broken rule (the table in :mod:`npconv.spec_errors`).
    param : str
        The parameter it is about.
    op : str
        The caller's label.
    dim : int or None
        The spatial dim, where the rule is about one.
    numbers : dict
        The values the rule compared.
    nearest : str or None
        The nearest valid setting, in words.
    """

    def __init__(self, message: str, *, rule: str, param: str, op: str = "conv", dim: int | None = None,
                 numbers: Mapping[str, Any] | None = None, nearest: str | None = None) -> None:
        super().__init__(message)
        self.rule, self.param, self.op, self.dim = rule, param, op, dim
        self.numbers = dict(numbers or {})
        self.nearest = nearest

    @property
    def message(self) -> str:
        """The words shown."""
        return str(self.args[0]) if self.args else ""

    def reworded(self, message: str) -> "ConvRule":
        """The same refusal (same class and fields) said in other words."""
        return type(self)(message, rule=self.rule, param=self.param, op=self.op, dim=self.dim,
                          numbers=self.numbers, nearest=self.nearest)

    def __reduce__(self) -> tuple[Any, ...]:  # keyword-only fields: pickle (multiprocessing, Dask) rebuilds through this
        return _rebuild, (type(self), self.message, self.rule, self.param, self.op, self.dim,
                          self.numbers, self.nearest)


def _rebuild(cls: type[ConvRule], message: str, rule: str, param: str, op: str, dim: int | None,
             numbers: Mapping[str, Any], nearest: str | None) -> ConvRule:
    return cls(message, rule=rule, param=param, op=op, dim=dim, numbers=numbers, nearest=nearest)


class ConvRuleError(ConvRule, ValueError):
    """A setting or shape that breaks a convolution rule (a ``ValueError``).

    Raised before any arithmetic, by :class:`npconv.ConvSpec` and every face.  Its message
    states the rule, the numbers and the nearest valid setting; :class:`ConvRule`'s attributes
    hold the same as data.

    Examples
    --------
    >>> import numpy as np, npconv
    >>> try:
    ...     npconv.functional.conv2d(np.ones((1, 1, 3, 3)), np.ones((1, 1, 5, 5)))
    ... except npconv.ConvRuleError as error:
    ...     print(error.rule, error.dim, error.nearest)
    kernel_fits 0 padding 1 per side (padded 5), or kernel_size=3
    """


class ConvRuleTypeError(ConvRule, TypeError):
    """A parameter of the wrong type (a float kernel size, a dict for padding): a ``TypeError``
    with :class:`ConvRule`'s attributes."""


for _public in (ConvRuleError, ConvRuleTypeError):  # tracebacks name them where users import them
    _public.__module__ = "npconv"


#: A face's words: a rule's name -> a function giving the message (or the exception) for it.
Words = Mapping[str, Callable[[ConvRule], "str | BaseException"]]


def rendered(error: ConvRule, words: Words) -> BaseException:
    """``error`` in a face's words: its function's message (or exception), else unchanged.

    Parameters
    ----------
    error : ConvRule
        A refusal.
    words : mapping
        {rule: function(error) -> message or exception}.

    Returns
    -------
    BaseException
        The same refusal reworded, the function's own exception, or ``error`` itself.
    """
    render = words.get(error.rule)
    if render is None:
        return error
    said = render(error)
    return said if isinstance(said, BaseException) else error.reworded(said)


@contextmanager
def worded(words: Words) -> Iterator[None]:
    """Re-raise a refusal from the block in a face's words (see the module docstring).

    Parameters
    ----------
    words : mapping
        {rule: function(error) -> message or exception}; rules it does not name pass through.

    Raises
    ------
    ConvRuleError, ConvRuleTypeError
        The block's refusal, reworded (same class, rule and numbers).

    Examples
    --------
    >>> from npconv import ConvSpec
    >>> with worded({"positive": lambda e: f"{e.param} must be at least one"}):
    ...     ConvSpec.build(0)
    Traceback (most recent call last):
    npconv.ConvRuleError: kernel_size must be at least one
    """
    try:
        yield
    except ConvRule as error:
        raise rendered(error, words) from None


# ---- PyTorch's words: the default message of each rule, in npconv.spec_messages ----------
# Imported last (spec_messages builds the classes above) and re-exported: ConvSpec and
# functional say ``spec_errors.tuple_length(...)`` and the rest.
from .spec_messages import (  # noqa: E402,F401
    HINT_SEARCH_STEPS, POSITIVE_WORDING, bias_shape, channels_groups, circular_pad, fold_blocks,
    fold_channels, groups_hint, groups_not_positive, groups_type, input_channels, input_rank,
    kernel_fit_fixes, kernel_too_big, nearest_divisor, negative_padding, not_positive,
    output_padding_conv, output_padding_limit, output_padding_negative, output_too_small,
    pad_pair_type, padding_length, padding_mode, padding_string, padding_type, reflect_pad,
    same_transposed, shape_text, spatial_size, transposed_padding_mode, tuple_length, tuple_type,
    weight_groups, weight_rank)
