"""Lion refuses a checkpoint state it cannot step with, at load time, naming the parameter and key; nothing changes."""

from __future__ import annotations

import copy
import math
import warnings
from collections.abc import Callable
from typing import Any

import pytest
import torch
from torch.nn import Parameter

from noether.core.optimizer import Lion


def trained() -> tuple[Lion, list[Parameter]]:
    gen = torch.Generator().manual_seed(0)
    params = [Parameter(torch.randn(8, 4, generator=gen)), Parameter(torch.randn(4, generator=gen))]
    opt = Lion(params, lr=0.01)
    for p in params:
        p.grad = torch.randn(p.shape, generator=gen)
    opt.step()
    return opt, params


def _set(index: int, key: str, value: Any) -> Callable[[dict[str, Any]], None]:
    def edit(sd: dict[str, Any]) -> None:
        sd["state"][index][key] = value(sd["state"][index].get(key)) if callable(value) else value

    return edit


def _replace(index: int, value: Any) -> Callable[[dict[str, Any]], None]:
    def edit(sd: dict[str, Any]) -> None:
        sd["state"][index] = value

    return edit


def _nan_at(t: torch.Tensor, fill: float) -> torch.Tensor:
    t = t.clone()
    t.view(-1)[1] = fill
    return t


BAD_STATES = [
    pytest.param(
        _set(0, "exp_avg", lambda t: _nan_at(t, math.nan)), r"parameter 0 .*'exp_avg' has 1 non-finite", id="nan"
    ),
    pytest.param(
        _set(1, "exp_avg", lambda t: _nan_at(t, -math.inf)), r"parameter 1 .*'exp_avg' has 1 non-finite", id="inf"
    ),
    pytest.param(
        _set(0, "exp_avg", torch.zeros(1, 4)),
        r"parameter 0 .*'exp_avg' has shape \(1, 4\) but the param",
        id="broadcastable",
    ),
    pytest.param(_set(0, "exp_avg", 0.5), r"parameter 0 .*'exp_avg' must be a tensor, got float", id="float"),
    pytest.param(_set(0, "exp_avg", [0.0] * 4), r"parameter 0 .*'exp_avg' must be a tensor, got list", id="list"),
    pytest.param(_set(1, "exp_avg", "zeros"), r"parameter 1 .*'exp_avg' must be a tensor, got str", id="str"),
    pytest.param(_set(1, "exp_avg", torch.zeros(4, dtype=torch.int64)), r"'exp_avg' has dtype torch.int64", id="int"),
    pytest.param(_set(0, "exp_avg", torch.zeros(8, 4, device="meta")), r"'exp_avg' is on the meta device", id="meta"),
    pytest.param(_set(1, "exp_avg", torch.zeros(4).to_sparse()), r"'exp_avg' has layout torch.sparse_coo", id="sparse"),
    pytest.param(
        _set(0, "step", math.nan), r"parameter 0 .*'step' must be a finite number >= 0, got nan", id="step-nan"
    ),
    pytest.param(
        _set(0, "step", torch.tensor(math.inf)), r"'step' must be a finite number >= 0, got inf", id="step-inf"
    ),
    pytest.param(_set(0, "step", "3"), r"'step' must be a number or a 1-element tensor, got str", id="step-str"),
    pytest.param(_replace(1, [torch.zeros(4)]), r"parameter 1 .*its state must be a dict.*got list", id="not-a-dict"),
    pytest.param(_replace(0, {"exp_avg_sq": torch.zeros(8, 4)}), r"parameter 0 .*lacks 'exp_avg'", id="no-exp-avg"),
    pytest.param(_set(0, "extra", torch.full((8, 4), math.nan)), r"'extra' has 32 non-finite entries", id="other-key"),
]


@pytest.mark.parametrize(("corrupt", "message"), BAD_STATES)
def test_bad_state_is_refused_at_load_naming_parameter_and_key_and_nothing_changes(
    corrupt: Callable[[dict[str, Any]], None], message: str
) -> None:
    opt, _ = trained()
    state_dict = copy.deepcopy(opt.state_dict())
    state_dict["param_groups"][0]["lr"] = 0.5
    corrupt(state_dict)
    before = copy.deepcopy(opt.state_dict())
    with pytest.raises(ValueError, match=message) as info:
        opt.load_state_dict(state_dict)
    assert "nothing was loaded" in str(info.value)
    torch.testing.assert_close(opt.state_dict(), before, rtol=0, atol=0)  # lr, state: all as before


def test_every_problem_is_listed_at_once() -> None:
    opt, _ = trained()
    state_dict = copy.deepcopy(opt.state_dict())
    state_dict["state"][0]["exp_avg"] = "x"
    state_dict["state"][1]["exp_avg"] = torch.full((4,), math.nan)
    with pytest.raises(ValueError, match=r"(?s)parameter 0 .*must be a tensor.*\n.*parameter 1 .*non-finite"):
        opt.load_state_dict(state_dict)


def test_valid_variations_still_load() -> None:
    opt, params = trained()
    state_dict = copy.deepcopy(opt.state_dict())
    state_dict["state"][0]["exp_avg"] = state_dict["state"][0]["exp_avg"].double()  # cast on load, as torch does
    state_dict["state"][1] = {}  # an empty state: that parameter starts afresh
    opt.load_state_dict(state_dict)
    assert opt.state[params[0]]["exp_avg"].dtype == torch.float32


# --- weight decay that flips the parameters ------------------------------------------------------------------------


def test_lr_times_weight_decay_of_one_or_more_warns_once_per_group_naming_it() -> None:
    a, b = Parameter(torch.ones(2)), Parameter(torch.ones(2))
    with pytest.warns(RuntimeWarning, match=r"param group 1 'head' has lr \* weight_decay = 0.5 \* 4 = 2 >= 1.*-1"):
        opt = Lion([{"params": [a]}, {"params": [b], "weight_decay": 4.0, "name": "head"}], lr=0.5)
    a.grad, b.grad = torch.zeros(2), torch.zeros(2)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        opt.step()  # warned once already
        opt.step()
    assert b.tolist() == [1.0, 1.0]  # multiplied by (1 - 2) twice
    opt.param_groups[0]["weight_decay"] = 2.0  # e.g. by a schedule: warned at the next step
    with pytest.warns(RuntimeWarning, match=r"param group 0 has lr \* weight_decay = 0.5 \* 2 = 1 >= 1"):
        opt.step()


def test_ordinary_decay_does_not_warn() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        Lion([Parameter(torch.ones(2))], lr=1e-3, weight_decay=1.0).step()
