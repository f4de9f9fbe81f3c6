import filecmp
from pathlib import Path

import pytest
import torch

from noether.core.schedules.preview import schedule_values
from noether_optim.cli import main as cli
from tests.noether_optim.cli.files import write_files

REPO = Path(__file__).resolve().parents[3]


def _write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_packaged_demo_configs_equal_the_examples() -> None:
    for name in ("burgers_lion.yaml", "burgers_adamw.yaml"):
        assert filecmp.cmp(cli.CONFIG_DIR / name, REPO / "examples" / "configs" / name, shallow=False), name


def test_help_lists_every_command_and_the_exit_codes(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        cli.main(["--help"])
    assert info.value.code == 0
    out = capsys.readouterr().out
    for word in ("demo", "schedule", "groups", "exit codes"):
        assert word in out


def test_schedule_prints_the_curve_of_a_schedule_config(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = _write(
        tmp_path, "s.yaml", "kind: noether.core.schedules.LinearWarmupCosineDecaySchedule\nwarmup_steps: 2\n"
    )
    assert cli.main(["schedule", str(config), "--steps", "11", "--max-value", "1.0", "--rows", "11"]) == 0
    out = capsys.readouterr().out
    expected = schedule_values(
        {"kind": "noether.core.schedules.LinearWarmupCosineDecaySchedule", "warmup_steps": 2}, 11, 1.0
    )
    rows = [line.split() for line in out.splitlines() if line.strip()[:1].isdigit()]
    assert [int(r[0]) for r in rows] == list(range(11))
    assert [float(r[1]) for r in rows] == pytest.approx(expected.tolist(), rel=1e-5)


def test_schedule_of_an_optimizer_config_uses_lr_and_weight_decay(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli.main(["schedule", str(cli.CONFIG_DIR / "burgers_lion.yaml"), "--steps", "100", "--rows", "2"]) == 0
    out = capsys.readouterr().out
    assert "lr (100 steps)" in out and "weight_decay (100 steps)" in out
    last_values = [float(line.split()[1]) for line in out.splitlines() if line.strip().startswith("99 ")]
    assert last_values == pytest.approx([1e-6, 0.2])  # lr decays to end_value; wd rises to weight_decay


def test_schedule_png(tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    config = _write(tmp_path, "s.yaml", "kind: noether.core.schedules.ConstantSchedule\nvalue: 0.5\n")
    png = tmp_path / "curve.png"
    assert cli.main(["schedule", str(config), "--steps", "5", "--png", str(png)]) == 0
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_bad_config_names_the_yaml_key_and_exits_3(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = _write(
        tmp_path,
        "bad.yaml",
        "kind: torch.optim.AdamW\nlr: 1.0e-3\nclip_grad_norm: -1\nschedule_config:\n"
        "  kind: noether.core.schedules.LinearWarmupCosineDecaySchedule\n  warmup_percnt: 0.1\n",
    )
    assert cli.main(["schedule", str(config), "--steps", "10"]) == cli.EXIT_BAD_CONFIG
    err = capsys.readouterr().err
    assert "clip_grad_norm" in err and "schedule_config" in err and "warmup_percnt" in err
    assert "LinearWarmupCosineDecaySchedule." not in err  # the union tag is not a key the user wrote


def test_missing_file_and_bad_yaml_exit_3(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["schedule", str(tmp_path / "nope.yaml"), "--steps", "3"]) == cli.EXIT_BAD_CONFIG
    assert "nope.yaml" in capsys.readouterr().err
    broken = _write(tmp_path, "broken.yaml", "kind: [unclosed\n")
    assert cli.main(["schedule", str(broken), "--steps", "3"]) == cli.EXIT_BAD_CONFIG
    assert "not valid YAML" in capsys.readouterr().err


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    import noether

    with pytest.raises(SystemExit) as info:
        cli.main(["--version"])
    assert info.value.code == 0
    assert capsys.readouterr().out.strip() == f"noether-optim {noether.__version__}"


def test_bad_usage_exits_2() -> None:
    with pytest.raises(SystemExit) as info:
        cli.main(["schedule"])
    assert info.value.code == 2


def build_model() -> torch.nn.Module:
    return torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.LayerNorm(8), torch.nn.Linear(8, 1))


def test_groups_with_a_modifier_matching_no_parameter_exits_1(capsys: pytest.CaptureFixture[str]) -> None:
    # The demo config's modifiers name pos_embed and head.weight, which this model does not have.
    code = cli.main(["groups", str(cli.CONFIG_DIR / "burgers_adamw.yaml"), "--model", f"{__name__}:build_model"])
    assert code == cli.EXIT_FAILURE
    assert "pos_embed" in capsys.readouterr().err


def test_groups_table(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = _write(tmp_path, "g.yaml", "kind: torch.optim.AdamW\nlr: 1.0e-3\nweight_decay: 0.05\n")
    assert cli.main(["groups", str(config), "--model", f"{__name__}:build_model"]) == 0
    out = capsys.readouterr().out
    assert "AdamW" in out
    default_row = next(line for line in out.splitlines() if line.startswith("default"))
    zero_row = next(line for line in out.splitlines() if line.startswith("weight_decay=0"))
    assert default_row.split()[1:3] == ["2", "40"]  # two weight matrices: 4*8 + 8*1
    assert zero_row.split()[1:3] == ["4", "25"]  # two biases and the LayerNorm affine: 8 + 1 + 8 + 8


def test_groups_bad_model_exits_4(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = _write(tmp_path, "g.yaml", "kind: torch.optim.AdamW\nlr: 1.0e-3\n")
    assert cli.main(["groups", str(config), "--model", "no_such_module_xyz:build"]) == cli.EXIT_BAD_MODEL
    assert cli.main(["groups", str(config), "--model", "nocolon"]) == cli.EXIT_BAD_MODEL
    assert "MODULE:FACTORY" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("body", "needle"),
    [("betaz: [0.9, 0.9]\n", "betaz"), ("kind: os.system\n", "os.system")],
)
def test_groups_config_problems_found_when_building_exit_3(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], body: str, needle: str
) -> None:
    text = "lr: 1.0e-3\n" + (body if body.startswith("kind") else "kind: torch.optim.AdamW\n" + body)
    config = _write(tmp_path, "g.yaml", text)
    assert cli.main(["groups", str(config), "--model", f"{__name__}:build_model"]) == cli.EXIT_BAD_CONFIG
    assert needle in capsys.readouterr().err


@pytest.fixture
def files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    write_files(tmp_path)
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_a_typo_gives_the_same_message_in_every_subcommand(files: Path, capsys: pytest.CaptureFixture[str]) -> None:
    commands = [
        ["groups", "typo.yaml", "--model", "models:build"],
        ["schedule", "typo.yaml", "--steps", "10"],
        ["demo", "--lion-config", "typo.yaml", "--out", "out", "--no-plot"],
    ]
    messages = []
    for command in commands:
        assert cli.main(command) == cli.EXIT_BAD_CONFIG
        err = capsys.readouterr().err
        assert "'weight_decya' (did you mean 'weight_decay'?)" in err
        messages.append(err.split(":", 1)[1])  # after "noether-optim COMMAND"
    assert len(set(messages)) == 1
    assert not (files / "out").exists()


@pytest.mark.parametrize(
    ("command", "needles"),
    [
        (
            ["groups", "loin.yaml"],
            ["loin.yaml: kind 'noether.core.optimizer.Loin'", "Did you mean 'noether.core.optimizer.Lion'?"],
        ),
        (
            ["groups", "modifier_kind.yaml"],
            [
                "modifier_kind.yaml: param_group_modifiers_config[0].kind 'noether",
                "Did you mean 'noether.core.optimizer.param_group_modifiers.WeightDecayByNameModifier'?",
            ],
        ),
        (["groups", "betas.yaml"], ["betas.yaml: Lion does not accept the config's arguments", "betas[0]: 1.5"]),
        (["schedule", "inf.yaml", "--steps", "10"], ["inf.yaml: max_value: inf is not allowed"]),
        (["groups", "deep.yaml"], ["deep.yaml: nested too deeply"]),
        (["groups", "latin1.yaml"], ["latin1.yaml: not UTF-8 text: byte 0xe9 at line 2"]),
        (["schedule", "no_max.yaml", "--steps", "10"], ["no_max.yaml: max_value is not set", "--max-value"]),
        (["demo", "--adamw-config", "betas.yaml", "--no-plot"], ["betas.yaml: Lion does not accept"]),
    ],
    ids=["optimizer-kind", "modifier-kind", "betas", "inf", "deep", "latin1", "no-max-value", "demo-betas"],
)
def test_config_errors_exit_3_and_name_the_file_and_key(
    files: Path, capsys: pytest.CaptureFixture[str], command: list[str], needles: list[str]
) -> None:
    if command[0] == "groups":
        command = [*command, "--model", "models:build"]
    assert cli.main(command) == cli.EXIT_BAD_CONFIG
    err = capsys.readouterr().err
    for needle in needles:
        assert needle in err


def test_nesting_below_the_recursion_limit_is_still_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = _write(tmp_path, "nested.yaml", "kind: torch.optim.AdamW\nlr: 1.0e-3\nfoo: " + "[" * 40 + "]" * 40 + "\n")
    assert cli.main(["schedule", str(config), "--steps", "3"]) == cli.EXIT_BAD_CONFIG
    assert "foo[0][0]" in capsys.readouterr().err


def test_an_unmatched_modifier_name_gets_the_closest_names(files: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["groups", "unmatched.yaml", "--model", "models:build"]) == cli.EXIT_FAILURE
    err = capsys.readouterr().err
    assert "unmatched.yaml: param_group_modifiers_config[0] (WeightDecayByNameModifier): name 'pos_embd'" in err
    assert "closest parameter names: 'pos_embed'" in err
    assert "pos_embd)" not in err


def test_schedule_png_of_an_optimizer_config_is_the_file_named(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    pytest.importorskip("matplotlib")
    png = tmp_path / "curves.png"
    assert cli.main(["schedule", str(cli.CONFIG_DIR / "burgers_lion.yaml"), "--steps", "20", "--png", str(png)]) == 0
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert [path.name for path in tmp_path.iterdir()] == ["curves.png"]
    assert f"wrote {png}" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("steps", "rows", "expected"),
    [(1000, 11, [0, 100, 200, 300, 400, 500, 600, 700, 800, 900, 999]), (960, 5, [0, 240, 480, 720, 959]),
     (11, 11, list(range(11))), (3, 11, [0, 1, 2]), (100, 2, [0, 99])],
)  # fmt: skip
def test_table_steps_are_round(steps: int, rows: int, expected: list[int]) -> None:
    assert cli._table_steps(steps, rows) == expected


def test_a_modifier_without_kind_in_a_file_exits_3_naming_the_entry(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # A modifier config may omit its kind in code (as in the original), but a config file must name the class.
    config = _write(
        tmp_path,
        "nokind.yaml",
        "kind: torch.optim.AdamW\nlr: 1.0e-3\nparam_group_modifiers_config:\n  - name: bias\n    value: 0.0\n",
    )
    assert cli.main(["schedule", str(config), "--steps", "10"]) == cli.EXIT_BAD_CONFIG
    err = capsys.readouterr().err
    assert "param_group_modifiers_config[0].kind: missing" in err
    assert "WeightDecayByNameModifier" in err
