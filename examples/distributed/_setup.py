"""What every example here shares: process-group setup for CPU (gloo) or GPUs (NCCL), a toy model and toy data.

Run the examples with ``torchrun --standalone --nproc-per-node 2 examples/distributed/<name>.py``; torchrun sets
``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK`` and the rendezvous address that ``init_process_group`` reads.
"""

from __future__ import annotations

import gc
import os
from collections.abc import Callable
from typing import Any

import torch
import torch.distributed as dist
from torch import nn
from torch.distributed.device_mesh import DeviceMesh, init_device_mesh


def init_distributed() -> tuple[torch.device, DeviceMesh]:
    """Join the process group torchrun describes; one GPU per process if there are GPUs, else CPU with gloo."""
    if torch.cuda.is_available():
        device = torch.device("cuda", int(os.environ["LOCAL_RANK"]))
        torch.cuda.set_device(device)
        dist.init_process_group("nccl", device_id=device)
    else:
        device = torch.device("cpu")
        torch.set_num_threads(1)  # several ranks share the machine's cores
        dist.init_process_group("gloo")
    return device, init_device_mesh(device.type, (dist.get_world_size(),))


def shutdown() -> None:
    """Leave the process group cleanly.

    Collect garbage first: tensors still tied to the group (DTensors, DDP buckets) that are freed only after it is
    destroyed can make a rank abort at exit ("terminate called without an active exception").
    """
    gc.collect()
    dist.destroy_process_group()


def make_model(device: torch.device) -> nn.Module:
    """Same seed on every rank, so all ranks start from the same weights."""
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(32, 64), nn.GELU(), nn.Linear(64, 64), nn.GELU(), nn.Linear(64, 1)).to(device)


def batch(step: int, device: torch.device, global_size: int = 64) -> tuple[torch.Tensor, torch.Tensor]:
    """Global batch ``step`` of a regression problem, or this rank's slice of it when running distributed."""
    generator = torch.Generator().manual_seed(step)
    x = torch.randn(global_size, 32, generator=generator)
    y = torch.tanh(x[:, :8].mean(dim=1, keepdim=True) * 2)
    if dist.is_initialized():
        x, y = x.chunk(dist.get_world_size())[dist.get_rank()], y.chunk(dist.get_world_size())[dist.get_rank()]
    return x.to(device), y.to(device)


def log(message: str) -> None:
    if not dist.is_initialized() or dist.get_rank() == 0:
        print(message, flush=True)


def train(
    model: nn.Module,
    optimizer: Any,
    device: torch.device,
    steps: range = range(50),
    after_backward: Callable[[nn.Module], None] | None = None,
) -> None:
    """The usual loop over this rank's batches; logs the loss (and the wrapper's gradient norm) every 10 steps."""
    for step in steps:
        x, y = batch(step, device)
        loss = nn.functional.mse_loss(model(x), y)
        loss.backward()
        if after_backward is not None:
            after_backward(model)
        optimizer.step()
        optimizer.zero_grad()
        if step % 10 == 0 or step == steps[-1]:
            norm = getattr(optimizer, "last_grad_norm", None)  # set by OptimizerWrapper.step
            log(f"step {step:2d}  loss {loss.item():.4f}" + (f"  grad norm {norm:.3f}" if norm is not None else ""))
