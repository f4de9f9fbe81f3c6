"""Every public name of the original's optimizer API is importable from the module the original had it in."""

import importlib

import pytest

SCHEDULE_CONFIGS = [
    "ScheduleBaseConfig", "ProgressScheduleConfig", "SchedulerConfig", "DecreasingProgressScheduleConfig",
    "IncreasingProgressScheduleConfig", "ConstantScheduleConfig", "CustomScheduleConfig",
    "LinearWarmupCosineDecayScheduleConfig", "PeriodicBoolScheduleConfig", "PolynomialDecreasingScheduleConfig",
    "PolynomialIncreasingScheduleConfig", "StepDecreasingScheduleConfig", "StepFixedScheduleConfig",
    "StepIntervalScheduleConfig",
]  # fmt: skip
PLAIN_PROGRESS_CONFIGS = [
    "LinearIncreasingScheduleConfig", "LinearDecreasingScheduleConfig", "CosineIncreasingScheduleConfig",
    "CosineDecreasingScheduleConfig",
]  # fmt: skip

PUBLIC = {
    "noether.core.optimizer": [
        "Lion", "OptimizerWrapper", "LrScaleByNameModifier", "ParamGroupModifierBase", "WeightDecayByNameModifier",
    ],
    "noether.core.optimizer.lion": ["Lion", "lion"],
    "noether.core.optimizer.optimizer_wrapper": ["OptimizerWrapper"],
    "noether.core.optimizer.param_group_modifiers": [
        "ParamGroupModifierBase", "LrScaleByNameModifier", "WeightDecayByNameModifier",
    ],
    "noether.core.optimizer.param_group_modifiers.base": ["ParamGroupModifierBase"],
    "noether.core.optimizer.param_group_modifiers.lr_scale_by_name": ["LrScaleByNameModifier"],
    "noether.core.optimizer.param_group_modifiers.weight_decay_by_name": ["WeightDecayByNameModifier"],
    "noether.core.schemas.optimizers": ["OptimizerConfig", "ParamGroupModifierConfig"],
    "noether.core.schemas.schedules": [*SCHEDULE_CONFIGS, *PLAIN_PROGRESS_CONFIGS, "AnyScheduleConfig"],
    "noether.core.schemas": ["OptimizerConfig", "ParamGroupModifierConfig", "AnyScheduleConfig", *SCHEDULE_CONFIGS],
    "noether.core.schedules": [
        "ScheduleBase", "ProgressSchedule", "DecreasingProgressSchedule", "IncreasingProgressSchedule",
        "SequentialStepSchedule", "SequentialStepScheduleConfig", "SequentialPercentSchedule",
        "SequentialPercentScheduleConfig", "cosine", "linear", "polynomial", "ConstantSchedule",
        "ConstantScheduleConfig", "CosineDecreasingSchedule", "CosineIncreasingSchedule", "CustomSchedule",
        "CustomScheduleConfig", "LinearDecreasingSchedule", "LinearIncreasingSchedule",
        "LinearWarmupCosineDecaySchedule", "PolynomialDecreasingSchedule", "StepDecreasingSchedule",
        "StepFixedSchedule", "StepIntervalSchedule", "PolynomialIncreasingSchedule",
    ],
    "noether.core.schedules.base": [
        "ScheduleBase", "ProgressSchedule", "DecreasingProgressSchedule", "IncreasingProgressSchedule",
        "SequentialStepSchedule", "SequentialStepScheduleConfig", "SequentialPercentSchedule",
        "SequentialPercentScheduleConfig",
    ],
    "noether.core.schedules.functional": ["linear", "cosine", "polynomial"],
    "noether.core.schedules.constant": ["ConstantSchedule"],
    "noether.core.schedules.cosine": ["CosineDecreasingSchedule", "CosineIncreasingSchedule"],
    "noether.core.schedules.custom": ["CustomSchedule"],
    "noether.core.schedules.linear": ["LinearDecreasingSchedule", "LinearIncreasingSchedule"],
    "noether.core.schedules.linear_warmup_cosine_decay": ["LinearWarmupCosineDecaySchedule"],
    "noether.core.schedules.polynomial": ["PolynomialDecreasingSchedule", "PolynomialIncreasingSchedule"],
    "noether.core.schedules.step": ["StepDecreasingSchedule", "StepFixedSchedule", "StepIntervalSchedule"],
    "noether.core.utils.training": ["UpdateCounter", "ScheduleWrapper", "TrainingIteration"],
    "noether.core.utils.training.counter": ["UpdateCounter"],
    "noether.core.utils.training.schedule_wrapper": ["ScheduleWrapper"],
    "noether.core.utils.training.training_iteration": ["TrainingIteration"],
    "noether.core.factory": [
        "Factory", "OptimizerFactory", "ScheduleFactory", "DatasetFactory", "class_constructor_from_class_path",
    ],
    "noether.core.factory.base": ["Factory"],
    "noether.core.factory.optimizer": ["OptimizerFactory"],
    "noether.core.factory.schedule": ["ScheduleFactory"],
    "noether.core.factory.utils": ["class_constructor_from_class_path", "all_ctor_kwarg_names"],
    "noether.core.utils.bidict": ["Bidict"],
    "noether.core.utils.torch": ["NoopGradScaler", "NoopContext"],
    "noether.core.utils.torch.amp": ["NoopGradScaler", "NoopContext"],
    "noether.core.utils.logging": ["float_to_scientific_notation"],
    "noether.core.utils.logging.formatting": ["float_to_scientific_notation"],
}  # fmt: skip


@pytest.mark.parametrize(("module", "names"), PUBLIC.items(), ids=list(PUBLIC))
def test_public_names_importable(module: str, names: list[str]) -> None:
    imported = importlib.import_module(module)
    missing = [name for name in names if not hasattr(imported, name)]
    assert missing == []


@pytest.mark.parametrize("module", [m for m in PUBLIC if m.count(".") == 2 or m.endswith(("training", "factory"))])
def test_package_all_lists_only_real_names(module: str) -> None:
    imported = importlib.import_module(module)
    assert [name for name in getattr(imported, "__all__", []) if not hasattr(imported, name)] == []


def test_the_originals_export_quirks_are_kept() -> None:
    schemas = importlib.import_module("noether.core.schemas")
    for name in PLAIN_PROGRESS_CONFIGS:
        assert name not in schemas.__all__
    schedules = importlib.import_module("noether.core.schedules")
    assert "PolynomialIncreasingSchedule" not in schedules.__all__
    assert "all_ctor_kwarg_names" not in importlib.import_module("noether.core.factory").__all__


def test_same_objects_through_every_path() -> None:
    from noether.core.optimizer import Lion, OptimizerWrapper
    from noether.core.optimizer.lion import Lion as Lion2
    from noether.core.optimizer.optimizer_wrapper import OptimizerWrapper as Wrapper2

    assert Lion is Lion2 and OptimizerWrapper is Wrapper2
