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


_MOMENTUM_DTYPES = {
    "float16": torch.float16,
    "bfloat16": torch.bfloat16,
    "float32": torch.float32,
    "float64": torch.float64,
}
"""The dtypes ``exp_avg`` may be kept in (``momentum_dtype``), by name."""

_LOW_PRECISION = (torch.float16, torch.bfloat16)
"""Parameter dtypes whose updates Kahan summation compensates (on by default for them)."""


def _momentum_dtype(value: object, where: str = "") -> torch.dtype | None:
    """``momentum_dtype`` as a torch dtype (a name like ``"bfloat16"`` or ``"torch.bfloat16"`` is accepted), or None.

    Raises:
        ValueError: Anything but None, a real floating dtype or its name.
    """
    if value is None:
        return None
    if isinstance(value, str):
        dtype = _MOMENTUM_DTYPES.get(value.removeprefix("torch."))
        if dtype is not None:
            return dtype
    elif isinstance(value, torch.dtype) and value in _MOMENTUM_DTYPES.values():
        return value
    raise ValueError(
        f"Lion: invalid momentum_dtype{where}: {value!r}; expected None (the parameter's dtype) or one of "
        f"{', '.join(_MOMENTUM_DTYPES)} (a torch.dtype or its name)"
    )


_DTYPE_NAMES = {dtype: name for name, dtype in _MOMENTUM_DTYPES.items()}


def _momentum_dtype_name(value: object, where: str = "") -> str | None:
    """``momentum_dtype`` as it is kept in a parameter group: its name (``"bfloat16"``), or None.

    A name rather than a ``torch.dtype``: distributed checkpointing (``get_optimizer_state_dict``) refuses dtype
    objects in the param groups it flattens.
    """
    dtype = _momentum_dtype(value, where)
    return None if dtype is None else _DTYPE_NAMES[dtype]


def _check_param_dtype(p: Tensor, index: int, group: dict[str, Any], where: str = "") -> None:
    """Raise ValueError if the group's ``kahan_sum`` or ``momentum_dtype`` cannot apply to parameter ``p``."""
    if group.get("kahan_sum") is True and p.dtype not in _LOW_PRECISION:
        raise ValueError(
            f"Lion: invalid kahan_sum{where}: True, but parameter {index} has dtype {p.dtype}; Kahan summation "
            "compensates bfloat16 and float16 parameters only (pass None to turn it on exactly for those)"
        )
    if group.get("momentum_dtype") is not None and p.is_complex():
        raise ValueError(
            f"Lion: invalid momentum_dtype{where}: {group['momentum_dtype']}, but parameter {index} is complex "
            f"({p.dtype}); complex parameters keep their momentum in their own dtype: put them in a parameter group "
            "with momentum_dtype=None"
        )


def _check_group_options(group: dict[str, Any], where: str = "") -> None:
    """Validate every hyperparameter of one parameter group (all before anything is changed)."""
    _check_lr(group["lr"], where)
    _check_betas(group["betas"], where)
    _check_weight_decay(group["weight_decay"], where)
    _check_flag("caution", group["caution"], where)
    _check_flag("maximize", group["maximize"], where)
    _check_flag("foreach", group["foreach"], where, allow_none=True)
    _check_flag("fused", group["fused"], where, allow_none=True)
    _check_flag("kahan_sum", group.get("kahan_sum"), where, allow_none=True)
    _momentum_dtype(group.get("momentum_dtype"), where)
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
