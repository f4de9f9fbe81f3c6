"""The fused Lion kernel against an independent float64 reference and against the single-tensor kernel.

Compiling is the slow part, so the module shares its kernels: a 4-tensor chunk (the code paths of the default
16-tensor chunk, compiled in a fraction of the time) and one kernel per (dtype, caution), compiled on first use.
"""

from __future__ import annotations

import json
import logging
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
from torch import Tensor

from noether.core.optimizer import Lion
from noether.core.optimizer.lion import FusedLionCompileError, compiled_kernel, cpu_build, dispatch
from noether.core.optimizer.lion import cpu_kernel as c_kernel
from noether.core.optimizer.lion.dispatch import _fused_lion
from noether.core.optimizer.lion.reference import _single_tensor_lion

CHUNK = 4
BETAS = (0.9, 0.99)


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    # Every test runs on both CPU kernels of fused=True, the C kernel (the default) and the inductor kernel (what
    # CUDA uses), except the tests of inductor's own machinery.
    if "cpu_kernel" in metafunc.fixturenames:
        inductor_only = metafunc.definition.get_closest_marker("inductor_only") is not None
        metafunc.parametrize("cpu_kernel", ["inductor"] if inductor_only else ["c", "inductor"], indirect=True)


@pytest.fixture(autouse=True)
def cpu_kernel(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    kernel: str = request.param
    monkeypatch.setattr(dispatch, "_CPU_KERNEL", kernel)
    return kernel


@pytest.fixture(scope="module", autouse=True)
def _small_private_kernels() -> Iterator[None]:
    saved = compiled_kernel._CHUNK, dispatch._KERNELS
    compiled_kernel._CHUNK, dispatch._KERNELS = CHUNK, {}
    yield
    compiled_kernel._CHUNK, dispatch._KERNELS = saved


# ---------------------------------------------------------------------------------------------------------------------
# independent reference: the paper's formula, element by element, in float64


def _sign(x: float) -> float:
    return float(x > 0) - float(x < 0)


def reference_step(
    p: Tensor, g: Tensor, m: Tensor, *, lr: float, weight_decay: float, caution: bool, maximize: bool
) -> tuple[Tensor, Tensor]:
    """One Lion step of one real tensor; returns the new (param, exp_avg) in float64."""
    beta1, beta2 = BETAS
    ps, gs, ms = (t.detach().double().flatten().tolist() for t in (p, g, m))
    if maximize:
        gs = [-x for x in gs]
    us = [_sign(beta1 * mi + (1 - beta1) * gi) for mi, gi in zip(ms, gs, strict=True)]
    if caution and us:
        mask = [1.0 if ui * gi > 0 else 0.0 for ui, gi in zip(us, gs, strict=True)]
        mean = sum(mask) / len(mask)
        us = [ui * ci / max(mean, 1e-3) for ui, ci in zip(us, mask, strict=True)]
    new_p = [pi * (1 - lr * weight_decay) - lr * ui for pi, ui in zip(ps, us, strict=True)]
    new_m = [beta2 * mi + (1 - beta2) * gi for mi, gi in zip(ms, gs, strict=True)]
    as_tensor = lambda xs: torch.tensor(xs, dtype=torch.float64).reshape(p.shape)  # noqa: E731
    return as_tensor(new_p), as_tensor(new_m)


def _real(t: Tensor) -> Tensor:
    return torch.view_as_real(t) if t.is_complex() else t


def assert_close_to_reference(
    before: tuple[Tensor, Tensor, Tensor],
    after: tuple[Tensor, Tensor],
    *,
    lr: float,
    weight_decay: float,
    caution: bool,
    maximize: bool,
) -> None:
    """Compare one fused step of one tensor with the reference, within the dtype's rounding.

    The fused kernel rounds ``p * decay``, the step and the result (p), and the lerp result (m), each by at most half
    an ulp of the param dtype; ``eps`` of that dtype times the magnitudes involved bounds the sum. Where the direction
    ``beta1 * m + (1 - beta1) * g`` is within a few roundings (of the compute dtype) of zero, its sign is decided by
    rounding, so ``p`` is not compared there (``m`` still is).
    """
    p0, g0, m0 = (_real(t) for t in before)
    p1, m1 = (_real(t) for t in after)
    want_p, want_m = reference_step(p0, g0, m0, lr=lr, weight_decay=weight_decay, caution=caution, maximize=maximize)
    eps = torch.finfo(p1.dtype).eps
    p0d, g0d, m0d = p0.double(), g0.double(), m0.double()
    step_bound = lr / 1e-3 if caution else lr
    tol_p = eps * (p0d.abs() + want_p.abs() + step_bound)
    tol_m = eps * (want_m.abs() + m0d.abs() + g0d.abs())
    g_eff = -g0d if maximize else g0d
    compute_eps = torch.finfo(torch.float32 if p1.element_size() < 4 else p1.dtype).eps
    tie = (BETAS[0] * m0d + (1 - BETAS[0]) * g_eff).abs() <= 4 * compute_eps * (m0d.abs() + g0d.abs())
    assert ((p1.double() - want_p).abs() <= tol_p).logical_or(tie).all(), (p1, want_p)
    assert ((m1.double() - want_m).abs() <= tol_m).all(), (m1, want_m)


# ---------------------------------------------------------------------------------------------------------------------
# data


SHAPES: list[tuple[int, ...]] = [(0,), (1,), (2,), (3,), (5,), (17,), (64,), (1000,), (13, 7), (3, 4, 5), (4097,), ()]


def make_params(
    dtype: torch.dtype, seed: int = 0, shapes: list[tuple[int, ...]] = SHAPES
) -> tuple[list[Tensor], list[Tensor], list[Tensor]]:
    """Params, grads and momenta of ragged shapes, with exact ties (m = g = 0) planted at the front."""
    gen = torch.Generator().manual_seed(seed)

    def rand(shape: tuple[int, ...], scale: float) -> Tensor:
        return (torch.randn(shape, generator=gen, dtype=torch.float64) * scale).to(dtype)

    ps = [rand(s, 1.0) for s in shapes]
    gs = [rand(s, 1.0) for s in shapes]
    ms = [rand(s, 0.1) for s in shapes]
    for g, m in zip(gs, ms, strict=True):
        g.view(-1)[:2] = 0
        m.view(-1)[:2] = 0
    return ps, gs, ms


def clone_all(*lists: list[Tensor]) -> list[list[Tensor]]:
    return [[t.clone() for t in ts] for ts in lists]


def run_and_compare(
    ps: list[Tensor], gs: list[Tensor], ms: list[Tensor], *, steps: int, lr: float, weight_decay: float, **flags: bool
) -> None:
    for step in range(steps):
        before = clone_all(ps, gs, ms)
        lr_arg: float | Tensor = torch.tensor([lr], dtype=torch.float64) if step % 2 else lr  # float and tensor lr
        _fused_lion(ps, gs, ms, beta1=BETAS[0], beta2=BETAS[1], lr=lr_arg, weight_decay=weight_decay, **flags)
        for i, (p, m) in enumerate(zip(ps, ms, strict=True)):
            triple = (before[0][i], before[1][i], before[2][i])
            assert_close_to_reference(triple, (p, m), lr=lr, weight_decay=weight_decay, **flags)
        # the next step starts from new gradients
        gen = torch.Generator().manual_seed(100 + step)
        for g in gs:
            g.copy_(torch.randn(g.shape, generator=gen, dtype=torch.float64).to(g.dtype))


# ---------------------------------------------------------------------------------------------------------------------
# correctness against the reference (fp32 runs in CI; the other kernels are compiled in the slow tests)


@pytest.mark.parametrize("maximize", [False, True])
def test_fp32_and_complex_match_the_float64_reference(maximize: bool) -> None:
    ps, gs, ms = make_params(torch.float32)
    cps, cgs, cms = make_params(torch.complex64, seed=1, shapes=[(6,), (3, 5), (1,)])
    run_and_compare(ps + cps, gs + cgs, ms + cms, steps=3, lr=0.01, weight_decay=0.1, caution=False, maximize=maximize)


def test_non_contiguous_layouts_match_the_reference() -> None:
    gen = torch.Generator().manual_seed(3)
    base = [torch.randn(8, 6, generator=gen) for _ in range(3)]
    transposed = [t.t() for t in base]  # dense, permuted: flattened in storage order
    channels_last = [torch.randn(2, 3, 4, 5, generator=gen).to(memory_format=torch.channels_last) for _ in range(3)]
    sliced = [torch.randn(8, 6, generator=gen)[:, ::2] for _ in range(3)]  # not dense: single-tensor fallback
    mixed = [torch.randn(5, 4, generator=gen), torch.randn(4, 5, generator=gen).t(), torch.randn(5, 4, generator=gen)]
    ps, gs, ms = (list(x) for x in zip(transposed, channels_last, sliced, mixed, strict=True))
    run_and_compare(ps, gs, ms, steps=2, lr=0.01, weight_decay=0.1, caution=False, maximize=False)


def test_many_ragged_tensors_over_several_chunks() -> None:
    gen = torch.Generator().manual_seed(4)
    shapes = [(int(n),) for n in torch.randint(1, 300, (4 * CHUNK + 3,), generator=gen)]
    ps, gs, ms = make_params(torch.float32, seed=5, shapes=shapes)
    run_and_compare(ps, gs, ms, steps=2, lr=0.003, weight_decay=0.0, caution=False, maximize=False)


@pytest.mark.slow
@pytest.mark.parametrize("maximize", [False, True])
def test_caution_matches_the_float64_reference(maximize: bool) -> None:
    ps, gs, ms = make_params(torch.float32, seed=6)
    # where everything agrees the step is lr; where nothing does, the mean is floored at 1e-3 and nothing moves
    sign = -1.0 if maximize else 1.0
    for m_value in (5.0, -5.0):
        ps.append(torch.ones(8))
        gs.append(torch.full((8,), sign))
        ms.append(torch.full((8,), m_value))
    run_and_compare(ps, gs, ms, steps=2, lr=0.01, weight_decay=0.1, caution=True, maximize=maximize)


@pytest.mark.slow
@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16, torch.float64])
def test_other_dtypes_match_the_float64_reference(dtype: torch.dtype) -> None:
    ps, gs, ms = make_params(dtype, seed=7)
    run_and_compare(ps, gs, ms, steps=2, lr=0.01, weight_decay=0.1, caution=False, maximize=False)


@pytest.mark.slow
def test_caution_count_is_exact_past_2_pow_24_elements() -> None:
    # A float32 sum of a 0/1 mask stops growing at 2**24; the kernel counts with integers, so the step uses the exact
    # fraction of agreeing elements.
    n, disagree = (1 << 24) + (1 << 22), 3 << 20
    p = torch.zeros(n)
    g = torch.ones(n)
    m = torch.ones(n)
    m[:disagree] = -100.0  # direction -1 there, against the gradient: masked out
    lr = 0.5
    _fused_lion([p], [g], [m], beta1=BETAS[0], beta2=BETAS[1], lr=lr, weight_decay=0.0, caution=True, maximize=False)
    step = torch.tensor(lr / ((n - disagree) / n), dtype=torch.float64).float()
    assert p[disagree:].eq(-step).all()
    assert p[:disagree].eq(0).all()


# ---------------------------------------------------------------------------------------------------------------------
# bit for bit against the single-tensor kernel (the numerics every Lion path reproduces; see the module docstring)


def assert_same_as_single_tensor(
    ps: list[Tensor], gs: list[Tensor], ms: list[Tensor], *, steps: int, lr: float, weight_decay: float, **flags: bool
) -> None:
    ref = clone_all(ps, gs, ms)
    for step in range(steps):
        lr_arg: float | Tensor = torch.tensor([lr]) if step % 2 else lr
        kwargs = {"beta1": BETAS[0], "beta2": BETAS[1], "lr": lr_arg, "weight_decay": weight_decay, **flags}
        _fused_lion(ps, gs, ms, **kwargs)  # type: ignore[arg-type]
        _single_tensor_lion(*ref, **kwargs)  # type: ignore[arg-type]
        for got, want in zip([*ps, *ms], [*ref[0], *ref[2]], strict=True):
            assert torch.equal(got, want), (got, want)
        gen = torch.Generator().manual_seed(200 + step)
        for g, g_ref in zip(gs, ref[1], strict=True):
            g_ref.copy_(g.copy_(torch.randn(g.shape, generator=gen, dtype=torch.float64).to(g.dtype)))


@pytest.mark.parametrize("maximize", [False, True])
def test_fp32_and_complex_are_bit_identical_to_the_single_tensor_kernel(maximize: bool) -> None:
    ps, gs, ms = make_params(torch.float32, seed=9)
    cps, cgs, cms = make_params(torch.complex64, seed=10, shapes=[(6,), (3, 5), (1,)])
    t = [torch.randn(7, 9).t() for _ in range(3)]  # dense, transposed
    kwargs = {"steps": 3, "lr": 0.01, "weight_decay": 0.1, "caution": False, "maximize": maximize}
    assert_same_as_single_tensor([*ps, *cps, t[0]], [*gs, *cgs, t[1]], [*ms, *cms, t[2]], **kwargs)  # type: ignore[arg-type]


@pytest.mark.slow
@pytest.mark.parametrize(
    ("dtype", "caution"),
    [
        (torch.float32, True),
        (torch.bfloat16, False),
        (torch.bfloat16, True),
        (torch.float16, False),
        (torch.float16, True),
        (torch.float64, False),
        (torch.float64, True),
    ],
)
def test_other_kernels_are_bit_identical_to_the_single_tensor_kernel(dtype: torch.dtype, caution: bool) -> None:
    ps, gs, ms = make_params(dtype, seed=11)
    assert_same_as_single_tensor(ps, gs, ms, steps=3, lr=0.01, weight_decay=0.1, caution=caution, maximize=caution)


@pytest.mark.slow
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_directions_that_round_to_zero_match_the_single_tensor_kernel(dtype: torch.dtype) -> None:
    # Momenta and gradients of a few smallest subnormals: beta1 * m + (1 - beta1) * g is nonzero in float32 but often
    # rounds to 0 in the param dtype, where the direction (and the caution mask) must be 0 as in the eager kernel.
    tiny = torch.finfo(dtype).smallest_normal * torch.finfo(dtype).eps  # the smallest subnormal
    gen = torch.Generator().manual_seed(13)
    shapes = [(257,), (31, 9), (4096,)]
    ps = [torch.randn(s, generator=gen).to(dtype) for s in shapes]
    gs = [(torch.randint(-12, 13, s, generator=gen) * tiny).to(dtype) for s in shapes]
    ms = [(torch.randint(-3, 4, s, generator=gen) * tiny).to(dtype) for s in shapes]
    lerped = [torch.lerp(m.float(), g.float(), 1 - BETAS[0]) for m, g in zip(ms, gs, strict=True)]
    assert any(((d != 0) & (d.to(dtype) == 0)).any() for d in lerped), "precondition: some directions round to 0"
    for caution in (False, True):
        args = clone_all(ps, gs, ms)
        assert_same_as_single_tensor(*args, steps=1, lr=0.01, weight_decay=0.1, caution=caution, maximize=False)


@pytest.mark.parametrize("caution", [False, True])
def test_nan_gradient_entries_match_the_single_tensor_kernel(caution: bool) -> None:
    # The eager kernel's sign maps NaN to 0 (no step, not counted by caution); the compiled one must too.
    ps, gs, ms = make_params(torch.float32, seed=16, shapes=[(40,), (7, 9), (1000,)])
    for g in gs:
        g.view(-1)[3::17] = float("nan")
    ref = clone_all(ps, gs, ms)
    kwargs = {
        "beta1": BETAS[0],
        "beta2": BETAS[1],
        "lr": 0.01,
        "weight_decay": 0.1,
        "caution": caution,
        "maximize": False,
    }
    _fused_lion(ps, gs, ms, **kwargs)  # type: ignore[arg-type]
    _single_tensor_lion(*ref, **kwargs)  # type: ignore[arg-type]
    for got, want in zip([*ps, *ms], [*ref[0], *ref[2]], strict=True):
        torch.testing.assert_close(got, want, rtol=0, atol=0, equal_nan=True)
    assert all(p.isfinite().all() for p in ps)


@pytest.mark.inductor_only
def test_caution_sends_tensors_past_the_int32_count_to_the_reference(monkeypatch: pytest.MonkeyPatch) -> None:
    # The kernel counts the caution mask in int32; a larger tensor (> 2**31 - 1 elements, lowered to 100 here) takes
    # the single-tensor kernel, whose count is exact at any size.
    monkeypatch.setattr(compiled_kernel, "_CAUTION_MAX_NUMEL", 100)
    sent: list[int] = []
    real = dispatch._single_tensor_lion

    def spy(ps: list[Tensor], *args: object, **kwargs: object) -> None:
        sent.extend(p.numel() for p in ps)
        real(ps, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(dispatch, "_single_tensor_lion", spy)
    for shapes in ([(10,), (101,), (7, 20), (100,)], [(10,), (101,), (1,)]):
        ps, gs, ms = make_params(torch.float32, seed=14, shapes=shapes)
        sent.clear()
        assert_same_as_single_tensor(ps, gs, ms, steps=1, lr=0.01, weight_decay=0.1, caution=True, maximize=False)
        assert sorted(sent) == sorted(n for n in (torch.Size(s).numel() for s in shapes) if n > 100 or n == 1)
    # The same through the general path (a transposed tensor is not contiguous): a 7x20 tensor past the limit, one
    # below it, a single element.
    ps, gs, ms = make_params(torch.float32, seed=16, shapes=[(20, 7), (9, 11), (1,)])
    ps, gs, ms = ([t[0].t(), t[1], t[2]] for t in (ps, gs, ms))
    sent.clear()
    assert_same_as_single_tensor(ps, gs, ms, steps=1, lr=0.01, weight_decay=0.1, caution=True, maximize=False)
    assert sorted(sent) == [1, 140]
    ps, gs, ms = make_params(torch.float32, seed=15, shapes=[(10,), (101,)])
    sent.clear()
    assert_same_as_single_tensor(ps, gs, ms, steps=1, lr=0.01, weight_decay=0.1, caution=False, maximize=False)
    assert sent == []  # without caution there is no count: every size goes to the kernel


def test_tensor_subclasses_alone_build_no_kernel(monkeypatch: pytest.MonkeyPatch) -> None:
    # Subclasses (DTensor under FSDP2) go to the single-tensor kernel; a group of nothing else must not pay for
    # building a kernel it never calls (a 10 s compile for the inductor kernel).
    class Sub(Tensor):
        pass

    monkeypatch.setattr(dispatch, "_KERNELS", {})
    ps, gs, ms = (
        [torch.Tensor._make_subclass(Sub, t) for t in ts]
        for ts in make_params(torch.float32, seed=19, shapes=[(30,), (4, 5)])
    )
    assert_same_as_single_tensor(ps, gs, ms, steps=1, lr=0.01, weight_decay=0.1, caution=True, maximize=False)
    assert dispatch._KERNELS == {}


def test_lion_fused_true_matches_foreach_false_over_7_steps() -> None:
    gen = torch.Generator().manual_seed(12)
    shapes = [(33, 5), (17,), (1,), (64, 3), (0, 4)]
    fused_params = [torch.nn.Parameter(torch.randn(s, generator=gen)) for s in shapes]
    plain_params = [torch.nn.Parameter(p.detach().clone()) for p in fused_params]
    fused = Lion(fused_params, lr=0.01, weight_decay=0.1, fused=True)
    plain = Lion(plain_params, lr=0.01, weight_decay=0.1, foreach=False)
    for step in range(7):
        for a, b in zip(fused_params, plain_params, strict=True):
            grad = torch.randn(a.shape, generator=gen)
            a.grad, b.grad = grad.clone(), grad.clone()
        fused_params[0].grad = plain_params[0].grad = None if step == 3 else fused_params[0].grad
        fused.step()
        plain.step()
    for a, b in zip(fused_params, plain_params, strict=True):
        assert torch.equal(a, b)
        assert torch.equal(fused.state[a]["exp_avg"], plain.state[b]["exp_avg"])


@pytest.mark.slow
def test_compiled_step_with_a_changing_tensor_lr_does_not_recompile() -> None:
    torch._dynamo.reset()  # an earlier compiled step of another optimizer must not count as a recompile
    gen = torch.Generator().manual_seed(13)
    params = [torch.nn.Parameter(torch.randn(s, generator=gen)) for s in [(8, 4), (5,)]]
    reference = [torch.nn.Parameter(p.detach().clone()) for p in params]
    lr = torch.tensor([0.01])
    opt = Lion(params, lr=lr, weight_decay=0.1, fused=True)
    ref = Lion(reference, lr=0.01, weight_decay=0.1, foreach=False)
    step = torch.compile(opt.step, backend="eager", fullgraph=False)
    with torch._dynamo.config.patch(error_on_recompile=True):
        for value in (0.01, 0.003, 0.02):
            lr.fill_(value)
            ref.param_groups[0]["lr"] = torch.tensor([value])
            for a, b in zip(params, reference, strict=True):
                a.grad = torch.randn(a.shape, generator=gen)
                b.grad = a.grad.clone()
            step()
            ref.step()
    for a, b in zip(params, reference, strict=True):
        assert torch.equal(a, b)


def test_replaced_param_or_state_is_followed() -> None:
    # Nothing about a tensor is kept between steps: `p.data = ...` and a new momentum are used as they are.
    p, m = torch.nn.Parameter(torch.ones(4, 3)), torch.zeros(4, 3)
    kwargs = {"beta1": 0.9, "beta2": 0.99, "lr": 0.5, "weight_decay": 0.0, "caution": False, "maximize": False}
    _fused_lion([p], [torch.ones(4, 3)], [m], **kwargs)  # type: ignore[arg-type]
    assert torch.equal(p.detach(), torch.full((4, 3), 0.5))
    old = p.data
    p.data = torch.full((4, 3), 2.0)
    _fused_lion([p], [torch.ones(4, 3)], [m], **kwargs)  # type: ignore[arg-type]
    assert torch.equal(p.detach(), torch.full((4, 3), 1.5))
    assert torch.equal(old, torch.full((4, 3), 0.5))
    m = m.clone()  # a new momentum tensor (as after loading a state dict)
    _fused_lion([p], [torch.ones(4, 3)], [m], **kwargs)  # type: ignore[arg-type]
    assert torch.equal(p.detach(), torch.full((4, 3), 1.0))
    torch.testing.assert_close(m, torch.full((4, 3), 1 - 0.99**3))


@pytest.mark.inductor_only
def test_n_dimensional_tensors_go_to_the_kernel_as_they_are_or_as_flat_views(monkeypatch: pytest.MonkeyPatch) -> None:
    # The self-check found that the compiled code reads only data pointers and the sizes given beside them; where it
    # does not (kernel.accepts_nd False), call() passes flat views. Both give the single-tensor kernel's bits.
    shapes = [(13, 7), (3, 4, 5), (2, 1, 3, 2), (40,), (6, 6)]
    ps, gs, ms = make_params(torch.float32, seed=9, shapes=shapes)
    kwargs = {"beta1": 0.9, "beta2": 0.99, "lr": 0.01, "weight_decay": 0.1, "caution": False, "maximize": False}
    _fused_lion(ps[:1], gs[:1], ms[:1], **kwargs)  # type: ignore[arg-type]
    kernel = dispatch._KERNELS[(torch.device("cpu"), torch.float32, torch.float32, False, False, "inductor")]
    assert kernel.accepts_nd  # inductor's CPU kernels take data pointers
    want_ps, want_gs, want_ms = clone_all(ps, gs, ms)
    _single_tensor_lion(want_ps, want_gs, want_ms, **kwargs)  # type: ignore[arg-type]
    for accepts_nd in (True, False):
        got_ps, got_gs, got_ms = clone_all(ps, gs, ms)
        monkeypatch.setattr(kernel, "accepts_nd", accepts_nd)
        _fused_lion(got_ps, got_gs, got_ms, **kwargs)  # type: ignore[arg-type]
        assert all(torch.equal(a, b) for a, b in zip(got_ps + got_ms, want_ps + want_ms, strict=True))
        assert all(a.shape == s for a, s in zip(got_ps, shapes, strict=True))


# ---------------------------------------------------------------------------------------------------------------------
# compile behaviour


@pytest.mark.inductor_only
def test_changing_lr_and_weight_decay_never_recompiles() -> None:
    from torch._dynamo.utils import counters

    ps, gs, ms = make_params(torch.float32, seed=8)
    _fused_lion(ps, gs, ms, beta1=0.9, beta2=0.99, lr=0.01, weight_decay=0.0, caution=False, maximize=False)
    kernel = dispatch._KERNELS[(torch.device("cpu"), torch.float32, torch.float32, False, False, "inductor")]
    compiles, graphs = kernel.backend.calls, counters["stats"]["unique_graphs"]
    for i, lr in enumerate([torch.tensor([0.02]), torch.tensor(0.5), 0.125, torch.tensor([1e-4], dtype=torch.float64)]):
        before = clone_all(ps, gs, ms)
        _fused_lion(ps, gs, ms, beta1=0.9, beta2=0.99, lr=lr, weight_decay=0.1 * i, caution=False, maximize=i % 2 == 1)
        lr_value = float(lr)
        for j in range(len(ps)):
            triple = (before[0][j], before[1][j], before[2][j])
            assert_close_to_reference(
                triple, (ps[j], ms[j]), lr=lr_value, weight_decay=0.1 * i, caution=False, maximize=i % 2 == 1
            )
    assert kernel.backend.calls == compiles == 1
    assert counters["stats"]["unique_graphs"] == graphs


_COMPILE_IN_CHILD = """
import json, re, sys, torch
from noether.core.optimizer.lion import compiled_kernel, dispatch
torch.set_num_threads(2)
compiled_kernel._CHUNK = 4
dispatch._CPU_KERNEL = "inductor"
if sys.argv[1] == "small-hints-untagged":  # what another version of the module could have left in the cache
    compiled_kernel._HINT_SIZES = tuple(3 + i for i in range(64))
    compiled_kernel._CACHE_TAG = ""
kernel = dispatch._get_kernel(torch.device("cpu"), torch.float32, False)
source = kernel.backend.compiled.source_code
steps = sorted(set(re.findall(r"x0\\+=static_cast<int64_t>\\((\\d+)L\\)", source)))
print(json.dumps([source.count("omp parallel"), steps]))
"""


def _loop_plan_in_child(kind: str, cache_dir: Path) -> list[object]:
    """Compile the 4-tensor fp32 kernel in a fresh process; its loop plan: OpenMP regions and vector steps."""
    src = Path(compiled_kernel.__file__).resolve().parents[4]
    env = {**os.environ, "TORCHINDUCTOR_CACHE_DIR": str(cache_dir), "PYTHONPATH": str(src)}
    command = [sys.executable, "-c", _COMPILE_IN_CHILD, kind]
    out = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300, check=True)
    plan: list[object] = json.loads(out.stdout.strip().splitlines()[-1])
    return plan


@pytest.mark.slow
@pytest.mark.inductor_only
def test_a_kernel_cached_under_other_size_hints_is_not_reused(tmp_path: Path) -> None:
    # torch's FX graph cache keys a dynamic-shape graph without its size hints, and inductor plans threads and
    # vector tiling from them: without the module's cache tag, the same graph traced on small sizes (by another
    # version of this module) came back from the cache single-threaded, 2.5x slower.
    fresh = _loop_plan_in_child("default", tmp_path / "fresh")
    stale = _loop_plan_in_child("small-hints-untagged", tmp_path / "shared")
    assert stale != fresh, "precondition: small size hints give another loop plan"
    assert _loop_plan_in_child("default", tmp_path / "shared") == fresh


@pytest.mark.inductor_only
def test_a_machine_that_cannot_compile_gets_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(dispatch, "_KERNELS", {})
    p, g, m = torch.ones(4), torch.ones(4), torch.zeros(4)
    with torch.compiler.set_stance("force_eager"), pytest.raises(FusedLionCompileError, match="fused=False"):
        _fused_lion([p], [g], [m], beta1=0.9, beta2=0.99, lr=0.1, weight_decay=0.0, caution=False, maximize=False)
    assert dispatch._KERNELS == {}  # nothing half-built is kept
    assert torch.equal(p, torch.ones(4)) and torch.equal(m, torch.zeros(4))


@pytest.fixture
def no_c_compiler(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Fused Lion on CPU wants the C kernel, none is built yet (an empty cache folder) and no C compiler is found."""
    monkeypatch.setattr(dispatch, "_CPU_KERNEL", "c")
    monkeypatch.setattr(dispatch, "_KERNELS", {})
    monkeypatch.setattr(dispatch, "_WARNED", set())
    monkeypatch.setattr(cpu_build, "_LIB", None)
    monkeypatch.setenv("NOETHER_CACHE_DIR", str(tmp_path))  # nothing built yet
    monkeypatch.setattr(cpu_build.shutil, "which", lambda name: None)


@pytest.mark.usefixtures("no_c_compiler")
def test_without_a_c_compiler_cpu_falls_back_to_the_inductor_kernel_with_a_warning() -> None:
    ps, gs, ms = make_params(torch.float32, seed=17, shapes=[(30,), (4, 5)])
    with pytest.warns(RuntimeWarning, match="using the inductor kernel on CPU: no C compiler found"):
        assert_same_as_single_tensor(ps, gs, ms, steps=1, lr=0.01, weight_decay=0.1, caution=False, maximize=False)
    kernels = list(dispatch._KERNELS.values())
    assert len(kernels) == 1 and isinstance(kernels[0], compiled_kernel._ChunkKernel)


@pytest.mark.usefixtures("no_c_compiler")
def test_without_any_compiler_fused_cpu_falls_back_to_the_foreach_kernel_with_a_warning(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # No C compiler for the C kernel, and none for inductor either (it needs a C++ compiler on CPU): fused=True
    # still steps, as docs/lion.md says, with the blocked foreach kernel (same bits).
    def no_cxx(*args: object) -> None:
        raise FusedLionCompileError("fused Lion: torch.compile of the kernel failed (InvalidCxxCompiler)")

    monkeypatch.setattr(dispatch, "_ChunkKernel", no_cxx)
    ps, gs, ms = make_params(torch.float16, seed=18, shapes=[(30,), (4, 5)])
    with pytest.warns(RuntimeWarning, match="InvalidCxxCompiler.*fused=True runs the blocked foreach kernel"):
        assert_same_as_single_tensor(ps, gs, ms, steps=2, lr=0.01, weight_decay=0.1, caution=True, maximize=False)
    ps, gs, ms = make_params(torch.float32, seed=19, shapes=[(30,), (4, 5)])
    with pytest.warns(RuntimeWarning, match="no C compiler found"):
        assert_same_as_single_tensor(ps, gs, ms, steps=1, lr=0.01, weight_decay=0.1, caution=False, maximize=False)


@pytest.mark.inductor_only
def test_compiling_the_inductor_kernel_is_logged_at_info_with_its_duration(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(dispatch, "_KERNELS", {})
    p, g, m = torch.ones(4), torch.ones(4), torch.zeros(4)
    with caplog.at_level(logging.INFO, logger=dispatch.__name__):
        for _ in range(2):  # compiled once
            _fused_lion([p], [g], [m], beta1=0.9, beta2=0.99, lr=0.1, weight_decay=0.0, caution=False, maximize=False)
    messages = [r.getMessage() for r in caplog.records if r.name == dispatch.__name__]
    assert len(messages) == 2, messages
    assert "compiling the inductor kernel for torch.float32 on cpu" in messages[0] and "fused=True" in messages[0]
    assert re.search(r"compiled the inductor kernel for torch.float32 on cpu in \d+\.\d s", messages[1])


def test_an_unwritable_cache_folder_is_a_build_error_not_a_crash(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    monkeypatch.setenv("NOETHER_CACHE_DIR", str(blocker / "cache"))  # a folder below a file cannot be made
    with pytest.raises(cpu_build.CpuKernelBuildError, match="cannot build or load the C kernel"):
        cpu_build._build()


def test_the_c_kernel_is_built_once_per_machine_into_its_cache(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("NOETHER_CACHE_DIR", str(tmp_path))
    cpu_build._build()
    built = sorted(p.name for p in tmp_path.iterdir())
    # The library and its checksum record; no source or partial file left behind.
    assert len(built) == 2 and built[0].endswith(".so") and built[1].endswith(".sha256")
    mtime = (tmp_path / built[0]).stat().st_mtime_ns
    cpu_build._build()  # another process on this machine: loads what is there
    assert sorted(p.name for p in tmp_path.iterdir()) == built
    assert (tmp_path / built[0]).stat().st_mtime_ns == mtime


def test_an_unknown_cpu_kernel_setting_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(dispatch, "_CPU_KERNEL", "fast")
    monkeypatch.setattr(dispatch, "_KERNELS", {})
    p, g, m = torch.ones(4), torch.ones(4), torch.zeros(4)
    with pytest.raises(ValueError, match="NOETHER_FUSED_LION_CPU='fast'; expected 'c' or 'inductor'"):
        _fused_lion([p], [g], [m], beta1=0.9, beta2=0.99, lr=0.1, weight_decay=0.0, caution=False, maximize=False)
    assert torch.equal(p, torch.ones(4)) and torch.equal(m, torch.zeros(4))


def test_tensors_split_between_threads_match_the_single_tensor_kernel() -> None:
    # Tensors of at least c_kernel._BIG elements are split between the threads (with caution: each thread counts its
    # part, then the total sets the step of both); ragged sizes around the split.
    big = c_kernel._BIG
    shapes = [(big,), (big + 1,), (3 * big + 7,), (big - 1,), (5,)]
    for caution, maximize in ((False, False), (True, False), (True, True)):
        ps, gs, ms = make_params(torch.float32, seed=18, shapes=shapes)
        assert_same_as_single_tensor(ps, gs, ms, steps=2, lr=0.01, weight_decay=0.1, caution=caution, maximize=maximize)


# ---------------------------------------------------------------------------------------------------------------------
# input checks


def test_bad_inputs_raise_before_anything_changes() -> None:
    ps = [torch.ones(3), torch.ones(2)]
    ms = [torch.zeros(3), torch.zeros(2)]
    kwargs = {"beta1": 0.9, "beta2": 0.99, "lr": 0.1, "weight_decay": 0.0, "caution": False, "maximize": False}
    with pytest.raises(ValueError, match="exp_avgs"):
        _fused_lion(ps, [torch.ones(3)], ms, **kwargs)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"parameter 1 .*\(2,\).*grad .*\(3,\)"):
        _fused_lion(ps, [torch.ones(3), torch.ones(3)], ms, **kwargs)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"parameter 1 .*float32.*grad is torch.float64"):
        _fused_lion(ps, [torch.ones(3), torch.ones(2, dtype=torch.float64)], ms, **kwargs)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"parameter 0 has dtype torch\.int64"):
        _fused_lion([torch.ones(2, dtype=torch.long)], [torch.ones(2)], [torch.zeros(2)], **kwargs)  # type: ignore[arg-type]
    assert all(torch.equal(p, torch.ones_like(p)) for p in ps)
    assert all(torch.equal(m, torch.zeros_like(m)) for m in ms)


def test_empty_and_zero_size_lists_are_no_ops() -> None:
    kwargs = {"beta1": 0.9, "beta2": 0.99, "lr": 0.1, "weight_decay": 0.5, "caution": True, "maximize": False}
    _fused_lion([], [], [], **kwargs)  # type: ignore[arg-type]
    p = torch.empty(0, 3)
    _fused_lion([p], [torch.empty(0, 3)], [torch.empty(0, 3)], **kwargs)  # type: ignore[arg-type]
    assert p.shape == (0, 3)


# ---------------------------------------------------------------------------------------------------------------------
# the default path (neither foreach nor fused): the C kernel on CPU where it builds


def test_default_path_without_a_c_compiler_uses_foreach_quietly_and_tries_once(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(dispatch, "_KERNELS", {})
    monkeypatch.setattr(dispatch, "_NATIVE_UNAVAILABLE", {})
    monkeypatch.setattr(cpu_build, "_LIB", None)
    monkeypatch.setenv("NOETHER_CACHE_DIR", str(tmp_path))  # nothing built yet
    lookups = []
    monkeypatch.setattr(cpu_build.shutil, "which", lambda name: lookups.append(name))
    ps, gs, _ = make_params(torch.float32, seed=21, shapes=[(30,), (4, 5)])
    want = [[t.clone() for t in ts] for ts in (ps, gs)] + [[torch.zeros_like(p) for p in ps]]  # Lion's fresh state
    model = [torch.nn.Parameter(p) for p in ps]
    for p, g in zip(model, gs, strict=True):
        p.grad = g
    opt = Lion(model, lr=0.01, betas=BETAS, weight_decay=0.1, caution=True)
    with caplog.at_level("INFO", logger="noether.core.optimizer.lion.dispatch"):
        import warnings

        with warnings.catch_warnings():
            warnings.simplefilter("error")  # nobody asked for compiled code: no warning
            opt.step()
            tried = len(lookups)
            opt.step()
    for _ in range(2):
        _single_tensor_lion(
            *want, beta1=BETAS[0], beta2=BETAS[1], lr=0.01, weight_decay=0.1, caution=True, maximize=False
        )
    for a, b in zip(
        [p.detach() for p in model] + [opt.state[p]["exp_avg"] for p in model], want[0] + want[2], strict=True
    ):
        assert torch.equal(a, b)
    assert tried > 0 and len(lookups) == tried  # the second step does not look for a compiler again
    assert [r.getMessage() for r in caplog.records] == [
        "Lion: the C kernel is unavailable (no C compiler found (set CC, or install gcc)); the default path uses "
        "foreach kernels"
    ]
    assert dispatch._KERNELS == {}
