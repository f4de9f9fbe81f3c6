"""Worker functions for ``test_dcp.py`` (run on every rank by :func:`_harness.run_on_ranks`)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
import torch.distributed.checkpoint as dcp
from _fsdp_workers import sharded_model
from _harness import RankContext
from _problem import OPTIMIZERS, local_batch, loss_fn, make_batches, params_of
from torch import nn
from torch.distributed.checkpoint.state_dict import (
    StateDictOptions,
    get_model_state_dict,
    get_optimizer_state_dict,
    set_model_state_dict,
    set_optimizer_state_dict,
)

DCP_OPTIMIZERS = ("adamw_foreach", "lion_foreach", "lion_bf16_momentum_foreach")
SPLIT = 3  # steps before the checkpoint; the rest of make_batches() runs after it


def checkpoint_dir(run_dir: Path, optimizer: str) -> Path:
    return run_dir / f"checkpoint_{optimizer}"


def save(model: nn.Module, optimizer: torch.optim.Optimizer, path: Path) -> None:
    dcp.save(
        {"model": get_model_state_dict(model), "optim": get_optimizer_state_dict(model, optimizer)}, checkpoint_id=path
    )


def load(model: nn.Module, optimizer: torch.optim.Optimizer, path: Path) -> None:
    """Load a DCP checkpoint in place; the same code runs on ranks and in a single process."""
    state = {"model": get_model_state_dict(model), "optim": get_optimizer_state_dict(model, optimizer)}
    dcp.load(state, checkpoint_id=path, no_dist=not dist.is_initialized())
    set_model_state_dict(model, state["model"])
    set_optimizer_state_dict(model, optimizer, state["optim"])


def full_optimizer_state(model: nn.Module, optimizer: torch.optim.Optimizer) -> dict[str, Any]:
    """The whole optimizer state keyed by parameter name, gathered on every rank (a collective)."""
    options = StateDictOptions(full_state_dict=True)
    return dict(get_optimizer_state_dict(model, optimizer, options=options)["state"])


def train(ctx: RankContext, model: nn.Module, optimizer: torch.optim.Optimizer, batches: list[Any]) -> None:
    for batch in batches:
        loss_fn(model, local_batch(batch, ctx.rank, ctx.world_size)).backward()
        optimizer.step()
        optimizer.zero_grad()


def dcp_save_and_resume(ctx: RankContext) -> None:
    """Train, checkpoint, keep training; then rebuild from scratch, load and train the same steps again."""
    batches = make_batches()
    for name in DCP_OPTIMIZERS:
        path = checkpoint_dir(ctx.run_dir, name)
        with ctx.scenario(f"dcp_{name}_continued"):
            model = sharded_model(ctx.mesh)
            optimizer = OPTIMIZERS[name](model.parameters())
            train(ctx, model, optimizer, batches[:SPLIT])
            save(model, optimizer, path)
            at_checkpoint = {"params": params_of(model), "state": full_optimizer_state(model, optimizer)}
            ctx.save(f"dcp_{name}_at_checkpoint", at_checkpoint)
            train(ctx, model, optimizer, batches[SPLIT:])
            ctx.save(f"dcp_{name}_continued", params_of(model))
        with ctx.scenario(f"dcp_{name}_resumed"):
            resumed = sharded_model(ctx.mesh)
            resumed_optimizer = OPTIMIZERS[name](resumed.parameters())
            load(resumed, resumed_optimizer, path)
            train(ctx, resumed, resumed_optimizer, batches[SPLIT:])
            ctx.save(f"dcp_{name}_resumed", params_of(resumed))
