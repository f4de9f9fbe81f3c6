from pathlib import Path

import pytest
import torch
from _harness import load_results
from _problem import DATA_PARALLEL_ATOL, assert_params_close, make_batches, make_model, params_of, train_reference
from _zero_workers import ZERO_OPTIMIZERS, single_process_builder, zero_training

pytestmark = pytest.mark.distributed
RANK_WORKER = zero_training


@pytest.mark.parametrize("optimizer", list(ZERO_OPTIMIZERS))
def test_zero_redundancy_optimizer_matches_single_process(rank_results: Path, optimizer: str) -> None:
    rank0, rank1 = load_results(rank_results, f"zero_{optimizer}")
    # The state really is partitioned: 4 parameters, each rank keeps state for some of them only.
    assert rank0["local_state_entries"] + rank1["local_state_entries"] == 4
    assert 0 < rank0["local_state_entries"] < 4
    reference, _ = train_reference(single_process_builder(optimizer), make_batches())
    for name, value in rank0["params"].items():
        assert torch.equal(value, rank1["params"][name]), name
    assert_params_close(rank0["params"], params_of(reference))


@pytest.mark.parametrize("optimizer", list(ZERO_OPTIMIZERS))
def test_consolidated_zero_state_loads_into_a_single_process_optimizer(rank_results: Path, optimizer: str) -> None:
    rank0, _ = load_results(rank_results, f"zero_{optimizer}")
    model = make_model()
    single = single_process_builder(optimizer)(model.parameters())
    single.load_state_dict(rank0["state_dict"])
    # Every partition made it into the checkpoint: the state equals what single-process training reaches.
    reference, reference_optimizer = train_reference(single_process_builder(optimizer), make_batches())
    for p, q in zip(model.parameters(), reference.parameters(), strict=True):
        assert single.state[p].keys() == reference_optimizer.state[q].keys()
        for key, value in reference_optimizer.state[q].items():
            torch.testing.assert_close(single.state[p][key], value, rtol=0, atol=DATA_PARALLEL_ATOL, msg=key)
