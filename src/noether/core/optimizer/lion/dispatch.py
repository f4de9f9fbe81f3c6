"""The dispatcher: :func:`lion` and the choice of which kernel serves which tensors.

Kernels (each in a module of its own, all computing the update rule of :mod:`.reference` bit for bit):

* :func:`.reference._single_tensor_lion` for ``foreach=False``, and for whatever no other kernel takes.
* :func:`.foreach_kernel._multi_tensor_lion` for ``foreach=True``.
* ``fused=True`` (:func:`_fused_lion`): on CPU the C kernel (:mod:`.cpu_kernel`) for float32, float64 and bfloat16
  (momentum of the same dtype, or float32 and bfloat16 either way); on CUDA the Triton kernel (:mod:`.triton_kernel`)
  for float32, bfloat16 and float16 parameters and momenta (with or without Kahan compensation) where Triton is
  installed; the compiled kernel (:mod:`.compiled_kernel`) for everything else.
* The default (``foreach`` and ``fused`` both None): on CPU, :func:`_native_cpu_lion` runs the C kernel where it
  applies (plain contiguous tensors of one of those dtype pairs, and a C compiler to build it once per machine);
  everything else takes the blocked foreach kernel. Same bits either way.

Every kernel takes the optional Kahan compensations (``kahan_comps``, one per parameter, in its dtype) and momenta of
another dtype than the parameters.

Kernel objects are built on first use and kept per process in ``_KERNELS``.
"""

from __future__ import annotations

import array
import itertools
import logging
import operator
import os
import sys
import threading
import time
import warnings
from collections.abc import Callable
from typing import Any, Protocol

import torch
from torch import Tensor
from torch._jit_internal import is_scripting

from noether.core.optimizer.lion.compiled_kernel import FusedLionCompileError, _ChunkKernel
from noether.core.optimizer.lion.cpu_kernel import C_PAIRS, CpuKernelBuildError, CpuLionKernel, pointers, sizes_array
from noether.core.optimizer.lion.foreach_kernel import _multi_tensor_lion
from noether.core.optimizer.lion.reference import _PLAIN, LrT, _hyperparameters, _single_tensor_lion
from noether.core.optimizer.lion.step_check import HoldsFunction, holds_function
from noether.core.optimizer.lion.triton_kernel import TRITON_AVAILABLE, TRITON_DTYPES, TritonLionKernel
from noether.core.optimizer.lion.validation import (
    KernelChoiceError,
    _check_betas,
    _check_lr,
    _check_sparse,
    _check_weight_decay,
)

__all__ = ["DispatchCache", "KeptStep", "lion"]

logger = logging.getLogger(__name__)


class _Kernel(Protocol):
    """What ``_fused_lion`` needs of a kernel: its size limit, its call scalars and the call."""

    @property
    def max_numel(self) -> int: ...

    def scalars(self, hyper: dict[str, Any], dtype: torch.dtype, device: torch.device) -> Any: ...

    def call(
        self,
        ps: list[Tensor],
        gs: list[Tensor],
        ms: list[Tensor],
        numels: list[int],
        scalars: Any,
        cs: list[Tensor] | None = None,
    ) -> None: ...


_CPU_KERNEL = os.environ.get("NOETHER_FUSED_LION_CPU", "c")
"""Which kernel ``fused=True`` uses for CPU tensors: ``"c"`` (:mod:`.cpu_kernel`, the default) or ``"inductor"``."""

_CUDA_KERNEL = os.environ.get("NOETHER_FUSED_LION_CUDA", "triton")
"""Which kernel ``fused=True`` uses for CUDA tensors of the dtypes in ``TRITON_DTYPES``: ``"triton"``
(:mod:`.triton_kernel`, the default where Triton is installed) or ``"inductor"`` (:mod:`.compiled_kernel`)."""

_KernelKey = tuple[torch.device, torch.dtype, torch.dtype, bool, bool, str]
"""(device, param dtype, momentum dtype, Kahan, caution, backend)."""

_KERNELS: dict[_KernelKey, _Kernel] = {}
_KERNELS_LOCK = threading.Lock()
_WARNED: set[str] = set()


def _get_kernel(
    device: torch.device,
    dtype: torch.dtype,
    caution: bool,
    momentum_dtype: torch.dtype | None = None,
    kahan: bool = False,
) -> _Kernel:
    """The kernel for ``(device, dtype, momentum dtype, Kahan, caution)``, built on first use (once per process).

    CPU tensors of the dtype pairs in ``C_PAIRS`` get the C kernel of :mod:`.cpu_kernel` unless
    ``NOETHER_FUSED_LION_CPU=inductor``; where it cannot be built (no C compiler, or its self-check fails) they get the
    inductor kernel, with a warning. CUDA tensors of the dtypes in ``TRITON_DTYPES`` (parameters and momenta) get the
    Triton kernel where Triton is installed, unless ``NOETHER_FUSED_LION_CUDA=inductor``. Other dtypes and devices get
    the inductor kernel. On CPU, unless ``NOETHER_FUSED_LION_CPU=inductor`` asked for inductor by name, a machine where
    that cannot compile either (no C++ compiler) gets the blocked foreach kernel, with a warning: same bits, never an
    error for a missing compiler.
    """
    m_dtype = dtype if momentum_dtype is None else momentum_dtype
    if device.type == "cpu":
        backend = _CPU_KERNEL
        if backend == "c":
            backend = "c" if (dtype, m_dtype) in C_PAIRS else "inductor"
    elif device.type == "cuda":
        backend = _CUDA_KERNEL
        if backend == "triton":
            takes = dtype in TRITON_DTYPES and m_dtype in TRITON_DTYPES
            backend = "triton" if TRITON_AVAILABLE and takes else "inductor"
    else:
        backend = "inductor"
    key = (device, dtype, m_dtype, kahan, caution, backend)
    kernel = _KERNELS.get(key)
    if kernel is None:
        with _KERNELS_LOCK:
            kernel = _KERNELS.get(key)
            if kernel is None:
                kernel = _build_kernel(device, dtype, caution, backend, m_dtype, kahan)
                _KERNELS[key] = kernel
    return kernel


def _build_kernel(
    device: torch.device, dtype: torch.dtype, caution: bool, backend: str, momentum_dtype: torch.dtype, kahan: bool
) -> _Kernel:
    if backend == "c":
        try:
            return CpuLionKernel(dtype, caution, momentum_dtype, kahan)
        except CpuKernelBuildError as exc:
            _warn_once(f"fused Lion: using the inductor kernel on CPU: {exc}")
    elif backend == "triton":
        return TritonLionKernel(dtype, caution, momentum_dtype)
    elif backend != "inductor":
        variable = "NOETHER_FUSED_LION_CPU" if device.type == "cpu" else "NOETHER_FUSED_LION_CUDA"
        allowed = "'c' or 'inductor'" if device.type == "cpu" else "'triton' or 'inductor'"
        raise ValueError(f"{variable}={backend!r}; expected {allowed}")
    if device.type == "cpu" and _CPU_KERNEL == "c":
        # Nobody asked for inductor by name: a machine without a working compiler (inductor needs a C++ compiler on
        # CPU) still steps, with the blocked foreach kernel, which gives the same bits.
        try:
            return _compile_chunk_kernel(device, dtype, caution, momentum_dtype, kahan)
        except FusedLionCompileError as exc:
            _warn_once(f"{exc}. fused=True runs the blocked foreach kernel on CPU instead (same results, not fused)")
            return _ForeachKernel()
    return _compile_chunk_kernel(device, dtype, caution, momentum_dtype, kahan)


def _warn_once(message: str) -> None:
    if message not in _WARNED:
        _WARNED.add(message)
        warnings.warn(message, RuntimeWarning, stacklevel=5)


def _compile_chunk_kernel(
    device: torch.device, dtype: torch.dtype, caution: bool, momentum_dtype: torch.dtype, kahan: bool
) -> _ChunkKernel:
    """The inductor kernel, with its compile (seconds to tens of seconds, once per process) logged at INFO."""
    logger.info(
        "fused Lion: compiling the inductor kernel for %s on %s (momentum %s, kahan=%s, caution=%s) with "
        "torch.compile, as fused=True asked for it; once per process and kind of tensor (the first step waits for it)",
        dtype,
        device,
        momentum_dtype,
        kahan,
        caution,
    )
    started = time.perf_counter()
    kernel = _ChunkKernel(device, dtype, caution, momentum_dtype, kahan)
    logger.info(
        "fused Lion: compiled the inductor kernel for %s on %s in %.1f s", dtype, device, time.perf_counter() - started
    )
    return kernel


class _ForeachKernel:
    """``fused=True``'s kernel on a CPU where nothing can be compiled: the blocked foreach kernel, same bits."""

    max_numel = sys.maxsize

    def scalars(self, hyper: dict[str, Any], dtype: torch.dtype, device: torch.device) -> dict[str, Any]:
        return hyper

    def call(
        self,
        ps: list[Tensor],
        gs: list[Tensor],
        ms: list[Tensor],
        numels: list[int],
        scalars: dict[str, Any],
        cs: list[Tensor] | None = None,
    ) -> None:
        _multi_tensor_lion(list(ps), list(gs), list(ms), **scalars, kahan_comps=None if cs is None else list(cs))


_DEFAULT_CPU_KERNEL = os.environ.get("NOETHER_LION_DEFAULT_CPU_KERNEL", "c")
"""Which kernel ``Lion`` without ``foreach``/``fused`` uses for CPU tensors: ``"c"`` (:mod:`.cpu_kernel` where it
builds, else the blocked foreach kernel; the default) or ``"foreach"`` (never compiles anything)."""

_NATIVE_UNAVAILABLE: dict[tuple[torch.dtype, torch.dtype, bool, bool], str] = {}
"""Why the C kernel could not be built, per (dtype, momentum dtype, Kahan, caution): the default path does not try
again in this process."""


def _native_kernel(dtype: torch.dtype, caution: bool, momentum_dtype: torch.dtype, kahan: bool) -> CpuLionKernel | None:
    """The C kernel for the default path, or None where it cannot be built (then the caller runs the foreach kernel).

    Unlike ``fused=True`` nobody asked for compiled code here, so a failure is logged (once), not warned about.
    """
    key = (torch.device("cpu"), dtype, momentum_dtype, kahan, caution, "c")
    why = (dtype, momentum_dtype, kahan, caution)
    kernel = _KERNELS.get(key)
    if kernel is None and why not in _NATIVE_UNAVAILABLE:
        with _KERNELS_LOCK:
            kernel = _KERNELS.get(key)
            if kernel is None and why not in _NATIVE_UNAVAILABLE:
                try:
                    kernel = _KERNELS[key] = CpuLionKernel(dtype, caution, momentum_dtype, kahan)
                except CpuKernelBuildError as exc:
                    _NATIVE_UNAVAILABLE[why] = str(exc)
                    logger.info("Lion: the C kernel is unavailable (%s); the default path uses foreach kernels", exc)
    # Only the C kernel is ever stored under a "c" key.
    return kernel if isinstance(kernel, CpuLionKernel) else None


class _NativePlan:
    """The decision "the C kernel takes this group's lists whole", with the signature under which it holds."""

    __slots__ = (
        "c_pointers",
        "c_ptrs",
        "comps",
        "dtype",
        "exp_avgs",
        "g_pointers",
        "m_dtype",
        "m_pointers",
        "m_ptrs",
        "nbytes",
        "nbytes_array",
        "numels",
        "p_pointers",
        "p_ptrs",
        "params",
    )

    def __init__(
        self,
        params: list[Tensor],
        exp_avgs: list[Tensor],
        comps: list[Tensor] | None,
        dtype: torch.dtype,
        m_dtype: torch.dtype,
        numels: list[int],
    ) -> None:
        # Copies of the lists (the caller's change at the next step); holding the tensors keeps their ids and storages
        # from being reused by others while the plan lives.
        self.params, self.exp_avgs = list(params), list(exp_avgs)
        self.comps = None if comps is None else list(comps)
        self.dtype, self.m_dtype = dtype, m_dtype
        self.p_ptrs = list(map(Tensor.data_ptr, params))
        self.m_ptrs = list(map(Tensor.data_ptr, exp_avgs))
        self.c_ptrs = list(map(Tensor.data_ptr, comps)) if comps is not None else None
        self.nbytes = list(map(_NBYTES, params))
        self.p_pointers, self.m_pointers = array.array("Q", self.p_ptrs), array.array("Q", self.m_ptrs)
        self.c_pointers = array.array("Q", self.c_ptrs) if self.c_ptrs is not None else None
        self.numels = sizes_array(numels)
        # For the compiled check (KeptStep): the byte sizes it compares, and where it writes the gradients' pointers.
        self.nbytes_array = array.array("Q", self.nbytes)
        self.g_pointers = array.array("Q", bytes(8 * len(self.params)))

    def same_tensors(self, params: list[Tensor], exp_avgs: list[Tensor], comps: list[Tensor] | None) -> bool:
        """Whether these lists hold, in order, the very tensors the decision was taken for (identity only)."""
        mine = self.comps
        return (
            len(params) == len(self.params)
            and all(map(operator.is_, params, self.params))
            and all(map(operator.is_, exp_avgs, self.exp_avgs))
            and (comps is None) == (mine is None)
            and (comps is None or mine is None or all(map(operator.is_, comps, mine)))
        )

    def holds(
        self,
        params: list[Tensor],
        grads: list[Tensor],
        exp_avgs: list[Tensor],
        comps: list[Tensor] | None,
        identity_checked: bool = False,
    ) -> array.array[int] | None:
        """The gradients' pointer array if the decision still holds for these lists, else None.

        Cheap list-wide checks, no Python loop per tensor. ``identity_checked`` skips :meth:`same_tensors` when the
        caller has just run it on these lists.
        """
        nbytes = self.nbytes
        holds = (
            (identity_checked or self.same_tensors(params, exp_avgs, comps))
            and list(map(Tensor.data_ptr, params)) == self.p_ptrs
            and list(map(_NBYTES, params)) == nbytes
            and all(map(Tensor.is_contiguous, params))
            and list(map(Tensor.data_ptr, exp_avgs)) == self.m_ptrs
            and (comps is None or list(map(Tensor.data_ptr, comps)) == self.c_ptrs)
            and _PLAIN_SET.issuperset(map(type, grads))
            and all(map(_IS_CPU, grads))
            and all(map(operator.is_, map(_DTYPE, grads), itertools.repeat(self.dtype)))
            and list(map(_NBYTES, grads)) == nbytes
            and all(map(Tensor.is_contiguous, grads))
        )
        return pointers(grads) if holds else None


class DispatchCache:
    """The dispatcher's decision for one parameter group, kept between steps; the optimizer holds one per group.

    Deciding which kernel serves a group means looking at every tensor's type, dtype, device, shape and layout: on a
    model of thousands of small tensors that costs more than the update itself. So the decision is kept together with
    a signature that is cheap to check at every step (a few C-level passes over each list) and fails whenever the
    decision could have changed:

    * the same parameter and momentum (and compensation) tensors, in the same order (identity): a gradient that
      appears or disappears, a replaced parameter, a new parameter group (it gets a cache of its own) and state
      replaced by ``load_state_dict`` (which also clears the caches) or by hand all fail it;
    * the parameters' data pointers, byte sizes and contiguity: ``p.data = ...`` (new storage, which any change of
      dtype allocates, or a new shape) and in-place changes of layout fail it;
    * the momenta's and compensations' data pointers: moving one to other memory (``.data = ...``, ``set_``) fails
      it. Their dtype, size and layout are not read again: the optimizer created them like their parameters, and
      every change that could make the kernel write outside them allocates new memory, which the pointer shows;
    * the gradients, new tensors at every step, are checked at every step for type, device, dtype, byte size and
      contiguity. Their shape is the parameter's: torch's ``.grad`` setter and autograd enforce it, and with the
      byte size and dtype the element count the kernel reads is checked anyway.

    While it holds, the kernel also reuses the pointer arrays of the parameters and momenta, and the optimizer
    skips its own per-tensor look at the momenta (:meth:`claim`). A failed check decides again from scratch, so the
    kernel that runs, and hence every bit, is the one the uncached path would choose.
    """

    __slots__ = ("_claimed", "_plan")

    def __init__(self) -> None:
        self._plan: _NativePlan | None = None
        self._claimed = False

    def clear(self) -> None:
        """Forget the decision (the next step decides again)."""
        self._plan = None
        self._claimed = False

    def keep(
        self,
        params: list[Tensor],
        exp_avgs: list[Tensor],
        comps: list[Tensor] | None,
        dtype: torch.dtype,
        m_dtype: torch.dtype,
        numels: list[int],
    ) -> None:
        """Keep the decision "the C kernel takes these lists whole" (each tensor with at least one element)."""
        self._plan = _NativePlan(params, exp_avgs, comps, dtype, m_dtype, numels)

    @property
    def dtypes(self) -> tuple[torch.dtype, torch.dtype] | None:
        """The parameters' and momenta's dtype of the kept decision, or None if there is none."""
        plan = self._plan
        return None if plan is None else (plan.dtype, plan.m_dtype)

    def claim(self, params: list[Tensor], exp_avgs: list[Tensor], comps: list[Tensor] | None) -> bool:
        """Whether the kept decision was taken for exactly these tensors, in this order (identity only).

        The optimizer asks before it would look at every momentum's dtype: if so, it hands the lists on unchecked
        and the dispatcher's next call checks the rest (pointers, sizes, layouts, the gradients) without repeating
        the identity check.
        """
        plan = self._plan
        self._claimed = plan is not None and plan.same_tensors(params, exp_avgs, comps)
        return self._claimed


def _step_with_plan(
    cache: DispatchCache,
    params: list[Tensor],
    grads: list[Tensor],
    exp_avgs: list[Tensor],
    hyper: dict[str, Any],
    comps: list[Tensor] | None,
    kernel_for: Callable[[torch.dtype, torch.dtype], CpuLionKernel | None],
) -> bool:
    """Run the C kernel on the lists if ``cache`` holds a decision whose signature still holds; False if not.

    ``kernel_for(dtype, momentum dtype)`` is the C kernel the caller's path would choose (None: none), so a kept
    decision never runs another kernel than the uncached path. A decision that no longer holds is dropped.
    """
    plan, claimed, cache._claimed = cache._plan, cache._claimed, False  # a claim counts for this call only
    if plan is None:
        return False
    grad_pointers = plan.holds(params, grads, exp_avgs, comps, identity_checked=claimed)
    kernel = kernel_for(plan.dtype, plan.m_dtype) if grad_pointers is not None else None
    if grad_pointers is None or kernel is None:
        cache._plan = None
        return False
    with torch.no_grad():
        scalars = kernel.scalars(hyper, plan.dtype, params[0].device)
        kernel.call_arrays(
            len(params), plan.p_pointers, grad_pointers, plan.m_pointers, plan.numels, scalars, plan.c_pointers
        )
    return True


class KeptStep:
    """A group's step on its kept C-kernel decision, checked by the compiled check (:mod:`.step_check`) in one pass.

    :meth:`check` answers whether the decision holds for the group as it is now (the same answer the Python checks of
    :meth:`DispatchCache.claim` and :func:`_step_with_plan` give, or "no" where unsure); :meth:`run` then runs the
    kernel those would run, on the same arrays. The optimizer checks every group before it runs any, so an error
    (found by the Python checks after a "no") is still raised before anything changes.
    """

    __slots__ = ("_holds", "_kernel", "_plan")

    def __init__(self, plan: _NativePlan, kernel: CpuLionKernel, holds: HoldsFunction) -> None:
        self._plan, self._kernel, self._holds = plan, kernel, holds

    @staticmethod
    def find(
        caches: tuple[DispatchCache, DispatchCache],
        n_params: int,
        foreach: bool | None,
        fused: bool | None,
        caution: bool,
    ) -> tuple[KeptStep, bool] | None:
        """The kept step of a group of ``n_params`` parameters, and whether it has Kahan summation; None if none.

        There is one where exactly one of the group's two decisions (plain, Kahan) is kept, it covers all
        ``n_params`` parameters, the group's ``foreach`` / ``fused`` select the C kernel (the default path with
        ``NOETHER_LION_DEFAULT_CPU_KERNEL=c``, or ``fused=True``), that kernel is built, and so is the compiled check
        (whose build this may start, in the background: see :func:`.step_check.holds_function`).
        """
        plain, kahan_cache = caches[0]._plan, caches[1]._plan
        if (plain is None) == (kahan_cache is None):
            return None
        plan, kahan = (plain, False) if plain is not None else (kahan_cache, True)
        assert plan is not None  # for mypy: exactly one is
        holds = holds_function(n_params) if len(plan.params) == n_params else None
        if holds is None:
            return None
        if fused:
            kernel = _c_kernel(plan.dtype, caution, plan.m_dtype, kahan)
        elif foreach is None and fused is None and _DEFAULT_CPU_KERNEL == "c":
            kernel = _native_kernel(plan.dtype, caution, plan.m_dtype, kahan)
        else:
            return None
        return (KeptStep(plan, kernel, holds), kahan) if kernel is not None else None

    @property
    def dtypes(self) -> tuple[torch.dtype, torch.dtype]:
        """The parameters' and momenta's dtype of the decision."""
        return self._plan.dtype, self._plan.m_dtype

    def check(self, params: list[Tensor], keys: list[Tensor], values: list[Any], offset: int) -> bool:
        """Whether the decision holds for the group's ``params`` (then the gradients' pointers are ready to run).

        Their states are ``values[offset:]`` of the state dict's snapshot ``keys`` / ``values``, taken this step.
        """
        plan = self._plan
        return self._holds(
            params,
            keys,
            values,
            offset,
            plan.params,
            plan.exp_avgs,
            plan.comps,
            plan.p_pointers.buffer_info()[0],
            plan.m_pointers.buffer_info()[0],
            plan.c_pointers.buffer_info()[0] if plan.c_pointers is not None else 0,
            plan.nbytes_array.buffer_info()[0],
            plan.dtype,
            plan.g_pointers.buffer_info()[0],
            _PLAIN,
        )

    def run(self, hyper: dict[str, Any]) -> None:
        """One step of the kernel on the group, after :meth:`check` said the decision holds."""
        plan, kernel = self._plan, self._kernel
        scalars = kernel.scalars(hyper, plan.dtype, _CPU)
        kernel.call_arrays(
            len(plan.params), plan.p_pointers, plan.g_pointers, plan.m_pointers, plan.numels, scalars, plan.c_pointers
        )


def _native_cpu_lion(
    params: list[Tensor],
    grads: list[Tensor],
    exp_avgs: list[Tensor],
    hyper: dict[str, Any],
    comps: list[Tensor] | None = None,
    cache: DispatchCache | None = None,
) -> bool:
    """The default path's CPU step with the C kernel, if it applies; False (nothing done) if it does not.

    It applies to lists of plain contiguous CPU tensors of one dtype pair the C kernel has (see ``C_PAIRS``),
    unless ``NOETHER_LION_DEFAULT_CPU_KERNEL=foreach``, once the kernel builds (once per machine) and passes its
    self-check. The result is bit-identical to the foreach and single-tensor kernels, so the choice never shows in
    the numbers. Callers keep traced and scripted code away from it. With a ``cache``, a decision taken at an earlier
    step is reused while its signature holds (see :class:`DispatchCache`).
    """
    if _DEFAULT_CPU_KERNEL != "c":
        if _DEFAULT_CPU_KERNEL != "foreach":
            raise ValueError(f"NOETHER_LION_DEFAULT_CPU_KERNEL={_DEFAULT_CPU_KERNEL!r}; expected 'c' or 'foreach'")
        return False
    kahan = comps is not None
    if cache is not None and _step_with_plan(
        cache, params, grads, exp_avgs, hyper, comps, lambda d, m: _native_kernel(d, hyper["caution"], m, kahan)
    ):
        return True
    if not params or not params[0].is_cpu or (params[0].dtype, exp_avgs[0].dtype) not in C_PAIRS:
        return False
    uniform = _uniform_contiguous(params, grads, exp_avgs, comps)
    if uniform is None:  # mixed dtypes, layouts, subclasses, bad triples, ...
        return False
    _, dtype, m_dtype = uniform
    kernel = _native_kernel(dtype, hyper["caution"], m_dtype, kahan)
    if kernel is None:
        return False
    with torch.no_grad():
        numels = list(map(Tensor.numel, params))
        scalars = kernel.scalars(hyper, dtype, params[0].device)
        if min(numels) > 0:
            kernel.call(params, grads, exp_avgs, numels, scalars, comps)
            if cache is not None:
                cache.keep(params, exp_avgs, comps, dtype, m_dtype, numels)
        else:  # 0-size tensors have nothing to update (and no storage to point at); such groups are not cached
            keep = [i for i, n in enumerate(numels) if n > 0]
            _call_some(kernel, keep, params, grads, exp_avgs, numels, scalars, comps)
    return True


def _call_some(
    kernel: _Kernel,
    keep: list[int],
    params: list[Tensor],
    grads: list[Tensor],
    exp_avgs: list[Tensor],
    numels: list[int],
    scalars: Any,
    comps: list[Tensor] | None = None,
) -> None:
    """Run ``kernel`` on the triples (and compensations) at the indices ``keep`` (nothing if there are none)."""
    if keep:
        ps, gs, ms = ([xs[i] for i in keep] for xs in (params, grads, exp_avgs))
        cs = [comps[i] for i in keep] if comps is not None else None
        kernel.call(ps, gs, ms, [numels[i] for i in keep], scalars, cs)


def _real_dtype(dtype: torch.dtype) -> torch.dtype:
    return {torch.complex64: torch.float32, torch.complex128: torch.float64, torch.complex32: torch.float16}.get(
        dtype, dtype
    )


def _is_non_overlapping_and_dense(t: Tensor) -> bool:
    """Whether ``t``'s elements fill ``numel`` consecutive storage slots (contiguous up to a permutation)."""
    expected = 1
    for size, stride in sorted(zip(t.shape, t.stride(), strict=True), key=lambda d: (d[1], d[0])):
        if size == 1:
            continue
        if stride != expected:
            return False
        expected *= size
    return True


def _same_dense_layout(p: Tensor, g: Tensor, m: Tensor) -> bool:
    """Whether the three tensors fill ``numel`` consecutive storage slots each, in one shared order.

    Dense with one permuted layout (e.g. channels_last): element ``i`` of each sits at the same position of its
    storage range ``[offset, offset + numel)``, so the kernel may treat the three ranges as flat arrays.
    """
    stride = p.stride()
    return g.stride() == stride and m.stride() == stride and _is_non_overlapping_and_dense(p)


def _mismatch(i: int, p: Tensor, g: Tensor, m: Tensor, c: Tensor | None = None) -> ValueError:
    comp = "" if c is None else f" and its Kahan compensation {c.dtype} {tuple(c.shape)} on {c.device}"
    return ValueError(
        f"fused Lion: parameter {i} is {p.dtype} {tuple(p.shape)} on {p.device}, but its grad is {g.dtype} "
        f"{tuple(g.shape)} on {g.device}, its exp_avg {m.dtype} {tuple(m.shape)} on {m.device}{comp}; "
        "all must have the param's shape and device, the grad and the compensation its dtype, and the exp_avg a "
        "real floating dtype (complex params: the param's dtype)"
    )


def _uniform_contiguous(
    params: list[Tensor], grads: list[Tensor], exp_avgs: list[Tensor], comps: list[Tensor] | None = None
) -> tuple[torch.device, torch.dtype, torch.dtype] | None:
    """``(device, dtype, momentum dtype)`` if all tensors are plain, contiguous, on one device, of matching shapes.

    The params, grads (and compensations) must have one real dtype, the momenta one real dtype.

    The common case, checked list by list with C-level ``map`` rather than tensor by tensor in Python (a few
    microseconds per 100 tensors). None means "take the general path", which also names any bad triple.
    """
    p0 = params[0]
    dtype, device, m_dtype = p0.dtype, p0.device, exp_avgs[0].dtype
    if not dtype.is_floating_point or not m_dtype.is_floating_point:
        return None
    lists = (params, grads, exp_avgs) if comps is None else (params, grads, exp_avgs, comps)
    for ts in lists:
        if not _PLAIN_SET.issuperset(map(type, ts)) or not all(map(Tensor.is_contiguous, ts)):
            return None
        want = m_dtype if ts is exp_avgs else dtype
        if any(d is not want for d in set(map(_DTYPE, ts))):
            return None
    if device.type == "cpu":
        if not all(all(map(_IS_CPU, ts)) for ts in lists):
            return None
    elif any(set(map(_DEVICE, ts)) != {device} for ts in lists):
        return None
    shapes = list(map(_SHAPE, params))
    if any(shapes != list(map(_SHAPE, ts)) for ts in lists[1:]):
        return None
    return device, dtype, m_dtype


_PLAIN_SET = frozenset(_PLAIN)
_CPU = torch.device("cpu")
_DTYPE = operator.attrgetter("dtype")
_DEVICE = operator.attrgetter("device")
_IS_CPU = operator.attrgetter("is_cpu")
_SHAPE = operator.attrgetter("shape")
_NBYTES = operator.attrgetter("nbytes")


def _default_to_foreach() -> bool:
    """The blocked foreach kernel is the faster one for every workload measured.

    See https://github.com/Emmi-AI/noether-optim/blob/main/docs/lion.md for the measurements.

    On CUDA too: the Triton kernel serves ``fused=True`` only, and stays off the default path until
    ``benchmarks/bench_lion_gpu.py`` measures it faster than the foreach kernel there (no GPU has run it yet).
    """
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
    kahan_comps: list[Tensor] | None = None,
) -> None:
    """Functional Lion: update ``params`` and ``exp_avgs`` in place (see :mod:`.reference` for the math).

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
        fused: True: :func:`_fused_lion` (the C or the compiled kernel); False: never a compiled kernel.
            Exclusive with ``foreach``.
        kahan_comps: Kahan summation: one compensation buffer per parameter (its shape and real dtype), updated in
            place; None: no compensation. ``exp_avgs`` may have another real floating dtype than the parameters.

    Raises:
        ValueError: On a bad hyperparameter, mismatched list lengths, or ``foreach`` and ``fused`` both True.
        RuntimeError: On a sparse gradient, or ``foreach=True`` under TorchScript.
    """
    if not len(params) == len(grads) == len(exp_avgs):
        raise ValueError(
            f"lion: params, grads and exp_avgs must have the same length, got {len(params)}, {len(grads)} and "
            f"{len(exp_avgs)}"
        )
    if kahan_comps is not None and len(kahan_comps) != len(params):
        raise ValueError(
            f"lion: kahan_comps must have one entry per parameter, got {len(kahan_comps)} for {len(params)}"
        )
    if fused and foreach:
        raise KernelChoiceError("lion: foreach and fused cannot both be True; choose one")
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
        kahan_comps=kahan_comps,
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
    kahan_comps: list[Tensor] | None = None,
    cache: DispatchCache | None = None,
) -> None:
    """Run the kernel ``fused`` / ``foreach`` select, on inputs the caller has already validated.

    ``cache`` (one per parameter group, held by the caller) keeps the C kernel's decision between steps. A claim on it
    (:meth:`DispatchCache.claim`) counts for this call only, whichever kernel runs.
    """
    hyper = _hyperparameters(
        beta1=beta1, beta2=beta2, lr=lr, weight_decay=weight_decay, caution=caution, maximize=maximize
    )
    try:
        if fused:
            _fused_lion(params, grads, exp_avgs, **hyper, kahan_comps=kahan_comps, cache=cache)
            return
        default = foreach is None and fused is None
        if (
            default
            and not torch.compiler.is_compiling()
            and not is_scripting()
            and _native_cpu_lion(params, grads, exp_avgs, hyper, kahan_comps, cache)
        ):
            return
        if foreach is None:
            foreach = _default_to_foreach()
        if foreach and is_scripting():
            raise RuntimeError("lion: torch.jit.script does not support foreach optimizers; pass foreach=False")
        kernel = _multi_tensor_lion if foreach else _single_tensor_lion
        kernel(params, grads, exp_avgs, **hyper, kahan_comps=kahan_comps)
    finally:
        if cache is not None:
            cache._claimed = False


def _fused_lion(
    params: list[Tensor],
    grads: list[Tensor],
    exp_avgs: list[Tensor],
    *,
    beta1: float,
    beta2: float,
    lr: float | Tensor,
    weight_decay: float,
    caution: bool,
    maximize: bool,
    kahan_comps: list[Tensor] | None = None,
    cache: DispatchCache | None = None,
) -> None:
    """Apply one Lion step to every ``(param, grad, exp_avg)`` triple in place with the fused kernel.

    Args:
        params: Parameters of one group (any devices and floating or complex dtypes, mixed).
        grads: Their gradients (same shape, dtype and device as each param); never modified.
        exp_avgs: Their momentum buffers (same shape, dtype and device as each param).
        beta1: Interpolation factor of the update direction: ``u = sign(beta1 * m + (1 - beta1) * g)``.
        beta2: Decay of the momentum: ``m = beta2 * m + (1 - beta2) * g``.
        lr: Learning rate, a float or a 1-element tensor (a new value never recompiles).
        weight_decay: Decoupled weight decay: ``p *= 1 - lr * weight_decay``.
        caution: Zero the update where it disagrees in sign with the gradient and rescale the rest.
        maximize: Ascend instead of descend.
        kahan_comps: The parameters' Kahan compensations (their shape and dtype), or None: no compensation.
        cache: The parameter group's :class:`DispatchCache`: where the C kernel takes the whole group, the decision
            and its checks are kept between steps as on the default path.

    Raises:
        ValueError: The lists differ in length, or a triple differs in shape, dtype or device.
        FusedLionCompileError: The kernel cannot be compiled here (no compiler, dynamo disabled, ...).
    """
    if not len(params) == len(grads) == len(exp_avgs):
        raise ValueError(
            f"fused Lion: params, grads and exp_avgs must have one entry per parameter, got "
            f"{len(params)}, {len(grads)} and {len(exp_avgs)}"
        )
    if not params:
        return
    hyper = _hyperparameters(
        beta1=beta1, beta2=beta2, lr=lr, weight_decay=weight_decay, caution=caution, maximize=maximize
    )
    if kahan_comps is not None and len(kahan_comps) != len(params):
        raise ValueError(f"fused Lion: {len(kahan_comps)} Kahan compensations for {len(params)} parameters")
    with torch.no_grad():
        if torch.compiler.is_compiling():
            # Traced into the caller's compiled graph, whose compiler fuses it: the reference kernel as it is.
            _single_tensor_lion(params, grads, exp_avgs, **hyper, kahan_comps=kahan_comps)
            return
        kahan = kahan_comps is not None
        if cache is not None and _step_with_plan(
            cache, params, grads, exp_avgs, hyper, kahan_comps, lambda d, m: _c_kernel(d, caution, m, kahan)
        ):
            return
        uniform = _uniform_contiguous(params, grads, exp_avgs, kahan_comps)
        if uniform is None:
            _general_fused_lion(params, grads, exp_avgs, hyper, kahan_comps)
            return
        device, dtype, m_dtype = uniform
        numels = list(map(Tensor.numel, params))
        kernel = _get_kernel(device, dtype, caution, m_dtype, kahan)
        limit = kernel.max_numel
        if min(numels) > 1 and max(numels) <= limit:
            kernel.call(params, grads, exp_avgs, numels, kernel.scalars(hyper, dtype, device), kahan_comps)
            if cache is not None and isinstance(kernel, CpuLionKernel):
                cache.keep(params, exp_avgs, kahan_comps, dtype, m_dtype, numels)
            return
        # 0-size tensors have nothing to update; single elements (a size-1 slot would specialise the compiled graph)
        # and tensors past the kernel's limit (the inductor kernel's int32 caution count) take the reference kernel.
        big = [i for i, n in enumerate(numels) if 1 < n <= limit]
        one = [i for i, n in enumerate(numels) if n == 1 or n > limit]
        if big:
            scalars = kernel.scalars(hyper, dtype, device)
            _call_some(kernel, big, params, grads, exp_avgs, numels, scalars, kahan_comps)
        if one:
            ps, gs, ms = ([xs[i] for i in one] for xs in (params, grads, exp_avgs))
            cs = [kahan_comps[i] for i in one] if kahan_comps is not None else None
            _single_tensor_lion(ps, gs, ms, **hyper, kahan_comps=cs)


def _c_kernel(dtype: torch.dtype, caution: bool, m_dtype: torch.dtype, kahan: bool) -> CpuLionKernel | None:
    """The kernel ``fused=True`` takes for CPU tensors of these dtypes if it is the C kernel, else None."""
    kernel = _get_kernel(torch.device("cpu"), dtype, caution, m_dtype, kahan)
    return kernel if isinstance(kernel, CpuLionKernel) else None


def _general_fused_lion(
    params: list[Tensor],
    grads: list[Tensor],
    exp_avgs: list[Tensor],
    hyper: dict[str, Any],
    comps: list[Tensor] | None = None,
) -> None:
    """The fused step of lists that mix devices, dtypes, layouts or tensor subclasses, or hold a bad triple."""
    groups: dict[tuple[torch.device, torch.dtype, torch.dtype], list[int]] = {}
    for i, (p, m) in enumerate(zip(params, exp_avgs, strict=True)):
        groups.setdefault((p.device, p.dtype, m.dtype), []).append(i)
    kahan = comps is not None
    # Validate everything before the first group is updated: nothing is half-applied.
    plans = []
    rest: tuple[list[Tensor], list[Tensor], list[Tensor], list[Tensor]] = ([], [], [], [])
    for (device, dtype, m_dtype), indices in groups.items():
        if not (dtype.is_floating_point or dtype.is_complex):
            raise ValueError(f"fused Lion: parameter {indices[0]} has dtype {dtype}; Lion needs floating params")
        flat: tuple[list[Tensor], list[Tensor], list[Tensor], list[Tensor]] = ([], [], [], [])
        numels: list[int] = []
        originals: list[tuple[Tensor, Tensor, Tensor, Tensor]] = []
        for i in indices:
            p_, g_, m_ = params[i], grads[i], exp_avgs[i]
            c_ = comps[i] if comps is not None else p_
            p, g, m, c = p_, g_, m_, c_
            shape = p.shape
            m_ok = m_dtype is dtype if dtype.is_complex else m_dtype.is_floating_point
            if (
                g.shape != shape
                or m.shape != shape
                or c.shape != shape
                or g.dtype is not dtype
                or c.dtype is not dtype
                or not m_ok
                or g.device != device
                or m.device != device
                or c.device != device
            ):
                raise _mismatch(i, p, g, m, c if kahan else None)
            n = p.numel() * (2 if dtype.is_complex else 1)
            quad = (p_, g_, m_, c_)
            if any(type(t) not in _PLAIN for t in quad) or n == 1:
                # Subclasses (e.g. DTensor) are not flattened into a kernel written for plain storage; a single
                # element would specialise the compiled graph.
                for target, t in zip(rest, quad, strict=True):
                    target.append(t)
                continue
            if n == 0:
                continue
            if dtype.is_complex:
                p, g, m, c = (torch.view_as_real(t) for t in quad)
            if all(t.is_contiguous() for t in (p, g, m, c)) or (
                _same_dense_layout(p, g, m) and c.stride() == p.stride()
            ):
                for target, t in zip(flat, (p, g, m, c), strict=True):
                    target.append(t)
                numels.append(n)
                originals.append(quad)
            else:
                for target, t in zip(rest, quad, strict=True):
                    target.append(t)
        if not flat[0]:
            continue  # e.g. only DTensors: no kernel is built for nothing
        real = _real_dtype(dtype)
        kernel = _get_kernel(device, real, hyper["caution"], _real_dtype(m_dtype), kahan)
        if max(numels) > kernel.max_numel:  # see _CAUTION_MAX_NUMEL: the reference kernel takes those
            keep = [j for j, n in enumerate(numels) if n <= kernel.max_numel]
            for j, n in enumerate(numels):
                if n > kernel.max_numel:
                    for target, tensor in zip(rest, originals[j], strict=True):
                        target.append(tensor)
            flat = tuple([xs[j] for j in keep] for xs in flat)  # type: ignore[assignment]
            numels = [numels[j] for j in keep]
        plans.append((kernel, device, real, flat, numels))
    for kernel, device, dtype, (flat_p, flat_g, flat_m, flat_c), numels in plans:
        kernel.call(flat_p, flat_g, flat_m, numels, kernel.scalars(hyper, dtype, device), flat_c if kahan else None)
    if rest[0]:
        _single_tensor_lion(*rest[:3], **hyper, kahan_comps=rest[3] if kahan else None)
