from pathlib import Path

import pytest
import torch
from _dcp_workers import DCP_OPTIMIZERS, SPLIT, checkpoint_dir, dcp_save_and_resume, load
from _harness import load_results
from _problem import OPTIMIZERS, assert_params_close, make_batches, make_model, params_of, train_reference

pytestmark = pytest.mark.distributed
RANK_WORKER = dcp_save_and_resume


@pytest.mark.parametrize("optimizer", DCP_OPTIMIZERS)
def test_resume_on_two_ranks_continues_identically(rank_results: Path, optimizer: str) -> None:
    continued = load_results(rank_results, f"dcp_{optimizer}_continued")
    resumed = load_results(rank_results, f"dcp_{optimizer}_resumed")
    for rank in range(2):
        for name, value in continued[rank].items():
            assert torch.equal(resumed[rank][name], value), (rank, name)


# Torch warns that it loads "in a single process" without a process group: that is exactly the point here.
@pytest.mark.filterwarnings("ignore:torch.distributed is disabled:UserWarning")
@pytest.mark.parametrize("optimizer", DCP_OPTIMIZERS)
def test_two_rank_checkpoint_loads_into_a_single_process(rank_results: Path, optimizer: str) -> None:
    path = checkpoint_dir(rank_results, optimizer)
    assert sorted(p.name for p in path.glob("*.distcp")) == ["__0_0.distcp", "__1_0.distcp"]
    at_checkpoint, _ = load_results(rank_results, f"dcp_{optimizer}_at_checkpoint")

    model = make_model(seed=123)  # different weights, so only a real load can match
    optimizer_ = OPTIMIZERS[optimizer](model.parameters())
    load(model, optimizer_, path)

    for name, value in params_of(model).items():
        assert torch.equal(value, at_checkpoint["params"][name]), name
    for name, param in model.named_parameters():
        expected = at_checkpoint["state"][name]
        assert optimizer_.state[param].keys() == expected.keys(), name
        for key, value in expected.items():
            assert torch.equal(optimizer_.state[param][key], value), (name, key)

    # Training on in the single process reproduces what the two ranks did after the checkpoint.
    continued, _ = load_results(rank_results, f"dcp_{optimizer}_continued")
    train_reference(OPTIMIZERS[optimizer], make_batches()[SPLIT:], model=model, optimizer=optimizer_)
    assert_params_close(params_of(model), continued)
