"""Keras's ``get`` / ``serialize`` for initializers, regularizers and constraints.

An identifier is None, a registered name (Keras's class name ``'GlorotUniform'`` or its
snake-case alias ``'glorot_uniform'``), a Keras config dict (``{'class_name': ...,
'config': {...}}``, as a real Keras layer's ``get_config()`` holds them), a class, an
instance, or any callable.  Serialised objects take Keras's dict form, so a real Keras layer
can be rebuilt from an npconv.keras layer's config and back.

>>> from npconv.keras import regularizers
>>> regularizers.get({"class_name": "L2", "config": {"l2": 0.5}}).l2
0.5
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from typing import Any


def snake_case(name: str) -> str:
    """'GlorotUniform' -> 'glorot_uniform', 'L1L2' -> 'l1l2' (Keras's to_snake_case rule).

    An underscore goes before a capital that starts a lower-case word, and between a
    lower-case letter and a capital.

    Parameters
    ----------
    name : str
        A class name.

    Returns
    -------
    str
        Its snake-case form.

    Examples
    --------
    >>> snake_case("GlorotUniform"), snake_case("L1L2"), snake_case("Conv2DTranspose")
    ('glorot_uniform', 'l1l2', 'conv2d_transpose')
    """
    name = re.sub(r"(.)([A-Z][a-z]+)", r"\1_\2", name)
    return re.sub(r"([a-z])([A-Z])", r"\1_\2", name).lower()


class Registry:
    """One family of Keras objects: its classes by name, and Keras's ``get`` and ``serialize``.

    Parameters
    ----------
    kind : str
        The family's name in messages (``'initializer'``).
    module : str
        Its Keras module, written into configs (``'keras.initializers'``).
    classes : iterable of type
        The registered classes, found by class name and by its snake-case alias.
    aliases : dict of str to callable, optional
        Other names, each mapped to a factory taking no arguments.
    """

    def __init__(self, kind: str, module: str, classes: Iterable[type],
                 aliases: dict[str, Callable[[], Any]] | None = None) -> None:
        self.kind, self.module = kind, module
        self.classes: dict[str, type[Any]] = {cls.__name__: cls for cls in classes}
        self.names = {**self.classes, **{snake_case(n): c for n, c in self.classes.items()}}
        self.aliases = dict(aliases or {})

    def get(self, identifier: Any) -> Any:
        """The object an identifier stands for, as Keras's ``get`` answers.

        Parameters
        ----------
        identifier : None, str, dict, type or callable
            None; a registered name or alias; a Keras config dict (``{'class_name': ...,
            'config': {...}}``); a class (instantiated without arguments); an instance or any
            other callable (returned as it is).

        Returns
        -------
        object or None
            A new instance, the callable itself, or None.

        Raises
        ------
        ValueError
            An unknown name or class_name, or an identifier of another kind.
        """
        if identifier is None:
            return None
        if isinstance(identifier, dict):
            return self._from_config(identifier)
        if isinstance(identifier, str):
            if identifier in self.aliases:
                return self.aliases[identifier]()
            if identifier not in self.names:
                raise ValueError(f"Could not interpret {self.kind} identifier: {identifier!r}; "
                                 f"npconv.keras knows {sorted(set(self.names) | set(self.aliases))}")
            return self.names[identifier]()
        if isinstance(identifier, type):
            return identifier()
        if callable(identifier):
            return identifier
        raise ValueError(f"Could not interpret {self.kind} identifier: {identifier!r}")

    def _from_config(self, config: dict[str, Any]) -> Any:
        name = config.get("class_name")
        if name not in self.classes:
            raise ValueError(f"Could not interpret {self.kind} identifier: {config!r} "
                             f"(class_name must be one of {sorted(self.classes)})")
        return self.classes[name](**dict(config.get("config") or {}))

    def serialize(self, obj: Any) -> Any:
        """Keras's dict form for registered objects; other callables are kept as they are.

        Parameters
        ----------
        obj : object or None
            An instance of a registered class, another callable, or None.

        Returns
        -------
        dict, callable or None
            ``{'module', 'class_name', 'config', 'registered_name'}`` for a registered object.
        """
        if obj is None:
            return None
        if type(obj).__name__ in self.classes and isinstance(obj, self.classes[type(obj).__name__]):
            return {"module": self.module, "class_name": type(obj).__name__,
                    "config": obj.get_config(), "registered_name": None}
        return obj
