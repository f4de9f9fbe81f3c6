"""The fused Lion kernel: one compiled pass over memory per tensor, compiled once per chunk arity.

``Lion(..., fused=True)`` calls :func:`_fused_lion` with the raw lists of one param group. CPU tensors of float32,
float64 and bfloat16 go to the C kernel of :mod:`noether.core.optimizer.lion_cpu` (``NOETHER_FUSED_LION_CPU=inductor``
selects the kernel below instead); everything else, CUDA included, to the inductor kernel described here.
``Lion(...)`` without ``foreach``/``fused`` calls :func:`_native_cpu_lion`, which runs the same C kernel on CPU where
it applies and can be built, and otherwise leaves the step to the blocked foreach kernel. For every
parameter it computes, in one loop that reads ``p``, ``g`` and ``m`` once and writes ``p`` and ``m``
once (SPEC section 2, decision 22)::

    g  := -g                                   if maximize
    u  := sign(lerp(m, g, 1 - beta1))          = sign(beta1 * m + (1 - beta1) * g)
    u  := u * mask / max(count / numel, 1e-3)  if caution, mask = [u * g > 0], count = sum(mask) as an integer
    p  := p * (1 - lr * weight_decay) - lr * u
    m  := lerp(m, g, 1 - beta2)                = beta2 * m + (1 - beta2) * g

Design (why it looks like this):

- The kernel is ``torch.compile`` (inductor: C++/OpenMP on CPU, Triton on CUDA) of a function over a
  fixed number ``_CHUNK`` of flat 1-D tensor triples with dynamic sizes. It is compiled once per
  (device, dtype, caution) and reused for every chunk of every group, so the compile cost does
  not grow with the number of tensors (compiling over the whole tensor list took 107-110 s for 300
  tensors). A short last chunk is padded with tiny scratch tensors.
- After the one compile, chunks call the compiled graph directly, without dynamo's guards: a guard
  evaluation per call and a view per tensor cost more than the kernel on a model with hundreds of small
  tensors. The arguments are laid out in the order the graph was traced with, which is checked on tiny
  exact data right after compiling (a wrong layout raises instead of computing garbage). The compiled code
  reads data pointers and the sizes passed beside them, so contiguous n-D tensors are passed as they are
  (checked the same way; flat views otherwise). As the kernel trusts its inputs, every triple's dtype,
  device, shape and layout is checked first, in the common case list by list with C-level ``map``.
- The kernel is traced with large size hints (inductor plans OpenMP threads and vector tiling from them)
  and compiled under a cache-key tag naming them, as torch's FX graph cache does not key a dynamic-shape
  graph by its hints and could otherwise return this graph compiled for small sizes (2.5x slower).
- Every scalar (lr, the decay factor, both lerp weights) enters the graph as a 0-d tensor, so a changing
  (tensor or float) lr or a scheduled weight decay never recompiles.
- Low-precision params (bf16/fp16) are computed in float32 and rounded after every step the eager
  kernel rounds (inductor's ``emulate_precision_casts``), and floating-point contraction is on so the
  products that eager CPU kernels compute with an FMA (``lerp``, ``add(alpha=)``) are rounded once here
  too: on CPU the result is bit-identical to the single-tensor kernel (tested). Other compilers or
  devices may contract differently; then ``exp_avg`` differs in the last ulp and, only where the Lion
  direction is within one rounding of zero, ``p`` differs by one ``lr`` step.
- Parameters that cannot be flattened without a copy (non-dense layouts, or param/grad/state strides
  that differ), single-element parameters, tensor subclasses (DTensor) and, with caution, tensors past
  ``_CAUTION_MAX_NUMEL`` go through ``lion._single_tensor_lion``, the reference; 0-size parameters have
  nothing to update.
- Inside a ``torch.compile``'d step the reference kernel is traced instead, so the caller's compiler
  fuses it into its own graph.
"""

from __future__ import annotations

import contextlib
import logging
import operator
import os
import threading
import types
import warnings
from collections.abc import Callable
from typing import Any, Protocol

import torch
from torch import Tensor

from noether.core.optimizer.lion import _single_tensor_lion
from noether.core.optimizer.lion_cpu import C_DTYPES, CpuKernelBuildError, CpuLionKernel

__all__ = ["FusedLionCompileError"]

logger = logging.getLogger(__name__)

# Tensors per compiled call. Larger chunks mean fewer calls (less Python per step) but a longer one-off
# compile; 16 keeps the cold compile under 15 s on 2 cores and the per-step overhead under ~0.5 ms for
# 300 tensors.
_CHUNK = 16

# Inductor options for the kernel: round like eager in bf16/fp16 and contract a*b+c into an FMA like
# ATen's vectorised CPU kernels (lerp, add with alpha) do.
_CAUTION_MIN_MEAN = 1e-3
"""Floor of the caution mask's mean (as in ``lion._caution_steps``)."""

_HINT_SIZES = tuple((1 << 16) + 3 * i for i in range(64))
"""Size hints the kernel is traced with (slot ``i`` gets ``_HINT_SIZES[i]``).

Distinct sizes >= 2 give every slot a size symbol of its own (no 0/1 specialisation, no "these two sizes are equal"
guards) and let the size arguments be told apart. They are large because inductor plans its loops (OpenMP threads,
vector tiling) from the hints: a kernel traced on small sizes runs single-threaded.
"""

_CACHE_TAG = f"noether.fused_lion:hints={_HINT_SIZES[0]}+{_HINT_SIZES[1] - _HINT_SIZES[0]}i"
"""Added to torch's compile cache key. The FX graph cache keys a dynamic-shape graph without its size hints, so
without a tag it can hand back this graph compiled under other hints (by another version of this module): exact, but
measured 2.5x slower."""

_CAUTION_MAX_NUMEL = 2**31 - 1
"""Largest tensor the caution kernel takes: it counts the mask in int32 (int64 vectors cost a quarter of the counting
pass's speed in bfloat16); a larger tensor (8 GiB of float32) takes the reference kernel."""

_MAX_NUMEL = 2**63 - 1

_INDUCTOR_OPTIONS: dict[str, Any] = {
    "emulate_precision_casts": True,
    "cpp.enable_floating_point_contract_flag": "fast",
    "size_asserts": False,
}


class FusedLionCompileError(RuntimeError):
    """Raised when the fused Lion kernel cannot be compiled on this machine (use ``fused=False``)."""


def _opmath_dtype(dtype: torch.dtype) -> torch.dtype:
    """The dtype eager kernels compute in for ``dtype``: float32 for 16-bit floats, else ``dtype`` itself."""
    return torch.float32 if dtype in (torch.float16, torch.bfloat16) else dtype


def _agree(d: Tensor, g: Tensor) -> Tensor:
    """``sign(d) * g > 0`` as a bool mask: where the direction and the gradient have one sign, neither zero.

    Spelled with comparisons rather than ``sign`` and a product: the same mask (NaN agrees with nothing), and about
    half the work in the counting pass, which is compute-bound in bfloat16.
    """
    return ((d > 0) & (g > 0)) | ((d < 0) & (g < 0))


def _lion_update_(
    p: Tensor,
    g: Tensor,
    m: Tensor,
    lr64: Tensor,
    step: Tensor,
    decay: Tensor,
    w1: Tensor,
    w2: Tensor,
    grad_sign: Tensor,
    *,
    caution: bool,
) -> None:
    """One Lion update of ``p`` and ``m`` in place, with the numerics of ``lion._single_tensor_lion``.

    ``p``, ``g`` and ``m`` have one shape and one real dtype. The scalars are 0-d tensors: ``lr64`` the lr in
    float64; in the compute dtype (float32 for bf16/fp16, else the dtype itself) ``step`` = lr rounded to the
    param dtype, ``decay`` = 1 - lr * weight_decay, ``w1`` = 1 - beta1, ``w2`` = 1 - beta2 and ``grad_sign``
    = -1 to maximize, else 1 (multiplying by it is ``-g`` bit for bit, so maximize needs no kernel of its own).
    Every intermediate is rounded to the param dtype where the eager kernel rounds it.
    """
    dtype = p.dtype
    compute = _opmath_dtype(dtype)
    if compute is dtype:
        # Full precision: no casts (fewer graph nodes, a faster trace and compile).
        g = g * grad_sign
        d = torch.lerp(m, g, w1)
        u = torch.sign(d)
        if caution:
            agree = _agree(d, g)
            u = u * agree.to(dtype)
            mean = agree.sum(dtype=torch.int32).to(torch.float64) / agree.numel()
            step = (lr64 / torch.clamp(mean, min=_CAUTION_MIN_MEAN)).to(dtype)
        p.copy_(p * decay - u * step)
        m.copy_(torch.lerp(m, g, w2))
        return
    g_c = g.to(compute) * grad_sign
    m_c = m.to(compute)
    d = torch.lerp(m_c, g_c, w1).to(dtype)  # rounded as eager rounds it: a tiny value may become 0
    u = torch.sign(d)
    if caution:
        agree = _agree(d.to(compute), g_c)
        u = u * agree.to(dtype)
        mean = agree.sum(dtype=torch.int32).to(torch.float64) / agree.numel()
        step = (lr64 / torch.clamp(mean, min=_CAUTION_MIN_MEAN)).to(dtype).to(compute)
    decayed = (p.to(compute) * decay).to(dtype)
    p.copy_((decayed.to(compute) - u.to(compute) * step).to(dtype))
    m.copy_(torch.lerp(m_c, g_c, w2).to(dtype))


def _hyper_scalars(hyper: dict[str, Any], dtype: torch.dtype, device: torch.device) -> list[Tensor]:
    """The kernel's scalars for params of real ``dtype`` on ``device`` (see :func:`_lion_update_`)."""
    compute = _opmath_dtype(dtype)
    lr, weight_decay, beta1, beta2 = hyper["lr"], hyper["weight_decay"], hyper["beta1"], hyper["beta2"]
    if isinstance(lr, Tensor):
        lr64 = lr.detach().reshape(()).to(device=device, dtype=torch.float64)
    else:
        lr64 = torch.tensor(lr, dtype=torch.float64, device=device)
    return [
        lr64,
        lr64.to(dtype).to(compute),
        (1.0 - lr64 * weight_decay).to(compute),
        torch.tensor(1.0 - beta1, dtype=compute, device=device),
        torch.tensor(1.0 - beta2, dtype=compute, device=device),
        torch.tensor(-1.0 if hyper["maximize"] else 1.0, dtype=compute, device=device),
    ]


_N_SCALARS = 6


def _make_chunk_function(caution: bool, tag: str) -> Callable[..., None]:
    """A function updating one chunk of triples, with a code object of its own.

    Dynamo keeps its compiled code (and its recompile limit) per code object; one per kernel key keeps
    the keys from evicting each other.
    """

    def lion_chunk(ps: list[Tensor], gs: list[Tensor], ms: list[Tensor], *scalars: Tensor) -> None:
        for p, g, m in zip(ps, gs, ms, strict=True):
            _lion_update_(p, g, m, *scalars, caution=caution)

    code = lion_chunk.__code__.replace(co_name=f"lion_chunk_{tag}")
    return types.FunctionType(code, lion_chunk.__globals__, code.co_name, None, lion_chunk.__closure__)


def _cache_tagged() -> contextlib.AbstractContextManager[Any]:
    """A context in which torch's compile caches key entries by :data:`_CACHE_TAG` too (no-op before torch has it)."""
    config = getattr(torch.compiler, "config", None)
    previous = getattr(config, "cache_key_tag", None)
    if config is None or previous is None:
        return contextlib.nullcontext()
    patch: Callable[..., contextlib.AbstractContextManager[Any]] = config.patch
    return patch(cache_key_tag=f"{previous}|{_CACHE_TAG}" if previous else _CACHE_TAG)


class _CaptureBackend:
    """A ``torch.compile`` backend that compiles with inductor and keeps the compiled graph and its inputs."""

    def __init__(self) -> None:
        self.compiled: Callable[..., Any] | None = None
        self.example_inputs: list[Any] = []
        self.calls = 0

    def __call__(self, gm: torch.fx.GraphModule, example_inputs: list[Any]) -> Callable[..., Any]:
        from torch._inductor.compile_fx import compile_fx

        self.calls += 1
        compiled: Callable[..., Any] = compile_fx(  # type: ignore[assignment]
            gm, example_inputs, config_patches=dict(_INDUCTOR_OPTIONS)
        )
        self.compiled = compiled
        self.example_inputs = list(example_inputs)
        return compiled


class _ChunkKernel:
    """The compiled chunk kernel for one (device, dtype, caution), called without dynamo's guards."""

    def __init__(self, device: torch.device, dtype: torch.dtype, caution: bool) -> None:
        self.device = device
        self.dtype = dtype
        self.caution = caution
        self.chunk = _CHUNK
        self.compute_dtype = _opmath_dtype(dtype)
        tag = f"{device.type}{device.index if device.index is not None else ''}_{str(dtype).split('.')[-1]}"
        self.eager = _make_chunk_function(caution, f"{tag}_caution{int(caution)}")
        self.backend = _CaptureBackend()
        # Scratch triples that fill a short last chunk; never read back.
        self.pads = [[torch.zeros(2, dtype=dtype, device=device) for _ in range(self.chunk)] for _ in range(3)]
        self.pad_sizes = [2] * self.chunk
        self._getter: Callable[[list[Any]], tuple[Any, ...]] = operator.itemgetter(0)
        self.accepts_nd = False
        self._compile()
        self._self_check()

    def _compile(self) -> None:
        sizes = list(_HINT_SIZES[: self.chunk])
        triples = [[torch.zeros(n, dtype=self.dtype, device=self.device) for n in sizes] for _ in range(3)]
        scalars = self._scalars((1.0,) * _N_SCALARS)
        compiled = torch.compile(self.eager, backend=self.backend, dynamic=True, fullgraph=True)
        try:
            with torch.no_grad(), _cache_tagged():
                compiled(*triples, *scalars)
        except Exception as exc:
            raise FusedLionCompileError(
                f"fused Lion: torch.compile of the kernel failed for {self.dtype} on {self.device} "
                f"({type(exc).__name__}: {exc}); use fused=False"
            ) from exc
        if self.backend.compiled is None:
            raise FusedLionCompileError(
                "fused Lion: torch.compile did not compile the kernel (is dynamo disabled, e.g. by "
                "TORCHDYNAMO_DISABLE=1 or torch.compiler.set_stance('force_eager')?); use fused=False"
            )
        # Source layout of one call: ps, gs, ms, the scalars, then the sizes.
        sources: list[Any] = [*triples[0], *triples[1], *triples[2], *scalars]
        index: list[int] = []
        for example in self.backend.example_inputs:
            if isinstance(example, Tensor):
                position = next((i for i, t in enumerate(sources) if t is example), None)
            else:
                hint = example.node.hint if isinstance(example, torch.SymInt) else example
                position = len(sources) + sizes.index(hint) if hint in sizes else None
            if position is None:
                raise FusedLionCompileError(
                    f"fused Lion: unexpected input {example!r} of the compiled kernel (torch {torch.__version__}); "
                    "use fused=False"
                )
            index.append(position)
        self._getter = operator.itemgetter(*index) if len(index) > 1 else (lambda src: (src[index[0]],))

    @property
    def max_numel(self) -> int:
        """Largest tensor this kernel takes (with caution it counts the mask in int32)."""
        return _CAUTION_MAX_NUMEL if self.caution else _MAX_NUMEL

    def scalars(self, hyper: dict[str, Any], dtype: torch.dtype, device: torch.device) -> list[Tensor]:
        """The 0-d tensor scalars of one call (see :func:`_lion_update_`)."""
        return _hyper_scalars(hyper, dtype, device)

    def _scalars(self, values: tuple[float, ...]) -> list[Tensor]:
        dtypes = (torch.float64,) + (self.compute_dtype,) * (_N_SCALARS - 1)
        return [torch.tensor(v, dtype=d, device=self.device) for v, d in zip(values, dtypes, strict=True)]

    def _self_check(self) -> None:
        """Run the compiled graph on small exact data and compare with eager execution of the same code.

        All values are small dyadic numbers and every weight is a power of two, so every operation is exact and the
        two must agree bit for bit whatever the compiler contracts; a wrong argument layout cannot pass. A first run
        on 1-D tensors must pass. A second run passes the tensors in their own (contiguous, n-D) shapes: the compiled
        code reads only their data pointers and the sizes given beside them, and where that holds, ``call`` skips a
        flat view per tensor (a microsecond each, a tenth of a small model's step).
        """
        if not self._check_once(nd=False):
            raise FusedLionCompileError(
                f"fused Lion: the compiled kernel failed its self-check for {self.dtype} on {self.device} "
                f"(torch {torch.__version__}); use fused=False"
            )
        self.accepts_nd = True
        try:
            self.accepts_nd = self._check_once(nd=True)
        except Exception:  # a compiled graph that looks at shapes may raise on them: then it gets flat views
            self.accepts_nd = False

    def _check_once(self, *, nd: bool) -> bool:
        shapes: list[tuple[int, ...]] = [(3 + i,) for i in range(self.chunk - 1)]  # one short: padding is checked too
        if nd:
            shapes = [((2, 3), (3, 1, 2), (1, 4), (2, 2, 2))[i % 4] if i % 2 else s for i, s in enumerate(shapes)]
        gen = torch.Generator().manual_seed(0)

        def exact(shape: tuple[int, ...], scale: float) -> Tensor:
            return (torch.randint(-8, 9, shape, generator=gen).to(self.dtype) * scale).to(self.device)

        ps = [exact(s, 0.5) for s in shapes]
        gs = [exact(s, 0.25) for s in shapes]
        ms = [exact(s, 0.125) for s in shapes]
        scalars = self._scalars((0.5, 0.5, 0.5, 0.5, 0.25, -1.0))  # lr64, step, decay, w1, w2, grad_sign
        expected = [[t.clone().view(-1) for t in ts] for ts in (ps, gs, ms)]
        with torch.no_grad():
            self.eager(*expected, *scalars)
            self.call(ps, gs, ms, [p.numel() for p in ps], scalars)
        return all(
            torch.equal(got.view(-1), want) for got, want in zip([*ps, *ms], [*expected[0], *expected[2]], strict=True)
        )

    def call(
        self, ps: list[Tensor], gs: list[Tensor], ms: list[Tensor], numels: list[int], scalars: list[Tensor]
    ) -> None:
        """Update triples of ``numels`` (>= 2) elements in place, one chunk per compiled call.

        Each triple's elements must fill ``numels[i]`` consecutive storage slots in one order for all three tensors
        (contiguous, or dense with one shared permuted layout).
        """
        compiled = self.backend.compiled
        assert compiled is not None
        if not self.accepts_nd:
            ps, gs, ms = ([_flat(t, n) for t, n in zip(ts, numels, strict=True)] for ts in (ps, gs, ms))
        getter = self._getter
        k = self.chunk
        for start in range(0, len(ps), k):
            stop = start + k
            missing = stop - len(ps)
            if missing <= 0:
                src = [*ps[start:stop], *gs[start:stop], *ms[start:stop], *scalars, *numels[start:stop]]
            else:
                pads_p, pads_g, pads_m = (pad[:missing] for pad in self.pads)
                src = [
                    *ps[start:],
                    *pads_p,
                    *gs[start:],
                    *pads_g,
                    *ms[start:],
                    *pads_m,
                    *scalars,
                    *numels[start:],
                    *self.pad_sizes[:missing],
                ]
            compiled(*getter(src))


def _flat(t: Tensor, n: int) -> Tensor:
    """The 1-D view of ``t``'s ``n`` consecutive storage slots (``t`` contiguous or dense in a permuted layout)."""
    return t if t.dim() == 1 else t.as_strided((n,), (1,), t.storage_offset())


_PLAIN = (Tensor, torch.nn.Parameter)


class _Kernel(Protocol):
    """What ``_fused_lion`` needs of a kernel: its size limit, its call scalars and the call."""

    @property
    def max_numel(self) -> int: ...

    def scalars(self, hyper: dict[str, Any], dtype: torch.dtype, device: torch.device) -> Any: ...

    def call(self, ps: list[Tensor], gs: list[Tensor], ms: list[Tensor], numels: list[int], scalars: Any) -> None: ...


_CPU_KERNEL = os.environ.get("NOETHER_FUSED_LION_CPU", "c")
"""Which kernel ``fused=True`` uses for CPU tensors: ``"c"`` (``lion_cpu``, the default) or ``"inductor"``."""

_KERNELS: dict[tuple[torch.device, torch.dtype, bool, str], _Kernel] = {}
_KERNELS_LOCK = threading.Lock()
_WARNED: set[str] = set()


def _get_kernel(device: torch.device, dtype: torch.dtype, caution: bool) -> _Kernel:
    """The kernel for ``(device, dtype, caution)``, built on first use (once per process).

    CPU tensors of the dtypes in ``lion_cpu.C_DTYPES`` get the C kernel of :mod:`lion_cpu` unless
    ``NOETHER_FUSED_LION_CPU=inductor``; where it cannot be built (no C compiler, or its self-check fails) they get the
    inductor kernel, with a warning. Other dtypes and devices get the inductor kernel (Triton on CUDA).
    """
    backend = _CPU_KERNEL if device.type == "cpu" else "inductor"
    if backend == "c":
        backend = "c" if dtype in C_DTYPES else "inductor"
    key = (device, dtype, caution, backend)
    kernel = _KERNELS.get(key)
    if kernel is None:
        with _KERNELS_LOCK:
            kernel = _KERNELS.get(key)
            if kernel is None:
                kernel = _build_kernel(device, dtype, caution, backend)
                _KERNELS[key] = kernel
    return kernel


def _build_kernel(device: torch.device, dtype: torch.dtype, caution: bool, backend: str) -> _Kernel:
    if backend == "c":
        try:
            return CpuLionKernel(dtype, caution)
        except CpuKernelBuildError as exc:
            if str(exc) not in _WARNED:
                _WARNED.add(str(exc))
                warnings.warn(f"fused Lion: using the inductor kernel on CPU: {exc}", RuntimeWarning, stacklevel=4)
    elif backend != "inductor":
        raise ValueError(f"NOETHER_FUSED_LION_CPU={backend!r}; expected 'c' or 'inductor'")
    return _ChunkKernel(device, dtype, caution)


_DEFAULT_CPU_KERNEL = os.environ.get("NOETHER_LION_DEFAULT_CPU_KERNEL", "c")
"""Which kernel ``Lion`` without ``foreach``/``fused`` uses for CPU tensors: ``"c"`` (``lion_cpu`` where it builds,
else the blocked foreach kernel; the default) or ``"foreach"`` (never compiles anything)."""

_NATIVE_UNAVAILABLE: dict[tuple[torch.dtype, bool], str] = {}
"""Why the C kernel could not be built, per (dtype, caution): the default path does not try again in this process."""


def _native_kernel(dtype: torch.dtype, caution: bool) -> _Kernel | None:
    """The C kernel for the default path, or None where it cannot be built (then the caller runs the foreach kernel).

    Unlike ``fused=True`` nobody asked for compiled code here, so a failure is logged (once), not warned about.
    """
    key = (torch.device("cpu"), dtype, caution, "c")
    kernel = _KERNELS.get(key)
    if kernel is not None or (dtype, caution) in _NATIVE_UNAVAILABLE:
        return kernel
    with _KERNELS_LOCK:
        kernel = _KERNELS.get(key)
        if kernel is None and (dtype, caution) not in _NATIVE_UNAVAILABLE:
            try:
                kernel = _KERNELS[key] = CpuLionKernel(dtype, caution)
            except CpuKernelBuildError as exc:
                _NATIVE_UNAVAILABLE[(dtype, caution)] = str(exc)
                logger.info("Lion: the C kernel is unavailable (%s); the default path uses foreach kernels", exc)
    return kernel


def _native_cpu_lion(params: list[Tensor], grads: list[Tensor], exp_avgs: list[Tensor], hyper: dict[str, Any]) -> bool:
    """The default path's CPU step with the C kernel, if it applies; False (nothing done) if it does not.

    It applies to lists of plain contiguous CPU tensors of one dtype the C kernel has (float32, float64, bfloat16),
    unless ``NOETHER_LION_DEFAULT_CPU_KERNEL=foreach``, once the kernel builds (once per machine) and passes its
    self-check. The result is bit-identical to the foreach and single-tensor kernels, so the choice never shows in
    the numbers. Callers keep traced and scripted code away from it.
    """
    if _DEFAULT_CPU_KERNEL != "c":
        if _DEFAULT_CPU_KERNEL != "foreach":
            raise ValueError(f"NOETHER_LION_DEFAULT_CPU_KERNEL={_DEFAULT_CPU_KERNEL!r}; expected 'c' or 'foreach'")
        return False
    if not params or not params[0].is_cpu or params[0].dtype not in C_DTYPES:
        return False
    if _uniform_contiguous(params, grads, exp_avgs) is None:  # mixed dtypes, layouts, subclasses, bad triples, ...
        return False
    dtype = params[0].dtype
    kernel = _native_kernel(dtype, hyper["caution"])
    if kernel is None:
        return False
    with torch.no_grad():
        numels = list(map(Tensor.numel, params))
        if min(numels) > 0:
            kernel.call(params, grads, exp_avgs, numels, kernel.scalars(hyper, dtype, params[0].device))
        else:  # 0-size tensors have nothing to update (and no storage to point at)
            keep = [i for i, n in enumerate(numels) if n > 0]
            _call_some(kernel, keep, params, grads, exp_avgs, numels, kernel.scalars(hyper, dtype, params[0].device))
    return True


def _call_some(
    kernel: _Kernel,
    keep: list[int],
    params: list[Tensor],
    grads: list[Tensor],
    exp_avgs: list[Tensor],
    numels: list[int],
    scalars: Any,
) -> None:
    """Run ``kernel`` on the triples at the indices ``keep`` (nothing if there are none)."""
    if keep:
        ps, gs, ms = ([xs[i] for i in keep] for xs in (params, grads, exp_avgs))
        kernel.call(ps, gs, ms, [numels[i] for i in keep], scalars)


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


def _mismatch(i: int, p: Tensor, g: Tensor, m: Tensor) -> ValueError:
    return ValueError(
        f"fused Lion: parameter {i} is {p.dtype} {tuple(p.shape)} on {p.device}, but its grad is {g.dtype} "
        f"{tuple(g.shape)} on {g.device} and its exp_avg {m.dtype} {tuple(m.shape)} on {m.device}; "
        "all three must have the param's shape, dtype and device"
    )


def _uniform_contiguous(
    params: list[Tensor], grads: list[Tensor], exp_avgs: list[Tensor]
) -> tuple[torch.device, torch.dtype] | None:
    """``(device, dtype)`` if all tensors are plain, contiguous, of one real dtype and device, with matching shapes.

    The common case, checked list by list with C-level ``map`` rather than tensor by tensor in Python (a few
    microseconds per 100 tensors). None means "take the general path", which also names any bad triple.
    """
    p0 = params[0]
    dtype, device = p0.dtype, p0.device
    if not dtype.is_floating_point:
        return None
    lists = (params, grads, exp_avgs)
    for ts in lists:
        if not _PLAIN_SET.issuperset(map(type, ts)) or not all(map(Tensor.is_contiguous, ts)):
            return None
        if any(d is not dtype for d in set(map(_DTYPE, ts))):
            return None
    if device.type == "cpu":
        if not all(all(map(_IS_CPU, ts)) for ts in lists):
            return None
    elif any(set(map(_DEVICE, ts)) != {device} for ts in lists):
        return None
    shapes = list(map(_SHAPE, params))
    if shapes != list(map(_SHAPE, grads)) or shapes != list(map(_SHAPE, exp_avgs)):
        return None
    return device, dtype


_PLAIN_SET = frozenset(_PLAIN)
_DTYPE = operator.attrgetter("dtype")
_DEVICE = operator.attrgetter("device")
_IS_CPU = operator.attrgetter("is_cpu")
_SHAPE = operator.attrgetter("shape")


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
    hyper: dict[str, Any] = {
        "beta1": beta1,
        "beta2": beta2,
        "lr": lr,
        "weight_decay": weight_decay,
        "caution": caution,
        "maximize": maximize,
    }
    with torch.no_grad():
        if torch.compiler.is_compiling():
            # Traced into the caller's compiled graph, whose compiler fuses it: the reference kernel as it is.
            _single_tensor_lion(params, grads, exp_avgs, **hyper)
            return
        uniform = _uniform_contiguous(params, grads, exp_avgs)
        if uniform is None:
            _general_fused_lion(params, grads, exp_avgs, hyper)
            return
        device, dtype = uniform
        numels = list(map(Tensor.numel, params))
        kernel = _get_kernel(device, dtype, caution)
        limit = kernel.max_numel
        if min(numels) > 1 and max(numels) <= limit:
            kernel.call(params, grads, exp_avgs, numels, kernel.scalars(hyper, dtype, device))
            return
        # 0-size tensors have nothing to update; single elements (a size-1 slot would specialise the compiled graph)
        # and tensors past the kernel's limit (the inductor kernel's int32 caution count) take the reference kernel.
        big = [i for i, n in enumerate(numels) if 1 < n <= limit]
        one = [i for i, n in enumerate(numels) if n == 1 or n > limit]
        if big:
            _call_some(kernel, big, params, grads, exp_avgs, numels, kernel.scalars(hyper, dtype, device))
        if one:
            _single_tensor_lion([params[i] for i in one], [grads[i] for i in one], [exp_avgs[i] for i in one], **hyper)


def _general_fused_lion(
    params: list[Tensor], grads: list[Tensor], exp_avgs: list[Tensor], hyper: dict[str, Any]
) -> None:
    """The fused step of lists that mix devices, dtypes, layouts or tensor subclasses, or hold a bad triple."""
    device0, dtype0 = params[0].device, params[0].dtype
    if all(p.dtype is dtype0 for p in params) and all(p.device == device0 for p in params):
        groups: Any = {(device0, dtype0): ((params, grads, exp_avgs), range(len(params)))}
    else:
        tensor_lists: list[list[Tensor | None]] = [list(params), list(grads), list(exp_avgs)]
        groups = torch._C._group_tensors_by_device_and_dtype(tensor_lists, True)
    # Validate everything before the first group is updated: nothing is half-applied.
    plans = []
    rest: tuple[list[Tensor], list[Tensor], list[Tensor]] = ([], [], [])
    for (device, dtype), ((ps, gs, ms), indices) in groups.items():
        if not (dtype.is_floating_point or dtype.is_complex):
            raise ValueError(f"fused Lion: parameter {indices[0]} has dtype {dtype}; Lion needs floating params")
        flat_p: list[Tensor] = []
        flat_g: list[Tensor] = []
        flat_m: list[Tensor] = []
        numels: list[int] = []
        originals: list[tuple[Tensor, Tensor, Tensor]] = []
        for i, p_, g_, m_ in zip(indices, ps, gs, ms, strict=True):
            assert p_ is not None and g_ is not None and m_ is not None
            p, g, m = p_, g_, m_
            shape = p.shape
            if (
                g.shape != shape
                or m.shape != shape
                or g.dtype is not dtype
                or m.dtype is not dtype
                or g.device != device
                or m.device != device
            ):
                raise _mismatch(i, p, g, m)
            n = p.numel() * (2 if dtype.is_complex else 1)
            if type(p) not in _PLAIN or type(g) not in _PLAIN or type(m) not in _PLAIN or n == 1:
                # Subclasses (e.g. DTensor) are not flattened into a kernel written for plain storage; a single
                # element would specialise the compiled graph.
                rest[0].append(p_)
                rest[1].append(g_)
                rest[2].append(m_)
                continue
            if n == 0:
                continue
            if dtype.is_complex:
                p, g, m = torch.view_as_real(p), torch.view_as_real(g), torch.view_as_real(m)
            if (p.is_contiguous() and g.is_contiguous() and m.is_contiguous()) or _same_dense_layout(p, g, m):
                flat_p.append(p)
                flat_g.append(g)
                flat_m.append(m)
                numels.append(n)
                originals.append((p_, g_, m_))
            else:
                rest[0].append(p_)
                rest[1].append(g_)
                rest[2].append(m_)
        if not flat_p:
            continue  # e.g. only DTensors: no kernel is built for nothing
        kernel = _get_kernel(device, _real_dtype(dtype), hyper["caution"])
        if max(numels) > kernel.max_numel:  # see _CAUTION_MAX_NUMEL: the reference kernel takes those
            keep = [j for j, n in enumerate(numels) if n <= kernel.max_numel]
            for j, n in enumerate(numels):
                if n > kernel.max_numel:
                    for target, tensor in zip(rest, originals[j], strict=True):
                        target.append(tensor)
            flat_p, flat_g, flat_m = ([xs[j] for j in keep] for xs in (flat_p, flat_g, flat_m))
            numels = [numels[j] for j in keep]
        plans.append((kernel, device, _real_dtype(dtype), flat_p, flat_g, flat_m, numels))
    for kernel, device, dtype, flat_p, flat_g, flat_m, numels in plans:
        kernel.call(flat_p, flat_g, flat_m, numels, kernel.scalars(hyper, dtype, device))
    if rest[0]:
        _single_tensor_lion(*rest, **hyper)
