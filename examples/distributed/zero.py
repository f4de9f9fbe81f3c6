"""ZeRO stage 1 with Lion: DDP gradients, optimizer state partitioned over ranks by ``ZeroRedundancyOptimizer``.

    torchrun --standalone --nproc-per-node 2 examples/distributed/zero.py

Each rank keeps Lion's momentum only for its share of the parameters, steps that share, and broadcasts the result.
"""

from __future__ import annotations

import torch.distributed as dist
from _setup import init_distributed, log, make_model, shutdown, train
from torch.distributed.optim import ZeroRedundancyOptimizer
from torch.nn.parallel import DistributedDataParallel

from noether.core.optimizer import Lion


def main() -> None:
    device, _ = init_distributed()
    model = DistributedDataParallel(make_model(device))
    # The keyword arguments after optimizer_class go to Lion.
    optimizer = ZeroRedundancyOptimizer(model.parameters(), optimizer_class=Lion, lr=3e-3, weight_decay=0.1)

    train(model, optimizer, device)  # each rank steps its partition, then the updated weights are broadcast

    owned = sum(p.numel() for p, state in optimizer.optim.state.items() if state)
    shares: list[object] = [None] * dist.get_world_size()
    dist.all_gather_object(shares, owned)
    log(f"Lion state elements per rank: {shares} of {sum(p.numel() for p in model.parameters())} parameters")
    # A full optimizer checkpoint: gather every shard's state on rank 0, then save it from there.
    optimizer.consolidate_state_dict(to=0)
    if dist.get_rank() == 0:
        state = optimizer.state_dict()
        log(f"consolidated state of {len(state['state'])} parameters on rank 0")
    shutdown()


if __name__ == "__main__":
    main()
