"""Resolution of ``kind`` class paths from configs.

A ``kind`` string comes from a config file, and a config file is untrusted input: resolving it must not import or
call arbitrary code (``os.system``, ``builtins.eval``, a module with import-time side effects). Every path is
therefore checked *before* anything is imported:

1. it must be a ``str`` (bytes and other objects are refused) that looks like a dotted Python path
   (``package.module.ClassName``);
2. its module must lie under an allowed prefix: ``noether`` and ``torch.optim`` by default, plus prefixes the user
   registers with :func:`register_module_prefix`, or the path must be one of the exact class paths the caller
   allows for this one lookup (``ScheduleFactory`` allows the kinds of registered schedule configs this way);
3. after import, the attribute must be a class *defined* under an allowed prefix (its ``__module__``), not merely
   reachable from one: ``noether.some.module.Path`` is refused when that module merely imported ``pathlib.Path``;
4. the class must be a subclass of the base the caller expects (an optimizer kind must be a
   ``torch.optim.Optimizer``, a schedule kind a ``ScheduleBase``, and so on).
"""

from __future__ import annotations

import contextlib
import importlib
import inspect
import re
from collections.abc import Collection, Iterator
from typing import Any, TypeVar, overload

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

T = TypeVar("T")

DEFAULT_MODULE_PREFIXES: tuple[str, ...] = ("noether", "torch.optim")
"""Module prefixes from which ``kind`` paths resolve without any registration."""

_DOTTED_PATH = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*")
_user_prefixes: list[str] = []


class KindResolutionError(ValueError):
    """A ``kind`` class path was malformed, not allowed, not importable, or not the expected kind of class."""


def _check_prefix_syntax(prefix: str) -> None:
    if not isinstance(prefix, str) or _DOTTED_PATH.fullmatch(prefix) is None:
        raise ValueError(
            f"module prefix must be a dotted Python module path such as 'my_project.optim', got {prefix!r}"
        )


def register_module_prefix(prefix: str) -> None:
    """Allow ``kind`` paths under ``prefix`` (a package or module path) to be resolved.

    Register the package that holds your own optimizers, schedules or modifiers before building from a config,
    e.g. ``register_module_prefix("my_project")`` allows ``my_project.optim.MyOptimizer``. Registering a prefix that
    is already allowed is a no-op.

    Args:
        prefix: A dotted module path. It matches itself and its submodules, never a mere string prefix
            (``my_project`` does not allow ``my_project_evil``).
    """
    _check_prefix_syntax(prefix)
    if prefix not in _user_prefixes and prefix not in DEFAULT_MODULE_PREFIXES:
        _user_prefixes.append(prefix)


def unregister_module_prefix(prefix: str) -> None:
    """Remove a prefix added by :func:`register_module_prefix` (the defaults cannot be removed)."""
    if prefix in _user_prefixes:
        _user_prefixes.remove(prefix)


@contextlib.contextmanager
def registered_module_prefixes(*prefixes: str) -> Iterator[None]:
    """Context manager that allows ``prefixes`` inside the ``with`` block only."""
    added = [p for p in prefixes if p not in allowed_module_prefixes()]
    for prefix in prefixes:
        register_module_prefix(prefix)
    try:
        yield
    finally:
        for prefix in added:
            unregister_module_prefix(prefix)


def allowed_module_prefixes() -> tuple[str, ...]:
    """The module prefixes from which ``kind`` paths currently resolve."""
    return DEFAULT_MODULE_PREFIXES + tuple(_user_prefixes)


def _is_under(module: str, prefix: str) -> bool:
    return module == prefix or module.startswith(prefix + ".")


def _defining_module_allowed(module: Any, class_path: str, exact: bool) -> bool:
    if not isinstance(module, str):
        return False
    if any(_is_under(module, prefix) for prefix in allowed_module_prefixes()):
        return True
    # An exactly allowed path may name a class its package re-exports from one of its own submodules.
    return exact and _is_under(module, class_path.rpartition(".")[0])


@overload
def class_constructor_from_class_path(
    class_path: str, *, base: type[T], exact_class_paths: Collection[str] = ()
) -> type[T]: ...
@overload
def class_constructor_from_class_path(
    class_path: str, *, base: None = None, exact_class_paths: Collection[str] = ()
) -> type[Any]: ...
def class_constructor_from_class_path(
    class_path: str, *, base: type[Any] | None = None, exact_class_paths: Collection[str] = ()
) -> type[Any]:
    """Resolve a ``kind`` class path such as ``torch.optim.AdamW`` to its class, safely.

    The module is imported only if it lies under an allowed prefix (see :func:`allowed_module_prefixes`) or the path
    is one of ``exact_class_paths``; the attribute must be a class defined under an allowed prefix (or, for an exact
    path, in that path's module or one of its submodules), and a subclass of ``base`` when one is given.

    Args:
        class_path: ``"package.module.ClassName"``. Classes nested in classes are not supported.
        base: The class the result must derive from.
        exact_class_paths: Class paths allowed for this lookup only, in addition to the allowed prefixes. Nothing
            else in their modules becomes resolvable.

    Returns:
        The class.

    Raises:
        KindResolutionError: If the path is not a str, is malformed, is outside the allowed prefixes, cannot be
            imported, does not name a class, names a class defined outside the allowed prefixes, or names a class
            that is not a subclass of ``base``. Nothing is imported for the first three cases.
    """
    if not isinstance(class_path, str):
        raise KindResolutionError(
            f"kind must be a str holding a dotted class path such as 'torch.optim.AdamW', got "
            f"{type(class_path).__name__} {class_path!r}"
        )
    if _DOTTED_PATH.fullmatch(class_path) is None or "." not in class_path:
        raise KindResolutionError(f"kind must be a dotted class path such as 'torch.optim.AdamW', got {class_path!r}")
    module_name, _, attribute = class_path.rpartition(".")
    allowed = allowed_module_prefixes()
    exact = class_path in exact_class_paths
    if not exact and not any(_is_under(module_name, prefix) for prefix in allowed):
        raise KindResolutionError(
            f"kind {class_path!r} is not allowed: its module {module_name!r} is outside the allowed module prefixes "
            f"{list(allowed)}. If it is your own class, allow its package first with "
            f"noether.core.factory.register_module_prefix('{module_name.split('.')[0]}')."
        )
    try:
        module = importlib.import_module(module_name)
    except ImportError as error:
        raise KindResolutionError(f"kind {class_path!r}: cannot import module {module_name!r} ({error})") from error
    try:
        obj = getattr(module, attribute)
    except AttributeError as error:
        raise KindResolutionError(
            f"kind {class_path!r}: module {module_name!r} has no attribute {attribute!r}"
        ) from error
    if not inspect.isclass(obj):
        raise KindResolutionError(f"kind {class_path!r} must name a class, but it is {type(obj).__name__} {obj!r}")
    defined_in = getattr(obj, "__module__", None)
    if not _defining_module_allowed(defined_in, class_path, exact):
        # The module only imported the class from elsewhere: resolving it would reach outside the allowed prefixes.
        raise KindResolutionError(
            f"kind {class_path!r} is not allowed: it names {defined_in}.{obj.__qualname__}, a class defined in "
            f"module {defined_in!r}, which is outside the allowed module prefixes {list(allowed)}; name the class "
            "by the module that defines it, and allow that module's package if it is your own"
        )
    if base is not None and not issubclass(obj, base):
        raise KindResolutionError(
            f"kind {class_path!r} must name a subclass of {base.__module__}.{base.__qualname__}, "
            f"but {obj.__module__}.{obj.__qualname__} is not one"
        )
    return obj


def all_ctor_kwarg_names(cls: type[Any]) -> set[str]:
    """The union of ``__init__`` parameter names along the ``__base__`` chain of ``cls`` (``self`` excluded)."""
    names: set[str] = set()
    current: type[Any] | None = cls
    while current is not None and current is not object:
        init = current.__dict__.get("__init__")
        if init is not None:
            with contextlib.suppress(TypeError, ValueError):
                names.update(p for p in inspect.signature(init).parameters if p != "self")
        current = current.__base__
    return names
