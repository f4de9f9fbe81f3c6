"""Low-precision Lion: Kahan-compensated 16-bit parameters and a momentum in another dtype.

Every kernel is checked bit for bit against an independent reference written here with numpy: the formula of the
update, each operation in an explicit float32 (or float64) dtype, each stored value rounded once.
"""

from __future__ import annotations

import io
import itertools
from typing import Any

import numpy as np
import pytest
import torch
from torch import Tensor

from noether.core.factory import OptimizerFactory
from noether.core.optimizer import Lion, OptimizerWrapper
from noether.core.optimizer.lion import compiled_kernel, dispatch, lion
from noether.core.optimizer.lion.cpu_build import C_PAIRS
from noether.core.optimizer.lion.dispatch import _fused_lion
from noether.core.optimizer.lion.foreach_kernel import _multi_tensor_lion
from noether.core.optimizer.lion.reference import _single_tensor_lion

BETAS = (0.9, 0.99)
LOW = (torch.bfloat16, torch.float16)


# ---------------------------------------------------------------------------------------------------------------------
# independent reference


def _round(x: np.ndarray, dtype: torch.dtype) -> np.ndarray:
    """``x`` (float32 or float64) rounded to ``dtype`` (nearest even), returned widened back to x's dtype."""
    if dtype in (torch.float32, torch.float64):
        return x.astype(np.float32 if dtype == torch.float32 else np.float64)
    return torch.from_numpy(x.copy()).to(dtype).to(torch.float64).numpy().astype(x.dtype)


def _lerp(a: np.ndarray, b: np.ndarray, w: float, ft: type) -> np.ndarray:
    """ATen's lerp in the float type ``ft``: one rounding of a fused multiply-add (emulated in float64 for float32)."""
    w_ = ft(w)
    diff = (b - a).astype(ft)
    if abs(w_) < 0.5:
        exact = w_.astype(np.float64) * diff.astype(np.float64) + a.astype(np.float64)
    else:
        exact = -diff.astype(np.float64) * np.float64(ft(1) - w_) + b.astype(np.float64)
    return exact.astype(ft)


def reference_step(
    p: Tensor,
    g: Tensor,
    m: Tensor,
    c: Tensor | None,
    *,
    lr: float,
    weight_decay: float,
    caution: bool,
    maximize: bool,
) -> tuple[Tensor, Tensor, Tensor | None]:
    """One step of one real tensor: widen, compute in float32 (float64), round each stored value once."""
    ft = np.float64 if torch.float64 in (p.dtype, m.dtype) else np.float32
    pv, gv, mv = (t.detach().to(torch.float64).numpy().reshape(-1).astype(ft) for t in (p, g, m))
    if maximize:
        gv = -gv
    x = pv if c is None else (pv + c.to(torch.float64).numpy().reshape(-1).astype(ft)).astype(ft)
    if weight_decay:
        x = (x * ft(1.0 - lr * weight_decay)).astype(ft)
    d = _lerp(mv, gv, 1.0 - BETAS[0], ft)
    u = np.sign(d).astype(ft)
    u[np.isnan(d)] = 0
    if caution:
        agree = (u * gv > 0).astype(ft)
        u = (u * agree).astype(ft)
        step = ft(lr / max(float(agree.sum()) / max(u.size, 1), 1e-3))
    else:
        step = ft(lr)
    x = (x - u * step).astype(ft)
    new_p = _round(x, p.dtype)
    new_c = None if c is None else _round((x - new_p).astype(ft), c.dtype)
    new_m = _round(_lerp(mv, gv, 1.0 - BETAS[1], ft), m.dtype)

    def back(a: np.ndarray, dtype: torch.dtype) -> Tensor:
        return torch.from_numpy(a.astype(np.float64)).to(dtype).reshape(p.shape)

    return back(new_p, p.dtype), back(new_m, m.dtype), None if new_c is None else back(new_c, p.dtype)


# ---------------------------------------------------------------------------------------------------------------------
# data

SHAPES = [(7,), (0,), (33, 17), (3000,), (1,), (5, 1, 3)]


def make(
    dtype: torch.dtype, momentum_dtype: torch.dtype, kahan: bool, seed: int, shapes: list[tuple[int, ...]] = SHAPES
) -> tuple[list[Tensor], list[Tensor], list[Tensor], list[Tensor] | None]:
    gen = torch.Generator().manual_seed(seed)
    ps = [torch.randn(s, generator=gen).to(dtype) for s in shapes]
    gs = [torch.randn(s, generator=gen).to(dtype) for s in shapes]
    ms = [(torch.randn(s, generator=gen) * 0.3).to(momentum_dtype) for s in shapes]
    cs = None
    if kahan:  # compensations below half an ulp of the parameter, as the update leaves them
        cs = [(p.float() * torch.rand(p.shape, generator=gen) * 2.0**-9).to(dtype) for p in ps]
    for g in gs:  # a few exact zeros and NaNs: sign 0, no step
        g.view(-1)[5::23] = 0.0
    gs[2].view(-1)[11] = float("nan")
    return ps, gs, ms, cs


def clone(lists: Any) -> Any:
    return tuple(None if ts is None else [t.clone() for t in ts] for ts in lists)


def assert_equal(got: Any, want: Any) -> None:
    for ga, wa in zip(got, want, strict=True):
        if wa is None:
            assert ga is None
            continue
        for a, b in zip(ga, wa, strict=True):
            assert a.dtype == b.dtype
            assert torch.equal(a.nan_to_num(7.0), b.nan_to_num(7.0)), (a, b)


MODES = [
    # (param dtype, momentum dtype, kahan)
    (torch.bfloat16, torch.bfloat16, True),
    (torch.bfloat16, torch.bfloat16, False),
    (torch.float16, torch.float16, True),
    (torch.float32, torch.bfloat16, False),
    (torch.bfloat16, torch.float32, True),
    (torch.float64, torch.float32, False),
]


@pytest.mark.parametrize(("dtype", "momentum_dtype", "kahan"), MODES)
@pytest.mark.parametrize(("caution", "maximize"), [(False, False), (True, True)])
def test_reference_kernel_matches_the_independent_reference(
    dtype: torch.dtype, momentum_dtype: torch.dtype, kahan: bool, caution: bool, maximize: bool
) -> None:
    ps, gs, ms, cs = make(dtype, momentum_dtype, kahan, seed=1)
    hyper = {"lr": 1e-3, "weight_decay": 0.1, "caution": caution, "maximize": maximize}
    want = [reference_step(p, g, m, c, **hyper) for p, g, m, c in zip(ps, gs, ms, cs or [None] * len(ps), strict=True)]
    _single_tensor_lion(ps, gs, ms, beta1=BETAS[0], beta2=BETAS[1], **hyper, kahan_comps=cs)  # type: ignore[arg-type]
    assert_equal(
        (ps, ms, cs), ([w[0] for w in want], [w[1] for w in want], None if cs is None else [w[2] for w in want])
    )


def _run(kernel: str, lists: Any, hyper: dict[str, Any]) -> None:
    ps, gs, ms, cs = lists
    kw = {"beta1": BETAS[0], "beta2": BETAS[1], **hyper, "kahan_comps": cs}
    if kernel == "foreach":
        _multi_tensor_lion(ps, gs, ms, **kw, block_numel=1000)  # 3000 elements: a tensor split into blocks
    elif kernel == "default":
        lion(ps, gs, ms, **kw)
    else:
        _fused_lion(ps, gs, ms, **kw)


# fused=True runs the C kernel only for the dtype pairs it has; the others compile the inductor kernel (tested below).
KERNEL_MODES = [
    (kernel, *mode)
    for kernel in ("foreach", "default", "fused-c")
    for mode in MODES
    if kernel != "fused-c" or (mode[0], mode[1]) in C_PAIRS
]


@pytest.mark.parametrize(("kernel", "dtype", "momentum_dtype", "kahan"), KERNEL_MODES)
def test_kernels_are_bit_identical_to_the_reference(
    monkeypatch: pytest.MonkeyPatch, kernel: str, dtype: torch.dtype, momentum_dtype: torch.dtype, kahan: bool
) -> None:
    monkeypatch.setattr(dispatch, "_CPU_KERNEL", "c")
    for caution, maximize in ((False, False), (True, True)):
        got = make(dtype, momentum_dtype, kahan, seed=2)
        want = clone(got)
        hyper: dict[str, Any] = {"lr": 1e-3, "weight_decay": 0.1, "caution": caution, "maximize": maximize}
        for step in range(3):
            hyper["lr"] = torch.tensor(1e-3) if step % 2 else 1e-3
            _run(kernel, got, hyper)
            _single_tensor_lion(*want[:3], beta1=BETAS[0], beta2=BETAS[1], **hyper, kahan_comps=want[3])
            assert_equal(got, want)


@pytest.mark.slow
@pytest.mark.parametrize(
    ("dtype", "momentum_dtype", "kahan", "caution"),
    [(torch.float16, torch.float16, True, True), (torch.float32, torch.bfloat16, False, False)],
)
def test_inductor_kernel_is_bit_identical_to_the_reference(
    monkeypatch: pytest.MonkeyPatch, dtype: torch.dtype, momentum_dtype: torch.dtype, kahan: bool, caution: bool
) -> None:
    # The kernel fused=True compiles on accelerators (Triton on CUDA), compiled here for CPU, with small chunks (the
    # same code paths, compiled faster).
    monkeypatch.setattr(dispatch, "_CPU_KERNEL", "inductor")
    monkeypatch.setattr(dispatch, "_KERNELS", {})
    monkeypatch.setattr(compiled_kernel, "_CHUNK", 4)
    got = make(dtype, momentum_dtype, kahan, seed=3)
    want = clone(got)
    hyper: dict[str, Any] = {"lr": 1e-3, "weight_decay": 0.1, "caution": caution, "maximize": True}
    for _ in range(2):
        _fused_lion(*got[:3], beta1=BETAS[0], beta2=BETAS[1], **hyper, kahan_comps=got[3])
        _single_tensor_lion(*want[:3], beta1=BETAS[0], beta2=BETAS[1], **hyper, kahan_comps=want[3])
        assert_equal(got, want)


def test_complex_parameters_with_compensation_through_their_real_views() -> None:
    # The functional API takes compensations of complex parameters too (the class never creates them).
    gen = torch.Generator().manual_seed(4)
    p = torch.randn(6, 5, dtype=torch.complex64, generator=gen)
    g = torch.randn(6, 5, dtype=torch.complex64, generator=gen)
    m = torch.randn(6, 5, dtype=torch.complex64, generator=gen)
    c = torch.zeros_like(p)
    want_p, want_m, _ = reference_step(
        torch.view_as_real(p), torch.view_as_real(g), torch.view_as_real(m), None, lr=0.01, weight_decay=0.0,
        caution=False, maximize=False,
    )  # fmt: skip
    lion([p], [g], [m], beta1=BETAS[0], beta2=BETAS[1], lr=0.01, weight_decay=0.0, caution=False, kahan_comps=[c])
    assert torch.equal(torch.view_as_real(p), want_p) and torch.equal(torch.view_as_real(m), want_m)
    assert torch.equal(c, torch.zeros_like(c))  # float32 sums round to themselves


# ---------------------------------------------------------------------------------------------------------------------
# what compensation buys


@pytest.mark.parametrize("kahan_sum", [None, False])
def test_a_bf16_weight_at_one_moves_by_lr_per_step_only_with_compensation(kahan_sum: bool | None) -> None:
    w = torch.nn.Parameter(torch.ones(8, dtype=torch.bfloat16))
    opt = Lion([w], lr=1e-4, kahan_sum=kahan_sum)
    for _ in range(1000):
        w.grad = torch.ones_like(w)
        opt.step()
    if kahan_sum is False:
        assert torch.equal(w, torch.ones_like(w))  # 1 - 1e-4 rounds back to 1: nothing moves, ever
        assert "kahan_comp" not in opt.state[w]
        return
    comp = opt.state[w]["kahan_comp"]
    moved = 1.0 - (w.double() + comp.double())
    assert moved.sub(0.1).abs().max() <= 0.001  # 0.1 to 1%
    ulp = 2.0**-8  # bfloat16 spacing in [0.5, 1)
    assert (w.double() - 0.9).abs().max() <= ulp  # the stored weight is one of the two bf16 neighbours of 0.9


def test_a_long_compensated_bf16_trajectory_stays_within_a_few_ulps_of_float32() -> None:
    gen = torch.Generator().manual_seed(5)
    start = torch.randn(1024, generator=gen)
    w32 = torch.nn.Parameter(start.clone())
    w16 = torch.nn.Parameter(start.to(torch.bfloat16))
    plain = torch.nn.Parameter(start.to(torch.bfloat16))
    opts = [Lion([w], lr=3e-4, weight_decay=0.1, kahan_sum=k) for w, k in ((w32, None), (w16, None), (plain, False))]
    for _ in range(2000):
        # A gradient pulling the weights to 0.5, from the float32 run: all three runs see the same gradients.
        g = (w32.detach() - 0.5) + 0.1 * torch.randn(1024, generator=gen)
        w32.grad, w16.grad, plain.grad = g, g.to(torch.bfloat16), g.to(torch.bfloat16)
        for opt in opts:
            opt.step()
    # A weight's ulp along its way: half the bfloat16 spacing at the larger of its start and end magnitudes.
    ulp = torch.finfo(torch.bfloat16).eps / 2 * torch.maximum(w32.detach().abs(), start.abs()).clamp_min(2.0**-6)
    err = (w16.double() - w32.double()).abs() / ulp.double()
    assert err.max() <= 3.0, err.max()
    assert (plain.double() - w32.double()).abs().div(ulp.double()).median() > 50  # without: hundreds of ulps off


# ---------------------------------------------------------------------------------------------------------------------
# the optimizer: options, state, checkpoints


@pytest.mark.parametrize(
    ("dtype", "kahan_sum", "has_comp"),
    [
        (torch.bfloat16, None, True),
        (torch.float16, None, True),
        (torch.float32, None, False),
        (torch.float64, None, False),
        (torch.bfloat16, False, False),
        (torch.float16, True, True),
    ],
)
def test_kahan_sum_default_and_state(dtype: torch.dtype, kahan_sum: bool | None, has_comp: bool) -> None:
    p = torch.nn.Parameter(torch.randn(3, 4).to(dtype).to(memory_format=torch.contiguous_format))
    opt = Lion([p], lr=1e-3, kahan_sum=kahan_sum)
    p.grad = torch.randn(3, 4).to(dtype)
    opt.step()
    state = opt.state[p]
    assert ("kahan_comp" in state) == has_comp
    assert state["exp_avg"].dtype == dtype
    if has_comp:
        assert state["kahan_comp"].dtype == dtype and state["kahan_comp"].shape == p.shape


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.complex64])
def test_kahan_sum_true_on_a_full_precision_param_names_the_dtype(dtype: torch.dtype) -> None:
    with pytest.raises(ValueError, match=rf"kahan_sum.*{dtype}"):
        Lion([torch.nn.Parameter(torch.zeros(2, dtype=dtype))], lr=1e-3, kahan_sum=True)


@pytest.mark.parametrize("value", ["int8", torch.int32, torch.complex64, 3, "float8_e4m3fn"])
def test_invalid_momentum_dtype_is_refused(value: object) -> None:
    with pytest.raises(ValueError, match="momentum_dtype"):
        Lion([torch.nn.Parameter(torch.zeros(2))], lr=1e-3, momentum_dtype=value)  # type: ignore[arg-type]


def test_momentum_dtype_for_complex_parameters_is_refused() -> None:
    with pytest.raises(ValueError, match=r"momentum_dtype.*complex"):
        Lion([torch.nn.Parameter(torch.zeros(2, dtype=torch.complex64))], lr=1e-3, momentum_dtype=torch.bfloat16)


def test_kahan_sum_must_be_a_flag() -> None:
    with pytest.raises(ValueError, match="kahan_sum"):
        Lion([torch.nn.Parameter(torch.zeros(2))], lr=1e-3, kahan_sum="yes")  # type: ignore[arg-type]


@pytest.mark.parametrize("momentum_dtype", ["bfloat16", torch.bfloat16, "torch.bfloat16"])
def test_momentum_dtype_by_name_or_dtype(momentum_dtype: Any) -> None:
    p = torch.nn.Parameter(torch.randn(5))
    opt = Lion([p], lr=1e-3, momentum_dtype=momentum_dtype)
    assert opt.param_groups[0]["momentum_dtype"] == "bfloat16"  # a name: distributed checkpoints store it
    p.grad = torch.randn(5)
    opt.step()
    assert opt.state[p]["exp_avg"].dtype == torch.bfloat16 and "kahan_comp" not in opt.state[p]


def _model(dtype: torch.dtype) -> torch.nn.Module:
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(6, 8), torch.nn.Tanh(), torch.nn.Linear(8, 1)).to(dtype)


def _train(model: torch.nn.Module, opt: torch.optim.Optimizer, steps: int, seed: int) -> None:
    gen = torch.Generator().manual_seed(seed)
    dtype = next(model.parameters()).dtype
    for _ in range(steps):
        x = torch.randn(16, 6, generator=gen).to(dtype)
        opt.zero_grad()
        model(x).square().mean().backward()
        opt.step()


@pytest.mark.parametrize(
    ("dtype", "momentum_dtype"), [(torch.bfloat16, None), (torch.bfloat16, torch.float32), (torch.float32, "bfloat16")]
)
def test_state_dict_round_trip_keeps_dtypes_and_resumes_bit_for_bit(dtype: torch.dtype, momentum_dtype: Any) -> None:
    a, b = _model(dtype), _model(dtype)
    opt_a = Lion(a.parameters(), lr=1e-3, weight_decay=0.1, momentum_dtype=momentum_dtype)
    _train(a, opt_a, 3, seed=1)
    b.load_state_dict(a.state_dict())
    opt_b = Lion(b.parameters(), lr=1e-3, weight_decay=0.1, momentum_dtype=momentum_dtype)
    opt_b.load_state_dict(opt_a.state_dict())
    for p_a, p_b in zip(a.parameters(), b.parameters(), strict=True):
        sa, sb = opt_a.state[p_a], opt_b.state[p_b]
        assert sorted(sa) == sorted(sb)
        for key in sa:  # torch would cast a float32 momentum of bf16 params to bf16: it keeps its dtype
            assert sa[key].dtype == sb[key].dtype and torch.equal(sa[key], sb[key])
            assert sa[key].data_ptr() != sb[key].data_ptr()
    _train(a, opt_a, 3, seed=2)
    _train(b, opt_b, 3, seed=2)
    assert all(torch.equal(x, y) for x, y in zip(a.parameters(), b.parameters(), strict=True))


def test_a_checkpoint_without_compensation_loads_and_starts_from_zero() -> None:
    model = _model(torch.bfloat16)
    old = Lion(model.parameters(), lr=1e-3, kahan_sum=False)
    _train(model, old, 2, seed=1)
    saved = old.state_dict()
    for group in saved["param_groups"]:  # as the original framework wrote it: neither option, no compensation
        del group["kahan_sum"], group["momentum_dtype"]
    assert all("kahan_comp" not in s for s in saved["state"].values())
    opt = Lion(model.parameters(), lr=1e-3)
    opt.load_state_dict(saved)
    p = next(iter(model.parameters()))
    want_m = opt.state[p]["exp_avg"].clone()
    _train(model, opt, 1, seed=2)
    assert all(s["kahan_comp"].dtype == torch.bfloat16 for s in opt.state.values())
    assert not torch.equal(opt.state[p]["exp_avg"], want_m)  # the loaded momentum was used and updated


def test_a_changed_momentum_dtype_converts_the_state_at_the_next_step() -> None:
    p = torch.nn.Parameter(torch.randn(4))
    opt = Lion([p], lr=1e-3)
    p.grad = torch.randn(4)
    opt.step()
    opt.param_groups[0]["momentum_dtype"] = torch.bfloat16
    opt.step()
    assert opt.state[p]["exp_avg"].dtype == torch.bfloat16


def test_mixed_group_compensates_only_the_16_bit_params_and_matches_separate_optimizers() -> None:
    gen = torch.Generator().manual_seed(6)
    p16 = torch.nn.Parameter(torch.randn(50, generator=gen).bfloat16())
    p32 = torch.nn.Parameter(torch.randn(50, generator=gen))
    q16, q32 = (torch.nn.Parameter(p.detach().clone()) for p in (p16, p32))
    opt = Lion([p16, p32], lr=1e-3, weight_decay=0.1, caution=True)
    opt16, opt32 = (
        Lion([q16], lr=1e-3, weight_decay=0.1, caution=True),
        Lion([q32], lr=1e-3, weight_decay=0.1, caution=True),
    )
    for _ in range(3):
        g = torch.randn(50, generator=gen)
        p16.grad, q16.grad, p32.grad, q32.grad = g.bfloat16(), g.bfloat16(), g, g.clone()
        opt.step()
        opt16.step()
        opt32.step()
    assert torch.equal(p16, q16) and torch.equal(p32, q32)
    assert "kahan_comp" in opt.state[p16] and "kahan_comp" not in opt.state[p32]


@pytest.mark.parametrize(
    ("dtype", "options"),
    [
        (torch.bfloat16, {"foreach": None}),
        (torch.bfloat16, {"foreach": True, "caution": True}),
        (torch.float32, {"foreach": None, "momentum_dtype": torch.bfloat16}),
        (torch.bfloat16, {"fused": True, "momentum_dtype": torch.float32}),
    ],
)
def test_tensor_lr_changes_do_not_recompile_the_low_precision_step(dtype: torch.dtype, options: dict[str, Any]) -> None:
    torch._dynamo.reset()
    p = torch.nn.Parameter(torch.zeros(4, dtype=dtype))
    q = torch.nn.Parameter(torch.zeros(4, dtype=dtype))
    opt = Lion([p], lr=torch.tensor(0.1), weight_decay=0.1, **options)
    eager = Lion([q], lr=torch.tensor(0.1), weight_decay=0.1, **options)
    step = torch.compile(opt.step, backend="eager")
    p.grad = q.grad = torch.ones(4, dtype=dtype)
    step()  # first call compiles
    eager.step()
    with torch._dynamo.config.patch(error_on_recompile=True):
        for lr in (0.2, 0.05):
            for o in (opt, eager):
                o.param_groups[0]["lr"].fill_(lr)
            step()
            eager.step()
    assert torch.equal(p, q)
    assert all(torch.equal(a, b) for a, b in zip(opt.state[p].values(), eager.state[q].values(), strict=True))


def test_compensated_params_allocate_what_the_docs_say() -> None:
    # bytes per parameter of weights + state: bf16 + bf16 momentum + bf16 compensation = 6; fp32 + bf16 momentum = 6
    def nbytes(dtype: torch.dtype, **kw: Any) -> float:
        p = torch.nn.Parameter(torch.zeros(1000, dtype=dtype))
        opt = Lion([p], lr=1e-3, **kw)
        p.grad = torch.zeros_like(p)
        opt.step()
        total = p.nbytes + sum(t.nbytes for t in opt.state[p].values())
        return total / p.numel()

    assert nbytes(torch.float32) == 8
    assert nbytes(torch.float32, momentum_dtype=torch.bfloat16) == 6
    assert nbytes(torch.bfloat16, kahan_sum=False) == 4
    assert nbytes(torch.bfloat16) == 6


def test_every_mode_combination_steps() -> None:
    # Smoke: every dtype x momentum dtype x flag combination the class accepts steps and keeps its state dtypes.
    for dtype, momentum_dtype, caution in itertools.product(
        (torch.bfloat16, torch.float16, torch.float32), (None, torch.bfloat16, torch.float32), (False, True)
    ):
        p = torch.nn.Parameter(torch.randn(2, 3).to(dtype))
        opt = Lion([p], lr=1e-3, momentum_dtype=momentum_dtype, caution=caution)
        p.grad = torch.randn(2, 3).to(dtype)
        opt.step()
        assert opt.state[p]["exp_avg"].dtype == (momentum_dtype or dtype)


# ---------------------------------------------------------------------------------------------------------------------
# through the wrapper: config keys from YAML, the name-keyed checkpoint


@pytest.mark.parametrize(
    ("dtype", "options"),
    [(torch.bfloat16, {"kahan_sum": True}), (torch.float32, {"momentum_dtype": "bfloat16"})],
)
def test_wrapper_config_keys_and_name_keyed_resume(dtype: torch.dtype, options: dict[str, Any]) -> None:
    config = {"kind": "noether.core.optimizer.Lion", "lr": 1e-3, "weight_decay": 0.1, "caution": True, **options}

    def build() -> OptimizerWrapper:
        return OptimizerFactory().create(dict(config))(_model(dtype))

    a, b = build(), build()
    group = a.torch_optim.param_groups[0]
    assert group["kahan_sum"] is options.get("kahan_sum") and group["momentum_dtype"] == options.get("momentum_dtype")

    def train(wrapper: OptimizerWrapper, seed: int) -> None:
        gen = torch.Generator().manual_seed(seed)
        for _ in range(2):
            wrapper.zero_grad()
            wrapper.model(torch.randn(16, 6, generator=gen).to(dtype)).square().mean().backward()
            wrapper.step()

    train(a, 1)
    buffer = io.BytesIO()
    torch.save(a.state_dict(), buffer)
    buffer.seek(0)
    b.model.load_state_dict(a.model.state_dict())
    b.load_state_dict(torch.load(buffer, weights_only=True))
    for p_a, p_b in zip(a.model.parameters(), b.model.parameters(), strict=True):
        sa, sb = a.torch_optim.state[p_a], b.torch_optim.state[p_b]
        assert sorted(sa) == sorted(sb) and all(sa[k].dtype == sb[k].dtype for k in sa)
    train(a, 2)
    train(b, 2)
    assert all(torch.equal(x, y) for x, y in zip(a.model.parameters(), b.model.parameters(), strict=True))
