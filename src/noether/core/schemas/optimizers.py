"""Configs of the optimizer wrapper: :class:`OptimizerConfig` and :class:`ParamGroupModifierConfig`.

Both accept every config written for the original framework unchanged. The changes (see
``docs/differences/optimizer_wrapper.md``) only reject configs that could not have worked, or add options:

* optimizer keyword arguments (``betas``, ``eps``, ``momentum``, ...) may be given next to ``lr`` and reach the
  torch optimizer; they are checked against its constructor when it is built;
* ``lr`` is required whenever ``kind`` is set; every numeric field is finite and within the range
  :mod:`noether.core.schemas.bounds` gives it (clip values > 0);
* a modifier config's ``kind`` stays optional, as in the original, so that a modifier can be built directly from a
  config; the factory, which has to resolve the kind, requires it. A config with a kind must carry the fields that
  kind uses (``scale`` for ``LrScaleByNameModifier``, ``value`` for ``WeightDecayByNameModifier``).
"""

from __future__ import annotations

import warnings
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, ValidationError, field_validator, model_validator

from noether.core.schemas.bounds import (
    MAX_CLIP_GRAD_NORM,
    MAX_CLIP_GRAD_VALUE,
    MAX_LR,
    MAX_LR_SCALE,
    MAX_WEIGHT_DECAY,
    ClipGradNorm,
    ClipGradValue,
    LearningRate,
    LrScale,
    WeightDecay,
)
from noether.core.schemas.schedules import AnyScheduleConfig, kind_text_or_none

__all__ = ["OptimizerConfig", "ParamGroupModifierConfig"]

_LR_SCALE_KIND = "LrScaleByNameModifier"
_WEIGHT_DECAY_KIND = "WeightDecayByNameModifier"
_LAYERWISE_KIND = "LayerwiseLrDecayModifier"
_BUILTIN_MODIFIER_FIELDS: dict[str, set[str]] = {
    _LR_SCALE_KIND: {"scale"},
    _WEIGHT_DECAY_KIND: {"value"},
    _LAYERWISE_KIND: {"decay", "num_layers", "layers", "min_scale"},
}
# kind -> (its field, the other kind's field, what the field means, the kind that takes the other field)
_SCALAR_MODIFIERS: dict[str, tuple[str, str, str, str]] = {
    _LR_SCALE_KIND: ("scale", "value", "the lr multiplier", _WEIGHT_DECAY_KIND),
    _WEIGHT_DECAY_KIND: ("value", "scale", "the weight decay", _LR_SCALE_KIND),
}


def _builtin_modifier_kind(kind: str) -> str | None:
    """The class name of a built-in modifier ``kind`` (any of its import paths), else None."""
    module, _, attribute = kind.rpartition(".")
    if attribute in _BUILTIN_MODIFIER_FIELDS and (module == "noether" or module.startswith("noether.")):
        return attribute
    return None


class ParamGroupModifierConfig(BaseModel):
    """Config of one param-group modifier.

    ``kind`` names the modifier class; the other fields are read by that class. Keys beyond the ones declared
    here are kept (``model_extra``) so user-defined modifiers can take their own settings; for the built-in kinds
    a key they do not use is reported with a warning, because the original ignored such keys silently.
    """

    model_config = ConfigDict(extra="allow")

    kind: str | None = Field(
        default=None,
        description="Class path of the modifier, e.g. 'noether.core.optimizer.param_group_modifiers."
        "LrScaleByNameModifier'. Must name a ParamGroupModifierBase subclass. Optional here, so a modifier can be "
        "built directly from a config (WeightDecayByNameModifier(ParamGroupModifierConfig(name=..., value=0.0))); "
        "the factory that builds modifiers from an OptimizerConfig requires it.",
    )
    scale: LrScale | None = Field(
        default=None, description=f"Learning-rate multiplier in [0, {MAX_LR_SCALE:g}] (LrScaleByNameModifier)."
    )
    value: WeightDecay | None = Field(
        default=None, description=f"Weight decay in [0, {MAX_WEIGHT_DECAY:g}] (WeightDecayByNameModifier)."
    )
    name: str | None = Field(
        default=None,
        description="Full parameter name (e.g. 'backbone.cls_token') or a glob pattern (e.g. 'blocks.*.bias'); "
        "required by every modifier except LayerwiseLrDecayModifier, where it optionally gives the dotted path of "
        "the module list that holds the layers.",
    )

    @model_validator(mode="after")
    def _check_fields_against_kind(self) -> ParamGroupModifierConfig:
        if self.name is None and (self.kind is None or _builtin_modifier_kind(self.kind) != _LAYERWISE_KIND):
            raise ValueError(
                f"'name' is required (the parameter name or glob pattern the modifier acts on; kind={self.kind!r}); "
                f"only {_LAYERWISE_KIND} may leave it out"
            )
        if self.kind is None:
            # Without a kind the config is handed to a modifier class directly; it is held to the rule the
            # original applied to every modifier config: exactly one of 'scale' and 'value'.
            if (self.scale is None) == (self.value is None):
                raise ValueError(
                    f"exactly one of 'scale' (lr multiplier) and 'value' (weight decay) must be set for {self.name!r}, "
                    f"got scale={self.scale}, value={self.value}"
                )
            return self
        builtin = _builtin_modifier_kind(self.kind)
        if builtin in _SCALAR_MODIFIERS:
            field, other, meaning, other_kind = _SCALAR_MODIFIERS[builtin]
            if getattr(self, field) is None:
                raise ValueError(f"'{field}' is required for {builtin} ({meaning} of {self.name!r})")
            if getattr(self, other) is not None:
                raise ValueError(
                    f"'{other}' is not a field of {builtin} (got {other}={getattr(self, other)}); use '{field}' for "
                    f"{meaning}, or kind {other_kind}"
                )
        if builtin == _LAYERWISE_KIND:
            _check_layerwise_fields(self)
        if builtin is not None:
            unused = sorted(set(self.model_extra or {}) - _BUILTIN_MODIFIER_FIELDS[builtin])
            if unused:
                warnings.warn(
                    f"{builtin} config for {self.name!r}: ignoring unknown keys {unused}; it reads "
                    f"{sorted(_BUILTIN_MODIFIER_FIELDS[builtin] | {'kind', 'name'})}",
                    UserWarning,
                    stacklevel=2,
                )
        return self


def _check_layerwise_fields(config: ParamGroupModifierConfig) -> None:
    extra = config.model_extra or {}
    if config.scale is not None or config.value is not None:
        raise ValueError(f"{_LAYERWISE_KIND} takes 'decay' (and optionally 'num_layers'), not 'scale' or 'value'")
    decay = extra.get("decay")
    if isinstance(decay, bool) or not isinstance(decay, (int, float)) or not (0 < decay <= 1):
        raise ValueError(f"'decay' of {_LAYERWISE_KIND} must be a number in (0, 1], got {decay!r}")
    num_layers = extra.get("num_layers")
    if num_layers is not None and (isinstance(num_layers, bool) or not isinstance(num_layers, int) or num_layers < 1):
        raise ValueError(f"'num_layers' of {_LAYERWISE_KIND} must be a positive int or absent, got {num_layers!r}")
    if num_layers is not None and config.name is None:
        raise ValueError(f"'num_layers' of {_LAYERWISE_KIND} counts the entries of the module list 'name'; give 'name'")
    min_scale = extra.get("min_scale")
    if min_scale is not None and (
        isinstance(min_scale, bool) or not isinstance(min_scale, (int, float)) or not 0 <= min_scale <= 1
    ):
        raise ValueError(f"'min_scale' of {_LAYERWISE_KIND} must be a number in [0, 1] or absent, got {min_scale!r}")
    layers = extra.get("layers")
    if layers is None:
        return
    if config.name is not None:
        raise ValueError(
            f"{_LAYERWISE_KIND} takes 'layers' (patterns) or 'name' (one module list), not both: got "
            f"name={config.name!r} and layers={layers!r}"
        )

    def is_pattern(item: object) -> bool:
        return isinstance(item, str) and item != ""

    entries_ok = isinstance(layers, list) and len(layers) > 0
    for entry in layers if isinstance(layers, list) else ():
        entries_ok = entries_ok and (
            is_pattern(entry) or (isinstance(entry, list) and len(entry) > 0 and all(map(is_pattern, entry)))
        )
    if not entries_ok:
        raise ValueError(
            f"'layers' of {_LAYERWISE_KIND} must be a non-empty list whose entries are patterns (one layer per "
            f"module they match) or non-empty lists of patterns (one layer), e.g. "
            f"[['cls_token', 'patch_embed'], 'blocks.*', 'norm']; got {layers!r}"
        )


class OptimizerConfig(BaseModel):
    """Config of an optimizer built through :class:`~noether.core.factory.OptimizerFactory`.

    ``kind`` and ``lr`` (and ``weight_decay``, default 0.0, always passed on) go to the torch optimizer, as do any
    keys not declared here (``betas``, ``eps``, ``momentum``, ``caution``, ``foreach``, ...): those are checked
    against the optimizer's constructor when it is built. The remaining fields configure the
    :class:`~noether.core.optimizer.OptimizerWrapper`.
    """

    model_config = ConfigDict(extra="allow")

    kind: str | None = Field(
        default=None, description="Class path of a torch.optim.Optimizer subclass, e.g. 'torch.optim.AdamW'."
    )
    lr: LearningRate | None = Field(
        default=None, description=f"Learning rate in (0, {MAX_LR:g}]; required when 'kind' is set."
    )
    weight_decay: WeightDecay | None = Field(
        default=0.0,
        description=f"Weight decay in [0, {MAX_WEIGHT_DECAY:g}]; 0.0 by default and always passed to the optimizer.",
    )
    clip_grad_value: ClipGradValue | None = Field(
        default=None, description=f"Clip each gradient element to +-value, in (0, {MAX_CLIP_GRAD_VALUE:g}]."
    )
    clip_grad_norm: ClipGradNorm | None = Field(
        default=None, description=f"Clip the total L2 gradient norm to this value, in (0, {MAX_CLIP_GRAD_NORM:g}]."
    )
    param_group_modifiers_config: list[ParamGroupModifierConfig] | None = Field(
        default=None, description="Modifiers that change lr scale or weight decay of individual parameters."
    )
    exclude_bias_from_weight_decay: bool = Field(default=True, description="Biases get weight decay 0.")
    exclude_normalization_params_from_weight_decay: bool = Field(
        default=True, description="1-D and scalar parameters other than biases get weight decay 0."
    )
    weight_decay_schedule: AnyScheduleConfig | None = Field(
        default=None, description="Schedule of the weight decay; max_value defaults to 'weight_decay'."
    )
    schedule_config: AnyScheduleConfig | None = Field(
        default=None, description="Schedule of the learning rate; max_value defaults to 'lr'."
    )

    WRAPPER_FIELDS: ClassVar[frozenset[str]] = frozenset(
        {
            "clip_grad_value",
            "clip_grad_norm",
            "param_group_modifiers_config",
            "exclude_bias_from_weight_decay",
            "exclude_normalization_params_from_weight_decay",
            "weight_decay_schedule",
            "schedule_config",
        }
    )
    """The fields read by the wrapper rather than by the torch optimizer."""

    _optim_wrapper_kwargs: set[str] = PrivateAttr(default_factory=lambda: set(OptimizerConfig.WRAPPER_FIELDS))

    @field_validator("kind", mode="before")
    @classmethod
    def _kind_is_a_str(cls, value: Any) -> Any:
        return kind_text_or_none(value, "the optimizer class", "torch.optim.AdamW")

    @model_validator(mode="after")
    def _lr_required_with_kind(self) -> OptimizerConfig:
        if self.kind is not None and self.lr is None:
            raise ValueError(f"'lr' is required when 'kind' is set (kind={self.kind!r}); give a learning rate > 0")
        return self

    @model_validator(mode="after")
    def _schedules_fit_their_defaults(self) -> OptimizerConfig:
        # A schedule's unset max_value becomes lr (weight_decay for the weight-decay schedule) when the wrapper is
        # built; check that now, so a config that validates also builds.
        if self.kind is None:
            return self
        for field, source, default in (
            ("schedule_config", "lr", self.lr),
            ("weight_decay_schedule", "weight_decay", self.weight_decay or None),
        ):
            schedule = getattr(self, field)
            if schedule is None or "max_value" not in type(schedule).model_fields or schedule.max_value is not None:
                continue
            if default is None:
                raise ValueError(
                    f"{field} ({type(schedule).__name__}) leaves max_value unset, so it would take {source}, but "
                    f"{source} is {getattr(self, source)!r}; set max_value, or a {source} > 0"
                )
            try:
                type(schedule).model_validate({**schedule.model_dump(exclude_unset=True), "max_value": default})
            except ValidationError as error:
                reasons = "; ".join(str(detail["msg"]).removeprefix("Value error, ") for detail in error.errors())
                raise ValueError(f"{field} with max_value defaulting to {source}={default}: {reasons}") from None
        return self

    def return_optim_wrapper_args(self) -> dict[str, Any]:
        """The wrapper's fields as a dict: all seven keys, ``None`` values kept, nested schedules as dicts."""
        return self.model_dump(include=set(self._optim_wrapper_kwargs))

    def optimizer_kwargs(self) -> dict[str, Any]:
        """The keyword arguments for the torch optimizer: ``lr``, ``weight_decay`` and every extra key.

        Lists (from YAML, e.g. ``betas: [0.9, 0.95]``) become tuples, the form torch optimizers document.
        """
        kwargs: dict[str, Any] = {"lr": self.lr, "weight_decay": self.weight_decay}
        for key, value in (self.model_extra or {}).items():
            kwargs[key] = tuple(value) if isinstance(value, list) else value
        return kwargs
