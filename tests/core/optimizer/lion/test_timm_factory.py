"""Lion registered in timm's optimizer factory passes the checks of timm's own optimizer tests (skipped without timm).

timm is a test extra installed with ``pip install --no-deps timm``; it is imported through the loader of the layer-decay
tests, which stands in for torchvision while timm imports.
"""

from __future__ import annotations

import copy
import functools
from collections.abc import Callable
from typing import Any

import pytest
import torch
from torch.nn import Parameter

from noether.core.optimizer import Lion

try:
    from tests.core.optimizer.param_group_modifiers.timm_loader import import_timm
except ImportError:  # the loader lives with the layer-decay tests

    def import_timm() -> Any:
        return pytest.importorskip("timm")


@pytest.fixture(scope="module")
def create() -> Callable[..., torch.optim.Optimizer]:
    """timm's ``create_optimizer`` of a registry that knows Lion as ``noetherlion`` (timm splits names at ``_``)."""
    import_timm()
    from timm.optim._optim_factory import OptimInfo, OptimizerRegistry

    registry = OptimizerRegistry()
    registry.register(OptimInfo(name="noetherlion", opt_class=Lion, has_eps=False, has_betas=True))
    return functools.partial(registry.create_optimizer, opt="noetherlion")


def test_model_loss_decreases_every_step(create: Callable[..., torch.optim.Optimizer]) -> None:
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(2, 3), torch.nn.Sigmoid(), torch.nn.Linear(3, 1), torch.nn.Sigmoid())
    x = torch.tensor([0.1, 0.2, 0.3, 0.4, 0.5, 0.6]).reshape(3, 2)
    opt = create(model, lr=1e-4, weight_decay=0.01)
    assert [g["weight_decay"] for g in opt.param_groups] == [0.0, 0.01]  # timm's 1-d exclusion reached Lion
    previous = float("inf")
    for _ in range(20):
        opt.zero_grad()
        loss = model(x).sum()
        loss.backward()
        assert loss.item() < previous
        previous = loss.item()
        opt.step()


@pytest.mark.parametrize(
    "build",
    [
        lambda create, w, b: create([w, b], lr=1e-2),
        lambda create, w, b: create([{"params": [w]}, {"params": [b], "lr": 1e-2}], lr=1e-3),
        lambda create, w, b: create([{"params": b, "lr": 1e-2}], lr=1e-3),
        lambda create, w, b: create([{"params": b, "lr": 1e-2}]),
    ],
    ids=["flat", "groups", "single-group", "single-group-default-lr"],
)
def test_basic_cases_state_dict_and_progress(create: Callable[..., Any], build: Callable[..., Any]) -> None:
    # timm's _test_basic_cases: a state dict round trip continues identically, and 200 steps reduce the loss.
    gen = torch.Generator().manual_seed(0)
    weight, bias, x = torch.randn(10, 5, generator=gen), torch.randn(10, generator=gen), torch.randn(5, generator=gen)
    w, b = Parameter(weight.clone()), Parameter(bias.clone())
    w_c, b_c = Parameter(weight.clone()), Parameter(bias.clone())
    opt, opt_c = build(create, w, b), build(create, w_c, b_c)

    def closure(o: torch.optim.Optimizer, ww: Parameter, bb: Parameter) -> torch.Tensor:
        o.zero_grad()
        loss = (ww.mv(x) + bb).pow(2).sum()
        loss.backward()
        return loss

    initial = closure(opt, w, b).item()
    for _ in range(20):
        opt.step(functools.partial(closure, opt, w, b))
    with torch.no_grad():
        w_c.copy_(w)
        b_c.copy_(b)
    state_dict = copy.deepcopy(opt.state_dict())
    opt_c.load_state_dict(copy.deepcopy(state_dict))
    for _ in range(20):
        opt.step(functools.partial(closure, opt, w, b))
        opt_c.step(functools.partial(closure, opt_c, w_c, b_c))
        assert torch.equal(w, w_c) and torch.equal(b, b_c)
    for _ in range(160):
        opt.step(functools.partial(closure, opt, w, b))
    assert closure(opt, w, b).item() < initial


def test_same_steps_as_timms_own_lion(create: Callable[..., Any]) -> None:
    from timm.optim import Lion as TimmLion

    gen = torch.Generator().manual_seed(1)
    start = [torch.randn(6, 3, generator=gen, dtype=torch.float64), torch.randn(3, generator=gen, dtype=torch.float64)]
    ours = [Parameter(t.clone()) for t in start]
    theirs = [Parameter(t.clone()) for t in start]
    opt_ours = create(ours, lr=1e-2, weight_decay=0.1, weight_decay_exclude_1d=False)
    opt_theirs = TimmLion(theirs, lr=1e-2, weight_decay=0.1)
    for _ in range(5):
        grads = [torch.randn(t.shape, generator=gen, dtype=torch.float64) for t in start]
        for p, q, g in zip(ours, theirs, grads, strict=True):
            p.grad, q.grad = g.clone(), g.clone()
        opt_ours.step()
        opt_theirs.step()
    for p, q in zip(ours, theirs, strict=True):
        torch.testing.assert_close(p, q, rtol=0, atol=1e-12)
