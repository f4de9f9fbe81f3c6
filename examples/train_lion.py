"""Train a small MLP regressor with Lion on a synthetic task (a few seconds on a CPU, deterministic).

Run: ``python examples/train_lion.py`` (in a checkout, without installing: ``PYTHONPATH=src`` in front).
"""

import torch

from noether.core.optimizer import Lion


def main(steps: int = 300, seed: int = 0) -> float:
    torch.manual_seed(seed)
    # Target: a fixed random two-layer network plus noise; the student must recover it.
    teacher = torch.nn.Sequential(torch.nn.Linear(16, 64), torch.nn.Tanh(), torch.nn.Linear(64, 1))
    x = torch.randn(2048, 16)
    with torch.no_grad():
        y = teacher(x) + 0.01 * torch.randn(2048, 1)

    model = torch.nn.Sequential(torch.nn.Linear(16, 128), torch.nn.GELU(), torch.nn.Linear(128, 1))
    # Lion takes sign steps of size lr, so it wants a ~3-10x smaller lr than AdamW (and a larger weight decay).
    optimizer = Lion(model.parameters(), lr=3e-4, betas=(0.9, 0.99), weight_decay=0.1)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=steps)

    loss = torch.tensor(float("nan"))
    for step in range(steps + 1):
        batch = torch.randint(0, x.shape[0], (256,))
        loss = torch.nn.functional.mse_loss(model(x[batch]), y[batch])
        if step % 50 == 0:
            with torch.no_grad():
                full = torch.nn.functional.mse_loss(model(x), y).item()
            print(f"step {step:4d}  lr {schedule.get_last_lr()[0]:.2e}  train loss {full:.5f}")
        if step == steps:
            break
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        schedule.step()
    with torch.no_grad():
        final = torch.nn.functional.mse_loss(model(x), y).item()
    print(f"final train loss {final:.5f}")
    return final


if __name__ == "__main__":
    main()
