"""DDP with Lion in an ``OptimizerWrapper``: DDP averages the gradients, every rank takes the same clipped step.

    torchrun --standalone --nproc-per-node 2 examples/distributed/ddp.py

At the end rank 0 saves a checkpoint and loads it into a plain (single-process) model and wrapper: the optimizer
state is keyed by parameter name, and DDP's ``module.`` prefix does not get in the way.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import torch
import torch.distributed as dist
from _setup import init_distributed, log, make_model, shutdown, train
from torch.nn.parallel import DistributedDataParallel

from noether.core.factory import OptimizerFactory
from noether.core.schemas.optimizers import OptimizerConfig

CONFIG = OptimizerConfig(kind="noether.core.optimizer.Lion", lr=3e-3, weight_decay=0.1, clip_grad_norm=1.0)


def main() -> None:
    device, _ = init_distributed()
    model = DistributedDataParallel(make_model(device))
    optimizer = OptimizerFactory().create(CONFIG)(model)

    train(model, optimizer, device)  # forward, backward (DDP averages the gradients), clipped Lion step

    # Ranks hold bit-identical weights: DDP all-reduces gradients and Lion is deterministic.
    flat = torch.cat([p.detach().flatten() for p in model.parameters()])
    gathered = [torch.empty_like(flat) for _ in range(dist.get_world_size())]
    dist.all_gather(gathered, flat)
    assert all(torch.equal(flat, other) for other in gathered), "ranks diverged"
    log("ranks hold identical weights")

    if dist.get_rank() == 0:
        path = Path(tempfile.gettempdir()) / "noether-ddp-example.pt"
        torch.save({"model": model.module.state_dict(), "optim": optimizer.state_dict()}, path)
        # Later, in a single process (an evaluation job, a fine-tuning run):
        checkpoint = torch.load(path)
        plain = make_model(device)
        plain.load_state_dict(checkpoint["model"])
        report = OptimizerFactory().create(CONFIG)(plain).load_state_dict(checkpoint["optim"])
        log(f"single process: {report}")
    shutdown()


if __name__ == "__main__":
    main()
