"""Worker functions for ``test_fsdp.py`` (run on every rank by :func:`_harness.run_on_ranks`)."""

from __future__ import annotations

import torch
import torch.distributed as dist
from _harness import RankContext
from _problem import OPTIMIZERS, OptimizerBuilder, local_batch, loss_fn, make_batches, make_model, params_of
from torch import nn
from torch.distributed.device_mesh import DeviceMesh
from torch.distributed.fsdp import fully_shard
from torch.distributed.tensor import DTensor

FSDP_OPTIMIZERS = (
    "adamw_foreach",
    "lion_foreach",
    "lion_single",
    "lion_caution_foreach",
    "lion_caution_single",
    "lion_bf16_momentum_foreach",  # a bfloat16 momentum of float32 params, sharded like them
)
# torch's own foreach optimizers refuse a list mixing DTensor and plain tensors; Lion buckets them.
MIXED_OPTIMIZERS = ("adamw_single", "lion_foreach", "lion_caution_foreach")


def sharded_model(mesh: DeviceMesh, ignored: tuple[str, ...] = ()) -> nn.Module:
    """The tiny model with each layer and the root sharded by FSDP2; parameters named in ``ignored`` stay plain."""
    model = make_model()
    ignored_params = {model.get_parameter(name) for name in ignored}
    for layer in (model.fc1, model.fc2):
        fully_shard(layer, mesh=mesh, ignored_params=ignored_params & set(layer.parameters()) or None)
    fully_shard(model, mesh=mesh, ignored_params=ignored_params or None)
    return model


def average_plain_grads(model: nn.Module) -> None:
    """FSDP2 leaves ignored (plain) parameters alone: averaging their gradients is the caller's job."""
    for param in model.parameters():
        if not isinstance(param, DTensor) and param.grad is not None:
            dist.all_reduce(param.grad, op=dist.ReduceOp.AVG)


def train(ctx: RankContext, model: nn.Module, optimizer: torch.optim.Optimizer) -> None:
    for batch in make_batches():
        loss_fn(model, local_batch(batch, ctx.rank, ctx.world_size)).backward()
        average_plain_grads(model)
        optimizer.step()
        optimizer.zero_grad()


def run_optimizer(ctx: RankContext, name: str, builder: OptimizerBuilder, ignored: tuple[str, ...] = ()) -> None:
    with ctx.scenario(name):
        model = sharded_model(ctx.mesh, ignored)
        kinds = {n: type(p).__name__ for n, p in model.named_parameters()}
        train(ctx, model, builder(model.parameters()))
        ctx.save(name, {"params": params_of(model), "kinds": kinds})


def fsdp_training(ctx: RankContext) -> None:
    """Every optimizer on an all-DTensor model, then on a model mixing DTensor and plain parameters."""
    for name in FSDP_OPTIMIZERS:
        run_optimizer(ctx, f"fsdp_{name}", OPTIMIZERS[name])
    for name in MIXED_OPTIMIZERS:
        run_optimizer(ctx, f"mixed_{name}", OPTIMIZERS[name], ignored=("fc2.bias",))
