import sys

import pytest
import torch

from noether.core.factory import (
    KindResolutionError,
    allowed_module_prefixes,
    class_constructor_from_class_path,
    register_module_prefix,
    registered_module_prefixes,
    unregister_module_prefix,
)
from noether.core.factory.utils import all_ctor_kwarg_names


def test_resolves_torch_optimizer_with_base_check() -> None:
    assert class_constructor_from_class_path("torch.optim.AdamW", base=torch.optim.Optimizer) is torch.optim.AdamW


@pytest.mark.parametrize(
    "path", ["os.system", "builtins.eval", "subprocess.Popen", "torch.load", "noether_evil.X", "torchx.optim.SGD"]
)
def test_refuses_paths_outside_allowed_prefixes_before_import(path: str) -> None:
    module = path.rpartition(".")[0]
    was_loaded = module in sys.modules
    with pytest.raises(KindResolutionError, match="not allowed") as info:
        class_constructor_from_class_path(path)
    assert repr(path) in str(info.value)
    assert (module in sys.modules) == was_loaded  # nothing was imported


@pytest.mark.parametrize("path", ["", "AdamW", "torch..optim", "torch.optim.AdamW()", "torch.optim.Adam W", 3, None])
def test_refuses_malformed_paths(path: object) -> None:
    with pytest.raises(KindResolutionError, match="dotted class path"):
        class_constructor_from_class_path(path)  # type: ignore[arg-type]


def test_refuses_non_class_and_wrong_base() -> None:
    with pytest.raises(KindResolutionError, match="must name a class"):
        class_constructor_from_class_path("torch.optim.optimizer.register_optimizer_step_pre_hook")
    with pytest.raises(KindResolutionError, match=r"subclass of torch\.optim\.optimizer\.Optimizer"):
        class_constructor_from_class_path("torch.optim.lr_scheduler.StepLR", base=torch.optim.Optimizer)


def test_missing_module_and_attribute_name_the_path() -> None:
    with pytest.raises(KindResolutionError, match=r"cannot import module 'noether\.nope'"):
        class_constructor_from_class_path("noether.nope.Thing")
    with pytest.raises(KindResolutionError, match="no attribute 'Adamm'"):
        class_constructor_from_class_path("torch.optim.Adamm")


def test_user_prefix_registration_matches_whole_components() -> None:
    assert "json" not in allowed_module_prefixes()
    with pytest.raises(KindResolutionError):
        class_constructor_from_class_path("json.JSONDecoder")
    with registered_module_prefixes("json"):
        assert class_constructor_from_class_path("json.JSONDecoder").__name__ == "JSONDecoder"
        with pytest.raises(KindResolutionError, match="not allowed"):
            class_constructor_from_class_path("jsonx.Thing")
    assert "json" not in allowed_module_prefixes()
    register_module_prefix("json")
    try:
        assert "json" in allowed_module_prefixes()
    finally:
        unregister_module_prefix("json")
    with pytest.raises(ValueError, match="dotted Python module path"):
        register_module_prefix("bad prefix")


def test_all_ctor_kwarg_names_walks_bases() -> None:
    class A:
        def __init__(self, a: int) -> None: ...

    class B(A):
        def __init__(self, b: int, **kwargs: int) -> None: ...

    assert all_ctor_kwarg_names(B) == {"a", "b", "kwargs"}


# ---- the class must be defined where it may be resolved from -------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "defined_in"),
    [
        ("noether.core.builders.factory.BaseModel", "pydantic.main"),  # base.py imports pydantic's BaseModel
        ("noether.core.builders.kinds.Collection", "collections.abc"),
        ("torch.optim.adamw.Tensor", "torch"),
    ],
)
def test_refuses_a_class_only_imported_into_an_allowed_module(path: str, defined_in: str) -> None:
    with pytest.raises(KindResolutionError, match=rf"not allowed: .*defined in module '{defined_in}'") as info:
        class_constructor_from_class_path(path)
    assert repr(path) in str(info.value)


def test_exact_class_paths_allow_only_that_path() -> None:
    with pytest.raises(KindResolutionError, match="not allowed"):
        class_constructor_from_class_path("json.JSONDecoder")
    decoder = class_constructor_from_class_path("json.JSONDecoder", exact_class_paths={"json.JSONDecoder"})
    assert decoder.__name__ == "JSONDecoder"  # defined in json.decoder, a submodule of the exact path's module
    with pytest.raises(KindResolutionError, match="not allowed"):
        class_constructor_from_class_path("json.JSONEncoder", exact_class_paths={"json.JSONDecoder"})
    # An exactly allowed path that merely re-exports a class from elsewhere is still refused.
    with pytest.raises(KindResolutionError, match=r"defined in module 'pydantic\.main'"):
        class_constructor_from_class_path(
            "noether.core.builders.factory.BaseModel", exact_class_paths={"noether.core.builders.factory.BaseModel"}
        )


@pytest.mark.parametrize("path", [b"torch.optim.SGD", bytearray(b"torch.optim.SGD"), ["torch.optim.SGD"]])
def test_refuses_kinds_that_are_not_str(path: object) -> None:
    with pytest.raises(KindResolutionError, match=rf"kind must be a str .* got {type(path).__name__}"):
        class_constructor_from_class_path(path)  # type: ignore[arg-type]
