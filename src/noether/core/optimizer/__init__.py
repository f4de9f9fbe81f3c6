"""Optimizers and the optimizer wrapper: ``Lion``, ``OptimizerWrapper`` and the param-group modifiers."""

from noether.core.optimizer.checkpoint import LoadReport
from noether.core.optimizer.lion import Lion
from noether.core.optimizer.lr_scheduler import ScheduleLR
from noether.core.optimizer.optimizer_wrapper import OptimizerWrapper
from noether.core.optimizer.param_group_modifiers import (
    LayerwiseLrDecayModifier,
    LrScaleByNameModifier,
    ParamGroupModifierBase,
    WeightDecayByNameModifier,
)

__all__ = [
    "LayerwiseLrDecayModifier",
    "Lion",
    "LoadReport",
    "LrScaleByNameModifier",
    "OptimizerWrapper",
    "ParamGroupModifierBase",
    "ScheduleLR",
    "WeightDecayByNameModifier",
]
