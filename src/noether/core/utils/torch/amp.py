"""Stand-ins for the AMP machinery when mixed precision is off."""

from __future__ import annotations

from typing import Any

import torch

__all__ = ["NoopContext", "NoopGradScaler"]


class NoopContext:
    """A context manager that does nothing; used in place of ``torch.autocast`` when AMP is off."""

    def __enter__(self) -> None:
        return None

    def __exit__(self, *args: object) -> None:
        return None


class NoopGradScaler(torch.amp.GradScaler):
    """A disabled ``GradScaler``: gradients are never scaled, ``step`` just calls ``optimizer.step``.

    It is a real ``torch.amp.GradScaler`` subclass (built with ``enabled=False``) so code that accepts a scaler
    accepts it too.
    """

    def __init__(self) -> None:
        super().__init__(device="cpu", enabled=False)

    def scale(self, outputs: Any) -> Any:
        """Return ``outputs`` unchanged."""
        return outputs

    def unscale_(self, optimizer: torch.optim.Optimizer) -> None:
        """Do nothing: the gradients were never scaled."""
        return None

    def step(self, optimizer: torch.optim.Optimizer, *args: Any, **kwargs: Any) -> Any:
        """Call ``optimizer.step(*args, **kwargs)`` and return its result."""
        return optimizer.step(*args, **kwargs)

    def update(self, new_scale: float | torch.Tensor | None = None) -> None:
        """Do nothing: there is no scale to update."""
        return None
