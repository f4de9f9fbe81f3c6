"""The Triton kernel of Lion, run on CPU tensors through Triton's interpreter, against the reference kernel.

``TRITON_INTERPRET=1`` must be set when a kernel is decorated, i.e. when its module is executed. The module imported
by the rest of the suite (and by the dispatcher) was executed without it, so the ``interp`` fixture executes a fresh,
private copy of the module file with the variable set, and removes both afterwards: the interpreted kernels never leak
into other tests, whatever ran before. The kernels are also compiled for a CUDA target (no GPU needed: Triton ships
its own compiler) to check that the real GPU code builds, vectorises and contracts nothing but the intended FMAs.

Tolerances, from the dtype: the interpreter computes ``tl.fma`` as a multiply then an add (two roundings), where the
GPU and ATen's CPU kernels round once, so ``exp_avg`` may differ by one rounding in its dtype, ``eps * (|m| + |g|)``.
Parameters must match bit for bit wherever the direction (computed in float32) is not within a few float32 roundings
of zero (checked on the data: no element is).
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


def make(
    shapes: list[tuple[int, ...]], dtype: torch.dtype, seed: int
) -> tuple[list[torch.Tensor], list[torch.Tensor], list[torch.Tensor]]:
    gen = torch.Generator().manual_seed(seed)
    ps = [torch.randn(s, generator=gen).to(dtype) for s in shapes]
    gs = [torch.randn(s, generator=gen).to(dtype) for s in shapes]
    ms = [torch.randn(s, generator=gen).to(dtype) for s in shapes]
    return ps, gs, ms


def clones(ts: list[torch.Tensor]) -> list[torch.Tensor]:
    return [t.clone() for t in ts]


def run_kernel(
    module: types.ModuleType,
    ps: list[torch.Tensor],
    gs: list[torch.Tensor],
    ms: list[torch.Tensor],
    hyper: dict[str, object],
    block: int = BLOCK,
) -> None:
    dtype = ps[0].dtype
    module.check_inputs(ps, gs, ms, dtype)
    kernel = module.TritonLionKernel(dtype, bool(hyper["caution"]), block=block)
    kernel.call(ps, gs, ms, [p.numel() for p in ps], kernel.scalars(hyper, dtype, ps[0].device))


def assert_matches_reference(
    module: types.ModuleType,
    ps: list[torch.Tensor],
    gs: list[torch.Tensor],
    ms: list[torch.Tensor],
    hyper: dict[str, object],
    block: int = BLOCK,
) -> None:
    """One step of the kernel and of the reference on copies of the same tensors, compared (see the module doc)."""
    dtype = ps[0].dtype
    eps = torch.finfo(dtype).eps
    w1 = torch.tensor(1.0 - float(hyper["beta1"]), dtype=torch.float32).double()  # type: ignore[arg-type]
    for m, g in zip(ms, gs, strict=True):
        g64 = -g.double() if hyper["maximize"] else g.double()
        d = m.double() + w1 * (g64 - m.double())
        # The lerp is computed in float32 whatever the dtype: that is where the two ways of rounding part.
        near_zero = (d != 0) & (d.abs() <= 4 * EPS32 * (m.double().abs() + g64.abs()))
        assert not near_zero.any(), "test data has a direction within rounding of zero; pick another seed"
    ref_p, ref_m = clones(ps), clones(ms)
    _single_tensor_lion(ref_p, list(gs), ref_m, **hyper)  # type: ignore[arg-type]
    m0 = clones(ms)
    run_kernel(module, ps, gs, ms, hyper, block)
    for i, (p, rp) in enumerate(zip(ps, ref_p, strict=True)):
        assert torch.equal(p.isnan(), rp.isnan()), f"tensor {i}: NaN positions differ"
        assert torch.equal(p.nan_to_num(), rp.nan_to_num()), f"tensor {i}: params differ ({dtype}, {hyper})"
    for i, (m, rm, old, g) in enumerate(zip(ms, ref_m, m0, gs, strict=True)):
        tol = eps * (old.double().abs() + g.double().abs())
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
    first = kernel._table(ps, gs, ms, [10, 100])
    assert kernel._table(ps, gs, ms, [10, 100]) is first
    assert first.n_blocks == 1 + 2 and first.block_tensor[:3].tolist() == [0, 1, 1]
    assert first.block_index[:3].tolist() == [0, 0, 1]
    other = kernel._table(ps, [gs[0], gs[1].clone()], ms, [10, 100])
    assert other is not first and other.ptrs[4].item() != first.ptrs[4].item()


def test_bad_construction(interp: types.ModuleType) -> None:
    with pytest.raises(ValueError, match=r"dtype torch.float64 is not supported"):
        interp.TritonLionKernel(torch.float64, False)
    with pytest.raises(ValueError, match=r"block=48"):
        interp.TritonLionKernel(torch.float32, False, block=48)


def test_hyperparameters_are_runtime_values() -> None:
    """Only booleans, dtypes and sizes are compile-time constants: a new lr or weight decay never recompiles."""
    for kernel, runtime in (
        (triton_kernel._lion_update_kernel, {"lr_ptr", "weight_decay", "min_mean", "lerp_w1", "lerp_w2"}),
        (triton_kernel._lion_count_kernel, {"lerp_w1"}),
    ):
        constexprs = {p.name for p in kernel.params if p.is_constexpr}
        assert not runtime & constexprs
        assert constexprs <= {"n_cols", "p_dtype", "m_dtype", "block", "caution", "maximize", "aligned"}


@pytest.mark.parametrize("dtype", ["fp32", "bf16"])
def test_kernels_compile_for_a_cuda_target(dtype: str) -> None:
    """The GPU code builds (no GPU needed), uses 16-byte loads when aligned, and has no FMA beyond the two lerps."""
    tl = triton.language
    tl_dtype = {"fp32": tl.float32, "bf16": tl.bfloat16}[dtype]
    const = {
        "n_cols": 3,
        "p_dtype": tl_dtype,
        "m_dtype": tl_dtype,
        "block": 4096,
        "caution": True,
        "maximize": False,
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
    # Two lerps per element, in the unmasked and the masked branch.
    assert len(re.findall(r"\bfma\.rn\.f32\b", ptx)) == 2 * 2 * 4096 // threads

    count_const = {k: v for k, v in const.items() if k != "caution"}
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
