from pathlib import Path

import pytest
import torch

from noether_optim.demo import CONFIG_DIR
from noether_optim.demo.burgers import make_burgers_data
from noether_optim.demo.training import relative_l2, train_surrogate

LION = CONFIG_DIR / "burgers_lion.yaml"


@pytest.fixture(scope="module")
def data():  # type: ignore[no-untyped-def]
    return make_burgers_data(num_train=64, num_val=16, seed=3)


def test_relative_l2() -> None:
    target = torch.tensor([[3.0, 4.0], [1.0, 0.0]])
    prediction = torch.tensor([[3.0, 4.0], [0.0, 0.0]])
    assert relative_l2(prediction, target).item() == pytest.approx(0.5)


def test_training_reduces_the_error_and_follows_the_schedules(data) -> None:  # type: ignore[no-untyped-def]
    history, optimizer = train_surrogate(LION, data, name="Lion", epochs=4, batch_size=16)
    assert len(history.train_loss) == len(history.lr) == len(history.weight_decay) == 16
    assert len(history.val_error) == 4
    assert history.val_error[-1] < 0.8 * history.val_error[0]
    peak = max(history.lr)
    assert peak == pytest.approx(5e-4, rel=1e-6)  # max_value defaults to the config's lr
    assert history.lr[-1] < 0.01 * peak  # cosine decay to end_value
    assert history.weight_decay[0] < history.weight_decay[-1] == pytest.approx(0.2)
    names = [group["name"] for group in optimizer.torch_optim.param_groups]
    assert names == ["weight_decay=0", "default", "lr_scale=5.0e-01"]


class _CrashError(Exception):
    pass


def test_resume_after_a_crash_continues_exactly_like_an_uninterrupted_run(data, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    straight, _ = train_surrogate(LION, data, name="Lion", epochs=3, batch_size=16)

    def crash_in_second_epoch(history, update, total):  # type: ignore[no-untyped-def]
        if update == 6:  # 4 updates per epoch: the checkpoint holds epoch 1, two updates of epoch 2 are lost
            raise _CrashError

    checkpoint = tmp_path / "lion.pt"
    with pytest.raises(_CrashError):
        train_surrogate(
            LION,
            data,
            name="Lion",
            epochs=3,
            batch_size=16,
            checkpoint_path=checkpoint,
            on_update=crash_in_second_epoch,
        )
    assert torch.load(checkpoint, weights_only=True)["epoch"] == 1
    resumed, _ = train_surrogate(
        LION, data, name="Lion", epochs=3, batch_size=16, checkpoint_path=checkpoint, resume=True
    )
    assert resumed.train_loss == straight.train_loss  # bit-identical, not approximately equal
    assert resumed.lr == straight.lr and resumed.weight_decay == straight.weight_decay
    assert resumed.val_error == straight.val_error
