"""Deliberately failing workers for ``test_harness.py``."""

from __future__ import annotations

import time

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
