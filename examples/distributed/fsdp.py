"""FSDP2 (``fully_shard``) with Lion in an ``OptimizerWrapper`` that clips by the global gradient norm.

    torchrun --standalone --nproc-per-node 2 examples/distributed/fsdp.py

Parameters, gradients and Lion's momentum are DTensors sharded over the ranks. One parameter is left out of sharding
(``ignored_params``), so the optimizer holds a mix of DTensors and plain tensors: Lion's foreach kernel and the
wrapper's clipping handle that mix, where torch's ``clip_grad_norm_`` would refuse it.
"""

from __future__ import annotations

import torch.distributed as dist
from _setup import init_distributed, log, make_model, shutdown, train
from torch import nn
from torch.distributed.fsdp import fully_shard
from torch.distributed.tensor import DTensor

from noether.core.factory import OptimizerFactory
from noether.core.schemas.optimizers import OptimizerConfig


def average_plain_grads(model: nn.Module) -> None:
    """FSDP2 reduces the gradients of sharded parameters only; average the ignored ones yourself."""
    for p in model.parameters():
        if not isinstance(p, DTensor) and p.grad is not None:
            dist.all_reduce(p.grad, op=dist.ReduceOp.AVG)


def main() -> None:
    device, mesh = init_distributed()
    model = make_model(device)
    replicated = model[-1].bias  # kept whole on every rank, e.g. a tiny parameter not worth sharding
    for layer in model:
        if isinstance(layer, nn.Linear):
            fully_shard(layer, mesh=mesh, ignored_params={replicated} if layer is model[-1] else None)
    fully_shard(model, mesh=mesh, ignored_params={replicated})
    # Build the optimizer after sharding: it must hold the sharded DTensor parameters.
    config = OptimizerConfig(
        kind="noether.core.optimizer.Lion", lr=3e-3, weight_decay=0.1, clip_grad_norm=1.0, foreach=True
    )
    optimizer = OptimizerFactory().create(config)(model)

    # The wrapper's gradient norm covers every shard once and the replicated gradient once.
    train(model, optimizer, device, after_backward=average_plain_grads)

    weight = model[0].weight
    assert isinstance(weight, DTensor) and not isinstance(replicated, DTensor)
    log(f"{weight.shape=} is stored as a local shard of {tuple(weight.to_local().shape)} per rank")
    shutdown()


if __name__ == "__main__":
    main()
