"""Factories for optimizers (wrapped in :class:`~noether.core.optimizer.OptimizerWrapper`) and modifiers."""

from __future__ import annotations

import difflib
import functools
import inspect
import math
from collections.abc import Mapping
from typing import Any, Protocol, cast, overload

import torch

from noether.core.builders.factory import Factory
from noether.core.builders.kinds import KindResolutionError, class_constructor_from_class_path
from noether.core.optimizer.optimizer_wrapper import OptimizerWrapper
from noether.core.optimizer.param_group_modifiers.factory import ParamGroupModifierFactory
from noether.core.schemas.optimizers import OptimizerConfig
from noether.core.utils.training.counter import UpdateCounter

__all__ = ["OptimizerFactory", "ParamGroupModifierFactory", "WrapperBuilder", "optimizer_kwargs_for"]


class WrapperBuilder(Protocol):
    """What :meth:`OptimizerFactory.create` returns: call it with the model to get the wrapper."""

    def __call__(
        self,
        model: torch.nn.Module,
        update_counter: UpdateCounter | None = None,
        *,
        advance_counter: bool = False,
    ) -> OptimizerWrapper:
        """Build the wrapper for ``model`` (see :class:`OptimizerWrapper` for the arguments)."""
        ...


def _constructor_parameters(cls: type[Any]) -> list[inspect.Parameter]:
    try:
        return list(inspect.signature(cls).parameters.values())
    except (TypeError, ValueError):  # no introspectable signature: accept what the class itself accepts
        return [inspect.Parameter("kwargs", inspect.Parameter.VAR_KEYWORD)]


def _is_number(value: Any) -> bool:
    return isinstance(value, torch.Tensor) or (
        isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    )


def _expected_like(default: Any, value: Any) -> str | None:
    """What ``value`` should be, judged by the constructor's ``default``, or None if it fits (or nothing is known)."""
    if default is inspect.Parameter.empty or default is None or isinstance(value, torch.Tensor):
        return None
    if isinstance(default, bool):
        return None if isinstance(value, bool) else "true or false"
    if isinstance(default, (int, float)):
        return None if _is_number(value) else "a finite number"
    if isinstance(default, tuple) and all(entry is None or _is_number(entry) for entry in default):
        fits = (
            isinstance(value, tuple)
            and len(value) == len(default)
            and all(_is_number(v) or (d is None and v is None) for v, d in zip(value, default, strict=True))
        )
        return None if fits else f"a list of {len(default)} finite numbers (default {list(default)})"
    return None


def _check_argument_types(
    optimizer_class: type[torch.optim.Optimizer], parameters: list[inspect.Parameter], kwargs: dict[str, Any]
) -> None:
    # Checked here, before anything is built: torch would report `betas: 0.2` as "'float' object is not
    # subscriptable" from deep inside its constructor, naming neither the optimizer nor the argument.
    defaults = {p.name: p.default for p in parameters}
    for key, value in kwargs.items():
        expected = _expected_like(defaults.get(key, inspect.Parameter.empty), value)
        if expected is not None:
            raise ValueError(
                f"OptimizerConfig argument '{key}' of {optimizer_class.__module__}.{optimizer_class.__qualname__} "
                f"must be {expected}, got {type(value).__name__} {value!r}"
            )


def optimizer_kwargs_for(optimizer_class: type[torch.optim.Optimizer], config: OptimizerConfig) -> dict[str, Any]:
    """The keyword arguments of ``config`` for ``optimizer_class``, checked against its constructor.

    ``weight_decay`` is always passed on (0.0 by default), except to an optimizer without that argument when it
    is 0.0.

    Raises:
        ValueError: A key the constructor does not accept (the message lists the accepted ones), or a value of
            another type than the constructor's default for it (a number for ``betas``, a string for ``eps``).
    """
    kwargs = config.optimizer_kwargs()
    parameters = _constructor_parameters(optimizer_class)
    _check_argument_types(optimizer_class, parameters, kwargs)
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters):
        return kwargs
    keyword_kinds = (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
    accepted = {p.name for p in parameters if p.kind in keyword_kinds} - {"params"}
    if "weight_decay" not in accepted and not kwargs.get("weight_decay"):
        kwargs.pop("weight_decay")
    unknown = [key for key in kwargs if key not in accepted]
    if unknown:
        hints = []
        for key in unknown:
            close = difflib.get_close_matches(key, sorted(accepted | OptimizerConfig.WRAPPER_FIELDS), n=1)
            hints.append(f"'{key}'" + (f" (did you mean '{close[0]}'?)" if close else ""))
        raise ValueError(
            f"OptimizerConfig key(s) {', '.join(hints)} are not arguments of {optimizer_class.__qualname__}; it "
            f"accepts {sorted(accepted)} (wrapper settings: {sorted(OptimizerConfig.WRAPPER_FIELDS)})"
        )
    return kwargs


class OptimizerFactory(Factory):
    """Builds ``partial(OptimizerWrapper, ...)`` from an :class:`OptimizerConfig`; call it with the model.

    ``OptimizerFactory().create(config)(model, update_counter=counter)`` gives the wrapper. The ``kind`` must name
    a ``torch.optim.Optimizer`` subclass under an allowed module prefix.
    """

    base_class = torch.optim.Optimizer

    def __init__(self) -> None:
        super().__init__(returns_partials=True)

    def instantiate(self, obj: Any = None, **kwargs: Any) -> WrapperBuilder:
        """Resolve the optimizer class and split the config into optimizer and wrapper arguments.

        Args:
            obj: An :class:`OptimizerConfig` (a dict is validated into one).
            **kwargs: Passed on to the wrapper partial (e.g. ``update_counter``).
        """
        if obj is None:
            obj = OptimizerConfig(**kwargs)
            kwargs = {}
        elif not isinstance(obj, OptimizerConfig):
            obj = OptimizerConfig.model_validate(obj)
        if obj.kind is None:
            raise ValueError("OptimizerConfig.kind is not set: name the optimizer class, e.g. 'torch.optim.AdamW'")
        optimizer_class = class_constructor_from_class_path(obj.kind, base=torch.optim.Optimizer)
        if issubclass(optimizer_class, OptimizerWrapper):
            # The wrapper is a torch optimizer too, but it wraps one: it cannot be the optimizer it wraps.
            raise KindResolutionError(
                f"kind {obj.kind!r} is the OptimizerWrapper (or a subclass of it); name the torch optimizer it should "
                "wrap, e.g. 'torch.optim.AdamW'"
            )
        torch_kwargs = optimizer_kwargs_for(optimizer_class, obj)
        ctor: Any = functools.partial(optimizer_class, **torch_kwargs) if torch_kwargs else optimizer_class
        wrapper_config = OptimizerConfig(**obj.return_optim_wrapper_args())
        return cast(
            WrapperBuilder,
            functools.partial(OptimizerWrapper, torch_optim_ctor=ctor, optim_wrapper_config=wrapper_config, **kwargs),
        )

    @overload  # type: ignore[override]
    def create(self, obj: OptimizerConfig | Mapping[str, Any], **kwargs: Any) -> WrapperBuilder: ...

    @overload
    def create(self, obj: None, **kwargs: Any) -> None: ...

    def create(self, obj: OptimizerConfig | Mapping[str, Any] | None, **kwargs: Any) -> WrapperBuilder | None:
        """Like :meth:`Factory.create`, but a dict is validated as an :class:`OptimizerConfig` first.

        Returns:
            A callable ``(model, update_counter=None, *, advance_counter=False) -> OptimizerWrapper``; ``None`` for
            ``None`` or an empty dict.
        """
        if isinstance(obj, Mapping) and obj:
            return self.instantiate(OptimizerConfig.model_validate(dict(obj)), **kwargs)
        built: WrapperBuilder | None = super().create(obj, **kwargs)
        return built
