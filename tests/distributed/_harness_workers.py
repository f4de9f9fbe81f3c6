"""Deliberately failing workers for ``test_harness.py``."""

from __future__ import annotations

import time

import torch
import torch.distributed as dist
from _harness import RankContext


def rank1_raises_while_rank0_waits(ctx: RankContext) -> None:
    """Rank 1 fails; rank 0 blocks in a collective, so it can only fail later (reset peer) or be terminated."""
    if ctx.rank == 1:
        time.sleep(0.5)
        raise ValueError("boom on rank 1")
    dist.barrier()


def hangs(ctx: RankContext) -> None:
    """Never returns on its own."""
    time.sleep(3600)


def one_scenario_fails_on_every_rank(ctx: RankContext) -> None:
    """A failing scenario followed by one that works (and uses a collective, so the ranks are still in step)."""
    with ctx.scenario("harness_bad"):
        raise KeyError(f"bad scenario on rank {ctx.rank}")
    with ctx.scenario("harness_good"):
        value = torch.tensor([float(ctx.rank + 1)])
        dist.all_reduce(value)
        ctx.save("harness_good", value)
