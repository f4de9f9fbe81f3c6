"""The dataset factory of the original framework's factory package, kept so the name exists here."""

from __future__ import annotations

import torch.utils.data

from noether.core.builders.factory import Factory

__all__ = ["DatasetFactory"]


class DatasetFactory(Factory):
    """A :class:`Factory` for dataset configs.

    A ``kind`` must name a ``torch.utils.data.Dataset`` subclass defined under the allowed module prefixes: register
    your project's package with :func:`~noether.core.factory.register_module_prefix` first.
    """

    base_class = torch.utils.data.Dataset
