"""Reading optimizer configs from YAML files, with validation errors that name the YAML key."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import ValidationError

from noether.core.schemas.optimizers import OptimizerConfig

__all__ = ["ConfigError", "format_validation_error", "load_yaml", "load_optimizer_config"]


class ConfigError(ValueError):
    """A config file could not be read or did not validate; the message names the file and the key."""


def load_yaml(path: str | Path) -> Any:
    """Parse a YAML file (needs the optional ``pyyaml`` dependency: ``pip install noether-optim[yaml]``)."""
    try:
        import yaml
    except ImportError as error:  # pragma: no cover - depends on the environment
        raise ConfigError("reading YAML configs needs pyyaml: pip install 'noether-optim[yaml]'") from error
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as error:
        raise ConfigError(f"cannot read config file {str(path)!r}: {error.strerror}") from error
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as error:
        raise ConfigError(f"{path}: not valid YAML: {error}") from error


def format_validation_error(error: ValidationError, source: str) -> str:
    """Rewrite a pydantic error as one line per problem, each naming the dotted YAML key (``schedule_config.kind``)."""
    lines = [f"{source}: invalid config ({error.error_count()} problem{'s' if error.error_count() != 1 else ''})"]
    for item in error.errors():
        # Discriminated unions insert the tag ("LinearWarmupCosineDecaySchedule") into the location: drop it, the
        # user never wrote it.
        parts = [str(p) for p in item["loc"] if not (isinstance(p, str) and "Schedule" in p and p[:1].isupper())]
        key = ".".join(parts) or "<top level>"
        value = f" (got {item['input']!r})" if item["type"] != "missing" and not isinstance(item["input"], dict) else ""
        lines.append(f"  {key}: {item['msg']}{value}")
    return "\n".join(lines)


def load_optimizer_config(path: str | Path) -> OptimizerConfig:
    """Load and validate an ``OptimizerConfig`` from a YAML file.

    Raises:
        ConfigError: If the file cannot be read, is not YAML, or does not validate; the message names each bad key.
    """
    data = load_yaml(path)
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping of config keys at the top level, got {type(data).__name__}")
    try:
        return OptimizerConfig.model_validate(data)
    except ValidationError as error:
        raise ConfigError(format_validation_error(error, str(path))) from None
