"""Optimizers and the optimizer wrapper: ``Lion``, ``OptimizerWrapper`` and the param-group modifiers."""

from noether.core.optimizer.lion import Lion

__all__: list[str] = ["Lion"]
