"""Building torch param groups from weight-decay flags and param-group modifiers.

Every parameter first gets a property dict (``weight_decay``, ``lr_scale``, ...); parameters with equal
properties then share one group, whose name is rendered from its properties byte-identically to the original
framework (the names are metric keys).
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Iterable, Sequence
from typing import Any

import torch

from noether.core.optimizer.param_group_modifiers.base import ParamGroupModifierBase, name_matches
from noether.core.optimizer.param_names import normalize_param_name, normalized_or_raw_names
from noether.core.utils.bidict import Bidict
from noether.core.utils.logging.formatting import float_to_scientific_notation

__all__ = ["build_param_groups", "distinct_group_names", "group_name", "no_weight_decay_names", "parameter_properties"]

_RESERVED_KEYS = ("params", "name")
logger = logging.getLogger(__name__)


def _format_value(key: str, value: Any, precision: int = 1) -> str:
    if isinstance(value, float):
        return "0" if value == 0.0 else float_to_scientific_notation(value, max_precision=precision, remove_plus=True)
    if isinstance(value, int):  # bool included: renders as True/False
        return str(value)
    raise NotImplementedError(
        f"cannot render param-group property {key}={value!r} ({type(value).__name__}) into a group name; "
        "modifiers may only set float, int or bool properties"
    )


def group_name(properties: dict[str, Any], precision: int = 1) -> str:
    """The group name: ``key=value`` for each property except ``params``, in order, joined by ``&``.

    Floats render as ``0`` when exactly 0.0, else in scientific notation with ``precision`` significant digits (1 by
    default: ``lr_scale=1.0e-01``, ``weight_decay=1e-05``); ints and bools with ``str``. A group without properties
    is ``default``.
    """
    parts = [f"{key}={_format_value(key, value, precision)}" for key, value in properties.items() if key != "params"]
    return "&".join(parts) if parts else "default"


def distinct_group_names(groups: Sequence[dict[str, Any]]) -> list[str]:
    """The names of ``groups``: :func:`group_name`, with more digits only for groups whose names would collide.

    Names are metric keys: two groups that differ only beyond the first digit (layer-wise decay 0.98 over many
    layers) would share one. Colliding names are rendered again with one more digit until they differ; every name
    that did not collide stays exactly as :func:`group_name` renders it.
    """
    names = [group_name(group) for group in groups]
    precision = 1
    while len(set(names)) < len(names) and precision < 17:
        precision += 1
        counts = Counter(names)
        names = [
            group_name(group, precision) if counts[name] > 1 else name
            for group, name in zip(groups, names, strict=True)
        ]
    return names


def no_weight_decay_names(model: torch.nn.Module) -> list[str]:
    """The names returned by the model's ``no_weight_decay()`` method (timm's convention), or ``[]``.

    The method is looked up on the model and, for DDP/DataParallel or ``torch.compile`` wrappers, on the wrapped
    module. Returned names are relative to the module that defines the method, and may be glob patterns.
    """
    module: Any = model
    while module is not None:
        method = getattr(type(module), "no_weight_decay", None)
        if callable(method):
            names = module.no_weight_decay()
            return sorted(str(name) for name in names)
        module = getattr(module, "module", None) or getattr(module, "_orig_mod", None)
    return []


def parameter_properties(
    model: torch.nn.Module,
    name: str,
    param: torch.Tensor,
    modifiers: Sequence[ParamGroupModifierBase],
    *,
    exclude_bias: bool,
    exclude_norm: bool,
    no_weight_decay: Iterable[str] = (),
) -> dict[str, Any]:
    """The property dict of one parameter (without ``name``/``params``).

    Flag-derived values come first (bias, normalization and ``no_weight_decay()`` exclusions set
    ``weight_decay=0.0``); modifier values are merged among themselves (``lr_scale`` multiplies, other keys may be
    set once) and then override the flag-derived values of the same key.

    Raises:
        ValueError: Two modifiers set the same key (other than ``lr_scale``), or a modifier sets ``params``/``name``.
    """
    properties: dict[str, Any] = {}
    last_part = name.rsplit(".", 1)[-1]
    # A norm layer's bias counts as a bias: with exclude_bias off it keeps weight decay although it is 1-D.
    if (
        (last_part == "bias" and exclude_bias)
        or (param.ndim <= 1 and exclude_norm and last_part != "bias")
        or any(name_matches(pattern, normalize_param_name(name)) for pattern in no_weight_decay)
    ):
        properties["weight_decay"] = 0.0
    from_modifiers: dict[str, Any] = {}
    for modifier in modifiers:
        for key, value in modifier.get_properties(model, name, param).items():
            if key == "lr_scale" and key in from_modifiers:
                from_modifiers[key] *= value
            elif key in from_modifiers:
                raise ValueError(
                    f"parameter '{name}': property '{key}' is already in {from_modifiers} when {modifier} sets it "
                    f"to {value!r}; only lr_scale may be set by several modifiers (the scales multiply)"
                )
            else:
                from_modifiers[key] = value
    for key in _RESERVED_KEYS:
        if key in from_modifiers:
            raise ValueError(f"parameter '{name}': a modifier set the reserved key '{key}' ({from_modifiers})")
    properties.update(from_modifiers)
    return properties


def build_param_groups(
    model: torch.nn.Module,
    modifiers: Sequence[ParamGroupModifierBase],
    *,
    exclude_bias: bool,
    exclude_norm: bool,
) -> tuple[list[dict[str, Any]], Bidict[int, str]]:
    """Build the merged, named param groups of ``model`` and the index -> name map of their parameters.

    Parameters with equal properties (order-insensitive) share a group, placed where its first member appears;
    within a group parameters keep ``named_parameters()`` order. Indices run over groups and their parameters in
    order, as torch numbers them in ``state_dict()``. Frozen parameters are included, as in the original.

    Raises:
        ValueError: A property conflict (see :func:`parameter_properties`), or a modifier that matched nothing.
    """
    no_wd = no_weight_decay_names(model)
    groups: list[dict[str, Any]] = []
    group_names: list[list[str]] = []
    index_of_properties: dict[frozenset[tuple[str, Any]], int] = {}
    for name, param in model.named_parameters():
        properties = parameter_properties(
            model, name, param, modifiers, exclude_bias=exclude_bias, exclude_norm=exclude_norm, no_weight_decay=no_wd
        )
        key = frozenset(properties.items())
        index = index_of_properties.get(key)
        if index is None:
            index_of_properties[key] = len(groups)
            groups.append({**properties, "params": [param]})
            group_names.append([name])
        else:
            groups[index]["params"].append(param)
            group_names[index].append(name)
    for modifier in modifiers:
        if not modifier.was_applied_successfully():
            raise ValueError(f"{modifier} was not applied: it matched no parameter of {type(model).__name__}")
    if no_wd:
        stripped = [normalize_param_name(name) for name, _ in model.named_parameters()]
        unmatched = [pattern for pattern in no_wd if not any(name_matches(pattern, name) for name in stripped)]
        if unmatched:
            # Info, not a warning: models list names for all their variants (every timm ViT names dist_token and
            # reg_token, which most variants lack), so an unmatched name is normal and needs no action.
            logger.info("no_weight_decay() names %s match no parameter of %s", unmatched, type(model).__name__)
    named_groups = [{**group, "name": name} for group, name in zip(groups, distinct_group_names(groups), strict=True)]
    # Saved without the prefixes DDP and torch.compile add, so checkpoints move between wrapped and plain models.
    raw_names = [name for names in group_names for name in names]
    param_idx_to_name: Bidict[int, str] = Bidict(normalized_or_raw_names(dict(enumerate(raw_names))))
    return named_groups, param_idx_to_name
