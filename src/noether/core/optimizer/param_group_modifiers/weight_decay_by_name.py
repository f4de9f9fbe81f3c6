"""Set the weight decay of parameters selected by name."""

from __future__ import annotations

from noether.core.optimizer.param_group_modifiers.by_name import ByNameModifierBase
from noether.core.schemas.optimizers import ParamGroupModifierConfig

__all__ = ["WeightDecayByNameModifier"]


class WeightDecayByNameModifier(ByNameModifierBase):
    """Changes the weight decay value for a single parameter (or every parameter matching a glob pattern).

    Use-cases: excluding a ViT's CLS token, learned positional embeddings, or learnable query tokens from weight
    decay (``value: 0.0``). An explicit value overrides what the bias/normalization flags derived.

    Args:
        param_group_modifier_config: A config with ``name`` (exact name or glob) and ``value``.
    """

    duplicate_match_error = RuntimeError

    def __init__(self, param_group_modifier_config: ParamGroupModifierConfig) -> None:
        super().__init__(param_group_modifier_config.name)
        self.value = param_group_modifier_config.value

    def properties(self) -> dict[str, float]:
        """``{"weight_decay": value}`` (0.0 when the value is unset)."""
        return {"weight_decay": self.value or 0.0}

    def __str__(self) -> str:
        # The unbalanced parenthesis is the original's rendering, kept because logs and tests compare it.
        return f"{type(self).__name__}(name={self.name}), value={self.value})"
