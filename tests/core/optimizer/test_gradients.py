import functools
import math
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
import torch.distributed as dist

from noether.core.optimizer import OptimizerWrapper
from noether.core.optimizer.gradients import clip_grads_by_value_, is_dtensor, scale_grads_, total_grad_norm
from noether.core.schemas import OptimizerConfig


def reference_norm(grads: list[torch.Tensor]) -> float:
    return math.sqrt(sum(float(x) ** 2 for g in grads for x in g.reshape(-1).tolist()))


def test_total_norm_over_mixed_dtypes() -> None:
    gen = torch.Generator().manual_seed(0)
    grads = [torch.randn(3, 4, generator=gen), torch.randn(5, generator=gen).double(), torch.randn(2, generator=gen)]
    assert total_grad_norm(grads).item() == pytest.approx(reference_norm(grads), rel=1e-6)
    assert total_grad_norm([]).item() == 0.0


def test_non_finite_gives_non_finite_norm() -> None:
    assert not torch.isfinite(total_grad_norm([torch.ones(2), torch.tensor([float("nan")])]))
    assert not torch.isfinite(total_grad_norm([torch.tensor([float("inf")])]))


def test_value_clip_and_norm_scale() -> None:
    grads = [torch.tensor([3.0, -4.0]), torch.tensor([0.5])]
    clip_grads_by_value_(grads, 1.0)
    assert grads[0].tolist() == [1.0, -1.0] and grads[1].tolist() == [0.5]
    grads = [torch.tensor([3.0, 4.0])]
    scale_grads_(grads, 1.0, total_grad_norm(grads))
    assert grads[0].norm().item() == pytest.approx(1.0, rel=1e-5)
    small = [torch.tensor([0.3, 0.4])]
    scale_grads_(small, 1.0, total_grad_norm(small))
    assert small[0].tolist() == pytest.approx([0.3, 0.4])


@pytest.fixture(scope="module")
def process_group(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    if not dist.is_available():
        pytest.skip("torch.distributed is not available")
    store = Path(tmp_path_factory.mktemp("dist")) / "store"
    dist.init_process_group("gloo", init_method=f"file://{store}", rank=0, world_size=1)
    yield
    dist.destroy_process_group()


def test_clipping_with_mixed_dtensor_and_plain_params(process_group: None) -> None:
    from torch.distributed.device_mesh import init_device_mesh
    from torch.distributed.tensor import Replicate, Shard, distribute_tensor

    mesh = init_device_mesh("cpu", (1,))
    model = torch.nn.Module()
    model.sharded = torch.nn.Parameter(distribute_tensor(torch.ones(4, 2), mesh, [Shard(0)]))
    model.replicated = torch.nn.Parameter(distribute_tensor(torch.ones(3), mesh, [Replicate()]))
    model.plain = torch.nn.Parameter(torch.ones(2, 2))
    grads = {"sharded": torch.full((4, 2), 2.0), "replicated": torch.full((3,), -1.0), "plain": torch.full((2, 2), 3.0)}
    for name, p in model.named_parameters():
        g = grads[name]
        p.grad = distribute_tensor(g.clone(), mesh, p.placements) if is_dtensor(p) else g.clone()
    expected_norm = reference_norm(list(grads.values()))
    wrapper = OptimizerWrapper(
        model, functools.partial(torch.optim.SGD, lr=1.0), OptimizerConfig(clip_grad_norm=1.0, clip_grad_value=5.0)
    )
    wrapper.step()
    assert wrapper.last_grad_norm == pytest.approx(expected_norm, rel=1e-6)
    factor = 1.0 / (expected_norm + 1e-6)
    for name, p in model.named_parameters():
        value = p.full_tensor() if is_dtensor(p) else p.detach()
        torch.testing.assert_close(value, torch.ones_like(value) - factor * grads[name])
