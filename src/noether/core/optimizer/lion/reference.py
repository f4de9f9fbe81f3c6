"""The numerics of Lion: the single-tensor reference kernel and the scalar helpers every kernel shares.

This docstring is the one statement of the update rule; the other kernels (``foreach_kernel``, ``cpu_kernel`` with
``lion.c``, ``compiled_kernel``) compute exactly this and say only how they lay it out in memory.

One step for a parameter ``p`` with gradient ``g``, momentum ``m`` and, with Kahan summation, compensation ``c``
(``lr``, ``wd``, ``beta1``, ``beta2`` from the parameter group). Everything runs in the compute dtype ``C``: float64 if
``p`` or ``m`` is float64, else float32 (16-bit values are widened exactly); only the stored values are rounded, each
once, to their own dtype (``round_p`` to the parameter's, ``round_m`` to the momentum's)::

    g := -g                                   if maximize
    x := p + c                                in C; c := 0 without Kahan summation
    x := x * (1 - lr * wd)                    decoupled weight decay: scales p, never enters the direction
    u := sign(lerp(m, g, 1 - beta1))          = sign(beta1 * m + (1 - beta1) * g)
    if caution:
        a    := [u * g > 0]                  1 where u and g agree, else 0
        step := lr / max(count(a) / numel(p), 1e-3)   exact integer count, float64 ratio
        u    := u * a
    else:
        step := lr
    x := x - step * u                         computed as addcmul(x, u, step, value=-1)
    p := round_p(x)
    c := round_p(x - p)                       with Kahan summation: what rounding p lost, carried to the next step
    m := round_m(lerp(m, g, 1 - beta2))       = beta2 * m + (1 - beta2) * g

Details every kernel reproduces:

* Rounding. ``1 - lr * wd`` and the step (``lr``, or the caution step) are computed in float64 and rounded once to
  ``C``; ``lerp`` is ATen's (``fma(w, g - m, m)`` for ``|w| < 0.5``, else ``fma(-(g - m), 1 - w, g)``). As ``u`` is in
  {-1, 0, 1}, every product with it is exact, so all kernels give the same bits whatever the memory layout, block
  boundaries or vector width. For float32 and float64 with a momentum of the same dtype every rounding is the one
  of the dtype itself. Low-precision values (bfloat16, float16 parameters or momentum) are rounded once per stored
  value; the original framework rounded after every operation (the decayed weight, the interpolated direction),
  which is slower and loses more.
* Kahan summation (``kahan_sum``, on by default for bfloat16 and float16 parameters): ``c`` lives in the optimizer
  state in the parameter's dtype. ``x - p`` is exact in ``C`` (``p`` is ``x`` rounded), and ``|c|`` is at most half a
  unit in the last place of ``p``, so ``p + c`` carries the part of every update that rounding ``p`` dropped: a
  bfloat16 weight at 1.0 moves by ``lr`` per step even where ``lr`` is below half its ulp.
* Momentum dtype (``momentum_dtype``): ``m`` may be stored in another floating dtype than ``p`` (e.g. bfloat16 for
  float32 parameters); it is widened to ``C`` and rounded once when stored.
* Complex parameters are updated through their real views: real and imaginary parts are two independent coordinates
  (each gets its own sign), and ``numel`` in the caution mean counts both. Their momentum has their dtype and they
  take no compensation.
* NaN. ``sign`` of NaN is 0, so an element whose ``lerp(m, g, 1 - beta1)`` is NaN (a NaN gradient or momentum) gets
  no signed step, only the weight decay; its momentum becomes NaN and stays NaN. Under caution a NaN direction agrees
  with nothing (mask 0) and is not counted. A NaN parameter stays NaN. Nothing raises.
* A 0-size parameter has nothing to update; its caution mean divides by ``max(numel, 1)``.
"""

from __future__ import annotations

from typing import Any, TypeAlias

import torch
from torch import Tensor

__all__: list[str] = []

LrT: TypeAlias = float | Tensor
TensorsT: TypeAlias = list[Tensor] | tuple[Tensor, ...]

_CAUTION_MIN_MEAN = 1e-3
"""Floor of the caution mask's mean, so a tensor where almost nothing agrees does not take a huge step."""

_PLAIN = (Tensor, torch.nn.Parameter)
"""The plain tensor types; anything else (DTensor, other subclasses) never shares a flat or foreach kernel call."""


def _hyperparameters(
    *, beta1: float, beta2: float, lr: LrT, weight_decay: float, caution: bool, maximize: bool
) -> dict[str, Any]:
    """The keyword arguments every kernel takes besides its tensors, as one dict that is passed on as ``**hyper``."""
    return {
        "beta1": beta1,
        "beta2": beta2,
        "lr": lr,
        "weight_decay": weight_decay,
        "caution": caution,
        "maximize": maximize,
    }


def _group_hyperparameters(group: dict[str, Any]) -> dict[str, Any]:
    """:func:`_hyperparameters` of a parameter group of ``Lion`` (``betas`` split into ``beta1``, ``beta2``)."""
    beta1, beta2 = group["betas"]
    return _hyperparameters(
        beta1=beta1,
        beta2=beta2,
        lr=group["lr"],
        weight_decay=group["weight_decay"],
        caution=group["caution"],
        maximize=group["maximize"],
    )


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


def _compute_dtype(param_dtype: torch.dtype, momentum_dtype: torch.dtype) -> torch.dtype:
    """The dtype one step computes in (real dtypes): float64 if either is float64, else float32."""
    return torch.float64 if torch.float64 in (param_dtype, momentum_dtype) else torch.float32


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
    kahan_comps: list[Tensor] | None = None,
) -> None:
    """Reference kernel: one tensor at a time; defines the numerics every other path reproduces bit for bit.

    ``kahan_comps`` (one compensation buffer per parameter, in its dtype) turns on Kahan summation; None: off.
    """
    if not params:
        return
    lr64 = _lr_f64(lr)
    decay = _decay_factor(lr64, weight_decay)
    comps: list[Tensor | None] = list(kahan_comps) if kahan_comps is not None else [None] * len(params)
    for param, grad, exp_avg, comp in zip(params, grads, exp_avgs, comps, strict=True):
        p, g, m = _real(param), _real(torch.neg(grad) if maximize else grad), _real(exp_avg)
        compute = _compute_dtype(p.dtype, m.dtype)
        # In place where nothing needs widening (float32/float64 without compensation); else on a widened copy.
        widened = comp is not None or p.dtype is not compute
        x = p.to(compute, copy=True) if widened else p
        if comp is not None:
            comp = _real(comp)
            x.add_(comp)
        if decay is not None:
            x.mul_(decay)
        g_c, m_c = g.to(compute), m.to(compute)
        u = torch.lerp(m_c, g_c, 1.0 - beta1).sign_()
        if caution:
            agree = torch.mul(u, g_c).gt_(0)
            u.mul_(agree)
            step = _caution_steps(_count(agree), u.numel(), lr64)
        else:
            step = lr64
        x.addcmul_(u, step.to(device=x.device, dtype=compute), value=-1)
        if widened:
            p.copy_(x)
            if comp is not None:
                comp.copy_(x.sub_(p))
        if m.dtype is compute:
            m.lerp_(g_c, 1.0 - beta2)
        else:
            m.copy_(m_c.lerp_(g_c, 1.0 - beta2))
