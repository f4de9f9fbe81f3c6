from pathlib import Path
from types import SimpleNamespace

import pytest

from noether_optim.demo import CONFIG_DIR, run
from noether_optim.demo.run import run_demo

LION = CONFIG_DIR / "burgers_lion.yaml"


def test_run_demo_writes_png_and_checkpoints_and_resumes(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
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
    capsys.readouterr()
    outcomes: list[str] = []
    monkeypatch.setattr(run, "plot_runs", lambda runs, path, outcome: outcomes.append(outcome) or path)
    assert run_demo(SimpleNamespace(**{**vars(args), "resume": True})) == 0
    out = capsys.readouterr().out
    assert out.count("already holds all 1 epochs, nothing left to train") == 2
    assert outcomes[0].startswith("Lion beat AdamW") or outcomes[0].startswith("Lion did NOT beat AdamW")
