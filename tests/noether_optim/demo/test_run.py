from pathlib import Path
from types import SimpleNamespace

import pytest

from noether_optim.demo import CONFIG_DIR
from noether_optim.demo.run import run_demo

LION = CONFIG_DIR / "burgers_lion.yaml"


def test_run_demo_writes_png_and_checkpoints_and_resumes(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    pytest.importorskip("matplotlib")
    args = SimpleNamespace(
        out=tmp_path,
        seed=0,
        lion_config=LION,
        adamw_config=CONFIG_DIR / "burgers_adamw.yaml",
        no_adamw=False,
        epochs=1,
        batch_size=256,
        resume=False,
        no_plot=False,
        quiet=True,
    )
    assert run_demo(args) == 0
    out = capsys.readouterr().out
    assert (tmp_path / "demo.png").read_bytes()[:4] == b"\x89PNG"
    assert (tmp_path / "lion.pt").exists() and (tmp_path / "adamw.pt").exists()
    assert "weight_decay=0" in out and "lr_scale=5.0e-01" in out  # the group table
    assert ("Lion beat AdamW" in out) != ("Lion did NOT beat AdamW" in out)
