"""The generic factory (its code lives in :mod:`noether.core.builders.factory`; this is its public path)."""

from noether.core.builders.factory import Factory

__all__ = ["Factory"]
