"""Plugins that change the properties (lr scale, weight decay, ...) of individual parameters' groups."""

from noether.core.optimizer.param_group_modifiers.base import ParamGroupModifierBase
from noether.core.optimizer.param_group_modifiers.layerwise_lr_decay import LayerwiseLrDecayModifier
from noether.core.optimizer.param_group_modifiers.lr_scale_by_name import LrScaleByNameModifier
from noether.core.optimizer.param_group_modifiers.weight_decay_by_name import WeightDecayByNameModifier

__all__ = ["LayerwiseLrDecayModifier", "LrScaleByNameModifier", "ParamGroupModifierBase", "WeightDecayByNameModifier"]
