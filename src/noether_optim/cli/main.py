"""Entry point of the ``noether-optim`` command.

Exit codes: 0 success; 2 bad command-line usage; 3 a config file that cannot be read or does not validate;
4 a ``--model`` that cannot be imported or built; 1 any other failure (a missing optional package, a config that
does not fit the model). Every failure is one message on stderr, never a traceback.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import math
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

import noether
from noether.core.factory import OptimizerFactory
from noether.core.schedules.preview import schedule_values
from noether.core.schemas.optimizers import OptimizerConfig
from noether_optim.config_io import (
    check_modifier_names,
    is_schedule_config,
    load_optimizer_config,
    load_schedule_config,
    load_yaml,
    require_yaml,
)
from noether_optim.demo import CONFIG_DIR
from noether_optim.demo.run import run_demo
from noether_optim.errors import ConfigError, MismatchError, MissingDependencyError, ModelError, UsageError
from noether_optim.plotting import plot_curves, require_matplotlib

__all__ = ["CONFIG_DIR", "EXIT_BAD_CONFIG", "EXIT_BAD_MODEL", "EXIT_BAD_USAGE", "EXIT_FAILURE", "main"]

EXIT_FAILURE = 1
EXIT_BAD_USAGE = 2
EXIT_BAD_CONFIG = 3
EXIT_BAD_MODEL = 4
EXIT_INTERRUPTED = 130


def _at_least(minimum: int) -> Callable[[str], int]:
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be at least {minimum}, got {value}")
        return value

    return parse


def _finite_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"must be a finite number, got {text!r}")
    return value


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
            "weight decay, and says which optimizer won. Checkpoints after every epoch; --resume continues. "
            "Both configs, the options and the checkpoints are checked before anything is trained."
        ),
    )
    demo.add_argument("--epochs", type=_at_least(1), default=30, help="epochs per run (default: 30)")
    demo.add_argument("--batch-size", type=_at_least(1), default=32, help="samples per update (default: 32)")
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
            "CONFIG is a schedule config (a mapping whose 'kind' names a schedule) or an optimizer config; for an "
            "optimizer config its schedule_config and weight_decay_schedule are shown, with an unset max_value "
            "taken from lr and weight_decay as the OptimizerWrapper does."
        ),
    )
    schedule.add_argument("config", type=Path, metavar="CONFIG.yaml")
    schedule.add_argument("--steps", type=_at_least(1), required=True, help="run length in updates")
    schedule.add_argument("--max-value", type=_finite_float, default=None, help="value for an unset max_value")
    schedule.add_argument("--rows", type=_at_least(2), default=11, help="rows of the text table (default: 11)")
    schedule.add_argument("--png", type=Path, default=None, help="also plot the curves into this PNG file")

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
    groups.add_argument("--names", action="store_true", help="also list the parameter names of each group")
    return parser


def _import_model(spec: str) -> torch.nn.Module:
    module_name, sep, attribute = spec.partition(":")
    if not sep or not module_name or not attribute:
        raise ModelError(f"--model must look like MODULE:FACTORY (e.g. my_pkg.models:build), got {spec!r}")
    sys.path.insert(0, str(Path.cwd()))  # as `python -m` would: modules of the current folder are importable
    try:
        factory = getattr(importlib.import_module(module_name), attribute)
    except (ImportError, AttributeError) as error:
        raise ModelError(f"--model {spec!r}: {error}") from error
    finally:
        sys.path.pop(0)
    try:
        model = factory() if callable(factory) else factory
    except Exception as error:  # the user's code: whatever it raises, the message names the flag
        raise ModelError(f"--model {spec!r}: calling it raised {type(error).__name__}: {error}") from error
    if not isinstance(model, torch.nn.Module):
        raise ModelError(f"--model {spec!r} gave a {type(model).__name__}, not a torch.nn.Module")
    return model


def _schedule_kind(config: Any) -> str:
    return "none" if config is None else str(config.kind).rpartition(".")[2]


def _groups_header(config: OptimizerConfig, model: torch.nn.Module, wrapper: Any) -> str:
    groups = wrapper.torch_optim.param_groups
    tensors = sum(len(group["params"]) for group in groups)
    elements = sum(p.numel() for group in groups for p in group["params"])
    clipping = [
        f"{key} {getattr(config, key)}" for key in ("clip_grad_norm", "clip_grad_value") if getattr(config, key)
    ]
    return "\n".join(
        [
            f"{config.kind} for {type(model).__name__}: {len(groups)} param groups, {tensors} tensors, "
            f"{elements:,} elements",
            f"lr {config.lr:g}, weight_decay {config.weight_decay or 0.0:g}"
            + (f", {', '.join(clipping)}" if clipping else ""),
            f"schedules: lr {_schedule_kind(config.schedule_config)}, "
            f"weight_decay {_schedule_kind(config.weight_decay_schedule)}",
        ]
    )


def _group_names(model: torch.nn.Module, wrapper: Any) -> str:
    names = {id(param): name for name, param in model.named_parameters()}
    lines = []
    for group in wrapper.torch_optim.param_groups:
        lines.append(f"{group.get('name', '?')}:")
        lines.extend(f"  {names.get(id(param), '?')}" for param in group["params"])
    return "\n".join(lines)


def _run_groups(args: argparse.Namespace) -> int:
    require_yaml()
    config = load_optimizer_config(args.config)
    model = _import_model(args.model)
    check_modifier_names(config, model, str(args.config), hint=" (--names lists them all)")
    wrapper = OptimizerFactory().create(config)(model)
    print(f"{_groups_header(config, model, wrapper)}\n\n{wrapper.format_param_group_table()}")
    if args.names:
        print(f"\n{_group_names(model, wrapper)}")
    return 0


def _schedule_curves(args: argparse.Namespace) -> list[tuple[str, np.ndarray]]:
    """(label, values) for each schedule the file describes."""
    data = load_yaml(args.config)
    if is_schedule_config(data):
        config = load_schedule_config(args.config, data)
        if getattr(config, "max_value", 0.0) is None and args.max_value is None:
            raise ConfigError(
                f"{args.config}: max_value is not set; give 'max_value:' in the file or --max-value on the command "
                "line (in an optimizer config it defaults to lr, or weight_decay for weight_decay_schedule)"
            )
        values = schedule_values(config, args.steps, max_value=args.max_value)
        return [(_schedule_kind(config), values)]
    optimizer_config = load_optimizer_config(args.config, data)
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


def _table_steps(steps: int, rows: int) -> list[int]:
    """Evenly spaced steps to show, on round numbers (0, 100, ..., 900 and the last, 999, for 1000 steps)."""
    if steps <= rows:
        return list(range(steps))
    return sorted({min(i * steps // (rows - 1), steps - 1) for i in range(rows - 1)} | {steps - 1})


def _text_table(label: str, values: np.ndarray, rows: int) -> str:
    peak = max((abs(float(v)) for v in values), default=0.0) or 1.0
    lines = [f"{label} ({len(values)} steps)", f"{'step':>8}  {'value':>12}"]
    for step in _table_steps(len(values), rows):
        value = float(values[step])
        lines.append(f"{step:>8}  {value:>12.6g}  {'#' * round(30 * abs(value) / peak)}".rstrip())
    return "\n".join(lines)


def _run_schedule(args: argparse.Namespace) -> int:
    require_yaml()
    if args.png is not None:
        require_matplotlib(" (or leave out --png)")
    curves = _schedule_curves(args)
    print("\n\n".join(_text_table(label, values, args.rows) for label, values in curves))
    if args.png is not None:
        print(f"wrote {plot_curves(curves, args.png, f'{args.config.name}, {args.steps} steps')}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit code (see the module docstring)."""
    parser = _build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    prefix = f"noether-optim {args.command}:"
    try:
        if args.command == "demo":
            return run_demo(args)
        if args.command == "schedule":
            return _run_schedule(args)
        return _run_groups(args)
    except ConfigError as error:
        print(f"{prefix} {error}", file=sys.stderr)
        return EXIT_BAD_CONFIG
    except UsageError as error:
        print(f"{prefix} {error}", file=sys.stderr)
        return EXIT_BAD_USAGE
    except ModelError as error:
        print(f"{prefix} {error}", file=sys.stderr)
        return EXIT_BAD_MODEL
    except (MismatchError, MissingDependencyError) as error:
        print(f"{prefix} {error}", file=sys.stderr)
        return EXIT_FAILURE
    except (ValueError, TypeError) as error:
        # Construction-time checks of the library that the command does not anticipate.
        print(f"{prefix} {error}", file=sys.stderr)
        return EXIT_FAILURE
    except KeyboardInterrupt:
        resume = " (the demo continues from its last epoch with --resume)" if args.command == "demo" else ""
        print(f"{prefix} interrupted{resume}", file=sys.stderr)
        return EXIT_INTERRUPTED


if __name__ == "__main__":
    sys.exit(main())
