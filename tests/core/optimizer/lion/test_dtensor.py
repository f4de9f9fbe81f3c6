"""Lion on DTensor parameters (a one-process gloo group): same bits as plain tensors, never mixed in foreach lists."""

import pytest
import torch
import torch.distributed as dist

from noether.core.optimizer import Lion

pytestmark = pytest.mark.distributed


@pytest.fixture
def mesh(tmp_path):
    if not dist.is_available() or not dist.is_gloo_available():
        pytest.skip("torch.distributed with gloo is not available")
    from torch.distributed.tensor import DeviceMesh

    dist.init_process_group("gloo", init_method=f"file://{tmp_path / 'store'}", rank=0, world_size=1)
    try:
        yield DeviceMesh("cpu", [0])
    finally:
        dist.destroy_process_group()


@pytest.mark.parametrize("foreach", [False, True])
@pytest.mark.parametrize("caution", [False, True])
def test_dtensor_params_mixed_with_plain_match_plain_run(mesh, foreach, caution) -> None:
    from torch.distributed.tensor import Shard, distribute_tensor

    gen = torch.Generator().manual_seed(0)
    base = [torch.randn(10, 4, generator=gen), torch.randn(7, generator=gen), torch.randn(3, 3, generator=gen)]
    # Two DTensor params and one plain param in the same group.
    mixed = [
        torch.nn.Parameter(distribute_tensor(base[0].clone(), mesh, [Shard(0)])),
        torch.nn.Parameter(base[1].clone()),
        torch.nn.Parameter(distribute_tensor(base[2].clone(), mesh, [Shard(0)])),
    ]
    plain = [torch.nn.Parameter(b.clone()) for b in base]
    kw = {"lr": 0.1, "weight_decay": 0.1, "caution": caution}
    opt_mixed, opt_plain = Lion(mixed, foreach=foreach, **kw), Lion(plain, foreach=False, **kw)
    for _ in range(3):
        grads = [torch.randn(b.shape, generator=gen) for b in base]
        for p, g in zip(mixed, grads, strict=True):
            p.grad = g if type(p.data) is torch.Tensor else distribute_tensor(g, mesh, [Shard(0)])
        for p, g in zip(plain, grads, strict=True):
            p.grad = g
        opt_mixed.step()
        opt_plain.step()
    for a, b in zip(mixed, plain, strict=True):
        full = a.full_tensor() if hasattr(a, "full_tensor") else a
        assert torch.equal(full.detach(), b.detach())


def test_state_with_dtensors_loads_as_a_copy(mesh) -> None:
    # DCP's set_optimizer_state_dict hands load_state_dict DTensor state on FSDP2 models; a DTensor has no storage
    # of its own, so the no-aliasing check must look at its local shard.
    from torch.distributed.tensor import DTensor, Shard, distribute_tensor

    gen = torch.Generator().manual_seed(0)
    base = [torch.randn(4, 3, generator=gen), torch.randn(5, generator=gen)]

    def sharded() -> list[torch.nn.Parameter]:
        params = [torch.nn.Parameter(distribute_tensor(b.clone(), mesh, [Shard(0)])) for b in base]
        for p in params:
            p.grad = distribute_tensor(torch.randn(p.shape, generator=gen), mesh, [Shard(0)])
        return params

    source_params, target_params = sharded(), sharded()
    source = Lion(source_params, lr=0.1)
    source.step()
    target = Lion(target_params, lr=0.1)
    target.load_state_dict(source.state_dict())
    for p, q in zip(source_params, target_params, strict=True):
        loaded, saved = target.state[q]["exp_avg"], source.state[p]["exp_avg"]
        assert isinstance(loaded, DTensor)
        assert torch.equal(loaded.full_tensor(), saved.full_tensor())
        saved.to_local().add_(1.0)  # the source keeps training: the loaded state must not follow
        assert not torch.equal(loaded.full_tensor(), saved.full_tensor())


@pytest.mark.parametrize("foreach", [False, True])
@pytest.mark.parametrize(("dtype", "options"), [(torch.bfloat16, {}), (torch.float32, {"momentum_dtype": "bfloat16"})])
def test_low_precision_state_is_sharded_like_the_params(mesh, foreach, dtype, options) -> None:
    # Kahan compensation (bf16 params) and a bf16 momentum (fp32 params) on DTensors: the same bits as plain tensors,
    # and every state tensor is a DTensor with the parameter's placements.
    from torch.distributed.tensor import DTensor, Shard, distribute_tensor

    gen = torch.Generator().manual_seed(1)
    base = [torch.randn(10, 4, generator=gen).to(dtype), torch.randn(6, generator=gen).to(dtype)]
    sharded = [torch.nn.Parameter(distribute_tensor(b.clone(), mesh, [Shard(0)])) for b in base]
    plain = [torch.nn.Parameter(b.clone()) for b in base]
    kw = {"lr": 1e-3, "weight_decay": 0.1, "caution": True, **options}
    opt_sharded, opt_plain = Lion(sharded, foreach=foreach, **kw), Lion(plain, foreach=False, **kw)
    for _ in range(3):
        grads = [torch.randn(b.shape, generator=gen).to(dtype) for b in base]
        for p, q, g in zip(sharded, plain, grads, strict=True):
            p.grad, q.grad = distribute_tensor(g, mesh, [Shard(0)]), g.clone()
        opt_sharded.step()
        opt_plain.step()
    for p, q in zip(sharded, plain, strict=True):
        assert torch.equal(p.full_tensor().detach(), q.detach())
        state, want = opt_sharded.state[p], opt_plain.state[q]
        assert sorted(state) == sorted(want)
        for key, value in state.items():
            assert isinstance(value, DTensor) and value.placements == p.placements
            assert value.dtype == want[key].dtype and torch.equal(value.full_tensor(), want[key]), key
