"""Shared matching logic of the modifiers that act on parameters selected by name or glob pattern."""

from __future__ import annotations

import abc

import torch

from noether.core.optimizer.param_group_modifiers.base import ParamGroupModifierBase, is_glob_pattern, name_matches
from noether.core.optimizer.param_names import normalize_param_name

__all__ = ["ByNameModifierBase"]


class ByNameModifierBase(ParamGroupModifierBase):
    """A modifier that sets fixed properties on the parameters whose name matches :attr:`name`.

    An exact name must match exactly one parameter (a second match raises :attr:`duplicate_match_error`); a glob
    pattern may match any number of parameters, at least one. Either way the modifier counts as applied only if
    something matched. A parameter matches by its name as ``named_parameters()`` gives it or by that name without
    the ``module.`` / ``_orig_mod.`` segments of DDP and ``torch.compile`` (as checkpoint keys are), so one config
    serves the plain and the wrapped model.
    """

    duplicate_match_error: type[Exception] = ValueError

    def __init__(self, name: str | None) -> None:
        if name is None:
            raise ValueError(f"{type(self).__name__} needs a 'name': the parameter name or glob pattern to act on")
        self.name: str = name
        self.param_was_found = False
        self.matched_names: list[str] = []

    @abc.abstractmethod
    def properties(self) -> dict[str, float]:
        """The properties given to every matching parameter."""

    def get_properties(self, model: torch.nn.Module, name: str, param: torch.Tensor) -> dict[str, float]:
        """``properties()`` if ``name`` matches :attr:`name`, else ``{}``."""
        if not (name_matches(self.name, name) or name_matches(self.name, normalize_param_name(name))):
            return {}
        if self.param_was_found and not is_glob_pattern(self.name):
            raise self.duplicate_match_error(f"found two parameters matching name '{self.name}'")
        self.param_was_found = True
        self.matched_names.append(name)
        return self.properties()

    def was_applied_successfully(self) -> bool:
        """Whether at least one parameter matched."""
        return self.param_was_found
