"""The errors the command line reports as one message and an exit code, never as a traceback."""

from __future__ import annotations

__all__ = ["ConfigError", "MismatchError", "MissingDependencyError", "ModelError", "UsageError"]


class ConfigError(ValueError):
    """A config file could not be read or did not validate; the message names the file and the key (exit code 3)."""


class UsageError(ValueError):
    """Command-line options that cannot work together, found after parsing (exit code 2, as argparse's own)."""


class ModelError(RuntimeError):
    """``--model MODULE:FACTORY`` could not be imported or did not give an ``nn.Module`` (exit code 4)."""


class MissingDependencyError(RuntimeError):
    """A command needs an optional package that is not installed; the message says how to install it (exit code 1)."""


class MismatchError(ValueError):
    """A config that is valid on its own does not fit the model, e.g. a modifier name matching no parameter (exit 1)."""
