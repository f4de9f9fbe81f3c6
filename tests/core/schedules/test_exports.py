"""Every public schedule name of the original is importable from its package."""

import importlib

import pytest

SCHEDULES = [
    "ScheduleBase",
    "ProgressSchedule",
    "DecreasingProgressSchedule",
    "IncreasingProgressSchedule",
    "SequentialStepSchedule",
    "SequentialStepScheduleConfig",
    "SequentialPercentSchedule",
    "SequentialPercentScheduleConfig",
    "cosine",
    "linear",
    "polynomial",
    "ConstantSchedule",
    "ConstantScheduleConfig",
    "CosineDecreasingSchedule",
    "CosineIncreasingSchedule",
    "CustomSchedule",
    "CustomScheduleConfig",
    "LinearDecreasingSchedule",
    "LinearIncreasingSchedule",
    "LinearWarmupCosineDecaySchedule",
    "PolynomialDecreasingSchedule",
    "StepDecreasingSchedule",
    "StepFixedSchedule",
    "StepIntervalSchedule",
]

DEFINED_IN = {
    "base": ["ScheduleBase", "ProgressSchedule", "SequentialStepSchedule", "SequentialPercentScheduleConfig"],
    "constant": ["ConstantSchedule"],
    "cosine": ["CosineDecreasingSchedule", "CosineIncreasingSchedule"],
    "custom": ["CustomSchedule"],
    "functional": ["linear", "cosine", "polynomial"],
    "linear": ["LinearDecreasingSchedule", "LinearIncreasingSchedule"],
    "linear_warmup_cosine_decay": ["LinearWarmupCosineDecaySchedule"],
    "polynomial": ["PolynomialDecreasingSchedule", "PolynomialIncreasingSchedule"],
    "step": ["StepDecreasingSchedule", "StepFixedSchedule", "StepIntervalSchedule"],
    "periodic_bool": ["PeriodicBoolSchedule"],
}


def test_schedules_package_exports() -> None:
    package = importlib.import_module("noether.core.schedules")
    assert set(SCHEDULES) <= set(package.__all__)
    for name in package.__all__:
        assert getattr(package, name) is not None


@pytest.mark.parametrize("module", sorted(DEFINED_IN))
def test_names_are_defined_in_their_submodules(module: str) -> None:
    package = importlib.import_module("noether.core.schedules")
    submodule = importlib.import_module(f"noether.core.schedules.{module}")
    for name in DEFINED_IN[module]:
        assert getattr(submodule, name) is getattr(package, name)
        assert getattr(submodule, name).__module__ == submodule.__name__


def test_training_and_factory_exports() -> None:
    training = importlib.import_module("noether.core.utils.training")
    assert {"UpdateCounter", "ScheduleWrapper", "TrainingIteration"} <= set(training.__all__)
    for sub, name in (("counter", "UpdateCounter"), ("schedule_wrapper", "ScheduleWrapper")):
        assert getattr(importlib.import_module(f"noether.core.utils.training.{sub}"), name) is getattr(training, name)
    factory = importlib.import_module("noether.core.factory")
    assert "ScheduleFactory" in factory.__all__
    assert importlib.import_module("noether.core.factory.schedule").ScheduleFactory is factory.ScheduleFactory
