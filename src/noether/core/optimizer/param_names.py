"""Parameter names as keys: normalisation of the prefixes that model wrappers add."""

from __future__ import annotations

import re

__all__ = ["normalize_param_name"]

_LEADING_MODULE = re.compile(r"^(?:module\.)+")


def normalize_param_name(name: str) -> str:
    """The parameter name without the segments that model wrappers add.

    Every ``_orig_mod.`` (``torch.compile``, which may wrap a submodule) and the leading ``module.`` segments
    (DDP, DataParallel) are removed.

    ``normalize_param_name("module._orig_mod.encoder.weight") == "encoder.weight"``.
    """
    return _LEADING_MODULE.sub("", name.replace("_orig_mod.", ""))
