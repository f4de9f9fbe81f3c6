"""The wrapper as a ``torch.optim.Optimizer``: shared groups, torch schedulers, hooks, closures, resume, DCP."""

from __future__ import annotations

import copy
import functools
import io
import warnings
from collections.abc import Callable
from typing import Any

import pytest
import torch

from noether.core.factory import OptimizerFactory
from noether.core.optimizer import OptimizerWrapper, ScheduleLR
from noether.core.schemas import OptimizerConfig
from noether.core.utils.torch import NoopGradScaler
from noether.core.utils.training import UpdateCounter

STEPS = 12
HALF = 6


def mlp(seed: int = 0) -> torch.nn.Module:
    torch.manual_seed(seed)
    return torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.LayerNorm(8), torch.nn.Linear(8, 2))


def batch(step: int) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(1000 + step)
    return torch.randn(16, 4, generator=gen), torch.randn(16, 2, generator=gen)


def backward(model: torch.nn.Module, step: int) -> torch.Tensor:
    x, y = batch(step)
    loss = torch.nn.functional.mse_loss(model(x), y)
    loss.backward()
    return loss


def build(model: torch.nn.Module, counter: UpdateCounter | None = None, **config: Any) -> OptimizerWrapper:
    base: dict[str, Any] = {"kind": "torch.optim.AdamW", "lr": 1e-2, "weight_decay": 0.1}
    wrapper: OptimizerWrapper = OptimizerFactory().create(OptimizerConfig(**{**base, **config}))(
        model, update_counter=counter
    )
    return wrapper


def roundtrip(obj: Any) -> Any:
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    buffer.seek(0)
    return torch.load(buffer, weights_only=True)


def params(model: torch.nn.Module) -> list[torch.Tensor]:
    return [p.detach().clone() for p in model.parameters()]


def trained_with_halving_lr(model: torch.nn.Module, steps: int) -> OptimizerWrapper:
    """A wrapper over ``model`` after ``steps`` steps, torch's StepLR halving every group's lr after each."""
    wrapper = build(model)
    scheduler = torch.optim.lr_scheduler.StepLR(wrapper, step_size=1, gamma=0.5)
    for step in range(steps):
        backward(model, step)
        wrapper.step()
        scheduler.step()
    return wrapper


def test_is_a_torch_optimizer_sharing_the_wrapped_objects() -> None:
    wrapper = build(mlp())
    assert isinstance(wrapper, torch.optim.Optimizer)
    assert wrapper.param_groups is wrapper.torch_optim.param_groups
    assert wrapper.state is wrapper.torch_optim.state
    assert wrapper.defaults is wrapper.torch_optim.defaults
    wrapper.load_state_dict(wrapper.state_dict())  # torch replaces its lists on load: still the same objects
    assert wrapper.param_groups is wrapper.torch_optim.param_groups
    assert wrapper.state is wrapper.torch_optim.state
    wrapper.param_groups[0]["lr"] = 0.5  # an edit through the wrapper is what the torch optimizer uses
    assert wrapper.torch_optim.param_groups[0]["lr"] == 0.5


def _train_with_torch_scheduler(
    make_scheduler: Callable[[torch.optim.Optimizer], torch.optim.lr_scheduler.LRScheduler],
    use_wrapper: bool,
    resume_at: int | None = None,
) -> list[torch.Tensor]:
    model = mlp()
    optimizer: torch.optim.Optimizer
    if use_wrapper:
        optimizer = build(
            model, exclude_bias_from_weight_decay=False, exclude_normalization_params_from_weight_decay=False
        )
    else:
        optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2, weight_decay=0.1)
    scheduler = make_scheduler(optimizer)
    for step in range(STEPS):
        if step == resume_at:
            saved = roundtrip(
                {"model": model.state_dict(), "optim": optimizer.state_dict(), "sched": scheduler.state_dict()}
            )
            model = mlp(seed=99)
            model.load_state_dict(saved["model"])
            optimizer = build(
                model, exclude_bias_from_weight_decay=False, exclude_normalization_params_from_weight_decay=False
            )
            scheduler = make_scheduler(optimizer)
            optimizer.load_state_dict(saved["optim"])
            scheduler.load_state_dict(saved["sched"])
        optimizer.zero_grad()
        backward(model, step)
        optimizer.step()
        scheduler.step()
    return params(model)


SCHEDULERS: dict[str, Callable[[torch.optim.Optimizer], torch.optim.lr_scheduler.LRScheduler]] = {
    "LambdaLR": lambda opt: torch.optim.lr_scheduler.LambdaLR(opt, lambda step: 1.0 / (1 + step)),
    "StepLR": lambda opt: torch.optim.lr_scheduler.StepLR(opt, step_size=2, gamma=0.1),
}


@pytest.mark.parametrize("name", list(SCHEDULERS))
def test_torch_schedulers_drive_the_wrapper_like_a_plain_optimizer(name: str) -> None:
    reference = _train_with_torch_scheduler(SCHEDULERS[name], use_wrapper=False)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no "lr_scheduler.step() before optimizer.step()" warning
        wrapped = _train_with_torch_scheduler(SCHEDULERS[name], use_wrapper=True)
    for a, b in zip(reference, wrapped, strict=True):
        assert torch.equal(a, b)


@pytest.mark.parametrize("name", list(SCHEDULERS))
def test_resume_with_a_torch_scheduler_is_bit_identical(name: str) -> None:
    straight = _train_with_torch_scheduler(SCHEDULERS[name], use_wrapper=True)
    resumed = _train_with_torch_scheduler(SCHEDULERS[name], use_wrapper=True, resume_at=HALF)
    for a, b in zip(straight, resumed, strict=True):
        assert torch.equal(a, b)


def test_changed_config_value_wins_and_scheduled_lr_is_restored() -> None:
    model = mlp()
    wrapper = trained_with_halving_lr(model, steps=3)
    saved = roundtrip(wrapper.state_dict())
    scheduled_lrs = [group["lr"] for group in wrapper.param_groups]
    assert scheduled_lrs[0] == pytest.approx(1e-2 / 8)

    same = build(mlp())
    same.load_state_dict(saved)
    assert [group["lr"] for group in same.param_groups] == scheduled_lrs  # a scheduler's change is not a config change

    changed = build(mlp(), weight_decay=0.05)
    changed.load_state_dict(saved)
    decays = [group["weight_decay"] for group in changed.param_groups]
    assert decays == [0.05, 0.0]  # the new weight decay wins; the excluded group keeps its 0
    assert [group["lr"] for group in changed.param_groups] == scheduled_lrs

    new_lr = build(mlp(), lr=3e-3)
    new_lr.load_state_dict(saved)
    assert [group["lr"] for group in new_lr.param_groups] == [3e-3, 3e-3]


def test_checkpoint_without_the_record_keeps_the_current_values() -> None:
    model = mlp()
    wrapper = build(model)
    for group in wrapper.param_groups:
        group["lr"] = 1e-5
    saved = wrapper.state_dict()
    for group in saved["param_groups"]:
        del group["configured"]  # as a checkpoint of the original framework
    fresh = build(mlp())
    fresh.load_state_dict(saved)
    assert [group["lr"] for group in fresh.param_groups] == [1e-2, 1e-2]


def test_closure_is_evaluated_and_its_loss_returned() -> None:
    model, twin = mlp(), mlp()
    wrapper = build(model, clip_grad_norm=0.1)
    twin_wrapper = build(twin, clip_grad_norm=0.1)

    def closure() -> float:
        wrapper.zero_grad()
        return float(backward(model, 0))

    with torch.no_grad():  # torch's contract: the closure runs with gradients enabled
        loss = wrapper.step(closure)
    backward(twin, 0)
    twin_wrapper.step()
    assert loss == pytest.approx(float(torch.nn.functional.mse_loss(mlp()(batch(0)[0]), batch(0)[1])))
    for a, b in zip(params(model), params(twin), strict=True):
        assert torch.equal(a, b)


def test_scaler_positional_and_keyword_calls_are_the_same() -> None:
    results = []
    for call in ("positional", "keyword"):
        model = mlp()
        wrapper = build(model, clip_grad_norm=0.5)
        scaler = torch.amp.GradScaler("cpu", init_scale=2.0**4)
        for step in range(3):
            wrapper.zero_grad()
            x, y = batch(step)
            scaler.scale(torch.nn.functional.mse_loss(model(x), y)).backward()
            if call == "positional":
                wrapper.step(scaler)
            else:
                wrapper.step(grad_scaler=scaler)
        results.append(params(model))
    for a, b in zip(*results, strict=True):
        assert torch.equal(a, b)
    with pytest.raises(TypeError, match="both"):
        build(mlp()).step(NoopGradScaler(), grad_scaler=NoopGradScaler())
    with pytest.raises(TypeError, match="closure"):
        build(mlp()).step(3)  # type: ignore[call-overload]


def test_user_unscale_of_the_wrapper_is_not_repeated() -> None:
    results = []
    for unscale_first in (False, True):
        model = mlp()
        wrapper = build(model)
        scaler = torch.amp.GradScaler("cpu", init_scale=2.0**8)
        x, y = batch(0)
        scaler.scale(torch.nn.functional.mse_loss(model(x), y)).backward()
        if unscale_first:
            scaler.unscale_(wrapper)  # as Lightning and the HF Trainer do before their own clipping
        wrapper.step(scaler)
        results.append(params(model))
    for a, b in zip(*results, strict=True):
        assert torch.equal(a, b)


def test_step_and_state_dict_hooks_run() -> None:
    model = mlp()
    wrapper = build(model)
    calls: list[str] = []
    wrapper.register_step_pre_hook(lambda opt, args, kwargs: calls.append("pre"))
    wrapper.register_step_post_hook(lambda opt, args, kwargs: calls.append("post"))
    wrapper.register_state_dict_post_hook(lambda opt, sd: {**sd, "extra": 1})
    wrapper.register_load_state_dict_post_hook(lambda opt: calls.append("loaded"))
    backward(model, 0)
    wrapper.step()
    assert calls == ["pre", "post"]
    state = wrapper.state_dict()
    assert state["extra"] == 1
    wrapper.load_state_dict(state)
    assert calls[-1] == "loaded"


def test_add_param_group_extends_names_and_checkpoints() -> None:
    model = mlp()
    extra = torch.nn.Parameter(torch.ones(3))
    wrapper = build(model)
    wrapper.add_param_group({"params": [extra], "lr": 0.1})
    assert wrapper.param_groups[-1]["name"] == "group2"
    assert wrapper.param_idx_to_name.get_value_by_key(len(list(model.parameters()))) == "param_group2.0"
    extra.grad = torch.ones(3)
    backward(model, 0)
    wrapper.step()
    assert not torch.equal(extra.detach(), torch.ones(3))
    twin = build(mlp())
    twin.add_param_group({"params": [torch.nn.Parameter(torch.ones(3))], "lr": 0.1})
    report = twin.load_state_dict(roundtrip(wrapper.state_dict()))
    assert "param_group2.0" in report.restored


@pytest.mark.filterwarnings("ignore::UserWarning")
def test_distributed_checkpoint_takes_the_wrapper_directly() -> None:
    from torch.distributed.checkpoint.state_dict import get_optimizer_state_dict, set_optimizer_state_dict

    model = mlp()
    wrapper = trained_with_halving_lr(model, steps=2)
    saved = copy.deepcopy(get_optimizer_state_dict(model, wrapper))
    resumed_model = copy.deepcopy(model)
    resumed = build(resumed_model)
    set_optimizer_state_dict(resumed_model, resumed, saved)
    for name, param in model.named_parameters():
        twin = dict(resumed_model.named_parameters())[name]
        for key, value in wrapper.state[param].items():
            assert torch.equal(resumed.state[twin][key], value), (name, key)
    assert [g["lr"] for g in resumed.param_groups] == [g["lr"] for g in wrapper.param_groups]


# ------------------------------------------------------------------ the wrapper's own scheduler


def schedule_config(**extra: Any) -> dict[str, Any]:
    return {
        "schedule_config": {
            "kind": "noether.core.schedules.LinearWarmupCosineDecaySchedule",
            "warmup_steps": 3,
            "end_value": 1e-4,
        },
        "weight_decay_schedule": {
            "kind": "noether.core.schedules.LinearIncreasingSchedule",
            "start_value": 0.0,
            "max_value": 0.2,
        },
        "param_group_modifiers_config": [
            {
                "kind": "noether.core.optimizer.param_group_modifiers.LrScaleByNameModifier",
                "name": "0.weight",
                "scale": 0.5,
            }
        ],
        **extra,
    }


def test_lr_scheduler_values_equal_schedule_step_and_hold_past_the_end(caplog: pytest.LogCaptureFixture) -> None:
    counter = UpdateCounter.from_total_updates(8)
    by_step = build(mlp(), counter, **schedule_config())
    by_scheduler = build(mlp(), UpdateCounter.from_total_updates(8), **schedule_config())
    scheduler = by_scheduler.lr_scheduler()
    assert isinstance(scheduler, torch.optim.lr_scheduler.LRScheduler)
    expected, seen = [], []
    with caplog.at_level("WARNING"):
        for _ in range(11):  # three past the end
            by_step.schedule_step()
            expected.append([(g["lr"], g["weight_decay"]) for g in by_step.param_groups])
            seen.append([(g["lr"], g["weight_decay"]) for g in by_scheduler.param_groups])
            counter.next_update()
            scheduler.step()
    assert seen == expected
    assert seen[-1] == seen[8]  # the final value is held
    # One warning per schedule and driver: two schedules, driven by schedule_step and by the scheduler.
    assert len([r for r in caplog.records if "final value" in r.getMessage()]) == 4


def test_lr_scheduler_state_is_plain_and_resumes_exactly() -> None:
    wrapper = build(mlp(), UpdateCounter.from_total_updates(10), **schedule_config())
    scheduler = wrapper.lr_scheduler()
    for _ in range(4):
        scheduler.step()
    state = roundtrip(scheduler.state_dict())  # weights_only: plain numbers only
    fresh = build(mlp(), UpdateCounter.from_total_updates(10), **schedule_config())
    fresh_scheduler = fresh.lr_scheduler()
    fresh_scheduler.load_state_dict(state)
    for _ in range(3):
        scheduler.step()
        fresh_scheduler.step()
    assert scheduler.get_last_lr() == fresh_scheduler.get_last_lr()
    assert [g["lr"] for g in wrapper.param_groups] == [g["lr"] for g in fresh.param_groups]


def test_standalone_schedule_lr_on_a_plain_optimizer() -> None:
    from noether.core.schedules import LinearDecreasingSchedule
    from noether.core.schemas.schedules import LinearDecreasingScheduleConfig

    model = mlp()
    optimizer = torch.optim.SGD(
        [{"params": list(model[0].parameters()), "lr_scale": 0.5}, {"params": list(model[2].parameters())}],
        lr=1.0,
        weight_decay=0.1,
    )
    schedule = LinearDecreasingSchedule(LinearDecreasingScheduleConfig(max_value=1.0, end_value=0.0))
    scheduler = ScheduleLR(optimizer, schedule, total_steps=5, weight_decay_schedule=schedule)
    lrs = []
    for _ in range(6):
        lrs.append([g["lr"] for g in optimizer.param_groups])
        scheduler.step()
    assert lrs[0] == [0.5, 1.0] and lrs[2] == [0.25, 0.5] and lrs[5] == [0.0, 0.0]
    with pytest.raises(ValueError, match="total_steps"):
        ScheduleLR(optimizer, schedule, total_steps=0)


def test_a_loop_that_only_steps() -> None:
    """advance_counter: one line of setup, no bookkeeping besides step()."""
    manual_counter = UpdateCounter.from_total_updates(6, updates_per_epoch=2, effective_batch_size=16)
    manual_model, auto_model = mlp(), mlp()
    manual = build(manual_model, manual_counter, **schedule_config())
    auto = OptimizerFactory().create(
        OptimizerConfig(kind="torch.optim.AdamW", lr=1e-2, weight_decay=0.1, **schedule_config())
    )(
        auto_model,
        update_counter=UpdateCounter.from_total_updates(6, updates_per_epoch=2, effective_batch_size=16),
        advance_counter=True,
    )
    for step in range(8):  # two past the end: no crash
        manual.schedule_step()
        manual.zero_grad()
        backward(manual_model, step)
        manual.step()
        manual_counter.next_update()
        manual_counter.add_samples(16)
        if manual_counter.is_full_epoch:
            manual_counter.next_epoch()
        auto.zero_grad()
        backward(auto_model, step)
        auto.step()
    assert auto.update_counter is not None
    assert auto.update_counter.cur_iteration == manual_counter.cur_iteration
    for a, b in zip(params(manual_model), params(auto_model), strict=True):
        assert torch.equal(a, b)
    with pytest.raises(ValueError, match="advance_counter"):
        OptimizerWrapper(mlp(), functools.partial(torch.optim.SGD, lr=0.1), OptimizerConfig(), advance_counter=True)
