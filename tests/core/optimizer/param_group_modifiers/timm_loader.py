"""Imports timm for the tests that compare layer-wise lr decay with it, without torchvision.

timm (installed with ``pip install --no-deps timm``) imports torchvision at import time for its data pipeline and
a frozen-batch-norm class, none of which building a model or its optimizer groups uses. While timm is imported, a
placeholder stands in for torchvision (any attribute is an empty ``nn.Module`` subclass); it is removed from
``sys.modules`` right after, so nothing else in the test session sees it. With a real torchvision installed, that
one is used.
"""

from __future__ import annotations

import enum
import importlib
import importlib.abc
import importlib.machinery
import importlib.util
import sys
import types
from typing import Any

import pytest
import torch

_INTERPOLATION_MODES = ("NEAREST", "NEAREST_EXACT", "BILINEAR", "BICUBIC", "BOX", "HAMMING", "LANCZOS")


class _Placeholder(types.ModuleType):
    def __getattr__(self, attribute: str) -> Any:
        if attribute.startswith("__"):
            raise AttributeError(attribute)
        value: Any
        if attribute == "InterpolationMode":
            value = enum.Enum(attribute, {mode: mode.lower() for mode in _INTERPOLATION_MODES})
        else:
            value = type(attribute, (torch.nn.Module,), {})
        setattr(self, attribute, value)
        return value


class _PlaceholderFinder(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    def find_spec(self, fullname: str, path: Any, target: Any = None) -> importlib.machinery.ModuleSpec | None:
        if fullname == "torchvision" or fullname.startswith("torchvision."):
            return importlib.machinery.ModuleSpec(fullname, self, is_package=True)
        return None

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> types.ModuleType:
        module = _Placeholder(spec.name)
        module.__path__ = []
        return module

    def exec_module(self, module: types.ModuleType) -> None:
        pass


def import_timm() -> types.ModuleType:
    """``timm`` with ``timm.optim`` loaded; skips the test when timm is not installed."""
    if importlib.util.find_spec("timm") is None:
        pytest.skip("timm is not installed (test extra: pip install --no-deps timm)")
    if "timm" in sys.modules or importlib.util.find_spec("torchvision") is not None:
        importlib.import_module("timm.optim")
        return sys.modules["timm"]
    finder = _PlaceholderFinder()
    sys.meta_path.insert(0, finder)
    try:
        importlib.import_module("timm.optim")
    finally:
        sys.meta_path.remove(finder)
        for name in [name for name in sys.modules if name == "torchvision" or name.startswith("torchvision.")]:
            del sys.modules[name]
    return sys.modules["timm"]
