"""The dispatcher's per-group decision cache: reused while nothing changed, decided again when anything did.

The default path and ``fused=True`` (whose CPU kernel is the same C kernel) keep it alike.

Every test steps ``Lion`` (default path: the C kernel where it applies) next to the reference kernel on clones and
asserts the same bits after every step, and counts how often the full decision ran. Each runs twice: with the Python
checks of a kept decision, and with the compiled check (:mod:`.step_check`) in front of them.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import torch
from torch import Tensor

from noether.core.optimizer import Lion
from noether.core.optimizer.lion import dispatch
from noether.core.optimizer.lion.reference import _single_tensor_lion
from tests.core.optimizer.lion.compiled import count_kept_runs, require_c_kernel, require_step_check

HYPER = {"lr": 0.01, "betas": (0.9, 0.99), "weight_decay": 0.1}


@pytest.fixture(autouse=True)
def _needs_the_c_kernel() -> None:
    require_c_kernel()


@pytest.fixture(autouse=True, params=["python", "native"])
def checks(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[list[int]]:
    """Which checks a kept decision gets (``NOETHER_LION_STEP_CHECK``); yields the steps the compiled check let run."""
    monkeypatch.setenv("NOETHER_LION_STEP_CHECK", request.param)
    if request.param == "native":
        require_step_check()
    runs = count_kept_runs(monkeypatch)
    yield runs
    if request.param == "python":
        assert runs == []


@pytest.fixture
def decisions(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[int]]:
    """How many times the full decision (the per-tensor check) ran."""
    calls: list[int] = []
    real = dispatch._uniform_contiguous

    def counting(*args: list[Tensor]) -> object:
        calls.append(1)
        return real(*args)

    monkeypatch.setattr(dispatch, "_uniform_contiguous", counting)
    yield calls


class Twin:
    """Clones of the params and their momenta (and, for 16-bit params, Kahan compensations, as Lion's default keeps
    them), stepped with the reference kernel."""

    def __init__(self, params: list[torch.nn.Parameter]) -> None:
        self.params = [p.detach().clone() for p in params]
        self.exp_avgs = [torch.zeros_like(p) for p in params]
        low = (torch.bfloat16, torch.float16)
        self.comps = [torch.zeros_like(p) if p.dtype in low else None for p in params]

    def step(self, grads: list[Tensor | None], caution: bool = False) -> None:
        for i, g in enumerate(grads):
            if g is None:
                continue
            comp = self.comps[i]
            _single_tensor_lion(
                [self.params[i]],
                [g],
                [self.exp_avgs[i]],
                beta1=HYPER["betas"][0],  # type: ignore[index]
                beta2=HYPER["betas"][1],  # type: ignore[index]
                lr=HYPER["lr"],  # type: ignore[arg-type]
                weight_decay=HYPER["weight_decay"],  # type: ignore[arg-type]
                caution=caution,
                maximize=False,
                kahan_comps=None if comp is None else [comp],
            )

    def assert_same(self, opt: Lion, params: list[torch.nn.Parameter]) -> None:
        for p, want_p, want_m in zip(params, self.params, self.exp_avgs, strict=True):
            assert torch.equal(p.detach(), want_p)
            if p in opt.state:
                assert torch.equal(opt.state[p]["exp_avg"], want_m)


def _params(n: int = 5, shape: tuple[int, ...] = (7, 3), dtype: torch.dtype = torch.float32, seed: int = 0) -> list:
    gen = torch.Generator().manual_seed(seed)
    return [torch.nn.Parameter(torch.randn(shape, generator=gen).to(dtype)) for _ in range(n)]


def _grads(params: list[torch.nn.Parameter], seed: int) -> list[Tensor]:
    gen = torch.Generator().manual_seed(seed)
    grads = [torch.randn(p.shape, generator=gen).to(p.dtype) for p in params]
    for p, g in zip(params, grads, strict=True):
        p.grad = g.clone()
    return grads


@pytest.mark.parametrize("fused", [None, True], ids=["default", "fused"])
def test_the_decision_is_taken_once_and_the_bits_stay_those_of_the_reference(
    decisions: list[int], fused: bool | None, checks: list[int], request: pytest.FixtureRequest
) -> None:
    params = _params()
    opt, twin = Lion(params, **HYPER, fused=fused), Twin(params)
    for step in range(4):
        caution = step >= 2  # a hyperparameter change needs no new decision, only another kernel of the same kind
        opt.param_groups[0]["caution"] = caution
        twin.step(_grads(params, seed=step), caution=caution)
        opt.step()
        twin.assert_same(opt, params)
    assert len(decisions) == 1
    if "native" in request.node.callspec.id:
        assert len(checks) == 3  # every step after the first ran on the compiled check


@pytest.mark.parametrize("fused", [None, True], ids=["default", "fused"])
def test_replacing_param_data_decides_again(decisions: list[int], fused: bool | None) -> None:
    params = _params()
    opt, twin = Lion(params, **HYPER, fused=fused), Twin(params)
    twin.step(_grads(params, seed=0))
    opt.step()
    with torch.no_grad():
        params[1].data = torch.full_like(params[1], 0.5)  # new storage, same shape
    twin.params[1] = torch.full_like(twin.params[1], 0.5)
    for step in (1, 2):
        twin.step(_grads(params, seed=step))
        opt.step()
        twin.assert_same(opt, params)
    assert len(decisions) == 2


@pytest.mark.parametrize("fused", [None, True], ids=["default", "fused"])
def test_a_new_dtype_decides_again_and_runs_that_dtypes_kernel(decisions: list[int], fused: bool | None) -> None:
    params = _params()
    opt, twin = Lion(params, **HYPER, fused=fused), Twin(params)
    twin.step(_grads(params, seed=0))
    opt.step()
    for i, p in enumerate(params):  # the whole group to float64, state included (as a cast model and its state)
        p.data = p.data.double()
        opt.state[p]["exp_avg"] = opt.state[p]["exp_avg"].double()
        twin.params[i], twin.exp_avgs[i] = twin.params[i].double(), twin.exp_avgs[i].double()
    twin.step(_grads(params, seed=1))
    opt.step()
    twin.assert_same(opt, params)
    assert all(opt.state[p]["exp_avg"].dtype == torch.float64 for p in params)
    assert len(decisions) == 2


def test_a_gradient_that_disappears_or_turns_non_contiguous_decides_again(
    decisions: list[int], monkeypatch: pytest.MonkeyPatch
) -> None:
    params = _params(shape=(4, 4))
    opt, twin = Lion(params, **HYPER), Twin(params)
    twin.step(_grads(params, seed=0))
    opt.step()
    grads: list[Tensor | None] = list(_grads(params, seed=1))
    params[2].grad, grads[2] = None, None
    twin.step(grads)
    opt.step()
    twin.assert_same(opt, params)
    assert len(decisions) == 2
    grads = list(_grads(params, seed=2))
    transposed = grads[0].t().contiguous().t()  # same values, another layout: the C kernel does not take it
    assert not transposed.is_contiguous()
    params[0].grad = transposed
    foreach: list[int] = []
    real = dispatch._multi_tensor_lion
    monkeypatch.setattr(dispatch, "_multi_tensor_lion", lambda *a, **k: foreach.append(1) or real(*a, **k))
    twin.step(grads)
    opt.step()
    twin.assert_same(opt, params)
    assert foreach == [1] and len(decisions) == 3
    twin.step(_grads(params, seed=3))  # contiguous again: the C kernel, decided anew
    opt.step()
    twin.assert_same(opt, params)
    assert foreach == [1] and len(decisions) == 4


def test_a_replaced_parameter_in_the_group_decides_again(decisions: list[int]) -> None:
    params = _params()
    opt, twin = Lion(params, **HYPER), Twin(params)
    twin.step(_grads(params, seed=0))
    opt.step()
    new = torch.nn.Parameter(torch.ones(7, 3))
    opt.param_groups[0]["params"][3] = new
    params[3] = new
    twin.params[3], twin.exp_avgs[3] = torch.ones(7, 3), torch.zeros(7, 3)
    twin.step(_grads(params, seed=1))
    opt.step()
    twin.assert_same(opt, params)
    assert len(decisions) == 2


def test_load_state_dict_decides_again_with_the_loaded_state(decisions: list[int]) -> None:
    params = _params()
    opt, twin = Lion(params, **HYPER), Twin(params)
    for step in range(2):
        twin.step(_grads(params, seed=step))
        opt.step()
    saved = opt.state_dict()
    other = Lion(_params(seed=9), **HYPER)
    for p in other.param_groups[0]["params"]:
        p.grad = torch.ones_like(p)
    other.step()  # other momenta
    opt.load_state_dict(other.state_dict())
    twin.exp_avgs = [other.state[p]["exp_avg"].clone() for p in other.param_groups[0]["params"]]
    twin.step(_grads(params, seed=5))
    opt.step()
    twin.assert_same(opt, params)
    assert len(decisions) == 3  # the first step, the step after loading (and other's own first step)
    opt.load_state_dict(saved)  # back: the decision is taken again, not the one of the other state
    assert all(cache._plan is None for cache in opt._dispatch_caches)


def test_add_param_group_gets_a_decision_of_its_own(decisions: list[int]) -> None:
    first, second = _params(seed=1), _params(n=3, shape=(5,), dtype=torch.bfloat16, seed=2)
    opt, twin_first, twin_second = Lion(first, **HYPER), Twin(first), Twin(second)
    twin_first.step(_grads(first, seed=0))
    opt.step()
    opt.add_param_group({"params": second})
    for step in (1, 2, 3):
        twin_first.step(_grads(first, seed=step))
        twin_second.step(_grads(second, seed=10 + step))
        opt.step()
        twin_first.assert_same(opt, first)
        twin_second.assert_same(opt, second)
    assert len(decisions) == 2  # one per group


def test_a_deepcopy_or_pickle_does_not_share_the_decision() -> None:
    import copy

    params = _params()
    opt = Lion(params, **HYPER)
    _grads(params, seed=0)
    opt.step()
    assert opt._dispatch_caches[0][0]._plan is not None
    clone = copy.deepcopy(opt)
    assert clone._dispatch_caches == []
    clone_params = clone.param_groups[0]["params"]
    for p in clone_params:
        p.grad = torch.ones_like(p)
    clone.step()  # its own decision, for its own tensors
    assert clone._dispatch_caches[0][0]._plan is not None
    assert clone._dispatch_caches[0][0]._plan is not opt._dispatch_caches[0][0]._plan


def test_states_found_by_position_are_the_ones_a_lookup_finds() -> None:
    """A step takes each group's states from the state dict's order when its keys there are the group's params.

    Two groups, a parameter whose first gradient comes late (its state lands after the other group's, so the order
    no longer matches and the step looks states up), a state dict replaced by hand: the bits stay the reference's.
    """
    first, second = _params(n=4, seed=1), _params(n=3, seed=2)
    opt, twin_first, twin_second = Lion([{"params": first}, {"params": second}], **HYPER), Twin(first), Twin(second)
    for step in range(5):
        grads_first: list[Tensor | None] = list(_grads(first, seed=step))
        if step < 2:  # the last parameter of the first group has no gradient yet
            first[-1].grad = None
            grads_first[-1] = None
        if step == 3:  # a new state dict for one parameter, with another momentum: the step must use it
            momentum = torch.full_like(second[1], 0.25)
            opt.state[second[1]] = {"exp_avg": momentum.clone()}
            twin_second.exp_avgs[1] = momentum
        twin_first.step(grads_first)
        twin_second.step(list(_grads(second, seed=10 + step)))
        opt.step()
        twin_first.assert_same(opt, first)
        twin_second.assert_same(opt, second)


@pytest.mark.parametrize("fused", [None, True], ids=["default", "fused"])
def test_a_momentum_moved_to_other_memory_decides_again(decisions: list[int], fused: bool | None) -> None:
    """The momenta are re-read only by pointer: ``.data = ...`` on one must reach the kernel, not the old memory."""
    params = _params()
    opt, twin = Lion(params, **HYPER, fused=fused), Twin(params)
    twin.step(_grads(params, seed=0))
    opt.step()
    moved = torch.full_like(params[2], 0.25)
    opt.state[params[2]]["exp_avg"].data = moved.clone()  # same tensor object, new storage
    twin.exp_avgs[2] = moved
    for step in (1, 2):
        twin.step(_grads(params, seed=step))
        opt.step()
        twin.assert_same(opt, params)
    assert len(decisions) == 2


def test_changed_group_options_route_the_kept_tensors_anew(decisions: list[int]) -> None:
    """momentum_dtype and kahan_sum set between steps take effect although the tensors are the same objects."""
    params = _params()
    opt, twin = Lion(params, **HYPER), Twin(params)
    twin.step(_grads(params, seed=0))
    opt.step()
    opt.param_groups[0]["momentum_dtype"] = torch.bfloat16  # the momenta are converted, the kernel is bf16's
    twin.exp_avgs = [m.to(torch.bfloat16) for m in twin.exp_avgs]
    for step in (1, 2):
        twin.step(_grads(params, seed=step))
        opt.step()
        twin.assert_same(opt, params)
    assert all(opt.state[p]["exp_avg"].dtype == torch.bfloat16 for p in params)
    assert len(decisions) == 2

    low = _params(dtype=torch.bfloat16, seed=3)
    opt, twin = Lion(low, **HYPER), Twin(low)  # bf16: compensated by default
    twin.step(_grads(low, seed=0))
    opt.step()
    assert all("kahan_comp" in opt.state[p] for p in low)
    opt.param_groups[0]["kahan_sum"] = False  # plain from now on, the compensations dropped
    twin.comps = [None] * len(low)
    for step in (1, 2):
        twin.step(_grads(low, seed=step))
        opt.step()
        twin.assert_same(opt, low)
    assert not any("kahan_comp" in opt.state[p] for p in low)
    assert len(decisions) == 4


def test_a_claim_counts_for_one_step_whichever_kernel_runs() -> None:
    """A claim the optimizer made for a step whose group then ran the foreach kernel must not carry into a later step
    (that step's lists would go to the C kernel with their identity unchecked)."""
    params = _params()
    opt = Lion(params, **HYPER)
    _grads(params, seed=0)
    opt.step()  # the C kernel: a decision is kept
    plain = opt._dispatch_caches[0][0]
    opt.param_groups[0]["foreach"] = True
    _grads(params, seed=1)
    opt.step()  # claimed by the optimizer, run by the foreach kernel
    assert plain._plan is not None and plain._claimed is False
