from pathlib import Path

import pytest
import torch
from _fsdp_workers import FSDP_OPTIMIZERS, MIXED_OPTIMIZERS, fsdp_training
from _harness import load_results
from _problem import OPTIMIZERS, assert_params_close, make_batches, params_of, train_reference

pytestmark = pytest.mark.distributed
RANK_WORKER = fsdp_training


def assert_matches_single_process(result: dict[str, torch.Tensor], optimizer: str) -> None:
    reference, _ = train_reference(OPTIMIZERS[optimizer], make_batches())
    assert_params_close(result, params_of(reference))


@pytest.mark.parametrize("optimizer", FSDP_OPTIMIZERS)
def test_fully_shard_matches_single_process(rank_results: Path, optimizer: str) -> None:
    rank0, _ = load_results(rank_results, f"fsdp_{optimizer}")
    assert set(rank0["kinds"].values()) == {"DTensor"}
    assert_matches_single_process(rank0["params"], optimizer)


@pytest.mark.parametrize("optimizer", MIXED_OPTIMIZERS)
def test_mixed_dtensor_and_plain_params_match_single_process(rank_results: Path, optimizer: str) -> None:
    rank0, rank1 = load_results(rank_results, f"mixed_{optimizer}")
    assert rank0["kinds"]["fc2.bias"] == "Parameter"
    assert rank0["kinds"]["fc2.weight"] == "DTensor"
    assert_matches_single_process(rank0["params"], optimizer)
    for name in rank0["params"]:
        assert torch.equal(rank0["params"][name], rank1["params"][name]), name


@pytest.mark.parametrize("caution", ["", "caution_"])
def test_lion_foreach_and_single_tensor_kernels_agree_bitwise_on_dtensors(rank_results: Path, caution: str) -> None:
    foreach, _ = load_results(rank_results, f"fsdp_lion_{caution}foreach")
    single, _ = load_results(rank_results, f"fsdp_lion_{caution}single")
    for name, value in foreach["params"].items():
        assert torch.equal(value, single["params"][name]), name
