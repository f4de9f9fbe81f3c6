import functools
import io
from collections.abc import Callable
from typing import Any

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from noether.core.factory import OptimizerFactory
from noether.core.optimizer import Lion, LoadReport, OptimizerWrapper
from noether.core.schemas import OptimizerConfig
from noether.core.utils.training import TrainingIteration, UpdateCounter

LR_SCALE = "noether.core.optimizer.LrScaleByNameModifier"


class Net(torch.nn.Module):
    """Two independent branches, so a change in one leaves the other's gradients alone."""

    def __init__(self, hidden: int = 6, extra: bool = False, drop_b: bool = False, b_first: bool = False) -> None:
        super().__init__()
        torch.manual_seed(0)
        a = torch.nn.Sequential(torch.nn.Linear(3, hidden), torch.nn.LayerNorm(hidden), torch.nn.Linear(hidden, 1))
        b = torch.nn.Linear(3, 1)
        if b_first:
            self.b = b
            self.a = a
        else:
            self.a = a
            if not drop_b:
                self.b = b
        if extra:
            self.extra = torch.nn.Parameter(torch.ones(2, 3))


def roundtrip(state_dict: dict[str, Any]) -> dict[str, Any]:
    buffer = io.BytesIO()
    torch.save(state_dict, buffer)
    buffer.seek(0)
    loaded = torch.load(buffer, weights_only=True)
    assert isinstance(loaded, dict)
    return loaded


SCHEDULE = {"kind": "noether.core.schedules.LinearWarmupCosineDecaySchedule", "warmup_steps": 2}
WD_SCHEDULE = {"kind": "noether.core.schedules.CosineDecreasingSchedule", "end_value": 0.01}


def counter(start: int, end: int = 11) -> UpdateCounter:
    start_iteration = TrainingIteration(epoch=0, update=start, sample=start)
    return UpdateCounter(start_iteration, TrainingIteration(update=end), updates_per_epoch=100, effective_batch_size=1)


def make(model: torch.nn.Module, start: int = 0, **config: Any) -> OptimizerWrapper:
    base: dict[str, Any] = {"clip_grad_norm": 0.5, "schedule_config": SCHEDULE, "weight_decay_schedule": WD_SCHEDULE}
    return OptimizerWrapper(
        model,
        functools.partial(torch.optim.AdamW, lr=1e-2, weight_decay=config.pop("weight_decay", 0.1)),
        OptimizerConfig(**{**base, **config}),
        update_counter=counter(start),
    )


def grads_for(step: int, names: list[str], params: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    # Deterministic per-(step, name) gradients, independent of model layout.
    out = {}
    for name in names:
        gen = torch.Generator().manual_seed(hash((step, name)) % (2**31))
        out[name] = torch.randn(params[name].shape, generator=gen)
    return out


def normalized(name: str) -> str:
    return name.removeprefix("module.").replace("_orig_mod.", "")


def train(wrapper: OptimizerWrapper, steps: range) -> None:
    params = dict(wrapper.model.named_parameters())
    for step in steps:
        wrapper.zero_grad()
        grads = grads_for(step, [normalized(n) for n in params], {normalized(n): p for n, p in params.items()})
        for name, p in params.items():
            p.grad = grads[normalized(name)]
        wrapper.schedule_step()
        wrapper.step()
        assert wrapper.update_counter is not None
        wrapper.update_counter.next_update()


def weights(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {normalized(n): p.detach().clone() for n, p in model.named_parameters()}


def load_weights(model: torch.nn.Module, source: dict[str, torch.Tensor]) -> None:
    with torch.no_grad():
        for name, p in model.named_parameters():
            if normalized(name) in source and source[normalized(name)].shape == p.shape:
                p.copy_(source[normalized(name)])


def make_lion(model: torch.nn.Module, start: int = 0) -> OptimizerWrapper:
    """Lion through the factory, with Lion's own keyword arguments passed through the config."""
    config = {
        "kind": "noether.core.optimizer.Lion",
        "lr": 1e-3,
        "weight_decay": 0.5,
        "betas": [0.9, 0.98],
        "caution": True,
        "clip_grad_norm": 0.5,
        "schedule_config": SCHEDULE,
        "weight_decay_schedule": WD_SCHEDULE,
    }
    wrapper = OptimizerFactory().create(config)(model, update_counter=counter(start))
    assert isinstance(wrapper.torch_optim, Lion) and wrapper.torch_optim.defaults["caution"] is True
    return wrapper


@pytest.mark.parametrize("build", [make, make_lion], ids=["adamw", "lion"])
def test_resume_is_bit_identical_to_uninterrupted_training(build: Callable[..., OptimizerWrapper]) -> None:
    reference = build(Net())
    train(reference, range(7))

    first = build(Net())
    train(first, range(4))
    checkpoint = roundtrip(first.state_dict())
    model_weights = weights(first.model)

    resumed = build(Net(), start=4)
    load_weights(resumed.model, model_weights)
    report = resumed.load_state_dict(checkpoint)
    assert report.new == () and report.dropped == () and len(report.restored) == 8
    train(resumed, range(4, 7))
    assert reference.update_counter is not None and resumed.update_counter is not None
    assert reference.update_counter.update == resumed.update_counter.update == 7
    assert reference.torch_optim.param_groups[0]["lr"] == resumed.torch_optim.param_groups[0]["lr"]
    for name, value in weights(reference.model).items():
        assert torch.equal(value, weights(resumed.model)[name]), name


def assert_states_follow_names(old: OptimizerWrapper, new: OptimizerWrapper) -> None:
    old_by_name = {
        normalized(old.param_idx_to_name.get_value_by_key(i)): s
        for i, s in old.torch_optim.state_dict()["state"].items()
    }
    new_sd = new.torch_optim.state_dict()["state"]
    for index, name in new.param_idx_to_name.items():
        key = normalized(name)
        if key in old_by_name:
            for field, value in old_by_name[key].items():
                assert torch.equal(new_sd[index][field], value), (name, field)
        else:
            assert index not in new_sd, name


def continue_and_compare(old: OptimizerWrapper, new: OptimizerWrapper, common: set[str]) -> None:
    """One more step on both with the same gradients: the common parameters move identically."""
    train(old, range(10, 11))
    train(new, range(10, 11))
    old_w, new_w = weights(old.model), weights(new.model)
    for name in common:
        assert torch.equal(old_w[name], new_w[name]), name


Variant = Callable[[], torch.nn.Module]


def ddp_like() -> torch.nn.Module:
    outer = torch.nn.Module()
    outer.module = Net()
    return outer


def compiled_like() -> torch.nn.Module:
    outer = torch.nn.Module()
    outer._orig_mod = Net()
    return outer


@pytest.mark.parametrize(
    ("variant", "new", "dropped"),
    [
        (lambda: Net(extra=True), ("extra",), ()),
        (lambda: Net(drop_b=True), (), ("b.weight", "b.bias")),
        (lambda: Net(b_first=True), (), ()),
        (ddp_like, (), ()),
        (compiled_like, (), ()),
    ],
    ids=["added", "removed", "reordered", "module-prefix", "orig-mod-prefix"],
)
def test_resume_after_model_changes(variant: Variant, new: tuple[str, ...], dropped: tuple[str, ...]) -> None:
    # The norm bound is not reached, so each common parameter's update does not depend on the others.
    old = make(Net(), clip_grad_norm=1e6)
    train(old, range(3))
    checkpoint = roundtrip(old.state_dict())
    model = variant()
    load_weights(model, weights(old.model))
    resumed = make(model, start=3, clip_grad_norm=1e6)
    report = resumed.load_state_dict(checkpoint)
    assert report.new == new and report.dropped == dropped
    assert_states_follow_names(old, resumed)
    common = set(weights(old.model)) & set(weights(resumed.model))
    continue_and_compare(old, resumed, common)


def test_changed_weight_decay_and_lr_scale_config_wins() -> None:
    old = make(Net())
    train(old, range(3))
    checkpoint = roundtrip(old.state_dict())
    model = Net()
    load_weights(model, weights(old.model))
    modifiers = [{"kind": LR_SCALE, "name": "b.weight", "scale": 0.5}]
    resumed = make(model, weight_decay=0.3, param_group_modifiers_config=modifiers)
    resumed.load_state_dict(checkpoint)
    groups = {g["name"]: g for g in resumed.torch_optim.param_groups}
    assert groups["default"]["weight_decay"] == 0.3
    assert groups["lr_scale=5.0e-01"]["lr"] == 5e-3
    assert_states_follow_names(old, resumed)


def test_shape_mismatch_names_the_param_and_changes_nothing() -> None:
    old = make(Net())
    train(old, range(2))
    checkpoint = roundtrip(old.state_dict())
    resumed = make(Net(hidden=5))
    train(resumed, range(1))
    before = {i: {k: v.clone() for k, v in s.items()} for i, s in resumed.torch_optim.state_dict()["state"].items()}
    groups_before = [dict(g) for g in resumed.torch_optim.state_dict()["param_groups"]]
    with pytest.raises(ValueError, match=r"parameter 'a.0.weight': state 'exp_avg' has shape \(6, 3\)"):
        resumed.load_state_dict(checkpoint)
    after = resumed.torch_optim.state_dict()
    assert after["param_groups"] == groups_before
    assert set(after["state"]) == set(before)
    for index, state in before.items():
        for key, value in state.items():
            assert torch.equal(after["state"][index][key], value)


def test_dtype_kind_mismatch_names_the_param() -> None:
    old = make(Net())
    train(old, range(1))
    checkpoint = old.state_dict()
    checkpoint["state"][0]["exp_avg"] = checkpoint["state"][0]["exp_avg"].to(torch.complex64)
    name = old.param_idx_to_name.get_value_by_key(0)
    with pytest.raises(ValueError, match=f"parameter '{name}'.*complex64"):
        make(Net()).load_state_dict(checkpoint)


def test_loaded_tensors_are_copies() -> None:
    old = make(Net())
    train(old, range(2))
    checkpoint = old.state_dict()
    resumed = make(Net())
    resumed.load_state_dict(checkpoint)
    for state in checkpoint["state"].values():
        state["exp_avg"].add_(100.0)
    for state in resumed.torch_optim.state.values():
        assert state["exp_avg"].abs().max() < 50


def test_strict_refuses_new_and_dropped_without_changing_anything() -> None:
    old = make(Net())
    train(old, range(1))
    checkpoint = old.state_dict()
    resumed = make(Net(extra=True))
    with pytest.raises(ValueError, match=r"strict.*extra"):
        resumed.load_state_dict(checkpoint, strict=True)
    assert len(resumed.torch_optim.state) == 0
    report = make(Net()).load_state_dict(checkpoint, strict=True)
    assert isinstance(report, LoadReport) and report.new == report.dropped == ()


def test_report_is_logged(caplog: pytest.LogCaptureFixture) -> None:
    old = make(Net())
    train(old, range(1))
    with caplog.at_level("INFO"):
        make(Net(extra=True)).load_state_dict(old.state_dict())
    assert "new (fresh state) 1 [extra]" in caplog.text


def test_plain_torch_state_dict_loads_by_position() -> None:
    old = make(Net())
    train(old, range(2))
    plain = roundtrip(old.torch_optim.state_dict())
    resumed = make(Net())
    report = resumed.load_state_dict(plain)
    assert len(report.restored) == 8
    assert_states_follow_names(old, resumed)
    with pytest.raises(ValueError, match="matched by position"):
        make(Net(extra=True)).load_state_dict(plain)


def test_original_format_checkpoint_loads() -> None:
    """A checkpoint in the original's layout, written with a different group order than ours."""
    model = Net()
    params = dict(model.named_parameters())
    order = ["b.bias", "a.1.weight", "a.0.weight", "a.2.weight", "b.weight", "a.0.bias", "a.1.bias", "a.2.bias"]
    order = [n for n in order if n in params]
    state = {}
    for index, name in enumerate(order):
        if name == "a.1.bias":
            continue  # e.g. it had no gradient yet
        state[index] = {
            "step": torch.tensor(5.0),
            "exp_avg": torch.full(params[name].shape, float(index)),
            "exp_avg_sq": torch.full(params[name].shape, float(index) + 0.5),
        }
    hyper = {"lr": 1e-3, "betas": (0.9, 0.999), "eps": 1e-8, "amsgrad": False, "maximize": False}
    checkpoint = {
        "state": state,
        "param_groups": [
            {**hyper, "weight_decay": 0.0, "name": "weight_decay=0", "exclude_from_wd": True, "params": [0, 1]},
            {**hyper, "weight_decay": 0.05, "name": "default", "exclude_from_wd": False, "params": [2, 3, 4]},
            {**hyper, "weight_decay": 0.0, "name": "weight_decay=0", "exclude_from_wd": True, "params": [5, 6, 7]},
        ],
        "param_idx_to_name": dict(enumerate(order)),
    }
    wrapper = make(model)
    report = wrapper.load_state_dict(roundtrip(checkpoint))
    assert sorted(report.restored) == sorted(order) and report.new == report.dropped == ()
    current = wrapper.torch_optim.state_dict()["state"]
    for index, name in wrapper.param_idx_to_name.items():
        if name == "a.1.bias":
            assert index not in current
            continue
        assert torch.equal(current[index]["exp_avg"], torch.full(params[name].shape, float(order.index(name))))
    assert {g["lr"] for g in wrapper.torch_optim.param_groups} == {1e-2}  # config wins over the checkpoint


@pytest.mark.parametrize(
    ("checkpoint", "message"),
    [
        ({"state": {}}, "param_groups"),
        ({"state": {}, "param_groups": [], "param_idx_to_name": [1]}, "param_idx_to_name"),
        ({"state": {3: {}}, "param_groups": [], "param_idx_to_name": {0: "a.0.weight"}}, r"indices \[3\]"),
        ({"state": {}, "param_groups": [], "param_idx_to_name": {0: "x", 1: "x"}}, "twice"),
    ],
)
def test_malformed_checkpoints_raise(checkpoint: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        make(Net()).load_state_dict(checkpoint)


def test_original_format_lion_checkpoint_loads_and_continues() -> None:
    """The original's checkpoint layout for Lion: only ``exp_avg`` per parameter, no step counter."""
    model = Net()
    params = dict(model.named_parameters())
    names = sorted(params)  # the original numbered its groups differently from ours
    checkpoint = {
        "state": {i: {"exp_avg": torch.full(params[n].shape, 0.01 * (i + 1))} for i, n in enumerate(names)},
        "param_groups": [
            {
                "lr": 5e-5,
                "betas": (0.9, 0.99),
                "weight_decay": 0.05,
                "caution": False,
                "foreach": None,
                "maximize": False,
                "name": "default",
                "params": list(range(len(names))),
            }
        ],
        "param_idx_to_name": dict(enumerate(names)),
    }
    wrapper = make_lion(model, start=3)
    report = wrapper.load_state_dict(roundtrip(checkpoint))
    assert sorted(report.restored) == names
    state = wrapper.torch_optim.state_dict()["state"]
    for index, name in wrapper.param_idx_to_name.items():
        assert torch.equal(state[index]["exp_avg"], torch.full(params[name].shape, 0.01 * (names.index(name) + 1)))
    train(wrapper, range(3, 4))
    assert all(torch.isfinite(p).all() for p in model.parameters())


class Bag(torch.nn.Module):
    """A model that is just named parameters, in a given order."""

    def __init__(self, shapes: dict[str, tuple[int, ...]]) -> None:
        super().__init__()
        self.params = torch.nn.ParameterDict({n: torch.nn.Parameter(torch.zeros(s)) for n, s in shapes.items()})


_NAMES = [f"p{i}" for i in range(8)]


@settings(max_examples=40, deadline=None)
@given(
    old_names=st.lists(st.sampled_from(_NAMES), unique=True, min_size=1),
    new_names=st.lists(st.sampled_from(_NAMES), unique=True, min_size=1),
    ndims=st.lists(st.integers(0, 2), min_size=8, max_size=8),
    wd_names=st.sets(st.sampled_from(_NAMES)),
)
def test_states_follow_names_for_any_layout(
    old_names: list[str], new_names: list[str], ndims: list[int], wd_names: set[str]
) -> None:
    shape = {n: (2,) * ndims[i] for i, n in enumerate(_NAMES)}
    old = OptimizerWrapper(
        Bag({n: shape[n] for n in old_names}),
        functools.partial(torch.optim.SGD, lr=0.1, momentum=0.9),
        OptimizerConfig(),
    )
    for index, p in enumerate(old.model.parameters()):
        p.grad = torch.full_like(p, float(index + 1))
    old.step()
    modifiers = [
        {"kind": "noether.core.optimizer.WeightDecayByNameModifier", "name": f"params.{n}", "value": 0.3}
        for n in sorted(wd_names & set(new_names))
    ]
    new = OptimizerWrapper(
        Bag({n: shape[n] for n in new_names}),
        functools.partial(torch.optim.SGD, lr=0.1, momentum=0.9),
        OptimizerConfig(param_group_modifiers_config=modifiers or None),
    )
    report = new.load_state_dict(roundtrip(old.state_dict()))
    assert set(report.restored) == {f"params.{n}" for n in set(old_names) & set(new_names)}
    assert set(report.new) == {f"params.{n}" for n in set(new_names) - set(old_names)}
    assert set(report.dropped) == {f"params.{n}" for n in set(old_names) - set(new_names)}
    old_buffers = {
        old.param_idx_to_name.get_value_by_key(i): s["momentum_buffer"]
        for i, s in old.torch_optim.state_dict()["state"].items()
    }
    new_state = new.torch_optim.state_dict()["state"]
    for index, name in new.param_idx_to_name.items():
        if name in old_buffers:
            assert torch.equal(new_state[index]["momentum_buffer"], old_buffers[name])
        else:
            assert index not in new_state
