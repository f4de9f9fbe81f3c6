"""A dictionary that can be read in both directions."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Generic, TypeVar

KT = TypeVar("KT")
VT = TypeVar("VT")

__all__ = ["Bidict"]


class Bidict(Generic[KT, VT]):
    """A one-to-one mapping with constant-time lookups from key to value and from value to key.

    Both keys and values must be unique: setting a value that another key already holds raises instead of
    silently breaking the inverse mapping.

    Args:
        forward: Initial key -> value pairs.
    """

    def __init__(self, forward: Mapping[KT, VT] | None = None) -> None:
        self._forward: dict[KT, VT] = {}
        self._backward: dict[VT, KT] = {}
        for key, value in (forward or {}).items():
            self.set(key, value)

    def set(self, key: KT, value: VT) -> None:
        """Map ``key`` to ``value``, replacing the key's previous value.

        Raises:
            ValueError: If ``value`` is already held by another key.
        """
        holder = self._backward.get(value, key)
        if holder != key:
            raise ValueError(f"Bidict value {value!r} is already mapped from key {holder!r}; values must be unique")
        if key in self._forward:
            del self._backward[self._forward[key]]
        self._forward[key] = value
        self._backward[value] = key

    def get_value_by_key(self, key: KT) -> VT:
        """Return the value of ``key`` (KeyError if absent)."""
        return self._forward[key]

    def get_key_by_value(self, value: VT) -> KT:
        """Return the key that maps to ``value`` (KeyError if absent)."""
        return self._backward[value]

    def has_key(self, key: KT) -> bool:
        """Whether ``key`` is present."""
        return key in self._forward

    def has_value(self, value: VT) -> bool:
        """Whether some key maps to ``value``."""
        return value in self._backward

    def to_forward(self) -> dict[KT, VT]:
        """A plain ``dict`` copy of key -> value."""
        return dict(self._forward)

    def to_backward(self) -> dict[VT, KT]:
        """A plain ``dict`` copy of value -> key."""
        return dict(self._backward)

    def items(self) -> Iterator[tuple[KT, VT]]:
        """Iterate over (key, value) pairs in insertion order."""
        return iter(self._forward.items())

    def __len__(self) -> int:
        return len(self._forward)

    def __iter__(self) -> Iterator[KT]:
        return iter(self._forward)

    def __contains__(self, key: object) -> bool:
        return key in self._forward

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Bidict):
            return NotImplemented
        return self._forward == other._forward

    __hash__ = None  # type: ignore[assignment]  # mutable container

    def __repr__(self) -> str:
        return f"Bidict({self._forward!r})"
