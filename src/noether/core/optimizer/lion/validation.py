"""Checks of Lion's hyperparameters and gradients, shared by the optimizer class and the functional ``lion``.

Each raises before anything is changed, naming the field, the bad value and what is allowed.
"""

from __future__ import annotations

import itertools
import math
import operator
from collections.abc import Iterable, Sequence
from typing import Any, cast

import torch
from torch import Tensor

__all__: list[str] = []


class KernelChoiceError(ValueError, RuntimeError):
    """``foreach`` and ``fused`` both True.

    A ValueError like Lion's other bad hyperparameters, and the RuntimeError torch's optimizers raise for it.
    """


def _is_real_number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _check_lr(lr: object, where: str = "") -> None:
    """Raise ValueError unless ``lr`` is a finite number >= 0 or a 1-element floating tensor holding one."""
    if isinstance(lr, Tensor):
        if lr.numel() != 1 or not lr.is_floating_point():
            raise ValueError(
                f"Lion: invalid lr{where}: Tensor lr must be 1-element and floating point, "
                f"got shape {tuple(lr.shape)} and dtype {lr.dtype}"
            )
        if torch.compiler.is_compiling():
            return
        value = float(lr.detach().reshape(()).item())
    elif _is_real_number(lr):
        value = float(cast(float, lr))
    else:
        raise ValueError(f"Lion: invalid lr{where}: {lr!r}; expected a finite number >= 0 or a 1-element tensor")
    if not math.isfinite(value) or value < 0.0:
        raise ValueError(f"Lion: invalid lr{where}: {value}; lr must be finite and >= 0")


def _check_betas(betas: object, where: str = "") -> tuple[float, float]:
    """Return ``betas`` as two floats, or raise ValueError unless they are two numbers in [0, 1)."""
    if isinstance(betas, (str, bytes)) or not isinstance(betas, Sequence) or len(betas) != 2:
        raise ValueError(f"Lion: invalid betas{where}: {betas!r}; expected two numbers in [0, 1), e.g. (0.9, 0.99)")
    for index, beta in enumerate(betas):
        if not _is_real_number(beta) or not 0.0 <= float(beta) < 1.0:
            raise ValueError(f"Lion: invalid betas[{index}]{where}: {beta!r}; each beta must be a number in [0, 1)")
    return float(betas[0]), float(betas[1])


def _check_weight_decay(weight_decay: object, where: str = "") -> None:
    if not _is_real_number(weight_decay) or not math.isfinite(cast(float, weight_decay)) or weight_decay < 0:  # type: ignore[operator]
        raise ValueError(
            f"Lion: invalid weight_decay{where}: {weight_decay!r}; weight_decay must be a finite number >= 0"
        )


def _check_flag(name: str, value: object, where: str = "", allow_none: bool = False) -> None:
    if isinstance(value, bool) or (allow_none and value is None):
        return
    allowed = "True, False or None" if allow_none else "True or False"
    raise ValueError(f"Lion: invalid {name}{where}: {value!r}; expected {allowed}")


def _check_group_options(group: dict[str, Any], where: str = "") -> None:
    """Validate every hyperparameter of one parameter group (all before anything is changed)."""
    _check_lr(group["lr"], where)
    _check_betas(group["betas"], where)
    _check_weight_decay(group["weight_decay"], where)
    _check_flag("caution", group["caution"], where)
    _check_flag("maximize", group["maximize"], where)
    _check_flag("foreach", group["foreach"], where, allow_none=True)
    _check_flag("fused", group["fused"], where, allow_none=True)
    if group["foreach"] and group["fused"]:
        raise KernelChoiceError(f"Lion: foreach and fused cannot both be True{where}; choose one")


def _check_sparse(grads: Iterable[Tensor]) -> None:
    """Raise RuntimeError on the first gradient that is not strided (dense).

    Eagerly one C-level pass over a list in the common case; a traced step (``torch.compile``) takes the plain loop.
    """
    if (
        isinstance(grads, list)
        and not torch.compiler.is_compiling()
        and all(map(operator.is_, map(_LAYOUT, grads), itertools.repeat(torch.strided)))
    ):
        return
    for grad in grads:
        if grad.layout != torch.strided:
            raise RuntimeError(f"Lion does not support sparse gradients (got a gradient with layout {grad.layout})")


_LAYOUT = operator.attrgetter("layout")
