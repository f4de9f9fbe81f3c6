"""The ``OptimizerWrapper`` side of the shared problem: one config, and training that records what clipping saw."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from _problem import loss_fn, params_of
from torch import nn

from noether.core.factory import OptimizerFactory
from noether.core.optimizer import OptimizerWrapper
from noether.core.schemas.optimizers import OptimizerConfig

# Below every gradient norm of the problem (0.67 to 0.95 over its steps), so clipping acts on every step.
CLIP_GRAD_NORM = 0.5


def lion_wrapper(model: nn.Module, foreach: bool = True) -> OptimizerWrapper:
    """Lion with weight decay (biases excluded, so two param groups) and gradient-norm clipping."""
    config = OptimizerConfig(
        kind="noether.core.optimizer.Lion", lr=1e-2, weight_decay=0.1, clip_grad_norm=CLIP_GRAD_NORM, foreach=foreach
    )
    wrapper: OptimizerWrapper = OptimizerFactory().create(config)(model)
    return wrapper


def full(tensor: torch.Tensor) -> torch.Tensor:
    """The whole tensor: a DTensor is gathered (a collective), a plain one copied."""
    return (tensor.full_tensor() if hasattr(tensor, "full_tensor") else tensor).detach().clone()


def train_wrapped(
    model: nn.Module,
    wrapper: OptimizerWrapper,
    batches: list[tuple[torch.Tensor, ...]],
    after_backward: Callable[[nn.Module], None] = lambda model: None,
) -> dict[str, Any]:
    """Train with ``wrapper``; return the final params, every step's total gradient norm and the last clipped grads."""
    norms = []
    clipped: dict[str, torch.Tensor] = {}
    for batch in batches:
        loss_fn(model, batch).backward()
        after_backward(model)
        wrapper.step()
        norms.append(wrapper.last_grad_norm)
        clipped = {name.removeprefix("module."): full(p.grad) for name, p in model.named_parameters()}
        wrapper.zero_grad()
    return {"params": params_of(model), "norms": norms, "clipped_grads": clipped}
