"""The tiny training problem every distributed test shares, and its single-process reference.

Ranks and the parent build the model from the same seed, so they start from identical weights without any
communication; each rank trains on its contiguous slice of every global batch (data parallel), the parent on the
full batch. With a mean loss and gradient averaging over ranks, both see the same gradient up to float rounding.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import torch
from torch import nn

from noether.core.optimizer import Lion

IN, HIDDEN, OUT = 8, 16, 5  # OUT=5 so FSDP2 shards the last layer unevenly over 2 ranks (3 + 2 rows)
GLOBAL_BATCH = 8
STEPS = 6

OptimizerBuilder = Callable[[Iterable[Any]], torch.optim.Optimizer]


class TinyNet(nn.Module):
    """Two linear layers; ``fc1`` and ``fc2`` are the units FSDP2 shards."""

    def __init__(self) -> None:
        super().__init__()
        self.fc1 = nn.Linear(IN, HIDDEN)
        self.fc2 = nn.Linear(HIDDEN, OUT)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(torch.tanh(self.fc1(x)))


def make_model(seed: int = 0) -> TinyNet:
    torch.manual_seed(seed)
    return TinyNet()


def make_batches(steps: int = STEPS, seed: int = 1) -> list[tuple[torch.Tensor, torch.Tensor]]:
    generator = torch.Generator().manual_seed(seed)
    return [
        (torch.randn(GLOBAL_BATCH, IN, generator=generator), torch.randn(GLOBAL_BATCH, OUT, generator=generator))
        for _ in range(steps)
    ]


def local_batch(batch: tuple[torch.Tensor, torch.Tensor], rank: int, world_size: int) -> tuple[torch.Tensor, ...]:
    """This rank's contiguous slice of a global batch."""
    return tuple(t.chunk(world_size)[rank] for t in batch)


def loss_fn(model: nn.Module, batch: tuple[torch.Tensor, ...]) -> torch.Tensor:
    x, y = batch
    return nn.functional.mse_loss(model(x), y)


def sgd_momentum(params: Iterable[Any]) -> torch.optim.Optimizer:
    return torch.optim.SGD(params, lr=0.05, momentum=0.9)


def adamw_foreach(params: Iterable[Any]) -> torch.optim.Optimizer:
    return torch.optim.AdamW(params, lr=1e-2, weight_decay=0.1, foreach=True)


def adamw_single(params: Iterable[Any]) -> torch.optim.Optimizer:
    return torch.optim.AdamW(params, lr=1e-2, weight_decay=0.1, foreach=False)


def train_reference(
    builder: OptimizerBuilder,
    batches: list[tuple[torch.Tensor, torch.Tensor]],
    model: nn.Module | None = None,
    optimizer: torch.optim.Optimizer | None = None,
) -> tuple[nn.Module, torch.optim.Optimizer]:
    """Single-process training on full batches; returns the model and optimizer (built fresh unless given)."""
    model = make_model() if model is None else model
    optimizer = builder(model.parameters()) if optimizer is None else optimizer
    for batch in batches:
        loss_fn(model, batch).backward()
        optimizer.step()
        optimizer.zero_grad()
    return model, optimizer


def params_of(model: nn.Module) -> dict[str, torch.Tensor]:
    """Detached full parameters by name, with DDP's ``module.`` prefix removed and DTensors gathered."""
    out = {}
    for name, param in model.named_parameters():
        tensor = param.detach()
        if hasattr(tensor, "full_tensor"):
            tensor = tensor.full_tensor()
        out[name.removeprefix("module.")] = tensor.clone()
    return out


def lion_foreach(params: Iterable[Any]) -> torch.optim.Optimizer:
    return Lion(params, lr=1e-2, weight_decay=0.1, foreach=True)


def lion_single(params: Iterable[Any]) -> torch.optim.Optimizer:
    return Lion(params, lr=1e-2, weight_decay=0.1, foreach=False)


def lion_caution_foreach(params: Iterable[Any]) -> torch.optim.Optimizer:
    return Lion(params, lr=1e-2, weight_decay=0.1, caution=True, foreach=True)


def lion_caution_single(params: Iterable[Any]) -> torch.optim.Optimizer:
    return Lion(params, lr=1e-2, weight_decay=0.1, caution=True, foreach=False)


def lion_bf16_momentum_foreach(params: Iterable[Any]) -> torch.optim.Optimizer:
    return Lion(params, lr=1e-2, weight_decay=0.1, foreach=True, momentum_dtype=torch.bfloat16)


# Module-level functions (not lambdas) so spawned ranks can receive them by reference.
OPTIMIZERS: dict[str, OptimizerBuilder] = {
    "sgd_momentum": sgd_momentum,
    "adamw_foreach": adamw_foreach,
    "adamw_single": adamw_single,
    "lion_foreach": lion_foreach,
    "lion_single": lion_single,
    "lion_caution_foreach": lion_caution_foreach,
    "lion_caution_single": lion_caution_single,
    "lion_bf16_momentum_foreach": lion_bf16_momentum_foreach,
}


# Data-parallel runs average two half-batch mean gradients where the reference takes one full-batch mean: the same
# sum in a different float32 order, so gradients differ by a few ulp (float32 eps is 1.2e-7, parameters here are
# O(1)). Over STEPS updates that drift stays around 1e-8 (measured: at most 3e-8 for SGD and AdamW; Lion, whose update
# is a sign, came out bit-identical). A real bug (an unaveraged gradient, a shard stepped twice, a lost state) moves
# parameters by 1e-3 or more per step; for Lion a single flipped sign moves an element by 2 * lr. 1e-5 sits between.
DATA_PARALLEL_ATOL = 1e-5


def assert_params_close(actual: dict[str, torch.Tensor], expected: dict[str, torch.Tensor]) -> None:
    """Data-parallel parameters equal the single-process ones up to reduction-order rounding."""
    assert actual.keys() == expected.keys()
    for name, value in expected.items():
        torch.testing.assert_close(actual[name], value, rtol=0, atol=DATA_PARALLEL_ATOL, msg=name)
