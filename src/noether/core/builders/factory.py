"""The generic factory: turns configs (pydantic models or dicts with a ``kind``) into objects."""

from __future__ import annotations

import functools
import inspect
import sys
from collections.abc import Mapping, Sequence
from typing import Any

from pydantic import BaseModel

from noether.core.builders.kinds import class_constructor_from_class_path

__all__ = ["Factory"]


class Factory:
    """Builds objects from configs whose ``kind`` names the class to construct.

    * ``None`` or an empty mapping gives ``None``.
    * A pydantic model is passed positionally to its class: ``cls(config, **kwargs)``.
    * A mapping is unpacked: ``kind`` is removed, the rest are keyword arguments, ``cls(**rest, **kwargs)``.
    * An already built object is returned as is; a ``functools.partial`` or a class is called with ``kwargs``.

    Every ``kind`` goes through :func:`~noether.core.builders.kinds.class_constructor_from_class_path`, so it must be a
    ``str`` and only resolves to a class defined under the allowed module prefixes and, when :attr:`base_class` is
    set, only to its subclasses. Every factory of this package sets :attr:`base_class`; a factory of your own should
    too, so that a config cannot build an unrelated class that happens to live under an allowed prefix.

    Args:
        returns_partials: Return ``functools.partial`` objects (or classes) instead of instances, for objects that
            need arguments only known later (e.g. an optimizer needs the model's parameters).
    """

    base_class: type[Any] | None = None
    """The class every ``kind`` must derive from; ``None`` (this generic class only) accepts any class defined under
    the allowed prefixes."""

    def __init__(self, returns_partials: bool = False) -> None:
        self.returns_partials = returns_partials

    def allowed_kinds(self) -> list[str]:
        """The ``kind`` paths of the concrete :attr:`base_class` subclasses that ship with noether (and torch.optim).

        Used in error messages; any other subclass under an allowed module prefix resolves as well.
        """
        if self.base_class is None:
            return []
        found: set[str] = set()
        pending = list(self.base_class.__subclasses__())
        while pending:
            cls = pending.pop()
            pending.extend(cls.__subclasses__())
            module = cls.__module__
            public = not any(part.startswith("_") for part in (*module.split("."), cls.__qualname__))
            if public and not inspect.isabstract(cls) and module.split(".")[0] in ("noether", "torch"):
                found.add(_shortest_path(cls))
        return sorted(found)

    def _missing_kind_error(self, what: str) -> ValueError:
        allowed = self.allowed_kinds()
        hint = f"; allowed kinds: {', '.join(allowed)}, or another subclass under an allowed prefix" if allowed else ""
        return ValueError(f"cannot build {what}: the field 'kind' (the class path to build) is not set{hint}")

    def resolve_kind(self, kind: str) -> type[Any]:
        """Resolve ``kind`` to a class, enforcing the allowed prefixes and :attr:`base_class`."""
        return class_constructor_from_class_path(kind, base=self.base_class)

    def instantiate(self, obj: Any = None, **kwargs: Any) -> Any:
        """Construct the object a config describes.

        Args:
            obj: A pydantic config with a ``kind`` field; when ``None``, ``kwargs`` must hold ``kind`` and the
                constructor arguments.
            **kwargs: Extra constructor keyword arguments.
        """
        if obj is None:
            kind = kwargs.pop("kind", None)
            if kind is None:
                raise self._missing_kind_error("an object from a mapping")
            cls: Any = self.resolve_kind(kind)
            return functools.partial(cls, **kwargs) if self.returns_partials else cls(**kwargs)
        kind = getattr(obj, "kind", None)
        if kind is None:
            raise self._missing_kind_error(type(obj).__name__)
        resolved: Any = self.resolve_kind(kind)
        return functools.partial(resolved, obj, **kwargs) if self.returns_partials else resolved(obj, **kwargs)

    def create(self, obj: Any, **kwargs: Any) -> Any:
        """Create an object (or a partial, see ``returns_partials``) from ``obj``; see the class docstring."""
        if obj is None or (isinstance(obj, Mapping) and len(obj) == 0):
            return None
        if isinstance(obj, BaseModel):
            return self.instantiate(obj, **kwargs)
        if isinstance(obj, Mapping):
            return self.instantiate(**{**obj, **kwargs})
        if isinstance(obj, (functools.partial, type)):
            return obj if self.returns_partials else obj(**kwargs)
        return obj

    def create_list(self, collection: Sequence[Any] | Mapping[str, Any] | None, **kwargs: Any) -> list[Any]:
        """Create every entry of a list (or of a mapping's values); ``None`` gives ``[]``."""
        if collection is None:
            return []
        if isinstance(collection, Mapping):
            collection = list(collection.values())
        if not isinstance(collection, Sequence) or isinstance(collection, str):
            raise NotImplementedError(f"create_list expects a list or a mapping, got {type(collection).__name__}")
        # Every config entry must name its class before the first object is built.
        for index, entry in enumerate(collection):
            is_config = isinstance(entry, BaseModel) or (isinstance(entry, Mapping) and len(entry) > 0)
            kind = entry.get("kind") if isinstance(entry, Mapping) else getattr(entry, "kind", None)
            if is_config and kind is None:
                raise self._missing_kind_error(f"entry {index} ({type(entry).__name__})")
        return [self.create(entry, **kwargs) for entry in collection]

    def create_dict(self, collection: Mapping[str, Any] | None, **kwargs: Any) -> dict[str, Any]:
        """Create every value of a mapping, keeping its keys; ``None`` gives ``{}``."""
        if collection is None:
            return {}
        return {key: self.create(value, **kwargs) for key, value in collection.items()}


def _shortest_path(cls: type[Any]) -> str:
    """``cls``'s class path through the shortest already imported package that exports it (``torch.optim.AdamW``)."""
    parts = cls.__module__.split(".")
    for length in range(1, len(parts) + 1):
        module = sys.modules.get(".".join(parts[:length]))
        if module is not None and getattr(module, cls.__name__, None) is cls:
            return f"{'.'.join(parts[:length])}.{cls.__name__}"
    return f"{cls.__module__}.{cls.__qualname__}"
