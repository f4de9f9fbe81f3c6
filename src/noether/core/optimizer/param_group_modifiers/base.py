"""The interface every param-group modifier implements."""

from __future__ import annotations

import abc
import fnmatch

import torch

__all__ = ["ParamGroupModifierBase", "is_glob_pattern", "name_matches"]

_GLOB_CHARACTERS = frozenset("*?[")


def is_glob_pattern(pattern: str) -> bool:
    """Whether ``pattern`` uses glob syntax (``*``, ``?``, ``[...]``); parameter names never contain these."""
    return any(character in _GLOB_CHARACTERS for character in pattern)


def name_matches(pattern: str, name: str) -> bool:
    """Whether the parameter ``name`` matches ``pattern``: exact equality, or a case-sensitive glob match.

    ``*`` matches any run of characters including dots, so ``blocks.*.bias`` matches ``blocks.0.attn.bias``.
    """
    if is_glob_pattern(pattern):
        return fnmatch.fnmatchcase(name, pattern)
    return name == pattern


class ParamGroupModifierBase(abc.ABC):
    """Changes the properties (``lr_scale``, ``weight_decay``, ...) of individual parameters' optimizer groups.

    The :class:`~noether.core.optimizer.OptimizerWrapper` builds one instance per entry of
    ``OptimizerConfig.param_group_modifiers_config`` by calling the class with that config as its only positional
    argument, then calls :meth:`get_properties` once for every ``model.named_parameters()`` item, in order, and
    finally :meth:`was_applied_successfully`. Parameters with equal properties share one torch param group.

    Returned keys merge as follows: ``lr_scale`` values multiply; any other key set by two modifiers for one
    parameter is an error; an explicit modifier value overrides the bias/normalization weight-decay flags.

    Modifiers are stateful (they remember what they matched), so use each instance for one wrapper only.
    """

    @abc.abstractmethod
    def get_properties(self, model: torch.nn.Module, name: str, param: torch.Tensor) -> dict[str, float]:
        """The group properties this modifier sets for one parameter (``{}`` for none).

        Args:
            model: The model the parameter belongs to; read it for model-level facts such as the number of layers.
            name: The parameter's name as in ``model.named_parameters()``.
            param: The parameter tensor.
        """

    @abc.abstractmethod
    def was_applied_successfully(self) -> bool:
        """Whether the modifier found what it was configured for; ``False`` makes the wrapper raise."""

    @abc.abstractmethod
    def __str__(self) -> str: ...

    def __repr__(self) -> str:
        return str(self)
