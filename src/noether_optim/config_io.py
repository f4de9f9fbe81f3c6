"""Reading config files: the one path every subcommand takes, with errors that name the file and the key.

A config file goes through the same steps whichever command reads it: the file is read as UTF-8 and parsed as YAML
(floats as YAML 1.2 writes them, so ``1e-8`` is a number); the data is checked for what no config holds (nesting
deeper than :data:`MAX_DEPTH`, numbers that are not finite); then it is validated as an optimizer config or a
schedule config. For an optimizer config everything that can be checked without a model is checked here: the
``kind`` of the optimizer and of each modifier resolves (a typo gets the closest known name), the optimizer accepts
the keys given to it, and its constructor accepts their values. Every problem is a :class:`ConfigError`.
"""

from __future__ import annotations

import difflib
import functools
import importlib
import inspect
import math
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch
from pydantic import ValidationError

from noether.core.factory.optimizer import optimizer_kwargs_for
from noether.core.factory.utils import KindResolutionError, class_constructor_from_class_path
from noether.core.optimizer.param_group_modifiers.base import ParamGroupModifierBase, name_matches
from noether.core.optimizer.param_group_modifiers.by_name import ByNameModifierBase
from noether.core.optimizer.param_names import normalize_param_name
from noether.core.schemas.optimizers import OptimizerConfig
from noether.core.schemas.schedules import ScheduleBaseConfig, registered_schedule_configs, validate_schedule_config
from noether_optim.errors import ConfigError, MismatchError, MissingDependencyError

try:
    import yaml
except ImportError:  # pragma: no cover - depends on the environment; reported by require_yaml
    yaml = None  # type: ignore[assignment]

__all__ = [
    "MAX_DEPTH",
    "check_modifier_names",
    "format_validation_error",
    "is_schedule_config",
    "key_path",
    "load_optimizer_config",
    "load_schedule_config",
    "load_yaml",
    "require_yaml",
    "resolve_kind",
]

MAX_DEPTH = 16
"""The deepest nesting of mappings and lists a config may have (real configs nest three or four levels)."""

# The modules whose classes a misspelt kind is compared with.
_KIND_MODULES = ("torch.optim", "noether.core.optimizer", "noether.core.optimizer.param_group_modifiers")

# YAML 1.2's float syntax: unlike YAML 1.1, PyYAML's default, it needs neither a dot nor a signed exponent (1e-8).
_YAML12_FLOAT = re.compile(
    r"""^(?:[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?
    |[-+]?\.(?:inf|Inf|INF)
    |\.(?:nan|NaN|NAN))$""",
    re.VERBOSE,
)


def require_yaml(extra: str = "yaml") -> None:
    """Raise :class:`MissingDependencyError` unless pyyaml is importable (``extra`` names the pip extra to suggest)."""
    if yaml is None:  # pragma: no cover - depends on the environment
        raise MissingDependencyError(f"reading YAML configs needs pyyaml: pip install 'noether-optim[{extra}]'")


@functools.cache
def _loader() -> Any:
    """PyYAML's safe loader with YAML 1.2 floats added (the YAML 1.1 rules stay for what they already read)."""
    require_yaml()

    class ConfigLoader(yaml.SafeLoader):  # type: ignore[name-defined,misc]
        pass

    ConfigLoader.add_implicit_resolver("tag:yaml.org,2002:float", _YAML12_FLOAT, list("-+0123456789."))
    return ConfigLoader


def key_path(parts: tuple[str | int, ...] | list[str | int]) -> str:
    """The dotted key of a place in a config as the YAML spells it: ``param_group_modifiers_config[0].name``."""
    text = ""
    for part in parts:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text or "<top level>"


def _walk(data: Any) -> Iterator[tuple[tuple[str | int, ...], Any]]:
    """Every value of ``data`` with its key path, outside in; iterative, so depth cannot exhaust the stack."""
    stack: list[tuple[tuple[str | int, ...], Any]] = [((), data)]
    while stack:
        path, value = stack.pop()
        yield path, value
        if isinstance(value, dict):
            stack.extend(((*path, str(key)), item) for key, item in reversed(value.items()))
        elif isinstance(value, list):
            stack.extend(((*path, index), item) for index, item in reversed(list(enumerate(value))))


def _check_values(data: Any, source: str) -> None:
    for path, value in _walk(data):
        if len(path) > MAX_DEPTH:
            raise ConfigError(
                f"{source}: {key_path(path[:MAX_DEPTH])}: nested more than {MAX_DEPTH} levels deep; a config nests a "
                "few levels at most"
            )
        if isinstance(value, float) and not math.isfinite(value):
            raise ConfigError(f"{source}: {key_path(path)}: {value} is not allowed; every number in a config is finite")


def load_yaml(path: str | Path) -> Any:
    """Read and parse a YAML config file, and check it for what no config holds.

    Raises:
        MissingDependencyError: If pyyaml is not installed.
        ConfigError: If the file cannot be read, is not UTF-8 text, is not YAML, is empty, nests deeper than
            :data:`MAX_DEPTH` or holds a number that is not finite.
    """
    loader = _loader()
    path = Path(path)
    try:
        raw = path.read_bytes()
    except OSError as error:
        raise ConfigError(f"cannot read config file {str(path)!r}: {error.strerror}") from error
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        line = raw[: error.start].count(b"\n") + 1
        column = error.start - (raw.rfind(b"\n", 0, error.start) + 1) + 1
        raise ConfigError(
            f"{path}: not UTF-8 text: byte 0x{raw[error.start]:02x} at line {line}, column {column} cannot be "
            "decoded; save the file as UTF-8"
        ) from None
    try:
        data = yaml.load(text, Loader=loader)
    except RecursionError:
        raise ConfigError(f"{path}: nested too deeply to be a config (a config nests a few levels at most)") from None
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark is not None else ""
        problem = getattr(error, "problem", None) or str(error)
        raise ConfigError(f"{path}: not valid YAML{where}: {problem}") from None
    if data is None:
        raise ConfigError(f"{path}: the file is empty; a config is a mapping of keys such as 'kind: ...'")
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping of config keys at the top level, got a {type(data).__name__}")
    _check_values(data, str(path))
    return data


def format_validation_error(error: ValidationError, source: str) -> str:
    """Rewrite a pydantic error as one line per problem, each naming the YAML key (``schedule_config.kind``)."""
    count = error.error_count()
    lines = [f"{source}: invalid config ({count} problem{'s' if count != 1 else ''})"]
    for item in error.errors():
        # Discriminated unions insert the tag ("LinearWarmupCosineDecaySchedule...") into the location: drop it,
        # the user never wrote it.
        parts = [p for p in item["loc"] if not (isinstance(p, str) and "Schedule" in p and p[:1].isupper())]
        message = str(item["msg"]).removeprefix("Value error, ").removeprefix("Assertion failed, ")
        shown = item["type"] not in ("missing", "value_error") and not isinstance(item["input"], (dict, list))
        value = f" (got {item['input']!r})" if shown else ""
        lines.append(f"  {key_path(parts)}: {message}{value}")
    return "\n".join(lines)


def _known_kinds(base: type[Any]) -> list[str]:
    """Import paths of the ``base`` subclasses that the library and torch.optim export."""
    known: list[str] = []
    for module_name in _KIND_MODULES:
        module = importlib.import_module(module_name)
        for name in getattr(module, "__all__", dir(module)):
            obj = getattr(module, name, None)
            if inspect.isclass(obj) and issubclass(obj, base) and obj is not base and not inspect.isabstract(obj):
                known.append(f"{module_name}.{name}")
    return known


def _kind_suggestion(kind: str, base: type[Any]) -> str:
    known = _known_kinds(base)
    close = difflib.get_close_matches(kind, known, n=1, cutoff=0.75)
    if not close:
        by_name = {path.rpartition(".")[2]: path for path in reversed(known)}
        names = difflib.get_close_matches(kind.rpartition(".")[2], list(by_name), n=1, cutoff=0.6)
        close = [by_name[names[0]]] if names else []
    return f" Did you mean {close[0]!r}?" if close else ""


def resolve_kind(kind: str, base: type[Any], key: str, source: str) -> type[Any]:
    """The class a ``kind`` names, or a :class:`ConfigError` naming ``key`` and the closest known kind."""
    try:
        return class_constructor_from_class_path(kind, base=base)
    except KindResolutionError as error:
        message = str(error).removeprefix("kind ")  # the key is named in front, with its index
        raise ConfigError(f"{source}: {key} {message}.{_kind_suggestion(kind, base)}") from None


_MODIFIER_EXAMPLE = "noether.core.optimizer.param_group_modifiers.WeightDecayByNameModifier"


def _validated(data: Any, source: str) -> OptimizerConfig:
    try:
        return OptimizerConfig.model_validate(data)
    except ValidationError as error:
        raise ConfigError(format_validation_error(error, source)) from None


def load_optimizer_config(path: str | Path, data: dict[str, Any] | None = None) -> OptimizerConfig:
    """Load an ``OptimizerConfig`` and check everything about it that needs no model.

    Args:
        path: The YAML file (named in every message).
        data: Its parsed content, when the caller has already read it with :func:`load_yaml`.

    Raises:
        ConfigError: If the file cannot be read or parsed, does not validate, names an optimizer or modifier
            ``kind`` that does not resolve, gives the optimizer a key it does not accept, or a value its
            constructor rejects. The message names the file and the key.
    """
    source = str(path)
    config = _validated(load_yaml(path) if data is None else data, source)
    if config.kind is None:
        raise ConfigError(f"{source}: kind: missing; name the optimizer class, e.g. 'kind: torch.optim.AdamW'")
    optimizer_class = resolve_kind(config.kind, torch.optim.Optimizer, "kind", source)
    try:
        kwargs = optimizer_kwargs_for(optimizer_class, config)
    except ValueError as error:
        raise ConfigError(f"{source}: {error}") from None
    try:
        # The constructor checks its arguments' values (betas in range, eps >= 0, ...); one dummy tensor suffices.
        optimizer_class([torch.zeros(1, requires_grad=True)], **kwargs)
    except (ValueError, TypeError, RuntimeError) as error:
        name = optimizer_class.__name__
        message = str(error).removeprefix(f"{name}: ")
        raise ConfigError(f"{source}: {name} does not accept the config's arguments: {message}") from None
    for index, modifier in enumerate(config.param_group_modifiers_config or []):
        field = f"param_group_modifiers_config[{index}].kind"
        if modifier.kind is None:
            # A config may leave a modifier's kind out (as the original allows); building from a file needs it.
            raise ConfigError(f"{source}: {field}: missing; name the modifier class, e.g. 'kind: {_MODIFIER_EXAMPLE}'")
        resolve_kind(modifier.kind, ParamGroupModifierBase, field, source)
    return config


def is_schedule_config(data: dict[str, Any]) -> bool:
    """Whether a parsed config is a schedule config (its ``kind`` names a schedule) rather than an optimizer's."""
    kind = data.get("kind")
    if not isinstance(kind, str):
        return False
    return kind.startswith("noether.core.schedules.") or kind in registered_schedule_configs()


def load_schedule_config(path: str | Path, data: dict[str, Any] | None = None) -> ScheduleBaseConfig:
    """Load and validate a schedule config (a mapping with a schedule ``kind``).

    Raises:
        ConfigError: If the file cannot be read or parsed, or does not validate; the message names each bad key.
    """
    try:
        return validate_schedule_config(load_yaml(path) if data is None else data)
    except ValidationError as error:
        raise ConfigError(format_validation_error(error, str(path))) from None


def check_modifier_names(config: OptimizerConfig, model: torch.nn.Module, source: str, hint: str = "") -> None:
    """Check that every by-name modifier of ``config`` matches a parameter of ``model``.

    The wrapper would refuse such a modifier too; this check says which entry it is and which parameter names are
    closest to the one written.

    Args:
        config: A config checked by :func:`load_optimizer_config`.
        model: The model the config is for.
        source: The config file, for the message.
        hint: Appended to the message when no parameter name is close (e.g. how to list them all).

    Raises:
        MismatchError: For the first modifier that matches no parameter.
    """
    names = [name for name, _ in model.named_parameters()]
    normalized = [normalize_param_name(name) for name in names]
    for index, modifier in enumerate(config.param_group_modifiers_config or []):
        if modifier.kind is None or modifier.name is None:
            continue  # load_optimizer_config requires a kind; a modifier without a name matches on its own terms
        modifier_class = class_constructor_from_class_path(modifier.kind, base=ParamGroupModifierBase)  # type: ignore[type-abstract]
        if not issubclass(modifier_class, ByNameModifierBase):
            continue  # other modifiers match on their own terms; the wrapper reports them
        pattern = modifier.name
        if any(name_matches(pattern, name) for name in names + normalized):
            continue
        close = difflib.get_close_matches(pattern, names, n=3, cutoff=0.6)
        if close:
            advice = f"closest parameter names: {', '.join(repr(name) for name in close)}"
        else:
            advice = f"its parameters are named like {', '.join(repr(name) for name in names[:3])}, ...{hint}"
        raise MismatchError(
            f"{source}: param_group_modifiers_config[{index}] ({modifier_class.__name__}): name {pattern!r} matches "
            f"no parameter of {type(model).__name__}; {advice}"
        )
