"""Safe ``kind`` resolution (its code lives in :mod:`noether.core.builders.kinds`; this is its public path)."""

from noether.core.builders.kinds import (
    DEFAULT_MODULE_PREFIXES,
    KindResolutionError,
    all_ctor_kwarg_names,
    allowed_module_prefixes,
    class_constructor_from_class_path,
    register_module_prefix,
    registered_module_prefixes,
    unregister_module_prefix,
)

__all__ = [
    "DEFAULT_MODULE_PREFIXES",
    "KindResolutionError",
    "all_ctor_kwarg_names",
    "allowed_module_prefixes",
    "class_constructor_from_class_path",
    "register_module_prefix",
    "registered_module_prefixes",
    "unregister_module_prefix",
]
