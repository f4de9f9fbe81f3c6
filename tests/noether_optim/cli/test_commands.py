"""The command as a user meets it: each case runs ``python -m noether_optim`` in its own process.

The processes are started together by one fixture (each spends most of its time importing torch), and each test
checks one case's exit code and message.
"""

import subprocess
from dataclasses import dataclass

import pytest
import torch

from noether_optim.cli.main import EXIT_BAD_CONFIG, EXIT_BAD_USAGE, EXIT_FAILURE
from noether_optim.demo import CONFIG_DIR
from tests.noether_optim.cli.files import write_files
from tests.noether_optim.command import run_commands

LION = str(CONFIG_DIR / "burgers_lion.yaml")


@dataclass(frozen=True)
class Case:
    args: tuple[str, ...]
    blocks_matplotlib: bool = False


CASES = {
    # 1 and 8: YAML 1.2 floats (1e-8) are numbers; the header names the settings; --names lists each group
    "groups": Case(("groups", "eps.yaml", "--model", "models:build", "--names")),
    # 2: a typo in the subcommand that used to report it differently (the others run in-process, test_main.py)
    "typo_schedule": Case(("schedule", "typo.yaml", "--steps", "10")),
    # 3 and 5: an optimizer-kind typo in the second config stops the demo before the first run, with exit 3
    "demo_optimizer_kind": Case(("demo", "--adamw-config", "loin.yaml", "--out", "out", "--no-plot")),
    # 4: the demo's optional needs, before anything runs
    "demo_without_matplotlib": Case(("demo", "--out", "out"), blocks_matplotlib=True),
    # 6, 7: options in the user's terms
    "epochs_0": Case(("demo", "--epochs", "0")),
    "resume_fewer_epochs": Case(("demo", "--resume", "--epochs", "5", "--out", "trained", "--no-plot")),
    # 12: round steps in the table, and --png writes the file it names
    "schedule_png": Case(("schedule", LION, "--steps", "1000", "--png", "curves.png")),
}


@pytest.fixture(scope="module")
def results(tmp_path_factory: pytest.TempPathFactory) -> dict[str, subprocess.CompletedProcess[str]]:
    workdir = tmp_path_factory.mktemp("commands")
    write_files(workdir)
    (workdir / "trained").mkdir()
    for label in ("lion", "adamw"):  # what --resume reads first: the number of epochs a checkpoint holds
        torch.save({"epoch": 30}, workdir / "trained" / f"{label}.pt")
    blocked = {"PYTHONPATH": str(workdir / "blocked")}
    commands = {name: (case.args, blocked if case.blocks_matplotlib else None) for name, case in CASES.items()}
    return {**run_commands(commands, cwd=workdir), "workdir": workdir}  # type: ignore[dict-item]


def _check(result: subprocess.CompletedProcess[str], code: int, *needles: str) -> str:
    text = result.stdout + result.stderr
    assert result.returncode == code, text
    assert "Traceback" not in text
    for needle in needles:
        assert needle in text, text
    return text


def test_yaml_1_2_floats_and_the_groups_header_and_names(results) -> None:  # type: ignore[no-untyped-def]
    out = _check(results["groups"], 0, "torch.optim.AdamW for Sequential: 2 param groups, 7 tensors").splitlines()
    assert "lr 0.001, weight_decay 0.05, clip_grad_norm 1.0" in out  # 5e-2 read as a number
    assert "schedules: lr LinearWarmupCosineDecaySchedule, weight_decay none" in out
    names = out[out.index("weight_decay=0:") :]
    assert names == ["weight_decay=0:", "  pos_embed", "  0.bias", "  1.weight", "  1.bias", "  2.bias", "default:",
                     "  0.weight", "  2.weight"]  # fmt: skip


def test_a_typo_in_an_optimizer_config_gets_did_you_mean_in_schedule(results) -> None:  # type: ignore[no-untyped-def]
    text = _check(
        results["typo_schedule"], EXIT_BAD_CONFIG, "typo.yaml", "'weight_decya' (did you mean 'weight_decay'?)"
    )
    assert "errors.pydantic.dev" not in text


def test_the_demo_checks_both_configs_before_training(results) -> None:  # type: ignore[no-untyped-def]
    text = _check(
        results["demo_optimizer_kind"],
        EXIT_BAD_CONFIG,
        "loin.yaml: kind 'noether.core.optimizer.Loin'",
        "Did you mean 'noether.core.optimizer.Lion'?",
    )
    assert "param groups" not in text  # the Lion run never started
    assert not (results["workdir"] / "out").exists()


def test_missing_matplotlib_is_reported_before_anything_runs(results) -> None:  # type: ignore[no-untyped-def]
    text = _check(results["demo_without_matplotlib"], EXIT_FAILURE, "matplotlib", "noether-optim[demo]", "--no-plot")
    assert "Burgers" not in text


def test_options_are_checked_in_the_users_terms(results) -> None:  # type: ignore[no-untyped-def]
    _check(results["epochs_0"], EXIT_BAD_USAGE, "--epochs: must be at least 1, got 0")
    text = _check(results["resume_fewer_epochs"], EXIT_BAD_USAGE, "--resume", "30 epochs", "--epochs 5", "--epochs 30")
    assert "TrainingIteration" not in text and "E30_U" not in text


def test_the_schedule_table_shows_round_steps_and_png_is_the_file_named(results) -> None:  # type: ignore[no-untyped-def]
    pytest.importorskip("matplotlib")
    out = _check(results["schedule_png"], 0, "lr (1000 steps)", "weight_decay (1000 steps)")
    steps = [int(line.split()[0]) for line in out.splitlines() if line.strip()[:1].isdigit()]
    assert steps == [0, 100, 200, 300, 400, 500, 600, 700, 800, 900, 999] * 2
    assert sorted(path.name for path in results["workdir"].glob("curves*")) == ["curves.png"]
