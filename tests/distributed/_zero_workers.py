"""Worker functions for ``test_zero.py`` (run on every rank by :func:`_harness.run_on_ranks`)."""

from __future__ import annotations

import functools
from typing import Any

import torch
from _harness import RankContext
from _problem import OptimizerBuilder, local_batch, loss_fn, make_batches, make_model, params_of
from torch.nn.parallel import DistributedDataParallel

from noether.core.optimizer import Lion

# ZeRO builds the optimizer itself from a class and keyword arguments, one instance per rank for its partition.
ZERO_OPTIMIZERS: dict[str, tuple[type[torch.optim.Optimizer], dict[str, Any]]] = {
    "adamw": (torch.optim.AdamW, {"lr": 1e-2, "weight_decay": 0.1}),
    "lion_foreach": (Lion, {"lr": 1e-2, "weight_decay": 0.1, "foreach": True}),
    "lion_caution_single": (Lion, {"lr": 1e-2, "weight_decay": 0.1, "caution": True, "foreach": False}),
}


def single_process_builder(name: str) -> OptimizerBuilder:
    optimizer_class, kwargs = ZERO_OPTIMIZERS[name]
    return functools.partial(optimizer_class, **kwargs)


def zero_training(ctx: RankContext) -> None:
    """DDP with the optimizer state partitioned over ranks by ``ZeroRedundancyOptimizer``."""
    # Imported here: torch.distributed.optim scripts functions at import time, which floods the parent's warnings.
    from torch.distributed.optim import ZeroRedundancyOptimizer

    for name, (optimizer_class, kwargs) in ZERO_OPTIMIZERS.items():
        with ctx.scenario(f"zero_{name}"):
            model = DistributedDataParallel(make_model())
            optimizer = ZeroRedundancyOptimizer(model.parameters(), optimizer_class=optimizer_class, **kwargs)
            for batch in make_batches():
                loss_fn(model, local_batch(batch, ctx.rank, ctx.world_size)).backward()
                optimizer.step()
                optimizer.zero_grad()
            # Each rank holds the state of its own partition only.
            local_state = sum(len(state) > 0 for state in optimizer.optim.state.values())
            # A full checkpoint: every rank sends its partition's state to rank 0 (a collective).
            optimizer.consolidate_state_dict(to=0)
            full_state = optimizer.state_dict() if ctx.rank == 0 else None
            result = {"params": params_of(model), "local_state_entries": local_state, "state_dict": full_state}
            ctx.save(f"zero_{name}", result)
