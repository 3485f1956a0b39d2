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


def snake_case(name: str) -> str:
    """'GlorotUniform' -> 'glorot_uniform', 'L1L2' -> 'l1l2' (Keras's to_snake_case rule:
    an underscore before a capital that starts a lower-case word, and between a lower-case
    letter and a capital)."""
    name = re.sub(r"(.)([A-Z][a-z]+)", r"\1_\2", name)
    return re.sub(r"([a-z])([A-Z])", r"\1_\2", name).lower()


class Registry:
    """One family of Keras objects (``kind`` names it in messages; ``module`` in configs)."""

    def __init__(self, kind: str, module: str, classes, aliases: dict | None = None):
        self.kind, self.module = kind, module
        self.classes = {cls.__name__: cls for cls in classes}
        self.names = {**self.classes, **{snake_case(n): c for n, c in self.classes.items()}}
        self.aliases = dict(aliases or {})

    def get(self, identifier):
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

    def _from_config(self, config: dict):
        name = config.get("class_name")
        if name not in self.classes:
            raise ValueError(f"Could not interpret {self.kind} identifier: {config!r} "
                             f"(class_name must be one of {sorted(self.classes)})")
        return self.classes[name](**dict(config.get("config") or {}))

    def serialize(self, obj):
        """Keras's dict form for registered objects; other callables are kept as they are."""
        if obj is None:
            return None
        if type(obj).__name__ in self.classes and isinstance(obj, self.classes[type(obj).__name__]):
            return {"module": self.module, "class_name": type(obj).__name__,
                    "config": obj.get_config(), "registered_name": None}
        return obj
