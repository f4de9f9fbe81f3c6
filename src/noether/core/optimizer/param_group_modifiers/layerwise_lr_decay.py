"""Layer-wise learning-rate decay: layers closer to the input learn more slowly (BEiT, MAE fine-tuning)."""

from __future__ import annotations

import re

import torch

from noether.core.optimizer.param_group_modifiers.base import ParamGroupModifierBase
from noether.core.optimizer.param_names import normalize_param_name
from noether.core.schemas.optimizers import ParamGroupModifierConfig

__all__ = ["LayerwiseLrDecayModifier"]


class LayerwiseLrDecayModifier(ParamGroupModifierBase):
    r"""Scales each parameter's lr by ``decay ** (num_layers + 1 - layer_id)``.

    The layers are the entries of the module list at ``name`` (e.g. ``blocks`` of a ViT). Layer ids follow
    timm's ``param_groups_layer_decay``:

    * parameters that come before the first layer in ``model.named_parameters()`` (patch embedding, CLS token,
      positional embedding) have id 0 and get :math:`\text{decay}^{L+1}`;
    * parameters of layer ``i`` (``blocks.i.*``) have id ``i + 1`` and get :math:`\text{decay}^{L-i}`;
    * parameters after the last layer (final norm, head) have id ``L + 1`` and keep the full lr.

    ``L`` is ``num_layers`` when given, else the number of layers found by name. The returned ``lr_scale``
    multiplies with any other modifier's scale. Names are compared without ``module.``/``_orig_mod.`` prefixes.

    Args:
        param_group_modifier_config: ``name`` (path of the layer list), ``decay`` in (0, 1] and optionally
            ``num_layers``.
    """

    def __init__(self, param_group_modifier_config: ParamGroupModifierConfig) -> None:
        extra = param_group_modifier_config.model_extra or {}
        if "decay" not in extra:
            raise ValueError(f"LayerwiseLrDecayModifier for {param_group_modifier_config.name!r} needs a 'decay'")
        self.name = normalize_param_name(param_group_modifier_config.name)
        self.decay = float(extra["decay"])
        self.num_layers: int | None = extra.get("num_layers")
        self._layer_pattern = re.compile(re.escape(self.name) + r"\.(\d+)\.")
        self._scales: dict[str, float] | None = None

    def _compute_scales(self, model: torch.nn.Module) -> dict[str, float]:
        layer_ids: dict[str, int | None] = {}
        for name, _ in model.named_parameters():
            match = self._layer_pattern.match(normalize_param_name(name))
            layer_ids[name] = int(match.group(1)) + 1 if match else None
        found = [layer_id for layer_id in layer_ids.values() if layer_id is not None]
        if not found:
            return {}
        num_layers = self.num_layers if self.num_layers is not None else max(found)
        if max(found) > num_layers:
            raise ValueError(
                f"LayerwiseLrDecayModifier: num_layers={num_layers} but '{self.name}' has layer index {max(found) - 1}"
            )
        scales: dict[str, float] = {}
        seen_layer = False
        for name, layer_id in layer_ids.items():
            if layer_id is not None:
                seen_layer = True
            else:
                layer_id = num_layers + 1 if seen_layer else 0
            scales[name] = self.decay ** (num_layers + 1 - layer_id)
        return scales

    def get_properties(self, model: torch.nn.Module, name: str, param: torch.Tensor) -> dict[str, float]:
        """``{"lr_scale": decay ** (L + 1 - layer_id)}``, or ``{}`` for parameters that keep the full lr."""
        if self._scales is None:
            self._scales = self._compute_scales(model)
        scale = self._scales.get(name, 1.0)
        return {} if scale == 1.0 else {"lr_scale": scale}

    def was_applied_successfully(self) -> bool:
        """Whether any parameter lies inside a layer of ``name``."""
        return bool(self._scales)

    def __str__(self) -> str:
        return f"{type(self).__name__}(name={self.name},decay={self.decay},num_layers={self.num_layers})"
