"""The numerics of Lion: the single-tensor reference kernel and the scalar helpers every kernel shares.

This docstring is the one statement of the update rule; the other kernels (``foreach_kernel``, ``cpu_kernel`` with
``lion.c``, ``compiled_kernel``) compute exactly this and say only how they lay it out in memory.

One step for a parameter ``p`` with gradient ``g`` and momentum ``m`` (``lr``, ``wd``, ``beta1``, ``beta2`` from the
parameter group)::

    g := -g                                   if maximize
    p := p * (1 - lr * wd)                    decoupled weight decay: scales p, never enters the direction
    u := sign(lerp(m, g, 1 - beta1))          = sign(beta1 * m + (1 - beta1) * g)
    if caution:
        c    := [u * g > 0]                  1 where u and g agree, else 0
        step := lr / max(count(c) / numel(p), 1e-3)   exact integer count, float64 ratio
        u    := u * c
    else:
        step := lr
    p := p - step * u                         computed as addcmul(p, u, step, value=-1)
    m := lerp(m, g, 1 - beta2)                = beta2 * m + (1 - beta2) * g

Details every kernel reproduces:

* Rounding. ``1 - lr * wd`` and the caution step are computed in float64 and rounded once to the parameter's dtype
  (16-bit floats compute in float32 and round after every operation where ATen's eager kernels round). As ``u`` is in
  {-1, 0, 1}, every product with it is exact, so all kernels give the same bits whatever the memory layout, block
  boundaries or vector width.
* Complex parameters are updated through their real views: real and imaginary parts are two independent coordinates
  (each gets its own sign), and ``numel`` in the caution mean counts both.
* NaN. ``sign`` of NaN is 0, so an element whose ``lerp(m, g, 1 - beta1)`` is NaN (a NaN gradient or momentum) gets
  no signed step, only the weight decay; its momentum becomes NaN and stays NaN. Under caution a NaN direction agrees
  with nothing (mask 0) and is not counted. A NaN parameter stays NaN. Nothing raises.
* A 0-size parameter has nothing to update; its caution mean divides by ``max(numel, 1)``.
"""

from __future__ import annotations

from typing import TypeAlias

import torch
from torch import Tensor

__all__: list[str] = []

LrT: TypeAlias = float | Tensor
TensorsT: TypeAlias = list[Tensor] | tuple[Tensor, ...]

_CAUTION_MIN_MEAN = 1e-3
"""Floor of the caution mask's mean, so a tensor where almost nothing agrees does not take a huge step."""

_PLAIN = (Tensor, torch.nn.Parameter)
"""The plain tensor types; anything else (DTensor, other subclasses) never shares a flat or foreach kernel call."""


def _is_plain(t: Tensor) -> bool:
    return type(t) in _PLAIN


def _decay_factor(lr64: Tensor, weight_decay: float) -> Tensor | float | None:
    """``1 - lr * wd`` in float64, or None when wd is 0.

    A Python float in eager mode, which spares a tensor conversion per parameter, and a tensor under tracing, so a
    changing tensor lr does not recompile. Both round the same way.
    """
    if weight_decay == 0.0:
        return None
    if torch.compiler.is_compiling():
        return 1.0 - lr64 * weight_decay
    return 1.0 - float(lr64) * weight_decay


def _lr_f64(lr: LrT) -> Tensor:
    """``lr`` as a 0-dim float64 CPU tensor: one code path for float and tensor lr, traceable without recompiles."""
    if isinstance(lr, Tensor):
        return lr.detach().reshape(()).to(device="cpu", dtype=torch.float64)
    return torch.tensor(lr, dtype=torch.float64)


def _caution_steps(counts: Tensor, numels: Tensor | int, lr64: Tensor) -> Tensor:
    """``lr / max(count / numel, 1e-3)`` in float64, elementwise; ``counts`` are exact integers (any dtype).

    The single formula behind every kernel's caution step. ``numel`` is floored at 1 so a 0-size tensor gets a finite
    step (it has nothing to update).
    """
    numels = max(numels, 1) if isinstance(numels, int) else numels.clamp_min(1)
    mean = counts.to(torch.float64) / numels
    return lr64.to(mean.device) / mean.clamp_min(_CAUTION_MIN_MEAN)


def _count(mask: Tensor) -> Tensor:
    """Number of ones in a 0/1 mask, exact for any size (a float64 sum of integers is exact below 2**53)."""
    return mask.sum(dtype=torch.float64)


def _real(t: Tensor) -> Tensor:
    return torch.view_as_real(t) if torch.is_complex(t) else t


def _single_tensor_lion(
    params: list[Tensor],
    grads: list[Tensor],
    exp_avgs: list[Tensor],
    *,
    beta1: float,
    beta2: float,
    lr: LrT,
    weight_decay: float,
    caution: bool,
    maximize: bool,
) -> None:
    """Reference kernel: one tensor at a time; defines the numerics every other path reproduces bit for bit."""
    if not params:
        return
    lr64 = _lr_f64(lr)
    decay = _decay_factor(lr64, weight_decay)
    for param, grad, exp_avg in zip(params, grads, exp_avgs, strict=True):
        p, g, m = _real(param), _real(torch.neg(grad) if maximize else grad), _real(exp_avg)
        if decay is not None:
            p.mul_(decay)
        u = torch.lerp(m, g, 1.0 - beta1).sign_()
        if caution:
            agree = torch.mul(u, g).gt_(0)
            u.mul_(agree)
            step = _caution_steps(_count(agree), u.numel(), lr64)
        else:
            step = lr64
        p.addcmul_(u, step.to(device=p.device, dtype=p.dtype), value=-1)
        m.lerp_(g, 1.0 - beta2)
