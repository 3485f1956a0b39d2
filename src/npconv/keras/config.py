"""Keras's ``get_config`` / ``from_config`` for the convolution layers, keyed by their
constructors: a config holds ``name``, ``trainable`` and ``dtype``, then every named argument
of the layer's constructor in its signature's order (``config_leads`` first, where Keras's
config leads with an argument its signature puts later).  Initializers, regularizers,
constraints and the activation are written in Keras's dict form, so a real Keras layer's
``from_config`` accepts the config, and ours accepts theirs.

>>> import npconv.keras as K
>>> K.DepthwiseConv1D.config_keys()[:4]
('depth_multiplier', 'kernel_size', 'strides', 'padding')
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from typing import Any


@functools.cache
def signature_keys(init: Callable[..., Any]) -> tuple[str, ...]:
    """A constructor's named arguments in order (not ``self``, not ``**kwargs``).

    Parameters
    ----------
    init : callable
        A class's ``__init__``.

    Returns
    -------
    tuple of str
        The positional-or-keyword parameters' names.
    """
    return tuple(name for name, parameter in inspect.signature(init).parameters.items()
                 if name != "self" and parameter.kind is parameter.POSITIONAL_OR_KEYWORD)


class KerasConfig:
    """Config and repr for a layer whose attributes carry its constructor's arguments (and
    whose ``_option_serializers`` names the object-valued ones, ``npconv.keras.training``)."""

    config_leads: tuple[str, ...] = ()  # config keys Keras lists before the constructor's order
    # set by the layer (npconv.keras.base.KerasConv)
    name: str
    trainable: bool
    dtype: str
    built: bool
    data_format: str
    activity_regularizer: Any
    _option_serializers: Callable[[], dict[str, Callable[[Any], Any]]]  # TrainingHooks' method

    @classmethod
    def config_keys(cls) -> tuple[str, ...]:
        """Keras's config keys after name/trainable/dtype.

        Returns
        -------
        tuple of str
            The constructor's arguments in its order, ``config_leads`` first.
        """
        keys = signature_keys(cls.__init__)
        return tuple(key for key in cls.config_leads if key in keys) + \
            tuple(key for key in keys if key not in cls.config_leads)

    def get_config(self) -> dict[str, Any]:
        """The layer's config: Keras's keys in Keras's order, objects in Keras's dict form.

        As in Keras, a set activity_regularizer comes right after dtype (Keras's base Layer
        writes it there first).

        Returns
        -------
        dict
            ``name``, ``trainable``, ``dtype``, then :meth:`config_keys`; a real Keras
            layer's ``from_config`` accepts it.

        Examples
        --------
        >>> import npconv.keras as K
        >>> config = K.Conv2D(4, 3, name="c").get_config()
        >>> list(config)[:5], config["kernel_size"]
        (['name', 'trainable', 'dtype', 'filters', 'kernel_size'], (3, 3))
        """
        config = {"name": self.name, "trainable": self.trainable, "dtype": self.dtype}
        if self.activity_regularizer is not None:
            config["activity_regularizer"] = None  # the position; the value is written below
        serializers = self._option_serializers()
        for key in self.config_keys():
            value = getattr(self, key)
            config[key] = serializers[key](value) if key in serializers else value
        return config

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> Any:
        """A new, unbuilt layer from :meth:`get_config` (ours or a real Keras layer's).

        Parameters
        ----------
        config : dict
            A config as :meth:`get_config` writes it.

        Returns
        -------
        KerasConv
            A layer of this class.

        Raises
        ------
        ValueError
            Unknown keys or values this layer refuses.
        """
        return cls(**config)

    def extra_repr(self) -> str:
        """name, the main settings, data_format when not channels_last, and whether built."""
        keys = self.config_keys()
        fields = [f"name={self.name!r}"] + [f"{key}={getattr(self, key)!r}" for key in
                                            ("filters", "depth_multiplier", "kernel_size", "strides", "padding")
                                            if key in keys]
        if self.data_format != "channels_last":
            fields.append(f"data_format={self.data_format!r}")
        return ", ".join(fields + [f"built={self.built}"])
