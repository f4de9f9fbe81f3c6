"""Lion against the generic checks torch applies to its own optimizers (torch's OptimizerInfo tests), on CPU.

Each test follows one of torch's generic optimizer tests: state dict round trips with hooks, deepcopy, parameter
groups with schedulers, per-group weight decay and lr, complex parameters, kernel parity, tensor lr, closures,
``zero_grad``, and error inputs with torch's exception types and messages. Where Lion deliberately differs (a
parameter listed twice in one group is refused; torch only warns), the test says so.
"""

from __future__ import annotations

import copy
import io
from collections.abc import Callable
from typing import Any

import pytest
import torch
from torch.nn import Parameter
from torch.optim.lr_scheduler import ConstantLR, ExponentialLR, ReduceLROnPlateau, StepLR

from noether.core.optimizer import Lion
from noether.core.optimizer.lion import dispatch

# Lion's OptimizerInput set: every hyperparameter the constructor takes, as torch's optim_inputs_func_* do.
OPTIM_INPUTS: list[dict[str, Any]] = [
    {},
    {"lr": 0.01},
    {"weight_decay": 0.1},
    {"weight_decay": 0.1, "maximize": True},
    {"betas": (0.95, 0.98)},
    {"caution": True, "weight_decay": 0.1},
    {"lr": torch.tensor(0.001)},
]
# torch's "global cliquey" kwargs: each test is run with every kernel selection.
KERNELS: list[dict[str, Any]] = [{}, {"foreach": False}, {"foreach": True}, {"fused": True}]


def _id(kwargs: dict[str, Any]) -> str:
    return ",".join(f"{k}={v.item() if isinstance(v, torch.Tensor) else v}" for k, v in kwargs.items()) or "default"


def all_inputs() -> list[Any]:
    return [pytest.param({**i, **k}, id=f"{_id(i)}|{_id(k)}") for i in OPTIM_INPUTS for k in KERNELS]


def fresh(kwargs: dict[str, Any]) -> dict[str, Any]:
    """A copy whose tensor lr is a new tensor: optimizers must not share a mutable lr."""
    return {k: v.clone() if isinstance(v, torch.Tensor) else v for k, v in kwargs.items()}


def rosenbrock(t: torch.Tensor) -> torch.Tensor:
    x, y = t
    return (1 - x) ** 2 + 100 * (y - x**2) ** 2


def linear_problem(dtype: torch.dtype = torch.float32) -> tuple[Parameter, Parameter, torch.Tensor]:
    gen = torch.Generator().manual_seed(0)
    weight = Parameter(torch.randn(10, 5, generator=gen, dtype=dtype))
    bias = Parameter(torch.randn(10, generator=gen, dtype=dtype))
    return weight, bias, torch.randn(5, generator=gen, dtype=dtype)


def loss_closure(opt: torch.optim.Optimizer, weight: Parameter, bias: Parameter, x: torch.Tensor) -> Callable[[], Any]:
    def closure() -> torch.Tensor:
        opt.zero_grad()
        loss = (weight.mv(x) + bias).pow(2).sum()
        loss.backward()
        return loss

    return closure


# --- errors: torch's get_error_inputs_for_all_optims and the Adam family's own ---------------------------------------


def test_error_inputs_raise_torchs_exception_types() -> None:
    p, q = Parameter(torch.randn(1, 1)), Parameter(torch.randn(1, 1))
    with pytest.raises(TypeError, match="params argument given to the optimizer should be an iterable of Tensors"):
        Lion(p)
    with pytest.raises(ValueError, match="some parameters appear in more than one parameter group"):
        Lion([{"params": p}, {"params": p}])
    with pytest.raises(ValueError, match="Tensor lr must be 1-element"):
        Lion([p], lr=torch.tensor([0.001, 0.001]))
    with pytest.raises(ValueError, match=r"all optimizer params should be with/without names\. Some param names are"):
        Lion([("weight", p), q])
    with pytest.raises(ValueError, match=r"all optimizer param groups should be with/without names\. cannot add"):
        Lion([{"params": [p], "lr": 1e-2}, {"params": [("weight", q)]}])
    with pytest.raises(ValueError, match=r"betas\[0\]"):
        Lion([p], lr=1e-2, betas=(1.0, 0.0))
    with pytest.raises(ValueError, match="weight_decay"):
        Lion([p], lr=1e-2, weight_decay=-1)
    with pytest.raises(ValueError, match="optimizer got an empty parameter list"):
        Lion([])
    # torch raises RuntimeError for both kernels at once; Lion's error is also a ValueError, like its other
    # hyperparameter errors.
    with pytest.raises(RuntimeError, match="foreach and fused cannot both be True"):
        Lion([p], foreach=True, fused=True)


def test_a_parameter_twice_in_one_group_is_refused_not_warned_about() -> None:
    # torch warns ("a parameter group with duplicate parameters") and steps the parameter twice; some of Lion's
    # kernels update a list's tensors in parallel, so a parameter listed twice would race: Lion refuses it.
    p, q = Parameter(torch.randn(2)), Parameter(torch.randn(2))
    with pytest.raises(ValueError, match=r"parameter 2 is the same tensor as parameter 0.*a parameter group with dup"):
        Lion([p, q, p])
    with pytest.raises(ValueError, match=r"parameter 1 \('w2'\) is the same tensor as parameter 0"):
        Lion([("w", p), ("w2", p)])
    opt = Lion([p])
    with pytest.raises(ValueError, match=r"param group 1\): parameter 1 is already in param group 0"):
        opt.add_param_group({"params": [q, p]})
    assert len(opt.param_groups) == 1


# --- steps go the right way, with schedulers and per-group settings ---------------------------------------------------


@pytest.mark.parametrize("kwargs", all_inputs())
def test_forloop_goes_right_direction(kwargs: dict[str, Any]) -> None:
    weight, bias, x = linear_problem()
    opt = Lion([weight, bias], **fresh({"lr": 0.01, **kwargs}))
    closure = loss_closure(opt, weight, bias, x)
    initial = closure().item()
    for _ in range(5):
        opt.step(closure)
    final = closure().item()
    assert final > initial if kwargs.get("maximize") else final < initial


@pytest.mark.parametrize(
    "make_schedulers",
    [
        lambda opt: [StepLR(opt, gamma=0.9, step_size=10)],
        lambda opt: [ExponentialLR(opt, gamma=0.9)],
        lambda opt: [ConstantLR(opt, factor=0.4, total_iters=4), ExponentialLR(opt, gamma=0.9)],
        lambda opt: [ReduceLROnPlateau(opt)],
    ],
    ids=["StepLR", "ExponentialLR", "ConstantLR+ExponentialLR", "ReduceLROnPlateau"],
)
@pytest.mark.parametrize("tensor_lr", [False, True])
def test_param_group_with_lrscheduler_goes_right_direction(
    make_schedulers: Callable[..., Any], tensor_lr: bool
) -> None:
    weight, bias, x = linear_problem()
    lr: Any = torch.tensor(0.02) if tensor_lr else 0.02
    opt = Lion([{"params": [weight]}, {"params": [bias], "lr": 0.01}], lr=lr)
    schedulers = make_schedulers(opt)
    closure = loss_closure(opt, weight, bias, x)
    initial = closure().item()
    for _ in range(20):
        loss = opt.step(closure)
        for scheduler in schedulers:
            scheduler.step(loss.item()) if isinstance(scheduler, ReduceLROnPlateau) else scheduler.step()
    assert closure().item() < initial


def test_param_groups_weight_decay_and_lr_apply_per_group() -> None:
    # Zero gradients isolate the decay: each group's params shrink by exactly (1 - lr * wd) per step.
    a, b, c = Parameter(torch.ones(3)), Parameter(torch.ones(3)), Parameter(torch.ones(3))
    opt = Lion(
        [{"params": [a], "weight_decay": 0.5}, {"params": [b], "lr": 0.2, "weight_decay": 0.25}, {"params": [c]}],
        lr=0.1,
        weight_decay=0.0,
    )
    for p in (a, b, c):
        p.grad = torch.zeros(3)
    opt.step()
    assert a.tolist() == pytest.approx([1 - 0.1 * 0.5] * 3)
    assert b.tolist() == pytest.approx([1 - 0.2 * 0.25] * 3)
    assert c.tolist() == [1.0] * 3
    for p in (a, b, c):
        p.grad = torch.ones(3)
    opt.step()  # lr per group: sign step of the group's own size
    assert a.tolist() == pytest.approx([0.95 * 0.95 - 0.1] * 3)
    assert b.tolist() == pytest.approx([0.95 * 0.95 - 0.2] * 3)
    assert c.tolist() == pytest.approx([0.9] * 3)


def test_empty_groups_are_allowed_and_skipped() -> None:
    p = Parameter(torch.ones(2))
    opt = Lion([{"params": []}, {"params": [p]}], lr=0.5)
    p.grad = torch.ones(2)
    opt.step()
    assert p.tolist() == [0.5, 0.5]


# --- tensor lr, complex, kernel parity, dtypes ------------------------------------------------------------------------


@pytest.mark.parametrize("kernel", KERNELS, ids=_id)
def test_tensor_lr_gives_the_float_lr_result(kernel: dict[str, Any]) -> None:
    results = []
    for lr in (0.01, torch.tensor(0.01)):
        weight, bias, x = linear_problem()
        opt = Lion([weight, bias], lr=lr, weight_decay=0.1, **kernel)
        for _ in range(3):
            opt.step(loss_closure(opt, weight, bias, x))
        results.append((weight.detach().clone(), bias.detach().clone()))
    assert all(torch.equal(u, v) for u, v in zip(*results, strict=True))


@pytest.mark.parametrize("kwargs", all_inputs())
def test_complex_matches_its_real_view(kwargs: dict[str, Any]) -> None:
    gen = torch.Generator().manual_seed(3)
    complex_param = Parameter(torch.randn(5, 5, dtype=torch.complex64, generator=gen))
    real_param = Parameter(torch.view_as_real(complex_param).detach().clone())
    complex_opt = Lion([complex_param], **fresh(kwargs))
    real_opt = Lion([real_param], **fresh(kwargs))
    for _ in range(3):
        complex_param.grad = torch.randn(5, 5, dtype=torch.complex64, generator=gen)
        real_param.grad = torch.view_as_real(complex_param.grad).clone()
        complex_opt.step()
        real_opt.step()
        assert torch.equal(torch.view_as_real(complex_param), real_param)


@pytest.mark.parametrize("kernel", KERNELS, ids=_id)
def test_complex_2d_matches_real_and_imaginary_parts_as_two_params(kernel: dict[str, Any]) -> None:
    gen = torch.Generator().manual_seed(4)
    a1 = Parameter(torch.randn(2, dtype=torch.complex64, generator=gen))
    a1_real, a1_imag = Parameter(a1.real.detach().clone()), Parameter(a1.imag.detach().clone())
    opt1, opt2 = Lion([a1], lr=0.01, **kernel), Lion([a1_real, a1_imag], lr=0.01, **kernel)
    for _ in range(5):
        opt1.zero_grad()
        opt2.zero_grad()
        rosenbrock(a1).abs().backward()
        rosenbrock(torch.complex(a1_real, a1_imag)).abs().backward()
        opt1.step()
        opt2.step()
        assert torch.equal(a1.real, a1_real) and torch.equal(a1.imag, a1_imag)


@pytest.mark.parametrize("kwargs", [pytest.param(i, id=_id(i)) for i in OPTIM_INPUTS])
def test_foreach_and_fused_match_forloop_bit_for_bit_on_mixed_dtypes(kwargs: dict[str, Any]) -> None:
    def run(kernel: dict[str, Any]) -> list[torch.Tensor]:
        gen = torch.Generator().manual_seed(5)
        params = [
            Parameter(torch.randn(s, generator=gen).to(d))
            for s, d in (
                ((7, 3), torch.float32),
                ((9,), torch.float64),
                ((4, 4), torch.bfloat16),
                ((1,), torch.float32),
            )
        ]
        opt = Lion(params, **fresh(kwargs), **kernel)
        for _ in range(3):
            for p in params:
                p.grad = torch.randn(p.shape, generator=gen).to(p.dtype)
            opt.step()
        return [t.clone() for p in params for t in (p.detach(), opt.state[p]["exp_avg"])]

    reference = run({"foreach": False})
    for kernel in KERNELS:
        got = run(kernel)
        assert all(torch.equal(u, v) for u, v in zip(reference, got, strict=True)), kernel


def test_set_default_dtype_float64_works_with_every_kernel() -> None:
    old = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    try:
        for kernel in KERNELS:
            p = Parameter(torch.ones(3))
            opt = Lion([p], lr=0.5, **kernel)
            p.grad = torch.ones(3)
            opt.step()
            assert p.dtype == torch.float64 and p.tolist() == [0.5] * 3
    finally:
        torch.set_default_dtype(old)


# --- no-op steps, closures, zero_grad, printing, hooks on step ----------------------------------------------------


@pytest.mark.parametrize("kwargs", all_inputs())
def test_step_is_noop_when_params_have_no_grad_or_zero_grads(kwargs: dict[str, Any]) -> None:
    p = Parameter(torch.randn(3, 2))
    before = p.detach().clone()
    opt = Lion([p], **fresh(kwargs))
    opt.step()
    assert torch.equal(p, before) and len(opt.state) == 0
    if not kwargs.get("weight_decay"):
        p.grad = torch.zeros_like(p)
        opt.step()
        assert torch.equal(p, before)


def test_step_with_closure_returns_its_loss_and_runs_it_with_grad_enabled() -> None:
    p = Parameter(torch.ones(2))
    opt = Lion([p], lr=0.1)

    def closure() -> torch.Tensor:
        assert torch.is_grad_enabled()
        opt.zero_grad()
        loss = (p * p).sum()
        loss.backward()
        return loss

    with torch.no_grad():
        assert opt.step(closure).item() == 2.0
    assert p.tolist() == pytest.approx([0.9, 0.9])


@pytest.mark.parametrize("set_to_none", [True, False])
def test_zero_grad(set_to_none: bool) -> None:
    p = Parameter(torch.ones(2))
    opt = Lion([p])
    p.grad = torch.ones(2)
    opt.zero_grad(set_to_none=set_to_none)
    assert p.grad is None if set_to_none else torch.equal(p.grad, torch.zeros(2))


def test_optimizer_can_be_printed() -> None:
    text = repr(Lion([Parameter(torch.ones(1))], lr=0.1, caution=True))
    assert text.startswith("Lion (") and "caution: True" in text and "lr: 0.1" in text


def test_step_pre_and_post_hooks_run_around_every_step() -> None:
    p = Parameter(torch.ones(1))
    opt = Lion([p])
    calls: list[str] = []
    pre = opt.register_step_pre_hook(lambda o, args, kwargs: calls.append("pre"))
    post = opt.register_step_post_hook(lambda o, args, kwargs: calls.append("post"))
    p.grad = torch.ones(1)
    opt.step()
    pre.remove()
    post.remove()
    opt.step()
    assert calls == ["pre", "post"]


# --- state dicts: round trips, hooks, old and foreign state dicts ------------------------------------------------


def _primed(kwargs: dict[str, Any], steps: int = 5) -> tuple[Lion, Parameter, Parameter, torch.Tensor]:
    weight, bias, x = linear_problem()
    opt = Lion([weight, bias], **fresh(kwargs))
    for _ in range(steps):
        opt.step(loss_closure(opt, weight, bias, x))
    return opt, weight, bias, x


@pytest.mark.parametrize("kwargs", all_inputs())
def test_state_dict_deterministic(kwargs: dict[str, Any]) -> None:
    opt, weight, bias, x = _primed(kwargs)
    weight_c, bias_c = Parameter(weight.detach().clone()), Parameter(bias.detach().clone())
    opt_c = Lion([weight_c, bias_c], **fresh(kwargs))
    state_dict = copy.deepcopy(opt.state_dict())
    state_dict_c = copy.deepcopy(opt.state_dict())
    opt_c.load_state_dict(state_dict_c)
    for _ in range(5):
        opt.step(loss_closure(opt, weight, bias, x))
        opt_c.step(loss_closure(opt_c, weight_c, bias_c, x))
        assert torch.equal(weight, weight_c) and torch.equal(bias, bias_c)
    torch.testing.assert_close(state_dict_c, state_dict, rtol=0, atol=0)  # loading did not change the given dict
    torch.testing.assert_close(opt_c.state_dict(), opt.state_dict(), rtol=0, atol=0)


def test_can_load_older_state_dict_without_newer_keys() -> None:
    opt, weight, bias, x = _primed({"weight_decay": 0.1})
    state_dict = opt.state_dict()
    for group in state_dict["param_groups"]:
        for key in ("maximize", "foreach", "fused", "caution"):
            del group[key]
    opt.load_state_dict(state_dict)
    assert opt.param_groups[0]["maximize"] is False and opt.param_groups[0]["fused"] is None
    opt.step(loss_closure(opt, weight, bias, x))


def test_load_accepts_a_nontensor_and_a_tensor_step_from_other_checkpoints() -> None:
    opt, *_ = _primed({})
    state_dict = opt.state_dict()
    state_dict["state"][0]["step"] = 5.0
    state_dict["state"][1]["step"] = torch.tensor(5.0)
    opt.load_state_dict(state_dict)
    assert opt.state[opt.param_groups[0]["params"][0]]["step"] == 5.0


def test_save_load_equality_with_weights_only() -> None:
    opt, _weight, _bias, _x = _primed({"lr": torch.tensor(0.01), "caution": True})
    buffer = io.BytesIO()
    torch.save(opt.state_dict(), buffer)
    buffer.seek(0)
    loaded = torch.load(buffer, weights_only=True)
    torch.testing.assert_close(loaded, opt.state_dict(), rtol=0, atol=0)


def test_deepcopy_copies_all_public_attrs_and_steps_identically() -> None:
    opt, weight, bias, x = _primed({"caution": True})
    clone = copy.deepcopy(opt)
    public = {k for k in opt.__dict__ if not k.startswith("_")}
    assert public == {k for k in clone.__dict__ if not k.startswith("_")}
    w2, b2 = clone.param_groups[0]["params"]
    opt.step(loss_closure(opt, weight, bias, x))
    clone.step(loss_closure(clone, w2, b2, x))
    assert torch.equal(weight, w2) and torch.equal(bias, b2)


def _pre_hook1(optimizer: torch.optim.Optimizer, state_dict: dict[str, Any]) -> None:
    state_dict["param_groups"][0]["lr"] = 0.002


def _pre_hook2(optimizer: torch.optim.Optimizer, state_dict: dict[str, Any]) -> dict[str, Any]:
    # Returning a new state dict, as a hook that rewrites an old format does.
    mine = copy.deepcopy(state_dict)
    mine["param_groups"][0]["lr"] = 0.003
    return mine


def _post_hook(optimizer: torch.optim.Optimizer) -> None:
    # torch's own test stores plain values under string keys of optimizer.state.
    optimizer.state["ran_load_state_dict_pre_hook2"] = optimizer.param_groups[0]["lr"] == 0.003  # type: ignore[index]
    optimizer.state["ran_load_state_dict_post_hook"] = True  # type: ignore[index]


def test_state_dict_pre_and_post_hooks() -> None:
    opt, *_ = _primed({})
    opt.register_state_dict_pre_hook(lambda o: o.state.__setitem__("ran_state_dict_pre_hook", True))
    opt.register_state_dict_post_hook(lambda o, sd: {**sd, "ran_state_dict_post_hook": True})
    state_dict = opt.state_dict()
    assert state_dict["ran_state_dict_post_hook"] and state_dict["state"]["ran_state_dict_pre_hook"]


def test_load_state_dict_pre_hook_and_prepend() -> None:
    opt, *_ = _primed({})
    state_dict = opt.state_dict()
    opt.register_load_state_dict_pre_hook(_pre_hook1)
    opt.load_state_dict(state_dict)
    assert opt.param_groups[0]["lr"] == 0.002
    opt.register_load_state_dict_pre_hook(_pre_hook2, prepend=True)
    opt.load_state_dict(state_dict)
    assert opt.param_groups[0]["lr"] == 0.002  # prepended: hook 1 runs last and wins


def test_load_state_dict_post_hook_may_store_anything_in_state_and_load_again() -> None:
    opt, weight, bias, x = _primed({})
    opt.register_load_state_dict_pre_hook(_pre_hook2)
    opt.register_load_state_dict_post_hook(_post_hook)
    opt.load_state_dict(opt.state_dict())
    assert opt.state["ran_load_state_dict_pre_hook2"] is True  # type: ignore[index]
    assert opt.state["ran_load_state_dict_post_hook"] is True  # type: ignore[index]
    opt.load_state_dict(opt.state_dict())  # the non-dict entries are saved and loaded back as they are
    opt.step(loss_closure(opt, weight, bias, x))


def test_a_load_pre_hook_can_repair_old_state_before_it_is_checked() -> None:
    opt, *_ = _primed({})
    state_dict = copy.deepcopy(opt.state_dict())
    shapes = {0: (10, 5), 1: (10,)}
    for state in state_dict["state"].values():
        state["exp_avg"] = state["exp_avg"].flatten()  # an "old format" that stored flat buffers

    def repair(optimizer: torch.optim.Optimizer, sd: dict[str, Any]) -> None:
        for index, state in sd["state"].items():
            state["exp_avg"] = state["exp_avg"].reshape(shapes[index])

    opt.register_load_state_dict_pre_hook(repair)
    opt.load_state_dict(state_dict)
    assert opt.state[opt.param_groups[0]["params"][0]]["exp_avg"].shape == (10, 5)


def test_load_state_dict_with_param_groups_differing_raises_torchs_errors() -> None:
    opt, weight, bias, _ = _primed({})
    other = Lion([{"params": [weight]}, {"params": [bias]}])
    with pytest.raises(ValueError, match="loaded state dict has a different number of parameter groups"):
        other.load_state_dict(opt.state_dict())
    three = Lion([weight, bias, Parameter(torch.ones(1))])
    with pytest.raises(ValueError, match="doesn't match the size of optimizer's group"):
        three.load_state_dict(opt.state_dict())


def test_cpu_load_state_dict_across_kernels() -> None:
    fused, *_ = _primed({"fused": True})
    for kernel in ({}, {"foreach": True}, {"foreach": False}):
        weight, bias, _ = linear_problem()
        opt = Lion([weight, bias], **kernel)
        opt.load_state_dict(fused.state_dict())
        assert opt.param_groups[0]["fused"] is True  # the saved group's settings win, as in torch


def test_non_empty_state_after_a_step() -> None:
    opt, weight, bias, _ = _primed({}, steps=1)
    for p in (weight, bias):
        assert set(opt.state[p]) == {"exp_avg"} and opt.state[p]["exp_avg"].shape == p.shape


# --- fused on a device without fused kernels ----------------------------------------------------------------------


def test_fused_on_meta_tensors_raises_torchs_error_naming_the_device() -> None:
    p = Parameter(torch.empty(4, device="meta"))
    p.grad = torch.empty(4, device="meta")
    opt = Lion([p], fused=True)
    with pytest.raises(
        RuntimeError,
        match=r"`fused=True` requires all the params to be floating point Tensors of "
        r"supported devices: \[.*'cpu'.*\] but torch.float32 and meta",
    ):
        opt.step()
    assert len(opt.state) == 0
    Lion([p], fused=False).step()  # meta tensors with other kernels: nothing to compute, no error


@pytest.fixture(autouse=True)
def _no_stray_kernels(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(dispatch, "_WARNED", set())
