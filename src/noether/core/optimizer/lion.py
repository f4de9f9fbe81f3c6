"""The Lion optimizer (Chen et al., 2023, "Symbolic Discovery of Optimization Algorithms").

One step for a parameter ``p`` with gradient ``g`` and momentum ``m`` (``lr``, ``wd``, ``beta1``, ``beta2`` from the
parameter group)::

    g := -g                                   if maximize
    p := p * (1 - lr * wd)                    decoupled weight decay
    u := sign(lerp(m, g, 1 - beta1))          = sign(beta1 * m + (1 - beta1) * g)
    if caution:
        c    := [u * g > 0]                  1 where u and g agree, else 0 (a NaN direction is 0)
        step := lr / max(count(c) / numel(p), 1e-3)   exact integer count, float64 ratio
        u    := u * c
    else:
        step := lr
    p := p - step * u                         computed as addcmul(p, u, step, value=-1)
    m := lerp(m, g, 1 - beta2)                = beta2 * m + (1 - beta2) * g

Complex tensors are updated through their real views. ``step`` is rounded once to the parameter's dtype; as ``u`` is
in {-1, 0, 1} every product with it is exact, so each kernel below gives the same bits whatever the memory layout,
block boundaries or vector width.

Kernels:

* ``_single_tensor_lion``: a plain loop over the tensors; it defines the numerics.
* ``_multi_tensor_lion``: groups tensors by device, dtype and tensor kind (DTensor and other subclasses never share a
  foreach list with plain tensors; they go through the single-tensor kernel), then runs ``torch._foreach_*`` ops
  block by block, so all intermediates of a block stay in cache and no temporary is larger than one block. Large
  contiguous tensors are cut into flat blocks (with ``caution``, a first read-only pass counts the mask of the whole
  tensor).
* ``noether.core.optimizer.lion_fused._fused_lion`` for ``fused=True``.
* The default (``foreach`` and ``fused`` both None): on CPU, ``lion_fused._native_cpu_lion`` runs the C kernel of
  ``fused=True`` where it applies (plain contiguous float32/float64/bfloat16 tensors of one dtype, and a C compiler
  to build it once per machine); everything else takes ``_multi_tensor_lion``. Same bits either way.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable, Sequence
from typing import Any, TypeAlias, cast

import torch
from torch import Tensor
from torch._jit_internal import is_scripting
from torch.optim.optimizer import Optimizer, ParamsT

__all__ = ["Lion", "lion"]

LrT: TypeAlias = float | Tensor
TensorsT: TypeAlias = list[Tensor] | tuple[Tensor, ...]

_CAUTION_MIN_MEAN = 1e-3
"""Floor of the caution mask's mean, so a tensor where almost nothing agrees does not take a huge step."""

_CPU_BLOCK_NUMEL = 1 << 18
"""Elements per block on CPU: p, g, m and two temporaries of a block fit in the L2/L3 caches (measured best)."""

_DEVICE_BLOCK_NUMEL = 1 << 22
"""Elements per block on accelerators, whose foreach kernels already stream: it only bounds the temporaries."""


def _block_numel(device: torch.device) -> int:
    return _CPU_BLOCK_NUMEL if device.type == "cpu" else _DEVICE_BLOCK_NUMEL


# ---------------------------------------------------------------------------------------------------------------------
# validation


def _is_real_number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _check_lr(lr: object, where: str = "") -> None:
    """Raise ValueError unless ``lr`` is a finite number >= 0 or a 1-element floating tensor holding one."""
    if isinstance(lr, Tensor):
        if lr.numel() != 1 or not lr.is_floating_point():
            raise ValueError(
                f"Lion: invalid lr{where}: a tensor lr must be a 1-element floating-point tensor, "
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
        raise ValueError(f"Lion: foreach and fused cannot both be True{where}; choose one")


def _check_sparse(grads: Iterable[Tensor]) -> None:
    for grad in grads:
        if grad.layout != torch.strided:
            raise RuntimeError(f"Lion does not support sparse gradients (got a gradient with layout {grad.layout})")


# ---------------------------------------------------------------------------------------------------------------------
# scalars shared by all kernels (float64 on the CPU, so eager and torch.compile compute the same bits)


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


# ---------------------------------------------------------------------------------------------------------------------
# kernels


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


def _is_plain(t: Tensor) -> bool:
    return type(t) in (Tensor, torch.nn.Parameter)


def _storage_ptr(t: Tensor) -> int:
    """Address of ``t``'s storage; a DTensor owns none (asking raises), so that of its local shard."""
    to_local = getattr(t, "to_local", None)
    local = to_local() if callable(to_local) and not _is_plain(t) else t
    return int(local.untyped_storage().data_ptr())


def _group_for_foreach(
    params: list[Tensor], grads: list[Tensor], exp_avgs: list[Tensor]
) -> dict[tuple[torch.device, torch.dtype, type], tuple[list[Tensor], list[Tensor], list[Tensor]]]:
    """Group real views by device, dtype and tensor type; foreach ops refuse mixed devices, dtypes or subclasses."""
    groups: dict[tuple[torch.device, torch.dtype, type], tuple[list[Tensor], list[Tensor], list[Tensor]]] = defaultdict(
        lambda: ([], [], [])
    )
    for param, grad, exp_avg in zip(params, grads, exp_avgs, strict=True):
        p = _real(param)
        kind = Tensor if _is_plain(param) else type(param)
        ps, gs, ms = groups[(p.device, p.dtype, kind)]
        ps.append(p)
        gs.append(_real(grad))
        ms.append(_real(exp_avg))
    return groups


def _splittable(p: Tensor, g: Tensor, m: Tensor) -> bool:
    return p.is_contiguous() and g.is_contiguous() and m.is_contiguous() and _is_plain(p) and _is_plain(g)


def _multi_tensor_lion(
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
    block_numel: int | None = None,
) -> None:
    """Blocked foreach kernel: bit-identical to ``_single_tensor_lion``, about one pass over memory per tensor.

    Args:
        params: Parameters to update in place.
        grads: Their gradients (same order).
        exp_avgs: Their momentum buffers, updated in place.
        beta1: Interpolation weight of the update direction.
        beta2: Decay of the momentum.
        lr: Learning rate (a float or a 1-element tensor).
        weight_decay: Decoupled weight decay coefficient.
        caution: Mask out the update where its sign disagrees with the gradient.
        maximize: Maximize the objective instead of minimizing it.
        block_numel: Elements per block (default: chosen per device type). Exposed for tests.
    """
    if not params:
        return
    lr64 = _lr_f64(lr)
    decay = _decay_factor(lr64, weight_decay)
    for (device, dtype, kind), (ps, gs, ms) in _group_for_foreach(params, grads, exp_avgs).items():
        block = block_numel if block_numel is not None else _block_numel(device)
        if kind is not Tensor:
            # Subclasses (e.g. DTensor) are never cut into flat blocks nor mixed with plain tensors in a foreach list,
            # and their per-tensor scalars (caution counts) are subclass tensors too: the single-tensor kernel.
            _single_tensor_lion(
                ps,
                gs,
                ms,
                beta1=beta1,
                beta2=beta2,
                lr=lr,
                weight_decay=weight_decay,
                caution=caution,
                maximize=maximize,
            )
            continue
        step = None if caution else lr64.to(device=device, dtype=dtype)
        args = (lr64, decay, beta1, beta2, caution, maximize, step)
        scratch: list[Tensor] | None = None
        # Large contiguous tensors are cut into blocks; the others share blocks of foreach ops.
        small = _Chunker(block, args)
        for p, g, m in zip(ps, gs, ms, strict=True):
            n = p.numel()
            if n > block and _splittable(p, g, m):
                if scratch is None:
                    scratch = [torch.empty(block, device=device, dtype=dtype) for _ in range(3 if maximize else 2)]
                _split_tensor(p, g, m, scratch, block, lr64, step, decay, beta1, beta2, caution, maximize)
            else:
                small.add(p, g, m)
        small.flush()


class _Chunker:
    """Collects (param, grad, exp_avg) triples; runs ``_foreach_block`` before the next would overflow a block."""

    def __init__(self, block: int, args: tuple[Any, ...]) -> None:
        self.block, self.args = block, args
        self.ps: list[Tensor] = []
        self.gs: list[Tensor] = []
        self.ms: list[Tensor] = []
        self.numel = 0

    def add(self, p: Tensor, g: Tensor, m: Tensor) -> None:
        if self.numel + p.numel() > self.block:
            self.flush()
        self.ps.append(p)
        self.gs.append(g)
        self.ms.append(m)
        self.numel += p.numel()

    def flush(self) -> None:
        if self.ps:
            _foreach_block(self.ps, self.gs, self.ms, *self.args)
        self.ps, self.gs, self.ms, self.numel = [], [], [], 0


def _foreach_block(
    ps: list[Tensor],
    gs: list[Tensor],
    ms: list[Tensor],
    lr64: Tensor,
    decay: Tensor | float | None,
    beta1: float,
    beta2: float,
    caution: bool,
    maximize: bool,
    step: Tensor | None,
) -> None:
    """The Lion update of whole tensors with foreach ops (the caller keeps the list small enough to stay in cache)."""
    if maximize:
        gs = list(torch._foreach_neg(gs))
    if decay is not None:
        if isinstance(decay, float) and ps[0].dtype in (torch.float16, torch.bfloat16):
            # foreach ops round a Python scalar to half before multiplying; mul_ keeps it in float32 (opmath).
            decay = torch.tensor(decay, dtype=torch.float64)
        torch._foreach_mul_(ps, decay)
    us = torch._foreach_lerp(ms, gs, 1.0 - beta1)
    torch._foreach_sign_(us)
    if caution:
        agree = torch._foreach_mul(us, gs)
        torch._foreach_sign_(agree)
        torch._foreach_clamp_min_(agree, 0)
        counts = _mask_counts(agree)
        numels = torch.tensor([u.numel() for u in us], dtype=torch.float64, device=counts.device)
        steps = _caution_steps(counts, numels, lr64).to(ps[0].dtype)
        # Huge non-contiguous tensors (not cut into blocks) can exceed 2**24 elements: count those exactly.
        for i, u in enumerate(us):
            if u.numel() >= 1 << 24:
                steps[i] = _caution_steps(_count(agree[i]), u.numel(), lr64).to(u.dtype)
        _apply_masked(ps, us, agree, steps)
    else:
        assert step is not None
        torch._foreach_addcmul_(ps, us, [step] * len(ps), value=-1)
    torch._foreach_lerp_(ms, gs, 1.0 - beta2)


def _mask_counts(masks: TensorsT) -> Tensor:
    """Exact number of ones of each 0/1 mask with fewer than 2**24 elements, as a float64 vector.

    The squared 2-norm (the fast foreach norm on CPU) of a 0/1 mask is its count: the float32 sum of squares is exact
    below 2**24 and the sqrt/square round trip is off by far less than 0.5, so rounding restores the integer.
    """
    reduced = masks[0].dtype in (torch.float16, torch.bfloat16)
    norms = torch.stack(torch._foreach_norm(masks, 2, dtype=torch.float32 if reduced else None))
    return norms.to(torch.float64).square().round()


def _host_scalars(t: Tensor) -> bool:
    """Whether per-tensor steps may be read into Python numbers: on the CPU (no device sync) and not under tracing."""
    return t.device.type == "cpu" and not torch.compiler.is_compiling()


def _apply_masked(ps: list[Tensor], us: TensorsT, agree: TensorsT, steps: Tensor) -> None:
    """``p -= step * (u * agree)`` per tensor; ``steps`` holds each tensor's step, already in the params' dtype.

    Every product is exact (u and agree are in {-1, 0, 1}), so folding the step into addcmul's scalar (one op fewer,
    CPU only) gives the same bits as masking first and multiplying by the step tensor.
    """
    if _host_scalars(ps[0]):
        torch._foreach_addcmul_(ps, us, agree, [-x for x in steps.tolist()])
    else:
        torch._foreach_mul_(us, agree)
        torch._foreach_addcmul_(ps, us, list(steps.unbind()), value=-1)


def _split_tensor(
    p: Tensor,
    g: Tensor,
    m: Tensor,
    scratch: list[Tensor],
    block: int,
    lr64: Tensor,
    step: Tensor | None,
    decay: Tensor | float | None,
    beta1: float,
    beta2: float,
    caution: bool,
    maximize: bool,
) -> None:
    """The Lion update of one large contiguous tensor, block by block, with temporaries in preallocated scratch."""
    n = p.numel()
    pf, gf, mf = p.view(-1), g.view(-1), m.view(-1)
    u_buf, agree_buf = scratch[0], scratch[1]

    def direction(start: int, stop: int) -> tuple[Tensor, Tensor, Tensor | None]:
        gb = gf[start:stop]
        if maximize:
            gb = torch.neg(gb, out=scratch[2][: stop - start])
        u = torch.lerp(mf[start:stop], gb, 1.0 - beta1, out=u_buf[: stop - start]).sign_()
        agree = None
        if caution:
            agree = torch.mul(u, gb, out=agree_buf[: stop - start]).gt_(0)
        return gb, u, agree

    if caution:
        # First, read-only pass: the mask of the whole tensor sets its step.
        count = torch.zeros((), dtype=torch.float64, device=p.device)
        for start in range(0, n, block):
            _, _, agree = direction(start, min(start + block, n))
            # A block has < 2**24 elements, so a float32 sum of its 0/1 mask is exact; float64 adds them exactly.
            count += cast(Tensor, agree).sum(dtype=torch.float32)
        step = _caution_steps(count, n, lr64).to(p.dtype)
        step_value = float(step) if _host_scalars(p) else None
    assert step is not None
    starts = range(0, n, block)
    # After a counting pass, the update pass walks backwards: the blocks read last are still in the last-level cache.
    for start in reversed(starts) if caution else starts:
        stop = min(start + block, n)
        gb, u, agree = direction(start, stop)
        pb = pf[start:stop]
        if decay is not None:
            pb.mul_(decay)
        if agree is None:
            pb.addcmul_(u, step, value=-1)
        elif step_value is not None:
            pb.addcmul_(u, agree, value=-step_value)
        else:
            pb.addcmul_(u.mul_(agree), step, value=-1)
        mf[start:stop].lerp_(gb, 1.0 - beta2)


# ---------------------------------------------------------------------------------------------------------------------
# dispatcher


def _default_to_foreach() -> bool:
    """The blocked foreach kernel is the faster one for every workload measured (see docs/lion.md)."""
    return not is_scripting()


def lion(
    params: list[Tensor],
    grads: list[Tensor],
    exp_avgs: list[Tensor],
    maximize: bool = False,
    foreach: bool | None = None,
    *,
    beta1: float,
    beta2: float,
    lr: LrT,
    weight_decay: float,
    caution: bool,
    fused: bool | None = None,
) -> None:
    """Functional Lion: update ``params`` and ``exp_avgs`` in place (see the module docstring for the math).

    Args:
        params: Parameters to update.
        grads: Their gradients, dense, in the same order.
        exp_avgs: Their momentum buffers.
        maximize: Maximize the objective instead of minimizing it.
        foreach: True: blocked foreach kernel; False: single-tensor kernel; None (with ``fused`` None): on CPU the C
            kernel where it applies and builds, else the blocked foreach kernel.
        beta1: Interpolation weight of the update direction, in [0, 1).
        beta2: Decay of the momentum, in [0, 1).
        lr: Learning rate, a finite number >= 0 or a 1-element tensor.
        weight_decay: Decoupled weight decay coefficient, finite and >= 0.
        caution: Mask out the update where its sign disagrees with the gradient, rescaled by the mask's mean.
        fused: True: the fused kernel of ``noether.core.optimizer.lion_fused``; False: never a compiled kernel.
            Exclusive with ``foreach``.

    Raises:
        ValueError: On a bad hyperparameter, mismatched list lengths, or ``foreach`` and ``fused`` both True.
        RuntimeError: On a sparse gradient, or ``foreach=True`` under TorchScript.
    """
    if not len(params) == len(grads) == len(exp_avgs):
        raise ValueError(
            f"lion: params, grads and exp_avgs must have the same length, got {len(params)}, {len(grads)} and "
            f"{len(exp_avgs)}"
        )
    if fused and foreach:
        raise ValueError("lion: foreach and fused cannot both be True; choose one")
    if not torch.compiler.is_compiling():
        _check_lr(lr)
        _check_betas((beta1, beta2))
        _check_weight_decay(weight_decay)
    _check_sparse(grads)
    _dispatch(
        params,
        grads,
        exp_avgs,
        maximize=maximize,
        foreach=foreach,
        fused=fused,
        beta1=beta1,
        beta2=beta2,
        lr=lr,
        weight_decay=weight_decay,
        caution=caution,
    )


def _dispatch(
    params: list[Tensor],
    grads: list[Tensor],
    exp_avgs: list[Tensor],
    *,
    maximize: bool,
    foreach: bool | None,
    fused: bool | None,
    beta1: float,
    beta2: float,
    lr: LrT,
    weight_decay: float,
    caution: bool,
) -> None:
    """Run the kernel ``fused`` / ``foreach`` select, on inputs the caller has already validated."""
    hyper: dict[str, Any] = {
        "beta1": beta1,
        "beta2": beta2,
        "lr": lr,
        "weight_decay": weight_decay,
        "caution": caution,
        "maximize": maximize,
    }
    if fused:
        from noether.core.optimizer.lion_fused import _fused_lion  # type: ignore[import-not-found,unused-ignore]

        _fused_lion(params, grads, exp_avgs, **hyper)
        return
    if foreach is None and fused is None and not torch.compiler.is_compiling() and not is_scripting():
        from noether.core.optimizer.lion_fused import _native_cpu_lion  # type: ignore[import-not-found,unused-ignore]

        if _native_cpu_lion(params, grads, exp_avgs, hyper):
            return
    if foreach is None:
        foreach = _default_to_foreach()
    if foreach and is_scripting():
        raise RuntimeError("lion: torch.jit.script does not support foreach optimizers; pass foreach=False")
    kernel = _multi_tensor_lion if foreach else _single_tensor_lion
    kernel(params, grads, exp_avgs, **hyper)


# ---------------------------------------------------------------------------------------------------------------------
# optimizer


class Lion(Optimizer):
    """Implements Lion algorithm (sign of an interpolated momentum, decoupled weight decay, optional caution).

    State per parameter: ``exp_avg`` only (no step counter). Every hyperparameter is read from the group at every
    step, so schedules take effect immediately. See ``docs/lion.md``.
    """

    def __init__(
        self,
        params: ParamsT,
        lr: LrT,
        betas: tuple[float, float] = (0.9, 0.99),
        weight_decay: float = 0.0,
        caution: bool = False,
        maximize: bool = False,
        foreach: bool | None = None,
        *,
        fused: bool | None = None,
    ) -> None:
        """Initialize the hyperparameters.

        Args:
            params: Iterable of parameters to optimize or dicts defining parameter groups.
            lr: Learning rate: a finite number >= 0, or a 1-element tensor (changing its value never makes
                ``torch.compile`` recompile the step).
            betas: Coefficients used for the update direction and for the running average of the gradient.
            weight_decay: Decoupled weight decay coefficient, finite and >= 0.
            caution: Apply caution: zero the update where its sign disagrees with the gradient.
            maximize: Maximize the objective instead of minimizing it.
            foreach: True: blocked foreach kernel; False: single-tensor kernel; None (with ``fused`` None): on CPU
                the C kernel of ``fused=True`` where it applies and builds (once per machine), else the blocked foreach
                kernel; same bits either way (see ``docs/lion.md``).
            fused: True: the fused kernel (``noether.core.optimizer.lion_fused``); False: never a compiled kernel.
                Exclusive with ``foreach``.

        Raises:
            ValueError: On any invalid hyperparameter or integer parameter, naming it.
        """
        defaults = {
            "lr": lr,
            "betas": betas,
            "weight_decay": weight_decay,
            "caution": caution,
            "maximize": maximize,
            "foreach": foreach,
            "fused": fused,
        }
        _check_group_options(defaults)
        super().__init__(params, defaults)

    def add_param_group(self, param_group: dict[str, Any]) -> None:
        """Validate the group (its hyperparameters and parameter dtypes) before adding it; see the base class."""
        params = param_group["params"]
        if isinstance(params, Tensor):
            params = [params]
        elif isinstance(params, set):
            raise TypeError("Lion: parameter groups must be ordered sequences, not sets")
        else:
            params = list(params)
        where = f" (param group {len(self.param_groups)})"
        options = {**self.defaults, **{k: v for k, v in param_group.items() if k != "params"}}
        _check_group_options(options, where)
        for index, entry in enumerate(params):
            # torch also accepts (name, tensor) pairs.
            p = entry[1] if isinstance(entry, tuple) and len(entry) == 2 else entry
            if isinstance(p, Tensor) and not (p.is_floating_point() or p.is_complex()):
                raise ValueError(
                    f"Lion: invalid params{where}: parameter {index} has dtype {p.dtype}; "
                    "only floating-point and complex parameters can be optimized"
                )
        super().add_param_group({**param_group, "params": params})

    def __setstate__(self, state: dict[str, Any]) -> None:
        super().__setstate__(state)
        for group in self.param_groups:
            group.setdefault("caution", False)
            group.setdefault("maximize", False)
            group.setdefault("foreach", None)
            group.setdefault("fused", None)

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Load a state dict; checks ``exp_avg`` shapes first and never aliases the given dict's tensors."""
        saved_groups = state_dict["param_groups"]
        if len(saved_groups) == len(self.param_groups):
            saved_ids = [i for g in saved_groups for i in g["params"]]
            params = [p for g in self.param_groups for p in g["params"]]
            id_to_param = dict(zip(saved_ids, params, strict=False))
            for key, value in state_dict["state"].items():
                exp_avg = value.get("exp_avg") if isinstance(value, dict) else None
                param = id_to_param.get(key)
                if isinstance(exp_avg, Tensor) and param is not None and exp_avg.shape != param.shape:
                    raise ValueError(
                        f"Lion: cannot load state of parameter {key}: exp_avg has shape {tuple(exp_avg.shape)} "
                        f"but the parameter has shape {tuple(param.shape)}"
                    )
        given = {
            _storage_ptr(t)
            for value in state_dict["state"].values()
            if isinstance(value, dict)
            for t in value.values()
            if isinstance(t, Tensor)
        }
        super().load_state_dict(state_dict)
        for param_state in self.state.values():
            for key, value in param_state.items():
                if isinstance(value, Tensor) and (value.numel() == 0 or _storage_ptr(value) in given):
                    param_state[key] = value.clone(memory_format=torch.preserve_format)

    def _init_group(
        self, group: dict[str, Any], params: list[Tensor], grads: list[Tensor], exp_avgs: list[Tensor]
    ) -> None:
        for p in group["params"]:
            if p.grad is None:
                continue
            state = self.state[p]
            if len(state) == 0:
                state["exp_avg"] = torch.zeros_like(p, memory_format=torch.preserve_format)
            params.append(p)
            grads.append(p.grad)
            exp_avgs.append(state["exp_avg"])

    @torch.no_grad()
    def step(self, closure: Any = None) -> Any:
        """Performs a single optimization step.

        Args:
            closure: A closure that reevaluates the model and returns the loss.

        Returns:
            The loss returned by ``closure``, or None.

        Raises:
            RuntimeError: On a sparse gradient (before any parameter or state changes).
            ValueError: On a hyperparameter made invalid since construction (e.g. by a schedule).
        """
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        # Validate everything first, so an error leaves params and state untouched.
        for index, group in enumerate(self.param_groups):
            _check_group_options(group, f" (param group {index})")
            _check_sparse(p.grad for p in group["params"] if p.grad is not None)
        for group in self.param_groups:
            params: list[Tensor] = []
            grads: list[Tensor] = []
            exp_avgs: list[Tensor] = []
            self._init_group(group, params, grads, exp_avgs)
            beta1, beta2 = group["betas"]
            # Validated above for every group at once; the functional lion() would check it all again.
            _dispatch(
                params,
                grads,
                exp_avgs,
                maximize=group["maximize"],
                foreach=group["foreach"],
                beta1=beta1,
                beta2=beta2,
                lr=group["lr"],
                weight_decay=group["weight_decay"],
                caution=group["caution"],
                fused=group["fused"],
            )
        return loss
