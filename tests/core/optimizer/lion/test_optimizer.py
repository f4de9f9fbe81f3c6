"""The Lion optimizer class: path equality, state dicts, torch.compile, pickling and every validation error."""

import copy
import io
import math
import pickle
import re

import pytest
import torch

from noether.core.optimizer import Lion
from noether.core.optimizer.lion import foreach_kernel, lion


def make_model(seed: int = 0) -> torch.nn.Module:
    torch.manual_seed(seed)
    return torch.nn.Sequential(torch.nn.Linear(6, 40), torch.nn.Tanh(), torch.nn.Linear(40, 3))


def set_grads(model: torch.nn.Module, step: int, skip: str | None = None) -> None:
    gen = torch.Generator().manual_seed(100 + step)
    for name, p in model.named_parameters():
        p.grad = None if name == skip else torch.randn(p.shape, generator=gen)


def params_and_state(model: torch.nn.Module, opt: torch.optim.Optimizer) -> list[torch.Tensor]:
    out = []
    for p in model.parameters():
        out.append(p.detach().clone())
        if p in opt.state:
            out.append(opt.state[p]["exp_avg"].clone())
    return out


@pytest.mark.parametrize("caution", [False, True])
def test_foreach_and_single_bit_identical_over_seven_steps_with_a_missing_grad(caution, monkeypatch) -> None:
    # A small block forces the blocked path to cut the 40x6 and 3x40 weights into several ragged blocks.
    monkeypatch.setattr(foreach_kernel, "_CPU_BLOCK_NUMEL", 37)
    models = [make_model(), make_model()]
    opts = [
        Lion(m.parameters(), lr=0.01, weight_decay=0.1, caution=caution, foreach=f)
        for m, f in zip(models, (False, True), strict=True)
    ]
    for step in range(7):
        for model, opt in zip(models, opts, strict=True):
            set_grads(model, step, skip="2.bias" if step in (0, 3) else None)
            opt.step()
        a, b = (params_and_state(m, o) for m, o in zip(models, opts, strict=True))
        assert len(a) == len(b)
        assert all(torch.equal(x, y) for x, y in zip(a, b, strict=True)), f"step {step}"
    # The param without a grad at step 0 had no state until its first grad.
    assert "exp_avg" in opts[0].state[models[0][2].bias]


def test_param_without_grad_is_untouched_and_has_no_state() -> None:
    model = make_model()
    opt = Lion(model.parameters(), lr=0.1, weight_decay=0.5)
    before = model[2].bias.detach().clone()
    set_grads(model, 0, skip="2.bias")
    opt.step()
    assert torch.equal(model[2].bias, before)
    assert model[2].bias not in opt.state
    assert set(opt.state[model[0].weight]) == {"exp_avg"}  # no step counter


def test_closure_runs_with_grad_and_its_loss_is_returned() -> None:
    model = make_model()
    opt = Lion(model.parameters(), lr=0.01)
    x = torch.randn(8, 6)

    def closure() -> torch.Tensor:
        opt.zero_grad()
        loss = model(x).square().mean()
        loss.backward()
        return loss

    loss = opt.step(closure)
    assert isinstance(loss, torch.Tensor) and loss.requires_grad
    assert opt.step() is None


def test_exp_avg_preserves_memory_format_and_dtype() -> None:
    p = torch.nn.Parameter(torch.randn(2, 3, 4, 5).to(memory_format=torch.channels_last).to(torch.bfloat16))
    opt = Lion([p], lr=0.01)
    p.grad = torch.randn_like(p)
    opt.step()
    m = opt.state[p]["exp_avg"]
    assert m.dtype == torch.bfloat16 and m.is_contiguous(memory_format=torch.channels_last)


def test_hyperparameters_are_read_at_every_step() -> None:
    p = torch.nn.Parameter(torch.zeros(3))
    opt = Lion([p], lr=0.1)
    p.grad = torch.ones(3)
    opt.step()
    opt.param_groups[0]["lr"] = 0.5
    opt.step()
    assert p.tolist() == pytest.approx([-0.6] * 3)


# --- state dicts ------------------------------------------------------------------------------------------------------


def trained(seed: int = 0, steps: int = 3, **kw):
    model = make_model(seed)
    opt = Lion(model.parameters(), lr=0.01, weight_decay=0.1, **kw)
    for step in range(steps):
        set_grads(model, step)
        opt.step()
    return model, opt


def continue_training(model, opt, steps=3) -> list[torch.Tensor]:
    for step in range(10, 10 + steps):
        set_grads(model, step)
        opt.step()
    return params_and_state(model, opt)


def test_deepcopy_state_dict_round_trip_continues_identically() -> None:
    model, opt = trained(caution=True)
    model2 = copy.deepcopy(model)
    opt2 = Lion(model2.parameters(), lr=0.5)  # hyperparameters come from the state dict
    opt2.load_state_dict(copy.deepcopy(opt.state_dict()))
    assert opt2.param_groups[0]["lr"] == 0.01 and opt2.param_groups[0]["caution"] is True
    a, b = continue_training(model, opt), continue_training(model2, opt2)
    assert all(torch.equal(x, y) for x, y in zip(a, b, strict=True))


def test_torch_save_and_weights_only_load_round_trip() -> None:
    model, opt = trained()
    buffer = io.BytesIO()
    torch.save(opt.state_dict(), buffer)
    buffer.seek(0)
    loaded = torch.load(buffer, weights_only=True)
    model2 = copy.deepcopy(model)
    opt2 = Lion(model2.parameters(), lr=1.0)
    opt2.load_state_dict(loaded)
    a, b = continue_training(model, opt), continue_training(model2, opt2)
    assert all(torch.equal(x, y) for x, y in zip(a, b, strict=True))


def test_tensor_lr_survives_weights_only_load() -> None:
    p = torch.nn.Parameter(torch.zeros(2))
    opt = Lion([p], lr=torch.tensor(0.25))
    buffer = io.BytesIO()
    torch.save(opt.state_dict(), buffer)
    buffer.seek(0)
    opt2 = Lion([torch.nn.Parameter(torch.zeros(2))], lr=0.1)
    opt2.load_state_dict(torch.load(buffer, weights_only=True))
    assert torch.equal(opt2.param_groups[0]["lr"], torch.tensor(0.25))


def test_load_never_aliases_the_given_state_dict() -> None:
    model, opt = trained()
    sd = opt.state_dict()
    model2 = copy.deepcopy(model)
    opt2 = Lion(model2.parameters(), lr=0.01)
    opt2.load_state_dict(sd)
    given = [s["exp_avg"] for s in sd["state"].values()]
    snapshot = [t.clone() for t in given]
    continue_training(model2, opt2)
    assert all(torch.equal(t, s) for t, s in zip(given, snapshot, strict=True)), "stepping changed the given dict"
    for t in given:
        t.fill_(123.0)
    assert all(not torch.equal(s["exp_avg"], torch.full_like(s["exp_avg"], 123.0)) for s in opt2.state.values())


def test_old_state_dict_without_new_keys_loads_with_defaults() -> None:
    model, opt = trained()
    sd = copy.deepcopy(opt.state_dict())
    for group in sd["param_groups"]:
        for key in ("caution", "maximize", "foreach", "fused"):
            del group[key]
    opt2 = Lion(copy.deepcopy(model).parameters(), lr=0.01, caution=True, maximize=True, foreach=True)
    opt2.load_state_dict(sd)
    group = opt2.param_groups[0]
    assert (group["caution"], group["maximize"], group["foreach"], group["fused"]) == (False, False, None, None)
    set_grads(model, 0)
    opt2.step()


def test_setstate_fills_defaults_on_unpickling_an_old_optimizer() -> None:
    _, opt = trained()
    state = opt.__getstate__()
    for group in state["param_groups"]:
        for key in ("caution", "maximize", "foreach", "fused"):
            del group[key]
    fresh = Lion.__new__(Lion)
    fresh.__setstate__(state)
    assert fresh.param_groups[0]["caution"] is False and fresh.param_groups[0]["foreach"] is None


def test_load_rejects_mismatched_exp_avg_shape_before_changing_anything() -> None:
    _, opt = trained()
    sd = copy.deepcopy(opt.state_dict())
    sd["state"][0]["exp_avg"] = torch.zeros(7)
    model2, opt2 = trained(seed=1)
    before = params_and_state(model2, opt2)
    lr_before = opt2.param_groups[0]["lr"]
    sd["param_groups"][0]["lr"] = 0.77
    with pytest.raises(ValueError, match="exp_avg"):
        opt2.load_state_dict(sd)
    assert all(torch.equal(x, y) for x, y in zip(before, params_and_state(model2, opt2), strict=True))
    assert opt2.param_groups[0]["lr"] == lr_before


@pytest.mark.parametrize("how", ["pickle", "deepcopy"])
def test_pickle_and_deepcopy_of_the_optimizer(how) -> None:
    _, opt = trained(caution=True)
    clone = pickle.loads(pickle.dumps(opt)) if how == "pickle" else copy.deepcopy(opt)
    assert isinstance(clone, Lion)
    assert {k: v for k, v in clone.defaults.items() if k in opt.defaults} == opt.defaults
    assert [g["lr"] for g in clone.param_groups] == [g["lr"] for g in opt.param_groups]
    ours = [s["exp_avg"] for s in opt.state.values()]
    theirs = [s["exp_avg"] for s in clone.state.values()]
    assert all(torch.equal(a, b) and a.data_ptr() != b.data_ptr() for a, b in zip(ours, theirs, strict=True))


# --- torch.compile ----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("foreach", [False, True, None])  # None: eager runs the C kernel, the traced step foreach
def test_compiled_step_matches_eager(foreach) -> None:
    torch._dynamo.reset()
    models = [make_model(), make_model()]
    opts = [Lion(m.parameters(), lr=0.01, weight_decay=0.1, caution=True, foreach=foreach) for m in models]
    compiled_step = torch.compile(opts[1].step, backend="eager")
    for step in range(3):
        for model in models:
            set_grads(model, step)
        opts[0].step()
        compiled_step()
        a, b = (params_and_state(m, o) for m, o in zip(models, opts, strict=True))
        assert all(torch.equal(x, y) for x, y in zip(a, b, strict=True)), f"step {step}"


@pytest.mark.parametrize(("foreach", "caution"), [(True, False), (True, True), (False, True), (None, True)])
def test_tensor_lr_changes_do_not_recompile(foreach, caution) -> None:
    torch._dynamo.reset()
    p = torch.nn.Parameter(torch.zeros(4))
    opt = Lion([p], lr=torch.tensor(0.1), weight_decay=0.1, foreach=foreach, caution=caution)
    step = torch.compile(opt.step, backend="eager")
    p.grad = torch.ones(4)
    step()  # first call compiles
    with torch._dynamo.config.patch(error_on_recompile=True):
        for lr in (0.2, 0.05):
            opt.param_groups[0]["lr"].fill_(lr)
            step()
    # Decay is applied with the current lr: (-0.1 * 0.98 - 0.2) * 0.995 - 0.05.
    assert p.tolist() == pytest.approx([-0.34651] * 4, abs=1e-6)


# --- errors -----------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "name"),
    [
        ({"lr": -0.1}, "lr"),
        ({"lr": math.nan}, "lr"),
        ({"lr": math.inf}, "lr"),
        ({"lr": "0.1"}, "lr"),
        ({"lr": torch.tensor([0.1, 0.2])}, "lr"),
        ({"lr": torch.tensor(-1.0)}, "lr"),
        ({"lr": torch.tensor(1)}, "lr"),
        ({"betas": (0.9,)}, "betas"),
        ({"betas": (0.9, 0.99, 0.5)}, "betas"),
        ({"betas": 0.9}, "betas"),
        ({"betas": (1.0, 0.99)}, "betas[0]"),
        ({"betas": (0.9, -0.01)}, "betas[1]"),
        ({"betas": (0.9, math.nan)}, "betas[1]"),
        ({"betas": ("a", 0.9)}, "betas[0]"),
        ({"weight_decay": -0.1}, "weight_decay"),
        ({"weight_decay": math.inf}, "weight_decay"),
        ({"weight_decay": math.nan}, "weight_decay"),
        ({"weight_decay": None}, "weight_decay"),
        ({"caution": 1}, "caution"),
        ({"maximize": "yes"}, "maximize"),
        ({"foreach": 0}, "foreach"),
        ({"fused": True, "foreach": True}, "foreach and fused"),
    ],
)
def test_constructor_errors_name_the_parameter(kwargs, name) -> None:
    kwargs = {"lr": 0.1, **kwargs}
    with pytest.raises(ValueError, match=re.escape(f"invalid {name}" if "and" not in name else name)) as info:
        Lion([torch.nn.Parameter(torch.zeros(2))], **kwargs)
    assert name.split("[")[0] in str(info.value)


def test_lr_defaults_to_timms_1e_4_and_groups_may_set_their_own() -> None:
    p, q = torch.nn.Parameter(torch.zeros(2)), torch.nn.Parameter(torch.zeros(2))
    assert Lion([p]).param_groups[0]["lr"] == 1e-4
    opt = Lion([{"params": [p], "lr": 0.5}, {"params": [q], "lr": 0.25}])
    assert [g["lr"] for g in opt.param_groups] == [0.5, 0.25]


def test_integer_params_are_rejected() -> None:
    with pytest.raises(ValueError, match=r"params.*int64"):
        Lion([torch.nn.Parameter(torch.zeros(2)), torch.zeros(2, dtype=torch.int64)], lr=0.1)


def test_bad_param_group_is_rejected_and_nothing_is_added() -> None:
    a, b = torch.nn.Parameter(torch.zeros(2)), torch.nn.Parameter(torch.zeros(2))
    with pytest.raises(ValueError, match=r"invalid lr \(param group 1\)"):
        Lion([{"params": [a]}, {"params": [b], "lr": -1.0}], lr=0.1)
    opt = Lion([a], lr=0.1)
    with pytest.raises(ValueError, match="invalid betas"):
        opt.add_param_group({"params": [b], "betas": (0.9, 1.5)})
    assert len(opt.param_groups) == 1


def test_sparse_gradient_raises_before_anything_changes() -> None:
    dense = torch.nn.Parameter(torch.ones(3))
    sparse = torch.nn.Parameter(torch.ones(3))
    opt = Lion([{"params": [dense]}, {"params": [sparse]}], lr=0.1)
    dense.grad = torch.ones(3)
    sparse.grad = torch.ones(3).to_sparse()
    with pytest.raises(RuntimeError, match="Lion does not support sparse gradients"):
        opt.step()
    assert torch.equal(dense, torch.ones(3)) and len(opt.state) == 0


def test_invalid_hyperparameter_set_after_construction_raises_in_step_before_changes() -> None:
    a, b = torch.nn.Parameter(torch.ones(3)), torch.nn.Parameter(torch.ones(3))
    opt = Lion([{"params": [a]}, {"params": [b]}], lr=0.1)
    a.grad, b.grad = torch.ones(3), torch.ones(3)
    opt.param_groups[1]["weight_decay"] = -1.0
    with pytest.raises(ValueError, match=r"invalid weight_decay \(param group 1\)"):
        opt.step()
    assert torch.equal(a, torch.ones(3)) and len(opt.state) == 0


def test_functional_errors() -> None:
    args = ([torch.zeros(2)], [torch.ones(2)], [torch.zeros(2)])
    kw = {"beta1": 0.9, "beta2": 0.99, "lr": 0.1, "weight_decay": 0.0, "caution": False}
    with pytest.raises(ValueError, match="foreach and fused"):
        lion(*args, foreach=True, fused=True, **kw)
    with pytest.raises(ValueError, match="same length"):
        lion([torch.zeros(2)], [], [], **kw)
    with pytest.raises(ValueError, match="invalid lr"):
        lion(*args, **{**kw, "lr": -1.0})
    with pytest.raises(ValueError, match="invalid betas"):
        lion(*args, **{**kw, "beta2": 1.0})
    with pytest.raises(ValueError, match="invalid weight_decay"):
        lion(*args, **{**kw, "weight_decay": -1.0})
    with pytest.raises(RuntimeError, match="Lion does not support sparse gradients"):
        lion(args[0], [torch.ones(2).to_sparse()], args[2], **kw)
    assert torch.equal(args[0][0], torch.zeros(2))


def test_named_parameters_are_accepted_and_integer_ones_rejected() -> None:
    model = make_model()
    opt = Lion(model.named_parameters(), lr=0.1)
    set_grads(model, 0)
    opt.step()
    assert len(opt.state) == 4
    with pytest.raises(ValueError, match=r"invalid params.*int32"):
        Lion([("w", torch.nn.Parameter(torch.zeros(2))), ("i", torch.zeros(2, dtype=torch.int32))], lr=0.1)
