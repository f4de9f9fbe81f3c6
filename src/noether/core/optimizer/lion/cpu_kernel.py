"""The C kernel for CPU tensors: one OpenMP parallel region updates a whole list of tensors of one dtype.

``Lion`` on CPU (the default path, and ``fused=True``) calls :meth:`CpuLionKernel.call` with the flat lists of one
dtype. The C function (``lion.c``, built by :mod:`.cpu_build`) updates every tensor of the list in one OpenMP parallel
region: tensors below ``_BIG`` elements are handed out to threads whole (a small tensor costs no fork/join of its
own), larger ones are split between the threads. The math is that of :mod:`.reference`, element by element, in the
compute type ``C`` (float, or double for float64; ``load`` widens exactly)::

    g  := -load(g)                            if maximize (exact)
    m  := load(m)
    d  := lerp(m, g, w1)                      lerp as ATen computes it: fma(w, g - m, m) if |w| < 0.5,
                                              else fma(-(g - m), 1 - w, g); w1 = 1 - beta1
    u  := sign(d)                             (d > 0) - (d < 0): 0 for 0 and NaN
    if caution: u := u * [u * g > 0]; step := (C)(lr / max(count / numel, 1e-3)), count an exact integer
    x  := load(p) + load(k)                   + load(k) only with Kahan summation (k: the compensation)
    x  := x * decay                           decay = 1 - lr * weight_decay, in C
    x  := x - u * step                        u * step is exact
    p  := round_p(x);  k := round_p(x - load(p))   the latter with Kahan summation only
    m  := round_m(lerp(m, g, w2))             w2 = 1 - beta2

``round`` is to the stored dtype (a no-op for float32 and float64; round to nearest even for bfloat16), once per
stored value. On CPUs with AVX512-BF16 the steps that store bfloat16 run 16 elements at a time (32 for bfloat16
weights with bfloat16 momenta) in intrinsics that round with the CPU's own conversion; a vector with a subnormal or a
NaN to store, which that instruction does not round like c10 (it reads subnormals as zero and keeps NaN payloads),
is redone by the scalar code before anything of it is stored. The source is compiled with ``-ffp-contract=off`` so
that the only fused multiply-adds are the explicit ``fma`` calls of the lerp, as in ATen's vectorised CPU kernels.
With ``caution``, a tensor split between threads is counted first (each thread its half), then updated; a small
tensor is counted and updated by one thread while it is still in that core's cache.

Why C and not inductor on CPU: the inductor kernel (:mod:`.compiled_kernel`) compiles for about 10 s and gives each
tensor's caution count a parallel region of its own; this library compiles once per machine (about 8 s, every
dtype pair and flag combination at once), and its caution path costs little more than the plain one on a model of
many small tensors. It is checked against the
single-tensor kernel on exact data for every dtype right after loading.
"""

from __future__ import annotations

import array
import ctypes
import struct
import sys
from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor

from noether.core.optimizer.lion.cpu_build import _FUNCTIONS, C_DTYPES, C_PAIRS, CpuKernelBuildError, _library
from noether.core.optimizer.lion.reference import _compute_dtype, _single_tensor_lion

__all__ = ["C_DTYPES", "C_PAIRS", "CpuKernelBuildError", "CpuLionKernel", "pointers", "sizes_array"]

_BIG = 1 << 18
"""Tensors with at least this many elements are split between threads; smaller ones go to one thread whole."""


def _rounded(value: float, dtype: torch.dtype) -> float:
    """``value`` (a float64) rounded to ``dtype`` as torch's ``.to(dtype)`` rounds it.

    float64 is ``value`` itself; float32 goes through ``struct`` (the C cast, round to nearest even, as torch's),
    which costs a microsecond where a tensor costs twenty at every step; values beyond float32's range, which
    ``struct`` refuses, and other dtypes ask torch.
    """
    if dtype == torch.float64:
        return value
    if dtype == torch.float32:
        try:
            return float(_FLOAT32.unpack(_FLOAT32.pack(value))[0])
        except OverflowError:
            pass
    return float(torch.tensor(value, dtype=torch.float64).to(dtype).item())


_FLOAT32 = struct.Struct("=f")


def pointers(tensors: Sequence[Tensor]) -> array.array[int]:
    """The data pointers of ``tensors`` as a C array of 64-bit addresses.

    ``array`` builds it faster than ctypes, and faster from a list than from an iterator (it knows the length).
    """
    return array.array("Q", list(map(Tensor.data_ptr, tensors)))


def sizes_array(numels: Sequence[int]) -> array.array[int]:
    """Element counts as a C array of int64."""
    return array.array("q", numels)


class CpuLionKernel:
    """The C kernel for one (parameter dtype, momentum dtype) pair of CPU tensors, with or without compensation."""

    max_numel = sys.maxsize
    """The count is an int64 summed from int32 blocks: every tensor size is exact."""

    def __init__(
        self, dtype: torch.dtype, caution: bool, momentum_dtype: torch.dtype | None = None, kahan: bool = False
    ) -> None:
        momentum_dtype = dtype if momentum_dtype is None else momentum_dtype
        if (dtype, momentum_dtype) not in _FUNCTIONS:
            raise CpuKernelBuildError(f"no C kernel for {dtype} parameters with {momentum_dtype} momentum")
        if ctypes.sizeof(ctypes.c_void_p) != array.array("Q").itemsize:
            raise CpuKernelBuildError("the C kernel's pointer arrays need 64-bit pointers")
        self.dtype = dtype
        self.momentum_dtype = momentum_dtype
        self.compute_dtype = _compute_dtype(dtype, momentum_dtype)
        self.caution = caution
        self.kahan = kahan
        self._function = getattr(_library(), _FUNCTIONS[(dtype, momentum_dtype)])
        self._self_check()

    def _self_check(self) -> None:
        """Compare one step on small exact data (both lerp branches, maximize, a split tensor) with the reference."""
        gen = torch.Generator().manual_seed(0)
        sizes = [3, 17, 1000, _BIG + 5]

        def exact(n: int, scale: float, dtype: torch.dtype) -> Tensor:
            return torch.randint(-8, 9, (n,), generator=gen).to(dtype) * scale

        for maximize, betas in ((False, (0.5, 0.75)), (True, (0.875, 0.25))):
            ps, gs = ([exact(n, s, self.dtype) for n in sizes] for s in (0.5, 0.25))
            ms = [exact(n, 0.125, self.momentum_dtype) for n in sizes]
            # Compensations below the parameters' last place: the sum rounds, and the new compensation is not 0.
            cs = [exact(n, 2.0**-12, self.dtype) for n in sizes] if self.kahan else None
            want = [[t.clone() for t in ts] for ts in (ps, gs, ms)]
            want_cs = [c.clone() for c in cs] if cs is not None else None
            hyper: dict[str, Any] = {"beta1": betas[0], "beta2": betas[1], "lr": 0.5, "weight_decay": 1.0}
            hyper |= {"caution": self.caution, "maximize": maximize}
            self.call(ps, gs, ms, sizes, self.scalars(hyper, self.dtype, torch.device("cpu")), cs)
            _single_tensor_lion(*want, **hyper, kahan_comps=want_cs)
            got, expected = [*ps, *ms, *(cs or [])], [*want[0], *want[2], *(want_cs or [])]
            if not all(torch.equal(a, b) for a, b in zip(got, expected, strict=True)):
                raise CpuKernelBuildError(
                    f"the C kernel for {self.dtype} parameters with {self.momentum_dtype} momentum (kahan="
                    f"{self.kahan}) failed its self-check against the reference"
                )

    def scalars(self, hyper: dict[str, Any], dtype: torch.dtype, device: torch.device) -> tuple[float, ...]:
        """lr, decay, both lerp weights, the plain step (lr rounded to the compute dtype) and maximize, for the C call.

        The decay is ``1 - lr * weight_decay`` in float64 as the single-tensor kernel computes it; the C function
        converts it and the weights to the compute dtype, as ATen converts a Python scalar.
        """
        lr = hyper["lr"]
        lr64 = float(lr.detach().reshape(()).to(torch.float64)) if isinstance(lr, Tensor) else float(lr)
        decay = 1.0 - lr64 * hyper["weight_decay"]
        step = _rounded(lr64, self.compute_dtype)
        return (lr64, decay, 1.0 - hyper["beta1"], 1.0 - hyper["beta2"], step, float(hyper["maximize"]))

    def call(
        self,
        ps: Sequence[Tensor],
        gs: Sequence[Tensor],
        ms: Sequence[Tensor],
        numels: Sequence[int],
        scalars: tuple[float, ...],
        cs: Sequence[Tensor] | None = None,
    ) -> None:
        """Update the triples in place; each is contiguous (or dense in one shared layout) with ``numels[i]`` >= 1.

        ``cs`` are the Kahan compensations (laid out like the parameters), required exactly when the kernel has them.
        """
        n = len(ps)
        if n == 0:
            return
        if (cs is not None) != self.kahan:
            raise ValueError(f"C Lion kernel: kahan={self.kahan} but compensations were {'' if cs else 'not '}given")
        arrays = [pointers(ts) for ts in (ps, gs, ms)]
        comps = pointers(cs) if cs is not None else arrays[0]
        self.call_arrays(n, arrays[0], arrays[1], arrays[2], sizes_array(numels), scalars, comps)

    def call_arrays(
        self,
        n: int,
        ps: array.array[int],
        gs: array.array[int],
        ms: array.array[int],
        numels: array.array[int],
        scalars: tuple[float, ...],
        cs: array.array[int] | None = None,
    ) -> None:
        """:meth:`call` on prepared arrays (:func:`pointers`, :func:`sizes_array`) of ``n`` triples.

        A caller that updates the same tensors step after step keeps the arrays of the params and momenta (and
        compensations, which a kernel with Kahan summation requires) and builds only the gradients' one.
        """
        if self.kahan and cs is None:
            raise ValueError("C Lion kernel: kahan=True but no compensations were given")
        lr64, decay, w1, w2, step, maximize = scalars
        self._function(
            n,
            ps.buffer_info()[0],
            gs.buffer_info()[0],
            ms.buffer_info()[0],
            (cs if cs is not None else ps).buffer_info()[0],
            numels.buffer_info()[0],
            lr64,
            decay,
            w1,
            w2,
            step,
            int(self.caution),
            int(maximize),
            int(self.kahan),
            torch.get_num_threads(),
            _BIG,
        )
