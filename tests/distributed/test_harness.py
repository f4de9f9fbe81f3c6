import multiprocessing
import time
from pathlib import Path

import pytest
from _harness import DistributedRunError, ScenarioError, load_results, run_on_ranks
from _harness_workers import hangs, one_scenario_fails_on_every_rank, rank1_raises_while_rank0_waits

pytestmark = pytest.mark.distributed
RANK_WORKER = one_scenario_fails_on_every_rank


def test_the_failing_rank_is_reported_first(tmp_path: Path) -> None:
    with pytest.raises(DistributedRunError) as info:
        run_on_ranks(rank1_raises_while_rank0_waits, tmp_path)
    message = str(info.value)
    assert message.startswith("rank1_raises_while_rank0_waits failed; earliest failure first")
    first = message.index("--- rank ")
    assert message[first:].startswith("--- rank 1 (+0.000 s) ---"), message
    assert "ValueError: boom on rank 1" in message[first:].split("--- rank 0")[0]


def test_ranks_alive_after_the_deadline_are_killed(tmp_path: Path) -> None:
    start = time.monotonic()
    with pytest.raises(DistributedRunError, match="hangs missed its 3 s deadline"):
        run_on_ranks(hangs, tmp_path, deadline_s=3.0)
    assert time.monotonic() - start < 20.0
    assert multiprocessing.active_children() == []


def test_a_failed_scenario_fails_only_its_own_results(rank_results: Path) -> None:
    with pytest.raises(ScenarioError, match="KeyError: 'bad scenario on rank 1'"):
        load_results(rank_results, "harness_bad")
    assert [value.item() for value in load_results(rank_results, "harness_good")] == [3.0, 3.0]
