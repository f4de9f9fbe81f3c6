"""Scale the learning rate of parameters selected by name."""

from __future__ import annotations

from noether.core.optimizer.param_group_modifiers.by_name import ByNameModifierBase
from noether.core.schemas.optimizers import ParamGroupModifierConfig

__all__ = ["LrScaleByNameModifier"]


class LrScaleByNameModifier(ByNameModifierBase):
    """Scales the learning rate of a certain parameter (or of every parameter matching a glob pattern).

    The matching parameters get ``lr = scale * lr`` (``lr_scale`` in their group): at construction when no
    schedule is set, and at every ``schedule_step()`` as ``lr = scale * schedule_value`` otherwise. Scales from
    several modifiers on one parameter multiply.

    Args:
        param_group_modifier_config: A config with ``name`` (exact name or glob) and ``scale``.
    """

    def __init__(self, param_group_modifier_config: ParamGroupModifierConfig) -> None:
        if param_group_modifier_config.scale is None:
            raise ValueError(f"LrScaleByNameModifier for {param_group_modifier_config.name!r} needs a 'scale'")
        super().__init__(param_group_modifier_config.name)
        self.scale = param_group_modifier_config.scale

    def properties(self) -> dict[str, float]:
        """``{"lr_scale": scale}``."""
        return {"lr_scale": self.scale}

    def __str__(self) -> str:
        return f"{type(self).__name__}(name={self.name},scale={self.scale})"
