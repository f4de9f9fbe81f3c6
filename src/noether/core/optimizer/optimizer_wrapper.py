"""The optimizer wrapper: param groups from a config, schedules, clipping, AMP and name-keyed checkpoints."""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Mapping
from typing import Any

import torch

from noether.core.optimizer.checkpoint import LoadReport, remap_state_by_name
from noether.core.optimizer.grad_scaler_sync import ScalerRounds
from noether.core.optimizer.gradients import clip_grads_by_value_, group_grads, scale_grads_, total_grad_norm
from noether.core.optimizer.param_group_modifiers.base import ParamGroupModifierBase
from noether.core.optimizer.param_groups import build_param_groups
from noether.core.optimizer.schedule_values import checked_schedule_value
from noether.core.optimizer.state_validation import validate_optimizer_state
from noether.core.schemas.optimizers import OptimizerConfig
from noether.core.utils.bidict import Bidict
from noether.core.utils.logging.formatting import float_to_scientific_notation
from noether.core.utils.torch.amp import NoopGradScaler
from noether.core.utils.training.counter import UpdateCounter
from noether.core.utils.training.schedule_wrapper import ScheduleWrapper

__all__ = ["OptimizerWrapper"]


def _has_gradients(wrapper: OptimizerWrapper) -> bool:
    return any(param.grad is not None for param in wrapper._params)


_scaler_rounds = ScalerRounds(_has_gradients)


def _set_hyperparameter(group: dict[str, Any], key: str, value: float) -> None:
    # Tensor hyperparameters (capturable/fused optimizers, Lion's tensor lr) must stay tensors.
    current = group.get(key)
    if isinstance(current, torch.Tensor):
        current.fill_(value)
    else:
        group[key] = value


def _already_unscaled(scaler: torch.amp.GradScaler, optimizer: torch.optim.Optimizer) -> bool:
    """Whether the user already called ``scaler.unscale_(optimizer)`` this iteration (e.g. for own clipping)."""
    from torch.amp.grad_scaler import OptState

    states = getattr(scaler, "_per_optimizer_states", None)
    return isinstance(states, Mapping) and states.get(id(optimizer), {}).get("stage") is OptState.UNSCALED


class OptimizerWrapper:
    """Wrapper around a ``torch.optim.Optimizer`` that builds its param groups and drives its training steps.

    From an :class:`OptimizerConfig` it adds:

    * excluding biases and normalization weights (and a model's ``no_weight_decay()`` names) from weight decay;
    * param groups from modifiers (per-name lr scales and weight decays, layer-wise lr decay);
    * learning-rate and weight-decay schedules (:meth:`schedule_step`);
    * gradient clipping by value and by total norm, non-finite gradient detection, and AMP (:meth:`step`);
    * checkpoints keyed by parameter name (:meth:`state_dict`, :meth:`load_state_dict`).

    Usually built by :class:`~noether.core.factory.OptimizerFactory`:
    ``OptimizerFactory().create(config)(model, update_counter=counter)``.

    Args:
        model: The model whose ``named_parameters()`` are optimized (frozen ones included).
        torch_optim_ctor: Called with the list of param-group dicts; returns the torch optimizer, e.g.
            ``functools.partial(torch.optim.AdamW, lr=1e-3, weight_decay=0.05)``.
        optim_wrapper_config: The wrapper's settings (clipping, modifiers, flags, schedules).
        update_counter: The training progress the schedules read; needed by every schedule except a constant one.

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
    ) -> None:
        # Imported here: the factory imports this module (SPEC: lazy import avoids the cycle).
        from noether.core.factory.optimizer import ParamGroupModifierFactory
        from noether.core.factory.schedule import ScheduleFactory

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
        # Decision 5: whether a group takes weight decay is what flags/modifiers said, not "wd == 0".
        excluded_from_wd = ["weight_decay" in group and group["weight_decay"] == 0.0 for group in groups]

        self.torch_optim: torch.optim.Optimizer = torch_optim_ctor(groups)
        self._params: list[torch.Tensor] = [p for group in self.torch_optim.param_groups for p in group["params"]]
        clipping = config.clip_grad_value is not None or config.clip_grad_norm is not None
        self.all_parameters: list[torch.Tensor] | None = self._params if clipping else None
        self.last_grad_norm: float | None = None
        self.num_skipped_steps = 0
        self._noop_scaler = NoopGradScaler()

        for group in self.torch_optim.param_groups:
            if "lr_scale" in group:
                if "original_lr" in group:
                    raise ValueError(f"param group '{group['name']}' already has 'original_lr' before lr scaling")
                group["original_lr"] = float(group["lr"])
                _set_hyperparameter(group, "lr", float(group["lr"]) * group["lr_scale"])
                self.logger.info(
                    "param group '%s': lr scaled by %s from %s to %s",
                    group["name"],
                    group["lr_scale"],
                    float_to_scientific_notation(group["original_lr"], max_precision=2),
                    float_to_scientific_notation(float(group["lr"]), max_precision=2),
                )

        configured_wd = float(self.torch_optim.defaults.get("weight_decay") or 0.0)
        self._wd_factors = [
            float(group.get("weight_decay") or 0.0) / configured_wd if configured_wd else 1.0
            for group in self.torch_optim.param_groups
        ]
        # Decision 1: a schedule's unset max_value is the configured lr (weight decay for the wd schedule).
        self.schedule = ScheduleFactory().create(
            config.schedule_config,
            update_counter=update_counter,
            default_max_value=float(self.torch_optim.defaults["lr"]),
        )
        self.weight_decay_schedule = ScheduleFactory().create(
            config.weight_decay_schedule,
            update_counter=update_counter,
            default_max_value=configured_wd if configured_wd > 0 else None,
        )
        if self.weight_decay_schedule is not None:
            for group, excluded in zip(self.torch_optim.param_groups, excluded_from_wd, strict=True):
                if "exclude_from_wd" in group:
                    raise ValueError(f"param group '{group['name']}' already has 'exclude_from_wd'")
                group["exclude_from_wd"] = excluded
            if all(excluded_from_wd):
                self.logger.warning(
                    "weight_decay_schedule has no effect: every param group is excluded from weight decay"
                )

        _scaler_rounds.register(self)
        self.logger.info("%s param groups:\n%s", type(self.torch_optim).__name__, self.format_param_group_table())

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
            for index, group in enumerate(self.torch_optim.param_groups)
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
        weight decay is 0). Call once per update, before the forward pass.
        """
        # Both values are read and checked before any group changes.
        lr_value = None if self.schedule is None else checked_schedule_value(self.schedule, "lr")
        wd_value = (
            None
            if self.weight_decay_schedule is None
            else checked_schedule_value(self.weight_decay_schedule, "weight_decay")
        )
        if lr_value is not None:
            value = lr_value
            for group in self.torch_optim.param_groups:
                _set_hyperparameter(group, "lr", group["lr_scale"] * value if "lr_scale" in group else value)
        if wd_value is not None:
            value = wd_value
            for group, factor in zip(self.torch_optim.param_groups, self._wd_factors, strict=True):
                if not group["exclude_from_wd"]:
                    _set_hyperparameter(group, "weight_decay", value * factor)

    def step(self, grad_scaler: torch.amp.GradScaler | None = None) -> None:
        """Unscale, check, clip and apply the gradients; then update the scaler.

        1. No parameter has a gradient: nothing happens (no step, no scaler update), with or without a scaler.
        2. With an enabled scaler, gradients are unscaled first.
        3. The total gradient norm is computed (:attr:`last_grad_norm`). If it is not finite, the step is skipped
           and counted in :attr:`num_skipped_steps` (an enabled scaler skips it itself and lowers its scale).
        4. Otherwise gradients are clipped by value, then by total norm, over this optimizer's parameters, and
           the optimizer steps.
        5. A scaler shared by several wrappers is updated once, after all of them stepped.

        Args:
            grad_scaler: The ``torch.amp.GradScaler`` that scaled the loss, or ``None`` without AMP.
        """
        if grad_scaler is not None and not isinstance(grad_scaler, torch.amp.GradScaler):
            raise TypeError(f"grad_scaler must be a torch.amp.GradScaler or None, got {type(grad_scaler).__name__}")
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
        if shared and not _already_unscaled(scaler, self.torch_optim):
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

    # ------------------------------------------------------------------ checkpoints

    def state_dict(self) -> dict[str, Any]:
        """The torch optimizer's ``state_dict`` plus ``param_idx_to_name`` (a plain ``dict[int, str]``).

        Loadable with ``torch.load(..., weights_only=True)``.
        """
        state_dict = self.torch_optim.state_dict()
        state_dict["param_idx_to_name"] = self.param_idx_to_name.to_forward()
        return state_dict

    def load_state_dict(self, state_dict_to_load: Mapping[str, Any], strict: bool = False) -> LoadReport:
        """Load optimizer state by parameter name; the current config's hyperparameters are kept.

        * A parameter new since the checkpoint starts with no state; a parameter gone from the model is dropped.
        * ``module.`` (DDP) and ``_orig_mod.`` (``torch.compile``) name prefixes are ignored.
        * A state tensor whose shape or dtype kind does not fit its parameter raises, naming the parameter.
        * Tensors are copied, never shared with ``state_dict_to_load``; on any error nothing changes.
        * A plain torch ``state_dict`` (no ``param_idx_to_name``) is matched by position and must have the same
          group sizes; a checkpoint of the original framework is name-keyed and loads like one of ours.

        Args:
            state_dict_to_load: From :meth:`state_dict`, a checkpoint of the original, or a torch optimizer.
            strict: Raise instead of reporting when parameters are new or dropped.

        Returns:
            What was restored, started fresh and dropped (also logged).

        Raises:
            ValueError: A malformed checkpoint, a mismatching parameter, or (``strict``) new/dropped parameters.
        """
        if not isinstance(state_dict_to_load, Mapping):
            raise ValueError(f"state_dict_to_load must be a dict, got {type(state_dict_to_load).__name__}")
        missing = [key for key in ("state", "param_groups") if key not in state_dict_to_load]
        if missing:
            raise ValueError(f"state_dict_to_load lacks the key(s) {missing}; expected an optimizer state_dict")
        validate_optimizer_state(self.torch_optim, state_dict_to_load)  # types, values, structure; nothing changed yet
        current = self.torch_optim.state_dict()
        params_by_index = dict(enumerate(self._params))
        if "param_idx_to_name" in state_dict_to_load:
            checkpoint = state_dict_to_load
        else:
            checkpoint = {**state_dict_to_load, "param_idx_to_name": self._positional_names(state_dict_to_load)}
        new_state, report = remap_state_by_name(
            checkpoint, self.param_idx_to_name.to_forward(), params_by_index, strict=strict
        )
        old_state, old_groups = self.torch_optim.state, self.torch_optim.param_groups
        try:
            self.torch_optim.load_state_dict({"state": new_state, "param_groups": current["param_groups"]})
        except BaseException:
            self.torch_optim.state, self.torch_optim.param_groups = old_state, old_groups
            raise
        self.logger.info("%s", report)
        return report

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
