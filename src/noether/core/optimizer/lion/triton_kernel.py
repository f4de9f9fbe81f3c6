"""The Triton kernel of Lion for CUDA tensors: one launch per dtype group, driven by a table of pointers and sizes.

It computes the update rule of :mod:`.reference` (see there for the math); this module only says how it is laid out.

Layout (multi-tensor apply, as torch's fused optimizers do it):

* The host writes one int64 table per group: for every tensor the addresses of its columns (``param``, ``grad``,
  ``exp_avg`` and, with Kahan compensation, ``kahan_comp``: :data:`COLUMNS`) and its number of elements, then for
  every block of ``BLOCK`` elements the tensor it belongs to and its index within that tensor. One program runs per
  (tensor, block) pair, so a model with hundreds of tensors costs one launch, not hundreds. The table is copied to
  the device once and cached under its contents (the addresses and sizes), so a training loop whose tensors stay put
  does not rebuild it.
* Every hyperparameter is a runtime value: ``lr`` is read from device memory (a float64 1-element tensor, so a tensor
  lr that changes never recompiles nor synchronises), ``weight_decay`` is a float64 argument and both lerp weights are
  float32 arguments (the precision ATen's ``lerp`` computes them in). Only booleans that change the code (caution,
  maximize, Kahan, dtypes, pointer alignment, block size) are compile-time constants. Nothing is autotuned: the block
  size and warp count are fixed (:data:`BLOCK`, :data:`NUM_WARPS`), so no trial launch ever runs on live parameters.
* Caution needs every tensor's count of agreeing entries before any of its entries is updated: a first kernel
  computes the direction and adds each block's count into a per-tensor int64 buffer (atomics), the second kernel reads
  it, computes the step in float64 exactly as the reference does and updates. Without caution only the second runs.
* Full blocks run without masks (and, when every address in the group is 16-byte aligned, with vectorised loads);
  the last, partial block of a tensor runs masked. Tensors must be dense in memory with the same layout in all
  columns (contiguous, or e.g. the same channels-last strides): the kernel sees only flat spans of memory.

Numerics (those of the reference): every step is computed in float32, the compute dtype of all parameter and
momentum dtypes this kernel takes, and each stored value is rounded once to its own dtype. ``1 - lr * wd`` and the
(caution) step are computed in float64 and rounded once to float32, each ``lerp`` is one fused multiply-add, as
ATen's vectorised CPU kernels and its CUDA build compute it, and nothing else is contracted (the kernels are compiled
with ``enable_fp_fusion=False``). Where a platform rounds ``lerp`` twice instead (a non-vectorised ATen build, or
Triton's CPU interpreter, whose ``fma`` is a multiply then an add), ``exp_avg`` differs by at most one rounding of
the momentum update, ``eps(momentum dtype) * (|m| + |g|)``, and the direction ``sign(lerp(m, g, 1 - beta1))`` can
differ only where its exact value lies within a float32 rounding of zero: there ``p`` differs by at most
``2 * step``, and under caution the tensor's count, hence its step, by the number of such entries.

Low-precision options (see the reference): with Kahan compensation the table has a fourth column, the
compensations (in the parameter's dtype), and the update reads ``x = p + c``, stores ``p = round(x)`` and
``c = round(x - p)``; the momentum may have another dtype than the parameter (``m_dtype``, a constant of its own), as
long as both are among :data:`TRITON_DTYPES` (all compute in float32). A new per-element buffer is one more entry in
:data:`COLUMNS` (the kernel reads its address with ``_column``).

The module imports without Triton: :data:`TRITON_AVAILABLE` says whether the kernel exists, and building a
:class:`TritonLionKernel` without it raises :class:`TritonUnavailableError`.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from noether.core.optimizer.lion.reference import _CAUTION_MIN_MEAN

try:
    import triton
    import triton.language as tl
except ImportError:  # the library works without Triton; only this kernel is missing
    TRITON_AVAILABLE = False
else:
    TRITON_AVAILABLE = True

__all__ = ["TRITON_AVAILABLE", "TRITON_DTYPES", "TritonLionKernel", "TritonUnavailableError"]

TRITON_DTYPES = (torch.float32, torch.bfloat16, torch.float16)
"""Parameter dtypes the kernel takes (complex parameters enter as their real views)."""

COLUMNS = ("param", "grad", "exp_avg", "kahan_comp")
"""The per-element tensors of one parameter, in the order of the pointer table's columns; a table without Kahan
compensation has only the first three."""

BLOCK = 4096
"""Elements per program: 16 per thread at :data:`NUM_WARPS` warps, i.e. four 16-byte loads per column in float32."""

NUM_WARPS = 8

_TABLE_CACHE_SIZE = 16
"""Device tables kept per process (a model with several parameter groups and dtypes needs one per group and dtype)."""


class TritonUnavailableError(RuntimeError):
    """Raised when the Triton kernel is asked for but Triton is not installed (``pip install triton``)."""


if TRITON_AVAILABLE:
    _TL_DTYPES: dict[torch.dtype, Any] = {
        torch.float32: tl.float32,
        torch.bfloat16: tl.bfloat16,
        torch.float16: tl.float16,
    }

    # The kernels below are Triton code: arguments annotated ``tl.constexpr`` are compile-time constants, the others
    # runtime values (``tl.tensor``, which the type checker reads as Any; ``tl.float64``/``tl.float32`` fix a scalar
    # argument's precision).

    @triton.jit  # type: ignore[untyped-decorator]
    def _column(
        table_ptr: tl.tensor,
        tensor: tl.tensor,
        col: tl.constexpr,
        n_cols: tl.constexpr,
        dtype: tl.constexpr,
        aligned: tl.constexpr,
    ) -> tl.tensor:
        """The address in column ``col`` of the table's row ``tensor``, as a pointer to ``dtype``."""
        ptr = tl.load(table_ptr + tensor * n_cols + col).to(tl.pointer_type(dtype))
        if aligned:
            # The host checked that every address of the group is 16-byte aligned: lets the compiler vectorise.
            ptr = tl.multiple_of(ptr, 16)
        return ptr

    @triton.jit  # type: ignore[untyped-decorator]
    def _load(ptr: tl.tensor, offs: tl.tensor, mask: tl.tensor) -> tl.tensor:
        """``ptr[offs]`` in float32: unmasked for a full block (``mask`` None), else masked with 0 past the end."""
        x = tl.load(ptr + offs) if mask is None else tl.load(ptr + offs, mask=mask, other=0.0)
        return x.to(tl.float32)

    @triton.jit  # type: ignore[untyped-decorator]
    def _round_to(x: tl.tensor, dtype: tl.constexpr) -> tl.tensor:
        """``x`` (float32) rounded to nearest-even in ``dtype``, as a float32 value (exact when stored as ``dtype``).

        bfloat16 is rounded with integer operations, as ``c10::BFloat16`` does it: the same bits as the GPU's
        conversion, and also under Triton's CPU interpreter, whose float32 -> bfloat16 conversion truncates.
        """
        if dtype == tl.bfloat16:
            bits = x.to(tl.uint32, bitcast=True)
            bits = (bits + 0x7FFF + ((bits >> 16) & 1)) & 0xFFFF0000
            x = tl.where(x != x, x, bits.to(tl.float32, bitcast=True))
        elif dtype != tl.float32:
            x = x.to(dtype).to(tl.float32)
        return x

    @triton.jit  # type: ignore[untyped-decorator]
    def _lerp(start: tl.tensor, end: tl.tensor, weight: tl.tensor) -> tl.tensor:
        """ATen's ``lerp`` in float32, each branch one fused multiply-add.

        ``start + w * (end - start)`` for ``w < 0.5``, else ``end - (1 - w) * (end - start)`` (``w - 1`` is exact).
        """
        small = weight < 0.5
        coeff = tl.where(small, weight, weight - 1.0)
        return tl.fma(coeff, end - start, tl.where(small, start, end))

    @triton.jit  # type: ignore[untyped-decorator]
    def _direction(g: tl.tensor, m: tl.tensor, lerp_w1: tl.tensor, maximize: tl.constexpr) -> tl.tensor:
        """The (possibly negated) gradient and ``sign(lerp(m, g, 1 - beta1))`` of the float32 lerp; NaN gives 0."""
        if maximize:
            g = -g
        d = _lerp(m, g, lerp_w1)
        u = (d > 0).to(tl.float32) - (d < 0).to(tl.float32)
        return g, u

    @triton.jit  # type: ignore[untyped-decorator]
    def _apply_step(x: tl.tensor, step_u: tl.tensor, decay: tl.tensor) -> tl.tensor:
        """``x * decay - step * u`` in float32, two roundings (``step * u`` is exact: ``u`` is -1, 0 or 1)."""
        return x * decay - step_u

    @triton.jit  # type: ignore[untyped-decorator]
    def _add(a: tl.tensor, b: tl.tensor) -> tl.tensor:
        """The combine function of a sum."""
        return a + b

    @triton.jit  # type: ignore[untyped-decorator]
    def _count_block(
        g_ptr: tl.tensor,
        m_ptr: tl.tensor,
        offs: tl.tensor,
        mask: tl.tensor,
        lerp_w1: tl.tensor,
        maximize: tl.constexpr,
    ) -> tl.tensor:
        """Number of entries of one block whose direction agrees with the gradient (masked-off lanes load 0: 0)."""
        g = _load(g_ptr, offs, mask)
        m = _load(m_ptr, offs, mask)
        g, u = _direction(g, m, lerp_w1, maximize)
        # tl.reduce with a combine function of this module rather than tl.sum, a jit function of Triton's standard
        # library: that one stays compiled code if Triton was imported before TRITON_INTERPRET was set (tests).
        return tl.reduce((u * g > 0).to(tl.int32), 0, _add)

    @triton.jit  # type: ignore[untyped-decorator]
    def _lion_count_kernel(
        table_ptr: tl.tensor,
        numel_ptr: tl.tensor,
        block_tensor_ptr: tl.tensor,
        block_index_ptr: tl.tensor,
        count_ptr: tl.tensor,
        lerp_w1: tl.float32,
        n_cols: tl.constexpr,
        p_dtype: tl.constexpr,
        m_dtype: tl.constexpr,
        block: tl.constexpr,
        maximize: tl.constexpr,
        aligned: tl.constexpr,
    ) -> None:
        """Caution's first pass: add each block's number of entries whose direction agrees with the gradient."""
        pid = tl.program_id(0)
        tensor = tl.load(block_tensor_ptr + pid)
        start = tl.load(block_index_ptr + pid) * block
        numel = tl.load(numel_ptr + tensor)
        g_ptr = _column(table_ptr, tensor, 1, n_cols, p_dtype, aligned)
        m_ptr = _column(table_ptr, tensor, 2, n_cols, m_dtype, aligned)
        offs = start + tl.arange(0, block)
        if aligned:
            offs = tl.max_contiguous(tl.multiple_of(offs, block), block)
        if start + block <= numel:
            count = _count_block(g_ptr, m_ptr, offs, None, lerp_w1, maximize)
        else:
            count = _count_block(g_ptr, m_ptr, offs, offs < numel, lerp_w1, maximize)
        tl.atomic_add(count_ptr + tensor, count.to(tl.int64))

    @triton.jit  # type: ignore[untyped-decorator]
    def _update_block(
        p_ptr: tl.tensor,
        g_ptr: tl.tensor,
        m_ptr: tl.tensor,
        c_ptr: tl.tensor,
        offs: tl.tensor,
        mask: tl.tensor,
        step: tl.tensor,
        decay: tl.tensor,
        lerp_w1: tl.tensor,
        lerp_w2: tl.tensor,
        p_dtype: tl.constexpr,
        m_dtype: tl.constexpr,
        caution: tl.constexpr,
        maximize: tl.constexpr,
        kahan: tl.constexpr,
    ) -> None:
        """Load one block, update it and store it (``mask`` None for a full block; ``c_ptr`` read only with Kahan)."""
        x = _load(p_ptr, offs, mask)
        g = _load(g_ptr, offs, mask)
        m = _load(m_ptr, offs, mask)
        if kahan:
            x = x + _load(c_ptr, offs, mask)
        g, u = _direction(g, m, lerp_w1, maximize)
        if caution:
            u = u * (u * g > 0).to(tl.float32)
        x = _apply_step(x, step * u, decay)
        p = _round_to(x, p_dtype)
        tl.store(p_ptr + offs, p.to(p_dtype), mask=mask)
        if kahan:
            # x - p is exact in float32 (p is x rounded): the part of the update that rounding p dropped.
            tl.store(c_ptr + offs, _round_to(x - p, p_dtype).to(p_dtype), mask=mask)
        tl.store(m_ptr + offs, _round_to(_lerp(m, g, lerp_w2), m_dtype).to(m_dtype), mask=mask)

    @triton.jit  # type: ignore[untyped-decorator]
    def _lion_update_kernel(
        table_ptr: tl.tensor,
        numel_ptr: tl.tensor,
        block_tensor_ptr: tl.tensor,
        block_index_ptr: tl.tensor,
        count_ptr: tl.tensor,
        lr_ptr: tl.tensor,
        weight_decay: tl.float64,
        min_mean: tl.float64,
        lerp_w1: tl.float32,
        lerp_w2: tl.float32,
        n_cols: tl.constexpr,
        p_dtype: tl.constexpr,
        m_dtype: tl.constexpr,
        block: tl.constexpr,
        caution: tl.constexpr,
        maximize: tl.constexpr,
        kahan: tl.constexpr,
        aligned: tl.constexpr,
    ) -> None:
        """The update of one block: decay, signed step (masked and rescaled under caution), momentum."""
        pid = tl.program_id(0)
        tensor = tl.load(block_tensor_ptr + pid)
        start = tl.load(block_index_ptr + pid) * block
        numel = tl.load(numel_ptr + tensor)
        p_ptr = _column(table_ptr, tensor, 0, n_cols, p_dtype, aligned)
        g_ptr = _column(table_ptr, tensor, 1, n_cols, p_dtype, aligned)
        m_ptr = _column(table_ptr, tensor, 2, n_cols, m_dtype, aligned)
        # Without Kahan compensation the table has no fourth column; c_ptr is then never read.
        c_ptr = _column(table_ptr, tensor, 3, n_cols, p_dtype, aligned) if kahan else p_ptr
        lr = tl.load(lr_ptr)
        # float64 like the reference, rounded once to the compute dtype (float32). With weight decay 0 this is 1.0,
        # and x * 1.0 is x: no branch needed.
        decay = (1.0 - lr * weight_decay).to(tl.float32)
        if caution:
            mean = tl.load(count_ptr + tensor).to(tl.float64) / tl.maximum(numel, 1).to(tl.float64)
            step64 = lr / tl.maximum(mean, min_mean)
        else:
            step64 = lr
        step = step64.to(tl.float32)
        offs = start + tl.arange(0, block)
        if aligned:
            offs = tl.max_contiguous(tl.multiple_of(offs, block), block)
        if start + block <= numel:
            _update_block(
                p_ptr,
                g_ptr,
                m_ptr,
                c_ptr,
                offs,
                None,
                step,
                decay,
                lerp_w1,
                lerp_w2,
                p_dtype,
                m_dtype,
                caution,
                maximize,
                kahan,
            )
        else:
            mask = offs < numel
            _update_block(
                p_ptr,
                g_ptr,
                m_ptr,
                c_ptr,
                offs,
                mask,
                step,
                decay,
                lerp_w1,
                lerp_w2,
                p_dtype,
                m_dtype,
                caution,
                maximize,
                kahan,
            )


# ---------------------------------------------------------------------------------------------------------------------
# host side


@dataclass(frozen=True)
class _Scalars:
    """One step's hyperparameters as the kernel takes them; ``lr`` is a float64 1-element tensor on the device."""

    lr: Tensor
    weight_decay: float
    lerp_w1: float
    lerp_w2: float
    maximize: bool


@dataclass(frozen=True)
class _Table:
    """A group's pointer table on the device, and views of its sections (see the module docstring)."""

    data: Tensor
    ptrs: Tensor
    numels: Tensor
    block_tensor: Tensor
    block_index: Tensor
    n_tensors: int
    n_blocks: int
    n_cols: int
    aligned: bool


def _even(n: int) -> int:
    """``n`` rounded up to even.

    Each section of the table then starts 16-byte aligned, so the kernel's pointer arguments keep one alignment class
    and never cause a second compilation.
    """
    return n + (n & 1)


class TritonLionKernel:
    """The Triton kernel for one parameter dtype, momentum dtype and caution setting (``fused=True`` on CUDA).

    Kahan compensation is per call: :meth:`call` with compensations (``cs``) runs the compensated update.

    Args:
        dtype: The parameters' dtype, one of :data:`TRITON_DTYPES`.
        caution: Whether the kernel applies caution.
        momentum_dtype: The momentum's (``exp_avg``) dtype, one of :data:`TRITON_DTYPES`; None: the parameters'.
        block: Elements per program (a multiple of 16; tests use small blocks to cross block boundaries).

    Raises:
        TritonUnavailableError: Triton is not installed.
        ValueError: On a dtype the kernel does not take, or a bad block size.
    """

    max_numel = 2**62
    """Largest tensor the kernel takes (the table is int64 throughout)."""

    def __init__(
        self, dtype: torch.dtype, caution: bool, momentum_dtype: torch.dtype | None = None, block: int = BLOCK
    ) -> None:
        if not TRITON_AVAILABLE:
            raise TritonUnavailableError("the Triton Lion kernel needs the 'triton' package (pip install triton)")
        m_dtype = dtype if momentum_dtype is None else momentum_dtype
        for name, value in (("dtype", dtype), ("momentum_dtype", m_dtype)):
            if value not in TRITON_DTYPES:
                raise ValueError(
                    f"Triton Lion kernel: {name} {value} is not supported; expected one of {TRITON_DTYPES}"
                )
        if block < 16 or block & (block - 1):
            raise ValueError(f"Triton Lion kernel: block={block}; expected a power of two >= 16")
        self.dtype, self.momentum_dtype, self.caution, self.block = dtype, m_dtype, caution, block
        self._tables: OrderedDict[tuple[Any, ...], _Table] = OrderedDict()
        self._lock = threading.Lock()

    def scalars(self, hyper: dict[str, Any], dtype: torch.dtype, device: torch.device) -> _Scalars:
        """The step's hyperparameters, with ``lr`` as a float64 tensor on ``device`` (no host synchronisation)."""
        lr = hyper["lr"]
        if isinstance(lr, Tensor):
            lr_dev = lr.detach().reshape(1).to(device=device, dtype=torch.float64)
        else:
            lr_dev = torch.full((1,), float(lr), dtype=torch.float64, device=device)
        return _Scalars(
            lr=lr_dev,
            weight_decay=float(hyper["weight_decay"]),
            # ATen's lerp rounds its weight to float32; Triton passes a Python float as float32 the same way.
            lerp_w1=1.0 - float(hyper["beta1"]),
            lerp_w2=1.0 - float(hyper["beta2"]),
            maximize=bool(hyper["maximize"]),
        )

    def call(
        self,
        ps: list[Tensor],
        gs: list[Tensor],
        ms: list[Tensor],
        numels: list[int],
        scalars: _Scalars,
        cs: list[Tensor] | None = None,
    ) -> None:
        """Update every ``(ps[i], gs[i], ms[i])`` (and ``cs[i]``) in place: one launch for all (two with caution).

        ``cs``: the parameters' Kahan compensations (their dtype and layout), updated in place; None: no compensation.

        The caller guarantees what the kernel trusts: plain tensors of this kernel's dtypes on one device, each row of
        one shape, dense in memory with one layout, ``numels[i] == ps[i].numel()``. :func:`check_inputs` checks it.
        """
        if not ps:
            return
        table = self._table(ps, gs, ms, cs, numels)
        if table.n_blocks == 0:
            return  # only 0-size tensors: nothing to update
        p_dtype, m_dtype = _TL_DTYPES[self.dtype], _TL_DTYPES[self.momentum_dtype]
        grid = (table.n_blocks,)
        counts = table.numels  # any int64 pointer: the update kernel reads it only under caution
        if self.caution:
            counts = torch.zeros(table.n_tensors, dtype=torch.int64, device=table.data.device)
            _lion_count_kernel[grid](
                table.ptrs,
                table.numels,
                table.block_tensor,
                table.block_index,
                counts,
                scalars.lerp_w1,
                n_cols=table.n_cols,
                p_dtype=p_dtype,
                m_dtype=m_dtype,
                block=self.block,
                maximize=scalars.maximize,
                aligned=table.aligned,
                num_warps=NUM_WARPS,
                enable_fp_fusion=False,
            )
        _lion_update_kernel[grid](
            table.ptrs,
            table.numels,
            table.block_tensor,
            table.block_index,
            counts,
            scalars.lr,
            scalars.weight_decay,
            _CAUTION_MIN_MEAN,
            scalars.lerp_w1,
            scalars.lerp_w2,
            n_cols=table.n_cols,
            p_dtype=p_dtype,
            m_dtype=m_dtype,
            block=self.block,
            caution=self.caution,
            maximize=scalars.maximize,
            kahan=cs is not None,
            aligned=table.aligned,
            num_warps=NUM_WARPS,
            enable_fp_fusion=False,
        )

    def _table(
        self, ps: list[Tensor], gs: list[Tensor], ms: list[Tensor], cs: list[Tensor] | None, numels: list[int]
    ) -> _Table:
        """The device table for these tensors, from the cache when the addresses and sizes are the same as before."""
        rows = zip(ps, gs, ms, strict=True) if cs is None else zip(ps, gs, ms, cs, strict=True)
        ptrs = [t.data_ptr() for row in rows for t in row]
        n_cols = 3 if cs is None else 4
        device = ps[0].device
        key = (device, n_cols, *ptrs, *numels)
        with self._lock:
            table = self._tables.get(key)
            if table is not None:
                self._tables.move_to_end(key)
                return table
        table = self._build_table(ptrs, n_cols, numels, device)
        with self._lock:
            self._tables[key] = table
            while len(self._tables) > _TABLE_CACHE_SIZE:
                self._tables.popitem(last=False)
        return table

    def _build_table(self, ptrs: list[int], n_cols: int, numels: list[int], device: torch.device) -> _Table:
        n = len(numels)
        sizes = torch.tensor(numels, dtype=torch.int64)
        blocks = (sizes + (self.block - 1)) // self.block
        n_blocks = int(blocks.sum())
        tensor_ids = torch.repeat_interleave(torch.arange(n, dtype=torch.int64), blocks)
        first = torch.cumsum(blocks, 0) - blocks
        index = torch.arange(n_blocks, dtype=torch.int64) - torch.repeat_interleave(first, blocks)
        lengths = [_even(n * n_cols), _even(n), _even(n_blocks), _even(n_blocks)]
        host = torch.zeros(sum(lengths), dtype=torch.int64)
        sections = list(torch.split(host, lengths))
        sections[0][: len(ptrs)] = torch.tensor(ptrs, dtype=torch.int64)
        sections[1][:n] = sizes
        sections[2][:n_blocks] = tensor_ids
        sections[3][:n_blocks] = index
        data = host.to(device, non_blocking=True) if device.type == "cuda" else host
        ptr_t, numel_t, tensor_t, index_t = torch.split(data, lengths)
        return _Table(
            data=data,
            ptrs=ptr_t,
            numels=numel_t,
            block_tensor=tensor_t,
            block_index=index_t,
            n_tensors=n,
            n_blocks=n_blocks,
            n_cols=n_cols,
            aligned=all(ptr % 16 == 0 for ptr in ptrs),
        )


def check_inputs(
    ps: list[Tensor],
    gs: list[Tensor],
    ms: list[Tensor],
    dtype: torch.dtype,
    momentum_dtype: torch.dtype | None = None,
    cs: list[Tensor] | None = None,
) -> None:
    """Raise ValueError unless every row is what :meth:`TritonLionKernel.call` trusts (naming the first bad one).

    Args:
        ps: Parameters (real views of complex ones).
        gs: Their gradients.
        ms: Their momentum buffers.
        dtype: The kernel's parameter dtype.
        momentum_dtype: The kernel's momentum dtype; None: ``dtype``.
        cs: The parameters' Kahan compensations, or None.
    """
    m_dtype = dtype if momentum_dtype is None else momentum_dtype
    lists = (ps, gs, ms) if cs is None else (ps, gs, ms, cs)
    if len({len(ts) for ts in lists}) != 1:
        raise ValueError(
            f"Triton Lion kernel: {', '.join(COLUMNS[: len(lists)])} must have one entry per parameter, got "
            f"{', '.join(str(len(ts)) for ts in lists)}"
        )
    device = ps[0].device if ps else None
    for i, row in enumerate(zip(*lists, strict=True)):
        p = row[0]
        for name, t in zip(COLUMNS, row, strict=False):
            if type(t) not in (Tensor, torch.nn.Parameter):
                raise ValueError(f"Triton Lion kernel: {name} {i} is a {type(t).__name__}; expected a plain tensor")
            want = m_dtype if name == "exp_avg" else dtype
            if t.dtype is not want or t.device != device or t.shape != p.shape:
                raise ValueError(
                    f"Triton Lion kernel: {name} {i} has dtype {t.dtype}, device {t.device} and shape "
                    f"{tuple(t.shape)}; expected {want} on {device} with the parameter's shape {tuple(p.shape)}"
                )
        if not _dense_same_layout(*row):
            strides = ", ".join(str(t.stride()) for t in row[1:])
            raise ValueError(
                f"Triton Lion kernel: parameter {i} (shape {tuple(p.shape)}, strides {p.stride()}, {strides}) is not "
                f"dense in memory with one layout for {', '.join(COLUMNS[: len(row)])}; pass contiguous tensors "
                f"(e.g. .contiguous()) or use fused=False"
            )


def _dense_same_layout(p: Tensor, *others: Tensor) -> bool:
    """Whether the tensors are flat spans of ``numel`` elements laid out alike (contiguous or one permutation)."""
    if p.is_contiguous() and all(t.is_contiguous() for t in others):
        return True
    if any(t.stride() != p.stride() for t in others):
        return False
    # Dense and non-overlapping: the strides, sorted, are those of a contiguous tensor of the permuted shape.
    pairs = sorted((stride, size) for stride, size in zip(p.stride(), p.shape, strict=True) if size != 1)
    expected = 1
    for stride, size in pairs:
        if stride != expected:
            return False
        expected *= size
    return True
