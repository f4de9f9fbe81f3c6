"""Run a function on several CPU ranks with torch.distributed (gloo) and report rank failures readably.

The parent process spawns ``world_size`` fresh interpreters (``spawn``: no forked torch state, same as CI and
torchrun), each joins a gloo process group through a rendezvous *file* (no TCP port races between concurrent test
runs) and gets a 1-D CPU device mesh. Results travel back through files in the run directory: a worker calls
:meth:`RankContext.save`, the parent calls :func:`load_results` and compares against single-process training it
computes itself.

Failure handling, because a distributed failure is otherwise hard to read:
* every rank writes its traceback (with a wall-clock time stamp) to ``error.rank<r>.txt``; the parent raises
  :class:`DistributedRunError` with the *earliest* traceback first. The other ranks then usually fail with a gloo
  "connection reset" or a timeout, which is noise and comes after it;
* the parent joins with a deadline and kills ranks still alive after it (a rank stuck in a collective whose peer
  died would otherwise hang the test session).

Worker functions are pickled by reference, so they must be top-level functions of a module that the spawned
interpreters can import; :func:`run_on_ranks` puts ``src`` and this directory on their ``PYTHONPATH``.

Starting two interpreters that import torch costs seconds, so ``conftest.py`` runs the workers of all collected test
modules one after the other in a single run (:func:`run_in_sequence`).
"""

from __future__ import annotations

import contextlib
import datetime
import functools
import gc
import os
import time
import traceback
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch.distributed.device_mesh import DeviceMesh, init_device_mesh

HERE = Path(__file__).resolve().parent
SRC = HERE.parents[1] / "src"
WORLD_SIZE = 2
# A collective whose peer died raises after this long instead of waiting forever; well below the parent's deadline
# so the surviving rank reports instead of being killed silently.
COLLECTIVE_TIMEOUT_S = 30.0
DEFAULT_DEADLINE_S = 90.0


@dataclass(frozen=True)
class RankContext:
    """What a worker function receives: its rank, the mesh and the run directory shared by all ranks."""

    rank: int
    world_size: int
    mesh: DeviceMesh
    run_dir: Path

    def save(self, name: str, obj: Any) -> None:
        """Store ``obj`` (anything ``torch.save`` accepts) as this rank's result ``name``."""
        torch.save(obj, self.run_dir / f"{name}.rank{self.rank}.pt")

    @contextlib.contextmanager
    def scenario(self, name: str) -> Iterator[None]:
        """Run one scenario whose failure fails only the tests reading result ``name``, not the whole run.

        The exception is recorded for :func:`load_results` and the rank carries on with the next scenario. That is
        safe when every rank fails at the same point, as a deterministic bug does; if only some ranks fail, the
        others wait in a collective until it times out, and the run may end at its deadline.
        """
        try:
            yield
        except Exception:
            (self.run_dir / f"{name}.error.rank{self.rank}.txt").write_text(traceback.format_exc())


class DistributedRunError(AssertionError):
    """A rank failed or the run missed its deadline; the message holds the earliest rank traceback first."""


class ScenarioError(AssertionError):
    """A scenario run by :meth:`RankContext.scenario` raised on some rank."""


def load_results(run_dir: Path, name: str, world_size: int = WORLD_SIZE) -> list[Any]:
    """The objects every rank saved under ``name``, indexed by rank.

    Raises:
        ScenarioError: The scenario that should have produced them failed; the message holds the tracebacks.
    """
    errors = sorted(run_dir.glob(f"{name}.error.rank*.txt"))
    if errors:
        details = "\n".join(f"--- {file.name} ---\n{file.read_text()}" for file in errors)
        raise ScenarioError(f"scenario {name} failed on the ranks:\n{details}")
    return [torch.load(run_dir / f"{name}.rank{rank}.pt", weights_only=False) for rank in range(world_size)]


def run_in_sequence(workers: tuple[Callable[[RankContext], None], ...], ctx: RankContext) -> None:
    """Run several worker functions in one set of ranks (use with ``functools.partial``); all share ``run_dir``."""
    for worker in workers:
        worker(ctx)


def _name(fn: Callable[..., Any]) -> str:
    if isinstance(fn, functools.partial):
        return "+".join(_name(worker) for worker in fn.args[0]) if fn.func is run_in_sequence else _name(fn.func)
    return getattr(fn, "__name__", repr(fn))


def _rank_main(rank: int, fn: Callable[[RankContext], None], world_size: int, run_dir: str) -> None:
    """Entry point of a spawned rank (``start_processes`` passes the rank first)."""
    path = Path(run_dir)
    torch.set_num_threads(1)
    initialized = False
    try:
        dist.init_process_group(
            "gloo",
            init_method=f"file://{path / 'rdzv'}",
            rank=rank,
            world_size=world_size,
            timeout=datetime.timedelta(seconds=COLLECTIVE_TIMEOUT_S),
        )
        initialized = True
        mesh = init_device_mesh("cpu", (world_size,))
        fn(RankContext(rank=rank, world_size=world_size, mesh=mesh, run_dir=path))
        # A rank that finishes early must not tear the group down while its peer still sends to it.
        dist.barrier()
    except BaseException:
        (path / f"error.rank{rank}.txt").write_text(f"{time.time():.6f}\n{traceback.format_exc()}")
        raise
    finally:
        if initialized:
            # Without this, a rank intermittently aborts at exit: tensors still referencing the group (DTensors,
            # DDP buckets) get collected after the group is gone.
            gc.collect()
            dist.destroy_process_group()


@contextlib.contextmanager
def _child_environment() -> Iterator[None]:
    """Environment the spawned ranks inherit: loopback gloo, one thread, ``src`` and this folder importable."""
    python_path = os.pathsep.join(p for p in (str(SRC), str(HERE), os.environ.get("PYTHONPATH", "")) if p)
    updates = {"GLOO_SOCKET_IFNAME": "lo", "OMP_NUM_THREADS": "1", "PYTHONPATH": python_path}
    saved = {key: os.environ.get(key) for key in updates}
    os.environ.update(updates)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def _rank_errors(run_dir: Path) -> list[tuple[float, int, str]]:
    errors = []
    for file in run_dir.glob("error.rank*.txt"):
        stamp, _, text = file.read_text().partition("\n")
        errors.append((float(stamp), int(file.name.removeprefix("error.rank").removesuffix(".txt")), text))
    return sorted(errors)


def _report(run_dir: Path, headline: str, fallback: str = "") -> str:
    errors = _rank_errors(run_dir)
    if not errors:
        return f"{headline}; no rank wrote a traceback. {fallback}".rstrip()
    first_time = errors[0][0]
    parts = [f"{headline}; earliest failure first (later ones are usually a consequence):"]
    for stamp, rank, text in errors:
        parts.append(f"--- rank {rank} (+{stamp - first_time:.3f} s) ---\n{text}")
    return "\n".join(parts)


def run_on_ranks(
    fn: Callable[[RankContext], None],
    run_dir: Path,
    *,
    world_size: int = WORLD_SIZE,
    deadline_s: float = DEFAULT_DEADLINE_S,
) -> None:
    """Run ``fn(ctx)`` on ``world_size`` spawned ranks; raise :class:`DistributedRunError` if any rank fails.

    Args:
        fn: A top-level function of an importable module (it is pickled by reference), or a ``functools.partial``
            of one.
        run_dir: An empty directory for the rendezvous file, results and tracebacks (``tmp_path`` in tests).
        world_size: Number of ranks.
        deadline_s: Wall-clock limit for the whole run; ranks still alive after it are killed.
    """
    run_dir.mkdir(parents=True, exist_ok=True)
    with _child_environment():
        context = mp.start_processes(
            _rank_main, args=(fn, world_size, str(run_dir)), nprocs=world_size, join=False, start_method="spawn"
        )
    deadline = time.monotonic() + deadline_s
    try:
        while not context.join(timeout=0.5):
            if time.monotonic() > deadline:
                raise DistributedRunError(_report(run_dir, f"{_name(fn)} missed its {deadline_s:.0f} s deadline"))
    except (mp.ProcessRaisedException, mp.ProcessExitedException) as error:
        # torch's join already terminated the other ranks and reports whichever exit it noticed first, often the
        # peer's "connection closed"; our time-stamped files say which rank failed first.
        raise DistributedRunError(_report(run_dir, f"{_name(fn)} failed", fallback=str(error))) from None
    finally:
        for process in context.processes:
            if process.is_alive():
                process.kill()
            process.join(timeout=10)
