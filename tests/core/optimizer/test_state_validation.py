"""A loaded optimizer state is checked before it replaces anything; errors name the parameter and the key."""

import copy
import math
from collections.abc import Callable
from typing import Any

import pytest
import torch

from noether.core.factory import OptimizerFactory
from noether.core.optimizer import Lion, OptimizerWrapper
from noether.core.optimizer.state_validation import (
    param_state_problems,
    required_state_keys,
    state_tensor_problem,
    validate_optimizer_state,
)


class Net(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.fc = torch.nn.Linear(4, 8)  # weight (8, 4), bias (8,)
        self.out = torch.nn.Linear(8, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.out(torch.tanh(self.fc(x)))


def _wrapper(kind: str = "torch.optim.AdamW", **extra: Any) -> OptimizerWrapper:
    config = {"kind": kind, "lr": 1e-2, "weight_decay": 0.01, **extra}
    wrapper: OptimizerWrapper = OptimizerFactory().create(config)(Net())
    return wrapper


def _trained(kind: str = "torch.optim.AdamW", **extra: Any) -> OptimizerWrapper:
    wrapper = _wrapper(kind, **extra)
    for _ in range(2):
        wrapper.zero_grad()
        wrapper.model(torch.randn(5, 4)).square().mean().backward()
        wrapper.step()
    return wrapper


def _snapshot(wrapper: OptimizerWrapper) -> list[tuple[str, Any]]:
    return [
        (key, value.clone() if isinstance(value, torch.Tensor) else value)
        for state in wrapper.torch_optim.state.values()
        for key, value in state.items()
    ]


def _same(a: list[tuple[str, Any]], b: list[tuple[str, Any]]) -> bool:
    return len(a) == len(b) and all(
        ka == kb and (torch.equal(va, vb) if isinstance(va, torch.Tensor) else va == vb)
        for (ka, va), (kb, vb) in zip(a, b, strict=True)
    )


def _index_of(wrapper: OptimizerWrapper, name: str) -> int:
    return wrapper.param_idx_to_name.get_key_by_value(name)


def _refused(wrapper: OptimizerWrapper, checkpoint: dict[str, Any], *patterns: str) -> None:
    """Loading ``checkpoint`` raises a ValueError matching every pattern, and the state stays as it was."""
    before = _snapshot(wrapper)
    with pytest.raises(ValueError) as info:
        wrapper.load_state_dict(checkpoint)
    for pattern in patterns:
        assert pattern in str(info.value), f"{pattern!r} not in {info.value}"
    assert _same(_snapshot(wrapper), before)


def _edited(wrapper: OptimizerWrapper, name: str, edit: Callable[[dict[str, Any]], None]) -> dict[str, Any]:
    checkpoint = copy.deepcopy(wrapper.state_dict())
    edit(checkpoint["state"][_index_of(wrapper, name)])
    return checkpoint


# ---- non-finite and negative values (they used to load and turn the next step into NaN) --------------------------


@pytest.mark.parametrize("key", ["exp_avg", "exp_avg_sq", "step"])
@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
def test_non_finite_state_is_refused(key: str, bad: float) -> None:
    wrapper = _trained()
    target = _trained()

    def poison(state: dict[str, Any]) -> None:
        state[key].view(-1)[0] = bad

    reason = "non-finite" if key != "step" else "finite number >= 0"
    _refused(target, _edited(wrapper, "fc.weight", poison), "parameter 'fc.weight'", f"'{key}'", reason)


def test_negative_second_moment_is_refused() -> None:
    wrapper = _trained()

    def negate(state: dict[str, Any]) -> None:
        state["exp_avg_sq"][0, 0] = -1e-3

    _refused(_trained(), _edited(wrapper, "fc.weight", negate), "'fc.weight'", "'exp_avg_sq' has 1 negative entry")


def test_negative_step_is_refused() -> None:
    wrapper = _trained()

    def negate(state: dict[str, Any]) -> None:
        state["step"] = torch.tensor(-1.0)

    _refused(_trained(), _edited(wrapper, "out.bias", negate), "'out.bias'", "'step' must be a finite number >= 0")


# ---- shapes (a broadcastable exp_avg used to load and fail at the next step, after the counters moved) ------------


def test_broadcastable_but_wrong_shape_is_refused() -> None:
    wrapper = _trained()

    def shrink(state: dict[str, Any]) -> None:
        state["exp_avg"] = state["exp_avg"][:1].clone()  # (1, 4) for an (8, 4) parameter

    _refused(
        _trained(),
        _edited(wrapper, "fc.weight", shrink),
        "'fc.weight'",
        "'exp_avg' has shape (1, 4) but the parameter has shape (8, 4)",
    )


def test_factored_keys_only_need_to_broadcast() -> None:
    param = torch.zeros(8, 4)
    assert state_tensor_problem(param, "row_var", torch.zeros(8, 1)) is None
    assert state_tensor_problem(param, "col_var", torch.zeros(1, 4)) is None
    assert state_tensor_problem(param, "row_var", torch.zeros(3, 1)) is not None
    assert state_tensor_problem(param, "exp_avg", torch.zeros(8, 1)) is not None
    assert state_tensor_problem(param, "something_else", torch.zeros(1, 4)) is not None
    assert state_tensor_problem(param, "exp_avg", torch.zeros(8, 4, dtype=torch.complex64)) is not None
    assert state_tensor_problem(param, "exp_avg", torch.zeros(8, 4, dtype=torch.int64)) is not None
    assert state_tensor_problem(param, "exp_avg", torch.zeros(8, 4, dtype=torch.bfloat16)) is None


def test_adafactor_checkpoint_round_trips() -> None:
    wrapper = _trained("torch.optim.Adafactor")
    assert any("row_var" in state for state in wrapper.torch_optim.state.values())
    target = _wrapper("torch.optim.Adafactor")
    target.load_state_dict(wrapper.state_dict())
    assert _same(_snapshot(target), _snapshot(wrapper))


# ---- values that are not tensors ---------------------------------------------------------------------------------


@pytest.mark.parametrize("value", [0.5, [0.0] * 4, "exp_avg", None])
def test_non_tensor_moment_is_refused(value: Any) -> None:
    wrapper = _trained()

    def replace(state: dict[str, Any]) -> None:
        state["exp_avg"] = value

    _refused(_trained(), _edited(wrapper, "fc.weight", replace), "'fc.weight'", "'exp_avg' must be a tensor")


@pytest.mark.parametrize("value", [0.5, [0.0] * 4, "exp_avg"])
def test_non_tensor_moment_is_refused_for_lion(value: Any) -> None:
    # The same function serves Lion's own loading; here called as Lion will call it.
    param = torch.nn.Parameter(torch.zeros(8, 4))
    lion = Lion([param], lr=1e-3)
    state_dict = {"state": {0: {"exp_avg": value}}, "param_groups": [{**lion.param_groups[0], "params": [0]}]}
    with pytest.raises(ValueError, match=r"parameter 'w' \(index 0\) of shape \(8, 4\): state 'exp_avg' must be a"):
        validate_optimizer_state(lion, state_dict, {0: "w"})
    assert len(lion.state) == 0


def test_float_step_and_missing_momentum_buffer_are_accepted() -> None:
    # Older torch checkpoints keep 'step' as a number; SGD without momentum may keep momentum_buffer None.
    assert param_state_problems({"step": 3.0, "exp_avg": torch.zeros(2), "exp_avg_sq": torch.zeros(2)}) == []
    assert param_state_problems({"momentum_buffer": None}, torch.zeros(2)) == []
    assert param_state_problems({}, torch.zeros(2), {"step"}) == []  # an empty state starts fresh
    assert param_state_problems({"step": True}) != []


def test_a_meta_step_is_refused_rather_than_read() -> None:
    # Reading the number of a meta tensor raises; the check must name the problem instead.
    problems = param_state_problems({"step": torch.tensor(1.0, device="meta"), "exp_avg": torch.zeros(2)})
    assert problems == ["state 'step' is on the meta device (it holds no data)"]


def test_all_elementwise_holds_every_key_but_step_to_the_elementwise_rules() -> None:
    param = torch.zeros(8, 4)
    state = {"step": 1, "extra": torch.full((8, 4), math.nan), "row": torch.zeros(4), "momentum_buffer": None}
    assert param_state_problems(state, param) == []  # unknown keys are the optimizer's business by default
    assert param_state_problems(state, param, all_elementwise=True) == [
        "state 'extra' has 32 non-finite entries (NaN or inf)",
        "state 'row' has shape (4,) but the parameter has shape (8, 4)",
        "state 'momentum_buffer' must be a tensor, got NoneType None",
    ]


# ---- malformed checkpoints (they used to raise KeyError, "invalid literal for int()" or NotImplementedError) -------


def test_non_integer_state_index_is_refused() -> None:
    wrapper = _trained()
    checkpoint = copy.deepcopy(wrapper.state_dict())
    checkpoint["state"]["abc"] = checkpoint["state"].pop(0)
    _refused(_trained(), checkpoint, "'state' has the key 'abc'", "an integer >= 0")


@pytest.mark.parametrize(
    ("param_groups", "message"),
    [
        ([{"lr": 0.1}], "param_groups[0] needs a 'params' list of parameter indices, got no such key"),
        ("garbage", "'param_groups' must be a list of dicts, got str"),
        ([1, 2], "param_groups[0] must be a dict, got int"),
        ([{"params": "0123"}], "needs a 'params' list of parameter indices, got str"),
        ([{"params": [0, "x"]}], "param_groups[0]['params'] holds 'x'"),
        ([{"params": [0, 1]}, {"params": [1, 2, 3]}], "indices [1] more than once"),
    ],
)
def test_garbage_param_groups_are_refused(param_groups: Any, message: str) -> None:
    wrapper = _trained()
    checkpoint = {**wrapper.state_dict(), "param_groups": param_groups}
    _refused(_trained(), checkpoint, message)


def test_state_of_an_index_no_group_lists_is_refused() -> None:
    wrapper = _trained()
    checkpoint = copy.deepcopy(wrapper.state_dict())
    checkpoint["state"][99] = checkpoint["state"][0]
    _refused(_trained(), checkpoint, "entries for the indices [99], which no param group lists")


def test_adamw_checkpoint_without_step_is_refused() -> None:
    wrapper = _trained()

    def drop(state: dict[str, Any]) -> None:
        del state["step"]

    _refused(_trained(), _edited(wrapper, "out.weight", drop), "'out.weight'", "lacks ['step']")


def test_lion_checkpoint_into_adamw_is_refused() -> None:
    lion = _trained("noether.core.optimizer.Lion")
    _refused(
        _trained(), lion.state_dict(), "into AdamW", "lacks ['exp_avg_sq', 'step']", "checkpoint is likely of another"
    )


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda t: torch.empty_like(t, device="meta"), "'exp_avg' is on the meta device"),
        (lambda t: t.to_sparse(), "'exp_avg' has layout torch.sparse_coo"),
    ],
)
def test_meta_and_sparse_state_are_refused(make: Callable[[torch.Tensor], torch.Tensor], message: str) -> None:
    wrapper = _trained()

    def replace(state: dict[str, Any]) -> None:
        state["exp_avg"] = make(state["exp_avg"])

    _refused(_trained(), _edited(wrapper, "fc.weight", replace), "'fc.weight'", message)


# ---- the plain function against a torch optimizer, matched by position ------------------------------------------


def test_positional_state_dict_is_checked_against_the_parameters() -> None:
    params = [torch.nn.Parameter(torch.zeros(8, 4)), torch.nn.Parameter(torch.zeros(8))]
    adam = torch.optim.Adam(params)
    good = {"step": torch.tensor(1.0), "exp_avg": torch.zeros(8, 4), "exp_avg_sq": torch.zeros(8, 4)}
    state_dict = {"state": {0: good}, "param_groups": [{**adam.param_groups[0], "params": [0, 1]}]}
    validate_optimizer_state(adam, state_dict)
    state_dict["state"] = {"1": good}  # a JSON-style key, the (8, 4) state for the (8,) parameter
    with pytest.raises(ValueError, match=r"parameter index 1 of shape \(8,\): state 'exp_avg' has shape \(8, 4\)"):
        validate_optimizer_state(adam, state_dict)
    assert adam.state == {}


def test_required_keys() -> None:
    param = torch.nn.Parameter(torch.zeros(2))
    assert required_state_keys(torch.optim.AdamW([param])) == {"step", "exp_avg", "exp_avg_sq"}
    assert required_state_keys(torch.optim.SGD([param], lr=0.1)) == frozenset()

    class Mine(torch.optim.SGD):
        required_state_keys = ("momentum_buffer",)

    assert required_state_keys(Mine([param], lr=0.1)) == {"momentum_buffer"}
