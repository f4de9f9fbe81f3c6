"""Lion on DTensors in this process (a 1-rank gloo group): the smallest reproductions of the FSDP2 scenarios.

A 1-rank mesh shards nothing, so every result must equal Lion on the plain tensors bit for bit.
"""

from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
from torch.distributed.device_mesh import DeviceMesh, init_device_mesh
from torch.distributed.tensor import DTensor, Shard, distribute_tensor

from noether.core.optimizer import Lion

pytestmark = pytest.mark.distributed


@pytest.fixture
def mesh(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[DeviceMesh]:
    monkeypatch.setenv("GLOO_SOCKET_IFNAME", "lo")
    dist.init_process_group("gloo", init_method=f"file://{tmp_path / 'rdzv'}", rank=0, world_size=1)
    try:
        yield init_device_mesh("cpu", (1,))
    finally:
        dist.destroy_process_group()


def plain_and_dtensor_params(mesh: DeviceMesh) -> tuple[list[torch.nn.Parameter], list[torch.nn.Parameter]]:
    generator = torch.Generator().manual_seed(0)
    values = [(torch.randn(4, 3, generator=generator), torch.randn(4, 3, generator=generator)) for _ in range(2)]
    plain, sharded = [], []
    for value, grad in values:
        p = torch.nn.Parameter(value.clone())
        p.grad = grad.clone()
        plain.append(p)
        d = torch.nn.Parameter(distribute_tensor(value.clone(), mesh, [Shard(0)]))
        d.grad = distribute_tensor(grad.clone(), mesh, [Shard(0)])
        sharded.append(d)
    return plain, sharded


@pytest.mark.parametrize("caution", [False, True])
@pytest.mark.parametrize("foreach", [False, True])
def test_steps_on_dtensors_equal_steps_on_plain_tensors(mesh: DeviceMesh, foreach: bool, caution: bool) -> None:
    plain, sharded = plain_and_dtensor_params(mesh)
    for params in (plain, sharded):
        Lion(params, lr=0.1, weight_decay=0.1, caution=caution, foreach=foreach).step()
    for p, d in zip(plain, sharded, strict=True):
        assert isinstance(d, DTensor)
        assert torch.equal(d.full_tensor(), p.detach())


def test_state_with_dtensors_loads_as_a_copy(mesh: DeviceMesh) -> None:
    # set_optimizer_state_dict (DCP) hands Lion.load_state_dict DTensor state on FSDP2 models.
    _, sharded = plain_and_dtensor_params(mesh)
    source = Lion(sharded, lr=0.1)
    source.step()
    _, fresh = plain_and_dtensor_params(mesh)
    target = Lion(fresh, lr=0.1)
    target.load_state_dict(source.state_dict())
    for p, q in zip(sharded, fresh, strict=True):
        loaded, saved = target.state[q]["exp_avg"], source.state[p]["exp_avg"]
        assert isinstance(loaded, DTensor)
        assert torch.equal(loaded.full_tensor(), saved.full_tensor())
        saved.to_local().add_(1.0)  # the source keeps training: the loaded state must not follow
        assert not torch.equal(loaded.full_tensor(), saved.full_tensor())
