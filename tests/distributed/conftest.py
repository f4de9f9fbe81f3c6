"""Shared setup of the distributed tests.

The worker modules here are imported by name in spawned ranks too; :mod:`_harness` puts this folder and ``src`` on
their ``PYTHONPATH``, the loop below puts them on the parent's ``sys.path`` whatever pytest's import mode.
"""

import functools
import sys
from pathlib import Path

import pytest

for _path in (Path(__file__).resolve().parent, Path(__file__).resolve().parents[2] / "src"):
    if str(_path) not in sys.path:
        sys.path.insert(0, str(_path))

from _harness import run_in_sequence, run_on_ranks  # noqa: E402


@pytest.fixture(scope="session")
def rank_results(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Directory with the results of the ``RANK_WORKER`` of every selected test module that uses this fixture.

    All those workers run one after the other in a single spawn of 2 ranks: starting the ranks costs far more than
    the tiny trainings they run. A failure in any worker therefore errors every test that uses this fixture, with the
    failing rank's traceback.
    """
    workers = []
    for item in request.session.items:
        worker = getattr(getattr(item, "module", None), "RANK_WORKER", None)
        if worker is not None and worker not in workers and "rank_results" in getattr(item, "fixturenames", ()):
            workers.append(worker)
    path = tmp_path_factory.mktemp("ranks")
    run_on_ranks(functools.partial(run_in_sequence, tuple(workers)), path)
    return path
