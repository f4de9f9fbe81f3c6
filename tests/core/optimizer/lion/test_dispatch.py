"""Lion numerics: every kernel against an independent float64 loop of the paper's formula, and bit-equality of paths."""

import itertools
import math

import pytest
import torch

from noether.core.optimizer import Lion
from noether.core.optimizer.lion import dispatch, foreach_kernel, lion, reference
from noether.core.optimizer.lion.foreach_kernel import _multi_tensor_lion
from noether.core.optimizer.lion.reference import _single_tensor_lion

LR, WD, BETA1, BETA2 = 0.1, 0.3, 0.9, 0.99


def reference_lion_step(
    p: list[float],
    g: list[float],
    m: list[float],
    *,
    lr: float,
    wd: float,
    beta1: float,
    beta2: float,
    caution: bool,
    maximize: bool,
) -> tuple[list[float | None], list[float]]:
    """One Lion step of one tensor (flat real values), plain Python floats, straight from the paper + caution.

    A parameter whose direction is a near-tie (its sign depends on rounding in the kernel's dtype) is returned as None.
    """
    if maximize:
        g = [-x for x in g]
    u = []
    tie = []
    for mi, gi in zip(m, g, strict=True):
        c = beta1 * mi + (1 - beta1) * gi
        u.append(0.0 if c == 0 else math.copysign(1.0, c))
        tie.append(abs(c) <= 1e-6 * (abs(beta1 * mi) + abs((1 - beta1) * gi)))
    if caution:
        mask = [1.0 if ui * gi > 0 else 0.0 for ui, gi in zip(u, g, strict=True)]
        mean = sum(mask) / len(mask) if mask else 0.0
        u = [ui * mi / max(mean, 1e-3) for ui, mi in zip(u, mask, strict=True)]
    new_p: list[float | None] = [pi * (1 - lr * wd) - lr * ui for pi, ui in zip(p, u, strict=True)]
    if caution and any(tie):
        new_p = [None] * len(p)  # the mask's mean, and so every element, depends on the tie
    new_p = [None if t else x for x, t in zip(new_p, tie, strict=True)]
    new_m = [beta2 * mi + (1 - beta2) * gi for mi, gi in zip(m, g, strict=True)]
    return new_p, new_m


def flat64(t: torch.Tensor) -> list[float]:
    if t.is_complex():
        t = torch.view_as_real(t)
    return [float(x) for x in t.detach().to(torch.float64).reshape(-1)]


def make_tensors(dtype: torch.dtype, seed: int) -> tuple[list[torch.Tensor], list[torch.Tensor], list[torch.Tensor]]:
    """Shapes incl. 0-d, 0-size, a non-contiguous view and sizes that are ragged against small blocks."""
    gen = torch.Generator().manual_seed(seed)

    def rand(*shape: int) -> torch.Tensor:
        real = torch.randn(shape, generator=gen, dtype=torch.float64)
        if dtype.is_complex:
            return torch.complex(real, torch.randn(shape, generator=gen, dtype=torch.float64)).to(dtype)
        return real.to(dtype)

    params = [rand(), rand(0), rand(3), rand(4, 5), rand(5, 6).t(), rand(2, 3, 7)]
    grads = [rand(*p.shape) for p in params]
    exp_avgs = [rand(*p.shape) * 0.1 for p in params]
    return params, grads, exp_avgs


def run_kernel(kernel: str, params, grads, exp_avgs, **kw) -> None:
    if kernel == "single":
        _single_tensor_lion(params, grads, exp_avgs, **kw)
    elif kernel == "foreach":
        lion(params, grads, exp_avgs, foreach=True, **kw)
    elif kernel == "default":  # the C kernel where every tensor is contiguous (on CPU), else foreach
        lion(params, grads, exp_avgs, **kw)
    else:  # blocked with tiny blocks: large tensors are cut, small ones share a block
        _multi_tensor_lion(params, grads, exp_avgs, block_numel=7, **kw)


TOL = {torch.float64: 1e-12, torch.float32: 2e-6, torch.bfloat16: 2e-2, torch.complex64: 2e-6}
KERNELS = ["single", "foreach", "blocked", "default"]


@pytest.mark.parametrize("kernel", KERNELS)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.bfloat16, torch.complex64])
@pytest.mark.parametrize(("caution", "maximize", "wd"), list(itertools.product([False, True], [False, True], [0, WD])))
def test_matches_float64_reference_every_step(kernel, dtype, caution, maximize, wd) -> None:
    torch.manual_seed(0)  # the later steps' gradients: the same data whatever ran before (test order)
    params, grads, exp_avgs = make_tensors(dtype, seed=1)
    kw = {"beta1": BETA1, "beta2": BETA2, "lr": LR, "weight_decay": wd, "caution": caution, "maximize": maximize}
    for step in range(3):
        ref_kw = {"lr": LR, "wd": wd, "beta1": BETA1, "beta2": BETA2, "caution": caution, "maximize": maximize}
        expected = [
            reference_lion_step(flat64(p), flat64(g), flat64(m), **ref_kw)
            for p, g, m in zip(params, grads, exp_avgs, strict=True)
        ]
        run_kernel(kernel, params, grads, exp_avgs, **kw)
        n_checked = 0
        for p, m, (ref_p, ref_m) in zip(params, exp_avgs, expected, strict=True):
            assert p.dtype == dtype and m.dtype == dtype
            tol = TOL[dtype]
            checked = [(x, r) for x, r in zip(flat64(p), ref_p, strict=True) if r is not None]
            n_checked += len(checked)
            assert [x for x, _ in checked] == pytest.approx([r for _, r in checked], rel=tol, abs=tol), f"step {step}"
            assert flat64(m) == pytest.approx(ref_m, rel=tol, abs=tol), f"exp_avg, step {step}"
        assert n_checked >= 0.6 * sum(p.numel() * (2 if p.is_complex() else 1) for p in params)
        # Seeded: how many elements are near-ties (unchecked) depends on the gradients, not on earlier tests.
        gen = torch.Generator().manual_seed(100 + step)
        grads = [torch.randn(g.shape, generator=gen, dtype=g.dtype) for g in grads]


@pytest.mark.parametrize("kernel", KERNELS)
def test_free_running_float64_matches_reference_over_many_steps(kernel) -> None:
    params, grads, exp_avgs = make_tensors(torch.float64, seed=2)
    ref = [(flat64(p), flat64(m)) for p, m in zip(params, exp_avgs, strict=True)]
    gen = torch.Generator().manual_seed(3)
    for _ in range(10):
        grads = [torch.randn(g.shape, generator=gen, dtype=torch.float64) for g in grads]
        kw = {"lr": 0.05, "wd": 0.1, "beta1": BETA1, "beta2": BETA2, "caution": True, "maximize": False}
        ref = [reference_lion_step(rp, flat64(g), rm, **kw) for (rp, rm), g in zip(ref, grads, strict=True)]
        run_kernel(
            kernel,
            params,
            grads,
            exp_avgs,
            beta1=BETA1,
            beta2=BETA2,
            lr=0.05,
            weight_decay=0.1,
            caution=True,
            maximize=False,
        )
    for p, m, (rp, rm) in zip(params, exp_avgs, ref, strict=True):
        assert None not in rp
        assert flat64(p) == pytest.approx(rp, rel=1e-12, abs=1e-12)
        assert flat64(m) == pytest.approx(rm, rel=1e-12, abs=1e-12)


@pytest.mark.parametrize("foreach", [False, True])
def test_worked_values_of_docs_lion_md(foreach) -> None:
    # The two plain steps docs/lion.md works through by hand ("Worked values").
    p = torch.nn.Parameter(torch.tensor([1.0], dtype=torch.float64))
    opt = Lion([p], lr=0.1, betas=(0.9, 0.99), weight_decay=0.1, foreach=foreach)
    p.grad = torch.tensor([0.5], dtype=torch.float64)
    opt.step()
    assert p.item() == pytest.approx(0.89, abs=1e-15)
    assert opt.state[p]["exp_avg"].item() == pytest.approx(0.005, abs=1e-15)
    p.grad = torch.tensor([-0.2], dtype=torch.float64)
    opt.step()
    assert p.item() == pytest.approx(0.9811, abs=1e-15)
    assert opt.state[p]["exp_avg"].item() == pytest.approx(0.00295, abs=1e-15)


@pytest.mark.parametrize("foreach", [False, True])
@pytest.mark.parametrize(
    ("caution", "expected"),
    [(True, [1.0, 1 + 0.1 / 0.75, 1 - 0.1 / 0.75, 1 + 0.1 / 0.75]), (False, [1.1, 1.1, 0.9, 1.1])],
)
def test_caution_example_of_docs_lion_md(foreach, caution, expected) -> None:
    p = torch.nn.Parameter(torch.ones(4, dtype=torch.float64))
    opt = Lion([p], lr=0.1, weight_decay=0.0, caution=caution, foreach=foreach)
    opt.state[p]["exp_avg"] = torch.tensor([-1.0, -1.0, 0.0, 0.0], dtype=torch.float64)
    p.grad = torch.tensor([1.0, -1.0, 1.0, -1.0], dtype=torch.float64)
    opt.step()
    assert p.tolist() == pytest.approx(expected, abs=1e-15)
    # The rounded values docs/lion.md prints for this example ("Worked values").
    assert [round(x, 4) for x in p.tolist()] == ([1.0, 1.1333, 0.8667, 1.1333] if caution else [1.1, 1.1, 0.9, 1.1])


def test_exact_ties_give_no_update_and_zero_grad_is_finite_with_caution() -> None:
    p = torch.ones(5)
    m = torch.zeros(5)
    lion([p], [torch.zeros(5)], [m], beta1=0.9, beta2=0.99, lr=0.1, weight_decay=0.0, caution=True)
    assert torch.equal(p, torch.ones(5))
    assert torch.equal(m, torch.zeros(5))


@pytest.mark.parametrize("caution", [False, True])
def test_a_nan_gradient_entry_gets_no_step_and_leaves_the_others_alone(caution: bool) -> None:
    # torch.sign(nan) is 0: a NaN gradient entry gives its parameter no step (only the decay), is not counted by caution
    # (NaN > 0 is false) and makes its momentum entry NaN. Every kernel agrees, bit for bit.
    n, bad = 23, [0, 5, 11, 22]
    gen = torch.Generator().manual_seed(21)
    p0, m0, g = (torch.randn(n, generator=gen, dtype=torch.float64) * s for s in (1.0, 0.1, 1.0))
    g[bad] = float("nan")
    results = []
    for kernel in KERNELS:
        p, m = p0.clone(), m0.clone()
        run_kernel(
            kernel, [p], [g], [m], beta1=BETA1, beta2=BETA2, lr=LR, weight_decay=WD, caution=caution, maximize=False
        )
        results.append((p, m))
    for p, m in results[1:]:
        torch.testing.assert_close(p, results[0][0], rtol=0, atol=0, equal_nan=True)
        torch.testing.assert_close(m, results[0][1], rtol=0, atol=0, equal_nan=True)
    good = [i for i in range(n) if i not in bad]
    u = {i: float(math.copysign(1.0, BETA1 * m0[i] + (1 - BETA1) * g[i])) for i in good}
    step = LR
    if caution:
        agree = {i: float(u[i] * g[i] > 0) for i in good}
        step = LR / max(sum(agree.values()) / n, 1e-3)  # the mean is over all n entries
        u = {i: u[i] * agree[i] for i in good}
    p, m = results[0]
    for i in range(n):
        want_p = float(p0[i]) * (1 - LR * WD) - (step * u[i] if i in u else 0.0)
        assert math.isclose(float(p[i]), want_p, rel_tol=1e-12, abs_tol=1e-12), (i, float(p[i]), want_p)
        assert math.isnan(float(m[i])) == (i in bad)


def test_zero_size_tensor_with_caution_stays_empty_and_finite() -> None:
    p, g, m = torch.zeros(0, 3), torch.zeros(0, 3), torch.zeros(0, 3)
    for foreach in (False, True):
        lion([p], [g], [m], foreach=foreach, beta1=0.9, beta2=0.99, lr=0.1, weight_decay=0.1, caution=True)
    assert p.shape == (0, 3) and m.shape == (0, 3)


def test_count_is_exact_past_float32_integer_range() -> None:
    # A float32 sum of 2**24 + 3 ones returns 2**24 (+-2): the caution count must not.
    mask = torch.ones((1 << 24) + 3)
    assert mask.sum().item() != (1 << 24) + 3
    assert reference._count(mask).item() == (1 << 24) + 3


def random_state(sizes, dtype, seed):
    gen = torch.Generator().manual_seed(seed)
    real = torch.float32 if dtype.is_complex else dtype

    def rand(n: int, scale: float = 1.0) -> torch.Tensor:
        t = (torch.randn(2 * n if dtype.is_complex else n, generator=gen) * scale).to(real)
        return torch.view_as_complex(t.view(n, 2)) if dtype.is_complex else t

    ps = [rand(n) for n in sizes]
    gs = [rand(n) for n in sizes]
    ms = [rand(n, 0.01) for n in sizes]
    return ps, gs, ms


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float16, torch.complex64])
@pytest.mark.parametrize(("caution", "maximize"), [(False, False), (True, False), (True, True), (False, True)])
@pytest.mark.parametrize("block", [1000, 4096])
def test_blocked_equals_single_bitwise_on_split_and_ragged_tensors(dtype, caution, maximize, block) -> None:
    # Sizes larger than one block (cut into blocks, last block ragged) mixed with small ones (sharing blocks).
    sizes = [10_001, 7, 4096, 999, 1, 0, 3 * 4096 + 5, 2500]
    ps, gs, ms = random_state(sizes, dtype, seed=4)
    ps2, ms2 = [p.clone() for p in ps], [m.clone() for m in ms]
    kw = {"beta1": BETA1, "beta2": BETA2, "lr": 0.01, "weight_decay": 0.1, "caution": caution, "maximize": maximize}
    for _ in range(3):
        _single_tensor_lion(ps, gs, ms, **kw)
        _multi_tensor_lion(ps2, gs, ms2, block_numel=block, **kw)
    for a, b in zip(ps + ms, ps2 + ms2, strict=True):
        assert torch.equal(a, b)


def test_default_block_size_path_equals_single_bitwise() -> None:
    # Real default block size: one tensor cut into 3 blocks (the last ragged), many small tensors grouped.
    n = 2 * foreach_kernel._CPU_BLOCK_NUMEL + 12_345
    ps, gs, ms = random_state([n, *range(1, 200)], torch.float32, seed=5)
    ps2, ms2 = [p.clone() for p in ps], [m.clone() for m in ms]
    for caution in (False, True):
        kw = {"beta1": BETA1, "beta2": BETA2, "lr": 1e-3, "weight_decay": 0.1, "caution": caution}
        _single_tensor_lion(ps, gs, ms, maximize=False, **kw)
        lion(ps2, gs, ms2, **kw)
    for a, b in zip(ps + ms, ps2 + ms2, strict=True):
        assert torch.equal(a, b)


def test_mixed_dtypes_devices_are_grouped_and_order_is_kept() -> None:
    sizes = [50, 3, 70]
    ps32, gs32, ms32 = random_state(sizes, torch.float32, seed=6)
    ps64, gs64, ms64 = random_state(sizes, torch.float64, seed=7)
    order = [0, 3, 1, 4, 2, 5]
    ps, gs, ms = ([(a + b)[i] for i in order] for a, b in ((ps32, ps64), (gs32, gs64), (ms32, ms64)))
    ref_p, ref_m = [p.clone() for p in ps], [m.clone() for m in ms]
    kw = {"beta1": BETA1, "beta2": BETA2, "lr": 0.01, "weight_decay": 0.0, "caution": True, "maximize": False}
    _single_tensor_lion(ref_p, gs, ref_m, **kw)
    _multi_tensor_lion(ps, gs, ms, block_numel=16, **kw)
    for a, b in zip(ps + ms, ref_p + ref_m, strict=True):
        assert a.dtype == b.dtype and torch.equal(a, b)


def test_tensor_lr_equals_float_lr_bitwise() -> None:
    ps, gs, ms = random_state([300, 5], torch.float32, seed=8)
    ps2, ms2 = [p.clone() for p in ps], [m.clone() for m in ms]
    for kernel in KERNELS:
        kw = {"beta1": BETA1, "beta2": BETA2, "weight_decay": 0.2, "caution": True, "maximize": False}
        run_kernel(kernel, ps, gs, ms, lr=0.0125, **kw)
        run_kernel(kernel, ps2, gs, ms2, lr=torch.tensor(0.0125), **kw)
    for a, b in zip(ps + ms, ps2 + ms2, strict=True):
        assert torch.equal(a, b)


def test_default_dispatch_c_kernel_on_cpu_else_blocked_foreach(monkeypatch) -> None:
    calls = []
    monkeypatch.setattr(dispatch, "_multi_tensor_lion", lambda *a, **k: calls.append("multi"))
    monkeypatch.setattr(dispatch, "_single_tensor_lion", lambda *a, **k: calls.append("single"))
    monkeypatch.setattr(dispatch, "_native_cpu_lion", lambda *a, **k: calls.append("native") or True)
    args = ([torch.zeros(2)], [torch.ones(2)], [torch.zeros(2)])
    kw = {"beta1": 0.9, "beta2": 0.99, "lr": 0.1, "weight_decay": 0.0, "caution": False}
    lion(*args, **kw)
    lion(*args, foreach=False, **kw)
    lion(*args, foreach=True, **kw)
    lion(*args, fused=False, **kw)  # fused=False: no compiled kernel, the foreach one
    assert calls == ["native", "single", "multi", "multi"]
    calls.clear()
    monkeypatch.setattr(dispatch, "_native_cpu_lion", lambda *a, **k: calls.append("native") and False)
    lion(*args, **kw)  # the C kernel does not apply (or cannot be built): foreach
    assert calls == ["native", "multi"]


def test_default_path_runs_the_c_kernel_where_it_applies(monkeypatch) -> None:
    used = []
    real = dispatch._native_kernel
    monkeypatch.setattr(dispatch, "_native_kernel", lambda *a: used.append(a) or real(*a))
    multi = []
    real_multi = dispatch._multi_tensor_lion
    monkeypatch.setattr(dispatch, "_multi_tensor_lion", lambda *a, **k: multi.append(1) or real_multi(*a, **k))
    kw = {"beta1": BETA1, "beta2": BETA2, "lr": 0.01, "weight_decay": 0.1, "caution": True}
    for dtype in (torch.float32, torch.float64, torch.bfloat16):
        ps, gs, ms = random_state([300, 5, 0, 1], dtype, seed=3)
        want = [[t.clone() for t in ts] for ts in (ps, gs, ms)]
        lion(ps, gs, ms, **kw)
        _single_tensor_lion(*want, maximize=False, **kw)
        for a, b in zip(ps + ms, want[0] + want[2], strict=True):
            assert torch.equal(a, b)
    if dispatch._NATIVE_UNAVAILABLE:  # no C compiler here: every call went to the foreach kernel
        assert len(multi) == 3
    else:
        assert [a[0] for a in used] == [torch.float32, torch.float64, torch.bfloat16] and not multi
    # float16 (no C kernel), a non-contiguous grad, mixed dtypes: the foreach kernel, no C kernel asked for
    used.clear()
    multi.clear()
    p16 = [torch.ones(4, dtype=torch.float16)]
    lion(p16, [torch.ones(4, dtype=torch.float16)], [torch.zeros(4, dtype=torch.float16)], **kw)
    lion([torch.ones(3, 2)], [torch.ones(2, 3).t()], [torch.zeros(3, 2)], **kw)
    lion(
        [torch.ones(2), torch.ones(2, dtype=torch.float64)],
        [torch.ones(2), torch.ones(2, dtype=torch.float64)],
        [torch.zeros(2), torch.zeros(2, dtype=torch.float64)],
        **kw,
    )
    assert used == [] and len(multi) == 3


def test_default_cpu_kernel_setting(monkeypatch) -> None:
    args = ([torch.zeros(2)], [torch.ones(2)], [torch.zeros(2)])
    kw = {"beta1": 0.9, "beta2": 0.99, "lr": 0.1, "weight_decay": 0.0, "caution": False}
    monkeypatch.setattr(dispatch, "_native_kernel", lambda *a: pytest.fail("the C kernel was asked for"))
    monkeypatch.setattr(dispatch, "_DEFAULT_CPU_KERNEL", "foreach")
    lion(*args, **kw)
    assert torch.equal(args[0][0], -0.1 * torch.ones(2))
    monkeypatch.setattr(dispatch, "_DEFAULT_CPU_KERNEL", "fast")
    with pytest.raises(ValueError, match="NOETHER_LION_DEFAULT_CPU_KERNEL='fast'; expected 'c' or 'foreach'"):
        lion(*args, **kw)
    assert torch.equal(args[0][0], -0.1 * torch.ones(2)) and torch.equal(args[2][0], 0.01 * torch.ones(2))


def test_empty_lists_do_nothing() -> None:
    for foreach in (False, True):
        lion([], [], [], foreach=foreach, beta1=0.9, beta2=0.99, lr=0.1, weight_decay=0.0, caution=True)


@pytest.mark.parametrize("kernel", KERNELS)
def test_caution_mean_is_floored_at_1e_minus_3(kernel) -> None:
    # One agreeing element out of 2000: mean 5e-4 is floored to 1e-3, so that element moves by lr / 1e-3.
    p, g, m = torch.zeros(2000, dtype=torch.float64), torch.ones(2000, dtype=torch.float64), -torch.ones(2000)
    m = m.to(torch.float64)
    m[0] = 1.0
    run_kernel(kernel, [p], [g], [m], beta1=0.9, beta2=0.99, lr=1e-3, weight_decay=0.0, caution=True, maximize=False)
    assert p[0].item() == pytest.approx(-1.0, abs=1e-12)
    assert torch.equal(p[1:], torch.zeros(1999, dtype=torch.float64))
    # Ten agreeing elements: mean 5e-3 is above the floor, so each moves by lr / 5e-3.
    p2, m2 = torch.zeros(2000, dtype=torch.float64), -torch.ones(2000, dtype=torch.float64)
    m2[:10] = 1.0
    run_kernel(kernel, [p2], [g], [m2], beta1=0.9, beta2=0.99, lr=1e-3, weight_decay=0.0, caution=True, maximize=False)
    assert p2[:10].tolist() == pytest.approx([-0.2] * 10, abs=1e-12)
