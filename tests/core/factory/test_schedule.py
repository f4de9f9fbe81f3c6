from __future__ import annotations

import logging
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel, ValidationError

from noether.core.factory import KindResolutionError, ScheduleFactory, unregister_module_prefix
from noether.core.schedules import ConstantSchedule, CosineDecreasingSchedule, LinearWarmupCosineDecaySchedule
from noether.core.schemas import (
    AnyScheduleConfig,
    ConstantScheduleConfig,
    LinearWarmupCosineDecayScheduleConfig,
    ScheduleBaseConfig,
)
from noether.core.schemas.schedules import (
    CosineDecreasingScheduleConfig,
    register_schedule_config,
    unregister_schedule_config,
)
from noether.core.utils.training import ScheduleWrapper, TrainingIteration, UpdateCounter


def _counter(update: int = 0, end: int = 10) -> UpdateCounter:
    counter = UpdateCounter(TrainingIteration(0, 0, 0), TrainingIteration(update=end), 5, 1)
    counter.cur_iteration.update = update
    return counter


def test_none_and_empty_give_none() -> None:
    assert ScheduleFactory().create(None) is None
    assert ScheduleFactory().create({}) is None


def test_config_builds_a_wrapper_with_the_interval() -> None:
    config = CosineDecreasingScheduleConfig(max_value=1.0, interval="epoch")
    wrapper = ScheduleFactory().create(config, update_counter=_counter())
    assert isinstance(wrapper, ScheduleWrapper)
    assert isinstance(wrapper.schedule, CosineDecreasingSchedule)
    assert wrapper.interval == "epoch"


def test_mapping_is_validated_with_short_or_full_kind() -> None:
    for kind in ("noether.core.schedules.ConstantSchedule", "noether.core.schedules.constant.ConstantSchedule"):
        wrapper = ScheduleFactory().create({"kind": kind, "value": 0.25})
        assert wrapper is not None and isinstance(wrapper.schedule, ConstantSchedule)
        assert wrapper.get_value() == 0.25
    with pytest.raises(ValidationError, match="valu"):
        ScheduleFactory().create({"kind": "noether.core.schedules.ConstantSchedule", "valu": 0.25})


def test_default_max_value_fills_unset_max_value_and_is_logged(caplog: pytest.LogCaptureFixture) -> None:
    config = LinearWarmupCosineDecayScheduleConfig(warmup_steps=2)
    with caplog.at_level(logging.INFO, logger="noether.core.builders.schedule"):
        wrapper = ScheduleFactory().create(config, update_counter=_counter(update=2), default_max_value=1e-3)
    assert wrapper is not None and wrapper.get_value() == pytest.approx(1e-3)  # the peak, after the warmup
    assert config.max_value is None  # the user's config is not modified
    assert "max_value" in caplog.text and "0.001" in caplog.text


def test_explicit_max_value_wins_over_the_default() -> None:
    config = LinearWarmupCosineDecayScheduleConfig(warmup_steps=2, max_value=0.5)
    wrapper = ScheduleFactory().create(config, update_counter=_counter(update=2), default_max_value=1e-3)
    assert wrapper is not None and wrapper.get_value() == pytest.approx(0.5)


def test_default_below_end_value_is_reported() -> None:
    config = LinearWarmupCosineDecayScheduleConfig(warmup_steps=2, end_value=0.1)
    with pytest.raises(ValidationError, match=r"end_value \(0.1\) must not be larger than max_value \(0.001\)"):
        ScheduleFactory().create(config, default_max_value=1e-3)


def test_without_any_max_value_the_error_names_it() -> None:
    with pytest.raises(ValueError, match="max_value is not set"):
        ScheduleFactory().create(LinearWarmupCosineDecayScheduleConfig(warmup_percent=0.1))


def test_default_is_ignored_for_configs_without_max_value() -> None:
    wrapper = ScheduleFactory().create(ConstantScheduleConfig(value=2.0), default_max_value=1e-3)
    assert wrapper is not None and wrapper.get_value() == 2.0


# ---- kind security ----------------------------------------------------------------------------------------------


@pytest.fixture
def tripwire_module(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A module outside the allowed prefixes that records being imported."""
    (tmp_path / "tripwire_schedule_mod.py").write_text(
        "import builtins\nbuiltins.TRIPWIRE_IMPORTED = True\nclass S: pass\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    yield "tripwire_schedule_mod"
    sys.modules.pop("tripwire_schedule_mod", None)


@pytest.mark.parametrize("kind", ["os.system", "builtins.eval", "tripwire_schedule_mod.S"])
def test_kind_outside_allowed_prefixes_is_refused_before_import(kind: str, tripwire_module: str) -> None:
    config = ConstantScheduleConfig.model_construct(kind=kind, value=1.0, interval="update")
    with pytest.raises(KindResolutionError, match="not allowed"):
        ScheduleFactory().create(config)
    assert tripwire_module not in sys.modules
    import builtins

    assert not hasattr(builtins, "TRIPWIRE_IMPORTED")


@pytest.mark.parametrize("kind", ["noether.core.utils.bidict.Bidict", "torch.optim.AdamW"])
def test_kind_that_is_not_a_schedule_is_refused(kind: str) -> None:
    config = ConstantScheduleConfig.model_construct(kind=kind, value=1.0, interval="update")
    with pytest.raises(KindResolutionError, match=r"subclass of noether\.core\.schedules\.base\.ScheduleBase"):
        ScheduleFactory().create(config)


def test_untrusted_mapping_kind_is_refused_at_validation() -> None:
    with pytest.raises(ValidationError, match=r"unknown schedule kind 'os\.system'"):
        ScheduleFactory().create({"kind": "os.system", "value": 1.0})


# ---- user-defined schedules -------------------------------------------------------------------------------------

_USER_MODULE = """
from typing import Literal

from noether.core.schedules import ScheduleBase
from noether.core.schemas.schedules import ScheduleBaseConfig


class SquareRootDecayConfig(ScheduleBaseConfig):
    kind: Literal["user_schedules_pkg.sched.SquareRootDecay"] = "user_schedules_pkg.sched.SquareRootDecay"
    max_value: float | None = None
    warmup: int = 0


class SquareRootDecay(ScheduleBase):
    def __init__(self, config: SquareRootDecayConfig, scale: float = 1.0) -> None:
        super().__init__()
        self.max_value = config.max_value
        self.scale = scale

    def _get_value(self, step: int, total_steps: int) -> float:
        return self.scale * self.max_value / (step + 1) ** 0.5
"""


@pytest.fixture
def user_schedule(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    package = tmp_path / "user_schedules_pkg"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "sched.py").write_text(textwrap.dedent(_USER_MODULE))
    monkeypatch.syspath_prepend(str(tmp_path))
    from user_schedules_pkg import sched  # type: ignore[import-not-found]

    register_schedule_config(sched.SquareRootDecayConfig)
    yield sched
    unregister_schedule_config(sched.SquareRootDecayConfig)
    unregister_module_prefix("user_schedules_pkg.sched")
    for name in ("user_schedules_pkg", "user_schedules_pkg.sched"):
        sys.modules.pop(name, None)


def test_registered_user_schedule_validates_and_builds(user_schedule: Any) -> None:
    class Holder(BaseModel):
        schedule: AnyScheduleConfig | None = None

    holder = Holder(schedule={"kind": "user_schedules_pkg.sched.SquareRootDecay", "warmup": 3})
    assert isinstance(holder.schedule, user_schedule.SquareRootDecayConfig)
    dumped = holder.model_dump()
    assert dumped["schedule"]["warmup"] == 3
    assert Holder.model_validate(dumped).schedule == holder.schedule
    wrapper = ScheduleFactory().create(
        holder.schedule, update_counter=_counter(update=3), default_max_value=2.0, scale=0.5
    )
    assert wrapper is not None and wrapper.get_value() == pytest.approx(0.5 * 2.0 / 2.0)
    with pytest.raises(ValidationError, match=r"'warmpu'.*did you mean 'warmup'"):
        Holder(schedule={"kind": "user_schedules_pkg.sched.SquareRootDecay", "warmpu": 3})


def test_registration_rejects_builtin_kinds_and_bad_classes() -> None:
    class Clash(CosineDecreasingScheduleConfig):
        pass

    with pytest.raises(ValueError, match="already used by CosineDecreasingScheduleConfig"):
        register_schedule_config(Clash)
    with pytest.raises(TypeError, match="ScheduleBaseConfig subclass"):
        register_schedule_config(int)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="must declare its kind"):
        register_schedule_config(type("NoKind", (ScheduleBaseConfig,), {}))


def test_builtin_kinds_are_schedule_classes() -> None:
    from noether.core.factory.utils import class_constructor_from_class_path
    from noether.core.schedules import ScheduleBase
    from noether.core.schemas.schedules import _BUILTIN_CONFIGS, kinds_of

    for config_class in _BUILTIN_CONFIGS:
        short, full = kinds_of(config_class)
        assert class_constructor_from_class_path(short, base=ScheduleBase) is class_constructor_from_class_path(
            full, base=ScheduleBase
        )
        assert full.startswith("noether.core.schedules.") and full.count(".") == 4


def test_every_kind_in_the_union_builds_and_evaluates() -> None:
    # No kind of AnyScheduleConfig fails at run time.
    from noether.core.schemas.schedules import _BUILTIN_CONFIGS, kinds_of

    required: dict[str, dict[str, Any]] = {
        "ConstantScheduleConfig": {"value": 1.0},
        "CustomScheduleConfig": {"values": [1.0, 0.5]},
        "LinearWarmupCosineDecayScheduleConfig": {"warmup_percent": 0.1},
        "StepDecreasingScheduleConfig": {"factor": 0.5, "decreases_interval": 0.3},
        "StepFixedScheduleConfig": {"factor": 0.5, "steps": [0.5]},
        "StepIntervalScheduleConfig": {"factor": 0.5, "update_interval": 0.3},
        "PeriodicBoolScheduleConfig": {"initial_state": True},
    }
    for config_class in _BUILTIN_CONFIGS:
        for kind in kinds_of(config_class):
            data = {"kind": kind, **required.get(config_class.__name__, {})}
            wrapper = ScheduleFactory().create(data, update_counter=_counter(), default_max_value=1.0)
            assert wrapper is not None
            for update in range(11):
                wrapper.update_counter.cur_iteration.update = update  # type: ignore[union-attr]
                assert isinstance(wrapper.get_value(), float)


def test_lwcd_instance_is_built_from_the_original_yaml() -> None:
    import yaml

    data = yaml.safe_load(
        "kind: noether.core.schedules.LinearWarmupCosineDecaySchedule\nwarmup_percent: 0.10\nend_value: 1.0e-6\n"
    )
    wrapper = ScheduleFactory().create(data, update_counter=_counter(update=0, end=101), default_max_value=1e-3)
    assert wrapper is not None and isinstance(wrapper.schedule, LinearWarmupCosineDecaySchedule)


def test_config_of_an_unusable_kind_is_refused_before_training() -> None:
    from noether.core.schemas import DecreasingProgressScheduleConfig

    with pytest.raises(ValueError, match="no progress function"):
        ScheduleFactory().create(DecreasingProgressScheduleConfig(max_value=1.0))


# ---- registration allows exact class paths, for the schedule factory only, until unregistered ----------------------


def test_registering_a_foreign_kind_never_allows_its_module() -> None:
    from typing import Literal

    from noether.core.factory import DatasetFactory, Factory, allowed_module_prefixes

    class PopenConfig(ScheduleBaseConfig):
        kind: Literal["subprocess.Popen"] = "subprocess.Popen"

    prefixes = allowed_module_prefixes()
    register_schedule_config(PopenConfig)
    try:
        assert allowed_module_prefixes() == prefixes
        with pytest.raises(KindResolutionError, match=r"subclass of noether\.core\.schedules\.base\.ScheduleBase"):
            ScheduleFactory().create(PopenConfig())
        for factory in (DatasetFactory(), Factory()):
            with pytest.raises(KindResolutionError, match="not allowed"):
                factory.create({"kind": "subprocess.Popen", "args": ["true"]})
    finally:
        unregister_schedule_config(PopenConfig)
    assert allowed_module_prefixes() == prefixes
    with pytest.raises(KindResolutionError, match="not allowed"):
        DatasetFactory().create({"kind": "subprocess.Popen", "args": ["true"]})


def test_unregistering_withdraws_the_exact_path(user_schedule: Any) -> None:
    config = user_schedule.SquareRootDecayConfig(max_value=1.0)
    assert ScheduleFactory().create(config, update_counter=_counter()) is not None
    from noether.core.factory import Factory

    with pytest.raises(KindResolutionError, match="not allowed"):  # only the schedule factory resolves it
        Factory().create({"kind": "user_schedules_pkg.sched.SquareRootDecay"})
    unregister_schedule_config(user_schedule.SquareRootDecayConfig)
    with pytest.raises(KindResolutionError, match="not allowed"):
        ScheduleFactory().create(config, update_counter=_counter())


def test_registration_refuses_a_kind_that_is_not_a_class_path() -> None:
    from typing import Literal

    class NoModule(ScheduleBaseConfig):
        kind: Literal["MySchedule"] = "MySchedule"

    with pytest.raises(ValueError, match="must be a dotted class path"):
        register_schedule_config(NoModule)


@pytest.mark.parametrize("kind", [b"noether.core.schedules.ConstantSchedule", 3])
def test_schedule_kind_that_is_not_a_str_is_refused(kind: object) -> None:
    with pytest.raises(ValidationError, match="must be a str"):
        ConstantScheduleConfig(kind=kind, value=1.0)  # type: ignore[arg-type]
    with pytest.raises(ValidationError, match="kind must be a str"):
        ScheduleBaseConfig(kind=kind)  # type: ignore[arg-type]
