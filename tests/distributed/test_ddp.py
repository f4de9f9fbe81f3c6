from pathlib import Path

import pytest
import torch
from _ddp_workers import DDP_OPTIMIZERS, ddp_training
from _harness import load_results
from _problem import OPTIMIZERS, assert_params_close, make_batches, params_of, train_reference

pytestmark = pytest.mark.distributed
RANK_WORKER = ddp_training


@pytest.mark.parametrize("optimizer", DDP_OPTIMIZERS)
def test_ddp_ranks_stay_bit_identical(rank_results: Path, optimizer: str) -> None:
    rank0, rank1 = load_results(rank_results, f"ddp_{optimizer}")
    for name in rank0:
        assert torch.equal(rank0[name], rank1[name]), name


@pytest.mark.parametrize("optimizer", DDP_OPTIMIZERS)
def test_ddp_on_half_batches_equals_single_process_on_full_batch(rank_results: Path, optimizer: str) -> None:
    rank0, _ = load_results(rank_results, f"ddp_{optimizer}")
    reference, _ = train_reference(OPTIMIZERS[optimizer], make_batches())
    assert_params_close(rank0, params_of(reference))
