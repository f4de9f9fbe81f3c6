import functools

import pytest
import torch
from pydantic import BaseModel

from noether.core.factory import DatasetFactory, Factory, KindResolutionError
from noether.core.factory.optimizer import ParamGroupModifierFactory


class _Cfg(BaseModel):
    kind: str | None = "torch.optim.SGD"
    lr: float = 0.1


def test_none_and_empty_give_none() -> None:
    assert Factory().create(None) is None
    assert Factory().create({}) is None


def test_dict_is_unpacked_and_kind_removed() -> None:
    params = [torch.nn.Parameter(torch.zeros(1))]
    opt = Factory().create({"kind": "torch.optim.SGD", "lr": 0.5}, params=params)
    assert isinstance(opt, torch.optim.SGD) and opt.defaults["lr"] == 0.5


def test_partials_mode_returns_partial() -> None:
    made = Factory(returns_partials=True).create({"kind": "torch.optim.SGD", "lr": 0.5})
    assert isinstance(made, functools.partial) and made.func is torch.optim.SGD


def test_pydantic_model_is_passed_positionally() -> None:
    seen = []

    class Recorder:
        def __init__(self, cfg: _Cfg) -> None:
            seen.append(cfg)

    factory = Factory()
    factory.resolve_kind = lambda kind: Recorder  # type: ignore[method-assign]
    cfg = _Cfg()
    factory.create(cfg)
    assert seen == [cfg]


def test_objects_pass_through_and_partials_are_called() -> None:
    obj = object()
    assert Factory().create(obj) is obj
    assert Factory().create(functools.partial(dict, a=1), b=2) == {"a": 1, "b": 2}


def test_base_class_restricts_kinds() -> None:
    class OptimizerOnly(Factory):
        base_class = torch.optim.Optimizer

    with pytest.raises(KindResolutionError, match="subclass"):
        OptimizerOnly().create({"kind": "torch.optim.lr_scheduler.StepLR"})
    with pytest.raises(KindResolutionError, match="not allowed"):
        Factory().create({"kind": "os.system", "command": "echo pwned"})
    with pytest.raises(ValueError, match="kind"):
        Factory().instantiate(_Cfg(kind=None))


def test_create_list_and_dict() -> None:
    assert Factory().create_list(None) == []
    obj = object()
    assert Factory().create_list({"a": obj}) == [obj]
    assert Factory().create_dict({"a": obj}) == {"a": obj}
    with pytest.raises(NotImplementedError):
        Factory().create_list(3)  # type: ignore[arg-type]


def test_dataset_factory_does_not_build_a_class_merely_imported_into_noether() -> None:
    # The reported input: lion_cpu imports pathlib.Path, so the path resolved to it although pathlib is not allowed.
    for kind in ("noether.core.optimizer.lion_cpu.Path", "noether.core.builders.factory.BaseModel"):
        with pytest.raises(KindResolutionError):
            DatasetFactory().create({"kind": kind})


def test_every_factory_of_the_package_has_a_base_class() -> None:
    import noether.core.factory as package

    factories = [obj for obj in vars(package).values() if isinstance(obj, type) and issubclass(obj, Factory)]
    factories += [ParamGroupModifierFactory]
    assert {f.__name__ for f in factories} >= {"DatasetFactory", "OptimizerFactory", "ScheduleFactory"}
    for factory in factories:
        if factory is not Factory:
            assert factory.base_class is not None, factory.__name__
    assert DatasetFactory.base_class is torch.utils.data.Dataset


@pytest.mark.parametrize("kind", [b"torch.optim.SGD", bytearray(b"torch.optim.SGD"), 3])
def test_kind_that_is_not_a_str_is_refused(kind: object) -> None:
    with pytest.raises(KindResolutionError, match=rf"kind must be a str .*got {type(kind).__name__}"):
        Factory().create({"kind": kind, "lr": 0.1}, params=[torch.nn.Parameter(torch.zeros(1))])
