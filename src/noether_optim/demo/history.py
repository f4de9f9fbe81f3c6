"""What a demo training run records, shared by the training loop, the checkpoints and the plots."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

__all__ = ["RunHistory"]


@dataclass
class RunHistory:
    """What one training run recorded: per-update train loss, lr and wd; per-epoch validation error."""

    name: str
    train_loss: list[float] = field(default_factory=list)
    lr: list[float] = field(default_factory=list)
    weight_decay: list[float] = field(default_factory=list)
    val_error: list[float] = field(default_factory=list)
    skipped_steps: int = 0
    seconds: float = 0.0

    @property
    def final_val_error(self) -> float:
        """Relative L2 validation error after the last epoch (``nan`` before the first)."""
        return self.val_error[-1] if self.val_error else math.nan
