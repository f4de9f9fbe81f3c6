"""The Triton kernel of Lion, run on CPU tensors through Triton's interpreter, against the reference kernel.

``TRITON_INTERPRET=1`` must be set when a kernel is decorated, i.e. when its module is executed. The module imported
by the rest of the suite (and by the dispatcher) was executed without it, so the ``interp`` fixture executes a fresh,
private copy of the module file with the variable set, and removes both afterwards: the interpreted kernels never leak
into other tests, whatever ran before. The kernels are also compiled for a CUDA target (no GPU needed: Triton ships
its own compiler) to check that the real GPU code builds, vectorises and contracts nothing but the intended FMAs.

Tolerances, from the dtype: the interpreter computes ``tl.fma`` as a multiply then an add (two roundings), where the
GPU and ATen's CPU kernels round once, so ``exp_avg`` may differ by one rounding in its dtype, ``eps * (|m| + |g|)``.
Parameters (and Kahan compensations) must match bit for bit wherever the direction (computed in float32) is not
within a few float32 roundings of zero (checked on the data: no element is).
"""

from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import sys
import types
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

from noether.core.optimizer.lion import dispatch, triton_kernel
from noether.core.optimizer.lion.reference import _single_tensor_lion

triton = pytest.importorskip("triton", reason="the Triton kernel's tests need the 'triton' package")
GPUTarget = pytest.importorskip("triton.backends.compiler").GPUTarget

DTYPES = [torch.float32, torch.bfloat16, torch.float16]
BLOCK = 64
EPS32 = torch.finfo(torch.float32).eps
RAGGED = [(0,), (1,), (15,), (16,), (17,), (63,), (64,), (65,), (3, 43), (130,)]
"""Sizes around the test block size (64) and the 16-element vector width: empty, single, one short, exact, one past."""


@pytest.fixture(scope="module")
def interp() -> Iterator[types.ModuleType]:
    """A private copy of the kernel module whose kernels run in Triton's interpreter."""
    name = "_noether_triton_kernel_interpreted"
    path = Path(triton_kernel.__file__)
    previous = os.environ.get("TRITON_INTERPRET")
    os.environ["TRITON_INTERPRET"] = "1"
    try:
        spec = importlib.util.spec_from_file_location(name, path)
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module  # dataclasses look their module up while the file executes
        spec.loader.exec_module(module)
        yield module
    finally:
        sys.modules.pop(name, None)
        if previous is None:
            os.environ.pop("TRITON_INTERPRET", None)
        else:
            os.environ["TRITON_INTERPRET"] = previous


Tensors = list[torch.Tensor]


def make(
    shapes: list[tuple[int, ...]], dtype: torch.dtype, seed: int, m_dtype: torch.dtype | None = None
) -> tuple[Tensors, Tensors, Tensors]:
    gen = torch.Generator().manual_seed(seed)
    ps = [torch.randn(s, generator=gen).to(dtype) for s in shapes]
    gs = [torch.randn(s, generator=gen).to(dtype) for s in shapes]
    ms = [torch.randn(s, generator=gen).to(m_dtype or dtype) for s in shapes]
    return ps, gs, ms


def make_comps(ps: Tensors, seed: int) -> Tensors:
    """Compensations as a run leaves them: the rounding error of a float32 weight near ``p``, in p's dtype.

    ``ps`` are moved onto the rounded weights, so that ``|c|`` is at most half a unit in the last place of ``p``.
    """
    gen = torch.Generator().manual_seed(seed)
    comps = []
    for p in ps:
        x = p.float() + torch.randn(p.shape, generator=gen) * torch.finfo(p.dtype).eps * p.float().abs()
        p.copy_(x)
        comps.append((x - p.float()).to(p.dtype))
    return comps


def clones(ts: Tensors) -> Tensors:
    return [t.clone() for t in ts]


def run_kernel(
    module: types.ModuleType,
    ps: Tensors,
    gs: Tensors,
    ms: Tensors,
    hyper: dict[str, object],
    block: int = BLOCK,
    cs: Tensors | None = None,
) -> None:
    dtype, m_dtype = ps[0].dtype, ms[0].dtype
    module.check_inputs(ps, gs, ms, dtype, m_dtype, cs)
    kernel = module.TritonLionKernel(dtype, bool(hyper["caution"]), m_dtype, block=block)
    kernel.call(ps, gs, ms, [p.numel() for p in ps], kernel.scalars(hyper, dtype, ps[0].device), cs)


def assert_matches_reference(
    module: types.ModuleType,
    ps: Tensors,
    gs: Tensors,
    ms: Tensors,
    hyper: dict[str, object],
    block: int = BLOCK,
    cs: Tensors | None = None,
) -> None:
    """One step of the kernel and of the reference on copies of the same tensors, compared (see the module doc)."""
    dtype = ps[0].dtype
    eps_m = torch.finfo(ms[0].dtype).eps
    w1 = torch.tensor(1.0 - float(hyper["beta1"]), dtype=torch.float32).double()  # type: ignore[arg-type]
    for m, g in zip(ms, gs, strict=True):
        g64 = -g.double() if hyper["maximize"] else g.double()
        d = m.double() + w1 * (g64 - m.double())
        # The lerp is computed in float32 whatever the dtype: that is where the two ways of rounding part.
        near_zero = (d != 0) & (d.abs() <= 4 * EPS32 * (m.double().abs() + g64.abs()))
        assert not near_zero.any(), "test data has a direction within rounding of zero; pick another seed"
    ref_p, ref_m = clones(ps), clones(ms)
    ref_c = None if cs is None else clones(cs)
    _single_tensor_lion(ref_p, list(gs), ref_m, **hyper, kahan_comps=ref_c)  # type: ignore[arg-type]
    m0 = clones(ms)
    run_kernel(module, ps, gs, ms, hyper, block, cs)
    pairs = list(zip(ps, ref_p, strict=True)) + (list(zip(cs, ref_c, strict=True)) if cs and ref_c else [])
    for i, (p, rp) in enumerate(pairs):
        assert torch.equal(p.isnan(), rp.isnan()), f"tensor {i}: NaN positions differ"
        assert torch.equal(p.nan_to_num(), rp.nan_to_num()), f"tensor {i}: params/comps differ ({dtype}, {hyper})"
    for i, (m, rm, old, g) in enumerate(zip(ms, ref_m, m0, gs, strict=True)):
        assert m.dtype is rm.dtype
        tol = eps_m * (old.double().abs() + g.double().abs())
        diff = (m.double() - rm.double()).abs()
        assert torch.equal(m.isnan(), rm.isnan()), f"tensor {i}: NaN positions of exp_avg differ"
        assert bool((diff.nan_to_num() <= tol).all()), f"tensor {i}: exp_avg off by {diff.max()} ({dtype}, {hyper})"


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("caution", [False, True], ids=["plain", "caution"])
@pytest.mark.parametrize("maximize", [False, True], ids=["min", "max"])
def test_every_option_matches_reference(
    interp: types.ModuleType, dtype: torch.dtype, caution: bool, maximize: bool
) -> None:
    ps, gs, ms = make(RAGGED, dtype, seed=1)
    hyper = {"beta1": 0.9, "beta2": 0.99, "lr": 0.01, "weight_decay": 0.1, "caution": caution, "maximize": maximize}
    assert_matches_reference(interp, ps, gs, ms, hyper)


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_tensor_lr_no_decay_and_large_lerp_weights(interp: types.ModuleType, dtype: torch.dtype) -> None:
    """A tensor lr, weight decay 0, and betas < 0.5 (ATen's lerp takes its other branch)."""
    ps, gs, ms = make([(5,), (70,), (33, 3)], dtype, seed=2)
    hyper = {
        "beta1": 0.3,
        "beta2": 0.45,
        "lr": torch.tensor(3e-3, dtype=torch.float64),
        "weight_decay": 0.0,
        "caution": True,
        "maximize": False,
    }
    assert_matches_reference(interp, ps, gs, ms, hyper)


LOW_PRECISION = [
    (torch.bfloat16, torch.bfloat16, True),
    (torch.float16, torch.float16, True),
    (torch.float32, torch.bfloat16, False),
    (torch.bfloat16, torch.float32, False),
    (torch.bfloat16, torch.float32, True),
]
"""(parameter dtype, momentum dtype, Kahan compensation): the low-precision options, alone and together."""


@pytest.mark.parametrize(
    ("p_dtype", "m_dtype", "kahan"),
    LOW_PRECISION,
    ids=[f"{str(p)[6:]}-m_{str(m)[6:]}{'-kahan' if k else ''}" for p, m, k in LOW_PRECISION],
)
@pytest.mark.parametrize("caution", [False, True], ids=["plain", "caution"])
@pytest.mark.parametrize("maximize", [False, True], ids=["min", "max"])
def test_low_precision_options_match_reference(
    interp: types.ModuleType,
    p_dtype: torch.dtype,
    m_dtype: torch.dtype,
    kahan: bool,
    caution: bool,
    maximize: bool,
) -> None:
    """Kahan compensation and a momentum dtype of its own, on ragged sizes (0-size and 1-element included)."""
    ps, gs, ms = make(RAGGED, p_dtype, seed=7, m_dtype=m_dtype)
    cs = make_comps(ps, seed=8) if kahan else None
    if cs is not None:
        assert any(bool(c.ne(0).any()) for c in cs)  # the compensations take part
    hyper = {"beta1": 0.9, "beta2": 0.99, "lr": 0.01, "weight_decay": 0.1, "caution": caution, "maximize": maximize}
    assert_matches_reference(interp, ps, gs, ms, hyper, cs=cs)


def test_kahan_carries_updates_below_half_an_ulp_over_steps(interp: types.ModuleType) -> None:
    """bfloat16 weights near 1.0 (ulp 2**-7) with lr = 1e-3: each step alone rounds away, the compensation keeps it.

    Ten steps of the kernel and of the reference, compared after every step (params and compensations bit for bit),
    with a tensor lr and no weight decay; the weights must have moved by about ten steps.
    """
    n = 70
    p0 = (1.0 + torch.linspace(-0.2, 0.2, n)).to(torch.bfloat16)
    g = torch.where(torch.arange(n) % 3 == 0, -1.0, 1.0).to(torch.bfloat16)
    ps, ms, cs = [p0.clone()], [torch.zeros(n, dtype=torch.bfloat16)], [torch.zeros(n, dtype=torch.bfloat16)]
    ref_p, ref_m, ref_c = clones(ps), clones(ms), clones(cs)
    lr = torch.tensor(1e-3, dtype=torch.float64)
    hyper = {"beta1": 0.9, "beta2": 0.99, "lr": lr, "weight_decay": 0.0, "caution": False, "maximize": False}
    kernel = interp.TritonLionKernel(torch.bfloat16, False, block=BLOCK)
    for _ in range(10):
        _single_tensor_lion(ref_p, [g], ref_m, **hyper, kahan_comps=ref_c)  # type: ignore[arg-type]
        kernel.call(ps, [g], ms, [n], kernel.scalars(hyper, torch.bfloat16, ps[0].device), cs)
        assert torch.equal(ps[0], ref_p[0]) and torch.equal(cs[0], ref_c[0])
        torch.testing.assert_close(ms[0], ref_m[0], rtol=2 * torch.finfo(torch.bfloat16).eps, atol=0)
    moved = (ps[0].double() + cs[0].double()) - p0.double()
    torch.testing.assert_close(moved, -10 * 1e-3 * g.double(), rtol=0.02, atol=0)
    assert bool(ps[0].ne(p0).any())


@pytest.mark.parametrize("block", [16, 32, 128])
def test_block_sizes(interp: types.ModuleType, block: int) -> None:
    """The same data cut into blocks of other sizes (every tensor of RAGGED crosses or ends on some boundary)."""
    ps, gs, ms = make(RAGGED, torch.float32, seed=3)
    hyper = {"beta1": 0.9, "beta2": 0.99, "lr": 0.02, "weight_decay": 0.05, "caution": True, "maximize": False}
    assert_matches_reference(interp, ps, gs, ms, hyper, block=block)


@pytest.mark.filterwarnings("ignore:invalid value encountered:RuntimeWarning")  # numpy, on inf - inf
def test_caution_floor_nan_inf_and_zeros(interp: types.ModuleType) -> None:
    """Caution with nothing agreeing (the mean's floor), and NaN, inf and zeros where the reference defines them."""
    g = torch.tensor([1.0, -2.0, 3.0, 0.5])
    m = -10 * g  # the direction opposes the gradient everywhere: count 0, mean floored at 1e-3
    p = torch.tensor([1.0, 2.0, 3.0, 4.0])
    g2 = torch.tensor([float("nan"), 1.0, 0.0, float("inf"), -1.0, 0.0, 2.0])
    m2 = torch.tensor([0.5, float("nan"), 0.0, 1.0, float("-inf"), -0.0, 1.0])
    p2 = torch.tensor([1.0, 1.0, 1.0, 1.0, 1.0, float("nan"), -0.0])
    for caution in (False, True):
        hyper = {"beta1": 0.9, "beta2": 0.99, "lr": 0.01, "weight_decay": 0.1, "caution": caution, "maximize": False}
        ps, gs, ms = [p.clone(), p2.clone()], [g, g2], [m.clone(), m2.clone()]
        ref_p, ref_m = clones(ps), clones(ms)
        _single_tensor_lion(ref_p, list(gs), ref_m, **hyper)  # type: ignore[arg-type]
        run_kernel(interp, ps, gs, ms, hyper)
        for got, want in zip(ps + ms, ref_p + ref_m, strict=True):
            torch.testing.assert_close(got, want, rtol=0, atol=0, equal_nan=True)


def test_complex_parameters_as_real_views(interp: types.ModuleType) -> None:
    gen = torch.Generator().manual_seed(4)
    ps, gs, ms = ([torch.randn(37, dtype=torch.complex64, generator=gen)] for _ in range(3))
    hyper = {"beta1": 0.9, "beta2": 0.99, "lr": 0.01, "weight_decay": 0.1, "caution": True, "maximize": False}
    ref_p, ref_m = clones(ps), clones(ms)
    _single_tensor_lion(ref_p, gs, ref_m, **hyper)  # type: ignore[arg-type]
    real = [torch.view_as_real(t) for t in (ps[0], gs[0], ms[0])]
    run_kernel(interp, [real[0]], [real[1]], [real[2]], hyper)
    assert torch.equal(ps[0], ref_p[0])
    torch.testing.assert_close(ms[0], ref_m[0], rtol=2 * torch.finfo(torch.float32).eps, atol=1e-7)


def test_dense_permuted_layout_is_accepted_and_non_dense_is_refused(interp: types.ModuleType) -> None:
    ps, gs, ms = make([(2, 3, 5, 7)], torch.float32, seed=5)
    cl = [t.contiguous(memory_format=torch.channels_last) for t in (ps[0], gs[0], ms[0])]
    hyper = {"beta1": 0.9, "beta2": 0.99, "lr": 0.01, "weight_decay": 0.1, "caution": True, "maximize": False}
    assert_matches_reference(interp, [cl[0]], [cl[1]], [cl[2]], hyper)

    base = torch.randn(8, 8)
    with pytest.raises(ValueError, match=r"parameter 0 .* not dense in memory"):
        interp.check_inputs([base[:, :4]], [torch.randn(8, 4)], [torch.randn(8, 4)], torch.float32)
    with pytest.raises(ValueError, match=r"parameter 0 .*strides"):
        interp.check_inputs([base.t()], [base.clone()], [base.clone()], torch.float32)
    with pytest.raises(ValueError, match=r"grad 0 has dtype torch.float16"):
        interp.check_inputs([base], [base.half()], [base.clone()], torch.float32)


def test_table_is_cached_by_addresses_and_sizes(interp: types.ModuleType) -> None:
    kernel = interp.TritonLionKernel(torch.float32, False, block=BLOCK)
    ps, gs, ms = make([(10,), (100,)], torch.float32, seed=6)
    first = kernel._table(ps, gs, ms, None, [10, 100])
    assert kernel._table(ps, gs, ms, None, [10, 100]) is first
    assert first.n_blocks == 1 + 2 and first.block_tensor[:3].tolist() == [0, 1, 1]
    assert first.block_index[:3].tolist() == [0, 0, 1]
    other = kernel._table(ps, [gs[0], gs[1].clone()], ms, None, [10, 100])
    assert other is not first and other.ptrs[4].item() != first.ptrs[4].item()
    cs = [torch.zeros_like(p) for p in ps]
    with_comps = kernel._table(ps, gs, ms, cs, [10, 100])
    assert with_comps.n_cols == 4 and first.n_cols == 3
    assert with_comps.ptrs[:8].tolist() == [t.data_ptr() for row in zip(ps, gs, ms, cs, strict=True) for t in row]


def test_bad_construction(interp: types.ModuleType) -> None:
    with pytest.raises(ValueError, match=r"dtype torch.float64 is not supported"):
        interp.TritonLionKernel(torch.float64, False)
    with pytest.raises(ValueError, match=r"block=48"):
        interp.TritonLionKernel(torch.float32, False, block=48)
    with pytest.raises(ValueError, match=r"momentum_dtype torch.float64 is not supported"):
        interp.TritonLionKernel(torch.float32, False, torch.float64)


def test_hyperparameters_are_runtime_values() -> None:
    """Only booleans, dtypes and sizes are compile-time constants: a new lr or weight decay never recompiles."""
    for kernel, runtime in (
        (triton_kernel._lion_update_kernel, {"lr_ptr", "weight_decay", "min_mean", "lerp_w1", "lerp_w2"}),
        (triton_kernel._lion_count_kernel, {"lerp_w1"}),
    ):
        constexprs = {p.name for p in kernel.params if p.is_constexpr}
        assert not runtime & constexprs
        assert constexprs <= {"n_cols", "p_dtype", "m_dtype", "block", "caution", "maximize", "kahan", "aligned"}


COMPILE_CASES = {
    "fp32": ("fp32", "fp32", False),
    "bf16": ("bf16", "bf16", False),
    "bf16-kahan-m_fp32": ("bf16", "fp32", True),
    "fp32-m_bf16": ("fp32", "bf16", False),
}


@pytest.mark.parametrize("case", list(COMPILE_CASES))
def test_kernels_compile_for_a_cuda_target(case: str) -> None:
    """The GPU code builds (no GPU needed), uses 16-byte loads when aligned, and has no FMA beyond the two lerps."""
    tl = triton.language
    tl_dtypes = {"fp32": tl.float32, "bf16": tl.bfloat16}
    p_name, m_name, kahan = COMPILE_CASES[case]
    const = {
        "n_cols": 4 if kahan else 3,
        "p_dtype": tl_dtypes[p_name],
        "m_dtype": tl_dtypes[m_name],
        "block": 4096,
        "caution": True,
        "maximize": False,
        "kahan": kahan,
        "aligned": True,
    }
    sig = {
        **{name: "*i64" for name in ("table_ptr", "numel_ptr", "block_tensor_ptr", "block_index_ptr", "count_ptr")},
        "lr_ptr": "*fp64",
        "weight_decay": "fp64",
        "min_mean": "fp64",
        "lerp_w1": "fp32",
        "lerp_w2": "fp32",
        **dict.fromkeys(const, "constexpr"),
    }
    src = triton.compiler.ASTSource(fn=triton_kernel._lion_update_kernel, signature=sig, constexprs=const)
    options = {"num_warps": triton_kernel.NUM_WARPS, "enable_fp_fusion": False}
    ptx = triton.compile(src, target=GPUTarget("cuda", 90, 32), options=options).asm["ptx"]
    assert "ld.global.v4.b32" in ptx and "st.global.v4.b32" in ptx
    threads = 32 * triton_kernel.NUM_WARPS
    # Two lerps per element, in the unmasked and the masked branch; the compensated update contracts nothing.
    assert len(re.findall(r"\bfma\.rn\.f32\b", ptx)) == 2 * 2 * 4096 // threads

    count_const = {k: v for k, v in const.items() if k not in ("caution", "kahan")}
    count_sig = {
        k: v for k, v in sig.items() if k in {*count_const, "lerp_w1"} or (k.endswith("_ptr") and k != "lr_ptr")
    }
    src = triton.compiler.ASTSource(fn=triton_kernel._lion_count_kernel, signature=count_sig, constexprs=count_const)
    ptx = triton.compile(src, target=GPUTarget("cuda", 90, 32), options=options).asm["ptx"]
    assert "ld.global.v4.b32" in ptx and re.search(r"atom\.global\.\S*add\.u64", ptx)


def test_dispatcher_routes_cuda_fused_to_triton() -> None:
    """``fused=True`` on CUDA takes the Triton kernel for its dtypes (choosing builds nothing on the device)."""
    for dtype in DTYPES:
        assert dispatch._get_kernel(torch.device("cuda"), dtype, False).__class__ is triton_kernel.TritonLionKernel
    # The low-precision options too: Kahan compensation and a momentum dtype of its own.
    for dtype, m_dtype, kahan in LOW_PRECISION:
        kernel = dispatch._get_kernel(torch.device("cuda"), dtype, True, m_dtype, kahan)
        assert isinstance(kernel, triton_kernel.TritonLionKernel)
        assert (kernel.dtype, kernel.momentum_dtype, kernel.caution) == (dtype, m_dtype, True)


def test_library_imports_and_runs_without_triton() -> None:
    code = (
        "import sys; sys.modules['triton'] = None\n"  # makes 'import triton' raise ImportError
        "import torch\n"
        "from noether.core.optimizer import Lion\n"
        "from noether.core.optimizer.lion import triton_kernel as tk\n"
        "assert not tk.TRITON_AVAILABLE\n"
        "try:\n"
        "    tk.TritonLionKernel(torch.float32, False)\n"
        "except tk.TritonUnavailableError as e:\n"
        "    assert 'pip install triton' in str(e)\n"
        "else:\n"
        "    raise AssertionError('no error')\n"
        "p = torch.nn.Parameter(torch.ones(3)); p.grad = torch.ones(3)\n"
        "Lion([p], lr=0.1, foreach=True).step()\n"
        "assert torch.allclose(p.detach(), torch.full((3,), 0.9))\n"
    )
    env = {**os.environ, "PYTHONPATH": str(Path(dispatch.__file__).parents[4])}
    result = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
