"""Parameter names as keys: normalisation of the prefixes that model wrappers add."""

from __future__ import annotations

import re
from collections.abc import Mapping

__all__ = ["normalize_param_name", "normalized_or_raw_names"]

_LEADING_MODULE = re.compile(r"^(?:module\.)+")


def normalize_param_name(name: str) -> str:
    """The parameter name without the segments that model wrappers add.

    Every ``_orig_mod.`` (``torch.compile``, which may wrap a submodule) and the leading ``module.`` segments
    (DDP, DataParallel) are removed.

    ``normalize_param_name("module._orig_mod.encoder.weight") == "encoder.weight"``.
    """
    return _LEADING_MODULE.sub("", name.replace("_orig_mod.", ""))


def normalized_or_raw_names(names: Mapping[int, str]) -> dict[int, str]:
    """``names`` with every name normalised (see :func:`normalize_param_name`), or unchanged if that would clash.

    A model may really hold both ``module.x`` and ``x``; normalising would give two parameters one name, so then
    all names stay raw.
    """
    normalized = {index: normalize_param_name(name) for index, name in names.items()}
    return normalized if len(set(normalized.values())) == len(normalized) else dict(names)
