"""Checks a loaded optimizer state before it replaces anything.

``torch.optim.Optimizer.load_state_dict`` takes a checkpoint's state largely on trust: a NaN moment, a negative
second moment, a broadcastable but wrong-shaped buffer or a string where a tensor belongs loads silently and
surfaces at the next step, as NaN parameters or as an error raised after the step counters already moved. Every
check here runs first, and a failure names the parameter (by name where the checkpoint or the caller gives one) and
the state key, so the optimizer's state stays as it was.

:func:`validate_optimizer_state` checks a whole state dict against an optimizer; :func:`param_state_problems` checks
the state of one parameter, for callers that match saved state to parameters themselves (the optimizer wrapper
matches by parameter name).
"""

from __future__ import annotations

import math
import numbers
import operator
import re
from collections.abc import Collection, Mapping, Sequence
from typing import Any

import torch

from noether.core.optimizer.gradients import is_dtensor

__all__ = [
    "ELEMENTWISE_STATE_KEYS",
    "FACTORED_STATE_KEYS",
    "NONNEGATIVE_STATE_KEYS",
    "param_state_problems",
    "required_state_keys",
    "state_tensor_problem",
    "validate_optimizer_state",
]

ELEMENTWISE_STATE_KEYS: frozenset[str] = frozenset(
    {
        "exp_avg",
        "exp_avg_sq",
        "max_exp_avg_sq",
        "momentum_buffer",
        "square_avg",
        "acc_delta",
        "sum",
        "exp_inf",
        "grad_avg",
        "ax",
        "prev",
        "step_size",
    }
)
"""State keys of torch's optimizers (and Lion) that hold one entry per parameter element: each must be a tensor of
exactly the parameter's shape, of a floating (or, for a complex parameter, complex) dtype, with finite entries."""

NONNEGATIVE_STATE_KEYS: frozenset[str] = frozenset({"exp_avg_sq", "max_exp_avg_sq", "square_avg", "acc_delta", "sum"})
"""Second-moment style keys: a negative entry makes the next step take the square root of a negative number."""

FACTORED_STATE_KEYS: frozenset[str] = frozenset({"row_var", "col_var"})
"""Keys of factored second moments (Adafactor): they keep the parameter's rank with some dimensions of size 1, so
they only have to broadcast to the parameter's shape."""

# The keys every non-empty state of these optimizers holds; their step reads them unconditionally.
_REQUIRED: tuple[tuple[type[torch.optim.Optimizer], frozenset[str]], ...] = (
    (torch.optim.NAdam, frozenset({"step", "exp_avg", "exp_avg_sq", "mu_product"})),
    (torch.optim.Adamax, frozenset({"step", "exp_avg", "exp_inf"})),
    (torch.optim.Adam, frozenset({"step", "exp_avg", "exp_avg_sq"})),
    (torch.optim.AdamW, frozenset({"step", "exp_avg", "exp_avg_sq"})),
    (torch.optim.RAdam, frozenset({"step", "exp_avg", "exp_avg_sq"})),
    (torch.optim.RMSprop, frozenset({"step", "square_avg"})),
    (torch.optim.Adagrad, frozenset({"step", "sum"})),
    (torch.optim.Adadelta, frozenset({"step", "square_avg", "acc_delta"})),
)

_DECIMAL = re.compile(r"[0-9]+")


def required_state_keys(optimizer: torch.optim.Optimizer) -> frozenset[str]:
    """The keys every non-empty per-parameter state of ``optimizer`` must hold.

    Known for torch's Adam family, RMSprop, Adagrad and Adadelta; an optimizer class of your own can declare them
    as a ``required_state_keys`` class attribute (a collection of str). Otherwise empty: nothing is required.
    """
    declared = getattr(type(optimizer), "required_state_keys", None)
    if declared is not None:
        return frozenset(declared)
    for cls, keys in _REQUIRED:
        if isinstance(optimizer, cls):
            return keys
    return frozenset()


def _index(raw: Any) -> int | None:
    """``raw`` as a state index (an int, or a decimal string as JSON keys are), else None."""
    if isinstance(raw, bool):
        return None
    if isinstance(raw, str):
        return int(raw) if _DECIMAL.fullmatch(raw) else None
    try:
        index = operator.index(raw)
    except TypeError:
        return None
    return index if index >= 0 else None


def _local(tensor: torch.Tensor) -> torch.Tensor:
    # A DTensor's values are checked on the shard this rank holds; its shape is the global one.
    local: torch.Tensor = tensor.to_local() if is_dtensor(tensor) else tensor  # type: ignore[attr-defined]
    return local


def _kind(dtype: torch.dtype) -> str:
    if dtype.is_complex:
        return "complex"
    return "floating" if dtype.is_floating_point else "integer/bool"


def _tensor_problem(key: str, value: torch.Tensor) -> str | None:
    """What makes a state tensor unusable whatever parameter it belongs to."""
    if value.is_meta:
        return f"state '{key}' is on the meta device (it holds no data)"
    if value.layout is not torch.strided:
        return f"state '{key}' has layout {value.layout}; optimizer state must be dense (torch.strided)"
    return None


def _finiteness_problem(key: str, value: torch.Tensor) -> str | None:
    local = _local(value)
    if local.numel() == 0 or not (local.dtype.is_floating_point or local.dtype.is_complex):
        return None
    finite = torch.isfinite(local)
    if bool(finite.all()):
        return None
    bad = int((~finite).sum())
    return f"state '{key}' has {bad} non-finite entr{'y' if bad == 1 else 'ies'} (NaN or inf)"


def _step_problem(value: Any) -> str | None:
    if isinstance(value, torch.Tensor):
        unusable = _tensor_problem("step", value)  # first: a meta tensor has no number to read
        if unusable is not None:
            return unusable
        local = _local(value)
        if value.numel() != 1:
            return f"state 'step' must hold one number, but has shape {tuple(value.shape)}"
        if local.dtype.is_complex or local.dtype == torch.bool:
            return f"state 'step' must be a real number, but has dtype {value.dtype}"
        number = float(local.reshape(()).item()) if local.numel() == 1 else 0.0
    elif isinstance(value, numbers.Real) and not isinstance(value, bool):
        number = float(value)
    else:
        return f"state 'step' must be a number or a 1-element tensor, got {type(value).__name__} {value!r:.60}"
    if not math.isfinite(number) or number < 0:
        return f"state 'step' must be a finite number >= 0, got {number!r}"
    return None


def param_state_problems(
    state: Any,
    param: torch.Tensor | None = None,
    required_keys: Collection[str] = (),
    *,
    all_elementwise: bool = False,
) -> list[str]:
    """Why the saved per-parameter ``state`` cannot be loaded (for ``param`` when given); empty if it can.

    Checked: ``state`` is a mapping with str keys; an empty state is always fine (the parameter starts fresh);
    otherwise it holds every key of ``required_keys``; ``step`` is a finite number >= 0 (a one-element tensor or a
    Python number); no tensor is on the meta device or sparse; the :data:`ELEMENTWISE_STATE_KEYS` are tensors
    (``momentum_buffer`` may be ``None``) with finite entries, and the :data:`NONNEGATIVE_STATE_KEYS` have no negative
    entry. With ``param``: an elementwise key has exactly its shape and a floating (complex for a complex parameter)
    dtype, any other tensor of its rank has its shape too (the :data:`FACTORED_STATE_KEYS` need only broadcast to
    it), and floating point and complex are not mixed. With ``all_elementwise``, every key but ``step`` is held to
    the rules of an elementwise key (and ``momentum_buffer`` may not be ``None``): for an optimizer whose whole state
    is per-element, such as Lion, where any other tensor is corrupt.

    Args:
        state: The saved state of one parameter.
        param: The parameter it is loaded for; ``None`` skips the checks that need it.
        required_keys: Keys a non-empty state must hold (see :func:`required_state_keys`).
        all_elementwise: Treat every key but ``step`` as one of the :data:`ELEMENTWISE_STATE_KEYS`.

    Returns:
        One message per problem, each naming the state key.
    """
    if not isinstance(state, Mapping):
        return [f"its state must be a dict of key -> value, got {type(state).__name__}"]
    bad_keys = [key for key in state if not isinstance(key, str)]
    if bad_keys:
        return [f"its state keys must be str, got {bad_keys!r:.80}"]
    if not state:
        return []
    problems: list[str] = []
    missing = sorted(set(required_keys) - set(state))
    if missing:
        problems.append(
            f"its state lacks {missing} (it has {sorted(state)}); the optimizer needs them, so the checkpoint is "
            "likely of another optimizer"
        )
    for key, value in state.items():
        if key == "step":
            reason = _step_problem(value)
            if reason is not None:
                problems.append(reason)
            continue
        elementwise = all_elementwise or key in ELEMENTWISE_STATE_KEYS
        if elementwise and not isinstance(value, torch.Tensor):
            if value is None and key == "momentum_buffer" and not all_elementwise:
                continue
            problems.append(f"state '{key}' must be a tensor, got {type(value).__name__} {value!r:.60}")
            continue
        if not isinstance(value, torch.Tensor):
            continue  # other optimizers keep numbers and lists of tensors here (LBFGS)
        reason = _tensor_problem(key, value)
        if reason is None and elementwise:
            reason = _finiteness_problem(key, value)
        if reason is None and key in NONNEGATIVE_STATE_KEYS:
            negative = int((_local(value) < 0).sum()) if not value.dtype.is_complex else 0
            if negative:
                reason = f"state '{key}' has {negative} negative entr{'y' if negative == 1 else 'ies'}; it must be >= 0"
        if reason is None and param is not None:
            reason = state_tensor_problem(param, key, value, elementwise=elementwise)
        if reason is not None:
            problems.append(reason)
    return problems


def state_tensor_problem(
    param: torch.Tensor, key: str, value: torch.Tensor, *, elementwise: bool | None = None
) -> str | None:
    """Why the saved state tensor ``value`` under ``key`` cannot belong to ``param`` (shape, dtype), or None.

    An elementwise key (by default those of :data:`ELEMENTWISE_STATE_KEYS`) has exactly the parameter's shape and its
    kind of dtype (floating or complex; the precision may differ). Any other tensor of the parameter's rank has its
    shape too, except the :data:`FACTORED_STATE_KEYS`, which need only broadcast to it, and does not mix floating
    point and complex. Tensors of another rank (step counters, preconditioners) are not checked.

    Args:
        param: The parameter the state belongs to.
        key: The state key, for the message and to tell whether it is elementwise.
        value: The saved tensor.
        elementwise: Whether ``value`` is elementwise; ``None`` asks :data:`ELEMENTWISE_STATE_KEYS`.
    """
    if elementwise is None:
        elementwise = key in ELEMENTWISE_STATE_KEYS
    if not elementwise and (value.ndim != param.ndim or value.ndim == 0):
        return None  # step counters, preconditioners and the like: their shape is the optimizer's business
    if key in FACTORED_STATE_KEYS:
        fits = value.ndim == param.ndim and all(v in (p, 1) for v, p in zip(value.shape, param.shape, strict=True))
    else:
        fits = value.shape == param.shape
    if not fits:
        return f"state '{key}' has shape {tuple(value.shape)} but the parameter has shape {tuple(param.shape)}"
    # An elementwise buffer has the parameter's kind of dtype (precision may differ: torch casts it on load);
    # other tensors only must not mix floating point and complex.
    kinds = {_kind(value.dtype), _kind(param.dtype)}
    if (elementwise and len(kinds) > 1) or kinds == {"floating", "complex"}:
        return f"state '{key}' has dtype {value.dtype} but the parameter has dtype {param.dtype}"
    return None


def _group_indices(param_groups: Any) -> list[list[int]]:
    if isinstance(param_groups, (str, bytes)) or not isinstance(param_groups, Sequence):
        raise ValueError(f"checkpoint 'param_groups' must be a list of dicts, got {type(param_groups).__name__}")
    groups: list[list[int]] = []
    for position, group in enumerate(param_groups):
        if not isinstance(group, Mapping):
            raise ValueError(f"checkpoint param_groups[{position}] must be a dict, got {type(group).__name__}")
        raw = group.get("params")
        if isinstance(raw, (str, bytes)) or not isinstance(raw, Sequence):
            raise ValueError(
                f"checkpoint param_groups[{position}] needs a 'params' list of parameter indices, got "
                f"{'no such key' if 'params' not in group else type(raw).__name__}"
            )
        indices = []
        for entry in raw:
            index = _index(entry)
            if index is None:
                raise ValueError(
                    f"checkpoint param_groups[{position}]['params'] holds {entry!r}; a parameter index must be an "
                    "integer >= 0"
                )
            indices.append(index)
        groups.append(indices)
    flat = [index for group in groups for index in group]
    repeated = sorted({index for index in flat if flat.count(index) > 1})
    if repeated:
        raise ValueError(f"checkpoint param_groups list the parameter indices {repeated} more than once")
    return groups


def _names(state_dict: Mapping[str, Any], index_to_name: Mapping[int, str] | None) -> dict[int, str]:
    raw = index_to_name if index_to_name is not None else state_dict.get("param_idx_to_name")
    if not isinstance(raw, Mapping):
        return {}
    names: dict[int, str] = {}
    for key, name in raw.items():
        index = _index(key)
        if index is not None:
            names[index] = str(name)
    return names


def validate_optimizer_state(
    optimizer: torch.optim.Optimizer,
    state_dict: Mapping[str, Any],
    index_to_name: Mapping[int, str] | None = None,
    *,
    required_keys: Collection[str] | None = None,
) -> None:
    """Check the state dict ``state_dict`` before it is loaded into ``optimizer``; raise if anything is wrong.

    Checked: ``state`` is a dict keyed by parameter indices (integers >= 0, or their decimal strings),
    ``param_groups`` is a list of dicts with a ``params`` list of distinct indices that covers every index of
    ``state``, and each parameter's state passes :func:`param_state_problems` with the optimizer's
    :func:`required_state_keys`.

    Saved indices are matched to the optimizer's parameters by position, as ``torch.optim.Optimizer.load_state_dict``
    does, when the saved groups hold as many parameters as the optimizer's groups; the checks that need the
    parameter (shape, dtype) then run too. A state dict of the optimizer wrapper carries ``param_idx_to_name``: its
    indices belong to the model that saved it, so there the wrapper matches by name and checks shapes itself.

    Args:
        optimizer: The optimizer the state is for.
        state_dict: ``{"state": ..., "param_groups": ...}`` as ``optimizer.state_dict()`` gives it.
        index_to_name: Saved index -> parameter name, for the messages; by default the state dict's
            ``param_idx_to_name`` when it has one.
        required_keys: Keys every non-empty parameter state must hold; by default
            :func:`required_state_keys` of ``optimizer``.

    Raises:
        ValueError: Naming every offending parameter (by name where known, else by index) and key. Nothing was
            changed.
    """
    if not isinstance(state_dict, Mapping):
        raise ValueError(f"an optimizer state_dict must be a dict, got {type(state_dict).__name__}")
    missing = [key for key in ("state", "param_groups") if key not in state_dict]
    if missing:
        raise ValueError(f"the optimizer state_dict lacks the key(s) {missing}")
    state = state_dict["state"]
    if not isinstance(state, Mapping):
        raise ValueError(f"checkpoint 'state' must be a dict of parameter index -> state, got {type(state).__name__}")
    groups = _group_indices(state_dict["param_groups"])
    indexed_state: dict[int, Any] = {}
    for raw_index, value in state.items():
        index = _index(raw_index)
        if index is None:
            raise ValueError(
                f"checkpoint 'state' has the key {raw_index!r}; state is keyed by parameter index, an integer >= 0"
            )
        if index in indexed_state:
            raise ValueError(f"checkpoint 'state' holds parameter index {index} twice ({raw_index!r})")
        indexed_state[index] = value
    listed = {index for group in groups for index in group}
    unlisted = sorted(set(indexed_state) - listed)
    if unlisted:
        raise ValueError(f"checkpoint 'state' has entries for the indices {unlisted}, which no param group lists")

    names = _names(state_dict, index_to_name)
    params_by_index: dict[int, torch.Tensor] = {}
    current_groups = [group["params"] for group in optimizer.param_groups]
    by_name = "param_idx_to_name" in state_dict and index_to_name is None
    if not by_name and [len(group) for group in groups] == [len(group) for group in current_groups]:
        saved = [index for group in groups for index in group]
        params = [param for group in current_groups for param in group]
        params_by_index = dict(zip(saved, params, strict=True))
    keys = required_state_keys(optimizer) if required_keys is None else frozenset(required_keys)

    problems: list[str] = []
    for index, param_state in sorted(indexed_state.items()):
        param = params_by_index.get(index)
        where = f"parameter '{names[index]}' (index {index})" if index in names else f"parameter index {index}"
        if param is not None:
            where += f" of shape {tuple(param.shape)}"
        problems.extend(f"{where}: {reason}" for reason in param_state_problems(param_state, param, keys))
    if problems:
        raise ValueError(
            f"cannot load the checkpoint into {type(optimizer).__name__}; nothing was loaded:\n  "
            + "\n  ".join(problems)
        )
