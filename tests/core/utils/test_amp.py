import torch

from noether.core.utils.torch import NoopContext, NoopGradScaler


def test_noop_grad_scaler_is_a_disabled_grad_scaler_that_steps() -> None:
    scaler = NoopGradScaler()
    assert isinstance(scaler, torch.amp.GradScaler)
    assert not scaler.is_enabled()
    p = torch.nn.Parameter(torch.ones(3))
    p.grad = torch.full((3,), 2.0)
    opt = torch.optim.SGD([p], lr=0.5)
    loss = torch.tensor(3.0)
    assert scaler.scale(loss) is loss
    scaler.unscale_(opt)
    assert torch.equal(p.grad, torch.full((3,), 2.0))  # unscale_ must not touch grads
    scaler.step(opt)
    scaler.update()
    assert torch.equal(p.detach(), torch.zeros(3))


def test_noop_context() -> None:
    with NoopContext() as value:
        assert value is None
