"""Optimizers and the optimizer wrapper: ``Lion``, ``OptimizerWrapper`` and the param-group modifiers."""

__all__: list[str] = []
