"""Distributed checkpoint (DCP) of an FSDP2 model and its optimizer: save on 2 ranks, resume, load in 1 process.

    torchrun --standalone --nproc-per-node 2 examples/distributed/dcp.py   # train, save, resume, compare
    python examples/distributed/dcp.py                                   # load that checkpoint in one process

Each rank writes only its own shards; ``get_optimizer_state_dict`` keys the optimizer state by parameter name, so
the checkpoint loads into any number of ranks, or none (plain single-process model). The optimizer is Lion in an
``OptimizerWrapper``; DCP's functions take a ``torch.optim.Optimizer``, so they get ``wrapper.torch_optim``.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import warnings
from pathlib import Path

import torch
import torch.distributed as dist
import torch.distributed.checkpoint as dcp
from _setup import batch, init_distributed, log, make_model, shutdown
from torch import nn
from torch.distributed.checkpoint.state_dict import (
    get_model_state_dict,
    get_optimizer_state_dict,
    set_model_state_dict,
    set_optimizer_state_dict,
)
from torch.distributed.device_mesh import DeviceMesh
from torch.distributed.fsdp import fully_shard

from noether.core.factory import OptimizerFactory
from noether.core.optimizer import OptimizerWrapper
from noether.core.schemas.optimizers import OptimizerConfig

CHECKPOINT = Path(os.environ.get("CHECKPOINT_DIR", Path(tempfile.gettempdir()) / "noether-dcp-example"))
SAVE_AT, STEPS = 30, 50


CONFIG = OptimizerConfig(kind="noether.core.optimizer.Lion", lr=3e-3, weight_decay=0.1, clip_grad_norm=1.0)


def build(device: torch.device, mesh: DeviceMesh | None) -> tuple[nn.Module, OptimizerWrapper]:
    model = make_model(device)
    if mesh is not None:
        for layer in model:
            if isinstance(layer, nn.Linear):
                fully_shard(layer, mesh=mesh)
        fully_shard(model, mesh=mesh)
    wrapper: OptimizerWrapper = OptimizerFactory().create(CONFIG)(model)
    return model, wrapper


def save(model: nn.Module, wrapper: OptimizerWrapper) -> None:
    optim = wrapper.torch_optim  # what DCP's optimizer functions accept
    state = {"model": get_model_state_dict(model), "optim": get_optimizer_state_dict(model, optim)}
    dcp.save(state, checkpoint_id=CHECKPOINT)


def load(model: nn.Module, wrapper: OptimizerWrapper) -> None:
    # The get_* calls give the structure to load into; DCP fills it in place, the set_* calls apply it.
    optim = wrapper.torch_optim
    state = {"model": get_model_state_dict(model), "optim": get_optimizer_state_dict(model, optim)}
    with warnings.catch_warnings():  # without a process group DCP warns that it loads in a single process: intended
        warnings.filterwarnings("ignore", "torch.distributed is disabled", UserWarning)
        dcp.load(state, checkpoint_id=CHECKPOINT, no_dist=not dist.is_initialized())
    set_model_state_dict(model, state["model"])
    set_optimizer_state_dict(model, optim, state["optim"])


def train(model: nn.Module, optimizer: OptimizerWrapper, steps: range, device: torch.device) -> None:
    for step in steps:
        x, y = batch(step, device)
        nn.functional.mse_loss(model(x), y).backward()
        optimizer.step()
        optimizer.zero_grad()


def distributed() -> None:
    device, mesh = init_distributed()
    if dist.get_rank() == 0:
        shutil.rmtree(CHECKPOINT, ignore_errors=True)  # a rerun starts clean
    dist.barrier()
    model, optimizer = build(device, mesh)
    train(model, optimizer, range(SAVE_AT), device)
    save(model, optimizer)
    log(f"saved step {SAVE_AT} to {CHECKPOINT}")
    train(model, optimizer, range(SAVE_AT, STEPS), device)

    resumed, resumed_optimizer = build(device, mesh)  # fresh objects, as after a restart
    load(resumed, resumed_optimizer)
    train(resumed, resumed_optimizer, range(SAVE_AT, STEPS), device)
    final = {name: p.full_tensor() for name, p in model.named_parameters()}
    for name, p in resumed.named_parameters():
        assert torch.equal(p.full_tensor(), final[name]), f"resumed run differs in {name}"
    log(f"step {STEPS}: the resumed run's weights are identical to the uninterrupted run's")
    if dist.get_rank() == 0:
        torch.save(final, CHECKPOINT / "final_weights.pt")  # for the single-process comparison below
    shutdown()


def single_process() -> None:
    model, optimizer = build(torch.device("cpu"), mesh=None)
    load(model, optimizer)
    log(f"loaded the weights and Lion momenta the ranks saved at step {SAVE_AT}")
    # Whole global batches here, where each rank took half of each: the same gradients up to rounding.
    train(model, optimizer, range(SAVE_AT, STEPS), torch.device("cpu"))
    final = torch.load(CHECKPOINT / "final_weights.pt")
    drift = max((p.detach() - final[name]).abs().max().item() for name, p in model.named_parameters())
    log(f"step {STEPS}: largest difference to the 2-rank run's weights {drift:.1e} (at most rounding)")


if __name__ == "__main__":
    if "RANK" in os.environ:
        distributed()
    else:
        single_process()
