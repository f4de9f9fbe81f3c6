"""Lightning: ``configure_optimizers`` returns the wrapper and its ``lr_scheduler``; resume is bit-identical."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch

pl = pytest.importorskip("pytorch_lightning")

from noether.core.factory import OptimizerFactory  # noqa: E402
from noether.core.optimizer import OptimizerWrapper  # noqa: E402
from noether.core.schemas import OptimizerConfig  # noqa: E402
from noether.core.utils.training import UpdateCounter  # noqa: E402

STEPS = 12
CONFIG = OptimizerConfig(
    kind="torch.optim.AdamW",
    lr=1e-2,
    weight_decay=0.05,
    clip_grad_norm=1.0,
    schedule_config={"kind": "noether.core.schedules.LinearWarmupCosineDecaySchedule", "warmup_steps": 3},
)


class TinyModule(pl.LightningModule):  # type: ignore[misc]
    def __init__(self, scheduler: str = "wrapper") -> None:
        super().__init__()
        self.scheduler = scheduler
        torch.manual_seed(0)
        self.net = torch.nn.Sequential(torch.nn.Linear(8, 16), torch.nn.GELU(), torch.nn.Linear(16, 1))
        self.lrs: list[float] = []

    def training_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> torch.Tensor:
        x, y = batch
        self.lrs.append(float(self.optimizers().param_groups[0]["lr"]))
        return torch.nn.functional.mse_loss(self.net(x).float(), y)

    def configure_optimizers(self) -> Any:
        wrapper: OptimizerWrapper = OptimizerFactory().create(CONFIG)(
            self, update_counter=UpdateCounter.from_total_updates(STEPS)
        )
        scheduler: Any = (
            wrapper.lr_scheduler()
            if self.scheduler == "wrapper"
            else torch.optim.lr_scheduler.StepLR(wrapper, step_size=4, gamma=0.1)  # chainable: resumes from the lr
        )
        return {"optimizer": wrapper, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}


def loader() -> torch.utils.data.DataLoader[tuple[torch.Tensor, ...]]:
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(6 * 4, 8, generator=gen)  # 6 batches per epoch: 12 steps are two epochs
    return torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x, x.sum(1, keepdim=True)), batch_size=4)


def trainer(root: Path, precision: str, **kwargs: Any) -> Any:
    return pl.Trainer(
        default_root_dir=root,
        max_steps=STEPS,
        accelerator="cpu",
        devices=1,
        precision=precision,
        logger=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        **kwargs,
    )


@pytest.mark.filterwarnings("ignore::UserWarning")
@pytest.mark.filterwarnings("ignore::DeprecationWarning")
@pytest.mark.parametrize(
    ("precision", "scheduler"), [("32-true", "wrapper"), ("bf16-mixed", "wrapper"), ("32-true", "StepLR")]
)
def test_lightning_fit_and_resume_from_step_6_is_bit_identical(tmp_path: Path, precision: str, scheduler: str) -> None:
    saver = pl.callbacks.ModelCheckpoint(dirpath=tmp_path / "ckpt", every_n_train_steps=6, save_top_k=-1)
    straight = TinyModule(scheduler)
    trainer(tmp_path, precision, callbacks=[saver]).fit(straight, loader())
    checkpoint = next(p for p in (tmp_path / "ckpt").iterdir() if "step=6" in p.name)

    resumed = TinyModule(scheduler)
    with torch.no_grad():
        for param in resumed.parameters():
            param.add_(1.0)  # only a real load can match
    trainer(tmp_path / "resumed", precision, enable_checkpointing=False).fit(resumed, loader(), ckpt_path=checkpoint)

    for (name, a), b in zip(straight.named_parameters(), resumed.parameters(), strict=True):
        assert torch.equal(a, b), name
    # The learning rates the steps used follow the schedule, resumed half included.
    schedule = straight.optimizers().optimizer.schedule.schedule
    if scheduler == "wrapper":
        assert straight.lrs == [schedule.get_value(step, STEPS) for step in range(STEPS)]
    else:
        assert straight.lrs == pytest.approx([1e-2 * 0.1 ** (step // 4) for step in range(STEPS)], rel=1e-12)
    assert resumed.lrs == straight.lrs[6:]
    assert len(straight.lrs) == STEPS
