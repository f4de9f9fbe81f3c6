"""Builds param-group modifiers from their configs (public path: ``noether.core.factory.optimizer``)."""

from __future__ import annotations

from noether.core.builders.factory import Factory
from noether.core.optimizer.param_group_modifiers.base import ParamGroupModifierBase

__all__ = ["ParamGroupModifierFactory"]


class ParamGroupModifierFactory(Factory):
    """Builds param-group modifiers; a ``kind`` must name a :class:`ParamGroupModifierBase` subclass."""

    base_class = ParamGroupModifierBase
