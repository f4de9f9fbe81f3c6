"""The dataset factory of the original framework's factory package, kept so the name exists here."""

from __future__ import annotations

from noether.core.factory.base import Factory

__all__ = ["DatasetFactory"]


class DatasetFactory(Factory):
    """A plain :class:`Factory` for dataset configs: a ``kind`` resolves under the allowed module prefixes only."""
