"""Worker functions for ``test_ddp.py`` (run on every rank by :func:`_harness.run_on_ranks`)."""

from __future__ import annotations

from _harness import RankContext
from _problem import OPTIMIZERS, local_batch, loss_fn, make_batches, make_model, params_of
from torch.nn.parallel import DistributedDataParallel

DDP_OPTIMIZERS = ("sgd_momentum", "adamw_foreach", "lion_foreach", "lion_single")


def ddp_training(ctx: RankContext) -> None:
    """Train a DDP model with each optimizer on this rank's half of every batch; save the final params."""
    batches = make_batches()
    for name in DDP_OPTIMIZERS:
        with ctx.scenario(f"ddp_{name}"):
            model = DistributedDataParallel(make_model())
            optimizer = OPTIMIZERS[name](model.parameters())
            for batch in batches:
                loss_fn(model, local_batch(batch, ctx.rank, ctx.world_size)).backward()
                optimizer.step()
                optimizer.zero_grad()
            ctx.save(f"ddp_{name}", params_of(model))
