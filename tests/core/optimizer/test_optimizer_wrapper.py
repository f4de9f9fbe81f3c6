import functools
import math

import pytest
import torch

from noether.core.optimizer import OptimizerWrapper
from noether.core.schemas import OptimizerConfig
from noether.core.utils.torch import NoopGradScaler
from noether.core.utils.training import TrainingIteration, UpdateCounter


def mlp(seed: int = 0) -> torch.nn.Module:
    torch.manual_seed(seed)
    return torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.ReLU(), torch.nn.Linear(8, 2))


def wrap(model: torch.nn.Module, optim: type = torch.optim.SGD, lr: float = 1.0, **config: object) -> OptimizerWrapper:
    return OptimizerWrapper(model, functools.partial(optim, lr=lr), OptimizerConfig(**config))  # type: ignore[arg-type]


def set_grads(model: torch.nn.Module, scale: float = 1.0, seed: int = 1) -> None:
    gen = torch.Generator().manual_seed(seed)
    for p in model.parameters():
        p.grad = torch.randn(p.shape, generator=gen) * scale


def flat(model: torch.nn.Module) -> torch.Tensor:
    return torch.cat([p.detach().reshape(-1) for p in model.parameters()])


@pytest.mark.parametrize("max_norm", [0.5, 1e3])
def test_sgd_update_norm_equals_clip_norm(max_norm: float) -> None:
    model = mlp()
    wrapper = wrap(model, clip_grad_norm=max_norm)
    set_grads(model, scale=1.0)
    reference = [p.grad.clone() for p in model.parameters()]
    expected_norm = torch.linalg.vector_norm(torch.stack([g.norm() for g in reference]))
    before = flat(model)
    wrapper.step()
    update = before - flat(model)
    assert wrapper.last_grad_norm == pytest.approx(expected_norm.item(), rel=1e-6)
    assert update.norm().item() == pytest.approx(min(max_norm, expected_norm.item()), rel=1e-5)


def test_clipping_matches_torch_clip_grad_norm() -> None:
    model, twin = mlp(), mlp()
    set_grads(model, scale=3.0)
    set_grads(twin, scale=3.0)
    torch.nn.utils.clip_grad_norm_(twin.parameters(), 0.7)
    wrap(model, clip_grad_norm=0.7).step()
    with torch.no_grad():
        for p in twin.parameters():
            p -= p.grad
    torch.testing.assert_close(flat(model), flat(twin), rtol=0, atol=1e-7)


def test_value_clipping_then_norm() -> None:
    model = mlp()
    wrapper = wrap(model, clip_grad_value=0.1)
    set_grads(model, scale=5.0)
    raw = [p.grad.clone() for p in model.parameters()]
    before = [p.detach().clone() for p in model.parameters()]
    wrapper.step()
    for b, g, p in zip(before, raw, model.parameters(), strict=True):
        torch.testing.assert_close(b - p.detach(), g.clamp(-0.1, 0.1))
    # Both: the norm bound applies to the value-clipped gradients.
    model = mlp()
    set_grads(model, scale=5.0)
    clipped = [p.grad.clamp(-0.1, 0.1) for p in model.parameters()]
    clipped_norm = torch.linalg.vector_norm(torch.stack([g.norm() for g in clipped])).item()
    before_flat = flat(model)
    wrapper = wrap(model, clip_grad_value=0.1, clip_grad_norm=clipped_norm / 2)
    wrapper.step()
    assert (before_flat - flat(model)).norm().item() == pytest.approx(clipped_norm / 2, rel=1e-5)


def test_clipping_only_touches_the_optimizers_own_params() -> None:
    model = mlp()
    head = model[2]
    wrapper = OptimizerWrapper(head, functools.partial(torch.optim.SGD, lr=1.0), OptimizerConfig(clip_grad_norm=1e-3))
    set_grads(model, scale=10.0)
    other = model[0].weight.grad.clone()
    wrapper.step()
    torch.testing.assert_close(model[0].weight.grad, other)
    assert wrapper.all_parameters is not None and len(wrapper.all_parameters) == 2


def test_no_clipping_still_reports_norm_and_all_parameters_none() -> None:
    model = mlp()
    wrapper = wrap(model)
    assert wrapper.all_parameters is None and wrapper.last_grad_norm is None
    set_grads(model)
    wrapper.step()
    expected = math.sqrt(sum(p.grad.pow(2).sum().item() for p in model.parameters()))
    assert wrapper.last_grad_norm == pytest.approx(expected, rel=1e-6)


@pytest.mark.parametrize("scaler", [None, "noop", "real"])
def test_no_gradients_is_a_no_op_with_or_without_scaler(scaler: str | None) -> None:
    model = mlp()
    optimizer = torch.optim.SGD(model.parameters(), lr=1.0)
    calls = []
    optimizer.step = lambda *a, **k: calls.append(1)  # type: ignore[method-assign]
    wrapper = OptimizerWrapper(model, lambda groups: optimizer, OptimizerConfig(clip_grad_norm=1.0))
    grad_scaler = {None: None, "noop": NoopGradScaler(), "real": torch.amp.GradScaler("cpu", growth_interval=1)}[scaler]
    wrapper.step(grad_scaler)
    assert calls == [] and wrapper.num_skipped_steps == 0 and wrapper.last_grad_norm is None
    if isinstance(grad_scaler, torch.amp.GradScaler) and grad_scaler.is_enabled():
        assert grad_scaler._scale is None  # never used, never updated


def test_nan_without_scaler_skips_and_keeps_state_finite() -> None:
    model = mlp()
    wrapper = wrap(model, optim=torch.optim.AdamW, lr=1e-2)
    set_grads(model)
    wrapper.step()
    state_before = {k: v["exp_avg"].clone() for k, v in wrapper.torch_optim.state.items()}
    params_before = flat(model)
    set_grads(model)
    model[0].weight.grad[0, 0] = float("nan")
    wrapper.step()
    assert wrapper.num_skipped_steps == 1 and math.isnan(wrapper.last_grad_norm or 0.0)
    torch.testing.assert_close(flat(model), params_before, rtol=0, atol=0)
    for key, value in wrapper.torch_optim.state.items():
        assert torch.isfinite(value["exp_avg"]).all()
        torch.testing.assert_close(value["exp_avg"], state_before[key], rtol=0, atol=0)


def test_inf_is_not_hidden_by_value_clipping() -> None:
    model = mlp()
    wrapper = wrap(model, clip_grad_value=1.0)
    set_grads(model)
    model[2].bias.grad[0] = float("inf")
    before = flat(model)
    wrapper.step()
    assert wrapper.num_skipped_steps == 1
    torch.testing.assert_close(flat(model), before, rtol=0, atol=0)


def test_inf_with_grad_scaler_skips_and_halves_scale() -> None:
    model = mlp()
    wrapper = wrap(model, clip_grad_norm=1.0)
    scaler = torch.amp.GradScaler("cpu", init_scale=1024.0)
    loss = model(torch.randn(3, 4)).sum()
    scaler.scale(loss).backward()
    model[0].weight.grad[0, 0] = float("inf")
    before = flat(model)
    wrapper.step(scaler)
    assert scaler.get_scale() == 512.0
    assert wrapper.num_skipped_steps == 1
    torch.testing.assert_close(flat(model), before, rtol=0, atol=0)


def test_grad_scaler_unscales_before_clipping_and_stepping() -> None:
    model, twin = mlp(), mlp()
    x = torch.randn(3, 4)
    scaler = torch.amp.GradScaler("cpu", init_scale=256.0)
    scaler.scale(model(x).sum()).backward()
    twin(x).sum().backward()
    wrap(model, lr=0.1).step(scaler)
    with torch.no_grad():
        for p in twin.parameters():
            p -= 0.1 * p.grad
    torch.testing.assert_close(flat(model), flat(twin))


def test_shared_scaler_updates_once_and_second_wrapper_unscales_correctly() -> None:
    model_a, model_b, twin_b = mlp(0), mlp(1), mlp(1)
    wrapper_a, wrapper_b = wrap(model_a, lr=0.1), wrap(model_b, lr=0.1)
    scaler = torch.amp.GradScaler("cpu", init_scale=1024.0, growth_interval=1)
    x = torch.randn(3, 4)
    scaler.scale(model_a(x).sum() + model_b(x).sum()).backward()
    twin_b(x).sum().backward()
    model_a[0].weight.grad[0, 0] = float("inf")
    wrapper_a.step(scaler)
    assert scaler.get_scale() == 1024.0  # not yet: wrapper_b has not stepped
    wrapper_b.step(scaler)
    assert scaler.get_scale() == 512.0  # halved once for the whole iteration
    with torch.no_grad():
        for p in twin_b.parameters():
            p -= 0.1 * p.grad
    torch.testing.assert_close(flat(model_b), flat(twin_b))
    # Next iteration, both finite: the scale grows once (growth_interval=1), not twice.
    for w in (wrapper_a, wrapper_b):
        w.zero_grad()
    scaler.scale(model_a(x).sum() + model_b(x).sum()).backward()
    wrapper_a.step(scaler)
    wrapper_b.step(scaler)
    assert scaler.get_scale() == 1024.0


def test_single_wrapper_updates_scaler_every_step() -> None:
    model = mlp()
    wrapper = wrap(model, lr=0.01)
    scaler = torch.amp.GradScaler("cpu", init_scale=8.0, growth_interval=1)
    for expected in (16.0, 32.0):
        wrapper.zero_grad()
        scaler.scale(model(torch.randn(2, 4)).sum()).backward()
        wrapper.step(scaler)
        assert scaler.get_scale() == expected


def test_wrong_scaler_type_names_the_parameter() -> None:
    wrapper = wrap(mlp())
    with pytest.raises(TypeError, match="grad_scaler"):
        wrapper.step(grad_scaler=object())  # type: ignore[arg-type]


def test_zero_grad_defaults_to_none() -> None:
    model = mlp()
    wrapper = wrap(model)
    set_grads(model)
    wrapper.zero_grad()
    assert all(p.grad is None for p in model.parameters())
    set_grads(model)
    wrapper.zero_grad(set_to_none=False)
    assert all(p.grad is not None and not p.grad.any() for p in model.parameters())


def test_lr_scale_applied_once_without_schedule() -> None:
    model = mlp()
    config = {
        "param_group_modifiers_config": [
            {"kind": "noether.core.optimizer.LrScaleByNameModifier", "name": "2.weight", "scale": 0.25}
        ]
    }
    wrapper = wrap(model, lr=0.4, **config)
    scaled = [g for g in wrapper.torch_optim.param_groups if "lr_scale" in g]
    assert [(g["lr"], g["original_lr"]) for g in scaled] == [(0.1, 0.4)]
    wrapper.schedule_step()  # no schedule: nothing changes
    assert [g["lr"] for g in scaled] == [0.1]


def test_user_unscale_before_step_is_respected() -> None:
    model, twin = mlp(), mlp()
    x = torch.randn(3, 4)
    scaler = torch.amp.GradScaler("cpu", init_scale=64.0)
    wrapper = wrap(model, lr=0.1)
    scaler.scale(model(x).sum()).backward()
    scaler.unscale_(wrapper.torch_optim)
    wrapper.step(scaler)
    twin(x).sum().backward()
    with torch.no_grad():
        for p in twin.parameters():
            p -= 0.1 * p.grad
    torch.testing.assert_close(flat(model), flat(twin))


# ---------------------------------------------------------------- schedules


def counter(end_update: int, start_update: int = 0) -> UpdateCounter:
    start = TrainingIteration(epoch=0, update=start_update, sample=start_update)
    return UpdateCounter(start, TrainingIteration(update=end_update), updates_per_epoch=1000, effective_batch_size=1)


def lwcd_reference(s: int, total: int, warmup: int, peak: float, end: float) -> float:
    # The warmup/decay closed form (start_value 0), written independently of the schedule classes.
    if s < warmup:
        return (s + 1) / (warmup + 1) * peak
    decay = total - warmup
    return end + (peak - end) * (1 + math.cos(math.pi * min(s - warmup, decay - 1) / max(1, decay - 1))) / 2


def test_lr_schedule_with_lr_scale_and_max_value_from_lr_decisions_1_and_19(caplog: pytest.LogCaptureFixture) -> None:
    model = mlp()
    run = counter(10)
    config = {
        "schedule_config": {"kind": "noether.core.schedules.LinearWarmupCosineDecaySchedule", "warmup_steps": 2},
        "param_group_modifiers_config": [
            {"kind": "noether.core.optimizer.LrScaleByNameModifier", "name": "2.weight", "scale": 0.25}
        ],
    }
    with caplog.at_level("INFO"):
        wrapper = OptimizerWrapper(
            model, functools.partial(torch.optim.SGD, lr=0.4), OptimizerConfig(**config), update_counter=run
        )
    assert "max_value" in caplog.text
    for s in range(10):
        wrapper.schedule_step()
        value = lwcd_reference(s, 10, 2, peak=0.4, end=1e-6)
        lrs = {g["name"]: g["lr"] for g in wrapper.torch_optim.param_groups}
        assert lrs["lr_scale=2.5e-01"] == pytest.approx(0.25 * value, rel=1e-9)
        assert lrs["default"] == pytest.approx(value, rel=1e-9)
        assert lrs["weight_decay=0"] == pytest.approx(value, rel=1e-9)
        run.next_update()


def test_explicit_max_value_wins_over_lr() -> None:
    config = {
        "schedule_config": {
            "kind": "noether.core.schedules.LinearWarmupCosineDecaySchedule",
            "warmup_steps": 1,
            "max_value": 0.1,
        }
    }
    wrapper = OptimizerWrapper(
        mlp(), functools.partial(torch.optim.SGD, lr=0.4), OptimizerConfig(**config), update_counter=counter(5)
    )
    wrapper.schedule_step()
    assert wrapper.torch_optim.param_groups[0]["lr"] == pytest.approx(0.05)


def test_weight_decay_schedule_is_proportional() -> None:
    model = mlp()
    run = counter(4)
    config = {
        "weight_decay_schedule": {"kind": "noether.core.schedules.LinearDecreasingSchedule", "end_value": 0.0},
        "param_group_modifiers_config": [
            {"kind": "noether.core.optimizer.WeightDecayByNameModifier", "name": "2.weight", "value": 0.1}
        ],
    }
    wrapper = OptimizerWrapper(
        model,
        functools.partial(torch.optim.AdamW, lr=0.1, weight_decay=0.05),
        OptimizerConfig(**config),
        update_counter=run,
    )
    groups = {g["name"]: g for g in wrapper.torch_optim.param_groups}
    assert {n: g["exclude_from_wd"] for n, g in groups.items()} == {
        "default": False,
        "weight_decay=0": True,
        "weight_decay=1.0e-01": False,
    }
    for s in range(4):
        wrapper.schedule_step()
        base = 0.05 * (1 - s / 3)  # max_value defaults to the configured weight decay
        assert groups["default"]["weight_decay"] == pytest.approx(base, abs=1e-12)
        assert groups["weight_decay=1.0e-01"]["weight_decay"] == pytest.approx(2 * base, abs=1e-12)
        assert groups["weight_decay=0"]["weight_decay"] == 0.0
        run.next_update()


def test_weight_decay_schedule_with_zero_base_still_applies() -> None:
    config = {"weight_decay_schedule": {"kind": "noether.core.schedules.ConstantSchedule", "value": 0.02}}
    wrapper = OptimizerWrapper(
        mlp(), functools.partial(torch.optim.AdamW, lr=0.1, weight_decay=0.0), OptimizerConfig(**config)
    )
    wrapper.schedule_step()
    assert {g["name"]: g["weight_decay"] for g in wrapper.torch_optim.param_groups} == {
        "default": 0.02,
        "weight_decay=0": 0.0,
    }


def test_weight_decay_schedule_warns_when_every_group_is_excluded(caplog: pytest.LogCaptureFixture) -> None:
    model = torch.nn.LayerNorm(4)
    config = {"weight_decay_schedule": {"kind": "noether.core.schedules.ConstantSchedule", "value": 0.02}}
    with caplog.at_level("WARNING"):
        OptimizerWrapper(model, functools.partial(torch.optim.AdamW, lr=0.1), OptimizerConfig(**config))
    assert "no effect" in caplog.text


def test_schedule_without_counter_fails_clearly_at_first_use() -> None:
    config = {"schedule_config": {"kind": "noether.core.schedules.LinearWarmupCosineDecaySchedule", "warmup_steps": 1}}
    wrapper = OptimizerWrapper(mlp(), functools.partial(torch.optim.SGD, lr=0.1), OptimizerConfig(**config))
    with pytest.raises(ValueError, match="update_counter"):
        wrapper.schedule_step()


def test_tensor_lr_stays_a_tensor() -> None:
    config = {"schedule_config": {"kind": "noether.core.schedules.ConstantSchedule", "value": 0.02}}
    ctor = functools.partial(torch.optim.Adam, lr=torch.tensor(0.1), capturable=False, foreach=False)
    wrapper = OptimizerWrapper(mlp(), ctor, OptimizerConfig(**config))
    wrapper.schedule_step()
    lr = wrapper.torch_optim.param_groups[0]["lr"]
    assert isinstance(lr, torch.Tensor) and lr.item() == pytest.approx(0.02)


def test_str_with_a_schedule() -> None:
    config = OptimizerConfig.model_validate(
        {
            "clip_grad_norm": 1.0,
            "schedule_config": {
                "kind": "noether.core.schedules.LinearWarmupCosineDecaySchedule",
                "warmup_percent": 0.1,
            },
        }
    )
    wrapper = OptimizerWrapper(mlp(), functools.partial(torch.optim.AdamW, lr=1e-3), config, update_counter=counter(10))
    assert str(wrapper).startswith("AdamW(clip_grad_norm=1.0, schedule_config={")
    assert "'warmup_percent': 0.1" in str(wrapper)


@pytest.mark.parametrize("other", ["no scaler", "own scaler"])
def test_scaler_round_does_not_wait_for_a_wrapper_that_steps_otherwise(other: str) -> None:
    model_a, model_b = mlp(0), mlp(1)
    wrapper_a, wrapper_b = wrap(model_a, lr=0.1), wrap(model_b, lr=0.1)
    scaler = torch.amp.GradScaler("cpu", init_scale=1024.0)
    other_scaler = torch.amp.GradScaler("cpu", init_scale=8.0) if other == "own scaler" else None
    x = torch.randn(3, 4)
    scaler.scale(model_a(x).sum()).backward()
    loss_b = model_b(x).sum()
    (other_scaler.scale(loss_b) if other_scaler is not None else loss_b).backward()
    model_a[0].weight.grad[0, 0] = float("inf")
    wrapper_a.step(scaler)
    assert scaler.get_scale() == 1024.0  # wrapper_b also had gradients, so it might share the scaler
    wrapper_b.step(other_scaler)
    assert scaler.get_scale() == 512.0  # updated within this iteration, before the next backward
    # From now on wrapper_a alone drives the scaler.
    wrapper_a.zero_grad()
    scaler.scale(model_a(x).sum()).backward()
    wrapper_a.step(scaler)
    assert scaler._growth_tracker.item() == 1  # type: ignore[union-attr]


def test_member_that_stops_stepping_is_dropped_with_a_warning(caplog: pytest.LogCaptureFixture) -> None:
    model_a, model_b = mlp(0), mlp(1)
    wrapper_a, wrapper_b = wrap(model_a, lr=0.01), wrap(model_b, lr=0.01)
    scaler = torch.amp.GradScaler("cpu", init_scale=4.0, growth_interval=1)
    x = torch.randn(2, 4)

    def backward() -> None:
        for w in (wrapper_a, wrapper_b):
            w.zero_grad()
        scaler.scale(model_a(x).sum() + model_b(x).sum()).backward()

    backward()
    wrapper_a.step(scaler)
    wrapper_b.step(scaler)
    assert scaler.get_scale() == 8.0
    backward()
    wrapper_a.step(scaler)  # wrapper_b is not stepped this iteration
    assert scaler.get_scale() == 8.0
    backward()
    with caplog.at_level("WARNING"):
        wrapper_a.step(scaler)  # the stale round is completed first, then wrapper_a alone drives the scaler
    assert "did not step" in caplog.text
    assert scaler.get_scale() == 32.0
