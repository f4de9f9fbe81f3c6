"""``OptimizerWrapper`` under DDP, FSDP2 (all-DTensor and mixed with plain parameters) and DCP."""

from pathlib import Path
from typing import Any

import pytest
import torch
from _harness import load_results
from _problem import assert_params_close, make_batches, make_model
from _wrapped import CLIP_GRAD_NORM, lion_wrapper, train_wrapped
from _wrapper_workers import wrapper_training
from torch.distributed.checkpoint.state_dict import get_optimizer_state_dict

from noether.core.factory import OptimizerFactory
from noether.core.schemas.optimizers import OptimizerConfig
from noether.core.utils.training import TrainingIteration, UpdateCounter

pytestmark = pytest.mark.distributed
RANK_WORKER = wrapper_training


def reference(foreach: bool = True) -> dict[str, Any]:
    model = make_model()
    return train_wrapped(model, lion_wrapper(model, foreach), make_batches())


def assert_matches_reference(result: dict[str, Any], expected: dict[str, Any]) -> None:
    assert_params_close(result["params"], expected["params"])
    # The total norm is global: every shard's and every plain gradient's contribution, each counted once.
    torch.testing.assert_close(result["norms"], expected["norms"], rtol=1e-6, atol=0)
    assert min(expected["norms"]) > 0.5  # so clipping acted on every step
    assert_params_close(result["clipped_grads"], expected["clipped_grads"])


def test_ddp_wrapper_matches_single_process_and_its_checkpoints_move_both_ways(rank_results: Path) -> None:
    rank0, rank1 = load_results(rank_results, "wrapper_ddp")
    assert_matches_reference(rank0, reference())
    names = set(rank0["params"])
    for moved, source_state in (
        (rank0["ddp_to_single"], rank0["state"]),
        (rank0["single_to_ddp"], rank0["single_state"]),
    ):
        assert (moved["restored"], moved["new"], moved["dropped"]) == (names, set(), set())
        assert moved["state"].keys() == names
        for name, value in source_state.items():
            assert torch.equal(moved["state"][name], value), name
    for name, value in rank0["params"].items():
        assert torch.equal(rank1["params"][name], value), name


@pytest.mark.parametrize("kernel", ["foreach", "single"])
def test_fsdp_wrapper_clips_by_the_global_norm_and_matches_single_process(rank_results: Path, kernel: str) -> None:
    rank0, rank1 = load_results(rank_results, f"wrapper_fsdp_{kernel}")
    assert set(rank0["kinds"].values()) == {"DTensor"}
    assert_matches_reference(rank0, reference(foreach=kernel == "foreach"))
    assert rank0["norms"] == rank1["norms"]


def test_mixed_dtensor_and_plain_params_step_with_foreach_and_clip_by_the_global_norm(rank_results: Path) -> None:
    rank0, rank1 = load_results(rank_results, "wrapper_mixed")
    assert rank0["kinds"]["fc2.bias"] == "Parameter"
    assert rank0["kinds"]["fc2.weight"] == "DTensor"
    assert_matches_reference(rank0, reference())
    assert rank0["norms"] == rank1["norms"]


def test_dcp_through_the_wrapper_resumes_identically_and_its_dummy_step_moves_nothing(rank_results: Path) -> None:
    for result in load_results(rank_results, "wrapper_dcp"):
        assert result["unmoved"]
        assert result["resumed"]["norms"] == result["continued"]["norms"]
        for name, value in result["continued"]["params"].items():
            assert torch.equal(result["resumed"]["params"][name], value), name


def test_the_dummy_step_of_get_optimizer_state_dict_moves_no_weight_and_advances_no_schedule() -> None:
    # A fresh optimizer has no state; torch creates it by stepping with zero grads and lr 0 (a single process
    # suffices: the call is the same with or without a process group).
    counter = UpdateCounter(
        start_iteration=TrainingIteration(epoch=0, update=3, sample=3),
        end_iteration=TrainingIteration(update=10),
        updates_per_epoch=10,
        effective_batch_size=1,
    )
    schedule = {"kind": "noether.core.schedules.LinearWarmupCosineDecaySchedule", "warmup_percent": 0.5}
    config = OptimizerConfig(
        kind="noether.core.optimizer.Lion",
        lr=1e-2,
        weight_decay=0.1,
        clip_grad_norm=CLIP_GRAD_NORM,
        schedule_config=schedule,
        weight_decay_schedule=schedule,
    )
    model = make_model()
    wrapper = OptimizerFactory().create(config)(model, update_counter=counter)
    wrapper.schedule_step()
    before = {name: p.detach().clone() for name, p in model.named_parameters()}
    hyperparameters = [(group["lr"], group["weight_decay"]) for group in wrapper.torch_optim.param_groups]
    assert 0 < hyperparameters[0][0] < 1e-2  # mid-warmup: a schedule that a counted step would move

    state = get_optimizer_state_dict(model, wrapper.torch_optim)

    for name, p in model.named_parameters():
        assert torch.equal(p.detach(), before[name]), name
        assert p.grad is None
        assert torch.equal(state["state"][name]["exp_avg"], torch.zeros_like(p))
    assert [(group["lr"], group["weight_decay"]) for group in wrapper.torch_optim.param_groups] == hyperparameters
    assert counter.update == 3
    assert (wrapper.last_grad_norm, wrapper.num_skipped_steps) == (None, 0)
    wrapper.schedule_step()
    assert [(group["lr"], group["weight_decay"]) for group in wrapper.torch_optim.param_groups] == hyperparameters
