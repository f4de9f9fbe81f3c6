"""The Quickstart example trains: its loss goes down, deterministically."""

import runpy
from pathlib import Path

EXAMPLE = Path(__file__).parents[2] / "examples" / "train_lion.py"


def test_example_loss_goes_down_and_is_deterministic(capsys) -> None:
    main = runpy.run_path(str(EXAMPLE))["main"]
    first = main(steps=60)
    out = capsys.readouterr().out
    initial = float(out.splitlines()[0].split()[-1])
    assert first < 0.5 * initial
    assert main(steps=60) == first
