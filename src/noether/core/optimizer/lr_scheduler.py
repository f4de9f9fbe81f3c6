"""A ``torch.optim.lr_scheduler.LRScheduler`` that applies noether schedules, for frameworks that step schedulers.

Lightning, the Hugging Face ``Trainer`` and hand-written torch loops drive learning rates through an ``LRScheduler``
whose ``step()`` they call once per optimizer update and whose ``state_dict()`` they checkpoint. :class:`ScheduleLR`
is such a scheduler: at its ``last_epoch``-th step (the number of updates done) it sets every group's learning rate
to ``lr_scale * value`` of a noether schedule and, optionally, every group's weight decay from a second schedule,
with the same rules and the same numbers as :meth:`OptimizerWrapper.schedule_step
<noether.core.optimizer.OptimizerWrapper.schedule_step>`.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any, Literal

import torch
from torch.optim.lr_scheduler import LRScheduler

from noether.core.schedules.base import ScheduleBase
from noether.core.utils.training.counter import UpdateCounter
from noether.core.utils.training.schedule_wrapper import ScheduleWrapper

__all__ = ["ScheduleLR", "compute_weight_decay_factors", "set_hyperparameter"]

logger = logging.getLogger(__name__)

_STATE_KEYS = ("last_epoch", "_step_count", "base_lrs", "_last_lr", "_last_weight_decay", "total_steps")
"""What the scheduler checkpoints: plain numbers only, so ``torch.load(..., weights_only=True)`` reads them."""


def set_hyperparameter(group: dict[str, Any], key: str, value: float) -> None:
    """Set ``group[key] = value``; a tensor hyperparameter (capturable optimizers, Lion's tensor lr) is filled in place.

    Filling keeps the tensor object, so compiled steps that captured it see the new value.
    """
    current = group.get(key)
    if isinstance(current, torch.Tensor):
        current.fill_(value)
    else:
        group[key] = value


def compute_weight_decay_factors(
    param_groups: Sequence[Mapping[str, Any]], configured_weight_decay: float
) -> list[float | None]:
    """Per group, the factor a weight-decay schedule value is multiplied by, or ``None`` for an excluded group.

    A group takes weight decay in proportion to its own configured value: ``group_wd / configured_weight_decay``
    (1.0 when the configured weight decay is 0). A group is excluded where it says so (``exclude_from_wd``), or,
    without that key, where its weight decay is 0.
    """
    factors: list[float | None] = []
    for group in param_groups:
        group_wd = float(group.get("weight_decay") or 0.0)
        excluded = group.get("exclude_from_wd", group_wd == 0.0)
        if excluded:
            factors.append(None)
        else:
            factors.append(group_wd / configured_weight_decay if configured_weight_decay else 1.0)
    return factors


class ScheduleLR(LRScheduler):
    """Applies a noether learning-rate schedule (and optionally a weight-decay schedule) to any torch optimizer.

    After ``n`` calls of :meth:`step` (``last_epoch == n``, the number of optimizer updates done), every group has
    ``lr = lr_scale * schedule.get_value(n, total_steps)`` (``lr_scale`` where the group has one, else 1), and every
    group that takes weight decay ``weight_decay = factor * wd_schedule.get_value(n, total_steps)``, with the factor of
    :func:`compute_weight_decay_factors` taken when the scheduler is built. Past ``total_steps`` the schedules hold
    their final value (one warning). With ``interval="epoch"`` the value changes once per ``updates_per_epoch``
    updates, as in :class:`~noether.core.utils.training.ScheduleWrapper`.

    ``state_dict()`` holds only the position and the last values (plain numbers), so a resumed run continues the
    same curve; a ``total_steps`` changed since the checkpoint wins over the saved one.

    Usually built by :meth:`OptimizerWrapper.lr_scheduler <noether.core.optimizer.OptimizerWrapper.lr_scheduler>`.

    Args:
        optimizer: The optimizer whose groups are set.
        schedule: The learning-rate schedule, or ``None`` to leave learning rates alone.
        total_steps: The number of optimizer updates of the run (>= 1).
        weight_decay_schedule: The weight-decay schedule, or ``None``.
        interval: ``"update"`` (the value changes every update) or ``"epoch"``.
        updates_per_epoch: Updates per epoch, for ``interval="epoch"``.
        weight_decay_factors: Per group, the weight-decay factor or ``None`` for an excluded group; computed by
            :func:`compute_weight_decay_factors` from the optimizer's ``defaults["weight_decay"]`` when omitted.
        last_epoch: As in torch: ``-1`` for a fresh scheduler.

    Raises:
        ValueError: ``total_steps`` or ``updates_per_epoch`` < 1, an unknown ``interval``, or a
            ``weight_decay_factors`` whose length is not the number of groups.
        TypeError: ``optimizer`` is not a ``torch.optim.Optimizer``, or a schedule is not a ``ScheduleBase``.
    """

    def __init__(
        self,
        optimizer: torch.optim.Optimizer,
        schedule: ScheduleBase | None,
        total_steps: int,
        *,
        weight_decay_schedule: ScheduleBase | None = None,
        interval: Literal["update", "epoch"] | str = "update",
        updates_per_epoch: int = 1,
        weight_decay_factors: Sequence[float | None] | None = None,
        last_epoch: int = -1,
    ) -> None:
        if isinstance(total_steps, bool) or not isinstance(total_steps, int) or total_steps < 1:
            raise ValueError(f"total_steps must be an int >= 1 (the number of optimizer updates), got {total_steps!r}")
        if isinstance(updates_per_epoch, bool) or not isinstance(updates_per_epoch, int) or updates_per_epoch < 1:
            raise ValueError(f"updates_per_epoch must be an int >= 1, got {updates_per_epoch!r}")
        if interval not in ("update", "epoch"):
            raise ValueError(f"interval must be 'update' or 'epoch', got {interval!r}")
        for name, value in (("schedule", schedule), ("weight_decay_schedule", weight_decay_schedule)):
            if value is not None and not isinstance(value, ScheduleBase):
                raise TypeError(f"{name} must be a noether ScheduleBase or None, got {type(value).__name__}")
        if not isinstance(optimizer, torch.optim.Optimizer):
            raise TypeError(f"optimizer must be a torch.optim.Optimizer, got {type(optimizer).__name__}")
        if weight_decay_factors is None:
            configured = float(optimizer.defaults.get("weight_decay") or 0.0)
            factors = compute_weight_decay_factors(optimizer.param_groups, configured)
        else:
            factors = list(weight_decay_factors)
        if len(factors) != len(optimizer.param_groups):
            raise ValueError(
                f"weight_decay_factors has {len(factors)} entries but the optimizer has "
                f"{len(optimizer.param_groups)} param groups"
            )
        self.total_steps = total_steps
        self.interval = interval
        self.updates_per_epoch = updates_per_epoch
        self._weight_decay_factors = factors
        self._counter = UpdateCounter.from_total_updates(total_steps, updates_per_epoch=updates_per_epoch)
        self._lr_schedule = None if schedule is None else ScheduleWrapper(schedule, self._counter, interval)
        self._wd_schedule = (
            None if weight_decay_schedule is None else ScheduleWrapper(weight_decay_schedule, self._counter, interval)
        )
        self._last_weight_decay: list[float] = []
        super().__init__(optimizer, last_epoch)

    # ------------------------------------------------------------------ values

    def _value(self, wrapper: ScheduleWrapper, step: int) -> float:
        self._counter.set_update(step)
        return float(wrapper.get_value())

    def get_lr(self) -> list[float | torch.Tensor]:  # type: ignore[override]
        """The learning rates at ``last_epoch``: ``lr_scale * value`` per group (unchanged without an lr schedule)."""
        if self._lr_schedule is None:
            return [group["lr"] for group in self.optimizer.param_groups]
        value = self._value(self._lr_schedule, max(self.last_epoch, 0))
        return [group["lr_scale"] * value if "lr_scale" in group else value for group in self.optimizer.param_groups]

    def _get_closed_form_lr(self) -> list[float | torch.Tensor]:
        return self.get_lr()

    def step(self, epoch: int | None = None) -> None:
        """Advance one update (as torch's schedulers do) and apply both schedules' values."""
        super().step(epoch)
        if self._wd_schedule is None:
            return
        value = self._value(self._wd_schedule, max(self.last_epoch, 0))
        for group, factor in zip(self.optimizer.param_groups, self._weight_decay_factors, strict=True):
            if factor is not None:
                set_hyperparameter(group, "weight_decay", value * factor)
        self._last_weight_decay = [float(group.get("weight_decay") or 0.0) for group in self.optimizer.param_groups]

    def get_last_weight_decay(self) -> list[float]:
        """The weight decay of every group after the last :meth:`step` (for logging)."""
        return list(self._last_weight_decay)

    # ------------------------------------------------------------------ checkpoints

    def state_dict(self) -> dict[str, Any]:
        """The position and the last values, as plain numbers (``torch.load(..., weights_only=True)`` reads it)."""
        state = {key: self.__dict__[key] for key in _STATE_KEYS if key in self.__dict__}
        state["_last_lr"] = [float(value) for value in state.get("_last_lr", [])]
        state["base_lrs"] = [float(value) for value in state.get("base_lrs", [])]
        return state

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Restore the position; the current ``total_steps`` is kept (a run extended since the checkpoint wins).

        Raises:
            ValueError: ``state_dict`` lacks ``last_epoch`` (it is not a scheduler checkpoint).
        """
        if not isinstance(state_dict, Mapping) or "last_epoch" not in state_dict:
            raise ValueError("state_dict must be a scheduler state_dict with a 'last_epoch' entry")
        for key in _STATE_KEYS:
            if key in state_dict and key != "total_steps":
                self.__dict__[key] = state_dict[key]
        saved_total = state_dict.get("total_steps")
        if saved_total is not None and saved_total != self.total_steps:
            logger.info(
                "ScheduleLR: total_steps is %d now, %d in the checkpoint; using %d",
                self.total_steps,
                saved_total,
                self.total_steps,
            )

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(lr={self._lr_schedule}, weight_decay={self._wd_schedule}, "
            f"total_steps={self.total_steps}, last_epoch={self.last_epoch})"
        )
