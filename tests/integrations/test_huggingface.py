"""Hugging Face ``Trainer`` with ``optimizers=(wrapper, wrapper.lr_scheduler())``: logged lr and exact resume."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch

transformers = pytest.importorskip("transformers")
pytest.importorskip("accelerate")

from noether.core.factory import OptimizerFactory  # noqa: E402
from noether.core.optimizer import OptimizerWrapper  # noqa: E402
from noether.core.schemas import OptimizerConfig  # noqa: E402

STEPS = 12
CONFIG = OptimizerConfig(
    kind="torch.optim.AdamW",
    lr=1e-3,
    weight_decay=0.01,
    clip_grad_norm=1.0,  # the wrapper clips; the Trainer's own clipping is off (max_grad_norm=0)
    schedule_config={"kind": "noether.core.schedules.LinearWarmupCosineDecaySchedule", "warmup_steps": 3},
)


def tiny_gpt2() -> Any:
    torch.manual_seed(0)
    config = transformers.GPT2Config(vocab_size=32, n_positions=16, n_embd=16, n_layer=1, n_head=2)
    return transformers.GPT2LMHeadModel(config)


def dataset() -> list[dict[str, torch.Tensor]]:
    gen = torch.Generator().manual_seed(0)
    ids = torch.randint(0, 32, (STEPS * 4, 16), generator=gen)
    return [{"input_ids": row, "labels": row} for row in ids]


def run(tmp_path: Path, resume_from: Path | None = None) -> tuple[Any, Any]:
    model = tiny_gpt2()
    if resume_from is not None:
        with torch.no_grad():
            for param in model.parameters():
                param.add_(1.0)  # only a real load can match
    wrapper: OptimizerWrapper = OptimizerFactory().create(CONFIG)(model)
    args = transformers.TrainingArguments(
        output_dir=str(tmp_path),
        max_steps=STEPS,
        per_device_train_batch_size=4,
        logging_steps=1,
        save_strategy="steps",
        save_steps=6,
        report_to=[],
        use_cpu=True,
        max_grad_norm=0.0,
        seed=0,
        dataloader_num_workers=0,
        disable_tqdm=True,
    )
    trainer = transformers.Trainer(
        model=model,
        args=args,
        train_dataset=dataset(),
        optimizers=(wrapper, wrapper.lr_scheduler(total_steps=STEPS)),
    )
    trainer.train(resume_from_checkpoint=None if resume_from is None else str(resume_from))
    return model, trainer


@pytest.mark.filterwarnings("ignore::UserWarning")
@pytest.mark.filterwarnings("ignore::FutureWarning")
def test_trainer_logs_the_schedule_and_resumes_bit_identically(tmp_path: Path) -> None:
    straight, trainer = run(tmp_path / "straight")
    schedule = trainer.optimizer.optimizer.schedule.schedule  # accelerate wraps the wrapper
    logged = {entry["step"]: entry["learning_rate"] for entry in trainer.state.log_history if "learning_rate" in entry}
    assert logged, "the Trainer logged no learning rate"
    # Logged at step s (counted from 1): the lr that update s used, the schedule's value at its 0-based index s - 1.
    assert sorted(logged) == list(range(1, STEPS + 1))
    for step, lr in logged.items():
        assert lr == schedule.get_value(step - 1, STEPS), step

    resumed, _ = run(tmp_path / "resumed", resume_from=tmp_path / "straight" / "checkpoint-6")
    for (name, a), b in zip(straight.named_parameters(), resumed.parameters(), strict=True):
        assert torch.equal(a, b), name
