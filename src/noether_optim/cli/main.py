"""Entry point of the ``noether-optim`` command.

Exit codes: 0 success; 2 bad command-line usage; 3 a config file that cannot be read or does not validate;
4 a ``--model`` that cannot be imported or built; 1 any other failure.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from pydantic import ValidationError

import noether
from noether.core.factory import OptimizerFactory
from noether.core.schedules.preview import schedule_values
from noether.core.schemas.schedules import validate_schedule_config
from noether_optim.config_io import ConfigError, format_validation_error, load_optimizer_config, load_yaml
from noether_optim.demo import CONFIG_DIR
from noether_optim.demo.run import run_demo
from noether_optim.plotting import plot_values

__all__ = ["CONFIG_DIR", "EXIT_BAD_CONFIG", "EXIT_BAD_MODEL", "EXIT_FAILURE", "main"]

EXIT_FAILURE = 1
EXIT_BAD_CONFIG = 3
EXIT_BAD_MODEL = 4


class _ModelError(RuntimeError):
    """``--model module:factory`` could not be imported or called."""


def _build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="noether-optim",
        description="Lion, OptimizerWrapper and schedules of the noether framework, from the command line.",
        epilog=(
            "exit codes: 0 success, 2 bad usage, 3 invalid config file, 4 --model not importable, 1 other failure. "
            "Run 'noether-optim COMMAND --help' for the options of a command."
        ),
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {noether.__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    demo = commands.add_parser(
        "demo",
        help="train a neural surrogate of Burgers' equation with Lion and with AdamW, then plot both runs",
        description=(
            "Generates Burgers' equation data with numpy, trains the same small surrogate with Lion and with AdamW "
            "(configs: --lion-config / --adamw-config), prints the param groups, writes a PNG of loss, lr and "
            "weight decay, and says which optimizer won. Checkpoints after every epoch; --resume continues."
        ),
    )
    demo.add_argument("--epochs", type=int, default=30, help="epochs per run (default: 30)")
    demo.add_argument("--batch-size", type=int, default=32, help="samples per update (default: 32)")
    demo.add_argument("--seed", type=int, default=0, help="seed for data, init and shuffling (default: 0)")
    demo.add_argument("--out", type=Path, default=Path("runs/demo"), help="output folder (default: runs/demo)")
    demo.add_argument("--lion-config", type=Path, default=CONFIG_DIR / "burgers_lion.yaml", help="Lion config")
    demo.add_argument("--adamw-config", type=Path, default=CONFIG_DIR / "burgers_adamw.yaml", help="AdamW config")
    demo.add_argument("--no-adamw", action="store_true", help="skip the AdamW comparison run")
    demo.add_argument("--resume", action="store_true", help="continue each run from its checkpoint in --out")
    demo.add_argument("--no-plot", action="store_true", help="do not write the PNG (no matplotlib needed)")
    demo.add_argument("--quiet", action="store_true", help="no progress bar")

    schedule = commands.add_parser(
        "schedule",
        help="print (and optionally plot) the values of a schedule config",
        description=(
            "CONFIG is a schedule config (a mapping with 'kind') or an optimizer config; for an optimizer config "
            "its schedule_config and weight_decay_schedule are shown, with an unset max_value taken from lr and "
            "weight_decay as the OptimizerWrapper does."
        ),
    )
    schedule.add_argument("config", type=Path, metavar="CONFIG.yaml")
    schedule.add_argument("--steps", type=int, required=True, help="run length in updates")
    schedule.add_argument("--max-value", type=float, default=None, help="value for an unset max_value")
    schedule.add_argument("--rows", type=int, default=11, help="rows of the text table (default: 11)")
    schedule.add_argument("--png", type=Path, default=None, help="also write the curve to this PNG file")

    groups = commands.add_parser(
        "groups",
        help="show the param groups an optimizer config builds for a model",
        description="Builds the OptimizerWrapper for the model and prints its param groups (nothing is trained).",
    )
    groups.add_argument("config", type=Path, metavar="CONFIG.yaml")
    groups.add_argument(
        "--model",
        required=True,
        metavar="MODULE:FACTORY",
        help="a callable returning the nn.Module, e.g. torchvision.models:resnet18 or my_pkg.models:build",
    )
    return parser


def _import_model(spec: str) -> Any:
    module_name, sep, attribute = spec.partition(":")
    if not sep or not module_name or not attribute:
        raise _ModelError(f"--model must look like MODULE:FACTORY (e.g. my_pkg.models:build), got {spec!r}")
    sys.path.insert(0, str(Path.cwd()))  # as `python -m` would: modules of the current folder are importable
    try:
        factory = getattr(importlib.import_module(module_name), attribute)
    except (ImportError, AttributeError) as error:
        raise _ModelError(f"--model {spec!r}: {error}") from error
    finally:
        sys.path.pop(0)
    model = factory() if callable(factory) else factory

    if not isinstance(model, torch.nn.Module):
        raise _ModelError(f"--model {spec!r} gave a {type(model).__name__}, not a torch.nn.Module")
    return model


def _run_groups(args: argparse.Namespace) -> int:
    config = load_optimizer_config(args.config)
    try:
        # Resolves the kind and checks the optimizer's keyword arguments: still a problem of the config file.
        build_wrapper = OptimizerFactory().create(config)
    except ValueError as error:
        raise ConfigError(f"{args.config}: {error}") from None
    model = _import_model(args.model)
    wrapper = build_wrapper(model)
    print(f"{wrapper}\n{wrapper.format_param_group_table()}")
    return 0


def _schedule_curves(args: argparse.Namespace) -> list[tuple[str, Any]]:
    """(label, values) for each schedule the file describes."""
    data = load_yaml(args.config)
    if not isinstance(data, dict):
        raise ConfigError(f"{args.config}: expected a mapping at the top level, got {type(data).__name__}")
    if "kind" in data and not ({"schedule_config", "weight_decay_schedule"} & data.keys()):
        try:
            config = validate_schedule_config(data)
        except ValidationError as error:
            raise ConfigError(format_validation_error(error, str(args.config))) from None
        return [(str(config.kind).rpartition(".")[2], schedule_values(config, args.steps, max_value=args.max_value))]
    optimizer_config = load_optimizer_config(args.config)
    curves = []
    for label, schedule_config, default in (
        ("lr", optimizer_config.schedule_config, optimizer_config.lr),
        ("weight_decay", optimizer_config.weight_decay_schedule, optimizer_config.weight_decay),
    ):
        if schedule_config is not None:
            max_value = args.max_value if args.max_value is not None else default
            curves.append((label, schedule_values(schedule_config, args.steps, max_value=max_value)))
    if not curves:
        raise ConfigError(f"{args.config}: the optimizer config has no schedule_config or weight_decay_schedule")
    return curves


def _text_table(label: str, values: Any, rows: int) -> str:
    steps = len(values)
    picks = sorted({round(i * (steps - 1) / max(rows - 1, 1)) for i in range(rows)}) if steps else []
    peak = max((abs(float(v)) for v in values), default=0.0) or 1.0
    lines = [f"{label} ({steps} steps)", f"{'step':>8}  {'value':>12}"]
    for step in picks:
        value = float(values[step])
        lines.append(f"{step:>8}  {value:>12.6g}  {'#' * round(30 * abs(value) / peak)}")
    return "\n".join(lines)


def _run_schedule(args: argparse.Namespace) -> int:
    if args.steps < 1:
        raise ConfigError(f"--steps must be at least 1, got {args.steps}")
    if args.rows < 2:
        raise ConfigError(f"--rows must be at least 2, got {args.rows}")
    curves = _schedule_curves(args)
    print("\n\n".join(_text_table(label, values, args.rows) for label, values in curves))
    if args.png is not None:
        for label, values in curves:
            path = args.png if len(curves) == 1 else args.png.with_name(f"{args.png.stem}_{label}{args.png.suffix}")
            print(f"wrote {plot_values(values, path, f'{label}: {args.config.name}')}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit code (see the module docstring)."""
    parser = _build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    try:
        if args.command == "demo":
            return run_demo(args)
        if args.command == "schedule":
            return _run_schedule(args)
        return _run_groups(args)
    except ConfigError as error:
        print(f"noether-optim {args.command}: {error}", file=sys.stderr)
        return EXIT_BAD_CONFIG
    except _ModelError as error:
        print(f"noether-optim groups: {error}", file=sys.stderr)
        return EXIT_BAD_MODEL
    except (ValueError, TypeError) as error:
        # Construction-time checks of the library (e.g. a modifier name matching no parameter).
        print(f"noether-optim {args.command}: {error}", file=sys.stderr)
        return EXIT_FAILURE


if __name__ == "__main__":
    sys.exit(main())
