"""Layer-wise learning-rate decay: layers closer to the input learn more slowly (BEiT, MAE fine-tuning).

Every parameter gets a layer id between 0 (input side) and ``layer_max`` (output side) and the lr scale
``max(min_scale, decay ** (layer_max - layer_id))``. Three ways say which parameters form which layer:

* the model's own ``group_matcher(coarse=False)`` (every timm model has one): the same layers, lr scales and order
  as timm's ``create_optimizer_v2(model, layer_decay=...)``;
* ``layers``: a list of glob patterns over parameter names, from the input side to the output side;
* ``name``: the path of one module list (``blocks``), each entry one layer, in BEiT's original numbering.
"""

from __future__ import annotations

import fnmatch
import math
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import torch

from noether.core.optimizer.param_group_modifiers.base import ParamGroupModifierBase
from noether.core.optimizer.param_names import normalize_param_name
from noether.core.schemas.optimizers import ParamGroupModifierConfig

__all__ = [
    "MATCH_PREVIOUS_GROUP",
    "LayerwiseLrDecayModifier",
    "layer_ids_from_group_matcher",
    "layer_ids_from_patterns",
    "model_with_group_matcher",
]

MATCH_PREVIOUS_GROUP = 99999
"""A group matcher's suffix ordinal that puts the matched parameters into the group before them (timm's marker,
used e.g. for a ViT's final norm, which joins the last block)."""

LayerSpec = str | Sequence[str]
"""One entry of ``layers``: a pattern (one layer per module it matches) or a list of patterns (one layer)."""


def model_with_group_matcher(model: torch.nn.Module) -> torch.nn.Module | None:
    """The module that defines ``group_matcher``: ``model`` itself, or the model inside a DDP/compile wrapper."""
    module: Any = model
    while isinstance(module, torch.nn.Module):
        if callable(getattr(type(module), "group_matcher", None)):
            return module
        module = getattr(module, "module", None) or getattr(module, "_orig_mod", None)
    return None


def _ordinal_function(matcher: Mapping[str, Any] | Callable[[str], Any]) -> Callable[[str], tuple[float, ...]]:
    """The function that maps a parameter name to its sort key under a timm-style group matcher.

    A mapping matcher holds, per group (in order), a regex or a list of ``(regex, suffix)`` pairs; a name's key is
    (group position, the regex's captured numbers, the suffix). Names no regex matches sort last. A callable
    matcher returns the key (or a single number) itself.
    """
    if not isinstance(matcher, Mapping):

        def call(name: str) -> tuple[float, ...]:
            key = matcher(name)
            return tuple(key) if isinstance(key, Iterable) else (key,)

        return call
    compiled: list[tuple[re.Pattern[str], int, tuple[float, ...]]] = []
    for position, spec in enumerate(matcher.values()):
        if spec is None:
            continue
        if isinstance(spec, (list, tuple)):
            for regex, suffix in spec:
                compiled.append((re.compile(regex), position, tuple(suffix or ())))
        else:
            compiled.append((re.compile(spec), position, ()))

    def match(name: str) -> tuple[float, ...]:
        for regex, position, suffix in compiled:
            found = regex.match(name)
            if found:
                captured = (float(group) for group in found.groups() if group is not None)
                return (float(position), *captured, *(float(part) for part in suffix))
        return (math.inf,)

    return match


def layer_ids_from_group_matcher(
    names: Iterable[str], matcher: Mapping[str, Any] | Callable[[str], Any]
) -> dict[str, int]:
    """Layer ids 0, 1, ... of parameter ``names`` from a timm-style ``group_matcher(coarse=False)``.

    Names are grouped by their sort key; groups are numbered in key order, except that a group whose key ends in
    :data:`MATCH_PREVIOUS_GROUP` joins the group before it. Unmatched names form the last group.
    """
    key_of = _ordinal_function(matcher)
    members: dict[tuple[float, ...], list[str]] = {}
    for name in names:
        members.setdefault(key_of(name), []).append(name)
    layer_ids: dict[str, int] = {}
    layer_id = -1
    for key in sorted(members):
        if layer_id < 0 or key[-1] != MATCH_PREVIOUS_GROUP:
            layer_id += 1
        for name in members[key]:
            layer_ids[name] = layer_id
    return layer_ids


def _prefix_match(pattern: str, name: str) -> str | None:
    """The leading segments of ``name`` that match ``pattern`` segment by segment (``*`` within a segment), or None.

    ``blocks.*`` matches ``blocks.3.attn.weight`` with the prefix ``blocks.3``; ``cls_token`` matches the
    parameter ``cls_token`` itself.
    """
    pattern_parts = pattern.split(".")
    name_parts = name.split(".")
    if len(pattern_parts) > len(name_parts):
        return None
    head = name_parts[: len(pattern_parts)]
    if all(fnmatch.fnmatchcase(part, wanted) for part, wanted in zip(head, pattern_parts, strict=True)):
        return ".".join(head)
    return None


def layer_ids_from_patterns(names: Iterable[str], layers: Sequence[LayerSpec]) -> tuple[dict[str, int], list[int]]:
    """Layer ids of parameter ``names`` from ``layers``, listed from the input side to the output side.

    An entry that is a pattern gives one layer per module (or parameter) it matches, in the order they appear in
    ``names``: ``blocks.*`` gives ``blocks.0``, ``blocks.1``, ...; ``stages.*.blocks.*`` every block of every stage.
    An entry that is a list of patterns gives one layer for everything any of them matches. Patterns match whole
    dot-separated segments from the start of the name, and ``*``, ``?`` and ``[...]`` work within a segment. A name
    takes the first entry that matches it; names no entry matches form one more layer on top (the head).

    Returns:
        The layer id of every name, and how many names each entry matched.
    """
    keys: dict[str, tuple[int, str]] = {}
    matched = [0] * len(layers)
    unmatched: list[str] = []
    for name in names:
        for position, entry in enumerate(layers):
            patterns = [entry] if isinstance(entry, str) else list(entry)
            prefix = next((p for p in (_prefix_match(pattern, name) for pattern in patterns) if p is not None), None)
            if prefix is not None:
                keys[name] = (position, prefix if isinstance(entry, str) else "")
                matched[position] += 1
                break
        else:
            unmatched.append(name)
    # Entries in list order; within an entry, its modules in the order their names appear.
    numbering: dict[tuple[int, str], int] = {}
    for position in range(len(layers)):
        for key in dict.fromkeys(key for key in keys.values() if key[0] == position):
            numbering[key] = len(numbering)
    layer_ids = {name: numbering[key] for name, key in keys.items()}
    layer_ids.update(dict.fromkeys(unmatched, len(numbering)))
    return layer_ids, matched


class LayerwiseLrDecayModifier(ParamGroupModifierBase):
    r"""Scales each parameter's lr by ``max(min_scale, decay ** (layer_max - layer_id))``.

    The config says what a layer is (give at most one of ``layers`` and ``name``):

    * neither: the model's ``group_matcher(coarse=False)`` defines the layers, as timm's
      ``param_groups_layer_decay`` reads it, so every parameter of a timm model gets exactly the lr scale of
      ``timm.optim.create_optimizer_v2(model, layer_decay=decay)``. The method is also found on the model inside a
      DDP or ``torch.compile`` wrapper.
    * ``layers``: a list of glob patterns over parameter names, input side first (see
      :func:`layer_ids_from_patterns`), e.g. ``[[cls_token, pos_embed, "patch_embed"], "blocks.*", "norm"]``.
      Parameters no entry matches form the top layer and keep the full lr.
    * ``name``: the path of a module list (``blocks``). Parameters before its first entry (in
      ``named_parameters()`` order) have id 0, those of entry ``i`` id ``i + 1``, and everything after it id
      ``L + 1`` with the full lr; ``L`` is ``num_layers`` when given, else the number of entries found. This is
      BEiT's numbering: unlike timm's ViT grouping, the final norm keeps the full lr instead of joining the last
      block.

    The returned ``lr_scale`` multiplies with any other modifier's scale. Weight decay is left to the wrapper's
    flags and the model's ``no_weight_decay()``, which together exclude what timm excludes.

    Args:
        param_group_modifier_config: ``decay`` in (0, 1]; optionally ``layers`` or ``name`` (with ``num_layers``),
            and ``min_scale`` (default 0), the smallest scale any layer gets, as timm's ``layer_decay_min_scale``.
    """

    def __init__(self, param_group_modifier_config: ParamGroupModifierConfig) -> None:
        config = param_group_modifier_config
        extra = config.model_extra or {}
        if "decay" not in extra:
            raise ValueError(f"LayerwiseLrDecayModifier needs a 'decay' in (0, 1] (config: {config})")
        self.name = normalize_param_name(config.name) if config.name is not None else None
        self.decay = float(extra["decay"])
        self.num_layers: int | None = extra.get("num_layers")
        self.min_scale = float(extra.get("min_scale", 0.0))
        layers = extra.get("layers")
        self.layers: list[LayerSpec] | None = (
            None if layers is None else [entry if isinstance(entry, str) else list(entry) for entry in layers]
        )
        if self.name is not None and self.layers is not None:
            raise ValueError("LayerwiseLrDecayModifier: give 'layers' or 'name', not both")
        self._scales: dict[str, float] | None = None
        self._unmatched_entries: list[LayerSpec] = []

    def _layer_ids(self, model: torch.nn.Module) -> tuple[dict[str, int], int]:
        """Every parameter name's layer id, and ``layer_max`` (the id whose lr is not scaled)."""
        names = [name for name, _ in model.named_parameters()]
        if self.layers is not None:
            by_normalized, matched = layer_ids_from_patterns([normalize_param_name(n) for n in names], self.layers)
            self._unmatched_entries = [entry for entry, count in zip(self.layers, matched, strict=True) if not count]
            layer_ids = {name: by_normalized[normalize_param_name(name)] for name in names}
            return layer_ids, max(layer_ids.values(), default=0)
        if self.name is not None:
            return self._module_list_layer_ids(names)
        inner = model_with_group_matcher(model)
        if inner is None:
            raise ValueError(
                f"LayerwiseLrDecayModifier: {type(model).__name__} has no group_matcher() method (timm models have "
                "one); say what a layer is with 'layers' (glob patterns, input side first) or 'name' (a module list)"
            )
        inner_names = [name for name, _ in inner.named_parameters()]
        matcher = type(inner).group_matcher(inner, coarse=False)  # type: ignore[attr-defined]
        by_inner_name = layer_ids_from_group_matcher(inner_names, matcher)
        # The wrapped model's parameters are the inner model's, under longer names: match them by identity.
        by_param = {id(param): by_inner_name[name] for name, param in inner.named_parameters()}
        layer_ids = {name: by_param[id(param)] for name, param in model.named_parameters()}
        return layer_ids, max(layer_ids.values(), default=0)

    def _module_list_layer_ids(self, names: list[str]) -> tuple[dict[str, int], int]:
        pattern = re.compile(re.escape(self.name or "") + r"\.(\d+)\.")
        found: dict[str, int | None] = {}
        for name in names:
            match = pattern.match(normalize_param_name(name))
            found[name] = int(match.group(1)) + 1 if match else None
        in_layers = [layer_id for layer_id in found.values() if layer_id is not None]
        if not in_layers:
            return {}, 0
        num_layers = self.num_layers if self.num_layers is not None else max(in_layers)
        if max(in_layers) > num_layers:
            raise ValueError(
                f"LayerwiseLrDecayModifier: num_layers={num_layers} but '{self.name}' has layer index "
                f"{max(in_layers) - 1}"
            )
        layer_ids: dict[str, int] = {}
        seen_layer = False
        for name, layer_id in found.items():
            seen_layer = seen_layer or layer_id is not None
            layer_ids[name] = layer_id if layer_id is not None else (num_layers + 1 if seen_layer else 0)
        return layer_ids, num_layers + 1

    def layer_scales(self, model: torch.nn.Module) -> dict[str, float]:
        """The lr scale of every parameter of ``model`` (by its ``named_parameters()`` name)."""
        layer_ids, layer_max = self._layer_ids(model)
        return {name: max(self.min_scale, self.decay ** (layer_max - layer_id)) for name, layer_id in layer_ids.items()}

    def get_properties(self, model: torch.nn.Module, name: str, param: torch.Tensor) -> dict[str, float]:
        """``{"lr_scale": scale}`` of the parameter's layer, or ``{}`` for parameters that keep the full lr."""
        if self._scales is None:
            self._scales = self.layer_scales(model)
        scale = self._scales.get(name, 1.0)
        return {} if scale == 1.0 else {"lr_scale": scale}

    def was_applied_successfully(self) -> bool:
        """Whether layers were found: every ``layers`` entry matched, or ``name`` holds at least one layer."""
        if self._scales is None:
            return False
        if self.layers is not None:
            return not self._unmatched_entries
        return bool(self._scales)

    def __str__(self) -> str:
        if self.layers is not None:
            spec = f"layers={self.layers}"
        elif self.name is not None:
            spec = f"name={self.name}"
        else:
            spec = "group_matcher"
        tail = f",num_layers={self.num_layers}" if self.name is not None else ""
        tail += f",min_scale={self.min_scale}" if self.min_scale else ""
        if self._unmatched_entries:
            tail += f",unmatched={self._unmatched_entries}"
        return f"{type(self).__name__}({spec},decay={self.decay}{tail})"
