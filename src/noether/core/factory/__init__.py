"""Factories that build optimizers, schedules and modifiers from configs, with safe ``kind`` resolution."""

from noether.core.factory.base import Factory
from noether.core.factory.dataset import DatasetFactory
from noether.core.factory.optimizer import OptimizerFactory
from noether.core.factory.schedule import ScheduleFactory
from noether.core.factory.utils import (
    KindResolutionError,
    allowed_module_prefixes,
    class_constructor_from_class_path,
    register_module_prefix,
    registered_module_prefixes,
    unregister_module_prefix,
)

__all__ = [
    "DatasetFactory",
    "Factory",
    "KindResolutionError",
    "OptimizerFactory",
    "ScheduleFactory",
    "allowed_module_prefixes",
    "class_constructor_from_class_path",
    "register_module_prefix",
    "registered_module_prefixes",
    "unregister_module_prefix",
]
