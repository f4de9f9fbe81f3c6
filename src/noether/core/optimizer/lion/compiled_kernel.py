"""The compiled Lion kernel: ``torch.compile`` (inductor) of the update rule, one pass over memory per tensor.

It serves ``fused=True`` on devices other than the CPU (Triton on CUDA) and, on CPU, float16 or machines where the C
kernel of :mod:`.cpu_kernel` cannot be built (or ``NOETHER_FUSED_LION_CPU=inductor``). The math is that of
:mod:`.reference`; for every parameter it reads ``p``, ``g`` and ``m`` once and writes ``p`` and ``m`` once. The
dispatcher (:mod:`.dispatch`) decides which tensors it gets.

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
- Low-precision values (bf16/fp16 params or momentum) are widened to float32, the step is computed there and each
  stored value (param, momentum, Kahan compensation) is rounded once, as the reference does (inductor's
  ``emulate_precision_casts`` keeps the rounding of ``p`` that the compensation measures), and floating-point
  contraction is on so the products that eager CPU kernels compute with an FMA (``lerp``) are rounded once here
  too: on CPU the result is bit-identical to the single-tensor kernel (tested). Other compilers or
  devices may contract differently; then ``exp_avg`` differs in the last ulp and, only where the Lion
  direction is within one rounding of zero, ``p`` differs by one ``lr`` step.
- Parameters that cannot be flattened without a copy (non-dense layouts, or param/grad/state strides
  that differ), single-element parameters, tensor subclasses (DTensor) and, with caution, tensors past
  ``_CAUTION_MAX_NUMEL`` go through ``reference._single_tensor_lion`` (by the dispatcher); 0-size parameters have
  nothing to update.
- Inside a ``torch.compile``'d step the reference kernel is traced instead, so the caller's compiler
  fuses it into its own graph.
"""

from __future__ import annotations

import contextlib
import operator
import types
from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor

from noether.core.optimizer.lion.reference import _CAUTION_MIN_MEAN, _compute_dtype

__all__ = ["FusedLionCompileError"]


# Tensors per compiled call. Larger chunks mean fewer calls (less Python per step) but a longer one-off
# compile; 16 keeps the cold compile under 15 s on 2 cores and the per-step overhead under ~0.5 ms for
# 300 tensors.
_CHUNK = 16

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

# Inductor options for the kernel: round like eager in bf16/fp16 and contract a*b+c into an FMA like
# ATen's vectorised CPU kernels (lerp, add with alpha) do.
_INDUCTOR_OPTIONS: dict[str, Any] = {
    "emulate_precision_casts": True,
    "cpp.enable_floating_point_contract_flag": "fast",
    "size_asserts": False,
}


class FusedLionCompileError(RuntimeError):
    """Raised when the fused Lion kernel cannot be compiled on this machine (use ``fused=False``)."""


def _agree(d: Tensor, g: Tensor) -> Tensor:
    """``sign(d) * g > 0`` as a bool mask: where the direction and the gradient have one sign, neither zero.

    Spelled with comparisons rather than ``sign`` and a product: the same mask (NaN agrees with nothing), and about
    half the work in the counting pass, which is compute-bound in bfloat16.
    """
    return ((d > 0) & (g > 0)) | ((d < 0) & (g < 0))


def _cautious(u: Tensor, d: Tensor, g: Tensor, lr64: Tensor, dtype: torch.dtype) -> tuple[Tensor, Tensor]:
    """The cautious update ``u`` (zero where ``d`` and ``g`` disagree) and its step, lr / the agreeing fraction.

    The agreeing entries are counted in int32 and the lr divided in float64; both results are in ``dtype``, the dtype
    the update is computed in. Shared by the full-precision and the widened branch of :func:`_lion_update_`.
    """
    agree = _agree(d, g)
    mean = agree.sum(dtype=torch.int32).to(torch.float64) / agree.numel()
    return u * agree.to(dtype), (lr64 / torch.clamp(mean, min=_CAUTION_MIN_MEAN)).to(dtype)


def _lion_update_(
    p: Tensor,
    g: Tensor,
    m: Tensor,
    c: Tensor | None,
    lr64: Tensor,
    step: Tensor,
    decay: Tensor,
    w1: Tensor,
    w2: Tensor,
    grad_sign: Tensor,
    *,
    caution: bool,
) -> None:
    """One Lion update of ``p``, ``m`` (and the compensation ``c``) in place, with the numerics of the reference.

    ``p``, ``g`` (and ``c``) share one real dtype, ``m`` has a real dtype of its own. The scalars are 0-d tensors:
    ``lr64`` the lr in float64; in the compute dtype (float64 if ``p`` or ``m`` is float64, else float32) ``step`` =
    lr, ``decay`` = 1 - lr * weight_decay, ``w1`` = 1 - beta1, ``w2`` = 1 - beta2 and ``grad_sign`` = -1 to
    maximize, else 1 (multiplying by it is ``-g`` bit for bit, so maximize needs no kernel of its own). Each stored
    value is rounded once, from the compute dtype.
    """
    dtype, m_dtype = p.dtype, m.dtype
    compute = _compute_dtype(dtype, m_dtype)
    if compute is dtype and compute is m_dtype and c is None:
        # Full precision: no casts (fewer graph nodes, a faster trace and compile).
        g = g * grad_sign
        d = torch.lerp(m, g, w1)
        u = torch.sign(d)
        if caution:
            u, step = _cautious(u, d, g, lr64, dtype)
        p.copy_(p * decay - u * step)
        m.copy_(torch.lerp(m, g, w2))
        return
    g_c = g.to(compute) * grad_sign
    m_c = m.to(compute)
    d = torch.lerp(m_c, g_c, w1)
    u = torch.sign(d)
    if caution:
        u, step = _cautious(u, d, g_c, lr64, compute)
    x = p.to(compute)
    if c is not None:
        x = x + c.to(compute)
    x = x * decay - u * step
    rounded = x.to(dtype)
    p.copy_(rounded)
    if c is not None:
        c.copy_((x - rounded.to(compute)).to(dtype))
    m.copy_(torch.lerp(m_c, g_c, w2).to(m_dtype))


def _hyper_scalars(hyper: dict[str, Any], compute: torch.dtype, device: torch.device) -> list[Tensor]:
    """The kernel's scalars for the compute dtype ``compute`` on ``device`` (see :func:`_lion_update_`)."""
    lr, weight_decay, beta1, beta2 = hyper["lr"], hyper["weight_decay"], hyper["beta1"], hyper["beta2"]
    if isinstance(lr, Tensor):
        lr64 = lr.detach().reshape(()).to(device=device, dtype=torch.float64)
    else:
        lr64 = torch.tensor(lr, dtype=torch.float64, device=device)
    return [
        lr64,
        lr64.to(compute),
        (1.0 - lr64 * weight_decay).to(compute),
        torch.tensor(1.0 - beta1, dtype=compute, device=device),
        torch.tensor(1.0 - beta2, dtype=compute, device=device),
        torch.tensor(-1.0 if hyper["maximize"] else 1.0, dtype=compute, device=device),
    ]


_N_SCALARS = 6


def _make_chunk_function(caution: bool, kahan: bool, tag: str) -> Callable[..., None]:
    """A function updating one chunk of triples, with a code object of its own.

    Dynamo keeps its compiled code (and its recompile limit) per code object; one per kernel key keeps
    the keys from evicting each other.
    """

    def lion_chunk(ps: list[Tensor], gs: list[Tensor], ms: list[Tensor], cs: list[Tensor], *scalars: Tensor) -> None:
        for i, (p, g, m) in enumerate(zip(ps, gs, ms, strict=True)):
            _lion_update_(p, g, m, cs[i] if kahan else None, *scalars, caution=caution)

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
    """The compiled chunk kernel for one (device, dtype, momentum dtype, Kahan, caution), called without guards."""

    def __init__(
        self,
        device: torch.device,
        dtype: torch.dtype,
        caution: bool,
        momentum_dtype: torch.dtype | None = None,
        kahan: bool = False,
    ) -> None:
        self.device = device
        self.dtype = dtype
        self.momentum_dtype = dtype if momentum_dtype is None else momentum_dtype
        self.caution = caution
        self.kahan = kahan
        self.chunk = _CHUNK
        self.compute_dtype = _compute_dtype(dtype, self.momentum_dtype)
        names = "_".join(str(d).split(".")[-1] for d in (dtype, self.momentum_dtype))
        tag = f"{device.type}{device.index if device.index is not None else ''}_{names}_kahan{int(kahan)}"
        self.eager = _make_chunk_function(caution, kahan, f"{tag}_caution{int(caution)}")
        self.backend = _CaptureBackend()
        # Scratch tensors that fill a short last chunk; never read back.
        self.dtypes = (dtype, dtype, self.momentum_dtype) + ((dtype,) if kahan else ())
        self.pads = [[torch.zeros(2, dtype=d, device=device) for _ in range(self.chunk)] for d in self.dtypes]
        self.pad_sizes = [2] * self.chunk
        self._getter: Callable[[list[Any]], tuple[Any, ...]] = operator.itemgetter(0)
        self.accepts_nd = False
        self._compile()
        self._self_check()

    def _compile(self) -> None:
        sizes = list(_HINT_SIZES[: self.chunk])
        triples = [[torch.zeros(n, dtype=d, device=self.device) for n in sizes] for d in self.dtypes]
        if not self.kahan:
            triples.append([])
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
        # Source layout of one call: ps, gs, ms, the compensations (if any), the scalars, then the sizes.
        sources: list[Any] = [*triples[0], *triples[1], *triples[2], *triples[3], *scalars]
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
        """The 0-d tensor scalars of one call (see :func:`_lion_update_`), in this kernel's compute dtype."""
        return _hyper_scalars(hyper, self.compute_dtype, device)

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

        def exact(shape: tuple[int, ...], scale: float, dtype: torch.dtype) -> Tensor:
            return (torch.randint(-8, 9, shape, generator=gen).to(dtype) * scale).to(self.device)

        ps = [exact(s, 0.5, self.dtype) for s in shapes]
        gs = [exact(s, 0.25, self.dtype) for s in shapes]
        ms = [exact(s, 0.125, self.momentum_dtype) for s in shapes]
        # Compensations below the parameters' last place (in 16-bit dtypes): the sum rounds, the new one is not 0.
        cs = [exact(s, 2.0**-12, self.dtype) for s in shapes] if self.kahan else []
        scalars = self._scalars((0.5, 0.5, 0.5, 0.5, 0.25, -1.0))  # lr64, step, decay, w1, w2, grad_sign
        expected = [[t.clone().view(-1) for t in ts] for ts in (ps, gs, ms, cs)]
        with torch.no_grad():
            self.eager(*expected, *scalars)
            self.call(ps, gs, ms, [p.numel() for p in ps], scalars, cs if self.kahan else None)
        got, want = [*ps, *ms, *cs], [*expected[0], *expected[2], *expected[3]]
        return all(torch.equal(a.view(-1), b) for a, b in zip(got, want, strict=True))

    def call(
        self,
        ps: list[Tensor],
        gs: list[Tensor],
        ms: list[Tensor],
        numels: list[int],
        scalars: list[Tensor],
        cs: list[Tensor] | None = None,
    ) -> None:
        """Update triples of ``numels`` (>= 2) elements in place, one chunk per compiled call.

        Each triple's elements must fill ``numels[i]`` consecutive storage slots in one order for all three tensors
        (contiguous, or dense with one shared permuted layout); ``cs``, the Kahan compensations, are laid out like
        the parameters and given exactly when the kernel has them.
        """
        compiled = self.backend.compiled
        assert compiled is not None
        if (cs is not None) != self.kahan:
            raise ValueError(f"compiled Lion kernel: kahan={self.kahan} but compensations were given: {cs is not None}")
        lists = [ps, gs, ms] + ([cs] if cs is not None else [])
        if not self.accepts_nd:
            lists = [[_flat(t, n) for t, n in zip(ts, numels, strict=True)] for ts in lists]
        getter = self._getter
        k = self.chunk
        for start in range(0, len(ps), k):
            stop = start + k
            missing = stop - len(ps)
            src: list[Any] = []
            for ts, pad in zip(lists, self.pads, strict=True):
                src += ts[start:stop]
                if missing > 0:
                    src += pad[:missing]
            src += scalars
            src += numels[start:stop]
            if missing > 0:
                src += self.pad_sizes[:missing]
            compiled(*getter(src))


def _flat(t: Tensor, n: int) -> Tensor:
    """The 1-D view of ``t``'s ``n`` consecutive storage slots (``t`` contiguous or dense in a permuted layout)."""
    return t if t.dim() == 1 else t.as_strided((n,), (1,), t.storage_offset())
