"""Counts the progress of a training run."""

from __future__ import annotations

from noether.core.utils.training.training_iteration import TrainingIteration

__all__ = ["UpdateCounter"]


class UpdateCounter:
    """Tracks the current epoch, update and sample of a run, and where the run ends.

    The training loop advances each field itself (:meth:`next_epoch`, :meth:`next_update`, :meth:`add_samples`).

    Args:
        start_iteration: Where the run starts (fully specified; ``E0_U0_S0`` for a fresh run, the checkpoint's
            position for a resumed one).
        end_iteration: Where the run ends, with exactly one field set (e.g. ``TrainingIteration(epoch=10)``).
        updates_per_epoch: Optimizer updates per epoch.
        effective_batch_size: Samples per update.

    Raises:
        ValueError: If ``start_iteration`` is not fully specified or not consistent with ``updates_per_epoch`` and
            ``effective_batch_size``, ``end_iteration`` has not exactly one field set or lies before the start, or
            either count is < 1.
    """

    def __init__(
        self,
        start_iteration: TrainingIteration,
        end_iteration: TrainingIteration,
        updates_per_epoch: int,
        effective_batch_size: int,
    ) -> None:
        if updates_per_epoch < 1:
            raise ValueError(f"updates_per_epoch must be >= 1, got {updates_per_epoch}")
        if effective_batch_size < 1:
            raise ValueError(f"effective_batch_size must be >= 1, got {effective_batch_size}")
        if not start_iteration.is_fully_specified:
            raise ValueError(f"start_iteration must have epoch, update and sample set, got {start_iteration!r}")
        consistent = TrainingIteration(update=start_iteration.update).to_fully_specified(
            updates_per_epoch, effective_batch_size
        )
        if start_iteration != consistent:
            raise ValueError(
                f"start_iteration {start_iteration} is inconsistent with updates_per_epoch={updates_per_epoch} and "
                f"effective_batch_size={effective_batch_size}: update {start_iteration.update} means {consistent}"
            )
        if not end_iteration.is_minimally_specified:
            raise ValueError(f"end_iteration must have exactly one of epoch, update, sample set, got {end_iteration!r}")
        self.updates_per_epoch = updates_per_epoch
        self.effective_batch_size = effective_batch_size
        self.start_iteration = start_iteration.copy()
        remaining = end_iteration - start_iteration.to_target_specification(end_iteration)
        self.end_iteration = start_iteration + remaining.to_fully_specified(updates_per_epoch, effective_batch_size)
        if remaining.specified_properties_count and next(iter(remaining))[1] < 0:
            raise ValueError(
                f"end_iteration {end_iteration} lies before start_iteration {start_iteration}: the run would be "
                "negative"
            )
        self.cur_iteration = start_iteration.copy()

    @classmethod
    def from_total_updates(
        cls, total_updates: int, updates_per_epoch: int | None = None, effective_batch_size: int = 1
    ) -> UpdateCounter:
        """A counter for a run of ``total_updates`` optimizer updates, starting at update 0.

        For loops that only know their number of steps: ``OptimizerWrapper(..., update_counter=counter)`` with
        ``counter = UpdateCounter.from_total_updates(1000)``. The whole run is one epoch unless
        ``updates_per_epoch`` says otherwise; each update counts ``effective_batch_size`` samples.

        Raises:
            ValueError: If ``total_updates`` is not an int >= 1 (or a count below is < 1).
        """
        if isinstance(total_updates, bool) or not isinstance(total_updates, int) or total_updates < 1:
            raise ValueError(f"total_updates must be an int >= 1, got {total_updates!r}")
        return cls(
            start_iteration=TrainingIteration(0, 0, 0),
            end_iteration=TrainingIteration(update=total_updates),
            updates_per_epoch=total_updates if updates_per_epoch is None else updates_per_epoch,
            effective_batch_size=effective_batch_size,
        )

    @property
    def epoch(self) -> int:
        """The current epoch."""
        assert self.cur_iteration.epoch is not None
        return self.cur_iteration.epoch

    @property
    def update(self) -> int:
        """The current update."""
        assert self.cur_iteration.update is not None
        return self.cur_iteration.update

    @property
    def sample(self) -> int:
        """The current sample."""
        assert self.cur_iteration.sample is not None
        return self.cur_iteration.sample

    @property
    def is_full_epoch(self) -> bool:
        """Whether the current update is at an epoch boundary."""
        return self.update % self.updates_per_epoch == 0

    @property
    def epoch_as_float(self) -> float:
        """The current position in (fractional) epochs."""
        return self.update / self.updates_per_epoch

    @property
    def is_finished(self) -> bool:
        """Whether the run has reached its end on every field."""
        return self.cur_iteration >= self.end_iteration

    def next_epoch(self) -> None:
        """Advance the epoch by one."""
        self.cur_iteration.epoch = self.epoch + 1

    def next_update(self) -> None:
        """Advance the update by one."""
        self.cur_iteration.update = self.update + 1

    def add_samples(self, num_samples: int) -> None:
        """Advance the sample count by ``num_samples``."""
        self.cur_iteration.sample = self.sample + num_samples

    def advance(self) -> None:
        """One optimizer update done: the update, the samples and, at an epoch boundary, the epoch advance.

        The three bookkeeping calls of a training loop in one.
        """
        self.set_update(self.update + 1)

    def set_update(self, update: int) -> None:
        """Move to ``update`` (>= 0), with the epoch and sample that follow from it.

        Raises:
            ValueError: If ``update`` is negative.
        """
        if update < 0:
            raise ValueError(f"update must be >= 0, got {update}")
        self.cur_iteration = TrainingIteration(update=update).to_fully_specified(
            self.updates_per_epoch, self.effective_batch_size
        )

    def __repr__(self) -> str:
        return (
            f"UpdateCounter(cur={self.cur_iteration}, end={self.end_iteration}, "
            f"updates_per_epoch={self.updates_per_epoch}, effective_batch_size={self.effective_batch_size})"
        )
