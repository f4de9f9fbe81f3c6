"""The optimizer wrapper: param groups from a config, schedules, clipping, AMP and name-keyed checkpoints."""

from __future__ import annotations

import logging
import math
from collections import OrderedDict
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, overload

import torch
from torch.amp.grad_scaler import OptState

from noether.core.builders.schedule import ScheduleFactory
from noether.core.optimizer.checkpoint import LoadReport, remap_state_by_name
from noether.core.optimizer.grad_scaler_sync import ScalerRounds
from noether.core.optimizer.gradients import clip_grads_by_value_, group_grads, scale_grads_, total_grad_norm
from noether.core.optimizer.lr_scheduler import ScheduleLR, set_hyperparameter
from noether.core.optimizer.param_group_modifiers.base import ParamGroupModifierBase
from noether.core.optimizer.param_group_modifiers.factory import ParamGroupModifierFactory
from noether.core.optimizer.param_groups import build_param_groups
from noether.core.optimizer.schedule_values import checked_schedule_value
from noether.core.optimizer.state_validation import validate_optimizer_state
from noether.core.schemas.optimizers import OptimizerConfig
from noether.core.utils.bidict import Bidict
from noether.core.utils.logging.formatting import float_to_scientific_notation
from noether.core.utils.torch.amp import NoopGradScaler
from noether.core.utils.training.counter import UpdateCounter
from noether.core.utils.training.schedule_wrapper import ScheduleWrapper

if TYPE_CHECKING:
    from torch.optim.optimizer import StateDict

__all__ = ["OptimizerWrapper"]


def _has_gradients(wrapper: OptimizerWrapper) -> bool:
    return any(param.grad is not None for param in wrapper._params)


_scaler_rounds = ScalerRounds(_has_gradients)


def _already_unscaled(scaler: torch.amp.GradScaler, wrapper: OptimizerWrapper) -> bool:
    """Whether ``scaler.unscale_`` already ran this iteration, on the wrapper or on its torch optimizer.

    Users (and Lightning, the Hugging Face Trainer) unscale the optimizer they hold, the wrapper, before their own
    clipping; the wrapper steps its torch optimizer through the scaler. The scaler keeps that bookkeeping per object,
    so an unscale of the wrapper is handed to the torch optimizer's entry: unscaling twice would divide twice.
    """
    states = getattr(scaler, "_per_optimizer_states", None)
    if not isinstance(states, dict):
        return False
    inner = states.get(id(wrapper.torch_optim), {})
    if inner.get("stage") is OptState.UNSCALED:
        return True
    outer = states.get(id(wrapper), {})
    if outer.get("stage") is OptState.UNSCALED:
        states[id(wrapper.torch_optim)] = outer
        return True
    return False


def _plain(value: Any) -> Any:
    """A hyperparameter as a plain, comparable value: tensors become floats (or lists), tuples lists."""
    if isinstance(value, torch.Tensor):
        return value.item() if value.numel() == 1 else value.tolist()
    if isinstance(value, (tuple, list)):
        return [_plain(item) for item in value]
    return value


def _renumbered(state_dict: Mapping[str, Any]) -> dict[str, Any]:
    """A positional state dict with its parameters numbered 0..N-1 in group order.

    torch numbers parameters with ints, but its ``load_state_dict`` accepts any keys matched by position, and
    ``torch.distributed.checkpoint`` hands over parameter names in their place.
    """
    groups = state_dict["param_groups"]
    if not isinstance(groups, list) or not all(isinstance(g, Mapping) and "params" in g for g in groups):
        raise ValueError("state_dict_to_load['param_groups'] must be a list of dicts with 'params'")
    keys = [key for group in groups for key in group["params"]]
    if all(isinstance(key, int) for key in keys):
        return dict(state_dict)
    number = {key: index for index, key in enumerate(keys)}
    saved_state = state_dict["state"]
    if not isinstance(saved_state, Mapping):
        raise ValueError(f"state_dict_to_load['state'] must be a dict, got {type(saved_state).__name__}")
    unknown = [key for key in saved_state if key not in number]
    if unknown:
        raise ValueError(f"state_dict_to_load has state for {unknown[:5]}, which no param group lists")
    return {
        **state_dict,
        "state": {number[key]: value for key, value in saved_state.items()},
        "param_groups": [{**group, "params": [number[key] for key in group["params"]]} for group in groups],
    }


_RECORD_KEY = "configured"
"""Key, in each param group of a checkpoint, of the hyperparameters the config gave that group (see
:meth:`OptimizerWrapper.load_state_dict`)."""
_NOT_HYPERPARAMETERS = ("params", "name", _RECORD_KEY)


class OptimizerWrapper(torch.optim.Optimizer):
    """A ``torch.optim.Optimizer`` around another one, which builds its param groups and drives its training steps.

    From an :class:`OptimizerConfig` it adds:

    * excluding biases and normalization weights (and a model's ``no_weight_decay()`` names) from weight decay;
    * param groups from modifiers (per-name lr scales and weight decays, layer-wise lr decay);
    * learning-rate and weight-decay schedules (:meth:`schedule_step`, or :meth:`lr_scheduler` for frameworks);
    * gradient clipping by value and by total norm, non-finite gradient detection, and AMP (:meth:`step`);
    * checkpoints keyed by parameter name (:meth:`state_dict`, :meth:`load_state_dict`).

    It is a torch optimizer itself: ``param_groups``, ``state`` and ``defaults`` *are* the wrapped optimizer's
    objects, so whatever edits a group (a torch ``LRScheduler``, Lightning's LR finder, the Hugging Face Trainer)
    edits what the next step uses, and torch's step hooks, ``zero_grad``, ``add_param_group`` and ``state_dict``
    hooks work as on any optimizer.

    Usually built by :class:`~noether.core.factory.OptimizerFactory`:
    ``OptimizerFactory().create(config)(model, update_counter=counter)``.

    Args:
        model: The model whose ``named_parameters()`` are optimized (frozen ones included).
        torch_optim_ctor: Called with the list of param-group dicts; returns the torch optimizer, e.g.
            ``functools.partial(torch.optim.AdamW, lr=1e-3, weight_decay=0.05)``.
        optim_wrapper_config: The wrapper's settings (clipping, modifiers, flags, schedules).
        update_counter: The training progress the schedules read; needed by every schedule except a constant one.
            A counter the wrapper should advance itself is built with
            :meth:`UpdateCounter.from_total_updates <noether.core.utils.training.UpdateCounter.from_total_updates>`
            and passed with ``advance_counter=True``.
        advance_counter: After every :meth:`step`, advance ``update_counter`` by one update and apply the schedules
            for the next one (they are also applied once at construction). For loops that only count steps; the
            original's loops advance the counter and call :meth:`schedule_step` themselves (the default).

    Attributes:
        torch_optim: The wrapped torch optimizer.
        param_idx_to_name: Index (as in ``torch_optim.state_dict()``) -> parameter name.
        last_grad_norm: Total L2 norm of the (unscaled, unclipped) gradients at the last :meth:`step` that had
            gradients, for logging; ``None`` before.
        num_skipped_steps: How many steps were skipped because a gradient was not finite.
    """

    schedule: ScheduleWrapper | None = None
    weight_decay_schedule: ScheduleWrapper | None = None

    def __init__(
        self,
        model: torch.nn.Module,
        torch_optim_ctor: Callable[[list[dict[str, Any]]], torch.optim.Optimizer],
        optim_wrapper_config: OptimizerConfig,
        update_counter: UpdateCounter | None = None,
        *,
        advance_counter: bool = False,
    ) -> None:

        if advance_counter and update_counter is None:
            raise ValueError(
                "advance_counter=True needs an update_counter to advance, e.g. UpdateCounter.from_total_updates(1000)"
            )
        self.logger = logging.getLogger(f"{__name__}.{type(self).__name__}")
        self.model = model
        self.update_counter = update_counter
        self.config = optim_wrapper_config
        config = optim_wrapper_config

        modifiers: list[ParamGroupModifierBase] = ParamGroupModifierFactory().create_list(
            config.param_group_modifiers_config
        )
        self.param_idx_to_name: Bidict[int, str]
        groups, self.param_idx_to_name = build_param_groups(
            model,
            modifiers,
            exclude_bias=config.exclude_bias_from_weight_decay,
            exclude_norm=config.exclude_normalization_params_from_weight_decay,
        )
        # Whether a group takes weight decay is what the flags and modifiers said, not whether its value happens to
        # be 0 once the optimizer filled in its defaults.
        excluded_from_wd = ["weight_decay" in group and group["weight_decay"] == 0.0 for group in groups]

        self.torch_optim: torch.optim.Optimizer = torch_optim_ctor(groups)
        self._adopt_torch_optimizer()
        self._params: list[torch.Tensor] = [p for group in self.param_groups for p in group["params"]]
        clipping = config.clip_grad_value is not None or config.clip_grad_norm is not None
        self.all_parameters: list[torch.Tensor] | None = self._params if clipping else None
        self.last_grad_norm: float | None = None
        self.num_skipped_steps = 0
        self.advance_counter = advance_counter
        self._noop_scaler = NoopGradScaler()

        for group in self.param_groups:
            if "lr_scale" in group:
                if "original_lr" in group:
                    raise ValueError(f"param group '{group['name']}' already has 'original_lr' before lr scaling")
                group["original_lr"] = float(group["lr"])
                set_hyperparameter(group, "lr", float(group["lr"]) * group["lr_scale"])
                self.logger.info(
                    "param group '%s': lr scaled by %s from %s to %s",
                    group["name"],
                    group["lr_scale"],
                    float_to_scientific_notation(group["original_lr"], max_precision=2),
                    float_to_scientific_notation(float(group["lr"]), max_precision=2),
                )

        self._configured_wd = float(self.defaults.get("weight_decay") or 0.0)
        configured_wd = self._configured_wd
        self._wd_factors = [
            float(group.get("weight_decay") or 0.0) / configured_wd if configured_wd else 1.0
            for group in self.param_groups
        ]
        # A schedule's unset max_value is the configured lr (the configured weight decay for the wd schedule).
        self.schedule = ScheduleFactory().create(
            config.schedule_config,
            update_counter=update_counter,
            default_max_value=float(self.defaults["lr"]),
        )
        self.weight_decay_schedule = ScheduleFactory().create(
            config.weight_decay_schedule,
            update_counter=update_counter,
            default_max_value=configured_wd if configured_wd > 0 else None,
        )
        if self.weight_decay_schedule is not None:
            for group, excluded in zip(self.param_groups, excluded_from_wd, strict=True):
                if "exclude_from_wd" in group:
                    raise ValueError(f"param group '{group['name']}' already has 'exclude_from_wd'")
                group["exclude_from_wd"] = excluded
            if all(excluded_from_wd):
                self.logger.warning(
                    "weight_decay_schedule has no effect: every param group is excluded from weight decay"
                )
        # What the config gave every group, before any schedule touched it: saved with checkpoints so that a load
        # can tell a value changed in the config since then from one a scheduler changed during training.
        self._configured: list[dict[str, Any]] = [self._hyperparameters(group) for group in self.param_groups]
        self._scheduler_attached = False

        _scaler_rounds.register(self)
        self.logger.info("%s param groups:\n%s", type(self.torch_optim).__name__, self.format_param_group_table())
        if advance_counter:
            self.schedule_step()

    def _adopt_torch_optimizer(self) -> None:
        # What torch.optim.Optimizer.__init__ sets up, without building new groups: the groups, state and defaults are
        # the wrapped optimizer's (properties below), the hooks are this object's own.
        if not isinstance(self.torch_optim, torch.optim.Optimizer):
            raise TypeError(
                f"torch_optim_ctor must return a torch.optim.Optimizer, got {type(self.torch_optim).__name__}"
            )
        self._optimizer_step_pre_hooks: OrderedDict[int, Any] = OrderedDict()
        self._optimizer_step_post_hooks: OrderedDict[int, Any] = OrderedDict()
        self._optimizer_state_dict_pre_hooks: OrderedDict[int, Any] = OrderedDict()
        self._optimizer_state_dict_post_hooks: OrderedDict[int, Any] = OrderedDict()
        self._optimizer_load_state_dict_pre_hooks: OrderedDict[int, Any] = OrderedDict()
        self._optimizer_load_state_dict_post_hooks: OrderedDict[int, Any] = OrderedDict()
        self._patch_step_function()
        self._warned_capturable_if_run_uncaptured = True

    @staticmethod
    def _hyperparameters(group: Mapping[str, Any]) -> dict[str, Any]:
        return {key: _plain(value) for key, value in group.items() if key not in _NOT_HYPERPARAMETERS}

    # ------------------------------------------------------------------ the wrapped optimizer's objects

    @property  # type: ignore[override]
    def param_groups(self) -> list[dict[str, Any]]:  # type: ignore[override]
        """The wrapped optimizer's param groups (the same list object)."""
        return self.torch_optim.param_groups

    @param_groups.setter
    def param_groups(self, value: list[dict[str, Any]]) -> None:
        self.torch_optim.param_groups = value

    @property  # type: ignore[override]
    def state(self) -> Any:  # type: ignore[override]
        """The wrapped optimizer's per-parameter state (the same dict object)."""
        return self.torch_optim.state

    @state.setter
    def state(self, value: Any) -> None:
        self.torch_optim.state = value

    @property  # type: ignore[override]
    def defaults(self) -> dict[str, Any]:  # type: ignore[override]
        """The wrapped optimizer's defaults (the same dict object)."""
        return self.torch_optim.defaults

    @defaults.setter
    def defaults(self, value: dict[str, Any]) -> None:
        self.torch_optim.defaults = value

    def __getstate__(self) -> dict[str, Any]:
        return dict(self.__dict__)

    # ------------------------------------------------------------------ introspection

    def param_group_table(self) -> list[dict[str, Any]]:
        """One row per param group (``name``, ``tensors``, ``elements``, ``lr``, ``weight_decay``), current values.

        Logged at construction; hand it to an experiment tracker as a table.
        """
        return [
            {
                "name": group.get("name", str(index)),
                "tensors": len(group["params"]),
                "elements": sum(p.numel() for p in group["params"]),
                "lr": float(group["lr"]),
                "weight_decay": float(group.get("weight_decay") or 0.0),
            }
            for index, group in enumerate(self.param_groups)
        ]

    def format_param_group_table(self) -> str:
        """:meth:`param_group_table` as aligned text."""
        rows = [["group", "tensors", "elements", "lr", "weight_decay"]]
        for row in self.param_group_table():
            rows.append(
                [
                    row["name"],
                    str(row["tensors"]),
                    f"{row['elements']:,}",
                    f"{row['lr']:.3g}",
                    f"{row['weight_decay']:.3g}",
                ]
            )
        widths = [max(len(row[column]) for row in rows) for column in range(len(rows[0]))]
        return "\n".join(
            "  ".join(
                cell.ljust(width) if column == 0 else cell.rjust(width)
                for column, (cell, width) in enumerate(zip(row, widths, strict=True))
            )
            for row in rows
        )

    # ------------------------------------------------------------------ training

    def schedule_step(self) -> None:
        """Apply the schedules' current values to the param groups.

        The lr schedule value is an absolute learning rate: every group gets ``lr = lr_scale * value`` (``value``
        where it has no ``lr_scale``). The weight-decay schedule scales each group that takes weight decay in
        proportion to its configured value: ``wd = value * group_wd / config_wd`` (``value`` when the configured
        weight decay is 0). Call once per update, before the forward pass (or let ``advance_counter=True`` or a
        scheduler from :meth:`lr_scheduler` do it).
        """
        # Both values are read and checked before any group changes.
        lr_value = None if self.schedule is None else checked_schedule_value(self.schedule, "lr")
        wd_value = (
            None
            if self.weight_decay_schedule is None
            else checked_schedule_value(self.weight_decay_schedule, "weight_decay")
        )
        if lr_value is not None:
            for group in self.param_groups:
                set_hyperparameter(group, "lr", group["lr_scale"] * lr_value if "lr_scale" in group else lr_value)
        if wd_value is not None:
            value = wd_value
            for group, factor in zip(self.param_groups, self._wd_factors, strict=True):
                if not group["exclude_from_wd"]:
                    set_hyperparameter(group, "weight_decay", value * factor)

    def lr_scheduler(self, total_steps: int | None = None) -> ScheduleLR:
        """A ``torch.optim.lr_scheduler.LRScheduler`` that applies this wrapper's lr and weight-decay schedules.

        For frameworks that step a scheduler after every optimizer update (Lightning, the Hugging Face Trainer, a
        torch loop): after ``n`` scheduler steps the groups hold the values :meth:`schedule_step` gives at update
        ``n``, with every group's ``lr_scale`` and weight-decay rule; past ``total_steps`` the final value is held.
        Its ``state_dict`` makes a resume exact. While it exists, ``advance_counter`` no longer applies schedules.

        Args:
            total_steps: The number of optimizer updates of the run; defaults to the end update of the wrapper's
                ``update_counter`` (whose ``updates_per_epoch`` also serves ``interval: epoch`` schedules).

        Raises:
            ValueError: Neither ``total_steps`` nor an ``update_counter`` is given.
        """
        counter = self.update_counter
        if total_steps is None:
            if counter is None or counter.end_iteration.update is None:
                raise ValueError(
                    "lr_scheduler() needs total_steps (the number of optimizer updates) when the wrapper has no "
                    "update_counter"
                )
            total_steps = counter.end_iteration.update
        intervals = {wrapper.interval for wrapper in (self.schedule, self.weight_decay_schedule) if wrapper is not None}
        if len(intervals) > 1:
            raise ValueError("lr_scheduler() needs the lr and weight-decay schedules to share one interval")
        factors: list[float | None] = [
            None if self.weight_decay_schedule is None or group["exclude_from_wd"] else factor
            for group, factor in zip(self.param_groups, self._wd_factors, strict=True)
        ]
        scheduler = ScheduleLR(
            self,
            None if self.schedule is None else self.schedule.schedule,
            total_steps,
            weight_decay_schedule=None if self.weight_decay_schedule is None else self.weight_decay_schedule.schedule,
            interval=intervals.pop() if intervals else "update",
            updates_per_epoch=counter.updates_per_epoch if counter is not None else 1,
            weight_decay_factors=factors if self.weight_decay_schedule is not None else [None] * len(factors),
        )
        self._scheduler_attached = True
        return scheduler

    @overload
    def step(self, closure: None = None, grad_scaler: torch.amp.GradScaler | None = None) -> None: ...

    @overload
    def step(self, closure: Callable[[], float], grad_scaler: torch.amp.GradScaler | None = None) -> float: ...

    @overload
    def step(self, closure: torch.amp.GradScaler, grad_scaler: None = None) -> None: ...

    def step(
        self,
        closure: Callable[[], float] | torch.amp.GradScaler | None = None,
        grad_scaler: torch.amp.GradScaler | None = None,
    ) -> float | None:
        """Unscale, check, clip and apply the gradients; then update the scaler.

        Called as torch's ``step(closure)`` (the closure is evaluated first, with gradients enabled, and its loss
        returned), as ``step(grad_scaler)`` with the scaler in the first position, or as ``step(grad_scaler=...)``.

        1. No parameter has a gradient: nothing happens (no step, no scaler update), with or without a scaler.
        2. With an enabled scaler, gradients are unscaled first (unless already unscaled this iteration).
        3. The total gradient norm is computed (:attr:`last_grad_norm`). If it is not finite, the step is skipped
           and counted in :attr:`num_skipped_steps` (an enabled scaler skips it itself and lowers its scale).
        4. Otherwise gradients are clipped by value, then by total norm, over this optimizer's parameters, and
           the optimizer steps.
        5. A scaler shared by several wrappers is updated once, after all of them stepped.
        6. With ``advance_counter``, the counter advances one update and the schedules are applied for the next.

        Args:
            closure: A callable that recomputes the loss (torch's convention), or the ``GradScaler`` (the original's
                positional call), or ``None``.
            grad_scaler: The ``torch.amp.GradScaler`` that scaled the loss, or ``None`` without AMP.

        Returns:
            The closure's loss, or ``None`` without a closure.

        Raises:
            TypeError: ``grad_scaler`` is not a GradScaler, ``closure`` is neither callable nor a GradScaler, or a
                scaler is given twice.
        """
        if isinstance(closure, torch.amp.GradScaler):
            if grad_scaler is not None:
                raise TypeError("step() got a GradScaler both positionally and as grad_scaler=")
            closure, grad_scaler = None, closure
        if grad_scaler is not None and not isinstance(grad_scaler, torch.amp.GradScaler):
            raise TypeError(f"grad_scaler must be a torch.amp.GradScaler or None, got {type(grad_scaler).__name__}")
        if closure is not None and not callable(closure):
            raise TypeError(
                f"closure must be a callable returning the loss, a GradScaler or None, got {type(closure).__name__}"
            )
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        self._step(grad_scaler)
        if self.advance_counter and self.update_counter is not None:
            self.update_counter.advance()
            if not self._scheduler_attached:
                self.schedule_step()
        return loss

    def _step(self, grad_scaler: torch.amp.GradScaler | None) -> None:
        scaler = grad_scaler if grad_scaler is not None else self._noop_scaler
        shared = scaler.is_enabled()
        if shared:
            _scaler_rounds.begin(scaler, self)
        else:
            _scaler_rounds.withdraw(self)
        grads = [param.grad for param in self._params if param.grad is not None]
        if not grads:
            if shared:
                _scaler_rounds.finish(scaler, self, unscaled=False)
            return
        if shared and not _already_unscaled(scaler, self):
            scaler.unscale_(self.torch_optim)
        groups = group_grads(grads)  # once: the norm and both clippings reuse it
        norm = total_grad_norm(groups)
        self.last_grad_norm = norm.item()
        if math.isfinite(self.last_grad_norm):
            config = self.config
            if config.clip_grad_value is not None:
                clip_grads_by_value_(groups, config.clip_grad_value)
                if config.clip_grad_norm is not None:
                    norm = total_grad_norm(groups)
            if config.clip_grad_norm is not None:
                scale_grads_(groups, config.clip_grad_norm, norm)
            scaler.step(self.torch_optim)
        else:
            self.num_skipped_steps += 1
            self.logger.warning(
                "skipping optimizer step: gradient norm is %s (%d steps skipped so far)",
                self.last_grad_norm,
                self.num_skipped_steps,
            )
            if shared:
                scaler.step(self.torch_optim)  # finds the recorded inf and skips; keeps the scaler's bookkeeping
        if shared:
            _scaler_rounds.finish(scaler, self, unscaled=True)

    def zero_grad(self, set_to_none: bool = True) -> None:
        """Reset the gradients (to ``None`` by default), as ``torch.optim.Optimizer.zero_grad``."""
        self.torch_optim.zero_grad(set_to_none=set_to_none)

    def add_param_group(self, param_group: dict[str, Any]) -> None:
        """Add a param group to the wrapped optimizer, as ``torch.optim.Optimizer.add_param_group``.

        Its parameters are named after the model's (``param_group<index>.<position>`` for one the model does not
        have); the group is named ``group<index>`` unless it has a ``name``. It takes the weight-decay schedule
        unless its weight decay is 0, and gets no ``lr_scale``.
        """
        self.torch_optim.add_param_group(param_group)
        group = self.param_groups[-1]
        index = len(self.param_groups) - 1
        group.setdefault("name", f"group{index}")
        names_of = {id(param): name for name, param in self.model.named_parameters()}
        first = len(self._params)
        for position, param in enumerate(group["params"]):
            self.param_idx_to_name.set(first + position, names_of.get(id(param), f"param_group{index}.{position}"))
            self._params.append(param)
        wd = float(group.get("weight_decay") or 0.0)
        self._wd_factors.append(wd / self._configured_wd if self._configured_wd else 1.0)
        if self.weight_decay_schedule is not None:
            group.setdefault("exclude_from_wd", wd == 0.0)
        self._configured.append(self._hyperparameters(group))

    # ------------------------------------------------------------------ checkpoints

    def state_dict(self) -> StateDict:
        """The torch optimizer's ``state_dict`` plus ``param_idx_to_name`` (a plain ``dict[int, str]``).

        Each saved param group also holds, under ``configured``, the hyperparameters the config gave it (see
        :meth:`load_state_dict`). Loadable with ``torch.load(..., weights_only=True)``; torch's state-dict hooks run
        as for any optimizer.
        """
        for pre_hook in self._optimizer_state_dict_pre_hooks.values():
            pre_hook(self)
        state_dict: dict[str, Any] = self.torch_optim.state_dict()
        state_dict["param_groups"] = [
            {**group, _RECORD_KEY: dict(configured)}
            for group, configured in zip(state_dict["param_groups"], self._configured, strict=True)
        ]
        state_dict["param_idx_to_name"] = self.param_idx_to_name.to_forward()
        for post_hook in self._optimizer_state_dict_post_hooks.values():
            result = post_hook(self, state_dict)
            if result is not None:
                state_dict = result
        return state_dict

    def load_state_dict(  # type: ignore[override]
        self, state_dict: Mapping[str, Any], strict: bool = False
    ) -> LoadReport:
        """Load optimizer state by parameter name, and the hyperparameters the config has not changed since.

        State:

        * A parameter new since the checkpoint starts with no state; a parameter gone from the model is dropped.
        * ``module.`` (DDP) and ``_orig_mod.`` (``torch.compile``) name prefixes are ignored.
        * A state tensor whose shape or dtype kind does not fit its parameter raises, naming the parameter.
        * Tensors are copied, never shared with ``state_dict``; on any error nothing changes.
        * A plain torch ``state_dict`` (no ``param_idx_to_name``) is matched by position and must have the same
          group sizes; a checkpoint of the original framework is name-keyed and loads like one of ours.

        Hyperparameters (``lr``, ``weight_decay``, ``betas``, ...) of each group, matched by group name:

        * A checkpoint of this wrapper records what the config gave each group. Where the current config gives a
          different value, the config wins; every other value is restored as saved, including a learning rate a
          scheduler changed, so a resumed run continues exactly.
        * A checkpoint without that record (the original framework's, a plain torch one) keeps every current
          value, as the original did.

        Args:
            state_dict: From :meth:`state_dict`, a checkpoint of the original, or a torch optimizer.
            strict: Raise instead of reporting when parameters are new or dropped.

        Returns:
            What was restored, started fresh and dropped (also logged).

        Raises:
            ValueError: A malformed checkpoint, a mismatching parameter, or (``strict``) new/dropped parameters.
        """
        for pre_hook in self._optimizer_load_state_dict_pre_hooks.values():
            hook_result = pre_hook(self, state_dict)
            if hook_result is not None:
                state_dict = hook_result
        state_dict_to_load = state_dict
        if not isinstance(state_dict_to_load, Mapping):
            raise ValueError(f"state_dict_to_load must be a dict, got {type(state_dict_to_load).__name__}")
        missing = [key for key in ("state", "param_groups") if key not in state_dict_to_load]
        if missing:
            raise ValueError(f"state_dict_to_load lacks the key(s) {missing}; expected an optimizer state_dict")
        current = self.torch_optim.state_dict()
        params_by_index = dict(enumerate(self._params))
        if "param_idx_to_name" in state_dict_to_load:
            checkpoint = state_dict_to_load
        else:
            positional = _renumbered(state_dict_to_load)
            checkpoint = {**positional, "param_idx_to_name": self._positional_names(positional)}
        # Types, values and structure of the whole checkpoint, before anything changes.
        validate_optimizer_state(self.torch_optim, checkpoint)
        new_state, report = remap_state_by_name(
            checkpoint, self.param_idx_to_name.to_forward(), params_by_index, strict=strict
        )
        groups, fills = self._merged_groups(current["param_groups"], state_dict_to_load["param_groups"])
        old_state, old_groups = self.torch_optim.state, self.torch_optim.param_groups
        try:
            self.torch_optim.load_state_dict({"state": new_state, "param_groups": groups})
        except BaseException:
            self.torch_optim.state, self.torch_optim.param_groups = old_state, old_groups
            raise
        for tensor, value in fills:
            tensor.fill_(value)
        self.logger.info("%s", report)
        for post_hook in self._optimizer_load_state_dict_post_hooks.values():
            post_hook(self)
        return report

    def _merged_groups(
        self, current_groups: list[dict[str, Any]], saved_groups: Any
    ) -> tuple[list[dict[str, Any]], list[tuple[torch.Tensor, Any]]]:
        """The current groups with every hyperparameter restored that the config did not change since the save.

        Returns the groups to load and the tensor hyperparameters to fill in place once the load succeeded.
        """
        if not isinstance(saved_groups, list) or not all(isinstance(group, Mapping) for group in saved_groups):
            raise ValueError("state_dict_to_load['param_groups'] must be a list of dicts")
        saved_by_name = {group.get("name"): group for group in saved_groups}
        by_name = len(saved_by_name) == len(saved_groups) and None not in saved_by_name
        merged: list[dict[str, Any]] = []
        fills: list[tuple[torch.Tensor, Any]] = []
        for index, (group, configured) in enumerate(zip(current_groups, self._configured, strict=True)):
            group = dict(group)
            if by_name:
                saved = saved_by_name.get(group.get("name"))
            else:
                saved = saved_groups[index] if len(saved_groups) == len(current_groups) else None
            record = saved.get(_RECORD_KEY) if saved is not None else None
            if saved is not None and isinstance(record, Mapping):
                for key, value in saved.items():
                    if key in _NOT_HYPERPARAMETERS:
                        continue
                    if key in record and _plain(record[key]) != configured.get(key, _plain(record[key])):
                        continue  # the config changed this value since the checkpoint: it wins
                    if key in record and key not in configured:
                        continue  # no longer configured at all
                    if isinstance(group.get(key), torch.Tensor):
                        fills.append((group[key], _plain(value)))
                    else:
                        group[key] = value
            merged.append(group)
        return merged, fills

    def _positional_names(self, state_dict: Mapping[str, Any]) -> dict[int, str]:
        saved_sizes = [len(group["params"]) for group in state_dict["param_groups"]]
        sizes = [len(group["params"]) for group in self.torch_optim.param_groups]
        if saved_sizes != sizes:
            raise ValueError(
                "state_dict_to_load has no 'param_idx_to_name', so its parameters are matched by position, but its "
                f"param groups hold {saved_sizes} parameters and the current ones {sizes}"
            )
        saved_indices = [index for group in state_dict["param_groups"] for index in group["params"]]
        return {int(saved): self.param_idx_to_name.get_value_by_key(index) for index, saved in enumerate(saved_indices)}

    # ------------------------------------------------------------------ printing

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.torch_optim!r})"

    def __str__(self) -> str:
        name = type(self.torch_optim).__name__
        dumped = self.config.model_dump(exclude_defaults=True, exclude_none=True, exclude_unset=True)
        if not dumped:
            return name
        return f"{name}({', '.join(f'{key}={value}' for key, value in dumped.items())})"
