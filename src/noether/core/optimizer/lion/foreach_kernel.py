"""The blocked foreach kernel: the update rule of :mod:`.reference` with ``torch._foreach_*`` ops, block by block.

Tensors are grouped by device, dtype and tensor kind (DTensor and other subclasses never share a foreach list with
plain tensors; they go through the single-tensor kernel), then updated one block at a time, so all intermediates of a
block stay in cache and no temporary is larger than one block. Large contiguous tensors are cut into flat blocks (with
``caution``, a first read-only pass counts the mask of the whole tensor, as the step depends on it). Bit-identical to
:func:`.reference._single_tensor_lion`.

Tensors that compute in their own dtype (float32, float64 with a momentum of that dtype, no compensation) are updated
in place with foreach ops. The others (16-bit parameters or momentum, Kahan compensation) are widened block by block
into flat scratch buffers of the compute dtype (``torch.cat`` converts while it copies), updated there with plain
elementwise ops, and written back with one rounding per stored value (``torch._foreach_copy_``), as the reference
computes them.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any, cast

import torch
from torch import Tensor

from noether.core.optimizer.lion.reference import (
    LrT,
    TensorsT,
    _caution_steps,
    _compute_dtype,
    _count,
    _decay_factor,
    _hyperparameters,
    _is_plain,
    _lr_f64,
    _real,
    _single_tensor_lion,
)

__all__: list[str] = []

_CPU_BLOCK_NUMEL = 1 << 18
"""Elements per block on CPU: p, g, m and two temporaries of a block fit in the L2/L3 caches (measured best)."""

_DEVICE_BLOCK_NUMEL = 1 << 22
"""Elements per block on accelerators, whose foreach kernels already stream: it only bounds the temporaries."""


def _block_numel(device: torch.device) -> int:
    return _CPU_BLOCK_NUMEL if device.type == "cpu" else _DEVICE_BLOCK_NUMEL


_GroupKey = tuple[torch.device, torch.dtype, torch.dtype, type]
_Lists = tuple[list[Tensor], list[Tensor], list[Tensor], list[Tensor]]


def _group_for_foreach(
    params: list[Tensor], grads: list[Tensor], exp_avgs: list[Tensor], comps: list[Tensor] | None
) -> dict[_GroupKey, _Lists]:
    """Group real views by device, param and momentum dtype and tensor type (foreach ops refuse mixtures)."""
    groups: dict[_GroupKey, _Lists] = defaultdict(lambda: ([], [], [], []))
    for i, (param, grad, exp_avg) in enumerate(zip(params, grads, exp_avgs, strict=True)):
        p, m = _real(param), _real(exp_avg)
        kind = Tensor if _is_plain(param) else type(param)
        ps, gs, ms, cs = groups[(p.device, p.dtype, m.dtype, kind)]
        ps.append(p)
        gs.append(_real(grad))
        ms.append(m)
        if comps is not None:
            cs.append(_real(comps[i]))
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
    kahan_comps: list[Tensor] | None = None,
    block_numel: int | None = None,
) -> None:
    """Blocked foreach kernel: bit-identical to ``_single_tensor_lion``, about one pass over memory per tensor.

    Args:
        params: Parameters to update in place.
        grads: Their gradients (same order).
        exp_avgs: Their momentum buffers, updated in place (any floating dtype).
        beta1: Interpolation weight of the update direction.
        beta2: Decay of the momentum.
        lr: Learning rate (a float or a 1-element tensor).
        weight_decay: Decoupled weight decay coefficient.
        caution: Mask out the update where its sign disagrees with the gradient.
        maximize: Maximize the objective instead of minimizing it.
        kahan_comps: The parameters' Kahan compensations (their dtype), updated in place; None: no compensation.
        block_numel: Elements per block (default: chosen per device type). Exposed for tests.
    """
    if not params:
        return
    lr64 = _lr_f64(lr)
    decay = _decay_factor(lr64, weight_decay)
    hyper = _hyperparameters(
        beta1=beta1, beta2=beta2, lr=lr, weight_decay=weight_decay, caution=caution, maximize=maximize
    )
    for (device, dtype, m_dtype, kind), (ps, gs, ms, cs) in _group_for_foreach(
        params, grads, exp_avgs, kahan_comps
    ).items():
        block = block_numel if block_numel is not None else _block_numel(device)
        comps = cs if kahan_comps is not None else None
        if kind is not Tensor:
            # Subclasses (e.g. DTensor) are never cut into flat blocks nor mixed with plain tensors in a foreach list,
            # and their per-tensor scalars (caution counts) are subclass tensors too: the single-tensor kernel.
            _single_tensor_lion(ps, gs, ms, **hyper, kahan_comps=comps)
            continue
        compute = _compute_dtype(dtype, m_dtype)
        if comps is not None or dtype is not compute or m_dtype is not compute:
            _widened_lion(ps, gs, ms, comps, compute, block, lr64, decay, hyper)
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


def _widened_lion(
    ps: list[Tensor],
    gs: list[Tensor],
    ms: list[Tensor],
    cs: list[Tensor] | None,
    compute: torch.dtype,
    block: int,
    lr64: Tensor,
    decay: Tensor | float | None,
    hyper: dict[str, Any],
) -> None:
    """The update of tensors that do not compute in their own dtype, widened into flat blocks of ``compute``."""
    device = ps[0].device
    bufs = [torch.empty(block, device=device, dtype=compute) for _ in range(5 if hyper["caution"] else 4)]
    rest: _Lists = ([], [], [], [])
    batch: _Lists = ([], [], [], [])
    batch_numel = 0

    def flush() -> None:
        nonlocal batch, batch_numel
        if batch[0]:
            _widened_block(*batch, cs is not None, None, bufs, lr64, decay, hyper)
        batch, batch_numel = ([], [], [], []), 0

    for i, (p, g, m) in enumerate(zip(ps, gs, ms, strict=True)):
        c = cs[i] if cs is not None else p
        n = p.numel()
        if not (_splittable(p, g, m) and m.is_contiguous() and _is_plain(m) and c.is_contiguous() and _is_plain(c)):
            for target, t in zip(rest, (p, g, m, c), strict=True):
                target.append(t)
            continue
        if n == 0:
            continue
        flat = [t.view(-1) for t in (p, g, m, c)]
        if n <= block:
            if batch_numel + n > block:
                flush()
            for target, t in zip(batch, flat, strict=True):
                target.append(t)
            batch_numel += n
            continue
        step = None
        if hyper["caution"]:
            # First, read-only pass: the mask of the whole tensor sets its step.
            count = torch.zeros((), dtype=torch.float64, device=device)
            for start in range(0, n, block):
                stop = min(start + block, n)
                agree = _widened_direction(flat[1][start:stop], flat[2][start:stop], bufs, hyper)[1]
                count += cast(Tensor, agree).sum(dtype=torch.float32)  # exact: < 2**24 ones per block
            step = _caution_steps(count, n, lr64).to(compute)
        for start in range(0, n, block):
            stop = min(start + block, n)
            pp, gp, mp, cp = ([t[start:stop]] for t in flat)
            _widened_block(pp, gp, mp, cp, cs is not None, step, bufs, lr64, decay, hyper)
    flush()
    if rest[0]:
        _single_tensor_lion(*rest[:3], **hyper, kahan_comps=rest[3] if cs is not None else None)


def _widened_direction(
    g: list[Tensor] | Tensor, m: list[Tensor] | Tensor, bufs: list[Tensor], hyper: dict[str, Any]
) -> tuple[Tensor, Tensor | None]:
    """Widen ``g`` and ``m`` into ``bufs[1]``, ``bufs[2]``; return ``u`` (in ``bufs[3]``) and the caution mask."""
    gl = g if isinstance(g, list) else [g]
    ml = m if isinstance(m, list) else [m]
    n = sum(t.numel() for t in gl)
    g_c = torch.cat(gl, out=bufs[1][:n])
    m_c = torch.cat(ml, out=bufs[2][:n])
    if hyper["maximize"]:
        g_c.neg_()
    u = torch.lerp(m_c, g_c, 1.0 - hyper["beta1"], out=bufs[3][:n]).sign_()
    agree = None
    if hyper["caution"]:
        agree = torch.mul(u, g_c, out=bufs[4][:n]).gt_(0)
    return u, agree


def _widened_block(
    ps: list[Tensor],
    gs: list[Tensor],
    ms: list[Tensor],
    cs: list[Tensor],
    kahan: bool,
    step: Tensor | None,
    bufs: list[Tensor],
    lr64: Tensor,
    decay: Tensor | float | None,
    hyper: dict[str, Any],
) -> None:
    """One block of flat tensors: widen, update in ``compute``, round each stored value once.

    ``step`` is the caution step of a tensor split into blocks (counted beforehand); None: computed here.
    """
    numels = [t.numel() for t in ps]
    n = sum(numels)
    x = torch.cat(ps, out=bufs[0][:n])
    if kahan:
        x.add_(torch.cat(cs, out=bufs[3][:n]))  # bufs[3] is free until the direction is computed
    if decay is not None:
        x.mul_(decay)
    u, agree = _widened_direction(gs, ms, bufs, hyper)
    g_c, m_c = bufs[1][:n], bufs[2][:n]
    if agree is None:
        x.addcmul_(u, lr64.to(device=x.device, dtype=x.dtype), value=-1)
    else:
        u.mul_(agree)
        if step is None:
            sizes = torch.tensor(numels, device=x.device)
            counts = _mask_counts(list(torch.split(agree, numels)))
            step = _caution_steps(counts, sizes.to(torch.float64), lr64).to(x.dtype)
            if len(numels) > 1:
                step = torch.repeat_interleave(step, sizes, output_size=n)
        x.addcmul_(u, step, value=-1)
    xs = list(torch.split(x, numels))
    torch._foreach_copy_(ps, xs)
    if kahan:
        # What rounding lost: x - p (exact), rounded to the compensation's dtype.
        back = torch.cat(ps, out=u)
        torch._foreach_copy_(cs, list(torch.split(x.sub_(back), numels)))
    torch._foreach_copy_(ms, list(torch.split(m_c.lerp_(g_c, 1.0 - hyper["beta2"]), numels)))


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
