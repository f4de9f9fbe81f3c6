"""Worker functions for ``test_wrapper_distributed.py`` (run on every rank by :func:`_harness.run_on_ranks`)."""

from __future__ import annotations

from typing import Any

import torch
from _dcp_workers import SPLIT, load, save
from _fsdp_workers import average_plain_grads, sharded_model
from _harness import RankContext
from _problem import local_batch, make_batches, make_model, params_of
from _wrapped import lion_wrapper, train_wrapped
from torch.distributed.checkpoint.state_dict import get_optimizer_state_dict
from torch.nn.parallel import DistributedDataParallel

from noether.core.optimizer import OptimizerWrapper


def exp_avgs(model: torch.nn.Module, wrapper: OptimizerWrapper) -> dict[str, torch.Tensor]:
    """Lion's momentum by parameter name (``module.`` removed)."""
    return {
        name.removeprefix("module."): wrapper.torch_optim.state[p]["exp_avg"].clone()
        for name, p in model.named_parameters()
        if p in wrapper.torch_optim.state
    }


def moved_checkpoint(source: OptimizerWrapper, target_model: torch.nn.Module) -> dict[str, Any]:
    """Load ``source``'s checkpoint into a fresh wrapper of ``target_model``; what was restored and the momenta."""
    target = lion_wrapper(target_model)
    report = target.load_state_dict(source.state_dict())

    def unprefixed(names: tuple[str, ...]) -> set[str]:  # the report uses the target model's own names
        return {name.removeprefix("module.") for name in names}

    return {
        "restored": unprefixed(report.restored),
        "new": unprefixed(report.new),
        "dropped": unprefixed(report.dropped),
        "state": exp_avgs(target_model, target),
    }


def ddp_scenario(ctx: RankContext) -> None:
    batches = make_batches()
    local = [local_batch(batch, ctx.rank, ctx.world_size) for batch in batches]
    model = DistributedDataParallel(make_model())
    wrapper = lion_wrapper(model)
    result = train_wrapped(model, wrapper, local)
    # The same training in this process, without DDP: its checkpoint must load into a DDP wrapper.
    single = make_model()
    single_wrapper = lion_wrapper(single)
    train_wrapped(single, single_wrapper, batches)
    ctx.save(
        "wrapper_ddp",
        {
            **result,
            "state": exp_avgs(model, wrapper),
            "ddp_to_single": moved_checkpoint(wrapper, make_model()),
            "single_state": exp_avgs(single, single_wrapper),
            "single_to_ddp": moved_checkpoint(single_wrapper, DistributedDataParallel(make_model())),
        },
    )


def fsdp_scenario(ctx: RankContext, foreach: bool, ignored: tuple[str, ...] = ()) -> dict[str, Any]:
    model = sharded_model(ctx.mesh, ignored)
    local = [local_batch(batch, ctx.rank, ctx.world_size) for batch in make_batches()]
    result = train_wrapped(model, lion_wrapper(model, foreach), local, after_backward=average_plain_grads)
    return {**result, "kinds": {name: type(p).__name__ for name, p in model.named_parameters()}}


def dcp_scenario(ctx: RankContext) -> None:
    """DCP through the wrapper's torch optimizer (the documented one-liner): save, resume, continue identically."""
    batches = [local_batch(batch, ctx.rank, ctx.world_size) for batch in make_batches()]
    path = ctx.run_dir / "wrapper_checkpoint"
    model = sharded_model(ctx.mesh)
    wrapper = lion_wrapper(model)
    train_wrapped(model, wrapper, batches[:SPLIT])
    save(model, wrapper.torch_optim, path)
    continued = train_wrapped(model, wrapper, batches[SPLIT:])

    resumed = sharded_model(ctx.mesh)
    resumed_wrapper = lion_wrapper(resumed)
    before = params_of(resumed)
    # On an empty state, get_optimizer_state_dict runs a zero-lr step to create it; that must not move weights.
    get_optimizer_state_dict(resumed, resumed_wrapper.torch_optim)
    unmoved = all(torch.equal(before[name], value) for name, value in params_of(resumed).items())
    load(resumed, resumed_wrapper.torch_optim, path)
    ctx.save(
        "wrapper_dcp",
        {
            "continued": continued,
            "resumed": train_wrapped(resumed, resumed_wrapper, batches[SPLIT:]),
            "unmoved": unmoved,
        },
    )


def wrapper_training(ctx: RankContext) -> None:
    with ctx.scenario("wrapper_ddp"):
        ddp_scenario(ctx)
    for kernel in ("foreach", "single"):
        with ctx.scenario(f"wrapper_fsdp_{kernel}"):
            ctx.save(f"wrapper_fsdp_{kernel}", fsdp_scenario(ctx, foreach=kernel == "foreach"))
    with ctx.scenario("wrapper_mixed"):
        ctx.save("wrapper_mixed", fsdp_scenario(ctx, foreach=True, ignored=("fc2.bias",)))
    with ctx.scenario("wrapper_dcp"):
        dcp_scenario(ctx)
